"""Worst-case values at a fixed shape: a guided search for sponge inputs.

Sizes are not the only lever an attacker has: a model whose work depends on the values
(a loop whose trip count depends on the data, an early exit, a slow path for some
tokens) can be made many times more expensive at the same shape. `search` lets
Hypothesis look for such inputs: it draws values at the given sizes
(`costlab.strategies.at_sizes`, degenerate patterns included), measures each, and feeds
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

from .errors import CostlabError
from .space import InputSpace


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
        extremes: Also try NaN/Inf/huge floats (see `costlab.strategies.values`).
            Defaults to `False`.

    Returns:
        A `WorstCase`.
    """
    from hypothesis import HealthCheck, Phase, given, settings, target
    from hypothesis import seed as hseed

    from . import strategies
    from .adapters import adapt

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
