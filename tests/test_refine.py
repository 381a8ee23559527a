"""Widening undetermined or unfitted dimensions, on a real zoo model."""

import numpy as np
import pytest

import costlab
from costlab import InputSpace
from costlab.adapters import CallableAdapter
from costlab.curves import fit_profile_notes
from costlab.inputs.space import Dimension, InputSpec, ValueDomain
from costlab.pipeline.refine import open_powers, refine, settle

QUICK = dict(points=5, examples=0, min_repeats=3, max_repeats=10, probe_time_s=0.1, progress=False)


@pytest.fixture(scope="module")
def mlp_first(zoo_models):
    model = zoo_models["mlp"]
    prof = costlab.profile(model, InputSpace.from_model(model).with_bounds(batch=(1, 64)), **QUICK)
    return model, prof, *fit_profile_notes(prof)


def test_a_cost_under_resolution_gets_measured_larger_and_fitted(mlp_first):
    model, prof, models, skipped = mlp_first
    assert "peak_bytes" in skipped  # batch <= 64: every peak under 1 MiB
    new, models2, skipped2, notes = refine(model, prof, models, skipped, **QUICK)
    assert "peak_bytes" not in skipped2
    assert models2["peak_bytes"].exponents_["batch"] == {"power": 1, "log": 0}
    assert new.table["batch"].max() > 64 and len(new.table) > len(prof.table)
    assert notes["batch"].startswith("measured up to batch=") and "peak_bytes" in notes["batch"]


def test_no_plan_predicted_over_the_caps_is_launched(mlp_first):
    model, prof, models, skipped = mlp_first
    new, _, _, notes = refine(model, prof, models, skipped, max_probe_s=1e-6, **QUICK)
    assert len(new.table) == len(prof.table)  # nothing measured
    assert "not widened" in notes["batch"]


def test_limits_stay_in_the_range_the_user_asked_for(zoo_models, tmp_path):
    model = zoo_models["mlp"]
    space = InputSpace.from_model(model).with_bounds(batch=(1, 64))
    run = costlab.run(model, {"latency_ms": 1e4, "memory_mib": 1e4}, tmp_path, space=space, isolation="inprocess", **QUICK)
    assert run.profile.table["batch"].max() > 64  # measured beyond, to fit memory
    assert run.policy.limits["batch"]["max"] == 64
    assert "peak_bytes" in run.cost_models


def test_widening_stops_once_every_cost_is_fitted(zoo_models):
    model = zoo_models["conv"]
    # Peaks up to 4 × 48² × 128 B = 1.1 MiB: too few rows over the 1 MiB resolution to fit, and
    # widening batch alone (×8) puts most of the plan over it. (At 8-16 pixels a side the
    # rows over 1 MiB after widening batch and height sat at the resolution itself, and which
    # of them cleared it depended on what the process had allocated before: flaky.)
    space = InputSpace.from_model(model).with_bounds(batch=(1, 4), height=(24, 48), width=(24, 48))
    # one round: peak memory, the cost under test, is deterministic (and each widening
    # profiles 3-D at new shapes, which costs tracing more than measuring)
    prof = costlab.profile(model, space, rounds=1, **QUICK)
    models, skipped = fit_profile_notes(prof)
    assert "peak_bytes" in skipped
    _, _, skipped2, notes = refine(model, prof, models, skipped, rounds=1, **QUICK)
    assert not skipped2
    assert list(notes) == ["batch"], notes  # widening stopped once every cost could be fitted


def test_widening_is_refused_when_predicted_over_the_caps(mlp_first):
    from costlab.pipeline.refine import widening

    _, prof, models, _ = mlp_first
    factor, region, seconds = widening(prof, models, "batch", **QUICK)
    assert factor == 8 and region.dim("batch").max == 8 * 64 and seconds > 0
    assert widening(prof, models, "batch", max_probe_s=1e-6, **QUICK) is None
    assert widening(prof, models, "batch", budget_s=1e-6, **QUICK) is None


def _sleeper(overhead_s, per_element_s):
    """Sleeps overhead + per element, off by up to ±2% fixed per size (seeded by it): a
    scatter that repeats cannot average away, as a real model's kernel choices are."""
    import time

    import numpy as np

    def call(inputs):
        n = inputs["x"].size
        time.sleep((overhead_s + per_element_s * n) * (1 + 0.02 * np.random.default_rng(n).uniform(-1, 1)))
    return call


SLEEP_SPACE = InputSpace((InputSpec("x", "float32", ("n",), ValueDomain("float", 0.0, 1.0)),),
                         (Dimension("n", 20_000, 30_000),))
SETTLE = dict(points=5, examples=0, rounds=1, min_repeats=3, max_repeats=5, probe_time_s=0.02, progress=False)


def _narrow_profile(fn):
    """A real profile of `fn` over n = 20-30 k whose times are then set to the sleeper's own
    nominal cost with its ±2% scatter: over this 1.5× range several powers fit them (the
    premise), however loaded the machine is while the test runs."""
    prof = costlab.profile(fn, SLEEP_SPACE, **SETTLE)
    n = prof.table["n"].to_numpy()
    nominal = np.array([(0.002 + 2e-8 * v) * (1 + 0.02 * np.random.default_rng(int(v)).uniform(-1, 1)) for v in n])
    for col in ("wall_s_median", "wall_s_p95", "wall_s_p99", "wall_s_min"):
        prof.table[col] = nominal
    return prof


def test_settle_measures_larger_sizes_until_an_open_power_is_decided():
    fn = CallableAdapter(_sleeper(0.002, 2e-8), SLEEP_SPACE)
    prof = _narrow_profile(fn)
    models, skipped = fit_profile_notes(prof)
    assert open_powers(models, "n")  # the premise: the narrow range cannot decide
    new, models2, _, notes = settle(fn, prof, models, skipped, passes=2, **SETTLE)
    assert new.table["n"].max() >= 4 * 30_000 and "measured up to n=" in notes["n"]
    assert {"power": 1, "log": 0} in [c["n"] for c in models2["wall_s_median"].consistent_]
    # the note tells how it ended, as the final fits have it
    assert notes["n"].endswith("now decided") == (not open_powers(models2, "n"))


def test_settle_says_why_it_stopped_and_measures_nothing_over_its_budget():
    fn = CallableAdapter(_sleeper(0.002, 2e-8), SLEEP_SPACE)
    prof = _narrow_profile(fn)
    models, skipped = fit_profile_notes(prof)
    assert open_powers(models, "n")
    new, _, _, notes = settle(fn, prof, models, skipped, budget_s=1e-6, **SETTLE)
    assert len(new.table) == len(prof.table)
    assert "stopped: larger sizes are predicted over the hard caps or the 1e-06 s budget" in notes["n"]


def _mixed(inputs):
    """Sleeps 2 ms + 4 µs per element, 1.5× that where s < b: at one product b × s the cost
    depends on the mix, as a CNN's does on its aspect ratio."""
    import time

    b, s = inputs["x"].shape
    time.sleep((0.002 + 4e-6 * b * s) * (1.5 if s < b else 1.0))


def _mixed_cost(X):
    return (0.002 + 4e-6 * X["b"] * X["s"]) * np.where(X["s"] < X["b"], 1.5, 1.0) * 1e3


MIXED_SPACE = InputSpace((InputSpec("x", "float32", ("b", "s"), ValueDomain("float", 0.0, 1.0)),),
                         (Dimension("b", 1, 256), Dimension("s", 1, 256)))


@pytest.mark.parametrize("share", [0.5, 2.0], ids=["from-under", "from-over"])
def test_a_joint_maximum_is_measured_on_its_whole_frontier(share):
    """From a joint maximum half, or twice, what the curves give, the search ends sound and
    tight against the analytic boundary."""
    from costlab.pipeline.refine import JOINT_BACKOFF, joint_boundary
    from costlab.policy import Budgets, synthesize

    fn = CallableAdapter(_mixed, MIXED_SPACE)
    prof = costlab.profile(fn, MIXED_SPACE, **SETTLE)
    models, _ = fit_profile_notes(prof)
    budgets = Budgets(latency_ms=40, memory_mib=1e4)
    curves = synthesize(models, budgets, space=MIXED_SPACE).data["joint"]
    assert curves, "the premise: a joint budget b × s"
    name = curves[0]["name"]
    pol = synthesize(models, budgets, space=MIXED_SPACE, joint_max={name: int(curves[0]["max"] * share)})
    new, found = joint_boundary(fn, prof, pol, models, **SETTLE)
    b = found[name]
    assert b["curve"] == pol.data["joint"][0]["max"] and b["probes"] > 0 and b["scale"] >= JOINT_BACKOFF
    assert (new.table["kind"] == f"joint:{name}").sum() == b["probes"]
    final = synthesize(models, budgets, space=MIXED_SPACE, joint_max={name: b["boundary"]})
    j = final.data["joint"][0]
    assert j["max"] == b["boundary"] and j["measured"] == {"curves_max": curves[0]["max"], "boundary": b["boundary"]}
    # sound: every input on the measured frontier costs at most margin × budget (a loaded
    # machine only slows the sleeps, which moves the boundary in) ...
    region = final.region()
    assert _mixed_cost(region.frontier(n=64)).max() <= 0.9 * 40 * 1.02

    def worst(value):  # the analytic cost of the most expensive input on a maximum of `value`
        r = type(region)(region.dims, region.lo, region.hi, [(j["dims"], value)], region.offsets, region.steps)
        return _mixed_cost(r.frontier(n=64)).max()
    # ... and tight: within 25% of the analytic boundary (at the search's own reading)
    analytic = next(v for v in np.geomspace(10 * j["max"], j["max"] / 10, 400) if worst(v) <= 0.9 * 40 / JOINT_BACKOFF)
    assert 0.75 * analytic <= j["max"] <= 1.02 * analytic, (j, analytic)


def test_joint_max_replaces_the_curves_and_drops_one_that_constrains_nothing():
    from costlab.policy import Budgets, synthesize

    fn = CallableAdapter(_mixed, MIXED_SPACE)
    prof = costlab.profile(fn, MIXED_SPACE, **SETTLE)
    models, _ = fit_profile_notes(prof)
    budgets = Budgets(latency_ms=40, memory_mib=1e4)
    pol = synthesize(models, budgets, space=MIXED_SPACE)
    j = pol.data["joint"][0]
    wide = synthesize(models, budgets, space=MIXED_SPACE, joint_max={j["name"]: 10**9})
    assert wide.data["joint"] == []
    assert {d: lim["max"] for d, lim in wide.limits.items()} == {d: lim["max"] for d, lim in pol.limits.items()}
    low = synthesize(models, budgets, space=MIXED_SPACE, joint_max={j["name"]: j["max"] // 4})
    lj = low.data["joint"][0]
    assert lj["max"] == j["max"] // 4 and not low.admits({d: lim["max"] for d, lim in pol.limits.items()})
    for d in lj["dims"]:  # each axis maximum is itself admitted, the others at their minimum
        assert low.admits({**{e: low.limits[e]["min"] for e in low.limits}, d: low.limits[d]["max"]})
