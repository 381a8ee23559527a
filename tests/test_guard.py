import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from costlab import Guard, InputRejected, Policy
from costlab.guard import guarded
from costlab.policy import SCHEMA_VERSION


def _policy(**limits):
    lim = {"batch": (1, 8), "seq_len": (4, 32), **limits}
    return Policy({
        "schema_version": SCHEMA_VERSION,
        "model": {"name": "m", "sha256": "0" * 64, "framework": "keras", "versions": {}},
        "measured_on": {"cpu": "x", "cores": 1, "memory_bytes": 1, "os": "linux"},
        "budgets": {"latency_ms": 10, "memory_mib": 10, "margin": 0.9},
        "inputs": {"ids": {"dtype": "int32", "shape": ["batch", "seq_len"],
                           "dims": [{"name": n, "min": lo, "max": hi} for n, (lo, hi) in lim.items()],
                           "values": {"kind": "int", "min": 0, "max": 99}},
                   "mask": {"dtype": "float32", "shape": ["batch", "seq_len"],
                            "dims": [{"name": n, "min": lo, "max": hi} for n, (lo, hi) in lim.items()],
                            "values": {"kind": "float", "min": 0, "max": 1}}},
        "limits": {n: {"name": n, "min": lo, "max": hi} for n, (lo, hi) in lim.items()},
    })


GUARD = Guard(_policy())


def _ok(b=2, s=8):
    return {"ids": np.ones((b, s), "int32"), "mask": np.ones((b, s), "float32")}


def test_admits_inputs_inside_the_policy():
    out = GUARD.check(_ok(8, 32))
    assert out["ids"].shape == (8, 32) and out["ids"].dtype == np.int32
    assert GUARD.check({"ids": [[1, 2, 3, 4]], "mask": [[0.0, 1.0, 1.0, 1.0]]})["ids"].shape == (1, 4)


@pytest.mark.parametrize("inputs, fields, message", [
    pytest.param(_ok(2, 33), dict(input="ids", dimension="seq_len", limit=32, received=33, status=413),
                 "dimension `seq_len` is 33, over the limit 32", id="over-limit"),
    pytest.param(_ok(9, 8), dict(dimension="batch", limit=8, received=9), "over the limit 8", id="batch-over"),
    pytest.param(_ok(2, 3), dict(dimension="seq_len", limit=4, received=3), "under the minimum 4", id="under-min"),
    pytest.param({"ids": np.ones((2, 8), "int32"), "mask": np.ones((2, 9), "float32")},
                 dict(input="mask", dimension="seq_len", received=9), "must be equal across inputs", id="tie-broken"),
    pytest.param({**_ok(), "ids": np.full((2, 8), 100, "int32")}, dict(dimension="values", received=100),
                 r"values must be in \[0, 99\]. Received: 100", id="id-out-of-domain"),
    pytest.param({**_ok(), "ids": np.ones((2, 8), "float32")}, dict(dimension="dtype"), "must hold integers", id="float-ids"),
    pytest.param({**_ok(), "mask": np.full((2, 8), np.nan, "float32")}, dict(dimension="values"), "NaN", id="nan"),
    pytest.param({"ids": np.ones((2, 8), "int32")}, dict(), r"missing \['mask'\]", id="missing-input"),
    pytest.param({**_ok(), "ids": np.ones((2, 8, 1), "int32")}, dict(dimension="rank"), "must have 2 axes", id="rank"),
    pytest.param({**_ok(), "ids": [[1, 2], [3]]}, dict(input="ids"), "not a rectangular array", id="ragged"),
    pytest.param({**_ok(), "ids": np.array([["a"]])}, dict(dimension="dtype"), "must be numeric", id="strings"),
])
def test_rejections_name_input_dimension_limit_and_value(inputs, fields, message):
    with pytest.raises(InputRejected, match=message) as info:
        GUARD.check(inputs)
    for k, v in fields.items():
        assert getattr(info.value, k) == v, k


garbage = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3) | st.binary(max_size=3),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12)
arrays = hnp.arrays(st.sampled_from(["int32", "int64", "float32", "float64", "uint8", "bool"]),
                    hnp.array_shapes(min_dims=0, max_dims=3, max_side=40))


@given(st.one_of(garbage, arrays, st.fixed_dictionaries({"ids": arrays | garbage, "mask": arrays | garbage})))
def test_never_raises_anything_but_input_rejected(inputs):
    try:
        out = GUARD.check(inputs)
    except InputRejected:
        return
    # anything admitted is inside the policy
    b, s = out["ids"].shape
    assert 1 <= b <= 8 and 4 <= s <= 32 and out["mask"].shape == (b, s)
    assert out["ids"].min() >= 0 and out["ids"].max() <= 99
    assert np.isfinite(out["mask"]).all()


def test_huge_dimensions_are_rejected_without_allocating():
    huge = np.broadcast_to(np.int32(1), (2, 10**9))  # a view: no memory behind it
    with pytest.raises(InputRejected, match="over the limit 32") as info:
        GUARD.check({"ids": huge, "mask": np.ones((2, 8), "float32")})
    assert info.value.status == 413


def test_guarded_wraps_a_keras_model(zoo_models):
    model = zoo_models["attention"]
    pol = _policy()
    data = pol.to_dict()
    data["inputs"] = {"tokens": {**data["inputs"]["ids"], "values": {"kind": "int", "min": 0, "max": 999}}}
    call = guarded(model, Policy(data))
    assert call(np.ones((2, 8), "int32")).shape == (2, 2)
    with pytest.raises(InputRejected, match="over the limit 32"):
        call(np.ones((2, 64), "int32"))
