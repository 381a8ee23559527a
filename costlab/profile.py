"""Profile a model: run the size plan and fuzzed inputs, one measured row per probe."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import _env, strategies, sweep
from .errors import CostlabError, CostlabWarning
from .isolation import EXTRA_COLUMNS, ISOLATIONS, InProcess, Subprocess
from .measure import COLUMNS
from .space import InputSpace

#: Default hard caps on one probe: a slice stops growing past them, and larger probes are
#: skipped (see `_Prober`); `costlab.refine` never launches a plan predicted to pass them.
MAX_PROBE_S = 5.0
MAX_PROBE_MIB = 4096
#: Keras backends a profile can run under (`backend=`), each in its own worker processes.
BACKENDS = ("tensorflow", "jax", "torch")
#: A probe's cost predicted from its slice is multiplied by this before it is compared with
#: the caps: the slope of two noisy points is uncertain.
PREDICTION_SAFETY = 1.5

#: Columns every profile table has, besides one per dimension.
TABLE_COLUMNS = ("plan", "probe", "kind", "round", "input_shapes", "dtype", "seed", "values", "call") + COLUMNS + \
    EXTRA_COLUMNS + ("intra_op_threads", "inter_op_threads", "finished_at", "env", "repro")


@dataclass
class Profile:
    """The results of `profile`: one row per probe, plus what was measured and where.

    Attributes:
        table: pandas DataFrame, one row per probe: a column per dimension, then
            `TABLE_COLUMNS` (`status` is `ok` or the failure kind).
        space: The input space the probes were drawn from.
        model: The adapter's description (name, sha256, framework, versions, call path).
        machine: CPU model, cores, memory and OS of the measuring host.
        preprocess: Memory of the `preprocess` function line by line, when one was given.
        resumed: How many rows were taken from the log of an interrupted run.
        not_launched: Probes never run because the data before them predicted them over
            a hard cap: sizes, predicted seconds and MiB, which cap.
    """

    table: pd.DataFrame
    space: InputSpace
    model: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)
    preprocess: pd.DataFrame | None = None
    resumed: int = 0
    not_launched: list = field(default_factory=list)

    @property
    def dims(self) -> list[str]:
        return self.space.dim_names

    @property
    def ok(self) -> pd.DataFrame:
        """Rows whose probe succeeded."""
        return self.table[self.table["status"] == "ok"]

    @property
    def failures(self) -> pd.DataFrame:
        """Rows whose probe failed (`error`, `oom`, `timeout`, `crashed`)."""
        return self.table[self.table["status"] != "ok"]

    def calibration(self, *, min_mib: float = 16.0) -> dict:
        """How the process's memory relates to the framework's tensor peak.

        A policy budgets tensors per request, a container limit budgets the process:
        its resident size before any probe plus its growth. The growth over the RSS before a
        probe (VmHWM, `process_delta_bytes`) is compared with the tensor peak on probes
        whose tensor peak is at least `min_mib` and is the largest its worker has seen so
        far (smaller ones are served from memory the allocator already holds, so their
        growth reads ~0).

        Returns:
            `{"rows", "ratio_median", "ratio_max", "baseline_rss_mib", "process_peak_mib"}`:
            rows used, process growth / tensor peak (median and largest), the workers'
            RSS before their first probe, the largest process high-water mark; ratios
            are `None` without qualifying rows.
        """
        t = self.table
        need = {"peak_bytes", "process_delta_bytes", "worker_pid", "rss_before_bytes"}
        if not need <= set(t.columns) or t.empty:
            return {"rows": 0, "ratio_median": None, "ratio_max": None, "baseline_rss_mib": None,
                    "process_peak_mib": None}
        ok = t[(t["status"] == "ok") & t["peak_bytes"].notna() & (t["memory_source"] != "process_vmhwm")]
        best, new_high = {}, []
        for pid, peak in zip(ok["worker_pid"], ok["peak_bytes"], strict=True):
            new_high.append(peak > best.get(pid, 0))
            best[pid] = max(best.get(pid, 0), peak)
        use = ok[pd.Series(new_high, index=ok.index, dtype=bool) & (ok["peak_bytes"] >= min_mib * 2**20)]
        ratio = (use["process_delta_bytes"] / use["peak_bytes"]).astype(float)
        first = t[t["worker_probe"] == 0]["rss_before_bytes"].dropna()
        return {"rows": int(len(use)),
                "ratio_median": float(ratio.median()) if len(use) else None,
                "ratio_max": float(ratio.max()) if len(use) else None,
                "baseline_rss_mib": float(first.median() / 2**20) if len(first) else None,
                "process_peak_mib": float(t["process_peak_bytes"].max() / 2**20)
                if t["process_peak_bytes"].notna().any() else None}

    @property
    def memory_fallback(self) -> str | None:
        """Why this Keras/TensorFlow profile's memory is the process high-water mark, or `None`.

        A TensorFlow model's peaks should be tensor peaks from the allocator's statistics
        (`costlab.memory.TFAllocatorPeak`). Where a worker could not read them (TF runs
        without oneDNN, e.g. `TF_ENABLE_ONEDNN_OPTS=0`) each probe reads the process's
        high-water mark over its RSS before the call instead: memory TF's allocator already
        holds reads ~0 and a worker's first call reads its warm-up, so the memory curve
        and the limits it sets are unreliable. Plain callables and candle (no allocator
        statistics) and Keras on JAX or torch (none on the CPU) use the process peak by design
        and get `None`.
        """
        versions = (self.model or {}).get("versions") or {}
        if (self.model or {}).get("framework") != "keras" or versions.get("backend") != "tensorflow":
            return None
        t = self.table
        if "memory_source" not in t.columns:
            return None
        ok = t[t["status"] == "ok"]
        fell = ok[ok["memory_source"] == "process_vmhwm"]
        if fell.empty:
            return None
        flag = sorted({str(json.loads(e).get("TF_ENABLE_ONEDNN_OPTS", "unset"))
                       for e in fell["env"].dropna()}) if "env" in fell.columns else []
        return (f"{len(fell)} of {len(ok)} probes read memory as the process high-water mark, not TensorFlow's "
                f"tensor peak: the allocator statistics were unavailable in their workers "
                f"(TF_ENABLE_ONEDNN_OPTS={'/'.join(flag) or 'unknown'}; TensorFlow keeps them only with oneDNN on). "
                "Memory already held by TF's allocator reads ~0 there, so the memory curve and its limits are "
                "unreliable: measure again with TF_ENABLE_ONEDNN_OPTS=1 (costlab's default)")

    def _repr_html_(self):
        """Probes by status, dimension ranges, the first rows and a picture, for notebooks."""
        from .display import profile_html

        return profile_html(self)

    def save(self, out_dir) -> Path:
        """Write `profile.csv` and `profile.json` (space, model, machine, calibration) to `out_dir`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(out / "profile.csv", index=False)
        if self.preprocess is not None:
            self.preprocess.to_csv(out / "preprocess_memory.csv", index=False)
        meta = {"space": self.space.to_dict(), "model": self.model, "machine": self.machine,
                "calibration": self.calibration(), "not_launched": self.not_launched}
        (out / "profile.json").write_text(json.dumps(meta, indent=2) + "\n")
        return out / "profile.csv"

    @classmethod
    def load(cls, run_dir) -> Profile:
        run = Path(run_dir)
        meta = json.loads((run / "profile.json").read_text())
        table = pd.read_csv(run / "profile.csv", keep_default_na=False, na_values=[""])
        table["error"] = table["error"].astype(object).fillna("")
        return cls(table, InputSpace.from_dict(meta["space"]), meta["model"], meta["machine"],
                   not_launched=meta.get("not_launched", []))


def _row(space, sizes, inputs, kind, round_, seed, probe_id, plan, call, result, env, memory_source,
         values="random"):
    shapes = {k: list(v.shape) for k, v in inputs.items()}
    dtypes = sorted({str(v.dtype) for v in inputs.values()})
    row = {**{d: int(sizes[d]) for d in space.dim_names}, "plan": plan, "probe": probe_id, "kind": kind,
           "round": round_, "input_shapes": json.dumps(shapes), "dtype": ",".join(dtypes), "seed": seed,
           "values": values, "call": call, **dict.fromkeys(COLUMNS + EXTRA_COLUMNS), **result,
           "intra_op_threads": (env or {}).get("intra_op_threads"),
           "inter_op_threads": (env or {}).get("inter_op_threads"),
           "finished_at": time.time(), "env": json.dumps(env or {}, sort_keys=True)}
    row["error"] = row["error"] or ""
    row["memory_source"] = row["memory_source"] or memory_source
    return row


def read_log(path) -> list[dict]:
    """Rows of a probe log; a line cut short by a kill (the last one) is ignored."""
    rows = []
    p = Path(path)
    if not p.is_file():
        return rows
    with open(p) as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "plan" in row and "probe" in row:
                rows.append(row)
    return rows


class _Prober:
    """Measures probes one at a time: rows, the probe log, the progress bar, hard caps.

    A probe that runs out of memory, times out or crashes, or whose warm median or peak is
    over a cap, marks its sizes as over; any later probe at least as large in every
    dimension is skipped, since cost only grows with size. An input the model refuses
    (status `error`) does not: validity is not monotone in size (`costlab.validity`). With `done` (rows of an earlier, interrupted run of the same
    plan), a probe already logged is taken from it instead of measured again.
    """

    def __init__(self, adapter, space, *, total, plan, executor, max_probe_s=MAX_PROBE_S,
                 max_probe_mib=MAX_PROBE_MIB, log_path=None, progress=None, done=None, failures_dir=None,
                 pulse=None, values="random"):
        self.adapter, self.space, self.plan, self.executor = adapter, space, plan, executor
        self.values = values  # the value pattern of plan probes (`InputSpace.pattern_inputs`)
        # (reference sizes, every): a pulse before every `every`-th probe (costlab.speed)
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
        from .speed import KIND, PULSE_SEED

        self._measure(sizes, lambda: self.space.random_inputs(sizes, seed=PULSE_SEED), KIND, 0, PULSE_SEED,
                      f"pulse/{k // every}", keep=False, values="random", pulse=True)

    def run(self, sizes, make_inputs, kind, round_, seed, probe_id, values=None) -> dict:
        """Measure one probe (after a pulse when one is due). `values` names the inputs'
        value pattern in the table (default: the session's)."""
        self._maybe_pulse()
        row = self._measure(sizes, make_inputs, kind, round_, seed, probe_id, values=values)
        self.bar.update(1)
        return row

    def _measure(self, sizes, make_inputs, kind, round_, seed, probe_id, keep=True, values=None,
                 pulse=False) -> dict:
        if probe_id in self.done:
            row = self.done[probe_id]
            self.resumed += keep
        else:
            inputs = make_inputs()
            # a pulse goes to the executor's reference worker (`Subprocess.pulse`)
            result = (self.executor.pulse if pulse else self.executor.probe)(inputs)
            row = _row(self.space, sizes, inputs, kind, round_, seed, probe_id, self.plan,
                       self.adapter.call_path, result, self.executor.env, self.executor.memory_source,
                       values=values or self.values)
            if row["status"] != "ok" and self.failures_dir is not None and keep:
                row["repro"] = save_failure(self.failures_dir, row, inputs, self.space.dim_names)
            if self.log:  # on disk before the next probe starts
                self.log.write(json.dumps(row) + "\n")
                self.log.flush()
                os.fsync(self.log.fileno())
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


#: Inputs of a failing probe up to this size are saved as arrays; larger ones by their recipe.
MAX_SAVED_BYTES = 64 * 2**20


def save_failure(directory: Path, row: dict, inputs: dict, dims=()) -> str:
    """Keep a failing probe reproducible: `<plan>-<probe>.npz` with its input arrays (up to
    `MAX_SAVED_BYTES`; plan probes are also reproducible from their sizes and seed) and a
    line in `failures.jsonl`. Returns the file name of the arrays, or `""` when not saved."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{row['plan']}-{row['probe'].replace('/', '-')}.npz"
    saved = ""
    if sum(v.nbytes for v in inputs.values()) <= MAX_SAVED_BYTES:
        import numpy as np

        np.savez_compressed(directory / name, **inputs)
        saved = name
    entry = {k: row[k] for k in ("plan", "probe", "kind", "status", "error", "input_shapes", "seed")}
    entry["arrays"] = saved  # relative to `directory`; load with `load_failure`
    values = row.get("values") or "random"
    entry["recipe"] = (None if row["kind"] == "fuzz" else
                       {"sizes": {d: row[d] for d in dims}, "seed": row["seed"], "values": values,
                        "how": f"InputSpace.pattern_inputs(sizes, seed=seed, values={values!r})"})
    with open(directory / "failures.jsonl", "a") as fh:
        fh.write(json.dumps(entry) + "\n")
    return saved


def load_failure(path) -> dict:
    """The input arrays of a failing probe saved by a run (`failures/*.npz`)."""
    import numpy as np

    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def plan_id(describe: dict, space: InputSpace, **settings) -> str:
    """A short hash naming everything that decides which probes a profile runs and how."""
    blob = json.dumps({"model": describe.get("sha256"), "call": describe.get("call"),
                       "space": space.to_dict(), **settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _check_pulse(pulse, space) -> dict | None:
    """`{"sizes", "every"}` with the sizes filled in, or `None`; a clear error otherwise."""
    if pulse is None or pulse is False:
        return None
    from .speed import PULSE_EVERY, reference_sizes

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
    from .space import VALUE_PATTERNS

    if values not in VALUE_PATTERNS:
        raise CostlabError(f"Expected `values` to be one of {', '.join(VALUE_PATTERNS)}. Received: {values!r}")


def _check_rounds(rounds):
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise CostlabError(f"Expected a positive integer for `rounds`. Received: rounds={rounds!r}")


def _prepare(model, space, preprocess):
    from .adapters import adapt

    adapter = adapt(model)
    space = space or InputSpace.from_model(adapter)
    if preprocess is not None and not isinstance(adapter, Preprocessed):
        adapter = Preprocessed(adapter, preprocess)
    return adapter, space, adapter.describe()


def session(adapter, space: InputSpace, *, plan: str, total: int, isolation: str = "inprocess",
            memory_cap_mib=None, timeout_s=None, probes_per_worker=None, log_path=None, resume=False,
            failures_dir=None, progress=None, max_probe_s=MAX_PROBE_S, max_probe_mib=MAX_PROBE_MIB,
            min_repeats=5, max_repeats=30, probe_time_s=0.5, backend=None, pulse=None, values="random",
            **_ignored) -> _Prober:
    """A context measuring probes one at a time as `profile` does (same isolation, caps,
    log, resume and failure keeping): for adaptive plans such as `costlab.refine.boundary`.
    `plan` names the probes for `resume`; `values` is the value pattern of the plan's
    probes (`InputSpace.pattern_inputs`); `**_ignored` takes `profile`'s other settings."""
    if isolation not in ISOLATIONS:
        raise CostlabError(f"Expected `isolation` to be one of {', '.join(ISOLATIONS)}. Received: {isolation!r}")
    if resume and log_path is None:
        raise CostlabError("`resume=True` needs the `log_path` of the run to resume. Received: log_path=None")
    measure_kw = dict(min_repeats=min_repeats, max_repeats=max_repeats, time_budget_s=probe_time_s)
    if backend is not None and backend not in BACKENDS:
        raise CostlabError(f"Expected `backend` to be one of {', '.join(BACKENDS)}. Received: {backend!r}")
    if isolation == "subprocess" or backend is not None:  # a backend is fixed per process
        executor = Subprocess(adapter, memory_cap_mib=memory_cap_mib or 2 * max_probe_mib,
                              timeout_s=timeout_s or max(60.0, 12 * max_probe_s),
                              probes_per_worker=probes_per_worker,
                              env={"KERAS_BACKEND": backend} if backend else None, **measure_kw)
    else:
        executor = InProcess(adapter, **measure_kw)
    done = read_log(log_path) if resume else None
    pulse = _check_pulse(pulse, space)
    _check_values(values)
    return _Prober(adapter, space, total=total, plan=plan, executor=executor, max_probe_s=max_probe_s,
                   max_probe_mib=max_probe_mib, log_path=log_path, progress=progress, done=done,
                   failures_dir=failures_dir, pulse=pulse, values=values)


def profile(model, space: InputSpace | None = None, *, points: int = 7, examples: int = 8,
            rounds: int = 2, seed: int = 0, isolation: str = "inprocess",
            memory_cap_mib: float | None = None, timeout_s: float | None = None,
            probes_per_worker: int | None = None, log_path=None, resume: bool = False,
            preprocess=None, failures_dir=None, progress: bool | None = None, max_probe_s: float = MAX_PROBE_S,
            max_probe_mib: float = MAX_PROBE_MIB, min_repeats: int = 5, max_repeats: int = 30,
            probe_time_s: float = 0.5, backend: str | None = None, pulse: dict | None = None,
            values: str = "random") -> Profile:
    """Measure wall time and peak memory of `model` over its input space.

    Runs the explicit log-spaced size plan (`costlab.sweep.plan`) with random values (or
    the value pattern `values`), then `examples` inputs drawn by Hypothesis (`costlab.strategies.from_input_space`),
    each probe measured by `costlab.measure.measure` on the adapter's call path.

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
            `costlab.isolation`). Defaults to `"inprocess"`.
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
            `costlab.speed.reference_sizes`): a row of kind `pulse` before every n-th
            probe. `costlab.fit` divides times by the machine-speed index they give
            (`costlab.speed`). `costlab.run` turns it on. Defaults to `None` (no pulses).
        values: The values of every plan probe, one of `costlab.space.VALUE_PATTERNS`
            (`InputSpace.pattern_inputs`): `"random"`, or the pattern that costs the model most
            (`costlab.worst.scan`, which `costlab.run` runs first). Pulses keep their own
            random reference input. Defaults to `"random"`.

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
                 probe_time_s=probe_time_s, backend=backend, pulse=pulse, values=values) as prober:
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


class Preprocessed:
    """An adapter calling `model(preprocess(inputs))`: what a serving function runs."""

    def __init__(self, adapter, preprocess):
        if not callable(preprocess):
            raise CostlabError(f"Expected a callable for `preprocess`. Received: {preprocess!r}")
        self.inner, self.fn = adapter, preprocess
        self.name, self.framework = adapter.name, getattr(adapter, "framework", None)
        self.call_path = f"{getattr(preprocess, '__name__', 'preprocess')}+{adapter.call_path}"

    def __call__(self, inputs):
        return self.inner(self.fn(inputs))

    def signature(self):
        return self.inner.signature()

    def memory_source(self):
        return self.inner.memory_source()

    def describe(self) -> dict:
        return {**self.inner.describe(), "call": self.call_path,
                "preprocess": f"{getattr(self.fn, '__module__', '?')}:{getattr(self.fn, '__qualname__', '?')}"}

    def line_memory(self, prof: Profile) -> pd.DataFrame:
        """Memory of `preprocess` line by line (memory_profiler) at the largest ok probe.

        Columns: `file`, `line`, `code`, `increment_mib`, `mem_usage_mib`, `occurrences`.
        """
        import linecache

        from memory_profiler import LineProfiler

        cols = ["file", "line", "code", "increment_mib", "mem_usage_mib", "occurrences"]
        ok = prof.ok
        if ok.empty:
            return pd.DataFrame(columns=cols)
        biggest = ok.loc[ok[prof.dims].prod(axis=1).idxmax()]
        inputs = prof.space.random_inputs({d: int(biggest[d]) for d in prof.dims}, seed=int(biggest["seed"]))
        lp = LineProfiler(backend="psutil")
        lp(self.fn)(inputs)
        rows = []
        for filename, lines in lp.code_map.items():
            for lineno, m in lines:
                if m:
                    rows.append({"file": filename, "line": lineno,
                                 "code": linecache.getline(filename, lineno).rstrip(),
                                 "increment_mib": float(m[0]), "mem_usage_mib": float(m[1]),
                                 "occurrences": int(m[2])})
        return pd.DataFrame(rows, columns=cols)
