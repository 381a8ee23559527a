"""Profile a model: run the size plan and fuzzed inputs, one measured row per probe."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import _env, strategies, sweep
from .errors import CostlabError
from .measure import COLUMNS, measure
from .space import InputSpace

#: Default hard caps on one probe: a slice stops growing past them, and larger probes are
#: skipped (see `_Prober`); `costlab.refine` never launches a plan predicted to pass them.
MAX_PROBE_S = 5.0
MAX_PROBE_MIB = 4096

#: Columns every profile table has, besides one per dimension.
TABLE_COLUMNS = ("kind", "round", "input_shapes", "dtype", "seed", "call") + COLUMNS + (
    "intra_op_threads", "inter_op_threads")


@dataclass
class Profile:
    """The results of `profile`: one row per probe, plus what was measured and where.

    Attributes:
        table: pandas DataFrame, one row per probe: a column per dimension, then
            `TABLE_COLUMNS` (`status` is `ok` or the failure kind).
        space: The input space the probes were drawn from.
        model: The adapter's description (name, sha256, framework, versions, call path).
        machine: CPU model, cores, memory and OS of the measuring host.
    """

    table: pd.DataFrame
    space: InputSpace
    model: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)

    @property
    def dims(self) -> list[str]:
        return self.space.dim_names

    @property
    def ok(self) -> pd.DataFrame:
        """Rows whose probe succeeded."""
        return self.table[self.table["status"] == "ok"]

    def save(self, out_dir) -> Path:
        """Write `profile.csv` and `profile.json` (space, model, machine) to `out_dir`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(out / "profile.csv", index=False)
        meta = {"space": self.space.to_dict(), "model": self.model, "machine": self.machine}
        (out / "profile.json").write_text(json.dumps(meta, indent=2) + "\n")
        return out / "profile.csv"

    @classmethod
    def load(cls, run_dir) -> Profile:
        run = Path(run_dir)
        meta = json.loads((run / "profile.json").read_text())
        table = pd.read_csv(run / "profile.csv", keep_default_na=False, na_values=[""])
        table["error"] = table["error"].fillna("")
        return cls(table, InputSpace.from_dict(meta["space"]), meta["model"], meta["machine"])


def _row(space, sizes, inputs, kind, round_, seed, adapter, result, env):
    shapes = {k: list(v.shape) for k, v in inputs.items()}
    dtypes = sorted({str(v.dtype) for v in inputs.values()})
    return {**{d: int(sizes[d]) for d in space.dim_names}, "kind": kind, "round": round_,
            "input_shapes": json.dumps(shapes), "dtype": ",".join(dtypes), "seed": seed,
            "call": adapter.call_path, **result,
            "intra_op_threads": env.get("intra_op_threads"),
            "inter_op_threads": env.get("inter_op_threads")}


class _Prober:
    """Measures probes one at a time: rows, the probe log, the progress bar, hard caps.

    A probe that fails, or whose warm median or peak is over a cap, marks its sizes as
    over; any later probe at least as large in every dimension is skipped, since cost
    only grows with size.
    """

    def __init__(self, adapter, space, *, total, min_repeats=5, max_repeats=30,
                 probe_time_s=0.5, max_probe_s=MAX_PROBE_S, max_probe_mib=MAX_PROBE_MIB, log_path=None,
                 progress=None):
        self.adapter, self.space = adapter, space
        self.memory = adapter.memory_source()
        self.env = _env.environment()
        self.measure_kw = dict(min_repeats=min_repeats, max_repeats=max_repeats, time_budget_s=probe_time_s)
        self.max_probe_s, self.max_probe_mib = max_probe_s, max_probe_mib
        self.rows: list[dict] = []
        self.over: list[dict] = []  # sizes that crossed a hard cap
        self._stack = contextlib.ExitStack()
        self.log = self._stack.enter_context(open(log_path, "a")) if log_path else None
        from tqdm.auto import tqdm

        self.bar = self._stack.enter_context(tqdm(
            total=total, desc=f"profile {adapter.name}", unit="probe",
            disable=None if progress is None else not progress, leave=False))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stack.close()  # the log is closed however the sweep ends

    def crossed(self, row) -> bool:
        if row["status"] != "ok":
            return True
        peak_mib = (row["peak_bytes"] or 0) / 2**20
        return row["wall_s_median"] > self.max_probe_s or peak_mib > self.max_probe_mib

    def dominated(self, sizes) -> bool:
        return any(all(sizes[d] >= o[d] for d in self.space.dim_names) for o in self.over)

    def run(self, sizes, inputs, kind, round_, seed) -> dict:
        result = measure(lambda: self.adapter(inputs), memory=self.memory, **self.measure_kw)
        row = _row(self.space, sizes, inputs, kind, round_, seed, self.adapter, result, self.env)
        self.rows.append(row)
        if self.log:
            self.log.write(json.dumps(row) + "\n")
            self.log.flush()
        self.bar.update(1)
        return row

    def run_groups(self, groups, *, rounds, seed):
        """Measure groups of growing sizes `rounds` times, odd rounds in reverse group order.

        Inside a group sizes only grow, so a group stops at its first probe over a cap.
        """
        for r in range(rounds):
            for gi, group in list(enumerate(groups))[:: -1 if r % 2 else 1]:
                for pi, probe in enumerate(group):
                    if self.dominated(probe.sizes):
                        self.bar.update(len(group) - pi)
                        break
                    probe_seed = seed * 100003 + gi * 1009 + pi
                    inputs = self.space.random_inputs(probe.sizes, seed=probe_seed)
                    if self.crossed(self.run(probe.sizes, inputs, probe.kind, r, probe_seed)):
                        self.over.append(probe.sizes)
                        self.bar.update(len(group) - pi - 1)
                        break

    def table(self) -> pd.DataFrame:
        table = pd.DataFrame(self.rows, columns=[*self.space.dim_names, *TABLE_COLUMNS])
        table["error"] = table["error"].fillna("")
        return table


def _check_rounds(rounds):
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise CostlabError(f"Expected a positive integer for `rounds`. Received: rounds={rounds!r}")


def profile(model, space: InputSpace | None = None, *, points: int = 7, examples: int = 8,
            rounds: int = 2, seed: int = 0, log_path=None, progress: bool | None = None,
            **measure_kw) -> Profile:
    """Measure wall time and peak memory of `model` over its input space.

    Runs the explicit log-spaced size plan (`costlab.sweep.plan`) with random values,
    then `examples` inputs drawn by Hypothesis (`costlab.strategies.from_input_space`),
    each probe measured by `costlab.measure.measure` on the adapter's call path.

    Args:
        model: A Keras model or an adapter (`costlab.adapters.adapt`).
        space: The input space. Defaults to `InputSpace.from_model(model)`.
        points: Log-spaced sizes per dimension slice. Defaults to `7`.
        examples: Hypothesis-drawn inputs measured after the plan. Defaults to `8`.
        rounds: How many times the size plan is measured. Noise on a shared machine is
            correlated in time (a busy minute slows every probe in it), so repeats inside
            one probe cannot remove it; later rounds run the plan's groups in the other
            order with the same inputs, and `costlab.fit` pools the replicates by their
            median. Defaults to `2`.
        seed: Seed for values and Hypothesis draws. Defaults to `0`.
        log_path: A JSON-lines file each finished probe is appended to and flushed.
            Defaults to `None`.
        progress: Show a tqdm progress bar; `None` shows it only on a terminal.
            Defaults to `None`.
        **measure_kw: How each probe is measured, and the hard caps:
            `min_repeats` (fewest warm calls, default 5), `max_repeats` (most, default
            30), `probe_time_s` (time after which a probe stops repeating, default 0.5),
            `max_probe_s` (a slice stops growing after a probe whose warm median is
            above it, and larger probes are skipped; default 5.0), `max_probe_mib` (the
            same for peak memory, default 4096).

    Returns:
        A `Profile`.
    """
    from .adapters import adapt

    _check_rounds(rounds)
    adapter = adapt(model)
    space = space or InputSpace.from_model(adapter)
    groups = sweep.plan(space, points=points)
    fuzz = strategies.draw_examples(strategies.from_input_space(space), examples, seed=seed)
    total = rounds * sum(len(g) for g in groups) + len(fuzz)
    with _Prober(adapter, space, total=total, log_path=log_path, progress=progress, **measure_kw) as prober:
        prober.run_groups(groups, rounds=rounds, seed=seed)
        for inputs in fuzz:
            sizes = space.sizes_of(inputs)
            if prober.dominated(sizes):
                prober.bar.update(1)
                continue
            prober.run(sizes, inputs, "fuzz", 0, seed)
    return Profile(prober.table(), space, adapter.describe(), _env.machine())

