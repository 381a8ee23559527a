"""How fast the machine ran while it measured: a reference probe repeated through a run.

A shared machine does not run at one speed: the same probe can read up to 2× apart a
minute later, for minutes at a time (see the policies benchmark in the README). A cost curve fitted
on such data carries the machine's slow and fast stretches in its scatter, and a
verification run in a faster (or slower) stretch than the profile sees a different
boundary.

So `costlab run` and `costlab verify` measure a *pulse*: one fixed input (the
reference, the same values every time) every few probes (`every`), in a worker of its own
that only ever sees that input (`Subprocess.pulse`: a model can slow down as distinct
shapes accumulate in the probes' worker, and that cost belongs to the probes, not to the
machine).

`costlab run` sizes the reference to the budget (`budget_reference`: the largest input on
the space's diagonal within `REFERENCE_SHARE` of the latency budget), because a host's
load does not slow every input alike. Under a neighbour, a reference of about the boundary
inputs' cost slows nearer to as they do than the space's geometric middle of a few
milliseconds (median miss 0.07 and 0.16 in log over two runs of
`benchmarks/pulse_size.py`, against 0.23 and 0.21), and in the policies benchmark its
index's level matched the boundary inputs' to within 4% for four of five models
(`benchmarks/index_tracking.py`). `costlab.profile` given no sizes measures the space's
geometric middle (`reference_sizes`).

The reference's warm median over time is a machine-speed index:
`index = running median of SMOOTH pulses / median pulse of the run`. Every probe gets the
index interpolated at the moment it finished (`index`), `costlab.fit` fits times divided by it
(cost at the run's median speed), and `costlab.synthesize` multiplies the time curves by
the slow quantile of the index (`Speed.factor`, q = 0.95): the policy plans for the
slowest stretch but one in twenty, and says so (`machine_speed` in the policy). Verify
reads its own pulses against the run's reference time: the speed at which a probe was
measured is known, so the limits' tightness is measured at the speed the policy plans
for, while violations are judged on the raw measurements.

A stretch shorter than the index's smoothing is not divided out: `beyond` marks the rows
next to a raw pulse slower than the planned speed, and the probes `crowded` off a core
(their CPU parallelism fell under their neighbours'), and `costlab.fit` leaves them out of
the time bound's local calibration (they still fit the curve).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from costlab._search import bisect, linear

#: A pulse is measured before every `PULSE_EVERY`-th probe.
PULSE_EVERY = 3
#: Seed of the reference input's values: the same input every time, in every process.
PULSE_SEED = 7919
#: Kind of a pulse row in a profile table (`costlab.fit` leaves them out of the curves).
KIND = "pulse"
#: Quantile of the speed index a policy plans for.
Q = 0.95
#: The index is the running median of this many pulses: one pulse is as noisy as any probe,
#: while the machine's slow stretches last tens of seconds to minutes, and dividing by a
#: single pulse would add its noise to every probe.
SMOOTH = 5
#: Columns holding times, divided by the index when a profile is normalised.
TIME_PREFIXES = ("wall_s_", "cpu_s_", "cold_s")


#: A budget-sized reference costs about this share of the latency budget (p50): near what
#: a boundary input costs once the margin and the planned factor are taken off it.
REFERENCE_SHARE = 0.5
#: Bisection steps along the diagonal when the reference is sized to the budget.
REFERENCE_STEPS = 7


def reference_sizes(space) -> dict:
    """The geometric middle of each dimension's range (`profile`'s reference when it is
    given no sizes; `costlab.run` sizes its reference to the budget: `budget_reference`)."""
    return diagonal(space, 0.5)


def diagonal(space, t: float) -> dict:
    """Sizes at `t` along the diagonal from the smallest input (0) to the largest (1), in
    log size: every dimension at the same share of its log range."""
    out = {}
    for d in space.dims:
        lo, hi = math.log(max(1, d.min)), math.log(max(1, d.max))
        out[d.name] = int(min(d.max, max(d.min, round(math.exp(lo + t * (hi - lo))))))
    return space.snap(out)


def budget_reference(measure, space, target_s: float, *, steps: int = REFERENCE_STEPS) -> tuple[dict, float]:
    """The reference input sized to the latency budget: the largest input on the `diagonal`
    whose warm median (`measure(inputs)`, a result row) is within `target_s`, by bisection
    over `t` in `steps` measurements, with the reference's values (`PULSE_SEED`). Returns its
    sizes and that time; when every measured input is over `target_s` (or failed), the
    smallest measured one that succeeded, and `(the middle's sizes, nan)` when none did.

    The largest within, not the nearest in time: where the cost hardly changes along the
    diagonal (every input far under the target), the nearest would be whichever reading
    the host's noise made dearest, and two runs would pick different references; the
    largest within is then the last step of the bisection, every time.

    Why: the index must move as the model's boundary inputs do, and a small input does not:
    against a neighbour this project controls (`benchmarks/pulse_size.py`), the space's
    geometric middle (a few milliseconds for the zoo models) slowed from 0.7× to 1.5× as
    much as inputs of the boundary's cost, more under one load and less under another,
    while a reference of their cost missed by less (module docstring).
    """
    within, over = None, None

    def under(t: float) -> bool:
        nonlocal within, over
        sizes = diagonal(space, t)
        r = measure(space.random_inputs(sizes, seed=PULSE_SEED))
        s = float(r.get("wall_s_median") or 0.0) if r.get("status") == "ok" else math.inf
        if s <= target_s and s > 0:
            within = (sizes, s)  # t only grows: the last within is the largest
            return True
        if math.isfinite(s) and s > 0:
            over = (sizes, s)  # t only shrinks: the last over is the smallest
        return False

    bisect(under, 0.0, 1.0, mid=linear, steps=steps)
    if within is not None:
        return within
    return over if over is not None else (reference_sizes(space), math.nan)


def is_pulse(table: pd.DataFrame) -> pd.Series:
    """Which rows of a profile table are pulses."""
    if "kind" not in table.columns:
        return pd.Series(False, index=table.index)
    return table["kind"].astype(str) == KIND


#: Kind prefix of the value scan's rows (`costlab.profiling.values.scan`): evidence for the value
#: pattern, measured with several patterns, so they fit no curve.
SCAN_KIND = "values:"


def is_scan(table: pd.DataFrame) -> pd.Series:
    """Which rows of a profile table are the value scan's (`costlab.profiling.values.scan`)."""
    if "kind" not in table.columns:
        return pd.Series(False, index=table.index)
    return table["kind"].astype(str).str.startswith(SCAN_KIND)


def time_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if str(c).startswith(TIME_PREFIXES)]


@dataclass
class Speed:
    """The machine-speed index of a run, from its pulses.

    Attributes:
        reference: Sizes of the reference input.
        reference_s: Median warm time of the pulses (the run's median speed), seconds.
        pulses: How many pulses succeeded.
        quantiles: The index's 5th, 50th and 95th percentiles and maximum (of the running
            median of `SMOOTH` pulses, as the probes are normalised by).
        factor: The index at `q` (at least 1): what a policy multiplies time curves by.
        q: The quantile `factor` is at.
    """

    reference: dict
    reference_s: float
    pulses: int
    quantiles: dict
    factor: float
    q: float = Q

    def to_dict(self) -> dict:
        return {"reference": dict(self.reference), "reference_s": self.reference_s, "pulses": self.pulses,
                "quantiles": dict(self.quantiles), "factor": self.factor, "q": self.q}

    @classmethod
    def from_dict(cls, data: dict) -> Speed:
        return cls(dict(data["reference"]), float(data["reference_s"]), int(data["pulses"]),
                   dict(data["quantiles"]), float(data["factor"]), float(data.get("q", Q)))

    def summary(self) -> str:
        qs = self.quantiles
        return (f"machine speed: {self.pulses} pulses of the reference input {self.reference} "
                f"(median {self.reference_s * 1e3:.2f} ms); its time over the run, relative to the median: "
                f"p5 {qs['p5']:.2f}, p95 {qs['p95']:.2f}, max {qs['max']:.2f}; times are fitted at the median "
                f"speed and the limits hold up to {self.factor:.2f}× it (q = {self.q:g})")


def pulse_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Successful pulse rows of the most common reference sizes, in time order."""
    if "finished_at" not in table.columns:
        return table.iloc[0:0]
    p = table[is_pulse(table) & (table["status"] == "ok")]
    p = p[p["wall_s_median"].astype(float) > 0]
    p = p[p["finished_at"].notna()]
    if p.empty:
        return p
    key = p["input_shapes"].astype(str)
    p = p[key == key.mode().iloc[0]]
    return p.sort_values("finished_at")


def speed(table: pd.DataFrame, *, q: float = Q, min_pulses: int = 3) -> Speed | None:
    """The speed index of a profile table, or `None` with fewer than `min_pulses` pulses."""
    p = pulse_rows(table)
    if len(p) < min_pulses:
        return None
    t = p["wall_s_median"].astype(float).to_numpy()
    ref = float(np.median(t))
    idx = smooth(t) / ref
    dims = [c for c in table.columns[: list(table.columns).index("plan")]] if "plan" in table.columns else []
    sizes = {d: int(p.iloc[0][d]) for d in dims}
    quantiles = {"p5": float(np.quantile(idx, 0.05)), "p50": float(np.median(idx)),
                 "p95": float(np.quantile(idx, 0.95)), "max": float(idx.max())}
    return Speed(sizes, ref, int(len(p)), quantiles, max(1.0, float(np.quantile(idx, q))), q)


def index(table: pd.DataFrame, *, reference_s: float | None = None) -> pd.Series:
    """Each row's speed index: the pulses' running median (`SMOOTH`), interpolated at the
    row's `finished_at`, over `reference_s` (default: the median pulse of the table). 1
    where there are no pulses to read it from."""
    p = pulse_rows(table)
    out = pd.Series(1.0, index=table.index)
    if len(p) < 1 or "finished_at" not in table.columns:
        return out
    t = p["wall_s_median"].astype(float).to_numpy()
    ref = float(np.median(t)) if reference_s is None else float(reference_s)
    at = table["finished_at"].astype(float)
    has = at.notna()
    out[has] = np.interp(at[has].to_numpy(), p["finished_at"].astype(float).to_numpy(), smooth(t)) / ref
    return out


#: A probe whose CPU parallelism (CPU time / wall time) fell under this share of what the
#: model gets at the nearest sizes in the same run was crowded off a core (`crowded`).
CROWDED_SHARE = 0.75
#: ... judged only where the model runs on more than this many cores' worth at those sizes.
CROWDED_MIN_PARALLEL = 1.3
#: Nearest rows (log sizes) a row's parallelism is compared with.
CROWDED_NEIGHBOURS = 10


def beyond(table: pd.DataFrame, *, factor: float | None = None, dims=None) -> pd.Series:
    """Which rows were measured while the machine ran slower than the speed a policy plans
    for: the pulse just before the row or the one just after it (raw, not smoothed) read
    above `factor` × the run's median (default: the table's `Speed.factor`), or the probe
    itself was `crowded` off a core. Such a stretch is often too short for the smoothed
    index (`SMOOTH` pulses) to follow — a few seconds while another process holds a core —
    and it does not slow every size alike (a parallel kernel loses more than the small
    reference input), so dividing by the index does not undo it. `costlab.fit` keeps these
    rows in the curve but leaves them out of the time bound's calibration, as verify
    re-measures a violation found beyond the planned speed. Pulse rows are never flagged."""
    out = crowded(table, dims=dims)
    p = pulse_rows(table)
    if len(p) < 3:
        return out
    t = p["wall_s_median"].astype(float).to_numpy()
    if factor is None:
        sp = speed(table)
        factor = sp.factor if sp is not None else math.inf
    slow = t / float(np.median(t)) > factor
    if not slow.any():
        return out
    at = table["finished_at"].astype(float).to_numpy()
    pt = p["finished_at"].astype(float).to_numpy()
    after = np.searchsorted(pt, at, side="left")  # first pulse finished at or after the row
    before = after - 1
    flag = (slow[np.clip(before, 0, len(t) - 1)] & (before >= 0)) | (slow[np.clip(after, 0, len(t) - 1)] & (after < len(t)))
    return out | pd.Series(flag & ~np.isnan(at) & ~is_pulse(table).to_numpy(), index=table.index)


def crowded(table: pd.DataFrame, *, dims=None) -> pd.Series:
    """Which probes ran with fewer cores than the model gets: CPU time / wall time under
    `CROWDED_SHARE` × the median of the `CROWDED_NEIGHBOURS` nearest successful probes (log
    sizes, each dimension scaled by its range), where that median shows more than
    `CROWDED_MIN_PARALLEL` cores' worth. On a shared 2-core machine another process can hold
    a core for seconds: a parallel kernel's probe then reads 1.00 (one core) where its
    neighbours read 1.8 and takes up to twice as long, while the small reference input,
    hardly parallel, hardly slows. A policy's latencies hold on the cores it was measured
    with (its `cores` budget; the exported container CPU request). All `False` without
    CPU times or dimension columns."""
    out = pd.Series(False, index=table.index)
    if dims is None:
        dims = list(table.columns[: list(table.columns).index("plan")]) if "plan" in table.columns else []
    need = ["cpu_s_median", "wall_s_median", *dims]
    if not dims or any(c not in table.columns for c in need):
        return out
    ok = ~is_pulse(table) & ~is_scan(table)
    if "status" in table.columns:
        ok &= table["status"] == "ok"
    cpu = pd.to_numeric(table["cpu_s_median"], errors="coerce")
    wall = pd.to_numeric(table["wall_s_median"], errors="coerce")
    sizes = table[dims].apply(pd.to_numeric, errors="coerce")
    ok &= (cpu > 0) & (wall > 0) & (sizes > 0).all(axis=1)
    if ok.sum() < CROWDED_NEIGHBOURS:
        return out
    par = (cpu[ok] / wall[ok]).to_numpy()
    logs = np.log(sizes[ok].to_numpy(dtype=float))
    span = np.ptp(logs, axis=0)
    ref = logs / np.where(span > 0, span, 1.0)
    from scipy.spatial import cKDTree

    _, nearest = cKDTree(ref).query(ref, k=CROWDED_NEIGHBOURS)
    usual = np.median(par[nearest], axis=1)
    out[ok] = (usual > CROWDED_MIN_PARALLEL) & (par < CROWDED_SHARE * usual)
    return out


def smooth(t: np.ndarray) -> np.ndarray:
    """Centred running median of `SMOOTH` pulses (fewer at the ends)."""
    return pd.Series(t).rolling(SMOOTH, center=True, min_periods=1).median().to_numpy()


def normalised(table: pd.DataFrame) -> pd.DataFrame:
    """The table as curves are fitted on it: without its pulses and value-scan rows
    (`is_scan`), each row's times divided by its speed index (times at the run's median
    speed) and the index in an `index` column. A table without pulses comes back as it was
    (without those rows), index 1."""
    idx = index(table)
    out = table[~is_pulse(table) & ~is_scan(table)].copy()
    idx = idx[out.index]
    for c in time_columns(out):
        out[c] = out[c].astype(float) / idx
    out["index"] = idx
    return out


def latest(rows, reference_s: float, *, n: int = SMOOTH) -> float:
    """The speed index now: the median of the last `n` successful pulses among `rows`
    (dicts or a DataFrame, in the order measured) over `reference_s`; 1 without pulses."""
    recs = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else rows
    t = [float(r["wall_s_median"]) for r in recs
         if r.get("kind") == KIND and r.get("status") == "ok" and (r.get("wall_s_median") or 0) > 0]
    if not t or not reference_s or reference_s <= 0:
        return 1.0
    return float(np.median(t[-n:])) / float(reference_s)


def planned_scale(policy_data: dict, rows) -> float:
    """What a latency measured now is multiplied by to read it at the speed a policy plans
    for: `machine_speed.factor` / the index now (1 for a policy without `machine_speed`)."""
    ms = (policy_data or {}).get("machine_speed")
    if not ms:
        return 1.0
    return float(ms["factor"]) / latest(rows, ms["reference_s"])
