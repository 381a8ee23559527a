"""The size plan: which input sizes to measure, in which order.

Hypothesis shrinks toward small inputs, so sizes for cost curves come from an explicit
plan: for every dimension a log-spaced slice with the other dimensions held at a low and a
high base value, then joint points over every pair of dimensions (for interactions such as
batch × seq_len). Slices run smallest first so the profiler can stop a slice at the first
size that crosses a hard cap, and joint points are skipped when the slices already predict
they would cross it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from costlab.inputs.space import InputSpace


def log_points(lo: int, hi: int, n: int) -> list[int]:
    """Up to `n` distinct integers spaced evenly in log between `lo` and `hi`, inclusive."""
    if hi <= lo or n <= 1:
        return sorted({lo, hi})
    return sorted({int(round(v)) for v in np.geomspace(lo, hi, n)})


def at_fraction(lo: int, hi: int, f: float) -> int:
    """The integer a fraction `f` of the way from `lo` to `hi` in log space."""
    return int(round(lo * (hi / lo) ** f))


@dataclass(frozen=True)
class Probe:
    """One planned input size: `sizes` per dimension and the plan part it belongs to."""

    sizes: dict
    kind: str  # "slice:<dim>" or "joint"


def plan(space: InputSpace, *, points: int = 7, bases=(0.25, 0.75)) -> list[list[Probe]]:
    """The sweep plan as ordered groups; within a group sizes only grow.

    Args:
        space: The input space.
        points: Log-spaced sizes per dimension slice. Defaults to `7`.
        bases: Where the other dimensions sit during a slice, as log fractions of
            their ranges. Defaults to `(0.25, 0.75)`.

    Returns:
        Groups of probes: one per (dimension, base) slice, then one group per pair of
        dimensions with the joint grid at log fractions {0.5, 1} × {0.5, 1}. No two
        probes have the same sizes.
    """
    dims = space.dims
    groups: list[list[Probe]] = []
    seen = set()
    for d in dims:
        for b in bases:
            base = {o.name: at_fraction(o.min, o.max, b) for o in dims}
            key = (d.name, tuple(v for k, v in base.items() if k != d.name))
            if key in seen:  # one-dimensional spaces: every base gives the same slice
                continue
            seen.add(key)
            groups.append([Probe({**base, d.name: v}, f"slice:{d.name}")
                           for v in log_points(d.min, d.max, points)])
    mid = {o.name: at_fraction(o.min, o.max, 0.5) for o in dims}
    for a, b in itertools.combinations(dims, 2):
        grid = []
        for fa, fb in itertools.product((0.5, 1.0), repeat=2):
            grid.append(Probe({**mid, a.name: at_fraction(a.min, a.max, fa),
                               b.name: at_fraction(b.min, b.max, fb)}, "joint"))
        groups.append(grid)
    if any(d.multiple_of > 1 for d in dims):  # a divisor rule: only its multiples
        groups = [[Probe(space.snap(p.sizes), p.kind) for p in g] for g in groups]
    return _unique(groups)


def _unique(groups: list[list[Probe]]) -> list[list[Probe]]:
    """Drop probes whose sizes an earlier probe already has (a dimension with min == max
    makes slices coincide); a group left empty is dropped."""
    seen, out = set(), []
    for g in groups:
        kept = []
        for p in g:
            key = tuple(sorted(p.sizes.items()))
            if key not in seen:
                seen.add(key)
                kept.append(p)
        if kept:
            out.append(kept)
    return out
