"""A model's own validity limits: found by fresh-process verdicts, never admitted past."""

import json

import pytest

import costlab
import costlab.adapters
from costlab.adapters.callable import CallableAdapter
from costlab.checks.guard import Guard
from costlab.inputs.space import Dimension, InputSpace, InputSpec, ValueDomain
from costlab.profiling.validity import hints

# A busy-wait model (2 µs per element) that refuses sequences over 200 (a position
# table) and under 12 (a kernel longer than the input), except that under 12 works in a
# process that has already run a sequence of 64 or more: whether such an input works
# depends on what the process ran before (as MobileNetV3 at (1, 16, 16) did in a warm
# worker, and failed in a fresh one).
GATED = '''
import time

_long = False


def model(inputs):
    global _long
    x = inputs["x"]
    n = x.shape[1]
    if n > 200:
        raise ValueError(f"indices[0,{n - 1}] = {n - 1} is not in [0, 200)")
    if n >= 64:
        _long = True
    if n < 12 and not _long:
        raise ValueError(f"Negative dimension size caused by subtracting 12 from {n}")
    end = time.perf_counter() + 2e-6 * x.size
    while time.perf_counter() < end:
        pass
    return float(x.sum())
'''

SPACE = InputSpace((InputSpec("x", "float32", ("batch", "seq_len", 4), ValueDomain("float", -1, 1)),),
                   (Dimension("batch", 1, 8), Dimension("seq_len", 4, 256)))


@pytest.fixture
def gated(tmp_path, monkeypatch):
    (tmp_path / "gated.py").write_text(GATED)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the workers import it too
    import gated

    return CallableAdapter(gated.model, SPACE, ref="gated:model")


def test_validity_limits_are_found_in_fresh_processes_and_never_admitted_past(gated, tmp_path):
    result = costlab.run(gated, {"latency_ms": 50, "memory_mib": 256}, tmp_path / "run", space=SPACE, points=5,
                         rounds=2, examples=0, probe_time_s=0.02, isolation="subprocess", refine=False, settle=0,
                         boundary=False, churn=0, throughput_s=0, pulse=0, values="random", drift_shapes=0)
    t = result.profile.table
    # the warm profiling worker ran seq_len 4 once it had seen longer sequences
    assert ((t["seq_len"] < 12) & (t["status"] == "ok")).any()
    lim = result.validity.limits["seq_len"]
    assert (lim["min"], lim["max"]) == (12, 200), lim  # to adjacent integers
    assert "batch" not in result.validity.limits
    assert "under 12: ValueError: Negative dimension size caused by subtracting 12 from 11" in lim["error"]
    assert "over 200: ValueError: indices[0,200] = 200 is not in [0, 200)" in lim["error"]
    fresh = {(v["sizes"]["seq_len"], v["status"]) for v in result.validity.verdicts if v["where"] == "fresh"}
    assert (11, "error") in fresh and (12, "ok") in fresh and (201, "error") in fresh and (200, "ok") in fresh
    limits = result.policy.limits["seq_len"]
    assert (limits["min"], limits["max"], limits["limited_by"]) == (12, 200, "model limit")
    policy = json.loads((tmp_path / "run" / "policy.json").read_text())
    assert policy["validity"]["limits"]["seq_len"]["max"] == 200 and policy["schema_version"] == "1.6"
    assert "validity limits" in result.summary() and "model limit" in result.summary()
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Validity limits" in html and "subtracting 12 from 11" in html
    report = costlab.verify(gated, result.policy, probes=8, tightness=False, pulse=0)
    fresh_rows = report.table[report.table["kind"].str.startswith("fresh:")]
    assert set(fresh_rows["kind"]) >= {"fresh:floor", "fresh:max:seq_len", "fresh:max:batch"}
    assert report.ok, report.summary()
    assert report.over_bound is not None  # the policy's curves were checked against every measurement
    # a policy whose curves say the model is 10× cheaper than it is: every measured input shows
    tampered = result.policy.to_dict()
    for curve in tampered["curves"].values():
        for term in curve["terms"] + (curve.get("steep_terms") or []):
            term["coef"] *= 0.1
    wrong = costlab.verify(gated, costlab.Policy(tampered), probes=6, tightness=False, pulse=0, fresh=False)
    assert len(wrong.over_bound) and wrong.over_bound["ratio"].max() > 3, wrong.over_bound
    assert "BOUND EXCEEDED" in wrong.summary()
    guard = Guard(result.policy)
    for n in (12, 200):
        guard.check(SPACE.random_inputs({"batch": 1, "seq_len": n}))
    for n in (11, 201):
        with pytest.raises(costlab.InputRejected, match="seq_len"):
            guard.check(SPACE.random_inputs({"batch": 1, "seq_len": n}))


def test_a_position_embeddings_length_is_a_hint():
    import keras

    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(50, 8)(tokens)

    class Positions(keras.layers.Layer):  # keras_hub's PositionEmbedding keeps `sequence_length`
        def __init__(self, sequence_length, **kw):
            super().__init__(**kw)
            self.sequence_length = sequence_length

        def call(self, x):
            return x

    model = keras.Model(tokens, keras.layers.Dense(2)(Positions(77)(x)))
    adapter = costlab.adapters.adapt(model)
    seq = [d.name for d in costlab.InputSpace.from_model(adapter).dims if d.name != "batch"]
    assert hints(adapter) == {seq[0]: 77}


def test_verify_counts_an_input_refused_in_a_fresh_process_as_a_violation(gated, tmp_path):
    """Without the validity search the policy admits seq_len 4, which only the warm
    profiling worker ran: verify's fresh floor refuses it."""
    result = costlab.run(gated, {"latency_ms": 50, "memory_mib": 256}, tmp_path / "run", space=SPACE, points=5,
                         rounds=2, examples=0, probe_time_s=0.02, isolation="subprocess", refine=False, settle=0,
                         boundary=False, churn=0, throughput_s=0, pulse=0, values="random", drift_shapes=0,
                         validity=False)
    assert result.policy.limits["seq_len"]["min"] < 12
    report = costlab.verify(gated, result.policy, probes=4, tightness=False, pulse=0)
    bad = report.violations
    assert "fresh:floor" in set(bad["kind"]), report.summary()
    assert bad[bad["kind"] == "fresh:floor"]["violation"].iloc[0].startswith("error in a fresh process: ValueError")


def test_refinement_never_plans_past_a_validity_maximum():
    import pandas as pd

    from costlab.curves import fit
    from costlab.pipeline.refine import widening
    from costlab.profiling.session import Profile

    sizes = [(b, n) for b in (1, 2, 4, 8) for n in (16, 32, 64, 128)]
    table = pd.DataFrame({"batch": [b for b, _ in sizes], "seq_len": [n for _, n in sizes], "status": "ok",
                          "wall_s_median": [1e-5 * b * n for b, n in sizes],
                          "cpu_s_median": [1e-5 * b * n for b, n in sizes],
                          "peak_bytes": [2**16 * b * n for b, n in sizes]})
    space = SPACE.with_bounds(seq_len=(16, 128))
    prof = Profile(table, space)
    models = {t: fit(table, t, dims=["batch", "seq_len"]) for t in ("wall_s_median", "peak_bytes")}
    grown = widening(prof, models, "seq_len", rounds=1)
    assert grown is not None and grown[1].dim("seq_len").max == 128 * 8  # predicted from the fit: cheap
    assert widening(prof, models, "seq_len", rounds=1, ceiling={"seq_len": 128}) is None
    capped = widening(prof, models, "seq_len", rounds=1, ceiling={"seq_len": 200})
    assert capped[1].dim("seq_len").max == 200


def test_a_keras_hub_backbones_max_sequence_length_is_a_hint():
    """keras_hub is installed without tensorflow-text (Makefile); its backbones build from a
    config with random weights, nothing downloaded."""
    import keras_hub
    bert = keras_hub.models.BertBackbone(vocabulary_size=100, num_layers=1, num_heads=1, hidden_dim=8,
                                         intermediate_dim=16, max_sequence_length=40)
    adapter = costlab.adapters.adapt(bert)
    assert hints(adapter) == {"seq_len": 40}


# A model that groups its sequence in fours (a reshape, as a patch or pooling step does),
# has a kernel of 12 and a position table of 200: it fails below a minimum, above a
# maximum and off a divisor.
GROUPED = '''
import time

import numpy as np


def model(inputs):
    x = inputs["x"]
    n = x.shape[1]
    if n > 200:
        raise ValueError(f"indices[0,{n - 1}] = {n - 1} is not in [0, 200)")
    if n < 12:
        raise ValueError(f"Negative dimension size caused by subtracting 12 from {n}")
    g = x.reshape(x.shape[0], -1, 4, x.shape[2])  # ValueError: cannot reshape ... off a multiple of 4
    end = time.perf_counter() + 2e-6 * x.size
    while time.perf_counter() < end:
        pass
    return float(g.sum())
'''


@pytest.fixture
def grouped(tmp_path, monkeypatch):
    (tmp_path / "grouped.py").write_text(GROUPED)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    import grouped

    return CallableAdapter(grouped.model, SPACE, ref="grouped:model")


def test_a_minimum_a_maximum_and_a_divisor_are_found_and_enforced(grouped, tmp_path):
    from hypothesis import given, settings

    from costlab import strategies

    result = costlab.run(grouped, {"latency_ms": 50, "memory_mib": 256}, tmp_path / "run", space=SPACE, points=6,
                         rounds=1, examples=0, probe_time_s=0.02, isolation="subprocess", refine=False, settle=0,
                         boundary=False, churn=0, throughput_s=0, pulse=0, values="random", drift_shapes=0)
    lim = result.validity.limits["seq_len"]
    assert (lim["min"], lim["max"], lim["multiple_of"]) == (12, 200, 4), lim
    assert "off multiples of 4: ValueError: cannot reshape" in lim["error"], lim["error"]
    fresh = {(v["sizes"]["seq_len"], v["status"]) for v in result.validity.verdicts if v["where"] == "fresh"}
    assert {(12, "ok"), (8, "error"), (200, "ok"), (204, "error")} <= fresh, fresh  # adjacent multiples
    checked = dict((s, v) for s, v in lim["checked"])
    assert all(checked.get(12 + r) == "error" for r in (1, 2, 3)), lim["checked"]  # each residue at the low end
    limits = result.policy.limits["seq_len"]
    assert (limits["min"], limits["max"], limits["multiple_of"]) == (12, 200, 4), limits
    assert "multiple_of" not in result.policy.limits["batch"]
    assert "multiples of 4" in result.summary()
    guard = Guard(result.policy)
    for n in (12, 16, 200):
        guard.check(SPACE.random_inputs({"batch": 1, "seq_len": n}))
    for n in (13, 199, 14):
        with pytest.raises(costlab.InputRejected, match="not a multiple of 4"):
            guard.check(SPACE.random_inputs({"batch": 1, "seq_len": n}))

    @settings(max_examples=25, database=None, deadline=None)
    @given(strategies.from_input_space(result.policy.space))
    def drawn(inputs):
        assert inputs["x"].shape[1] % 4 == 0

    drawn()
    region = result.policy.region()
    assert (region.frontier()["seq_len"] % 4 == 0).all()
    assert region.onto({"batch": 1, "seq_len": 199})["seq_len"] == 196
    report = costlab.verify(grouped, result.policy, probes=10, tightness=False, pulse=0)
    assert report.ok, report.summary()
    assert (report.table["status"] == "ok").all(), report.table[report.table["status"] != "ok"]


def test_token_ids_fit_an_embedding_nested_in_a_layer():
    """keras_hub's DistilBERT feeds its ids to a TokenAndPositionEmbedding, which holds the
    token table: the ids' domain is that table's, not the default 0..1023 (which raised
    `indices[0,58] = 1020 is not in [0, 1000)` on every probe)."""
    import keras_hub

    model = keras_hub.models.DistilBertBackbone(vocabulary_size=100, num_layers=1, num_heads=1, hidden_dim=8,
                                                intermediate_dim=16, max_sequence_length=40)
    space = costlab.InputSpace.from_model(model)
    ids = next(i for i in space.inputs if i.name == "token_ids")
    assert (ids.values.min, ids.values.max) == (0, 99)
