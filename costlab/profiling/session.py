"""Profile a model: run the size plan and fuzzed inputs, one measured row per probe (`profile`); `session` is the prober a run and refinement share."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import warnings
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from costlab import _env
from costlab.adapters.preprocessed import Preprocessed
from costlab.errors import CostlabError, CostlabWarning
from costlab.inputs.space import InputSpace
from costlab.measurement.executors import ISOLATIONS, InProcess, Subprocess
from costlab.profiling import plan as sweep
from costlab.profiling import strategies
from costlab.profiling.table import TABLE_COLUMNS, Profile, _row, read_log, save_failure

#: Default hard caps on one probe: a slice stops growing past them, and larger probes are
#: skipped (see `_Prober`); `costlab.pipeline.refine` never launches a plan predicted to pass them.
MAX_PROBE_S = 5.0


MAX_PROBE_MIB = 4096


#: Keras backends a profile can run under (`backend=`), each in its own worker processes.
BACKENDS = ("tensorflow", "jax", "torch")


#: A probe's cost predicted from its slice is multiplied by this before it is compared with
#: the caps: the slope of two noisy points is uncertain.
PREDICTION_SAFETY = 1.5


class _Prober:
    """Measures probes one at a time: rows, the probe log, the progress bar, hard caps.

    A probe that runs out of memory, times out or crashes, or whose warm median or peak is
    over a cap, marks its sizes as over; any later probe at least as large in every
    dimension is skipped, since cost only grows with size. An input the model refuses
    (status `error`) does not: validity is not monotone in size (`costlab.profiling.validity`). With `done` (rows of an earlier, interrupted run of the same
    plan), a probe already logged is taken from it instead of measured again.

    With `hazards` (the run's `costlab.measurement.hazards.Hazards`), the same holds across
    the run's stages: an input at least as large as one that timed out, ran out of memory or
    crashed in any stage, with the same value pattern, is not sent; its row carries that
    status and an error beginning "not sent".
    """

    def __init__(self, adapter, space, *, total, plan, executor, max_probe_s=MAX_PROBE_S,
                 max_probe_mib=MAX_PROBE_MIB, log_path=None, progress=None, done=None, failures_dir=None,
                 pulse=None, values="random", hazards=None):
        self.adapter, self.space, self.plan, self.executor = adapter, space, plan, executor
        self.hazards = hazards
        self.values = values  # the value pattern of plan probes (`InputSpace.pattern_inputs`)
        # (reference sizes, every): a pulse before every `every`-th probe (costlab.profiling.speed)
        self.pulse = (dict(pulse["sizes"]), int(pulse["every"])) if pulse else None
        self._probes = 0
        self.failures_dir = None if failures_dir is None else Path(failures_dir)
        self.max_probe_s, self.max_probe_mib = max_probe_s, max_probe_mib
        self.done = {r["probe"]: r for r in (done or []) if r.get("plan") == plan}
        self.resumed = 0
        self.rows: list[dict] = []
        self.over: list[dict] = []  # sizes that crossed a hard cap
        self.not_launched: list[dict] = []  # probes the data predicted over a cap
        self._stack = contextlib.ExitStack()
        self._stack.callback(executor.close)
        self.log = self._stack.enter_context(open(log_path, "a")) if log_path else None
        from tqdm.auto import tqdm

        self.bar = self._stack.enter_context(tqdm(
            total=total, desc=f"profile {adapter.name}", unit="probe",
            disable=None if progress is None else not progress, leave=False))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stack.close()  # the log is closed and workers stopped however the sweep ends

    def crossed(self, row) -> bool:
        if row["status"] != "ok":
            return True
        peak_mib = (row["peak_bytes"] or 0) / 2**20
        return row["wall_s_median"] > self.max_probe_s or peak_mib > self.max_probe_mib

    def dominated(self, sizes) -> bool:
        return any(all(sizes[d] >= o[d] for d in self.space.dim_names) for o in self.over)

    def predicted_over(self, sizes, earlier) -> dict | None:
        """The predicted cost of `sizes` when it is over a hard cap, else `None`.

        The prediction extends the growth between the last two successful probes of
        `earlier` (smaller probes of the same slice) as a power law in the element count,
        its exponent clipped to [0, 3], times `PREDICTION_SAFETY`.
        """
        ok = [r for r in earlier if r["status"] == "ok"]
        if len(ok) < 2:
            return None
        dims = self.space.dim_names
        a, b = ok[-2], ok[-1]
        xa, xb = (math.prod(int(r[d]) for d in dims) for r in (a, b))
        x = math.prod(int(sizes[d]) for d in dims)
        if not xa < xb < x:
            return None
        pred = {}
        for key, cap, unit in (("wall_s_median", self.max_probe_s, 1.0), ("peak_bytes", self.max_probe_mib, 2**20)):
            ya, yb = a.get(key), b.get(key)
            if not ya or not yb or ya <= 0 or yb <= 0:
                continue
            slope = min(3.0, max(0.0, math.log(yb / ya) / math.log(xb / xa)))
            pred[key] = yb * (x / xb) ** slope * PREDICTION_SAFETY / unit
            if pred[key] > cap:
                return {"sizes": dict(sizes), "predicted_s": pred.get("wall_s_median"),
                        "predicted_mib": pred.get("peak_bytes"), "over": "time" if unit == 1.0 else "memory"}
        return None

    def _maybe_pulse(self):
        """Measure the reference input before every `every`-th probe (its id from that
        count, so a resumed run takes it from the log like any probe)."""
        if self.pulse is None:
            return
        sizes, every = self.pulse
        k, self._probes = self._probes, self._probes + 1
        if k % every:
            return
        from costlab.profiling.speed import KIND, PULSE_SEED

        self._measure(sizes, lambda: self.space.random_inputs(sizes, seed=PULSE_SEED), KIND, 0, PULSE_SEED,
                      f"pulse/{k // every}", keep=False, values="random", pulse=True)

    def run(self, sizes, make_inputs, kind, round_, seed, probe_id, values=None) -> dict:
        """Measure one probe (after a pulse when one is due). `values` names the inputs'
        value pattern in the table (default: the session's)."""
        self._maybe_pulse()
        row = self._measure(sizes, make_inputs, kind, round_, seed, probe_id, values=values)
        self.bar.update(1)
        return row

    def _write(self, row: dict) -> None:
        """Append `row` to the probe log, on disk before the next probe starts."""
        if self.log:
            self.log.write(json.dumps(row) + "\n")
            self.log.flush()
            os.fsync(self.log.fileno())

    def _measure(self, sizes, make_inputs, kind, round_, seed, probe_id, keep=True, values=None,
                 pulse=False) -> dict:
        values = values or self.values
        blocked = self.hazards.blocking(sizes, values) if self.hazards is not None and not pulse else None
        if probe_id in self.done:
            row = self.done[probe_id]
            self.resumed += keep
            if self.hazards is not None and not pulse:  # a resumed run knows what failed before
                self.hazards.record(sizes, values, row, kind)
        elif blocked is not None:  # never sent: as large as an input that failed (`Hazards`)
            shapes = {i.name: SimpleNamespace(shape=s, dtype=i.dtype) for i, s in
                      zip(self.space.inputs, self.space.shapes(sizes).values(), strict=True)}
            row = _row(self.space, sizes, shapes, kind, round_, seed, probe_id, self.plan, self.adapter.call_path,
                       self.hazards.not_sent_row(blocked), self.executor.env, self.executor.memory_source,
                       values=values)
            row["repro"] = blocked.get("repro") or ""  # the input that failed: this one was never made
            self._write(row)
        else:
            inputs = make_inputs()
            # a pulse goes to the executor's reference worker (`Subprocess.pulse`)
            result = (self.executor.pulse if pulse else self.executor.probe)(inputs)
            row = _row(self.space, sizes, inputs, kind, round_, seed, probe_id, self.plan,
                       self.adapter.call_path, result, self.executor.env, self.executor.memory_source,
                       values=values)
            if row["status"] != "ok" and self.failures_dir is not None and keep:
                row["repro"] = save_failure(self.failures_dir, row, inputs, self.space.dim_names)
            if self.hazards is not None and not pulse:
                self.hazards.record(sizes, values, row, kind)
            self._write(row)
        if not keep and row["status"] != "ok":
            self.pulse = None  # the reference itself fails here: no index from this session
        self.rows.append(row)
        return row

    def run_groups(self, groups, *, rounds, seed):
        """Measure groups of growing sizes `rounds` times, odd rounds in reverse group order.

        Inside a group sizes only grow, so a group stops at its first probe over a cap.
        """
        for r in range(rounds):
            for gi, group in list(enumerate(groups))[:: -1 if r % 2 else 1]:
                earlier = []
                for pi, probe in enumerate(group):
                    if self.dominated(probe.sizes):
                        self.bar.update(len(group) - pi)
                        break
                    over = self.predicted_over(probe.sizes, earlier)
                    if over is not None:  # never launched: its own slice predicts it over a cap
                        self.not_launched.append({**over, "kind": probe.kind, "round": r})
                        self.over.append(probe.sizes)
                        self.bar.update(len(group) - pi)
                        break
                    probe_seed = seed * 100003 + gi * 1009 + pi
                    row = self.run(probe.sizes, lambda p=probe, s=probe_seed: self.inputs(p.sizes, s),
                                   probe.kind, r, probe_seed, f"r{r}/g{gi}/p{pi}")
                    earlier.append(row)
                    # an input the model refuses (status `error`) says nothing of larger ones:
                    # a minimum size (a kernel larger than a small image) fails below, works above
                    if row["status"] != "error" and self.crossed(row):
                        self.over.append(probe.sizes)
                        self.bar.update(len(group) - pi - 1)
                        break

    def inputs(self, sizes, seed) -> dict:
        """A plan probe's inputs: its sizes, in the session's value pattern."""
        return self.space.pattern_inputs(sizes, seed=seed, values=self.values)

    def table(self) -> pd.DataFrame:
        cols = [*self.space.dim_names, *TABLE_COLUMNS]
        table = pd.DataFrame([{c: r.get(c) for c in cols} for r in self.rows], columns=cols)
        table["error"] = table["error"].astype(object).fillna("")
        return table


def plan_id(describe: dict, space: InputSpace, **settings) -> str:
    """A short hash naming everything that decides which probes a profile runs and how."""
    blob = json.dumps({"model": describe.get("sha256"), "call": describe.get("call"),
                       "space": space.to_dict(), **settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _check_pulse(pulse, space) -> dict | None:
    """`{"sizes", "every"}` with the sizes filled in, or `None`; a clear error otherwise."""
    if pulse is None or pulse is False:
        return None
    from costlab.profiling.speed import PULSE_EVERY, reference_sizes

    if pulse is True:
        pulse = {}
    if not isinstance(pulse, dict):
        raise CostlabError(f"Expected `pulse` to be a dict with `sizes` and `every`, or None. Received: {pulse!r}")
    every = pulse.get("every", PULSE_EVERY)
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise CostlabError(f"Expected a positive integer `pulse['every']`. Received: {every!r}")
    sizes = pulse.get("sizes") or reference_sizes(space)
    if sorted(sizes) != sorted(space.dim_names):
        raise CostlabError(f"Expected `pulse['sizes']` to give every dimension {space.dim_names}. "
                           f"Received: {sizes!r}")
    return {"sizes": {d: int(sizes[d]) for d in space.dim_names}, "every": every}


def _check_values(values):
    from costlab.inputs.space import VALUE_PATTERNS

    if values not in VALUE_PATTERNS:
        raise CostlabError(f"Expected `values` to be one of {', '.join(VALUE_PATTERNS)}. Received: {values!r}")


def _check_rounds(rounds):
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise CostlabError(f"Expected a positive integer for `rounds`. Received: rounds={rounds!r}")


def _prepare(model, space, preprocess):
    from costlab.adapters import adapt

    adapter = adapt(model)
    space = space or InputSpace.from_model(adapter)
    if preprocess is not None and not isinstance(adapter, Preprocessed):
        adapter = Preprocessed(adapter, preprocess)
    return adapter, space, adapter.describe()


#: `profile`'s settings of the size plan, which `session` takes and does not use.
_PLAN_SETTINGS = frozenset({"points", "examples", "rounds", "seed", "preprocess"})


def session(adapter, space: InputSpace, *, plan: str, total: int, isolation: str = "inprocess",
            memory_cap_mib=None, timeout_s=None, probes_per_worker=None, log_path=None, resume=False,
            failures_dir=None, progress=None, max_probe_s=MAX_PROBE_S, max_probe_mib=MAX_PROBE_MIB,
            min_repeats=5, max_repeats=30, probe_time_s=0.5, backend=None, pulse=None, values="random",
            hazards=None, workers=None, **plan_settings) -> _Prober:
    """A context measuring probes one at a time as `profile` does (same isolation, caps,
    log, resume and failure keeping): for adaptive plans such as `costlab.pipeline.refine.boundary`.
    `plan` names the probes for `resume`; `values` is the value pattern of the plan's
    probes (`InputSpace.pattern_inputs`); with `workers` (a run's
    `costlab.measurement.executors.Workers`), isolated probes go to the run's shared
    workers; `**plan_settings` takes `profile`'s settings of
    the size plan (`points`, `examples`, `rounds`, `seed`, `preprocess`), which do not
    apply here, and refuses any other name."""
    unknown = sorted(set(plan_settings) - _PLAN_SETTINGS)
    if unknown:
        raise CostlabError(f"Unknown setting(s) for a probe session: {', '.join(unknown)}. Received: {unknown}")
    if isolation not in ISOLATIONS:
        raise CostlabError(f"Expected `isolation` to be one of {', '.join(ISOLATIONS)}. Received: {isolation!r}")
    if resume and log_path is None:
        raise CostlabError("`resume=True` needs the `log_path` of the run to resume. Received: log_path=None")
    measure_kw = dict(min_repeats=min_repeats, max_repeats=max_repeats, time_budget_s=probe_time_s)
    if backend is not None and backend not in BACKENDS:
        raise CostlabError(f"Expected `backend` to be one of {', '.join(BACKENDS)}. Received: {backend!r}")
    if isolation == "subprocess" or backend is not None:  # a backend is fixed per process
        executor = (Subprocess if workers is None else workers.executor)(
            adapter, memory_cap_mib=memory_cap_mib or 2 * max_probe_mib,
            timeout_s=timeout_s or max(60.0, 12 * max_probe_s), probes_per_worker=probes_per_worker,
            hazards=hazards, env={"KERAS_BACKEND": backend} if backend else None, **measure_kw)
    else:
        executor = InProcess(adapter, **measure_kw)
    done = read_log(log_path) if resume else None
    pulse = _check_pulse(pulse, space)
    _check_values(values)
    return _Prober(adapter, space, total=total, plan=plan, executor=executor, max_probe_s=max_probe_s,
                   max_probe_mib=max_probe_mib, log_path=log_path, progress=progress, done=done,
                   failures_dir=failures_dir, pulse=pulse, values=values, hazards=hazards)


def profile(model, space: InputSpace | None = None, *, points: int = 7, examples: int = 8,
            rounds: int = 2, seed: int = 0, isolation: str = "inprocess",
            memory_cap_mib: float | None = None, timeout_s: float | None = None,
            probes_per_worker: int | None = None, log_path=None, resume: bool = False,
            preprocess=None, failures_dir=None, progress: bool | None = None, max_probe_s: float = MAX_PROBE_S,
            max_probe_mib: float = MAX_PROBE_MIB, min_repeats: int = 5, max_repeats: int = 30,
            probe_time_s: float = 0.5, backend: str | None = None, pulse: dict | None = None,
            values: str = "random", hazards=None, workers=None) -> Profile:
    """Measure wall time and peak memory of `model` over its input space.

    Runs the explicit log-spaced size plan (`costlab.profiling.plan.plan`) with random values (or
    the value pattern `values`), then `examples` inputs drawn by Hypothesis (`costlab.profiling.strategies.from_input_space`),
    each probe measured by `costlab.measurement.timing.measure` on the adapter's call path.

    Args:
        model: A Keras model or an adapter (`costlab.adapters.adapt`, `load`).
        space: The input space. Defaults to `InputSpace.from_model(model)`.
        points: Log-spaced sizes per dimension slice. Defaults to `7`.
        examples: Hypothesis-drawn inputs measured after the plan. Defaults to `8`.
        rounds: How many times the size plan is measured. Noise on a shared machine is
            correlated in time (a busy minute slows every probe in it), so repeats inside
            one probe cannot remove it; later rounds run the plan's groups in the other
            order with the same inputs, and `costlab.fit` pools the replicates by their
            median. Defaults to `2`.
        seed: Seed for values and Hypothesis draws. Defaults to `0`.
        isolation: `"inprocess"` (fastest) or `"subprocess"`: probes run in worker
            processes under `memory_cap_mib` and `timeout_s`, and a probe that is over
            them or kills its worker is recorded as `oom`, `timeout` or `crashed` (see
            `costlab.measurement.executors`). Defaults to `"inprocess"`.
        memory_cap_mib: Hard cap on the memory one isolated probe may add to its worker.
            Defaults to `2 × max_probe_mib`.
        timeout_s: Longest an isolated probe may take, all its calls together. Defaults
            to `max(60, 12 × max_probe_s)`.
        probes_per_worker: Replace the worker after this many probes (`1`: a fresh
            process per probe). Defaults to `None`.
        log_path: A JSON-lines file each finished probe is appended to, flushed and
            synced before the next starts. Defaults to `None`.
        resume: Take probes already in `log_path` from an earlier run of the same plan
            (same model, space and settings) instead of measuring them again; the table
            comes out as an uninterrupted run's would. Defaults to `False`.
        preprocess: A Python function applied to the inputs before the model, as the
            serving code does: each probe measures `model(preprocess(inputs))`, and the
            memory of `preprocess` line by line (memory_profiler) at the largest probe
            that succeeded is in `Profile.preprocess`. Defaults to `None`.
        failures_dir: Where every failing probe's inputs are kept (`save_failure`);
            the row's `repro` column names the file. Defaults to `None`.
        progress: Show a tqdm progress bar with ETA; `None` shows it only on a terminal.
            Defaults to `None`.
        max_probe_s: A slice stops growing after a probe whose warm median is above it,
            and larger probes are skipped. Defaults to `5.0`.
        max_probe_mib: The same for the peak memory. Defaults to `4096`.
        min_repeats: Fewest warm calls per probe. Defaults to `5`.
        max_repeats: Most warm calls per probe. Defaults to `30`.
        probe_time_s: Time after which a probe stops repeating. Defaults to `0.5`.
        backend: Run a Keras model under this Keras backend (`"tensorflow"`, `"jax"`,
            `"torch"`) in isolated workers started with `KERAS_BACKEND` set; the model is
            rebuilt there from its spec or a saved `.keras` file. Defaults to `None` (the
            backend of this process; with `isolation="inprocess"`, this process).
        pulse: Measure a reference input through the run, `{"sizes": {dim: size},
            "every": n}` (or `{"every": n}` for the space's geometric middle,
            `costlab.profiling.speed.reference_sizes`): a row of kind `pulse` before every n-th
            probe. `costlab.fit` divides times by the machine-speed index they give
            (`costlab.profiling.speed`). `costlab.run` turns it on. Defaults to `None` (no pulses).
        values: The values of every plan probe, one of `costlab.inputs.space.VALUE_PATTERNS`
            (`InputSpace.pattern_inputs`): `"random"`, or the pattern that costs the model most
            (`costlab.profiling.values.scan`, which `costlab.run` runs first). Pulses keep their own
            random reference input. Defaults to `"random"`.
        hazards: A `costlab.measurement.hazards.Hazards` shared with the run's other
            stages: isolated probes take its timeout (the rule from the budgets), and an
            input as large as one that timed out, ran out of memory or crashed there is not
            sent. Defaults to `None` (`timeout_s`, and only this profile's failures).
        workers: A `costlab.measurement.executors.Workers` shared with the run's other
            stages: isolated probes go to its warm workers, which outlive this profile.
            Defaults to `None` (workers of this profile's own, stopped at its end).

    Returns:
        A `Profile`.

    Raises:
        CostlabError: An argument is invalid (the message names it and the value).
        ModelLoadError: A worker could not load the model.
    """
    _check_rounds(rounds)
    _check_values(values)
    adapter, space, describe = _prepare(model, space, preprocess)
    pulse = _check_pulse(pulse, space)
    groups = sweep.plan(space, points=points)
    fuzz = strategies.draw_examples(strategies.from_input_space(space), examples, seed=seed)
    total = rounds * sum(len(g) for g in groups) + len(fuzz)
    plan = plan_id(describe, space, points=points, examples=examples, rounds=rounds, seed=seed,
                   isolation=isolation, max_probe_s=max_probe_s, max_probe_mib=max_probe_mib,
                   min_repeats=min_repeats, max_repeats=max_repeats, time_budget_s=probe_time_s,
                   **({"backend": backend} if backend else {}), **({"pulse": pulse} if pulse else {}),
                   **({"values": values} if values != "random" else {}))
    with session(adapter, space, plan=plan, total=total, isolation=isolation, memory_cap_mib=memory_cap_mib,
                 timeout_s=timeout_s, probes_per_worker=probes_per_worker, log_path=log_path, resume=resume,
                 failures_dir=failures_dir, progress=progress, max_probe_s=max_probe_s,
                 max_probe_mib=max_probe_mib, min_repeats=min_repeats, max_repeats=max_repeats,
                 probe_time_s=probe_time_s, backend=backend, pulse=pulse, values=values,
                 hazards=hazards, workers=workers) as prober:
        prober.run_groups(groups, rounds=rounds, seed=seed)
        for i, inputs in enumerate(fuzz):
            sizes = space.sizes_of(inputs)
            if prober.dominated(sizes):
                prober.bar.update(1)
                continue
            prober.run(sizes, lambda x=inputs: x, "fuzz", 0, seed, f"fuzz/{i}", values="drawn")
        worker_describe = getattr(prober.executor, "describe", None)
    if backend and worker_describe:  # the model as the worker's backend runs it
        describe = worker_describe
    prof = Profile(prober.table(), space, describe, _env.machine())
    prof.resumed = prober.resumed
    prof.not_launched = prober.not_launched
    if preprocess is not None:
        prof.preprocess = adapter.line_memory(prof)
    if prof.memory_fallback:
        warnings.warn(prof.memory_fallback, CostlabWarning, stacklevel=2)
    return prof
