"""Isolated probes: hostile models are recorded, not fatal; a killed run resumes exactly."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from costlab import CostlabError, ModelLoadError, profile, zoo
from costlab.adapters import CallableAdapter
from costlab.loading import load
from costlab.profiling.table import read_log

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux rlimits and /proc")

FAST = dict(examples=0, min_repeats=3, probe_time_s=0.05)


def _hostile(name, **kw):
    adapter = load(f"zoo:{name}")
    space = adapter.space.with_bounds(mib=(1, 1024))
    # The time predictor (max_probe_s) is out of the way: on a loaded machine the bomb's
    # 10 → 102 MiB times can extrapolate past the 5 s default and the 1 GiB probe is then
    # never launched (test_a_probe_predicted_over_the_cap_is_never_launched covers that).
    return profile(adapter, space, points=4, rounds=2, isolation="subprocess", max_probe_s=600, **FAST, **kw)


def test_allocation_past_the_cap_is_oom_and_the_run_goes_on():
    prof = _hostile("bomb", memory_cap_mib=256)
    t = prof.table
    assert set(t["status"]) == {"ok", "oom"}
    oom = t[t["status"] == "oom"]
    assert (oom["mib"] > 256).all() and "MemoryError" in oom["error"].iloc[0]
    # below the cap the process peak sees the allocation (10 and 102 MiB, touched) the first
    # time; later rounds in the same worker may read less (glibc keeps part of the heap)
    ok = t[(t["status"] == "ok") & (t["mib"] >= 10) & (t["round"] == 0)]
    assert ((ok["peak_bytes"] / (ok["mib"] * 2**20)).between(0.95, 1.1)).all(), ok[["mib", "peak_bytes"]]
    # the second round still ran the sizes under the cap
    assert len(t[(t["round"] == 1) & (t["status"] == "ok")]) == 3


def test_a_hanging_probe_times_out_and_a_new_worker_takes_over():
    prof = _hostile("hang", timeout_s=3)
    t = prof.table
    bad = t[t["status"] == "timeout"]
    assert len(bad) == 1 and bad["mib"].iloc[0] >= zoo.HOSTILE_FROM_MIB
    assert "no result within 3 s" in bad["error"].iloc[0]
    later = t[t["round"] == 1]
    assert (later["status"] == "ok").all() and len(later) == 2
    assert set(later["worker_pid"]).isdisjoint(set(t[t["round"] == 0]["worker_pid"]))
    assert (later["worker_probe"].iloc[0] == 0)  # a fresh worker


@pytest.mark.slow
def test_a_run_never_sends_an_input_as_large_as_one_that_timed_out(tmp_path):
    """`costlab.measurement.hazards`: the timeout follows from the latency budget (13.3 s
    at 20 ms and these repeats after the first probe, not a fixed minute), and after a
    probe times out no stage of the run (value scan, plan rounds, validity, refinement,
    churn) sends anything as large with the same values again."""
    import costlab

    adapter = load("zoo:hang")
    space = adapter.space.with_bounds(mib=(1, 256))  # 5 sizes of 7 under the hang: a curve to fit
    run = costlab.run(adapter, {"latency_ms": 20, "memory_mib": 64}, tmp_path / "run", space=space, preset="quick",
                      points=7, rounds=2, examples=2, probe_time_s=0.05, throughput_s=0)
    rows = read_log(tmp_path / "run" / "probes.jsonl")
    sent = [r for r in rows if r["status"] == "timeout" and not r["error"].startswith("not sent")]
    assert sent, "the hang was reached"
    for r in sent:  # each from the rule: 10 s allowance + 0.05 s + 5 calls × 20 × 20 ms
        assert "no result within 12.05 s" in r["error"], r["error"]
    first = min(r["mib"] for r in sent)
    assert first >= zoo.HOSTILE_FROM_MIB
    # every later row as large as a sent timeout was not sent
    for r in rows:
        earlier = [t for t in sent if t["finished_at"] < r["finished_at"] and t["values"] == r["values"]]
        if any(r["mib"] >= t["mib"] for t in earlier):
            assert r["error"].startswith("not sent"), r
    hazards = json.loads((tmp_path / "run" / "hazards.json").read_text())
    assert hazards["rule"] == "budgets" and hazards["timeout_s"] == pytest.approx(12.05)
    assert len(hazards["failed"]) == len(sent) and hazards["not_sent"] >= 1
    churned = json.loads((tmp_path / "run" / "churn.json").read_text())["rows"]
    assert all(c["mib"] < first or c["error"].startswith("not sent") for c in churned)
    assert run.policy.limits["mib"]["max"] < first


def test_a_probe_that_kills_its_process_is_recorded_as_crashed():
    prof = _hostile("abort")
    t = prof.table
    crashed = t[t["status"] == "crashed"]
    assert len(crashed) == 1 and "SIGABRT" in crashed["error"].iloc[0]
    assert (t[t["round"] == 1]["status"] == "ok").all()


def test_every_row_records_where_and_how_it_ran():
    prof = profile(zoo.build("mlp"), points=2, rounds=1, **FAST).table
    row = prof.iloc[0]
    env = json.loads(row["env"])
    assert row["isolation"] == "inprocess" and row["call"] == "predict_on_batch"
    assert {"tensorflow", "keras", "numpy", "python", "cpu", "intra_op_threads"} <= set(env)
    assert row["worker_pid"] == os.getpid()
    assert row["process_peak_bytes"] > 0 and row["rss_before_bytes"] > 0


def test_known_allocation_in_a_fresh_worker_matches_the_truth():
    from costlab import InputSpace

    adapter = load("zoo:alloc")
    n = 64 * 1024  # 1024 · n bytes = 64 MiB
    space = InputSpace.from_model(adapter, bounds={"batch": (1, 1), "seq_len": (n, n)})
    prof = profile(adapter, space, points=1, rounds=1, isolation="subprocess", probes_per_worker=1, **FAST)
    row = prof.table.iloc[0]
    truth = 1024 * n
    assert row["status"] == "ok" and row["memory_source"] == "tf_allocator"
    assert abs(row["peak_bytes"] - truth) <= 0.05 * truth, row["peak_bytes"] / 2**20
    # the process sees the tensor plus the allocator's and the runtime's own growth
    assert truth * 0.95 <= row["process_delta_bytes"] <= truth * 1.5, row["process_delta_bytes"] / 2**20
    cal = prof.calibration()
    assert cal["rows"] == 1 and cal["ratio_median"] == pytest.approx(row["process_delta_bytes"] / row["peak_bytes"])
    assert cal["baseline_rss_mib"] == pytest.approx(row["rss_before_bytes"] / 2**20)


def test_bad_isolation_settings_are_named():
    with pytest.raises(CostlabError, match="isolation.*Received: 'thread'"):
        profile(zoo.build("mlp"), isolation="thread")
    with pytest.raises(CostlabError, match="resume=True.*log_path"):
        profile(zoo.build("mlp"), resume=True)
    space = load("zoo:bomb").space
    with pytest.raises(CostlabError, match="callable a worker can import"):
        profile(CallableAdapter(lambda x: 0, space), isolation="subprocess", **FAST)


def test_a_worker_that_cannot_load_the_model_says_why():
    space = load("zoo:bomb").space
    adapter = CallableAdapter(np.sum, space, ref="no_such_module_xyz:fn")
    with pytest.raises(ModelLoadError, match="no_such_module_xyz"):
        profile(adapter, space, isolation="subprocess", **FAST)


def _allocating_preprocess(inputs):
    scratch = np.ones((64, 2**20 // 8))  # 64 MiB, touched
    out = {k: v * float(scratch[0, 0]) for k, v in inputs.items()}
    return out


def test_preprocess_is_measured_with_the_model_and_line_by_line():
    prof = profile(zoo.build("mlp"), points=2, rounds=1, preprocess=_allocating_preprocess, **FAST)
    assert prof.table["call"].iloc[0] == "_allocating_preprocess+predict_on_batch"
    lines = prof.preprocess
    big = lines[lines["code"].str.contains("np.ones")]
    assert len(big) == 1 and big["increment_mib"].iloc[0] >= 48, lines


def _costlab(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "costlab.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_without_loss_or_duplicates(tmp_path):
    args = ["run", "zoo:mlp", "--latency-ms", "50", "--memory-mib", "64", "--set", "points=4", "--set", "rounds=2",
            "--set", "examples=3", "--set", "probe_time_s=0.05", "--set", "refine=false", "--set", "settle=0", "--isolation", "subprocess",
            "--set", "boundary=false", "--set", "churn=0", "--set", "throughput_s=0", "--set", "values=random",
            "--set", "validity=false"]
    # no refine, settle, boundary or value scan: what they measure depends on noisy times
    # (fits, the scan's second looks), so the two runs' plans could differ; the plan measured
    # must be the same to compare them probe by probe (the scan resumes from its log:
    # tests/test_fuzz.py). No churn, concurrent run or validity search either: they are not in
    # the probe log.
    whole = _costlab(*args, "--out", str(tmp_path / "whole"))
    assert whole.wait(timeout=600) == 0, whole.stderr.read()
    expected = [(r["plan"], r["probe"]) for r in read_log(tmp_path / "whole" / "probes.jsonl")]

    out = tmp_path / "killed"
    log = out / "probes.jsonl"
    victim = _costlab(*args, "--out", str(out))
    deadline = time.time() + 300
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 5):
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    before = read_log(log)
    assert 5 <= len(before) < len(expected), "the kill should land mid-run"

    resumed = _costlab(*args, "--out", str(out), "--resume")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    after = read_log(log)
    keys = [(r["plan"], r["probe"]) for r in after]
    assert len(keys) == len(set(keys)), "a probe was logged twice"
    assert sorted(keys) == sorted(expected)
    table = pd.read_csv(out / "profile.csv")
    assert list(zip(table["plan"], table["probe"], strict=True)) == expected
    # rows measured before the kill are kept as they were, not measured again
    kept = table.set_index("probe").loc[[r["probe"] for r in before], "wall_s_median"]
    assert np.allclose(kept.to_numpy(), [r["wall_s_median"] for r in before])
    assert Path(out / "policy.json").is_file()


def test_a_probe_predicted_over_the_cap_is_never_launched():
    adapter = load("zoo:bomb")
    space = adapter.space.with_bounds(mib=(1, 4096))
    prof = profile(adapter, space, points=8, rounds=1, isolation="subprocess", max_probe_mib=200,
                   memory_cap_mib=1024, **FAST)
    t = prof.table
    assert (t["status"] == "ok").all(), "nothing over the cap was run"
    assert t["mib"].max() < 200
    (skipped,) = prof.not_launched
    assert skipped["over"] == "memory" and skipped["predicted_mib"] > 200
    assert skipped["sizes"]["mib"] > t["mib"].max()


def test_verify_workers_take_at_most_the_policys_distinct_shapes():
    """`verify.ShapeCapped`: a shape one too many for the current worker goes to a fresh
    worker (a server behind the guard's shape cap never shows one process more); shapes a
    worker has seen stay with it."""
    from costlab.checks.verify import ShapeCapped
    from costlab.inputs.space import InputSpace
    from costlab.measurement.executors import Subprocess

    adapter = load("zoo:mlp")
    space = InputSpace.from_model(adapter)
    with ShapeCapped(lambda: Subprocess(adapter, memory_cap_mib=1024, timeout_s=60, min_repeats=2, max_repeats=3),
                     2) as ex:
        pids = [ex.probe(space.random_inputs({"batch": b}))["worker_pid"] for b in (1, 2, 1, 2, 3, 3, 1, 2)]
    assert ex.workers == 3, pids
    assert pids[0] == pids[1] == pids[2] == pids[3] != pids[4] == pids[5] == pids[6] != pids[7], pids


def test_pulses_run_in_a_worker_of_their_own_that_outlives_the_probe_workers():
    """The machine-speed reference input is measured in its own worker (`Subprocess.pulse`):
    it never sees the probes' shapes, so a model that slows as shapes accumulate in a process
    (zoo:masked, benchmarks/shape_drift.py) does not read as a slow machine; and under
    verify's shape cap the reference shape counts against no probe worker."""
    from costlab.checks.verify import ShapeCapped
    from costlab.inputs.space import InputSpace
    from costlab.measurement.executors import Subprocess

    adapter = load("zoo:mlp")
    space = InputSpace.from_model(adapter).with_bounds(batch=(1, 64))
    prof = profile(adapter, space, points=4, rounds=1, isolation="subprocess", pulse={"every": 2}, **FAST)
    t = prof.table
    pulses, probes = t[t["kind"] == "pulse"], t[t["kind"] != "pulse"]
    assert len(pulses) >= 2 and len(probes) >= 4
    assert pulses["worker_pid"].nunique() == 1
    assert set(pulses["worker_pid"]).isdisjoint(set(probes["worker_pid"]))
    assert list(pulses["worker_probe"]) == list(range(len(pulses)))  # one pulse after another, nothing between

    ref = space.random_inputs({"batch": 8})
    with ShapeCapped(lambda: Subprocess(adapter, memory_cap_mib=1024, timeout_s=60, min_repeats=2, max_repeats=3),
                     2) as ex:
        rows = []
        for b in (1, 2, 1, 3):
            rows.append(("pulse", ex.pulse(ref)["worker_pid"]))
            rows.append(("probe", ex.probe(space.random_inputs({"batch": b}))["worker_pid"]))
    assert ex.workers == 2, rows  # batches 1, 2 | 3: the reference shape took no worker's room
    assert len({pid for k, pid in rows if k == "pulse"}) == 1, rows
    assert not {pid for k, pid in rows if k == "pulse"} & {pid for k, pid in rows if k == "probe"}, rows


FALLBACK = """
import warnings, json
import costlab
from costlab import profile, zoo
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    prof = profile(zoo.build("mlp"), points=2, rounds=1, examples=0, min_repeats=3, probe_time_s=0.05)
print(json.dumps({"sources": sorted(set(prof.table["memory_source"])), "note": prof.memory_fallback,
                  "warned": [str(w.message) for w in caught if isinstance(w.message, costlab.CostlabWarning)]}))
"""


@pytest.mark.parametrize("onednn", ["0", "1"])
def test_a_tensorflow_model_without_allocator_statistics_is_flagged(onednn):
    """With oneDNN off TF keeps no CPU allocator statistics and peaks fall back to the
    process high-water mark: the profile says so (a warning, and `memory_fallback` for the
    run's summary and report), naming the variable; with it on, nothing is said."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn}
    proc = subprocess.run([sys.executable, "-c", FALLBACK], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    if onednn == "0":
        assert got["sources"] == ["process_vmhwm"], got
        assert "TF_ENABLE_ONEDNN_OPTS=0" in got["note"] and "process high-water mark" in got["note"]
        assert got["warned"] == [got["note"]]
    else:
        assert got["sources"] == ["tf_allocator"] and got["note"] is None and got["warned"] == [], got


def test_a_plain_callable_s_process_peak_is_by_design_and_not_flagged():
    space = load("zoo:bomb").space.with_bounds(mib=(1, 2))
    prof = profile(CallableAdapter(lambda inputs: 0, space), points=2, rounds=1, **FAST)
    assert set(prof.table["memory_source"]) == {"process_vmhwm"} and prof.memory_fallback is None
