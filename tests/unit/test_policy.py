import json

import numpy as np
import pandas as pd
import pytest

from costlab import Budgets, CostModel, InputSpace, Policy, PolicyError, synthesize
from costlab.inputs.space import Dimension, InputSpec, ValueDomain
from costlab.policy import schema

SPACE = InputSpace((InputSpec("tokens", "int32", ("batch", "seq_len"), ValueDomain("int", 0, 999)),),
                   (Dimension("batch", 1, 64), Dimension("seq_len", 8, 1024)))


@pytest.fixture(scope="module")
def models():
    b, s = np.meshgrid([1, 2, 4, 8, 16, 32, 64], [8, 16, 32, 64, 128, 256, 512, 1024])
    X = pd.DataFrame({"batch": b.ravel(), "seq_len": s.ravel()})
    t = 1e-3 + 2e-9 * X.batch * X.seq_len**2
    m = 1e5 + 8.0 * X.batch * X.seq_len**2
    return {"wall_s_median": CostModel(target="wall_s_median").fit(X, t),
            "peak_bytes": CostModel(target="peak_bytes").fit(X, m)}


def _admitted_grid(policy):
    """Every admitted (batch, seq_len) on a fine grid: all batches × 200 sequence lengths."""
    b, sl = np.meshgrid(np.arange(1, 65), np.unique(np.geomspace(8, 1024, 200).astype(int)))
    X = pd.DataFrame({"batch": b.ravel(), "seq_len": sl.ravel()})
    return X[policy.region().contains(X)]


@pytest.mark.parametrize("joint", [False, True])
def test_every_admitted_input_stays_within_budget(models, joint):
    budgets = Budgets(latency_ms=20, memory_mib=64, margin=0.9)
    policy = synthesize(models, budgets, space=SPACE, joint=joint)
    X = _admitted_grid(policy)
    assert len(X) > 100
    assert (models["wall_s_median"].upper(X) * 1e3 <= 20 * 0.9 + 1e-9).all()
    assert (models["peak_bytes"].upper(X) / 2**20 <= 64 * 0.9 + 1e-9).all()
    worst = policy.data["worst_admitted"]
    assert policy.admits(worst["sizes"]) and worst["budget_fraction"] <= 0.9 + 1e-9
    assert {lim["limited_by"] for lim in policy.limits.values()} <= {"latency", "memory", "measured range"}


def test_box_limits_are_not_needlessly_tight(models):
    policy = synthesize(models, Budgets(latency_ms=20, memory_mib=64), space=SPACE, joint=False)
    assert policy.data["joint"] == []
    step = pd.DataFrame({d: [lim["max"] + 1] for d, lim in policy.limits.items()})
    over = max(models["wall_s_median"].upper(step)[0] * 1e3 / 18, models["peak_bytes"].upper(step)[0] / 2**20 / 57.6)
    assert over > 1


def test_a_joint_budget_admits_more_than_the_box(models):
    box = synthesize(models, Budgets(latency_ms=20, memory_mib=64), space=SPACE, joint=False)
    pol = synthesize(models, Budgets(latency_ms=20, memory_mib=64), space=SPACE)
    (j,) = pol.data["joint"]
    assert j["dims"] == ["batch", "seq_len"] and j["input"] == "tokens"
    frac = pol.data["admitted_fraction"]
    assert frac["policy"] > frac["box"] * 1.1 and frac["box"] == pytest.approx(box.data["admitted_fraction"]["box"])
    assert len(_admitted_grid(pol)) > len(_admitted_grid(box))
    # longer sequences at small batches, larger batches of short sequences
    assert pol.limits["seq_len"]["max"] > box.limits["seq_len"]["max"]
    assert pol.limits["batch"]["max"] > box.limits["batch"]["max"]
    # and the joint maximum binds: one more token on the worst joint input breaks a budget
    wider = Policy({**pol.to_dict(), "joint": [{**j, "max": int(j["max"] * 1.1)}]})
    extra = _admitted_grid(wider)
    extra = extra[~pol.region().contains(extra)]
    assert (models["wall_s_median"].upper(extra) * 1e3 > 18).any() or (models["peak_bytes"].upper(extra) / 2**20 > 57.6).any()


def test_request_and_serving_figures(models):
    cal = {"ratio_max": 1.25, "baseline_rss_mib": 700.0}
    tp = {"rps": 80.0, "concurrency": 2}
    churn = {"shapes": 16, "retraced": 2, "new_shape_cold_over_warm": 3.0, "rss_growth_mib_per_new_shape": 1.0}
    pol = synthesize(models, Budgets(20, 64, cores=2), space=SPACE, calibration=cal, throughput=tp, churn=churn,
                     measured_on={"cpu": "x", "cores": 8, "memory_bytes": 1, "os": "linux"})
    d = pol.data
    worst = d["worst_admitted"]
    # payload: the largest admitted input, JSON-encoded as a client would, fits
    X = _admitted_grid(pol)
    b, sl = X.assign(n=X.batch * X.seq_len).sort_values("n").iloc[-1][["batch", "seq_len"]]
    body = json.dumps({"inputs": {"tokens": np.full((int(b), int(sl)), 999).tolist()}})
    assert len(body) <= d["request"]["max_payload_bytes"] < 2 * len(body)
    assert int(b * sl * 4) <= d["request"]["max_payload_bytes_raw"] <= int(b * sl * 4 * 1.01)
    assert d["request"]["max_batch"] == pol.limits["batch"]["max"]
    assert d["request"]["max_merged_batch"] * pol.limits["seq_len"]["max"] <= d["joint"][0]["max"]
    assert d["request"]["timeout_ms"] == pytest.approx(np.ceil(3 * worst["upper"]["wall_s_median"] * 1e3))
    s = d["serving"]
    assert s["cpu"] == 2 and s["max_concurrency"] == 2 and s["concurrency_from"] == "cores"
    per = worst["upper"]["peak_bytes"] / 2**20 * 1.25
    assert s["per_request_memory_mib"] == pytest.approx(per)
    assert s["container_memory_request_mib"] >= 700 + 2 * per
    assert s["rate_limit_rps"] == pytest.approx(72.0) and s["burst"] == 2 + s["max_queue"]
    assert d["shapes"]["buckets"]["batch"][-1] == pol.limits["batch"]["max"]
    assert d["shapes"]["max_distinct"] >= d["shapes"]["padded_shapes"]
    assert d["inputs"]["tokens"]["values"] == {"kind": "int", "min": 0, "max": 999}
    # a process memory budget that holds only one worst request caps concurrency
    one = synthesize(models, Budgets(20, 64, cores=4, process_memory_mib=(700 + 1.5 * per) / 0.9), space=SPACE,
                     calibration=cal)
    assert one.data["serving"]["max_concurrency"] == 1 and one.data["serving"]["concurrency_from"] == "process memory"
    with pytest.raises(PolicyError, match="does not hold one request"):
        synthesize(models, Budgets(20, 64, process_memory_mib=500), space=SPACE, calibration=cal)


def test_budgets_from_a_file(tmp_path):
    (tmp_path / "b.yaml").write_text("latency_ms: 20\nmemory_mib: 64\nlatency_p99_ms: 50\ncores: 2\n")
    b = Budgets.from_file(tmp_path / "b.yaml", memory_mib=32, margin=None)
    assert (b.latency_ms, b.memory_mib, b.latency_p99_ms, b.cores, b.margin) == (20, 32, 50, 2, 0.9)
    (tmp_path / "c.json").write_text(json.dumps({"latency_ms": 20, "memory": 64}))
    with pytest.raises(PolicyError, match=r"unknown field\(s\) \['memory'\]"):
        Budgets.from_file(tmp_path / "c.json")
    with pytest.raises(PolicyError, match="not found"):
        Budgets.from_file(tmp_path / "absent.yaml")


def test_a_p99_budget_needs_a_p99_curve(models):
    with pytest.raises(PolicyError, match="needs a fitted `wall_s_p99`"):
        synthesize(models, Budgets(20, 64, latency_p99_ms=40), space=SPACE)


def test_version_1_0_policies_are_still_read():
    from pathlib import Path

    old = json.loads((Path(__file__).parents[2] / "data" / "policy_v1.0.json").read_text())
    assert old["schema_version"] == "1.0"
    assert Policy.from_dict(old).limits


def test_loose_budgets_stop_at_the_measured_range(models):
    policy = synthesize(models, {"latency_ms": 1e6, "memory_mib": 1e6}, space=SPACE)
    assert policy.limits["batch"]["max"] == 64 and policy.limits["seq_len"]["max"] == 1024
    assert policy.limits["batch"]["limited_by"] == "measured range"


def test_limits_never_exceed_what_was_measured():
    # The sweep stopped at batch=128 (a hard cap) although the space allows 4096.
    space = InputSpace((InputSpec("x", "float32", ("batch", 64), ValueDomain("float", -1, 1)),),
                       (Dimension("batch", 1, 4096),))
    n = np.array([1, 2, 4, 8, 16, 32, 64, 128])
    m = {"wall_s_median": CostModel(target="wall_s_median").fit(pd.DataFrame({"batch": n}), 1e-3 + 1e-6 * n)}
    policy = synthesize(m, {"latency_ms": 1e6, "memory_mib": 1e6}, space=space)
    assert policy.limits["batch"]["max"] == 128
    assert policy.limits["batch"]["limited_by"] == "measured range"
    assert synthesize(m, {"latency_ms": 1e6, "memory_mib": 1e6}, space=space,
                      extrapolate=2.0).limits["batch"]["max"] == 256


def test_budgets_no_input_can_meet_are_an_error(models):
    with pytest.raises(PolicyError, match=r"The latency budget cannot be met even by the smallest input"):
        synthesize(models, Budgets(latency_ms=0.001, memory_mib=64), space=SPACE)


@pytest.mark.parametrize("kwargs, message", [
    ({"latency_ms": -1, "memory_mib": 64}, r"`latency_ms`. Received: latency_ms=-1"),
    ({"latency_ms": 10, "memory_mib": float("nan")}, "memory_mib=nan"),
    ({"latency_ms": 10, "memory_mib": 64, "margin": 1.5}, "margin=1.5"),
])
def test_bad_budgets(kwargs, message):
    with pytest.raises(PolicyError, match=message):
        Budgets(**kwargs)


def test_written_policy_validates_and_round_trips(models, tmp_path):
    import jsonschema

    policy = synthesize(models, Budgets(20, 64), space=SPACE)
    path = tmp_path / "policy.json"
    policy.to_json(path)
    data = json.loads(path.read_text())
    jsonschema.validate(data, schema())
    assert Policy.from_json(path).to_dict() == data
    assert data["inputs"]["tokens"]["dims"][1]["name"] == "seq_len"
    assert data["complexity"]["peak_bytes"] == "O(batch · seq_len²)"


def _broken(policy, edit):
    data = policy.to_dict()
    edit(data)
    return data


@pytest.mark.parametrize("edit, message", [
    pytest.param(lambda d: d.update(schema_version="9.9"), r"field `schema_version`: unsupported version '9.9'", id="wrong-version"),
    pytest.param(lambda d: d["budgets"].pop("latency_ms"), r"field `budgets`: 'latency_ms' is a required", id="missing-budget"),
    pytest.param(lambda d: d["budgets"].update(memory_mib="lots"), r"field `budgets.memory_mib`", id="budget-not-number"),
    pytest.param(lambda d: d["limits"]["batch"].update(max=-3), r"field `limits.batch.max`", id="negative-limit"),
    pytest.param(lambda d: d["model"].update(sha256="xyz"), r"field `model.sha256`", id="bad-hash"),
    pytest.param(lambda d: d["limits"]["batch"].update(min=50, max=10), r"limits.batch`: min=50 is larger", id="min-over-max"),
])
def test_malformed_policies_name_the_field(models, tmp_path, edit, message):
    policy = synthesize(models, Budgets(20, 64), space=SPACE)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_broken(policy, edit)))
    with pytest.raises(PolicyError, match=message):
        Policy.from_json(path)


def test_not_json_and_missing_file(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("{not json")
    with pytest.raises(PolicyError, match="is not valid JSON"):
        Policy.from_json(path)
    with pytest.raises(PolicyError, match="not found"):
        Policy.from_json(tmp_path / "absent.json")


def _gru_like():
    """A GRU-like latency, a + b·seq_len + c·batch + d·batch·seq_len, and its space."""
    space = InputSpace((InputSpec("tokens", "int32", ("batch", "seq_len"), ValueDomain("int", 0, 999)),),
                       (Dimension("batch", 1, 512), Dimension("seq_len", 8, 1024)))
    b, s = np.meshgrid([1, 3, 8, 23, 64, 181, 512], [8, 16, 32, 64, 128, 256, 512, 1024])
    X = pd.DataFrame({"batch": b.ravel(), "seq_len": s.ravel()})
    t = 1.2e-3 + 5.8e-5 * X.seq_len + 1.1e-6 * X.batch + 4.8e-7 * X.batch * X.seq_len
    return space, CostModel(target="wall_s_median").fit(X, t)


def test_each_axis_maximum_reaches_where_its_own_cost_binds():
    """A GRU-like cost, a + b·seq_len + c·batch + d·batch·seq_len: the per-step term binds
    along seq_len, while long batches of short sequences stay cheap. The share-of-space
    choice of the joint budget alone stopped batch far short of that; each axis is then
    pushed as far as the worst admitted input stays within margin × budget."""
    space, model = _gru_like()
    budgets = Budgets(latency_ms=20, memory_mib=64, margin=0.9)
    pol = synthesize({"wall_s_median": model}, budgets, space=space)
    (j,) = pol.data["joint"]
    region = pol.region()
    for d, lim in pol.limits.items():
        if lim["limited_by"] == "latency":
            # one step further along d, with the joint maximum kept, breaks the budget
            from costlab.policy.region import Region, worst_input

            wider = Region(region.dims, region.lo, {**region.hi, d: int(lim["max"] * 1.05) + 1}, region.joint,
                            region.offsets)
            assert worst_input({"wall_s_median": model}, {"wall_s_median": model}, budgets, wider)[0] > 1, d
    # batch reaches the joint budget over the shortest sequence (or the range), not less
    batch = pol.limits["batch"]
    assert batch["max"] in (512, j["max"] // 8), batch
    assert batch["limited_by"] in ("joint budget", "measured range")
    worst = pol.data["worst_admitted"]
    assert worst["budget_fraction"] <= 0.9 + 1e-9


def test_a_joint_budget_follows_a_per_step_cost_with_an_offset():
    """The GRU-like cost above grows like (batch + a/β) × seq_len: its per-step term does not
    vanish at batch 1. A plain token budget binds only where sequences are longest; shifted
    by the offset the cost's elasticity gives, it follows the cost along its whole frontier
    and admits more of the space, every admitted input still within margin × budget."""
    from costlab.checks.guard import Guard, InputRejected
    from costlab.policy import joint_expression, joint_value

    space, model = _gru_like()
    budgets = Budgets(latency_ms=20, memory_mib=64, margin=0.9)
    shifted = synthesize({"wall_s_median": model}, budgets, space=space)
    plain = synthesize({"wall_s_median": model}, budgets, space=space, joint_offsets=False)
    (j,), (p,) = shifted.data["joint"], plain.data["joint"]
    assert p["offsets"] == {"batch": 0, "seq_len": 0}
    # a/β = 5.8e-5 / 4.8e-7 = 121 batch units; the constant and batch terms move it a little
    assert 60 <= j["offsets"]["batch"] <= 250 and j["offsets"]["seq_len"] < 60, j["offsets"]
    assert joint_expression(j).startswith(f"(batch + {j['offsets']['batch']}) × ")
    frac, frac_plain = shifted.data["admitted_fraction"], plain.data["admitted_fraction"]
    assert frac["policy"] > frac_plain["policy"] * 1.05, (frac, frac_plain)
    grid_b, grid_s = np.meshgrid(np.unique(np.geomspace(1, 512, 120).astype(int)),
                                 np.unique(np.geomspace(8, 1024, 120).astype(int)))
    G = pd.DataFrame({"batch": grid_b.ravel(), "seq_len": grid_s.ravel()})
    for pol in (shifted, plain):
        inside = G[pol.region().contains(G)]
        assert (model.upper(inside) * 1e3 <= 20 * 0.9 + 1e-9).all()
    # along each joint maximum (its measure within 3%), the cost: nearly flat with the offset,
    # far from the budget over much of the plain product's
    def along(pol, jj):
        inside = G[pol.region().contains(G)]
        on = inside[joint_value(inside, jj["dims"], jj["offsets"]) >= 0.97 * jj["max"]]
        return model.upper(on) * 1e3 / 18
    on_shifted, on_plain = along(shifted, j), along(plain, p)
    assert len(on_shifted) >= 10 and on_shifted.min() > 0.8, on_shifted.min()
    assert on_plain.min() < 0.6 < on_shifted.min(), on_plain.min()
    # the guard admits exactly the shifted region
    guard = Guard(shifted)
    for _, row in G.sample(300, random_state=0).iterrows():
        sizes = {"batch": int(row.batch), "seq_len": int(row.seq_len)}
        try:
            guard.check({"tokens": np.zeros((sizes["batch"], sizes["seq_len"]), np.int32)})
            admitted = True
        except InputRejected:
            admitted = False
        assert admitted == shifted.admits(sizes), sizes
    assert Policy.from_dict(json.loads(shifted.to_json())).region().offsets == {("batch", "seq_len"): j["offsets"]}


def test_within_margin_reads_latencies_at_a_scale_and_the_tail_only_when_budgeted():
    b = Budgets(latency_ms=10, memory_mib=10, latency_p99_ms=20)  # margin 0.9: 9 ms, 9 MiB, 18 ms p99
    assert b.within_margin(8.9, 8.9, 17.9)
    assert not b.within_margin(8.9, 8.9, 18.1) and not b.within_margin(8.9, 9.1, 1.0)
    assert not b.within_margin(8.9, 8.9, 17.9, scale=1.02)  # 9.08 ms at the planned speed
    assert b.within_margin(8.9, 8.9, None)  # tail not measured
    assert Budgets(latency_ms=10, memory_mib=10).within_margin(8.9, 8.9, 500.0)  # tail not budgeted


DRIFT_CHURN = {"shapes": 16, "retraced": 2, "new_shape_cold_over_warm": 3.0, "rss_growth_mib_per_new_shape": 1.0}


def test_a_policy_planning_for_shape_drift_keeps_its_drifted_frontier_within_budget(models, tmp_path):
    from costlab.runtime.drift import Drift

    budgets = Budgets(latency_ms=20, memory_mib=64, margin=0.9)
    plain = synthesize(models, budgets, space=SPACE, churn=DRIFT_CHURN)
    ms = lambda *v: {f"input {i}": x / 1e3 for i, x in enumerate(v)}  # noqa: E731
    d = Drift({"input 0": {}, "input 1": {}}, 100, 5, ms(10, 12), ms(15, 16), ms(10, 10), ms(10, 10))
    pol = synthesize(models, budgets, space=SPACE, churn=DRIFT_CHURN, drift=d.to_dict())
    assert pol.data["shapes"]["drift"]["planned_ms"] == pytest.approx(5.0)
    assert "drift" not in plain.data["shapes"]
    # a plan holds up to the shapes it was read at: one process takes no more (read at 30
    # shapes, under the 56 the churn allows)
    at30 = synthesize(models, budgets, space=SPACE, churn=DRIFT_CHURN, drift={**d.to_dict(), "shapes": 30})
    assert plain.data["shapes"]["max_distinct"] == pol.data["shapes"]["max_distinct"] == 56, plain.data["shapes"]
    assert at30.data["shapes"]["max_distinct"] == 30, at30.data["shapes"]
    assert "capped at the 30 shapes the drift planned for was read at" in at30.data["shapes"]["reason"]
    calm = synthesize(models, budgets, space=SPACE, churn=DRIFT_CHURN,
                      drift={**d.to_dict(), "shapes": 30, "planned_ms": 0.0})  # nothing planned: the cap stays
    assert calm.data["shapes"]["max_distinct"] == 56
    # nothing planned at 30, but a higher count was read first and drifted: held to 30
    back = synthesize(models, budgets, space=SPACE, churn=DRIFT_CHURN,
                      drift={**d.to_dict(), "shapes": 30, "planned_ms": 0.0,
                             "higher": [{"shapes": 60, "planned_ms": 3.2, "why": "over 0.25 of margin × latency budget"}]})
    assert back.data["shapes"]["max_distinct"] == 30, back.data["shapes"]
    assert "at 60 it added 3.20 ms (over 0.25 of margin × latency budget)" in back.data["shapes"]["reason"]
    back.to_json(tmp_path / "back.json")
    assert Policy.from_json(tmp_path / "back.json").data["shapes"]["drift"]["higher"][0]["shapes"] == 60
    # every admitted input stays within budget with the drift added to its time; without
    # planning for it, the policy admits inputs the drift takes over
    X = _admitted_grid(pol)
    assert (models["wall_s_median"].upper(X) * 1e3 + 5.0 <= 20 * 0.9 + 1e-9).all()
    assert (models["wall_s_median"].upper(_admitted_grid(plain)) * 1e3 + 5.0 > 20 * 0.9).any()
    worst = pol.data["worst_admitted"]
    assert worst["upper"]["wall_s_median"] * 1e3 <= 18 + 1e-9
    # round trip through the schema
    pol.to_json(tmp_path / "policy.json")
    again = Policy.from_json(tmp_path / "policy.json")
    assert again.data["shapes"]["drift"] == pol.data["shapes"]["drift"]
    assert again.data["schema_version"] == "1.6"
    # a drift the smallest input cannot carry is a clear error, not a policy
    with pytest.raises(PolicyError, match="cannot be met even by the smallest input"):
        synthesize(models, budgets, space=SPACE, churn=DRIFT_CHURN, drift={**d.to_dict(), "planned_ms": 30.0})


class _Bumped:
    """A cost model whose bound has a local bump at one interior input, as a bound
    calibrated locally (`CostModel.upper_factors`) may: it does not peak on the frontier."""

    def __init__(self, model, at: dict, height: float):
        self._model, self._at, self._height = model, at, height

    def __getattr__(self, name):
        return getattr(self._model, name)

    def upper(self, X, q=None):
        d2 = sum((np.asarray(X[d], float) - v) ** 2 / w for (d, v), w in zip(self._at.items(), (0.3, 0.5), strict=True))
        return self._model.upper(X) * (1 + self._height * np.exp(-d2))


def test_a_small_region_is_searched_input_by_input_where_the_bound_peaks_off_the_frontier(models, monkeypatch):
    """A CI run admitted batch 6, seq_len 57 at 2.709 ms against 2.7 allowed, while the
    frontier's grid read its worst at 2.689 at (7, 48): a locally calibrated bound need not
    peak on the frontier. A region of at most `EXHAUSTIVE` inputs is read input by input: it
    finds a bump between the grid's points, and every input the policy admits stays within
    margin × budget. The frontier search alone reads that region within budget."""
    from costlab.policy import region as R
    from costlab.policy.region import worst_input

    space = InputSpace(SPACE.inputs, (Dimension("batch", 1, 8), Dimension("seq_len", 8, 64)))
    bump = {"batch": 3, "seq_len": 42}  # between the grid's seq_len 40 and 44
    bumped = {"wall_s_median": _Bumped(models["wall_s_median"], bump, 0.6),
              "peak_bytes": models["peak_bytes"]}
    b, s = np.meshgrid(np.arange(1, 9), np.arange(8, 65))
    every = pd.DataFrame({"batch": b.ravel(), "seq_len": s.ravel()})
    region = R.Region(("batch", "seq_len"), {"batch": 1, "seq_len": 8}, {"batch": 8, "seq_len": 64})
    # the frontier's grid steps over the bump; a budget between the two binds only there
    grid = region.frontier()
    assert not ((grid.batch == bump["batch"]) & (grid.seq_len == bump["seq_len"])).any()
    on_grid = bumped["wall_s_median"].upper(grid).max() * 1e3
    at_bump = bumped["wall_s_median"].upper(pd.DataFrame([bump]))[0] * 1e3
    assert at_bump > on_grid * 1.3, (at_bump, on_grid)
    budgets = Budgets(latency_ms=(on_grid + at_bump) / 2 / 0.9, memory_mib=64, margin=0.9)

    def over(pol):  # admitted inputs whose bound is past margin × budget
        X = every[pol.region().contains(every)]
        return X[bumped["wall_s_median"].upper(X) * 1e3 > budgets.latency_ms * 0.9 + 1e-9]

    ratio, at, _, up = worst_input(bumped, bumped, budgets, region)
    assert at == bump, at
    assert up["wall_s_median"] > models["wall_s_median"].upper(pd.DataFrame([at]))[0] * 1.5
    pol = synthesize(bumped, budgets, space=space)
    assert over(pol).empty, over(pol)
    assert pol.data["worst_admitted"]["budget_fraction"] <= 0.9 + 1e-9
    # the frontier search alone (its sub-box refinement goes round the grid's worst, far
    # from the bump) reads the region within budget
    monkeypatch.setattr(R, "EXHAUSTIVE", 0)
    missed, at, _, _ = worst_input(bumped, bumped, budgets, region)
    assert missed <= 1 < ratio and at != bump, (missed, ratio, at)


def test_edge_points_of_a_region_with_every_other_dimension_pinned():
    """batch 1..1: seq_len's edge point is (1, its maximum), not an error (a drift check on
    such a policy once failed with `'int' object has no attribute 'idxmax'`)."""
    from costlab.policy import Region, edge_points

    region = Region(("batch", "seq_len"), {"batch": 1, "seq_len": 1}, {"batch": 1, "seq_len": 3})
    assert edge_points(region) == {"batch": {"batch": 1, "seq_len": 3}, "seq_len": {"batch": 1, "seq_len": 3}}
