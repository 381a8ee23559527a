"""The tightness search of `costlab verify` (`costlab.checks.verify._tightness`), on a known cost."""

import numpy as np
import pandas as pd

from costlab import Budgets, CostModel, InputSpace, synthesize
from costlab.checks.verify import _spread, _tightness, bisect_limit
from costlab.inputs.space import Dimension, InputSpec, ValueDomain
from costlab.policy import Region, edge_points

SPACE = InputSpace((InputSpec("tokens", "int32", ("batch", "seq_len"), ValueDomain("int", 0, 999)),),
                   (Dimension("batch", 1, 64), Dimension("seq_len", 8, 1024)))


def _smooth(b, s):
    return 1e-3 + 2e-9 * b * s**2


def _smooth_policy():
    """A grid of sizes and the policy synthesised (plain joint budget) from `_smooth`'s curve."""
    grid_b, grid_s = np.meshgrid([1, 2, 4, 8, 16, 32, 64], [8, 16, 32, 64, 128, 256, 512, 1024])
    X = pd.DataFrame({"batch": grid_b.ravel(), "seq_len": grid_s.ravel()})
    model = CostModel(target="wall_s_median").fit(X, _smooth(X.batch, X.seq_len))
    budgets = Budgets(latency_ms=20, memory_mib=64, margin=0.9)
    return X, synthesize({"wall_s_median": model}, budgets, space=SPACE, joint_offsets=False)


def test_spread_reaches_the_far_ends_first_and_never_repeats():
    b = np.arange(1, 65)
    P = np.log(np.c_[b, np.floor(1000 / b)])
    picks = _spread(P, [0], 6)
    assert picks[0] == 0 and picks[1] == 63  # farthest from the first: the other end
    assert len(picks) == len(set(picks)) == 7
    # the middle of the frontier is covered: some pick within 20% of batch 8 (log-spaced)
    assert any(abs(np.log(b[i] / 8)) < np.log(1.2) for i in picks), [int(b[i]) for i in picks]
    assert _spread(P[:3], [0, 1, 2], 6) == [0, 1, 2]  # nothing left to add


def test_a_joint_boundary_admits_no_input_past_a_step_the_ranking_cannot_see():
    """The model costs 0.6× the curve the policy was synthesised from, so the joint budget
    could grow, but past 1.2× its maximum inputs with 16 ≤ batch ≤ 32 cost 4× as much (a
    kernel step, like zoo:sponge's loop going multi-threaded). The ranking is fitted on
    verify's smooth measurements, so the most expensive inputs it ranks are at the ends of
    the joint frontier; the search also measures inputs spread along it, and the boundary
    it reports admits no input over margin × budget."""
    X, policy = _smooth_policy()
    (j,) = policy.data["joint"]
    region = policy.region()

    def cost_ms(sizes):
        b, s = sizes["batch"], sizes["seq_len"]
        step = 4.0 if 16 <= b <= 32 and b * s > 1.2 * j["max"] else 1.0
        return 1e3 * 0.6 * _smooth(b, s) * step

    def measure(kind, sizes, inputs, i):
        return {"kind": kind, **sizes, "status": "ok", "error": "", "latency_ms": cost_ms(sizes),
                "latency_p99_ms": cost_ms(sizes), "memory_mib": 1.0}

    # verify's own probes, from which the ranking is fitted: smooth (none inside the step)
    rows = [{**measure("probe", {"batch": int(b), "seq_len": int(s)}, None, 0),
             "latency_ms": 1e3 * 0.6 * _smooth(b, s)} for b, s in zip(X.batch, X.seq_len, strict=True)]
    searched = []
    out = _tightness(policy, region, edge_points(region), rows, measure, steps=8, search_factor=4.0,
                     searched=searched)
    (found,) = [r for r in out if r["limit"] == j["name"]]
    assert any(16 <= r["batch"] <= 32 for r in searched), "the search never measured inside the step"
    # every input the reported boundary admits (a fine grid of its region) is within budget
    wider = Region(region.dims, region.lo, region.hi, [(j["dims"], found["boundary"])], region.offsets)
    b, s = np.meshgrid(np.arange(1, 65), np.unique(np.geomspace(8, 1024, 300).astype(int)))
    G = pd.DataFrame({"batch": b.ravel(), "seq_len": s.ravel()})
    assert found["boundary"] > j["max"], found  # the smooth part leaves room to grow
    worst = max(cost_ms(r) for r in G[wider.contains(G)].to_dict("records"))
    assert worst <= 0.9 * 20 + 1e-9, (found, worst)


def test_a_limit_past_its_boundary_reads_a_tightness_over_one():
    """The model costs 1.4× the curve the policy was synthesised from, so every limit lies
    past its boundary. The outward search finds nothing past the limit; it then checks the
    limit's own edge, which is over margin × budget, and bisects under it: the tightness
    reads over 1 (not 1.00, which would call the limit exact), and the boundary it reports
    admits no input over margin × budget while a limit 10% further would."""
    X, policy = _smooth_policy()
    (j,) = policy.data["joint"]
    region = policy.region()

    def cost_ms(sizes):
        return 1e3 * 1.4 * _smooth(sizes["batch"], sizes["seq_len"])

    def measure(kind, sizes, inputs, i):
        return {"kind": kind, **sizes, "status": "ok", "error": "", "latency_ms": cost_ms(sizes),
                "latency_p99_ms": cost_ms(sizes), "memory_mib": 1.0}

    rows = [measure("probe", {"batch": int(b), "seq_len": int(s)}, None, 0) for b, s in zip(X.batch, X.seq_len, strict=True)]
    out = _tightness(policy, region, edge_points(region), rows, measure, steps=8, search_factor=4.0)
    (found,) = [r for r in out if r["limit"] == j["name"]]
    assert found["boundary"] < j["max"] and found["tightness"] > 1.05, found
    b, s = np.meshgrid(np.arange(1, 65), np.unique(np.geomspace(8, 1024, 300).astype(int)))
    G = pd.DataFrame({"batch": b.ravel(), "seq_len": s.ravel()})

    def worst(value):
        wider = Region(region.dims, region.lo, region.hi, [(j["dims"], value)], region.offsets)
        return max(cost_ms(r) for r in G[wider.contains(G)].to_dict("records"))

    assert worst(found["boundary"]) <= 0.9 * 20 + 1e-9, found
    assert worst(1.1 * found["boundary"]) > 0.9 * 20, found  # and it is not far inside


def test_bisect_finds_a_boundary_under_its_start_even_past_half_of_it():
    """`bisect_limit` with `edge`: nothing past the start is within, nor the start's own edge, so
    the boundary is bisected under it; below half the start, the bracket's bottom halves
    until within, never under the smallest size. Without `edge` the start is taken as within (the outward search alone)."""
    for true in (700, 300, 90):
        within = lambda v, true=true: v <= true  # noqa: E731
        found, exact, _ = bisect_limit(within, 1000, 4000, 8, edge=within, bottom=500)
        assert exact and abs(found - true) <= max(1, 0.01 * true), (true, found)
    found, exact, _ = bisect_limit(lambda v: v <= 700, 1000, 4000, 8)
    assert found == 1000
    # nothing within down to the smallest size there is: it stops there, never under it
    asked = []
    found, exact, _ = bisect_limit(lambda v: asked.append(v) or v <= 3, 1000, 4000, 8,
                              edge=lambda v: asked.append(v) or v <= 3, bottom=500, floor=8)
    assert (found, exact) == (8, False) and min(asked) == 8, asked


def test_a_joint_search_under_the_limit_stops_at_the_smallest_input_s_measure():
    """A joint budget with offsets, (batch + 45) × (seq_len + 391), whose smallest input
    measures (1 + 45) × (8 + 391) = 18354, and a model over margin × budget everywhere but
    at the very smallest inputs: the search halves under the limit and stops at that
    measure (a maximum under it admits no input), instead of failing on an empty frontier."""
    from costlab import Policy

    _, policy = _smooth_policy()
    data = policy.to_dict()
    floor = (1 + 45) * (8 + 391)
    data["joint"][0].update(offsets={"batch": 45, "seq_len": 391}, max=int(1.4 * floor))
    policy = Policy.from_dict(data)
    (j,) = policy.data["joint"]
    region = policy.region()

    def measure(kind, sizes, inputs, i):
        ms = 1.0 if sizes["batch"] * sizes["seq_len"] <= 8 else 100.0
        return {"kind": kind, **sizes, "status": "ok", "error": "", "latency_ms": ms, "latency_p99_ms": ms,
                "memory_mib": 1.0}

    rows = [measure("probe", {"batch": b, "seq_len": s}, None, 0) for b, s in ((1, 8), (2, 16), (4, 32), (1, 64))]
    out = _tightness(policy, region, edge_points(region), rows, measure, steps=4, search_factor=4.0)
    (found,) = [r for r in out if r["limit"] == j["name"]]
    assert found["boundary"] == floor and not found["exact"] and found["tightness"] > 1.3, found
