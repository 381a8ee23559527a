"""Stages around the measurements fail without losing the policy; the throughput run uses
processes where the model cannot be called from two threads at once."""

import json
import os
import subprocess
import sys

import pytest

from costlab.adapters.callable import CallableAdapter
from costlab.inputs.space import Dimension, InputSpace, InputSpec, ValueDomain
from costlab.policy import synthesize
from costlab.runtime.throughput import measure

# A busy-wait model (2 µs per element) with a flaw a load test finds: `wearing` fails once
# its process has answered 200 calls (a leak that kills a long-lived server), `one_thread`
# fails when called from a thread other than the one that loaded it (as a Keras model on
# JAX fails when two threads call it at once).
MODELS = '''
import threading
import time

import numpy as np

from costlab.adapters.callable import CallableAdapter
from costlab.inputs.space import Dimension, InputSpace, InputSpec, ValueDomain

SPACE = InputSpace((InputSpec("x", "float32", ("batch", 16), ValueDomain("float", -1, 1)),),
                   (Dimension("batch", 1, 64),))
_calls = 0


def _busy(x):
    end = time.perf_counter() + 2e-6 * x.size
    while time.perf_counter() < end:
        pass
    return np.tanh(x).sum()


def wearing_fn(inputs):
    global _calls
    _calls += 1
    if _calls > 200:
        raise RuntimeError(f"worn out after {_calls - 1} calls in one process")
    return _busy(inputs["x"])


def one_thread_fn(inputs):
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("called off the thread that loaded the model")
    return _busy(inputs["x"])


def wearing():
    return CallableAdapter(wearing_fn, SPACE, name="wearing", ref="stagemodels:wearing_fn")
'''


@pytest.fixture
def models(tmp_path, monkeypatch):
    (tmp_path / "stagemodels.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the workers import it too
    import stagemodels

    return stagemodels


def test_a_stage_failing_after_the_measurements_still_writes_the_policy_and_exits_3(tmp_path, models):
    out = tmp_path / "run"
    # every probe in a fresh worker (at most 32 calls each): only the throughput run's
    # long-lived clients pass 200 calls in one process
    proc = subprocess.run(
        [sys.executable, "-m", "costlab.cli", "run", "stagemodels:wearing", "--latency-ms", "20",
         "--memory-mib", "256", "--out", str(out), "--set", "points=5", "--set", "rounds=1", "--set", "examples=0",
         "--set", "probe_time_s=0.02", "--set", "probes_per_worker=1", "--set", "refine=false", "--set", "settle=0", "--set", "boundary=false",
         "--set", "churn=0", "--set", "pulse=0", "--set", "values=random", "--set", "throughput_s=1"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr)
    policy = json.loads((out / "policy.json").read_text())
    assert policy["limits"]["batch"]["max"] >= 1 and "rate_limit_rps" not in policy["serving"]
    skipped = json.loads((out / "skipped.json").read_text())
    assert [k["stage"] for k in skipped] == ["throughput"]
    assert "worn out after 200 calls in one process" in skipped[0]["error"]
    assert skipped[0]["sizes"] == policy["worst_admitted"]["sizes"] and skipped[0]["repro"].endswith(".npz")
    assert (out / "failures" / skipped[0]["repro"]).is_file() and (out / "report.html").is_file()
    assert "stages skipped (1" in proc.stdout and "no measured rate limit" in proc.stdout
    assert "Stages skipped" in (out / "report.html").read_text()


def test_throughput_uses_processes_where_threads_cannot_call_the_model(models):
    adapter = CallableAdapter(models.one_thread_fn, models.SPACE, ref="stagemodels:one_thread_fn")
    out = measure(adapter, {"batch": 8}, concurrency=2, duration_s=0.5)
    assert out["mode"] == "processes" and out["copies"] == 2 and out["requests"] > 0
    assert "called off the thread" in out["threads_error"]
    threads = measure(adapter, {"batch": 8}, concurrency=1, duration_s=0.3, isolation="inprocess")
    assert threads["mode"] == "threads" and threads["copies"] == 1  # one client: called from this thread
    with pytest.raises(Exception, match=r"\(threads\) failed: .*called off the thread"):
        measure(adapter, {"batch": 8}, concurrency=2, duration_s=0.3, isolation="inprocess", mode="threads")


def test_the_container_counts_each_copy_of_the_model():
    import pandas as pd

    from costlab.curves import fit

    space = InputSpace((InputSpec("x", "float32", ("batch", 16), ValueDomain("float", -1, 1)),),
                       (Dimension("batch", 1, 64),))
    sizes = [1, 2, 4, 8, 16, 32, 64]
    table = pd.DataFrame({"batch": sizes, "wall_s_median": [1e-3 * b for b in sizes], "cpu_s_median": [1e-3 * b for b in sizes],
                          "peak_bytes": [2**20 * b for b in sizes], "status": "ok"})
    models = {t: fit(table, t, dims=["batch"]) for t in ("wall_s_median", "peak_bytes")}
    cal = {"baseline_rss_mib": 500.0, "ratio_max": 1.0}
    rate = {"rps": 100.0, "concurrency": 2, "copies": 1}
    budgets = {"latency_ms": 50, "memory_mib": 64, "cores": 2}
    one = synthesize(models, budgets, space=space, calibration=cal, throughput=rate).data["serving"]
    two = synthesize(models, budgets, space=space, calibration=cal, throughput={**rate, "copies": 2}).data["serving"]
    assert "model_copies" not in one and two["model_copies"] == 2
    assert two["container_memory_request_mib"] - one["container_memory_request_mib"] == pytest.approx(500, abs=16)
