"""Beyond TensorFlow: candle models, and the same Keras model under three backends."""

import json

import numpy as np
import pytest

import costlab
from costlab import InputSpace, profile
from costlab.adapters.memory import JaxDevicePeak, TorchCudaPeak
from costlab.loading import load

candle = pytest.importorskip("candle", reason="the candle extra (candle-nn) is part of the dev install")

FAST = dict(examples=0, min_repeats=3, max_repeats=5, probe_time_s=0.05, progress=False)


@pytest.mark.parametrize("backend, memory", [("tensorflow", "tf_allocator"), ("jax", "process_vmhwm"),
                                             ("torch", "process_vmhwm")])
def test_the_same_zoo_model_under_each_keras_backend(backend, memory):
    adapter = load("zoo:attention")
    space = InputSpace.from_model(adapter, bounds={"batch": (1, 4), "seq_len": (8, 64)})
    prof = profile(adapter, space, points=3, rounds=1, backend=backend, **FAST)
    t = prof.table
    assert (t["status"] == "ok").all(), t["error"].tolist()
    assert set(t["isolation"]) == {"subprocess"}  # a backend is fixed per process
    assert prof.model["versions"]["backend"] == backend and backend in prof.model["versions"]
    assert set(t["memory_source"]) == {memory}
    assert json.loads(t["env"].iloc[0]).get("KERAS_BACKEND") == backend
    assert prof.model["weights_sha256"] == adapter.weights_sha256()  # the same weights on every backend


def test_candle_bert_clips_its_space_to_the_model_limits():
    bert = load("candle:bert")
    assert bert.space.dim("seq_len").max == bert.hard_limits["seq_len"] == 512
    ids = bert.space.inputs[0]
    assert (ids.values.min, ids.values.max) == (0, 999)  # below vocab_size
    assert load("candle:bert").sha256() == bert.sha256()  # weights from a fixed seed


def test_candle_failures_past_its_limits_are_recorded_not_fatal():
    bert = load("candle:bert")
    space = InputSpace.from_model(bert, bounds={"batch": (1, 2), "seq_len": (8, 1024)})
    prof = profile(bert, space, points=4, rounds=1, isolation="subprocess", **FAST)
    t = prof.table
    bad = t[t["seq_len"] > 512]
    assert len(bad) >= 1 and set(bad["status"]) == {"error"}
    assert bad["error"].str.contains("index-select").all() and not bad["error"].str.contains("backtrace").any()
    assert (t[t["seq_len"] <= 512]["status"] == "ok").all()
    assert set(t["memory_source"]) == {"process_vmhwm"}
    big = np.full((1, 4), 5000, dtype=np.uint32)  # ids past vocab_size raise too
    with pytest.raises(Exception, match="index-select"):
        bert({"input_ids": big, "token_type_ids": np.zeros_like(big)})


def test_candle_bert_policy_respects_max_position_embeddings(tmp_path):
    bert = load("candle:bert")
    space = InputSpace.from_model(bert, bounds={"batch": (1, 2), "seq_len": (8, 512)})
    run = costlab.run(bert, {"latency_ms": 5000, "memory_mib": 4096}, tmp_path, space=space, points=4,
                      rounds=1, churn=0, isolation="inprocess", **FAST)
    lim = run.policy.limits["seq_len"]
    assert lim["max"] == 512 and lim["limited_by"] == "model limit"
    assert run.policy.data["model"]["hard_limits"] == {"seq_len": 512}
    report = costlab.verify(bert, run.policy, probes=6, tightness=False, min_repeats=3, probe_time_s=0.05, progress=False)
    assert report.ok, report.summary()


class _FakeDevice:
    """Stands in for a GPU's `memory_stats()`; XLA's CPU client has none."""

    def __init__(self):
        self.stats = {"bytes_in_use": 100, "peak_bytes_in_use": 100}

    def memory_stats(self):
        return dict(self.stats)


def test_jax_device_peak_reads_growth_over_the_earlier_peak():
    dev = _FakeDevice()
    src = JaxDevicePeak(dev)
    assert src.available()
    src.reset()
    dev.stats.update(peak_bytes_in_use=5000)
    assert src.peak() == 4900
    src.reset()
    dev.stats.update(peak_bytes_in_use=5000)  # under the earlier peak: JAX cannot tell
    assert src.peak() == 0


def test_gpu_sources_are_off_on_cpu_hosts():
    import jax

    assert not JaxDevicePeak(jax.devices()[0]).available()
    assert not TorchCudaPeak.available()


def test_jax_throughput_runs_one_process_per_client():
    """Two threads calling a JAX-backed Keras model at once fail ("Buffer has been deleted
    or donated"); the throughput stage measures JAX with one process per client."""
    from costlab.runtime.throughput import measure

    out = measure(load("zoo:attention"), {"batch": 2, "seq_len": 32}, concurrency=2, duration_s=0.5, backend="jax")
    assert out["status"] == "ok" and out["mode"] == "processes" and out["copies"] == 2 and out["requests"] > 2
