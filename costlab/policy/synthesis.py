"""Synthesis: the largest admitted region whose bounded costs stay within margin × budget."""

from __future__ import annotations

import datetime as _dt
import math

import numpy as np
import pandas as pd

from costlab.errors import PolicyError
from costlab.inputs.space import InputSpace
from costlab.policy.budgets import Budgets
from costlab.policy.document import SCHEMA_VERSION, Policy
from costlab.policy.region import Region, _binding, _largest, joint_value, worst_input
from costlab.policy.sizing import _default_machine, _request, _serving, _shapes

#: What the memory budget bounds, by memory source (`Policy.data["memory_figure"]`).
MEMORY_FIGURES = {
    "tf_allocator": "the peak of the tensor bytes one call requests from TensorFlow's allocator (the profiler's "
                    "requested_bytes, summed over the tensors live at once): what the model asks for, smooth in the "
                    "input sizes. The allocator reserves more, since it rounds a request over 64 MiB up to a chunk of "
                    "the next power of two (allocator_peak_bytes in profile.csv); the container memory "
                    "(serving.container_memory_mib) includes that through the process-growth calibration",
    "process_vmhwm": "the growth of the process's resident high-water mark over one probe (the framework has no "
                     "per-call allocator statistics here), exact in a fresh process per probe",
}


def synthesize(cost_models: dict, budgets, *, space: InputSpace, model: dict | None = None,
               measured_on: dict | None = None, extrapolate: float = 1.0, joint: bool = True,
               calibration: dict | None = None, churn: dict | None = None,
               throughput: dict | None = None, timeout_factor: float = 3.0, speed=None,
               joint_offsets: bool = True, value_pattern: dict | None = None, drift: dict | None = None,
               validity: dict | None = None, memory_source: str | None = None,
               joint_max: dict | None = None) -> Policy:
    """Choose the limits whose most expensive admitted input stays within budget.

    First a box: every dimension grows by the same fraction of its log range until the
    calibrated upper bound of a budgeted cost at the box's corner reaches `margin × budget`
    (dimensions no cost depends on get their full range). Then, per input with two or more
    costly dimensions, a joint budget (the product of those dimensions, e.g. tokens =
    batch × seq_len, each dimension plus an offset where the cost's elasticity asks for
    one, `joint_value`): each axis may then reach what it could alone with the others at
    their minimum, as long as the product stays under a maximum — chosen, with the axis
    maxima, so that the worst input on the whole admitted region's frontier stays within
    budget and the region admits the most of the space (log-size measure); then each axis
    maximum is pushed, one at a time with the joint maxima kept, as far as the worst input
    stays within budget. A joint budget is kept only when it admits more than the box.

    Then the request and serving figures: max batch, max payload bytes (raw and as JSON),
    a request timeout (`timeout_factor` × the worst admitted tail latency's upper bound),
    max concurrent requests and a container memory limit (in-flight × the process memory
    of the worst admitted request, from `calibration`, + the process's resident memory
    before any request, which holds the weights), a rate limit from `throughput` (a
    measured concurrent run, `costlab.runtime.throughput`), and shape buckets with a cap on
    distinct shapes when `churn` figures show that new shapes cost.

    Args:
        cost_models: `{target: CostModel}`; targets with a budget (`Budgets.targets()`) are
            bounded, others are reported only.
        budgets: A `Budgets` or a dict of its fields.
        space: The input space that was profiled (inputs, dtypes, dimension ranges).
        model: The adapter's description (`Profile.model`). Defaults to `None`.
        measured_on: The host (`Profile.machine`). Defaults to `None`.
        extrapolate: Limits may reach this multiple of the largest size that was both
            measured and inside `space`. Defaults to `1.0` (never beyond either).
        joint: Look for joint budgets. Defaults to `True`.
        joint_offsets: Let a joint budget add an offset to a dimension before the product,
            `(batch + c) × seq_len`, when the fitted cost's elasticity says it grows like
            that and it admits more (`_joint`); `False` for plain products only, e.g. for a
            server whose token budget is a plain product. Defaults to `True`.
        calibration: `Profile.calibration()`. Defaults to `None` (process memory = tensor
            peak; the baseline unknown, so no container limit is derived).
        churn: `Churn.figures`. Defaults to `None` (no shape section).
        throughput: `costlab.runtime.throughput.measure(...)` figures. Defaults to `None` (no rate
            limit).
        timeout_factor: Request timeout over the worst admitted tail latency. Defaults to `3`.
        speed: The run's machine-speed index (`costlab.profiling.speed.Speed` or its dict), when the
            time curves were fitted at the run's median speed (`costlab.fit` on a profile
            with pulses): every time curve is multiplied by `speed.factor` (the index's
            slow quantile) before limits are set, and the policy records it as
            `machine_speed`. Defaults to `None` (times as fitted).
        value_pattern: The value pattern the curves were measured with and its evidence
            (`costlab.profiling.values.ValueScan.to_dict()`, or `{"pattern": ..., "chosen_by":
            "given"}`), recorded as `value_pattern`: verify and `costlab.testing` measure
            admitted inputs with the same values. Defaults to `None` (not recorded:
            random values).
        drift: Shape drift on the frontier (`costlab.runtime.drift.Drift.to_dict()`): its
            `planned_ms` is added to every time curve (before `speed.factor`), the
            readings are recorded as `shapes.drift`, and when something is planned
            `shapes.max_distinct` is held to the `shapes` it was read at. Defaults to
            `None` (times as fitted).
        validity: The model's own validity limits (`costlab.profiling.validity.Validity.to_dict()`):
            no limit passes them (a maximum reached is `limited_by: "model limit"`), and
            the policy records them as `validity`. `space` should already be cut to them
            (`Validity.bounds`). Defaults to `None`.
        memory_source: Where the peak memory the memory budget bounds was read
            (`costlab.adapters.memory`: `tf_allocator`, `process_vmhwm`, ...), recorded with what
            the figure means as `memory_figure`. Defaults to `None` (not recorded).
        joint_max: `{joint budget name: maximum}` measured on the frontier
            (`costlab.pipeline.refine.joint_boundary`'s `boundary`) in place of the maxima the curves
            give; recorded as the joint budget's `measured`. A maximum at or above the
            product of the axis maxima is dropped (it constrains nothing), and an axis
            maximum the new one does not admit (the others at their minimum) is cut to it.
            Defaults to `None` (the curves' maxima).

    Returns:
        A validated `Policy`.

    Raises:
        PolicyError: Budgets that even the smallest input exceeds, or bad arguments.
    """
    if isinstance(budgets, dict):
        budgets = Budgets(**budgets)
    if not isinstance(budgets, Budgets):
        raise PolicyError(f"Expected Budgets or a dict for `budgets`. Received: {type(budgets).__name__}")
    if not cost_models:
        raise PolicyError("Expected at least one fitted cost model. Received: {}")
    bounded = {t: m for t, m in cost_models.items() if t in budgets.targets()}
    if not bounded:
        raise PolicyError(f"No cost model for a budgeted target {sorted(budgets.targets())}. "
                          f"Received: {sorted(cost_models)}")
    if budgets.latency_p99_ms is not None and "wall_s_p99" not in bounded:
        raise PolicyError("A latency_p99_ms budget needs a fitted `wall_s_p99` cost model. "
                          f"Received: {sorted(cost_models)}")
    if not extrapolate >= 1:
        raise PolicyError(f"Expected `extrapolate` >= 1. Received: extrapolate={extrapolate!r}")
    if not timeout_factor >= 1:
        raise PolicyError(f"Expected `timeout_factor` >= 1. Received: timeout_factor={timeout_factor!r}")
    added = float((drift or {}).get("planned_ms") or 0.0) / 1e3
    if not added >= 0:
        raise PolicyError(f"Expected `drift.planned_ms` >= 0. Received: {drift.get('planned_ms')!r}")
    factor = 1.0
    if speed is not None:
        from costlab.profiling.speed import Speed

        speed = Speed.from_dict(speed) if isinstance(speed, dict) else speed
        if not isinstance(speed, Speed) or not speed.factor >= 1:
            raise PolicyError(f"Expected a costlab.profiling.speed.Speed with factor >= 1 for `speed`. Received: {speed!r}")
        factor = speed.factor
    curves = {t: m.to_dict() for t, m in cost_models.items()}  # as fitted: `Policy.cost` applies speed and drift
    if added or speed is not None:
        cost_models = {t: _Timed(m, factor, added) if t.startswith("wall_s_") else m for t, m in cost_models.items()}
        bounded = {t: cost_models[t] for t in bounded}
    dims = space.dim_names
    lo = {d.name: d.min for d in space.dims}
    # Limits pass neither what was measured (a slice stopped early by a hard cap measured
    # less than the space allows) nor the range the user asked to explore (`refine` may
    # measure beyond it to identify a class), each times `extrapolate`.
    measured_hi = {d: max([int(m.range_[d][1]) for m in cost_models.values() if d in m.range_],
                          default=space.dim(d).max) for d in dims}
    cap = {d: max(lo[d], int(min(measured_hi[d], space.dim(d).max) * extrapolate)) for d in dims}
    # Sizes the model itself refuses (candle's max_position_embeddings) are never admitted.
    hard = {d: int(v) for d, v in ((model or {}).get("hard_limits") or {}).items() if d in cap}
    for d, lim in ((validity or {}).get("limits") or {}).items():  # found by measurement (costlab.profiling.validity)
        if d in cap and lim.get("max") is not None:
            hard[d] = min(hard.get(d, lim["max"]), int(lim["max"]))
    cap = {d: min(cap[d], hard.get(d, cap[d])) for d in dims}
    cap = {d: max(lo[d], cap[d] // space.dim(d).multiple_of * space.dim(d).multiple_of) for d in dims}
    free = {d for d in dims if all(m.exponents_.get(d, {"power": 0, "log": 0}) == {"power": 0, "log": 0}
                                   for m in bounded.values())}

    def grown(base: dict, top: dict, t: float) -> dict:
        return {d: top[d] if d in free else
                max(base[d], int(np.floor(base[d] * (top[d] / base[d]) ** t + 1e-9))) for d in dims}

    def ratio(region) -> float:
        return worst_input(cost_models, bounded, budgets, region)[0]

    box0 = Region(dims, lo, grown(lo, cap, 0.0))
    start = ratio(box0)
    if start > 1:
        key = _binding(bounded, budgets, box0.hi, dims)
        raise PolicyError(
            f"The {key} budget cannot be met even by the smallest input {box0.hi}: its upper-bound cost "
            f"is {start:.2f}× the budget × margin")
    t_box = _largest(lambda t: ratio(Region(dims, lo, grown(lo, cap, t))) <= 1, 0.0, 1.0, steps=24)
    box = Region(dims, lo, grown(lo, cap, t_box))
    region, joint_meta = box, []
    if joint:
        def fitted(X):  # the fitted cost over margin × budget, the largest of the budgeted targets
            r = np.zeros(len(X))
            for t, m in bounded.items():
                key, scale = budgets.targets()[t]
                r = np.maximum(r, m.predict(X[m.dims_]) * scale / (getattr(budgets, key) * budgets.margin))
            return r
        region, joint_meta = _joint(space, dims, lo, cap, free, box, ratio, fitted if joint_offsets else None)
        if joint_max:
            region, joint_meta = _set_joint(region, joint_meta, joint_max, lo)
    steps = {d.name: d.multiple_of for d in space.dims if d.multiple_of > 1}
    if steps:  # a divisor rule: the limits are its multiples (a subset of what was searched)
        snap_lo = {d: (-(-lo[d] // steps[d]) * steps[d] if d in steps else lo[d]) for d in dims}
        region = Region(dims, snap_lo, {d: (region.hi[d] // steps[d] * steps[d] if d in steps else region.hi[d])
                                         for d in dims}, region.joint, region.offsets, steps)
        lo = snap_lo
    worst_ratio, worst_at, pred, upper = worst_input(cost_models, bounded, budgets, region)
    binding = "measured range" if t_box >= 1.0 else _binding(bounded, budgets, worst_at, dims)
    limits = {}
    for d in dims:
        by = "unconstrained" if d in free else ("measured range" if region.hi[d] >= cap[d] else binding)
        if d in hard and region.hi[d] >= hard[d] and by in ("measured range", "unconstrained"):
            by = "model limit"
        if any(d in m.get("clamps", ()) for m in joint_meta):
            by = "joint budget"  # its maximum is the joint budget over the others' minimum
        limits[d] = {"name": d, "min": int(lo[d]), "max": int(region.hi[d]), "limited_by": by,
                     "predicted": pred, "upper": upper}
        if d in steps:
            limits[d]["multiple_of"] = int(steps[d])
    joints = []
    for (g, j), meta in zip(region.joint, joint_meta, strict=True):
        joints.append({"name": meta["name"], "input": meta["input"], "dims": g, "max": int(j),
                       "offsets": {d: int(meta["offsets"].get(d, 0)) for d in g},
                       "limited_by": binding, "predicted": pred, "upper": upper,
                       "box_max": int(meta["box_max"]), **({"measured": meta["measured"]} if "measured" in meta else {})})
    inputs = {}
    for spec in space.inputs:
        values = spec.values.to_dict()
        if values["kind"] == "float":
            values["finite"] = True  # NaN and infinity are rejected: no model's costs were measured on them
        inputs[spec.name] = {"dtype": spec.dtype, "shape": list(spec.shape),
                             "dims": [{"name": s, "min": int(lo[s]), "max": int(region.hi[s])}
                                      for s in spec.shape if isinstance(s, str)],
                             "values": values}
        if spec.text is not None:  # words and bytes per string, counted as the model's vectorizer does
            inputs[spec.name]["text"] = spec.text.to_dict(vocabulary=False)
            inputs[spec.name]["dims"] += [{"name": s, "min": int(lo[s]), "max": int(region.hi[s])}
                                          for s in (spec.text.words, spec.text.bytes)]
    data = {"schema_version": SCHEMA_VERSION,
            "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model": model or {"name": "unknown", "sha256": "0" * 64, "framework": "unknown", "versions": {}},
            "measured_on": measured_on or _default_machine(),
            "budgets": budgets.to_dict(), "inputs": inputs, "limits": limits, "joint": joints,
            "worst_admitted": {"sizes": worst_at, "predicted": pred, "upper": upper,
                               "budget_fraction": worst_ratio * budgets.margin},
            "admitted_fraction": {"box": box.log_volume(cap, lo), "policy": region.log_volume(cap, lo)},
            "complexity": {t: m.complexity_ for t, m in cost_models.items()}, "curves": curves}
    if speed is not None:
        data["machine_speed"] = speed.to_dict()
    if value_pattern is not None:
        data["value_pattern"] = value_pattern
    if validity is not None:
        data["validity"] = validity
    if memory_source is not None:
        data["memory_figure"] = {"source": memory_source, "bounds": MEMORY_FIGURES.get(
            memory_source, "the peak memory of one call as that source reads it")}
    data["request"] = _request(space, region, cost_models, upper, budgets, timeout_factor)
    data["serving"] = _serving(data, upper, budgets, calibration, measured_on or data["measured_on"],
                               throughput, timeout_factor)
    shapes = _shapes(space, region, churn, data["serving"])
    if shapes:
        if drift is not None:
            shapes["drift"] = drift
            n = int(drift.get("shapes") or 0)
            higher = drift.get("higher") or []
            if (added or higher) and n and (shapes.get("max_distinct") is None or shapes["max_distinct"] > n):
                # the plan holds up to the shapes it was read at, and a drifting process only
                # drifts further past them (zoo:masked: about 4 ms more per call every 100
                # shapes, `benchmarks/late_shapes.py`): one process takes no more. So too when
                # a higher count was read first and not kept, even if nothing is planned at `n`
                shapes["max_distinct"] = n
                why = (f"capped at the {n} shapes the drift planned for was read at (a drifting process drifts "
                       "further past them)" if added else
                       f"capped at the {n} shapes the drift was read at: at {higher[-1]['shapes']} it added "
                       f"{higher[-1]['planned_ms']:.2f} ms ({higher[-1]['why']})")
                shapes["reason"] = f"{shapes.get('reason', '')}; {why}".lstrip("; ")
        data["shapes"] = shapes
    return Policy(data)


class _Timed:
    """A time `CostModel` as planned for: `(predict + seconds) × factor`, and the same for
    `upper` (`seconds`: shape drift per call; `factor`: the slow machine speed)."""

    def __init__(self, model, factor: float = 1.0, seconds: float = 0.0):
        self._model, self._factor, self._seconds = model, float(factor), float(seconds)

    def __getattr__(self, name):
        return getattr(self._model, name)

    def predict(self, X):
        return (self._model.predict(X) + self._seconds) * self._factor

    def upper(self, X, q=None):
        return (self._model.upper(X, q) + self._seconds) * self._factor


def _joint(space, dims, lo, cap, free, box, ratio, fitted=None):
    """Widen the box into (axis maxima, joint maximum) per input with ≥ 2 costly dims.

    Each joint budget is first tried as the plain product of its dimensions, then with
    offsets (`joint_value`) read off the fitted cost at the box's corner: a cost with a
    part that does not grow with a dimension `d` (a recurrent model's per-step work at
    batch 1) grows like `(d + c)` there, with `c = d (1 - e) / e` for its elasticity `e`
    (d log cost / d log d, when under 1). The product of those shifted sizes follows the
    cost's level sets, so the joint budget binds along its whole frontier, not only at one
    corner. The offsets are kept when they admit more of the space.
    """
    groups, meta = [], []
    for spec in space.inputs:
        g = [s for s in dict.fromkeys(spec.shape) if isinstance(s, str) and s not in free]
        if len(g) >= 2 and g not in groups:
            groups.append(g)
            meta.append({"input": spec.name, "name": "×".join(g)})
    if not groups:
        return box, []
    # Each axis alone (the others at their minimum): how far it may go.
    alone = {}
    for d in dims:
        if d in free:
            alone[d] = box.hi[d]
            continue

        def along(t, d=d):
            hi = {**box.hi, **{g: lo[g] for g in dims if g not in free}}
            hi[d] = max(box.hi[d], int(np.floor(box.hi[d] * (cap[d] / box.hi[d]) ** t + 1e-9)))
            return Region(dims, lo, hi)
        t = _largest(lambda t: ratio(along(t)) <= 1, 0.0, 1.0, steps=14)
        alone[d] = along(t).hi[d]
    best = _joint_with(dims, lo, cap, free, box, ratio, groups, [dict(m) for m in meta], alone, {})
    shifted = _offsets(groups, box, cap, fitted) if fitted is not None else {}
    if shifted:
        other = _joint_with(dims, lo, cap, free, box, ratio, groups, [dict(m) for m in meta], alone, shifted)
        if other[0].log_volume(cap, lo) > best[0].log_volume(cap, lo) * 1.02:
            best = other
    return best


def _offsets(groups, box, cap, fitted) -> dict:
    """Per joint group, `{dimension: offset}` from the elasticity of `fitted` (sizes →
    cost over budget) at the box's corner; only positive offsets are kept."""
    out = {}
    at = pd.DataFrame({d: [float(v)] for d, v in box.hi.items()})
    h = 0.1
    for g in groups:
        off = {}
        for d in g:
            up, down = at.copy(), at.copy()
            up[d] *= math.exp(h)
            down[d] *= math.exp(-h)
            a, b = float(fitted(up)[0]), float(fitted(down)[0])
            if not (a > 0 and b > 0):
                continue
            e = (math.log(a) - math.log(b)) / (2 * h)
            if 0.02 < e < 0.98:
                off[d] = int(round(min(10 * cap[d], box.hi[d] * (1 - e) / e)))
        off = {d: c for d, c in off.items() if c > 0}
        if off:
            out[tuple(g)] = off
    return out


def _joint_with(dims, lo, cap, free, box, ratio, groups, meta, alone, offsets):
    """`_joint` for one choice of offsets: the region and its joint budgets' metadata."""
    def measure(sizes: dict, g) -> float:
        return joint_value(sizes, g, offsets.get(tuple(g)))

    best, best_vol = box, box.log_volume(cap, lo)
    for s in (1.0, 0.75, 0.5, 0.25, 0.1):
        hi = {d: box.hi[d] if d in free else
              max(box.hi[d], int(np.floor(box.hi[d] * (alone[d] / box.hi[d]) ** s + 1e-9))) for d in dims}
        lowprod = [measure(lo, g) for g in groups]
        fullprod = [measure(hi, g) for g in groups]

        def region_at(u, hi=hi, lowprod=lowprod, fullprod=fullprod):
            return Region(dims, lo, hi, [(g, lp * (fp / lp) ** u)
                                          for g, lp, fp in zip(groups, lowprod, fullprod, strict=True)], offsets)
        u = _largest(lambda u: ratio(region_at(u)) <= 1, 0.0, 1.0, steps=16)
        r = region_at(u)
        r.joint = [(g, float(np.floor(j + 1e-9))) for g, j in r.joint]
        vol = r.log_volume(cap, lo)
        if vol > best_vol * 1.05:
            # The first (widest axis maxima) that admits clearly more than the box: each axis
            # keeps as much of what it could do alone as the joint budget allows.
            best, best_vol = r, vol
            break
    if best is box:
        return box, []
    # Then each axis as far as the budgets allow with the joint maxima kept: the choice above
    # trades axis maxima against the joint maxima for the admitted share of the space, and can
    # leave an axis short of where its own cost binds (a GRU's batch at short sequences).
    hi = dict(best.hi)
    for d in dims:
        if d in free or hi[d] >= cap[d]:
            continue

        def wider(t, d=d, base=hi[d]):
            return Region(dims, lo, {**hi, d: max(base, int(np.floor(base * (cap[d] / base) ** t + 1e-9)))},
                           best.joint, offsets)
        hi[d] = wider(_largest(lambda t: ratio(wider(t)) <= 1, 0.0, 1.0, steps=14)).hi[d]
    best = Region(dims, lo, hi, best.joint, offsets)
    # A joint maximum at or above the product of its axis maxima constrains nothing.
    kept = [(g, j, m) for (g, j), m in zip(best.joint, meta, strict=True) if j < measure(best.hi, g)]
    # An axis maximum must itself be admitted: with the others at their minimum, under the joint maximum.
    hi = dict(best.hi)
    for g, j, m in kept:
        o = offsets.get(tuple(g), {})
        for d in g:
            rest = float(np.prod([lo[e] + o.get(e, 0) for e in g if e != d]))
            top = max(lo[d], int(np.floor(j / rest - o.get(d, 0) + 1e-9)))
            if top < hi[d]:
                hi[d] = top
                m.setdefault("clamps", []).append(d)
    out = Region(dims, lo, hi, [(g, j) for g, j, _ in kept], {tuple(g): offsets.get(tuple(g), {}) for g, _, _ in kept})
    return out, [{**m, "box_max": measure(box.hi, g), "offsets": offsets.get(tuple(g), {})} for g, _, m in kept]


def _set_joint(region, meta, maxima: dict, lo: dict):
    """`region` with the joint maxima `maxima` (`{name: max}`, measured) in place of its own
    (`synthesize`'s `joint_max`)."""
    hi, kept = dict(region.hi), []
    for (g, j), m in zip(region.joint, meta, strict=True):
        o = region.off(g)
        if m["name"] in maxima:
            m = {**m, "measured": {"curves_max": int(j), "boundary": int(maxima[m["name"]])}}
            j = float(int(maxima[m["name"]]))
        if j >= joint_value(hi, g, o):  # constrains nothing
            continue
        for d in g:  # an axis maximum must itself be admitted, the others at their minimum
            rest = float(np.prod([lo[e] + o.get(e, 0) for e in g if e != d]))
            top = max(lo[d], int(np.floor(j / rest - o.get(d, 0) + 1e-9)))
            if top < hi[d]:
                hi[d] = top
                m.setdefault("clamps", []).append(d)
        kept.append((g, j, m))
    out = Region(region.dims, region.lo, hi, [(g, j) for g, j, _ in kept],
                  {tuple(g): region.off(g) for g, _, _ in kept}, region.steps)
    return out, [m for _, _, m in kept]
