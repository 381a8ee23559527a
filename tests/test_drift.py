"""Shape drift: the frontier read after many shapes in one worker, and the policy planning for it."""

import json
import sys

import numpy as np
import pandas as pd
import pytest

import costlab
from costlab import Policy, synthesize
from costlab.adapters import CallableAdapter
from costlab.inputs.space import Dimension, InputSpace, InputSpec, ValueDomain
from costlab.runtime.drift import (
    THRESHOLD,
    Drift,
    admitted_sizes,
    checked_drift,
    frontier_drift,
    frontier_inputs,
    stream_sizes,
)

CHURN = {"shapes": 16, "retraced": 2, "new_shape_cold_over_warm": 3.0, "rss_growth_mib_per_new_shape": 1.0}


def _drift(before_ms, after_ms, control=(10.0, 10.0)):
    labels = [f"input {i}" for i in range(len(before_ms))]
    s = lambda v: dict(zip(labels, (x / 1e3 for x in v), strict=True))  # noqa: E731
    return Drift({k: {"batch": 1} for k in labels}, 100, 5, s(before_ms), s(after_ms),
                 s([control[0]] * len(labels)), s([control[1]] * len(labels)))


def test_drift_is_planned_for_from_the_median_ratio_with_the_largest_added_time():
    d = _drift([4.0, 8.0, 10.0], [8.0, 12.0, 12.0])  # ratios 2, 1.5, 1.2: median 1.5
    assert d.ratio["input 0"] == pytest.approx(2.0) and d.added_s["input 1"] == pytest.approx(4e-3)
    assert d.applies and d.planned_s == pytest.approx(4e-3)  # the largest added time, not the median's
    # a host stretch seen by both workers is not drift: the control divides it out
    host = _drift([4.0, 8.0, 10.0], [6.0, 12.0, 15.0], control=(10.0, 15.0))
    assert max(abs(r - 1) for r in host.ratio.values()) < 1e-9 and not host.applies and host.planned_s == 0
    # one input over the threshold alone decides nothing (single readings move ±15-20%)
    one = _drift([4.0, 8.0, 10.0], [8.0, 8.4, 10.2])
    assert one.ratio["input 0"] > THRESHOLD and not one.applies and one.planned_s == 0
    assert "not planned for" in one.summary() and "adds 4.00 ms" in d.summary()
    # nothing read (every reading failed): nothing planned, and the record is valid JSON
    empty = Drift({}, 100, 5, {}, {}, {}, {}, notes=["no time for worst admitted (every reading failed)"])
    assert not empty.applies and empty.planned_s == 0 and empty.to_dict()["median_ratio"] is None
    json.loads(json.dumps(empty.to_dict(), allow_nan=False))
    assert "not measured (no time for worst admitted" in empty.summary()


def test_the_planned_time_is_read_at_the_run_s_median_machine_speed():
    # the same readings taken on a stretch 1.25× slower than the run's median (the control's
    # reads of the policy's speed reference): the curves the speed factor multiplies are at
    # the median speed, so the planned time is too
    d = _drift([4.0, 8.0, 10.0], [8.0, 12.0, 12.0])
    d.index = 1.25
    assert d.planned_s == pytest.approx(4e-3 / 1.25) and d.to_dict()["index"] == 1.25
    assert "adds 3.20 ms to every time curve (the largest added time over the check's speed index 1.25)" in d.summary()
    d.index = None  # not measured (no machine_speed): the raw time
    assert d.planned_s == pytest.approx(4e-3) and d.to_dict()["index"] is None


# A model that gets slower on every call as distinct shapes accumulate in its process (as
# zoo:masked does, by a few ms after ~100 shapes): busy time of 2 µs per element plus
# 20 µs per distinct shape seen. Busy waits, so the time follows the wall clock and the
# control worker divides a host stretch out.
DRIFTY = '''
import time
_seen = set()

def _busy(s):
    end = time.perf_counter() + s
    while time.perf_counter() < end:
        pass

def model(inputs):
    x = inputs["x"]
    _seen.add(x.shape)
    _busy(2e-6 * x.size + PER_SHAPE * len(_seen))
    return x.sum()
'''

SMALL = InputSpace((InputSpec("x", "float32", ("batch", "seq_len"), ValueDomain("float", -1, 1)),),
                   (Dimension("batch", 1, 8), Dimension("seq_len", 16, 256)))


def _adapter(tmp_path, monkeypatch, name, per_shape):
    (tmp_path / f"{name}.py").write_text(DRIFTY.replace("PER_SHAPE", repr(per_shape)))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the workers import it too
    mod = __import__(name)
    return CallableAdapter(mod.model, SMALL, ref=f"{name}:model")


@pytest.mark.parametrize("n, carried, over_share, padded, expected", [
    pytest.param(300, True, False, 56, 300, id="carried-within-share-kept"),
    pytest.param(300, False, False, 56, 150, id="not-carried-halved"),
    pytest.param(300, False, False, 200, 150, id="not-carried-halved-below-padded"),
    pytest.param(300, True, True, 56, 150, id="over-share-halved"),
    pytest.param(90, True, True, 56, 56, id="over-share-not-below-padded"),
    pytest.param(56, True, True, 56, 56, id="over-share-at-padded-kept"),
    pytest.param(40, True, True, 0, 20, id="over-share-no-buckets"),
    pytest.param(24, True, True, 0, 24, id="over-share-at-the-floor-kept"),
    pytest.param(24, False, False, 0, 24, id="not-carried-at-the-floor-gives-up"),
    pytest.param(32, False, False, 0, 16, id="down-to-the-floor"),
])
def test_the_next_count_the_drift_is_read_at(n, carried, over_share, padded, expected):
    from costlab.pipeline.run import DRIFT_MIN_SHAPES, next_drift_count

    assert DRIFT_MIN_SHAPES == 16
    assert next_drift_count(n, carried=carried, over_share=over_share, padded=padded) == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux rlimits and /proc")
def test_a_run_plans_for_the_drift_it_measures_in_a_real_worker(tmp_path, monkeypatch):
    drifty = _adapter(tmp_path, monkeypatch, "drifty_model", 20e-6)
    fast = dict(points=4, rounds=1, examples=0, min_repeats=3, probe_time_s=0.05, progress=False, settle=0,
                refine=False, boundary=False, throughput_s=0, values="random", pulse=0, isolation="subprocess",
                churn=8)
    budgets = {"latency_ms": 3.0, "memory_mib": 512}
    # drift_share 1: read again only if no input carried it (the share is tested below)
    run = costlab.run(drifty, budgets, tmp_path / "run", drift_shapes=60, drift_share=1, **fast)
    d = run.drift
    assert d is not None and d.shapes == 60 and d.higher == []
    # 60 shapes at 20 µs: about 1.1 ms more than in a worker that saw only the frontier inputs
    assert d.applies and 0.6e-3 < d.planned_s < 2.5e-3, d.to_dict()
    # each frontier input's neighbour of a shape first taken after the 60, read too
    late = {k: s for k, s in d.inputs.items() if k.endswith(", new shape")}
    early = [s for k, s in d.inputs.items() if k not in late]
    assert len(late) == len(early) and not any(s in early for s in late.values()), d.inputs
    assert all(d.added_s[k] > 0.6e-3 for k in late), {k: d.added_s[k] for k in late}
    # two checks, each with shapes of its own; the one with the larger median ratio is kept
    assert [c["seed"] for c in d.checks] == [0, 1] and sum(c["kept"] for c in d.checks) == 1, d.checks
    (kept,) = [c for c in d.checks if c["kept"]]
    assert kept["median_ratio"] == max(c["median_ratio"] for c in d.checks) == round(d.median_ratio, 4)
    assert all(c["planned_ms"] > 0 for c in d.checks), d.checks  # each check reads this drift alone
    assert "the largest of 2 checks' medians" in d.summary()
    on_disk = json.loads((tmp_path / "run" / "drift.json").read_text())
    assert on_disk["checks"] == d.checks
    pol = Policy.from_json(tmp_path / "run" / "policy.json")
    assert pol.data["shapes"]["drift"]["planned_ms"] == pytest.approx(on_disk["planned_ms"])
    assert "shape drift after 60 distinct shapes" in run.summary()
    # against the same fitted curves: every admitted input within budget with the drift
    # added, and the policy without it admits inputs the drift takes over
    from costlab.curves import fit_profile_notes

    curves, _ = fit_profile_notes(run.profile)
    plain = synthesize(curves, budgets, space=SMALL, churn=run.churn.figures)
    added = d.planned_s * 1e3
    assert (curves["wall_s_median"].upper(_grid(pol)) * 1e3 + added <= 3.0 * 0.9 + 1e-9).all()
    assert (curves["wall_s_median"].upper(_grid(plain)) * 1e3 + added > 3.0 * 0.9).any()

    # verify measures that policy's boundary where a process at its cap runs: each search
    # worker first takes all but a reserve of the shapes the drift was planned for, and the
    # drifty model's busy wait
    # (20 µs per shape seen) puts a floor under every search measurement
    import importlib

    from costlab.checks.verify import verify

    # half the shapes left to the search (not an eighth): fewer fresh workers, a shorter test
    monkeypatch.setattr(importlib.import_module("costlab.checks.verify"), "SEARCH_RESERVE", 0.5)
    cap = pol.data["shapes"]["max_distinct"]
    held = min(cap or d.shapes, d.shapes)  # the plan holds at the cap, or at the count read when lower
    rep = verify(drifty, pol, probes=6, steps=2, draws=1, pulse=0, probe_time_s=0.02, progress=False)
    assert rep.held == held and rep.filled == held - int(np.ceil(held * 0.5)) > 0, (rep.held, rep.filled)
    assert rep.searched is not None and len(rep.searched), rep.tightness
    floor_ms = 20e-3 * rep.filled
    assert (rep.searched["latency_ms"] >= floor_ms).all(), (floor_ms, rep.searched["latency_ms"].min())
    assert f"first took {rep.filled} of the {held} distinct shapes" in rep.summary()
    assert (rep.tightness["filled"] == rep.filled).all()

    # the same model without the per-shape cost, read on that policy: measured, not planned for
    steady = _adapter(tmp_path, monkeypatch, "steady_model", 0.0)
    calm = frontier_drift(steady, pol, shapes=60, time_budget_s=0.05)
    assert not calm.applies and calm.planned_s == 0, calm.to_dict()

    # a drift that takes more than the share of margin × budget (0.3 × 2.7 ms: 64 shapes
    # add about 1.2 ms) is read again at half the count (32 add about 0.6 ms), and the
    # policy holds a process to it whether or not drift is planned there
    share = costlab.run(drifty, budgets, tmp_path / "share", drift_shapes=64, drift_checks=1, drift_share=0.3, **fast)
    s = share.drift
    (first,) = s.higher
    assert first["shapes"] == 64 and first["planned_ms"] > 0.81, s.to_dict()
    assert first["why"] == "over 0.3 of margin × latency budget, 0.81 ms", first
    assert s.shapes == 32 and s.planned_s <= 0.81e-3, s.to_dict()
    shaped = share.policy.data["shapes"]
    assert shaped["max_distinct"] == 32 and shaped["drift"]["higher"] == s.higher, shaped
    assert "read first at 64 shapes" in share.summary()
    assert json.loads((tmp_path / "share" / "drift.json").read_text())["higher"] == s.higher
    Policy.from_json(tmp_path / "share" / "policy.json")  # valid against the schema
    with pytest.raises(costlab.CostlabError, match=r"`drift_share` to be a number in \(0, 1\]. Received: 0"):
        costlab.run(drifty, budgets, tmp_path / "x", drift_share=0, **fast)

    # a drift no input can carry within the budget: a clear error, the measurements kept
    heavy = _adapter(tmp_path, monkeypatch, "heavy_model", 100e-6)  # 60 shapes: +6 ms against 3 ms
    # it is read again at half the count (30 shapes: +3 ms, still too much), and no lower than 16.
    # Every probe in a fresh worker: in the run's one warm worker the curves would carry the
    # drift of every shape measured before (+2 ms after 20), and admit only a few shapes
    with pytest.raises(costlab.PolicyError, match="with that added, no input meets the budgets") as err:
        costlab.run(heavy, budgets, tmp_path / "heavy", drift_shapes=60, drift_checks=1, probes_per_worker=1, **fast)
    assert "after 30 distinct shapes" in str(err.value) and "nor at 60 shapes per process" in str(err.value)
    kept = tmp_path / "heavy"
    higher = json.loads((kept / "drift.json").read_text())["higher"]
    assert [(h["shapes"], h["why"]) for h in higher] == [(60, "no input meets the budgets with it")], higher
    assert (kept / "drift.json").is_file() and (kept / "profile.csv").is_file()
    assert (kept / "policy_without_drift.json").is_file() and not (kept / "policy.json").exists()


def _grid(pol):
    b, s = np.meshgrid(np.arange(1, 9), np.arange(16, 257))
    X = pd.DataFrame({"batch": b.ravel(), "seq_len": s.ravel()})
    return X[pol.region().contains(X)]


def test_frontier_drift_checks_its_arguments():
    with pytest.raises(costlab.CostlabError, match="readings"):
        frontier_drift(None, None, readings=0)
    with pytest.raises(costlab.CostlabError, match="Expected a positive integer `checks`. Received: checks=0"):
        checked_drift(None, None, checks=0)


def test_the_shapes_sent_are_distinct_admitted_and_either_spread_or_verify_s():
    from costlab import CostModel
    from costlab.policy import admitted_stream

    b, q = np.meshgrid([1, 2, 4, 8], [16, 32, 64, 128, 256])
    X = pd.DataFrame({"batch": b.ravel(), "seq_len": q.ravel()})
    pol = synthesize({"wall_s_median": CostModel(target="wall_s_median").fit(X, 1e-4 + 1e-7 * X.batch * X.seq_len)},
                     {"latency_ms": 0.5, "memory_mib": 512}, space=SMALL)
    avoid = list(frontier_inputs(pol).values())
    key = lambda s: (s["batch"], s["seq_len"])  # noqa: E731
    region = pol.region()
    for pick in (admitted_sizes, stream_sizes):
        got = pick(pol, 150, avoid=avoid, seed=3)
        frame = pd.DataFrame(got)
        assert len(got) == 150 and len({key(s) for s in got}) == 150, pick.__name__
        assert region.contains(frame).all() and not {key(s) for s in got} & {key(s) for s in avoid}
    # verify's stream: its frontier points and its (moved) Hypothesis draws, alternately
    got = stream_sizes(pol, 20, seed=3)
    rows = admitted_stream(pol, 40, seed=3)
    kinds = {key(s): k for k, s, _ in reversed(rows)}
    assert {kinds.get(key(s)) for s in got[:6]} == {"frontier", "hypothesis"}
    # log-uniform shapes spread over the region; verify's sit mostly on its frontier
    on_edge = lambda ss: np.mean([not region.contains(pd.DataFrame([{"batch": s["batch"] + 1,  # noqa: E731
                                                                     "seq_len": int(s["seq_len"] * 1.1) + 1}]))[0]
                                  for s in ss])
    assert on_edge(stream_sizes(pol, 100, seed=3)) > on_edge(admitted_sizes(pol, 100, seed=3))
    with pytest.raises(costlab.CostlabError, match="stream"):
        frontier_drift(CallableAdapter(lambda inputs: 0, SMALL), pol, stream="edges")
