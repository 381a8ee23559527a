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


def profile(model, space: InputSpace | None = None, *, points: int = 7, examples: int = 8,
            rounds: int = 2, min_repeats: int = 5, max_repeats: int = 30, probe_time_s: float = 0.5,
            max_probe_s: float = 5.0, max_probe_mib: float = 4096, seed: int = 0,
            progress: bool | None = None, log_path=None) -> Profile:
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
        min_repeats: Fewest warm calls per probe. Defaults to `5`.
        max_repeats: Most warm calls per probe. Defaults to `30`.
        probe_time_s: Time after which a probe stops repeating. Defaults to `0.5`.
        max_probe_s: Hard cap: a slice stops growing after a probe whose warm median is
            above it, and a joint point is skipped when a smaller point already was.
            Defaults to `5.0`.
        max_probe_mib: Hard cap on a probe's peak memory, used like `max_probe_s`.
            Defaults to `4096`.
        seed: Seed for values and Hypothesis draws. Defaults to `0`.
        progress: Show a tqdm progress bar; `None` shows it only on a terminal.
            Defaults to `None`.
        log_path: A JSON-lines file each finished probe is appended to and flushed.
            Defaults to `None`.

    Returns:
        A `Profile`.
    """
    from tqdm.auto import tqdm

    from .adapters import adapt

    if not isinstance(rounds, int) or rounds < 1:
        raise CostlabError(f"Expected a positive integer for `rounds`. Received: rounds={rounds!r}")
    adapter = adapt(model)
    space = space or InputSpace.from_model(adapter)
    memory = adapter.memory_source()
    env = _env.environment()
    groups = sweep.plan(space, points=points)
    fuzz = strategies.draw_examples(strategies.from_input_space(space), examples, seed=seed)
    total = rounds * sum(len(g) for g in groups) + len(fuzz)
    rows: list[dict] = []
    over: list[dict] = []  # sizes that crossed a hard cap

    def crossed(row) -> bool:
        if row["status"] != "ok":
            return True
        peak_mib = (row["peak_bytes"] or 0) / 2**20
        return row["wall_s_median"] > max_probe_s or peak_mib > max_probe_mib

    def dominated(sizes) -> bool:
        return any(all(sizes[d] >= o[d] for d in space.dim_names) for o in over)

    def run(sizes, inputs, kind, round_, probe_seed):
        result = measure(lambda: adapter(inputs), memory=memory, min_repeats=min_repeats,
                         max_repeats=max_repeats, time_budget_s=probe_time_s)
        row = _row(space, sizes, inputs, kind, round_, probe_seed, adapter, result, env)
        rows.append(row)
        if log:
            log.write(json.dumps(row) + "\n")
            log.flush()
        bar.update(1)
        return row

    with contextlib.ExitStack() as stack:  # the log is closed however the sweep ends
        log = stack.enter_context(open(log_path, "a")) if log_path else None
        bar = stack.enter_context(tqdm(total=total, desc=f"profile {adapter.name}", unit="probe",
                                       disable=None if progress is None else not progress, leave=False))
        for r in range(rounds):
            # Odd rounds take the groups in reverse order; inside a group sizes always
            # grow, so a slice still stops at the first probe over a hard cap.
            order = list(enumerate(groups))[:: -1 if r % 2 else 1]
            for gi, group in order:
                for pi, probe in enumerate(group):
                    if dominated(probe.sizes):
                        bar.update(len(group) - pi)
                        break
                    probe_seed = seed * 100003 + gi * 1009 + pi
                    inputs = space.random_inputs(probe.sizes, seed=probe_seed)
                    row = run(probe.sizes, inputs, probe.kind, r, probe_seed)
                    if crossed(row):
                        over.append(probe.sizes)
                        bar.update(len(group) - pi - 1)
                        break
        for inputs in fuzz:
            sizes = space.sizes_of(inputs)
            if dominated(sizes):
                bar.update(1)
                continue
            run(sizes, inputs, "fuzz", 0, seed)
    table = pd.DataFrame(rows, columns=[*space.dim_names, *TABLE_COLUMNS])
    table["error"] = table["error"].fillna("")
    return Profile(table, space, adapter.describe(), _env.machine())

