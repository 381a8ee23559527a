import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from costlab import Guard, InputRejected, Policy
from costlab.checks.guard import guarded
from costlab.policy import SCHEMA_VERSION


def _policy(joint=None, shapes=None, payload=10**6, offsets=None, **limits):
    lim = {"batch": (1, 8), "seq_len": (4, 32), **limits}
    extra = {"joint": [{"name": "batch×seq_len", "input": "ids", "dims": ["batch", "seq_len"], "max": joint,
                        **({"offsets": offsets} if offsets else {})}]
             if joint else [],
             "worst_admitted": {"sizes": {}, "predicted": {}, "upper": {}},
             "request": {"max_payload_bytes": payload},
             "serving": {"cpu": 1, "max_concurrency": 1, "max_queue": 1}}
    if shapes:
        extra["shapes"] = shapes
    return Policy({**extra,
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


@st.composite
def _near_boundary(draw):
    """Requests around the policy's edges: shapes 0–10 × 0–40 (limits 1–8 × 4–32), ids
    around [0, 99], masks sometimes non-finite, the mask's shape sometimes different."""
    shape = draw(st.tuples(st.integers(0, 10), st.integers(0, 40)))
    ids = draw(hnp.arrays("int32", shape, elements=st.integers(-3, 102) | st.integers(0, 99)))
    mask_shape = draw(st.just(shape) | st.tuples(st.integers(0, 10), st.integers(0, 40)))
    mask = draw(hnp.arrays("float32", mask_shape, elements=st.sampled_from([0.0, 1.0]) | st.sampled_from(
        [np.nan, np.inf, -np.inf, 3e38])))
    return draw(st.sampled_from([{"ids": ids, "mask": mask}, {"ids": ids}, ids]))


def test_the_distinct_shape_cap():
    guard = Guard(_policy(), max_distinct=1)
    guard.check(_ok(2, 8))
    guard.check(_ok(2, 8))  # a shape seen before is free
    with pytest.raises(InputRejected, match="cap of 1 distinct"):
        guard.check(_ok(2, 9))


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


JOINT = Guard(_policy(joint=64))


def test_joint_budget_admits_long_or_wide_but_not_both():
    assert JOINT.check(_ok(2, 32))["ids"].shape == (2, 32)  # 64 tokens: long sequences at a small batch
    assert JOINT.check(_ok(8, 8))["ids"].shape == (8, 8)  # and a full batch of short ones
    with pytest.raises(InputRejected, match=r"Joint budget `batch×seq_len` is 64; the input has batch=3 × "
                                            r"seq_len=32 = 96") as info:
        JOINT.check(_ok(3, 32))
    assert (info.value.dimension, info.value.limit, info.value.received, info.value.status) == (
        "batch×seq_len", 64, 96, 413)


@given(st.integers(1, 8), st.integers(4, 32))
def test_joint_guard_admits_exactly_the_policy_region(b, s):
    policy = JOINT.policy
    try:
        JOINT.check(_ok(b, s))
        admitted = True
    except InputRejected:
        admitted = False
    assert admitted == policy.admits({"batch": b, "seq_len": s}) == (b * s <= 64)


SHIFTED = Guard(_policy(joint=160, offsets={"batch": 2}))


def test_a_joint_budget_with_an_offset_counts_it():
    assert SHIFTED.check(_ok(3, 32))["ids"].shape == (3, 32)  # (3 + 2) × 32 = 160
    with pytest.raises(InputRejected, match=r"Joint budget `batch×seq_len` is 160; the input has "
                                            r"\(batch=4 \+ 2\) × seq_len=32 = 192") as info:
        SHIFTED.check(_ok(4, 32))
    assert (info.value.limit, info.value.received, info.value.status) == (160, 192, 413)


@given(st.integers(1, 8), st.integers(4, 32))
def test_shifted_joint_guard_admits_exactly_the_policy_region(b, s):
    try:
        SHIFTED.check(_ok(b, s))
        admitted = True
    except InputRejected:
        admitted = False
    assert admitted == SHIFTED.policy.admits({"batch": b, "seq_len": s}) == ((b + 2) * s <= 160)


def test_assert_rejected_outside_steps_past_a_shifted_joint_budget():
    from costlab.testing import assert_rejected_outside

    # per dimension: at its limit and one past it; the joint budget: one past it, (b + 2) × s
    assert assert_rejected_outside(SHIFTED.policy) == 2 * 2 + 1 + 1


def test_payload_size_is_checked_before_reading():
    guard = Guard(_policy(payload=1000))
    guard.check_payload(1000)
    with pytest.raises(InputRejected, match="Request body is 1001 bytes, over the limit 1000") as info:
        guard.check_payload("1001")
    assert info.value.status == 413
    with pytest.raises(InputRejected, match="whole number of bytes"):
        guard.check_payload("lots")


BUCKETS = {"buckets": {"batch": [1, 2, 4, 8], "seq_len": [4, 8, 16, 32]}, "max_distinct": 3}


def test_distinct_shape_cap_answers_429():
    guard = Guard(_policy(shapes=BUCKETS))
    for b, s in [(1, 4), (2, 5), (1, 4), (3, 7)]:
        guard.check(_ok(b, s))
    assert guard.distinct_shapes == 3
    guard.check(_ok(2, 5))  # seen before: still admitted
    with pytest.raises(InputRejected, match="cap of 3 distinct input shapes") as info:
        guard.check(_ok(4, 9))
    assert info.value.status == 429


def test_padding_to_buckets_bounds_distinct_shapes():
    guard = Guard(_policy(shapes={**BUCKETS, "max_distinct": 16}), pad=True)
    ids = np.arange(1, 16, dtype="int32").reshape(3, 5)
    out = guard.check({"ids": ids, "mask": np.ones((3, 5), "float32")})
    assert out["ids"].shape == (4, 8) and out["mask"].shape == (4, 8)
    assert (out["ids"][:3, :5] == ids).all() and out["ids"][3:].sum() == 0 and out["mask"][:, 5:].sum() == 0
    for b in range(1, 9):
        for s in range(4, 33):
            guard.check(_ok(b, s))
    assert guard.distinct_shapes == 16  # 4 batch buckets × 4 seq_len buckets
    with pytest.raises(ValueError, match="needs shape buckets"):
        Guard(_policy(), pad=True)


def _app(policy):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from costlab.checks.guard import GuardMiddleware

    async def predict(request):
        inputs = request.state.costlab_inputs
        body = await request.json()  # the body reaches the app unchanged
        return JSONResponse({"shape": list(inputs["ids"].shape), "echo": len(body["inputs"]["ids"])})

    async def health(request):
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)])
    return GuardMiddleware(app, policy)


def _post(app, body, **kw):
    import asyncio

    import httpx

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            if body is None:
                return await client.get("/health")
            return await client.post("/predict", **({"content": body} if isinstance(body, bytes) else {"json": body}),
                                     **kw)
    return asyncio.run(go())


def _req(b, s):
    return {"inputs": {"ids": [[1] * s] * b, "mask": [[1.0] * s] * b}}


def test_asgi_middleware_admits_and_rejects_with_status_and_reason():
    app = _app(_policy(joint=64, payload=4000, shapes=BUCKETS))
    ok = _post(app, _req(2, 8))
    assert ok.status_code == 200 and ok.json() == {"shape": [2, 8], "echo": 2}
    assert _post(app, None).json() == {"ok": True}  # other paths pass through
    big = _post(app, _req(3, 32))
    assert big.status_code == 413 and big.json()["dimension"] == "batch×seq_len" and big.json()["received"] == 96
    bad = _post(app, {"inputs": {"ids": [[1000] * 8], "mask": [[1.0] * 8]}})
    assert bad.status_code == 422 and bad.json()["dimension"] == "values" and bad.json()["received"] == 1000
    assert _post(app, b"{not json").status_code == 422
    huge = _post(app, b"[" + b"1," * 3000 + b"1]")
    assert huge.status_code == 413 and huge.json()["dimension"] == "payload_bytes"
    for b, s in [(1, 4), (1, 5)]:
        assert _post(app, _req(b, s)).status_code == 200
    many = _post(app, _req(1, 6))  # the fourth distinct shape
    assert many.status_code == 429 and many.json()["dimension"] == "distinct_shapes"


def test_fastapi_dependency():
    from typing import Annotated

    from fastapi import Depends, FastAPI

    from costlab.checks.guard import fastapi_dependency

    app = FastAPI()
    check = fastapi_dependency(_policy(joint=64))

    @app.post("/predict")
    async def predict(inputs: Annotated[dict, Depends(check)]):
        return {"shape": list(inputs["ids"].shape)}

    assert _post(app, _req(2, 8)).json() == {"shape": [2, 8]}
    r = _post(app, _req(8, 32))
    assert r.status_code == 413 and r.json()["detail"]["dimension"] == "batch×seq_len"
