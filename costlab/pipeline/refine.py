"""Measure more where the data cannot decide: the step between cost curves and policy.

A cost is *unfitted* after the first profile when too few probes cleared its measurement
resolution (an MLP's peak memory at batch ≤ 64 stays under 1 MiB). `refine` then widens
the dimensions, one at a time: it measures the whole size plan again over the new region
only (the old maximum to 8×, 4× or 2× it; the other dimensions keep their
range), so the sizes stay log-uniform over the whole range, and fits every cost on all
the data.

Nothing is launched blind. The first fit predicts, with `upper()` (the steepest class
still consistent), every probe of the new plan: a plan whose worst probe is over a hard
cap, or whose total time (cold call, warm-up and the fewest repeats, every round) is over
`budget_s`, is not measured; a smaller factor is tried, and failing all the summary says
why. The policy still admits only the range the user asked to explore (see
`costlab.synthesize`); the wider sizes only identify the growth class.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from costlab._search import bisect, log_int
from costlab.curves import fit_profile_notes
from costlab.profiling import plan as sweep
from costlab.profiling.session import (
    MAX_PROBE_MIB,
    MAX_PROBE_S,
    PREDICTION_SAFETY,
    Profile,
    _prepare,
    plan_id,
    profile,
    session,
)


def _predict(prof: Profile, models: dict, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Predicted (seconds, MiB) per row of `X`: the fitted curves (what was measured
    predicts the next measurement) times `PREDICTION_SAFETY`, or, without a curve, the
    largest measurement grown with the square of the element count.

    Not the upper bound: beyond the data it follows the steepest class the data allow, and
    a plan predicted from it (keras_hub BERT: 1697 s for one more round) is never measured,
    so the class is never decided. Each probe is still guarded as it runs: the prober
    skips one its own slice predicts over a hard cap, and a slice stops at its first probe
    over one (`costlab.profile`)."""
    ok = prof.table[prof.table["status"] == "ok"]
    growth = (X[prof.dims].prod(axis=1).to_numpy(float) / float(ok[prof.dims].prod(axis=1).max())) ** 2
    seconds = (models["wall_s_median"].predict(X) * PREDICTION_SAFETY if "wall_s_median" in models
               else float(ok["wall_s_median"].max()) * growth)
    mib = (models["peak_bytes"].predict(X) / 2**20 * PREDICTION_SAFETY if "peak_bytes" in models
           else float(ok["peak_bytes"].max()) / 2**20 * growth)
    return np.maximum(np.asarray(seconds, float), 0.0), np.maximum(np.asarray(mib, float), 0.0)


def widening(prof: Profile, models: dict, dim: str, *, factors=(8, 4, 2), budget_s: float = 60.0,
              ceiling: dict | None = None, **profile_kw):
    """The largest factor by which `dim`'s range can grow without a predicted breach.

    Every probe of the plan over the new region (`dim` from its maximum to factor × it, at
    most `ceiling[dim]`: the model's validity maximum) is predicted (`_predict`); the factor is refused when a probe is over a hard cap or the
    plan's total time (cold call, warm-up, fewest repeats, every round) is over `budget_s`.

    Returns:
        `(factor, region, predicted_seconds)`, or `None` when even the smallest factor is refused.
    """
    max_s = profile_kw.get("max_probe_s", MAX_PROBE_S)
    max_mib = profile_kw.get("max_probe_mib", MAX_PROBE_MIB)
    calls = profile_kw.get("min_repeats", 5) + 2
    top = prof.space.dim(dim).max
    for f in factors:
        hi = min(top * f, (ceiling or {}).get(dim, top * f))
        if hi <= top:
            return None  # at the model's validity limit: nothing larger to measure
        region = prof.space.with_bounds(**{dim: (top, hi)})
        sizes = pd.DataFrame([p.sizes for g in sweep.plan(region, points=profile_kw.get("points", 7)) for p in g])
        seconds, mib = _predict(prof, models, sizes)
        total = float(seconds.sum()) * calls * profile_kw.get("rounds", 2)
        if seconds.max() <= max_s and mib.max() <= max_mib and total <= budget_s:
            return f, region, total
    return None


def refine(model, prof: Profile, models: dict, skipped: dict, *, factors=(8, 4, 2), passes: int = 2,
           budget_s: float = 60.0, ceiling: dict | None = None, **profile_kw):
    """Widen dimensions while a cost is unfitted, one at a time, up to `passes` times each.

    Dimensions whose power is merely undetermined are not widened: on the zoo models that
    cost up to 5× the run time and helped one class while another got worse (allocator
    steps at the new sizes); the run summary names them and the `--dim` range to measure.

    Args:
        model: The model or adapter `prof` was measured on.
        prof: The first profile.
        models: `{target: CostModel}` fitted on it.
        skipped: `{target: reason}` of costs that could not be fitted.
        factors: Widening factors tried, largest first. Defaults to `(8, 4, 2)`.
        passes: Most widenings of one dimension. Defaults to `2`.
        budget_s: Most predicted time for one widening's plan. Defaults to `60.0`.
        ceiling: `{dimension: largest size}` never measured past (the model's validity
            maxima). Defaults to `None`.
        **profile_kw: Passed to `costlab.profile` (points, rounds, caps, log_path, ...).

    Returns:
        `(profile, models, skipped, notes)`: every probe measured, the fits on all of them,
        the costs still unfitted, and `{dimension: what was done}`.
    """
    notes: dict[str, str] = {}
    for _ in range(passes):
        wanted = [d for d in prof.dims if skipped and "not widened" not in notes.get(d, "")]
        if not wanted:
            break
        for d in wanted:
            if not skipped:  # an earlier dimension's widening was enough
                break
            found = widening(prof, models, d, factors=factors, budget_s=budget_s, ceiling=ceiling, **profile_kw)
            if found is None:
                why = (f"not widened: even at {factors[-1]}× its range the plan is predicted over the "
                       f"hard caps or the {budget_s:g} s budget")
                notes[d] = f"{notes[d]}; {why}" if d in notes else why
                continue
            f, region, total = found
            unfitted = ", ".join(skipped)
            more = profile(model, region, **profile_kw)
            table = pd.concat([prof.table, more.table], ignore_index=True)
            prof = Profile(table, prof.space.with_bounds(**{d: (prof.space.dim(d).min, region.dim(d).max)}),
                           prof.model, prof.machine, preprocess=prof.preprocess,
                           resumed=prof.resumed + more.resumed,
                           not_launched=prof.not_launched + more.not_launched)
            models, skipped = fit_profile_notes(prof)
            notes[d] = (f"measured up to {d}={region.dim(d).max} because {unfitted} could not be fitted below it "
                        f"(plan predicted ≤ {math.ceil(total)} s)")
    return prof, models, skipped, notes


def to_validity(model, prof: Profile, validity, asked, **profile_kw):
    """Measure up to the model's validity maxima where the plan's probes stopped short of
    them (the next planned size was refused: BERT's seq_len measured to 91, invalid from
    129), so limits can reach the model's limit rather than the measured range.

    Args:
        model: The model or adapter `prof` was measured on.
        prof: The profile so far.
        validity: `costlab.profiling.validity.Validity` found on it.
        asked: The input space the limits stay inside, cut to the valid sizes.
        **profile_kw: Passed to `costlab.profile`.

    Returns:
        `(profile, models, skipped, notes)` as `refine` returns them (unchanged when
        nothing was short of a validity maximum).
    """
    ok = prof.ok
    short = {d: (int(ok[d].max()), int(lim["max"])) for d, lim in validity.limits.items()
             if lim.get("max") is not None and len(ok) and ok[d].max() < min(lim["max"], asked.dim(d).max)}
    models, skipped = fit_profile_notes(prof)
    notes = {}
    for d, (top, vmax) in short.items():
        region = asked.with_bounds(**{d: (top, min(vmax, asked.dim(d).max))})
        more = profile(model, region, **{**profile_kw, "examples": 0, "rounds": 1, "points": 3})
        table = pd.concat([prof.table, more.table], ignore_index=True)
        prof = Profile(table, prof.space, prof.model, prof.machine, preprocess=prof.preprocess,
                       resumed=prof.resumed + more.resumed, not_launched=prof.not_launched + more.not_launched)
        notes[d] = f"measured from {d}={top} up to its validity limit {region.dim(d).max}"
    if short:
        models, skipped = fit_profile_notes(prof)
    return prof, models, skipped, notes


def to_multiples(model, prof: Profile, asked, **profile_kw):
    """Measure the size plan again on the multiples of a divisor rule (`asked` carries it,
    `costlab.inputs.space.Dimension.multiple_of`): the first plan's sizes off the multiples were
    refused, and the fits need distinct valid sizes along each dimension.

    Returns:
        `(profile, models, skipped, notes)` as `refine` returns them.
    """
    steps = {d.name: d.multiple_of for d in asked.dims if d.multiple_of > 1}
    more = profile(model, asked, **{**profile_kw, "examples": 0, "rounds": 1})
    table = pd.concat([prof.table, more.table], ignore_index=True)
    prof = Profile(table, prof.space, prof.model, prof.machine, preprocess=prof.preprocess,
                   resumed=prof.resumed + more.resumed, not_launched=prof.not_launched + more.not_launched)
    models, skipped = fit_profile_notes(prof)
    return prof, models, skipped, {d: f"the size plan measured again on multiples of {m} (the model takes only "
                                      "those)" for d, m in steps.items()}


#: How much more a probe under the declared range may cost than one at the declared
#: minimum, and still be admitted (noise between two readings of cheap calls).
FLOOR_TOLERANCE = 1.10


def below_floor(model, prof: Profile, floor: dict, asked, **profile_kw):
    """Measure the smallest valid corner `floor` (`costlab.profiling.validity.Validity.floor`)
    against the declared range's smallest corner, alternately, twice each: sizes under
    the declared range are admitted only where they cost no more (a policy must not refuse
    the cheapest requests, batch 1 above all).

    Returns:
        `(profile, accepted, note)`: the profile with the four rows added (`kind`
        `floor` and `floor:declared`), whether the floor's time (its fastest call) and peak are within
        `FLOOR_TOLERANCE` of the declared corner's (or 1 MiB / 0.2 ms above it), and what
        was measured.
    """
    declared = {d: asked.dim(d).min for d in asked.dim_names}
    floor = {d: min(int(floor[d]), declared[d]) for d in asked.dim_names}
    adapter, _, describe = _prepare(model, asked, profile_kw.get("preprocess"))
    seed = profile_kw.get("seed", 0)
    plan = plan_id(describe, asked, kind="floor", floor=floor,
                   **{k: v for k, v in profile_kw.items() if k in ("isolation", "min_repeats", "max_repeats",
                                                                   "probe_time_s", "seed")})
    kw = {k: v for k, v in profile_kw.items() if k not in ("points", "examples", "rounds", "seed", "preprocess")}
    under = asked.with_bounds(**{d: (floor[d], asked.dim(d).max) for d in asked.dim_names})
    with session(adapter, under, plan=plan, total=4, **kw) as prober:
        for i in range(2):
            for kind, sizes in (("floor", floor), ("floor:declared", declared)):
                prober.run(sizes, lambda s=sizes, k=i: prober.inputs(s, seed + k), kind, 0, seed + i, f"{kind}/{i}")
        rows = prober.table()
    table = pd.concat([prof.table, rows], ignore_index=True)
    prof = Profile(table, prof.space, prof.model, prof.machine, preprocess=prof.preprocess,
                   resumed=prof.resumed + prober.resumed, not_launched=prof.not_launched)
    ok = rows[rows["status"] == "ok"]
    at = {k: ok[ok["kind"] == k] for k in ("floor", "floor:declared")}
    if any(len(v) < 2 for v in at.values()):
        return prof, False, f"the floor {floor} or the declared minimum {declared} failed to measure"
    # the fastest call of the two readings each: noise (a first call's tracing, a busy core)
    # only adds time, and sub-millisecond medians on a loaded host spread by 20% (one CI run:
    # medians 1.20 ms at the floor against 0.99 ms, fastest calls 0.94 against 0.83 ms)
    col = "wall_s_min" if "wall_s_min" in rows.columns and ok["wall_s_min"].notna().all() else "wall_s_median"
    t = {k: float(v[col].min()) for k, v in at.items()}
    m = {k: float(v["peak_bytes"].median()) if v["peak_bytes"].notna().all() else 0.0 for k, v in at.items()}
    accepted = (t["floor"] <= max(t["floor:declared"] * FLOOR_TOLERANCE, t["floor:declared"] + 2e-4)
                and m["floor"] <= max(m["floor:declared"] * FLOOR_TOLERANCE, m["floor:declared"] + 2**20))
    note = (f"{floor} measured {t['floor'] * 1e3:.2f} ms (fastest call), {m['floor'] / 2**20:.2f} MiB against "
            f"{t['floor:declared'] * 1e3:.2f} ms, {m['floor:declared'] / 2**20:.2f} MiB at the declared minimum "
            f"{declared}")
    return prof, accepted, note


def _within(row, budgets, scale: float = 1.0) -> bool:
    """Within margin × budget, the latency read at `scale` × the measured one (the speed a
    policy plans for: `costlab.profiling.speed.planned_scale`)."""
    p99 = row.get("wall_s_p99")
    return row["status"] == "ok" and budgets.within_margin(
        (row["wall_s_median"] or 0) * 1e3, (row["peak_bytes"] or 0) / 2**20,
        None if p99 is None or p99 != p99 else p99 * 1e3, scale)


def boundary(model, prof: Profile, policy, *, asked=None, steps: int = 6, starts: dict | None = None,
             searches: dict | None = None, **profile_kw):
    """Measure around the policy's corner, bisecting each axis toward the budget boundary.

    From the corner (every dimension at its limit), each limited dimension in turn is
    moved while the others stay at their limits: up toward the top of the range asked
    for when the corner is within `margin × budget`, down toward the minimum when it is
    not, `steps` bisections in log space on integer sizes, every probe measured directly
    (same isolation, caps, log and resume as `profile`). With the policy's `machine_speed`,
    a latency is read at the speed the policy plans for: measured × `scale`
    (`costlab.profiling.speed.planned_scale`, from the last pulses before the search). The rows (`kind`
    `boundary:<dim>`) join the profile, so the next fit knows the region that decides the
    limits.

    Args:
        model: The model or adapter.
        prof: The profile so far.
        policy: The policy synthesised from it.
        asked: The input space the user asked for (the search stays inside it). Defaults
            to `prof.space`.
        steps: Bisections per dimension. Defaults to `6`.
        starts: `{dimension: sizes}` to start each dimension's search from instead of
            the corner, e.g. the most expensive admitted input with that dimension at its
            limit when joint budgets cut the corner off (`costlab.policy.edge_points`).
            Defaults to `None`.
        searches: `{label: (dimension, sizes)}`: bisect `dimension` from `sizes` (its
            start is `sizes[dimension]`) instead of the limited dimensions, e.g. from the
            most expensive input on a joint budget. Found entries are keyed by label.
            Defaults to `None`.
        **profile_kw: `profile`'s settings (isolation, caps, log_path, resume, ...).

    Returns:
        `(profile, found)`: the profile with the boundary rows, and `{dimension:
        {"limit", "boundary", "exact", "dim", "start", "scale"}}` with the largest size
        measured within budget along that axis (`exact` is False when the search ran out
        of steps or range; `scale` is what its latencies were multiplied by).
    """
    from costlab.profiling.speed import planned_scale

    asked = asked or prof.space
    budgets = policy.budgets
    limits = {d: lim["max"] for d, lim in policy.limits.items()}
    dims = [d for d, lim in policy.limits.items() if lim["limited_by"] in ("latency", "latency p99", "memory")]
    starts = starts or {}
    if searches is None:
        searches = {d: (d, {**limits, **starts.get(d, {})}) for d in dims}
    if not searches:
        return prof, {}
    adapter, _, describe = _prepare(model, asked, profile_kw.get("preprocess"))
    seed = profile_kw.get("seed", 0)
    plan = plan_id(describe, asked, kind="boundary", limits=limits, budgets=budgets.to_dict(), steps=steps,
                   searches={k: [d, v] for k, (d, v) in searches.items()},
                   **{k: v for k, v in profile_kw.items() if k in ("isolation", "min_repeats", "max_repeats",
                                                                   "probe_time_s", "seed")},
                   **({"values": profile_kw["values"]} if profile_kw.get("values", "random") != "random" else {}))
    found = {}
    kw = {k: v for k, v in profile_kw.items() if k not in ("points", "examples", "rounds", "seed", "preprocess")}
    with session(adapter, asked, plan=plan, total=len(searches) * (steps + 2), **kw) as prober:
        before = prof.table.to_dict("records")

        def at(label, d, start, size, step):
            sizes = {**start, d: int(size)}
            row = prober.run(sizes, lambda s=sizes: prober.inputs(s, seed + step), f"boundary:{d}",
                             0, seed + step, f"boundary/{label}/{step}")
            return _within(row, budgets, scale)

        for label, (d, start) in searches.items():
            # latencies read at the speed the policy plans for, from the last pulses
            scale = planned_scale(policy.data, [*before, *prober.rows])
            dim = asked.dim(d)
            m = dim.multiple_of  # a divisor rule: the search steps through its multiples
            lo_d, hi_d, first = dim.snap(dim.min), dim.snap(dim.max), dim.snap(int(start[d]))
            if at(label, d, start, first, 0):
                good, bad = first, None
                if hi_d > first:
                    if at(label, d, start, hi_d, 1):
                        good = hi_d
                    else:
                        bad = hi_d
            else:
                good, bad = lo_d, first
            if bad is not None:
                probe_no = iter(range(2, steps + 2))
                good, bad, _ = bisect(lambda v, lb=label, d=d, s=start, i=probe_no: at(lb, d, s, v, next(i)), good, bad,
                                      mid=log_int(m), steps=steps)
            found[label] = {"limit": first, "boundary": good, "exact": bad is not None and bad - good <= m,
                            "dim": d, "start": {k: int(v) for k, v in start.items()}, "scale": scale}
    table = pd.concat([prof.table, prober.table()], ignore_index=True)
    return (Profile(table, prof.space, prof.model, prof.machine, preprocess=prof.preprocess,
                    resumed=prof.resumed + prober.resumed, not_launched=prof.not_launched), found)


#: The run's own search of a joint budget reads latencies this much slower than `verify`
#: does: the boundary it finds is an estimate carrying the host's noise, and a maximum set
#: exactly at it would be found past the boundary by every other verification.
JOINT_BACKOFF = 1.05


def joint_boundary(model, prof: Profile, policy, models: dict, *, asked=None, steps: int = 5, draws: int = 3,
                   search_factor: float = 2.0, **profile_kw):
    """Bisect each joint budget's maximum over its whole frontier, by direct measurement.

    A joint budget is a product of (size + offset) over its dimensions; a real model's cost
    at one product depends on the mix (a CNN's aspect ratio and strides, a slow kernel at
    some shapes), so the curves' bound is loose on some of the frontier and short on the
    rest. Each step measures the inputs `costlab.checks.verify.joint_picks` chooses on a candidate
    maximum (ranked by `models`' predictions), `draws` times each with fresh values, and
    the candidate holds when all are within margin × budget with latencies read at
    `JOINT_BACKOFF` × the speed the policy plans for (`costlab.profiling.speed.planned_scale`).
    From the policy's maximum: up to `search_factor` × it (or the product of the axis
    maxima, past which a joint budget constrains nothing) when it holds, down to half of
    it when it does not; `steps` bisections in log space. The rows (`kind`
    `joint:<name>`) join the profile.

    Args:
        model: The model or adapter.
        prof: The profile so far.
        policy: The policy synthesised from it, with joint budgets.
        models: `{target: CostModel}` the policy was synthesised from (the ranking).
        asked: The input space the user asked for. Defaults to `prof.space`.
        steps: Bisections per joint budget. Defaults to `5`.
        draws: Measurements of each input, each with fresh values. Defaults to `3`.
        search_factor: Largest maximum tried, over the policy's. Defaults to `2.0`.
        **profile_kw: `profile`'s settings (isolation, caps, log_path, resume, ...).

    Returns:
        `(profile, found)`: the profile with the search's rows, and `{name: {"curve",
        "boundary", "exact", "probes", "scale"}}`: the policy's maximum, the largest one
        measured within (`exact` when bracketed within 1%), the probes it took and the
        latency scale it read at.

    Example: `prof, found = joint_boundary(model, prof, policy, models)`, then
    `synthesize(..., joint_max={k: v["boundary"] for k, v in found.items()})`.
    """
    from costlab.checks.verify import bisect_limit, joint_picks
    from costlab.profiling.speed import planned_scale

    joints = policy.joint
    if not joints:
        return prof, {}
    asked = asked or prof.space
    budgets = policy.budgets
    region = policy.region()
    targets = {t: ks for t, ks in budgets.targets().items() if t in models}

    def rank(X):
        r = np.zeros(len(X))
        for t, (key, scale) in targets.items():
            m = models[t]
            r = np.maximum(r, m.predict(X[m.dims_]) * scale / (getattr(budgets, key) * budgets.margin))
        return r

    adapter, _, describe = _prepare(model, asked, profile_kw.get("preprocess"))
    seed = profile_kw.get("seed", 0)
    plan = plan_id(describe, asked, kind="joint", joint=joints, budgets=budgets.to_dict(), steps=steps,
                   draws=draws, search_factor=search_factor, backoff=JOINT_BACKOFF,
                   limits={d: [lim["min"], lim["max"]] for d, lim in policy.limits.items()},
                   **{k: v for k, v in profile_kw.items() if k in ("isolation", "min_repeats", "max_repeats",
                                                                   "probe_time_s", "seed")})
    kw = {k: v for k, v in profile_kw.items() if k not in ("points", "examples", "rounds", "seed", "preprocess")}
    found = {}
    with session(adapter, asked, plan=plan, total=len(joints) * (steps + 3) * 4 * draws, **kw) as prober:
        before = prof.table.to_dict("records")
        scale = planned_scale(policy.data, before) * JOINT_BACKOFF
        counter = [0]
        for j in joints:
            first = counter[0]

            def at(value, j=j, edge=False):
                for sizes in joint_picks(region, j, value, rank, edge=edge):
                    for _ in range(draws):
                        counter[0] += 1
                        n = counter[0]
                        row = prober.run(sizes, lambda s=sizes, n=n: prober.inputs(s, seed + 20_000 + n),
                                         f"joint:{j['name']}", 0, seed + 20_000 + n, f"joint/{j['name']}/{n}")
                        if not _within(row, budgets, scale):
                            return False
                return True

            top = float(region.value(pd.DataFrame([region.hi]), j["dims"])[0])
            floor = int(math.ceil(region.value(pd.DataFrame([region.lo]), j["dims"])[0]))
            start = int(j["max"])
            value, exact, _ = bisect_limit(at, start, max(start + 1, int(min(start * search_factor, top))), steps,
                                      edge=lambda v, j=j: at(v, j, edge=True), bottom=max(floor, start // 2),
                                      floor=floor)
            found[j["name"]] = {"curve": start, "boundary": int(value), "exact": bool(exact),
                                "probes": counter[0] - first, "scale": scale}
    table = pd.concat([prof.table, prober.table()], ignore_index=True)
    return (Profile(table, prof.space, prof.model, prof.machine, preprocess=prof.preprocess,
                    resumed=prof.resumed + prober.resumed, not_launched=prof.not_launched), found)


#: Costs whose growth class a run settles: the tails (p95, p99) are fitted and bounded too,
#: but their scatter would keep a class open long after the median's is decided.
SETTLE_TARGETS = ("wall_s_median", "peak_bytes")


def open_powers(models: dict, dim: str, targets=SETTLE_TARGETS) -> set:
    """Powers of `dim` that the data leave open: every power the consistent classes of
    some fitted cost in `targets` give it, when they differ (empty when decided)."""
    open_ = set()
    for t, m in models.items():
        if t in targets and dim in m.undetermined_dims():
            open_ |= {c[dim]["power"] for c in m.consistent_}
    return open_


def settle(model, prof: Profile, models: dict, skipped: dict, *, passes: int = 1, budget_s: float = 30.0,
           factors=(4, 2), ceiling: dict | None = None, **profile_kw):
    """Measure more while a dimension's power is undetermined, until it is decided.

    For each dimension whose power the fitted costs leave open (`open_powers`), one pass
    measures, in order of preference: larger sizes (the plan over `dim` from its maximum
    to 4× or 2× it, checked by `widening` against the hard caps and `budget_s`), where
    growth shows most; else the size plan again over the measured space (another round
    of replicates, which `fit` pools by their median; one round serves every such
    dimension), when its predicted time is within `budget_s`. Every cost is fitted again after each measurement. It stops when no
    dimension is open, after `passes`, or when nothing can be measured safely; the
    notes say which. The wider sizes only identify growth: the policy admits the range
    the user asked for.

    Args:
        model: The model or adapter `prof` was measured on.
        prof: The profile so far.
        models: `{target: CostModel}` fitted on it.
        skipped: `{target: reason}` of costs that could not be fitted.
        passes: Most measurements per dimension. Defaults to `1`.
        budget_s: Most predicted time of one measurement's plan. Defaults to `30.0`.
        factors: Widening factors tried, largest first. Defaults to `(4, 2)`.
        ceiling: As for `refine`. Defaults to `None`.
        **profile_kw: Passed to `costlab.profile`.

    Returns:
        `(profile, models, skipped, notes)`, with `notes` `{dimension: what was measured
        and how it ended}` for every dimension that was open.
    """
    done: dict[str, list[str]] = {}
    why_stopped: dict[str, str] = {}
    kw = {**profile_kw, "examples": 0, "rounds": 1}

    def measure(region, new_space):
        nonlocal prof, models, skipped
        more = profile(model, region, **kw)
        table = pd.concat([prof.table, more.table], ignore_index=True)
        prof = Profile(table, new_space, prof.model, prof.machine, preprocess=prof.preprocess,
                       resumed=prof.resumed + more.resumed, not_launched=prof.not_launched + more.not_launched)
        models, skipped = fit_profile_notes(prof)

    for _ in range(passes):
        open_dims = [d for d in prof.dims if open_powers(models, d) and d not in why_stopped]
        if not open_dims:
            break
        again = []  # open dimensions that cannot be widened: one more round of the plan serves them all
        for d in open_dims:
            if not open_powers(models, d):  # decided by another dimension's measurement
                continue
            found = widening(prof, models, d, factors=factors, budget_s=budget_s, ceiling=ceiling, **kw)
            if found is None:
                again.append(d)
                continue
            _, region, total = found
            measure(region, prof.space.with_bounds(**{d: (prof.space.dim(d).min, region.dim(d).max)}))
            done.setdefault(d, []).append(f"measured up to {d}={region.dim(d).max} "
                                          f"(plan predicted ≤ {math.ceil(total)} s)")
        again = [d for d in again if open_powers(models, d)]
        if not again:
            continue
        sizes = pd.DataFrame([p.sizes for g in sweep.plan(prof.space, points=kw.get("points", 7)) for p in g])
        seconds, _ = _predict(prof, models, sizes)
        total = float(seconds.sum()) * (kw.get("min_repeats", 5) + 2)
        if total > budget_s:
            for d in again:
                why_stopped[d] = (f"larger sizes are predicted over the hard caps or the {budget_s:g} s budget, "
                                  f"and so is another round of the plan ({math.ceil(total)} s)")
            continue
        measure(prof.space, prof.space)
        for d in again:
            done.setdefault(d, []).append(f"measured the size plan again (replicates; predicted ≤ {math.ceil(total)} s)")
    notes = {}
    for d in set(done) | set(why_stopped):
        left = open_powers(models, d)
        steps = "; ".join(done.get(d, [])) or "nothing measured"
        if not left:
            notes[d] = f"power was undetermined; {steps}; now decided"
        else:
            end = why_stopped.get(d, f"still open after {len(done.get(d, []))} measurement(s)")
            notes[d] = (f"power undetermined (consistent: {', '.join(f'{p:g}' for p in sorted(left))}); {steps}; "
                        f"stopped: {end}; limits use the steepest")
    return prof, models, skipped, notes
