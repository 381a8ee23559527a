"""Property-based cost tests for CI: hold a model to its policy and to a baseline run.

Three assertions, each usable in any pytest test (the pytest plugin, `costlab.testing.plugin`,
adds `--costlab-baseline DIR` and Hypothesis profiles for CI):

- `assert_within_policy(model, policy)`: the policy's corner (every dimension at its
  limit), then inputs drawn by Hypothesis inside the limits, guided toward the most
  expensive (`hypothesis.target`); each is measured, and a cost over its budget fails
  with the shrunk input and its cost against the budget.
- `assert_rejected_outside(policy)`: the guard admits inputs at each limit and rejects
  inputs one step past it (and integer values past their domain).
- `assert_no_regression(model, baseline_dir)`: profiles the model over the baseline run's
  space, and fails when a dimension's growth class rises or the cost at the baseline's
  limits grows beyond a tolerance, printing old and new side by side.

Example:
    >>> from costlab import testing, zoo
    >>> def test_model_stays_within_its_policy():
    ...     testing.assert_within_policy(zoo.build("attention"), "data/sample_run/policy.json")
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from costlab.errors import CostlabError, InputRejected
from costlab.measurement.costs import COSTS
from costlab.measurement.timing import measure
from costlab.policy import Policy, joint_value

#: Settings of the Hypothesis profiles the plugin registers (see `register_profiles`).
PROFILES = {
    # CI: reproducible, bounded, no per-example deadline (a model call's time varies)
    "costlab-ci": dict(derandomize=True, database=None, deadline=None, max_examples=20),
    # local runs: more examples, failures remembered between runs
    "costlab-dev": dict(deadline=None, max_examples=50),
}


def register_profiles() -> None:
    """Register `costlab-ci` and `costlab-dev` with Hypothesis (`--hypothesis-profile=...`)."""
    from hypothesis import HealthCheck, settings

    for name, kw in PROFILES.items():
        settings.register_profile(name, suppress_health_check=[HealthCheck.too_slow,
                                                               HealthCheck.data_too_large], **kw)


def _policy(policy) -> Policy:
    return policy if isinstance(policy, Policy) else Policy.from_json(policy)


def _cost(adapter, memory, inputs, repeats: int) -> tuple[float, float, str]:
    fed = adapter.prepare(inputs) if hasattr(adapter, "prepare") else inputs
    r = measure(lambda: adapter(fed), memory=memory, min_repeats=repeats, max_repeats=repeats, time_budget_s=0)
    if r["status"] != "ok":
        return float("inf"), float("inf"), f"{r['status']}: {r['error']}"
    # the fastest warm call: the least disturbed by other work on a shared CI runner
    return r["wall_s_min"] * 1e3, (r["peak_bytes"] or 0) / 2**20, ""


def _describe(inputs) -> str:
    return ", ".join(f"{k}{list(v.shape)}" for k, v in inputs.items())


def assert_within_policy(model, policy, *, examples: int = 20, seed: int = 0, repeats: int = 5,
                         tolerance: float = 1.0) -> dict:
    """Fail when an input inside the policy costs more than its budget.

    Args:
        model: A Keras model or an adapter.
        policy: A `Policy` or a path to its JSON.
        examples: Inputs Hypothesis draws inside the limits. Defaults to `20`.
        seed: Seed for the corner's values and Hypothesis. Defaults to `0`.
        repeats: Warm calls per input; its cost is the fastest. Defaults to `5`.
        tolerance: A cost fails above `tolerance × budget`; above `1` on noisy shared
            runners. Defaults to `1.0` (the budget itself).

    Returns:
        `{"probes", "worst_latency_ms", "worst_memory_mib"}`.

    Raises:
        AssertionError: Naming the input (shrunk by Hypothesis), its cost and the budget.
    """
    from hypothesis import HealthCheck, Phase, given, settings, target
    from hypothesis import seed as hseed

    from costlab.adapters import adapt
    from costlab.profiling import strategies

    pol = _policy(policy)
    adapter = adapt(model)
    memory = adapter.memory_source()
    space, b = pol.space, pol.budgets
    max_ms, max_mib = b.latency_ms * tolerance, b.memory_mib * tolerance
    seen = {"probes": 0, "worst_latency_ms": 0.0, "worst_memory_mib": 0.0}

    def check(inputs, where):
        ms, mib, failed = _cost(adapter, memory, inputs, repeats)
        seen["probes"] += 1
        seen["worst_latency_ms"] = max(seen["worst_latency_ms"], ms)
        seen["worst_memory_mib"] = max(seen["worst_memory_mib"], mib)
        problems = [failed] if failed else []
        if ms > max_ms:
            problems.append(f"latency {ms:.2f} ms > {max_ms:g} ms (budget {b.latency_ms:g} × {tolerance:g})")
        if mib > max_mib:
            problems.append(f"memory {mib:.2f} MiB > {max_mib:g} MiB (budget {b.memory_mib:g} × {tolerance:g})")
        assert not problems, f"{where} input {_describe(inputs)} is inside the policy but: {'; '.join(problems)}"
        return ms, mib

    region = pol.region()
    worst = (pol.worst_admitted or {}).get("sizes") or {d.name: d.max for d in space.dims}
    worst = region.onto({d.name: worst.get(d.name, d.max) for d in space.dims})
    values = pol.value_pattern  # what its curves were measured with
    check(space.pattern_inputs(worst, seed=seed, values=values), "the policy's most expensive admitted")

    @hseed(seed)
    @settings(max_examples=examples, database=None, deadline=None, derandomize=False,
              phases=[Phase.generate, Phase.target, Phase.shrink],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(strategies.from_input_space(space))
    def drawn(inputs):
        sizes = space.sizes_of(inputs)
        inside = region.onto(sizes)  # joint budgets: moved onto the admitted region
        if inside != sizes:
            inputs = space.cut(inputs, inside)
        ms, mib = check(inputs, "a drawn")
        target(ms / max_ms, label="latency / budget")
        target(mib / max_mib if max_mib else 0.0, label="memory / budget")

    drawn()
    return seen


def assert_rejected_outside(policy, *, guard=None) -> int:
    """Fail unless the guard admits each limit and rejects one step past it.

    For every dimension: all other dimensions at their minimum, this one at its limit
    (admitted) and at limit + 1 (rejected, naming the dimension). For every integer input
    with a value domain: a value one past its maximum (rejected).

    Returns:
        How many inputs were checked.
    """
    from costlab.checks.guard import Guard

    pol = _policy(policy)
    guard = guard or Guard(pol, max_distinct=0)
    space = pol.space
    lo = {d.name: d.min for d in space.dims}
    checked = 0
    for d in space.dims:
        at = space.random_inputs({**lo, d.name: d.max}, seed=0)
        guard.check(at)  # raises InputRejected if the limit itself is refused
        past = space.random_inputs({**lo, d.name: d.max + 1}, seed=0)
        try:
            guard.check(past)
        except InputRejected as exc:
            assert exc.dimension == d.name, f"{d.name}={d.max + 1} was rejected for {exc.dimension!r}: {exc}"
        else:
            raise AssertionError(f"the guard admitted {d.name}={d.max + 1}, one past its limit {d.max}")
        checked += 2
    for j in pol.joint:
        # Each joint budget: its dimensions as even as their limits allow, measure one past it.
        off = {d: int((j.get("offsets") or {}).get(d, 0)) for d in j["dims"]}
        sizes = dict(lo)
        for d in j["dims"]:
            sizes[d] = max(lo[d], min(space.dim(d).max, int(round(j["max"] ** (1 / len(j["dims"]))) - off[d])))
        for d in sorted(j["dims"], key=lambda d: space.dim(d).max - sizes[d], reverse=True):
            rest = math.prod(sizes[o] + off[o] for o in j["dims"] if o != d)
            sizes[d] = max(lo[d], min(space.dim(d).max, j["max"] // rest + 1 - off[d]))
            if joint_value(sizes, j["dims"], off) > j["max"]:
                break
        if joint_value(sizes, j["dims"], off) <= j["max"]:
            continue  # the axis limits alone keep the measure under the joint maximum
        try:
            guard.check(space.random_inputs(sizes, seed=0))
        except InputRejected as exc:
            assert exc.dimension == j["name"], f"{sizes} was rejected for {exc.dimension!r}, not {j['name']!r}: {exc}"
        else:
            raise AssertionError(f"the guard admitted {sizes}, past the joint budget {j['name']} ≤ {j['max']}")
        checked += 1
    for spec in space.inputs:
        if spec.values.kind != "int":
            continue
        bad = space.random_inputs(lo, seed=0)
        arr = bad[spec.name]
        if np.iinfo(arr.dtype).max <= spec.values.max:
            continue
        arr.flat[0] = int(spec.values.max) + 1
        try:
            guard.check(bad)
        except InputRejected:
            pass
        else:
            raise AssertionError(f"the guard admitted {spec.name} value {int(spec.values.max) + 1}, past its "
                                 f"domain [{spec.values.min:g}, {spec.values.max:g}]")
        checked += 1
    return checked


def compare(baseline: dict, current: dict, *, tolerance: float = 0.25,
            time_tolerance: float | None = None) -> tuple[list[str], str]:
    """Problems and a readable diff between two `{target: {"exponents", "at_limits"}}`
    summaries (either may also carry `"consistent"`: per dimension, the `[power, log]` of
    every class its data cannot rule out). `time_tolerance` (default: `tolerance`) applies
    to wall-time costs, `tolerance` to the others."""
    problems, lines = [], [f"{'cost':14s} {'dimension/figure':22s} {'baseline':>16s} {'current':>16s}"]
    for t, old in baseline.items():
        new = current.get(t)
        if new is None:
            continue
        for d, e in old["exponents"].items():
            n = new["exponents"].get(d, e)
            mark = ""
            still = [tuple(x) for x in new.get("consistent", {}).get(d, [])]
            already = [tuple(x) for x in old.get("consistent", {}).get(d, [])]
            # noise moves the reported class among those the data cannot tell apart: only a
            # rise that the new data no longer reconcile with the old class, and that the
            # old data had ruled out, counts
            if ((n["power"], n["log"]) > (e["power"], e["log"]) and (e["power"], e["log"]) not in still
                    and (n["power"], n["log"]) not in already):
                problems.append(f"{t}: the growth class in {d} rose from {_cls(d, e)} to {_cls(d, n)}")
                mark = "  <- class rose"
            lines.append(f"{t:14s} {d:22s} {_cls(d, e):>16s} {_cls(d, n):>16s}{mark}")
        o, c = old["at_limits"], new["at_limits"]
        unit, k = COSTS[t].unit, COSTS[t].scale
        mark = ""
        tol = time_tolerance if t.startswith("wall") and time_tolerance is not None else tolerance
        if c > o * (1 + tol):
            problems.append(f"{t}: the cost at the baseline's limits grew {c / o:.2f}× "
                            f"({o * k:.3g} → {c * k:.3g} {unit}; tolerance {1 + tol:g}×)")
            mark = "  <- grew"
        lines.append(f"{t:14s} {'at the limits':22s} {o * k:>13.3g} {unit:<2s} {c * k:>13.3g} {unit:<2s}{mark}")
    return problems, "\n".join(lines)


def _cls(d, e) -> str:
    from costlab.curves import term_name

    return term_name({d: (e["power"], e["log"])})


#: Costs a regression check compares: the p95 is too noisy on a shared runner to gate on.
REGRESSION_TARGETS = ("wall_s_median", "peak_bytes")


def _limits_point(policy: Policy) -> pd.DataFrame:
    """Where "the cost at the limits" is read: the policy's most expensive admitted input
    (its corner for a 1.0 policy, which has no `worst_admitted`)."""
    sizes = (policy.worst_admitted or {}).get("sizes")
    return pd.DataFrame([sizes or {d: lim["max"] for d, lim in policy.limits.items()}])


def _unruled(m) -> dict:
    """Per dimension, every class the model's data cannot rule out: the consistent fits and
    the steeper growth the scatter may hide (`hidden_`). A class "rose" only when the new
    data rule out the old class and the old data ruled out the new one: timings from two
    runs on a shared machine differ in shape as well as in level."""
    rows = list(m.consistent_) + list(getattr(m, "hidden_", []))
    return {d: sorted({(c[d]["power"], c[d]["log"]) for c in rows}) for d in m.dims_}


def summarise(prof, policy: Policy, targets=REGRESSION_TARGETS) -> dict:
    """`{target: {"exponents", "at_limits", "consistent"}}`: classes, the predicted cost at
    the policy's most expensive admitted input, and per dimension the classes the data
    cannot rule out."""
    from costlab.curves import fit_profile

    corner = _limits_point(policy)
    out = {}
    for t, m in fit_profile(prof, targets).items():
        consistent = _unruled(m)
        out[t] = {"exponents": m.exponents_, "at_limits": float(m.predict(corner[m.dims_])[0]),
                  "consistent": consistent}
    return out


def assert_no_regression(model, baseline_dir, *, tolerance: float = 0.25, time_tolerance: float | None = 0.5,
                         points: int = 5, rounds: int = 1, targets=REGRESSION_TARGETS, **profile_kw) -> dict:
    """Fail when the model got more expensive than a stored baseline run.

    Profiles `model` over the baseline's input space, fits its curves, and compares with
    the baseline run's `cost_models.json`: a dimension whose growth class rose, or a cost
    at the baseline policy's limits more than `1 + tolerance` times the baseline's, fails
    with a table of old and new figures. When the only failures are about time, the model
    is profiled once more: each time figure at the limits is the smaller of the two, and a
    time class has risen only when both profiles show it rise. A timing regression must
    reproduce, not be one slow stretch of a shared runner (an unchanged `np.sin` read as
    n² once in CI, its cost at the limits 0.7× the baseline's). The new
    profile measures the values the baseline did (its policy's `value_pattern`).

    Args:
        model: A Keras model or an adapter.
        baseline_dir: A `costlab run` directory (`profile.json`, `cost_models.json`,
            `policy.json`).
        tolerance: Allowed relative growth of the memory cost at the limits. Defaults to `0.25`.
        time_tolerance: Allowed relative growth of the wall time at the limits: a shared
            runner's speed drifts by more than memory does (the same unchanged model read
            1.3–1.44× slower here hours after its baseline was measured). `None` uses
            `tolerance`. Defaults to `0.5`.
        targets: Costs compared. Defaults to `REGRESSION_TARGETS` (median time, peak memory).
        points: Sizes per slice of the new profile. Defaults to `5`.
        rounds: Rounds of the new profile. Defaults to `1`.
        **profile_kw: Passed to `costlab.profile`.

    Returns:
        `{"baseline", "current", "diff"}`.
    """
    from costlab.profiling.session import profile
    from costlab.rundir import Run

    base = Path(baseline_dir)
    for name in ("profile.json", "cost_models.json", "policy.json"):
        if not (base / name).is_file():
            raise CostlabError(f"{base} is not a costlab run directory: {name} is missing")
    stored = Run.load(base)
    pol, old_models = stored.policy, stored.cost_models
    corner = _limits_point(pol)
    baseline = {t: {"exponents": m.exponents_, "at_limits": float(m.predict(corner[m.dims_])[0]),
                    "consistent": _unruled(m)}
                for t, m in old_models.items() if t in targets}
    space = stored.profile.space
    profile_kw.setdefault("examples", 0)
    profile_kw.setdefault("progress", False)
    # the values the baseline was measured with (its value scan's pattern), so costs compare
    profile_kw.setdefault("values", pol.value_pattern)
    current = summarise(profile(model, space, points=points, rounds=rounds, **profile_kw), pol, targets)
    problems, diff = compare(baseline, current, tolerance=tolerance, time_tolerance=time_tolerance)
    if problems and all(p.startswith("wall_s_") for p in problems):
        # A timing regression must reproduce: a slow stretch of a shared runner is not the
        # model's cost. Profile once more; each time figure at the limits is the smaller of
        # the two, and a time class counts as risen only when both profiles show it rise.
        again = summarise(profile(model, space, points=points, rounds=rounds, **profile_kw), pol, targets)
        for t in current:
            if t.startswith("wall_s_") and t in again:
                current[t]["at_limits"] = again[t]["at_limits"] = min(current[t]["at_limits"], again[t]["at_limits"])
        problems, diff = compare(baseline, current, tolerance=tolerance, time_tolerance=time_tolerance)
        twice, _ = compare(baseline, {**current, **again}, tolerance=tolerance, time_tolerance=time_tolerance)
        risen = {p.split(" rose from ")[0] for p in twice if " rose from " in p}
        problems = [p for p in problems if " rose from " not in p or p.split(" rose from ")[0] in risen]
    assert not problems, ("cost regression against " + str(base) + ":\n  " + "\n  ".join(problems)
                          + "\n\n" + diff)
    return {"baseline": baseline, "current": current, "diff": diff}
