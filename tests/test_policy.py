import json

import numpy as np
import pandas as pd
import pytest

from costlab import Budgets, CostModel, InputSpace, Policy, PolicyError, synthesize
from costlab.policy import schema
from costlab.space import Dimension, InputSpec, ValueDomain

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


def _corner(policy):
    return pd.DataFrame({d: [lim["max"]] for d, lim in policy.limits.items()})


def test_the_worst_admitted_input_stays_within_budget(models):
    budgets = Budgets(latency_ms=20, memory_mib=64, margin=0.9)
    policy = synthesize(models, budgets, space=SPACE)
    corner = _corner(policy)
    assert models["wall_s_median"].upper(corner)[0] * 1e3 <= 20 * 0.9
    assert models["peak_bytes"].upper(corner)[0] / 2**20 <= 64 * 0.9
    # and it is not needlessly tight: one step further on every axis breaks a budget
    step = corner + 1
    over = max(models["wall_s_median"].upper(step)[0] * 1e3 / 18, models["peak_bytes"].upper(step)[0] / 2**20 / 57.6)
    assert over > 1
    assert {lim["limited_by"] for lim in policy.limits.values()} <= {"latency", "memory"}


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
    with pytest.raises(PolicyError, match=r"latency_ms=0.001 cannot be met even by the smallest input"):
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
    pytest.param(lambda d: d.update(schema_version="9.9"), "Unsupported schema_version '9.9'", id="wrong-version"),
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
