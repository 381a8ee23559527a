"""The admitted region: per-dimension limits and joint budgets, its frontier, and the worst admitted input under cost curves."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from costlab._search import bisect, linear
from costlab.policy.budgets import Budgets
from costlab.profiling import strategies

if TYPE_CHECKING:
    from costlab.policy.document import Policy


def _frame(dims, sizes: dict) -> pd.DataFrame:
    return pd.DataFrame({d: np.atleast_1d(np.asarray(sizes[d], dtype=float)) for d in dims})


def _log_ints(lo: int, hi: int, n: int) -> np.ndarray:
    if hi <= lo:
        return np.array([lo], dtype=float)
    return np.unique(np.floor(np.geomspace(lo, hi, n) + 1e-9).astype(int)).astype(float)


def joint_value(sizes, dims, offsets=None):
    """A joint budget's measure of input sizes: the product over `dims` of (size + its
    offset), e.g. tokens = batch × seq_len, or (batch + 185) × seq_len for a recurrent
    model whose cost per step does not vanish at batch 1.

    Args:
        sizes: `{dimension: size}` (a number), or a DataFrame with a column per dimension.
        dims: The joint budget's dimensions.
        offsets: `{dimension: offset ≥ 0}`; missing dimensions have 0. Defaults to `None`.

    Returns:
        A float, or an array with one value per row.
    """
    offsets = offsets or {}
    if isinstance(sizes, pd.DataFrame):
        return np.prod([sizes[d].to_numpy(float) + float(offsets.get(d, 0)) for d in dims], axis=0)
    return float(math.prod(float(sizes[d]) + float(offsets.get(d, 0)) for d in dims))


def joint_expression(j: dict) -> str:
    """How a policy's joint budget is computed, e.g. `(batch + 185) × seq_len`."""
    off = j.get("offsets") or {}
    return " × ".join(f"({d} + {off[d]:g})" if off.get(d) else d for d in j["dims"])


class Region:
    """Admitted sizes: `lo ≤ x ≤ hi` per dimension and, per joint group, the product of its
    dimensions (each plus its offset, `joint_value`) ≤ its maximum. Costs grow with every
    size, so the most expensive admitted input lies on the region's upper frontier:
    `frontier()` samples it (a log grid over the box, and points on each joint maximum with
    one of its dimensions solved from the others). With `steps` (`{dimension: m}`, a
    divisor rule), only multiples of `m` are admitted along that dimension."""

    def __init__(self, dims, lo, hi, joint=(), offsets=None, steps=None):
        self.dims, self.lo, self.hi = list(dims), dict(lo), dict(hi)
        self.joint = [(list(g), float(j)) for g, j in joint]
        #: Per joint group (a tuple of its dimensions): `{dimension: offset}`.
        self.offsets = {tuple(g): dict(o) for g, o in (offsets or {}).items() if o}
        self.steps = {d: int(m) for d, m in (steps or {}).items() if int(m) > 1 and d in self.dims}
        self._col = {d: k for k, d in enumerate(self.dims)}

    def _snapped(self, A: np.ndarray) -> np.ndarray:
        """Rows of `A` moved down onto the divisor rules (never under `lo`, a multiple)."""
        if not self.steps:
            return A
        A = A.copy()
        for d, m in self.steps.items():
            c = self._col[d]
            A[:, c] = np.maximum(np.ceil(self.lo[d] / m) * m, np.floor(A[:, c] / m) * m)
        return A

    def off(self, g) -> dict:
        return self.offsets.get(tuple(g), {})

    def _value(self, A: np.ndarray, g) -> np.ndarray:
        o = self.off(g)
        return np.prod(A[:, [self._col[d] for d in g]] + np.array([float(o.get(d, 0)) for d in g]), axis=1)

    def _contains(self, A: np.ndarray) -> np.ndarray:
        lo = np.array([self.lo[d] for d in self.dims], dtype=float)
        hi = np.array([self.hi[d] for d in self.dims], dtype=float)
        ok = ((A >= lo) & (A <= hi)).all(axis=1)
        for d, m in self.steps.items():
            ok &= A[:, self._col[d]] % m == 0
        for g, j in self.joint:
            ok &= self._value(A, g) <= j * (1 + 1e-12) + 1e-9
        return ok

    def value(self, X: pd.DataFrame, g) -> np.ndarray:
        """Joint group `g`'s measure of each row of `X`."""
        return joint_value(X, g, self.off(g))

    def contains(self, X) -> np.ndarray:
        """Which rows of `X` (a DataFrame with a column per dimension) are admitted."""
        return self._contains(np.asarray(X[self.dims], dtype=float))

    def frontier(self, n: int = 24) -> pd.DataFrame:
        k = max(1, len(self.dims))
        n = int(max(5, min(n, 8000 ** (1 / k))))  # ≤ 8000 grid points, 20 per axis in 3-D
        axes = [_log_ints(self.lo[d], self.hi[d], n) for d in self.dims]
        A = np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1)
        parts = [A, np.array([[self.hi[d] for d in self.dims]], dtype=float)]
        for g, j in self.joint:
            o = self.off(g)
            for d in g:  # points on the joint maximum, `d` solved from the others
                others = [self._col[e] for e in g if e != d]
                shift = np.array([float(o.get(e, 0)) for e in g if e != d])
                P = A.copy()
                c = self._col[d]
                P[:, c] = np.minimum(self.hi[d], np.floor(j / np.prod(P[:, others] + shift, axis=1)
                                                          - float(o.get(d, 0)) + 1e-9))
                parts.append(P[P[:, c] >= self.lo[d]])
        A = self._snapped(np.concatenate(parts))
        A = np.unique(A[self._contains(A)], axis=0)
        return pd.DataFrame(A, columns=self.dims)

    def onto(self, sizes: dict) -> dict:
        """`sizes` moved into the region: clipped per axis, then scaled down per joint budget."""
        s = {d: int(min(max(v, self.lo[d]), self.hi[d])) for d, v in sizes.items()}
        for g, j in self.joint:
            o = self.off(g)
            prod = joint_value(s, g, o)
            if prod > j:
                f = (j / prod) ** (1 / len(g))
                for d in g:
                    s[d] = max(self.lo[d], int(math.floor((s[d] + o.get(d, 0)) * f - o.get(d, 0))))
                while joint_value(s, g, o) > j * (1 + 1e-12) + 1e-9:  # rounding: shave the largest
                    d = max(g, key=lambda d: s[d] - self.lo[d])
                    s[d] -= self.steps.get(d, 1)
        for d, m in self.steps.items():
            if d in s:
                s[d] = max(-(-self.lo[d] // m) * m, s[d] // m * m)
        return s

    def log_volume(self, cap: dict, lo: dict, n: int = 40) -> float:
        """Fraction of the space's log-size box `[lo, cap]` this region admits."""
        k = max(1, len(self.dims))
        n = int(max(5, min(n, 60000 ** (1 / k))))
        axes = [np.geomspace(lo[d], cap[d], n) if cap[d] > lo[d] else np.array([lo[d]], float) for d in self.dims]
        A = np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1)
        return float(self._contains(A).mean())


def edge_points(region, dims=None) -> dict:
    """Per dimension: an admitted input with that dimension at its maximum and the others
    as large as the joint budgets allow (the largest product of their log-fractions)."""
    dims = list(region.dims) if dims is None else dims
    X = region.frontier(n=32)
    out = {}
    for d in dims:
        at = X[X[d] == region.hi[d]]
        if at.empty:
            continue
        others = [o for o in dims if o != d]
        # (a Series even when every other dimension is pinned, lo == hi: a region of batch 1..1)
        score = sum((np.log(at[o] / region.lo[o]) / max(np.log(region.hi[o] / region.lo[o]), 1e-9)
                     for o in others if region.hi[o] > region.lo[o]), pd.Series(0.0, index=at.index))
        best = at.loc[score.idxmax()]
        out[d] = {k: int(best[k]) for k in dims}
    return out


def admitted_stream(policy: Policy, n: int, *, seed: int = 0) -> list[tuple[str, dict, dict | None]]:
    """The admitted inputs `verify` measures after its named points, in its order: `n - n // 2`
    frontier points of the region (`Region.frontier(n=32)`, drawn without replacement),
    then Hypothesis draws from the whole input space moved onto the region (clipped per
    axis and scaled down per joint budget, so most land on its frontier). Rows are
    `(kind, sizes, inputs)`: `inputs` is the drawn (cut) input for `"hypothesis"` rows and
    `None` for `"frontier"` rows, which are built with the policy's value pattern. The
    drift check (`costlab.runtime.drift.frontier_drift`) sends the same stream's shapes."""
    space, region = policy.space, policy.region()
    dims = space.dim_names
    frontier = region.frontier(n=32)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(frontier), size=min(n - n // 2, len(frontier)), replace=False) if n > 0 else []
    out = [("frontier", {d: int(frontier.iloc[i][d]) for d in dims}, None) for i in picks]
    for inp in strategies.draw_examples(strategies.from_input_space(space), max(0, n - len(out)), seed=seed):
        s = space.sizes_of(inp)
        t = region.onto(s)
        out.append(("hypothesis", t, space.cut(inp, t) if t != s else inp))
    return out


def _costs_at(cost_models, X: pd.DataFrame) -> tuple[dict, dict]:
    pred = {t: m.predict(X[m.dims_]) for t, m in cost_models.items()}
    upper = {t: m.upper(X[m.dims_]) for t, m in cost_models.items()}
    return pred, upper


#: Regions with at most this many integer inputs are searched input by input (`worst_input`).
EXHAUSTIVE = 4096


def _count(region: Region) -> float:
    """Integer inputs in `region`'s per-axis box."""
    return float(np.prod([region.hi[d] - region.lo[d] + 1 for d in region.dims], dtype=float))


def _every_input(region: Region) -> pd.DataFrame:
    """Every admitted integer input of a small region: where a bound calibrated locally
    (`CostModel.upper_factors`) need not grow along the frontier, nor peak on it."""
    axes = [np.arange(region.lo[d], region.hi[d] + 1) for d in region.dims]
    axes = [a[a % region.steps[d] == 0] if d in region.steps else a for a, d in zip(axes, region.dims, strict=True)]
    X = pd.DataFrame(np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1), columns=region.dims)
    return X[region.contains(X)].reset_index(drop=True)


def worst_input(cost_models, bounded, budgets, region: Region) -> tuple[float, dict, dict, dict]:
    """(largest ratio of upper bound to margin × budget over the region, the input where
    it is reached, predicted and upper costs there per target)."""
    def largest(X):
        ratio = np.broadcast_to(budgets.ratio({t: m.upper(X) for t, m in bounded.items()}), (len(X),))
        i = int(np.argmax(ratio))
        return float(ratio[i]), {d: int(X.iloc[i][d]) for d in region.dims}

    every = _every_input(region) if _count(region) <= EXHAUSTIVE else pd.DataFrame()
    best, at = largest(every if len(every) else region.frontier())
    # The frontier's log grid can step over the worst point of a joint budget with offsets
    # (the maximum of b·s² on (b + 16)·s = J is at b = 16, between grid points): search
    # again on the frontier of a sub-box around it (a subset of the region: all admitted).
    for spread in () if len(every) else (1.3, 1.05):
        hi = {d: max(region.lo[d], min(region.hi[d], int(np.ceil(at[d] * spread)))) for d in region.dims}
        lo = {d: min(hi[d], max(region.lo[d], int(np.floor(at[d] / spread)))) for d in region.dims}
        local = Region(region.dims, lo, hi, region.joint, region.offsets, region.steps)
        X = local.frontier()
        if len(X):
            r, a = largest(X)
            if r > best:
                best, at = r, a
    pred, up = _costs_at(cost_models, _frame(region.dims, at))
    return best, at, {t: float(v[0]) for t, v in pred.items()}, {t: float(v[0]) for t, v in up.items()}


def worst_on_joint(cost_models, budgets, region: Region, dims, jmax) -> dict:
    """The admitted input on a joint budget (its product within 5% of `jmax`) whose
    upper-bound cost is the largest share of its budget: where to measure that budget's
    boundary."""
    budgets = Budgets(**budgets) if isinstance(budgets, dict) else budgets
    bounded = {t: m for t, m in cost_models.items() if t in budgets.targets()}
    X = region.frontier()
    X = X[region.value(X, list(dims)) >= 0.95 * jmax]
    if X.empty:
        X = region.frontier()
    ratio = np.zeros(len(X))
    for t, m in bounded.items():
        key, scale = budgets.targets()[t]
        ratio = np.maximum(ratio, m.upper(X) * scale / getattr(budgets, key))
    row = X.iloc[int(np.argmax(ratio))]
    return {d: int(row[d]) for d in region.dims}


def _binding(bounded, budgets, at: dict, dims) -> str:
    _, up = _costs_at(bounded, _frame(dims, at))
    ratios = {budgets.targets()[t][0]: float(r[0]) for t, r in budgets.ratios(up, margin=False).items()}
    key = max(ratios, key=ratios.get)
    return {"latency_ms": "latency", "latency_p99_ms": "latency p99", "memory_mib": "memory"}[key]


def _largest(feasible, a: float, b: float, steps: int = 40) -> float:
    """Largest t in [a, b] with `feasible(t)`, given `feasible(a)`; bisection."""
    if feasible(b):
        return b
    return bisect(feasible, a, b, mid=linear, steps=steps)[0]
