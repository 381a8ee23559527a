"""Worst-case values at a fixed shape: a guided search for sponge inputs.

Sizes are not the only lever an attacker has: a model whose work depends on the values
(a loop whose trip count depends on the data, an early exit, a slow path for some
tokens) can be made many times more expensive at the same shape. `search` lets
Hypothesis look for such inputs: it draws values at the given sizes
(`costlab.profiling.strategies.at_sizes`, degenerate patterns included), measures each, and feeds
the measured time to `hypothesis.target()`, whose targeting phase mutates the most
expensive inputs found so far to push further. The result compares the worst input
found with the median of random inputs at the same shape: the sponge ratio.

Example:
    >>> from costlab import worst, zoo, InputSpace
    >>> model = zoo.build("sponge")
    >>> space = InputSpace.from_model(model)
    >>> found = worst.search(model, space, {"batch": 1, "seq_len": 128}, examples=40)
    >>> found.ratio > 5
    True
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from costlab.errors import CostlabError
from costlab.inputs.space import InputSpace


def _describe(inputs: dict) -> str:
    """A short account of an input's values: distinct values and the most frequent one."""
    parts = []
    for name, a in inputs.items():
        flat = a.ravel()
        if flat.size == 0:
            parts.append(f"{name}: empty")
            continue
        vals, counts = np.unique(flat, return_counts=True)
        top = vals[counts.argmax()]
        parts.append(f"{name}: {len(vals)} distinct, most frequent {top!r} ×{counts.max()}/{flat.size}")
    return "; ".join(parts)


@dataclass
class WorstCase:
    """What `search` found.

    Attributes:
        sizes: The fixed shape searched at.
        inputs: The most expensive input found.
        cost_s: Its time per call (min of the repeats).
        random_median_s: Median time of random inputs at the same shape.
        ratio: `cost_s / random_median_s`, the sponge ratio.
        table: Every measured input: `source` (`random` or `search`), `cost_s`, `values`
            (a short description), in order.
    """

    sizes: dict
    inputs: dict
    cost_s: float
    random_median_s: float
    ratio: float
    table: pd.DataFrame

    def summary(self) -> str:
        return (f"worst input at {self.sizes}: {self.cost_s * 1e3:.2f} ms against a random-input median of "
                f"{self.random_median_s * 1e3:.2f} ms (sponge ratio {self.ratio:.1f}× over "
                f"{int((self.table['source'] == 'search').sum())} searched inputs); {_describe(self.inputs)}")

    def save(self, out_dir) -> None:
        """Write `worst_case.json` (figures) and `worst_case.npz` (the input) to `out_dir`."""
        from pathlib import Path

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out / "worst_case.npz", **self.inputs)
        (out / "worst_case.json").write_text(json.dumps(
            {"sizes": self.sizes, "cost_s": self.cost_s, "random_median_s": self.random_median_s,
             "ratio": self.ratio, "searched": int((self.table["source"] == "search").sum()),
             "values": _describe(self.inputs), "arrays": "worst_case.npz"}, indent=2) + "\n")


def search(model, space: InputSpace, sizes: dict, *, examples: int = 60, random: int = 9,
           repeats: int = 3, seed: int = 0, extremes: bool = False) -> WorstCase:
    """Search the values at a fixed shape for the most expensive input.

    Args:
        model: A Keras model or an adapter.
        space: The input space (value domains).
        sizes: `{dimension: size}` to search at.
        examples: Inputs Hypothesis draws and measures (generate, then target phase).
            Defaults to `60`.
        random: Random inputs measured for the baseline median. Defaults to `9`.
        repeats: Calls per input; its cost is the fastest (the least disturbed).
            Defaults to `3`.
        seed: Seed for the random inputs and Hypothesis. Defaults to `0`.
        extremes: Also try NaN/Inf/huge floats (see `costlab.profiling.strategies.values`).
            Defaults to `False`.

    Returns:
        A `WorstCase`.
    """
    from hypothesis import HealthCheck, Phase, given, settings, target
    from hypothesis import seed as hseed

    from costlab.adapters import adapt
    from costlab.profiling import strategies

    for name, n in (("examples", examples), ("random", random), ("repeats", repeats)):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise CostlabError(f"Expected a positive integer for `{name}`. Received: {name}={n!r}")
    adapter = adapt(model)
    strategy = strategies.at_sizes(space, sizes, extremes=extremes)  # validates sizes
    rows: list[dict] = []
    best: dict = {}

    def cost(inputs, source) -> float:
        times = []
        try:
            for _ in range(repeats):
                t0 = time.perf_counter()
                adapter(inputs)
                times.append(time.perf_counter() - t0)
        except Exception as exc:  # a failing input is a finding, not a crash of the search
            rows.append({"source": source, "cost_s": float("nan"), "values": _describe(inputs),
                         "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"})
            return 0.0
        c = float(min(times))
        rows.append({"source": source, "cost_s": c, "values": _describe(inputs), "error": ""})
        if c > best.get("cost", -1.0):
            best.update(cost=c, inputs=inputs)
        return c

    adapter(space.random_inputs(sizes, seed=seed))  # trace and warm at this shape
    baseline = [cost(space.random_inputs(sizes, seed=seed + 1 + i), "random") for i in range(random)]

    @hseed(seed)
    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate, Phase.target],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def _probe(inputs):
        target(cost(inputs, "search"), label="seconds per call")

    _probe()
    med = float(np.median(baseline))
    return WorstCase(dict(sizes), best["inputs"], best["cost"], med, best["cost"] / med if med > 0 else float("inf"),
                     pd.DataFrame(rows, columns=["source", "cost_s", "values", "error"]))


# --- value patterns across sizes: what `costlab run` measures its size plan with ----------
#: A pattern is measured instead of random values when it costs at least this many times
#: random values (time or memory), in the scan and again when confirmed.
VALUE_RATIO = 1.25
#: Second looks: the winning pattern is measured this many times more, each beside a
#: fresh random input, and must read `VALUE_RATIO` in every one.
CONFIRM = 2
#: Where the scan measures, as a fraction of each dimension's log range.
SCAN_AT = (0.5, 0.75)
#: Peaks under this are below the tensor statistics' resolution (see `costlab.adapters.memory`).
_PEAK_FLOOR = 2**20


def scan_sizes(space: InputSpace, at=SCAN_AT) -> list[dict]:
    """Sizes the value scan measures: each dimension at the same fraction of its log range
    (the geometric middle, then three quarters of the way up)."""
    import math

    out = []
    for f in at:
        s = {d.name: int(round(math.exp(math.log(max(1, d.min)) * (1 - f) + math.log(max(1, d.max)) * f)))
             for d in space.dims}
        s = space.snap({d.name: min(max(s[d.name], d.min), d.max) for d in space.dims})
        if s not in out:
            out.append(s)
    return out


@dataclass
class ValueScan:
    """What `scan` found: which value pattern the size plan is measured with.

    Attributes:
        pattern: The pattern chosen (`random` unless another costs at least `threshold`
            times random values, confirmed by `CONFIRM` more looks).
        ratio: Its cost over random values where it was decided (1 for `random`).
        cost: Which cost it raised most, `time` or `memory` (`None` for `random`).
        sizes: Where it was decided (`None` for `random`).
        threshold: `VALUE_RATIO` as used.
        table: Every measurement: `sizes` (JSON), `pattern`, `seed`, `status`, `error`,
            `wall_s_min`, `wall_s_median`, `peak_bytes`, `ratio_time` and `ratio_memory`
            (against the random inputs at the same sizes), `confirm` (the later looks).
        probes: The same measurements as profile rows (`costlab.profiling.table.TABLE_COLUMNS`,
            kind `values:<pattern>`): `costlab.run` puts them in `profile.csv`, where
            `costlab.fit` leaves them out (`costlab.profiling.speed.is_scan`).
    """

    pattern: str
    ratio: float
    cost: str | None
    sizes: dict | None
    threshold: float
    table: pd.DataFrame
    probes: pd.DataFrame | None = None

    def to_dict(self) -> dict:
        """The policy's `value_pattern` section: the pattern and the evidence for it."""
        rows = []
        for _, r in self.table.iterrows():
            rows.append({"sizes": json.loads(r["sizes"]), "pattern": r["pattern"], "status": r["status"],
                         "confirm": bool(r["confirm"]),
                         **{k: (None if pd.isna(r[k]) else float(r[k]))
                            for k in ("wall_s_min", "peak_bytes", "ratio_time", "ratio_memory")}})
        return {"pattern": self.pattern, "chosen_by": "scan", "ratio": float(self.ratio), "cost": self.cost,
                "at": self.sizes, "threshold": float(self.threshold), "scan": rows}

    @classmethod
    def from_dict(cls, data: dict) -> ValueScan:
        rows = [{**r, "sizes": json.dumps(r["sizes"], sort_keys=True), "error": r.get("error", ""),
                 "seed": r.get("seed"), "wall_s_median": r.get("wall_s_median")} for r in data.get("scan", [])]
        return cls(data["pattern"], float(data.get("ratio", 1.0)), data.get("cost"), data.get("at"),
                   float(data.get("threshold", VALUE_RATIO)), pd.DataFrame(rows, columns=_SCAN_COLUMNS))

    def summary(self) -> str:
        first = self.table[~self.table["confirm"].astype(bool)]
        worst = {}
        for _, r in first.iterrows():
            if r["pattern"] != "random" and r["status"] == "ok":
                k = max(r["ratio_time"], r["ratio_memory"])
                worst[r["pattern"]] = max(worst.get(r["pattern"], 0.0), k)
        seen = ", ".join(f"{p} {k:.2f}×" for p, k in sorted(worst.items(), key=lambda kv: -kv[1]))
        failed = sorted(set(first.loc[first["status"] != "ok", "pattern"]))
        fail = f"; failed: {', '.join(failed)}" if failed else ""
        if self.pattern == "random":
            return (f"values: measured with random values (no pattern cost {self.threshold:g}× random values "
                    f"in the scan: {seen or 'none measured'}{fail})")
        return (f"values: measured with the {self.pattern!r} pattern ({PATTERN_WORDS[self.pattern]}): "
                f"{self.ratio:.1f}× the {self.cost} of random values at {self.sizes}, confirmed "
                f"(scan: {seen}{fail}); every limit is set for it")


#: How each pattern is described in summaries.
PATTERN_WORDS = {"random": "random values", "min": "every element the domain's minimum",
                 "max": "every element the domain's maximum", "repeat": "one value repeated",
                 "alternate": "two values in turn"}
_SCAN_COLUMNS = ["sizes", "pattern", "seed", "status", "error", "wall_s_min", "wall_s_median", "peak_bytes",
                 "ratio_time", "ratio_memory", "confirm"]


def scan(model, space: InputSpace | None = None, *, sizes: list[dict] | None = None, patterns=None,
         threshold: float = VALUE_RATIO, seed: int = 0, log_path=None, resume: bool = False,
         **session_kw) -> ValueScan:
    """Find the value pattern that costs the model most, to measure every size with.

    `search` finds the worst values at one shape; a cost curve needs values that are just
    as bad at every shape. So the scan measures each of `costlab.inputs.space.VALUE_PATTERNS` (all
    the minimum, all the maximum, one value repeated, two in turn) against random values
    (two seeds; the larger counts) at `scan_sizes(space)`, through the same isolated
    workers, caps and probe log as `profile` (`session_kw`: `isolation`, `memory_cap_mib`,
    `timeout_s`, ...). The pattern whose time (fastest call) or tensor peak is the most
    times random values' is measured `CONFIRM` (2) more times where it won, each beside a
    fresh random input; it is chosen when every look reads at least `threshold`, else random
    values are (one slow moment of a shared host cannot choose a pattern). A pattern
    that fails is reported, not chosen (the failure is for the guard or the model).

    Args:
        model: A Keras model or an adapter.
        space: The input space. Defaults to the model's own.
        sizes: Where to measure. Defaults to `scan_sizes(space)`.
        patterns: Patterns to try. Defaults to every one of `VALUE_PATTERNS`.
        threshold: Smallest ratio that makes a pattern the one measured. Defaults to
            `VALUE_RATIO` (1.25).
        seed: Seed of the drawn values. Defaults to `0`.
        log_path: Probe log (`profile`'s); with `resume`, probes already in it are kept.
        **session_kw: `costlab.profiling.session.session` settings (isolation, caps, repeats, ...).

    Returns:
        A `ValueScan`.
    """
    from costlab.inputs.space import VALUE_PATTERNS
    from costlab.profiling.session import _prepare, plan_id, session

    if not threshold > 1:
        raise CostlabError(f"Expected a `threshold` above 1. Received: threshold={threshold!r}")
    patterns = [p for p in (patterns or VALUE_PATTERNS) if p != "random"]
    unknown = [p for p in patterns if p not in VALUE_PATTERNS]
    if unknown:
        raise CostlabError(f"Unknown value patterns {unknown}; expected some of {', '.join(VALUE_PATTERNS)}")
    adapter, space, describe = _prepare(model, space, session_kw.pop("preprocess", None))
    sizes = sizes or scan_sizes(space)
    for k in ("points", "examples", "rounds", "pulse", "values"):
        session_kw.pop(k, None)
    plan = plan_id(describe, space, kind="values", sizes=sizes, patterns=patterns, seed=seed,
                   **{k: v for k, v in session_kw.items() if k in ("isolation", "min_repeats", "max_repeats",
                                                                   "probe_time_s")})
    rows = []
    total = len(sizes) * (len(patterns) + 2) + 2 * CONFIRM
    with session(adapter, space, plan=plan, total=total, log_path=log_path, resume=resume, **session_kw) as prober:

        def measure(s, pattern, k, label, confirm=False):
            sd = seed + 7919 * k
            r = prober.run(s, lambda: space.pattern_inputs(s, seed=sd, values=pattern), f"values:{pattern}", 0, sd,
                           f"values/{label}", values=pattern)
            rows.append({"sizes": json.dumps(s, sort_keys=True), "pattern": pattern, "seed": sd,
                         "status": r["status"], "error": r.get("error") or "", "wall_s_min": r.get("wall_s_min"),
                         "wall_s_median": r.get("wall_s_median"), "peak_bytes": r.get("peak_bytes"),
                         "confirm": confirm})
            return rows[-1]

        def ratios(base, r):
            if r["status"] != "ok" or not base:
                return float("nan"), float("nan")
            t = r["wall_s_min"] / max(b["wall_s_min"] for b in base)
            peaks = [b["peak_bytes"] or 0 for b in base]
            m = max(r["peak_bytes"] or 0, _PEAK_FLOOR) / max(max(peaks), _PEAK_FLOOR)
            return float(t), float(m)

        best = (1.0, None, None, None)  # ratio, pattern, cost, sizes index
        for i, s in enumerate(sizes):
            base = [b for b in (measure(s, "random", k, f"{i}/random/{k}") for k in (0, 1)) if b["status"] == "ok"]
            if not base:
                break  # random values fail or are over a cap here: larger sizes too
            for p in patterns:
                r = measure(s, p, 0, f"{i}/{p}")
                r["ratio_time"], r["ratio_memory"] = ratios(base, r)
                for cost, k in (("time", r["ratio_time"]), ("memory", r["ratio_memory"])):
                    if k == k and k > best[0]:
                        best = (k, p, cost, i)
            if prober.crossed(base[0]):
                break
        pattern, ratio, cost, where = "random", 1.0, None, None
        if best[1] is not None and best[0] >= threshold:
            s = sizes[best[3]]
            looks = []
            for j in range(CONFIRM):  # each beside a fresh random input: one slow moment is not enough
                again = measure(s, "random", 2 + j, f"confirm/{j}/random", confirm=True)
                r = measure(s, best[1], 1 + j, f"confirm/{j}/pattern", confirm=True)
                r["ratio_time"], r["ratio_memory"] = ratios([again] if again["status"] == "ok" else [], r)
                looks.append(r["ratio_time"] if best[2] == "time" else r["ratio_memory"])
            # a failed look (NaN) decides against the pattern: Python's min would skip a NaN
            # that follows a number
            k = float("nan") if any(x != x for x in looks) else min(looks)
            if k == k and k >= threshold:
                pattern, ratio, cost, where = best[1], min(best[0], k), best[2], dict(s)
        probes = prober.table()
    table = pd.DataFrame(rows, columns=_SCAN_COLUMNS)
    return ValueScan(pattern, ratio, cost, where, float(threshold), table, probes)
