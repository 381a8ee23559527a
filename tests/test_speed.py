"""The machine-speed index: pulses of a reference input, times normalised by them, policies
planned for the slow quantile."""

import json
import math
import time

import numpy as np
import pandas as pd
import pytest

import costlab
from costlab import InputSpace
from costlab.errors import CostlabError, PolicyError
from costlab.inputs.space import Dimension, InputSpec, ValueDomain
from costlab.policy import Budgets, synthesize
from costlab.profiling import speed


def _table(slow_from=None, slow=2.0, seed=0, slow_until=None):
    """A 1-D profile table of cost 1 ms × n measured on a machine that runs `slow`× slower
    from probe `slow_from` on (until probe `slow_until`, if given), with a pulse (reference
    n = 10) before every third probe."""
    rng = np.random.default_rng(seed)
    rows, t = [], 1000.0
    sizes = np.tile(np.geomspace(4, 256, 7).round().astype(int), 4)
    for k, n in enumerate(sizes):
        factor = slow if slow_from is not None and slow_from <= k < (slow_until or len(sizes)) else 1.0
        if k % 3 == 0:
            t += 1
            w = 0.010 * factor * rng.lognormal(0, 0.01)
            rows.append({"n": 10, "plan": "p", "probe": f"pulse/{k // 3}", "kind": "pulse", "status": "ok",
                         "input_shapes": '{"x": [10]}', "wall_s_median": w, "wall_s_min": w, "cpu_s_median": w,
                         "peak_bytes": 4e6, "finished_at": t})
        t += 1
        w = 1e-3 * n * factor * rng.lognormal(0, 0.01)
        rows.append({"n": int(n), "plan": "p", "probe": f"r0/p{k}", "kind": "slice:n", "status": "ok",
                     "input_shapes": json.dumps({"x": [int(n)]}), "wall_s_median": w, "wall_s_min": w,
                     "cpu_s_median": w, "peak_bytes": 4e6 * n, "finished_at": t})
    return pd.DataFrame(rows)


def test_index_follows_the_pulses_and_normalising_removes_a_slow_stretch():
    t = _table(slow_from=14)
    idx = speed.index(t)
    probes = t[t["kind"] != "pulse"]
    # before the last fast pulse the index is flat; between a fast and a slow pulse it is interpolated
    assert np.allclose(idx[probes.index[:12]], idx[probes.index[0]], rtol=0.05)
    # half the pulses are slow: the median sits between; slow rows read 2× the fast ones
    ratio = idx[probes.index[-1]] / idx[probes.index[0]]
    assert ratio == pytest.approx(2.0, rel=0.05)
    n = speed.normalised(t)
    assert len(n) == len(probes) and "pulse" not in set(n["kind"])
    # probes between the last fast pulse and the first slow one (k = 12, 13, 14) get an
    # interpolated index: the others are back at 1 ms × n
    steady = [i for k, i in enumerate(probes.index) if k not in (12, 13, 14)]
    per_n = (n["wall_s_median"] / n["n"])[steady]
    raw = probes["wall_s_median"] / probes["n"]
    assert per_n.max() / per_n.min() < 1.15 < raw.max() / raw.min()
    # pulses only in the first half: the index stays at the last one's, never extrapolated
    s = speed.speed(t)
    assert s.pulses == 10 and s.factor == pytest.approx(s.quantiles["p95"]) and s.factor > 1.2
    assert s.reference == {"n": 10}
    assert "machine speed: 10 pulses" in s.summary()


def test_a_table_without_pulses_is_unchanged_and_has_no_speed():
    t = _table()
    plain = t[t["kind"] != "pulse"].drop(columns="finished_at")
    n = speed.normalised(plain)
    pd.testing.assert_frame_equal(n.drop(columns="index"), plain)
    assert (n["index"] == 1).all()
    assert speed.speed(plain) is None
    assert speed.latest([], 0.01) == 1.0


def test_fit_on_a_slow_stretch_reads_the_class_and_a_tight_bound_only_with_pulses():
    t = _table(slow_from=14)
    with_pulses = costlab.fit(t, "wall_s_median", dims=["n"])
    raw = costlab.fit(t, "wall_s_median", dims=["n"], normalise=False)
    assert with_pulses.complexity_ == "O(n)"
    X = {"n": [128]}
    # the bound's factor over the curve: the slow stretch is in the raw fit's scatter
    f_norm = float(with_pulses.upper(X)[0] / with_pulses.predict(X)[0])
    f_raw = float(raw.upper(X)[0] / raw.predict(X)[0])
    assert f_norm < 1.1 < f_raw, (f_norm, f_raw)


def test_a_short_slow_stretch_is_left_out_of_the_bound_not_the_curve():
    # Two slow pulses of ten (probes 9-14 run 1.8× slower): too short a stretch for the
    # running median of five pulses to follow, so dividing by the index leaves it in.
    t = _table(slow_from=9, slow_until=15, slow=1.8)
    s = speed.speed(t)
    assert s.factor < 1.3
    flagged = speed.beyond(t)
    probes = t[t["kind"] != "pulse"]
    assert not flagged[t["kind"] == "pulse"].any()
    # each probe next to a slow pulse (the one before it or the one after it) is flagged
    assert [k for k, i in enumerate(probes.index) if flagged[i]] == list(range(6, 15))
    assert not speed.beyond(t, factor=2.5).any()  # no pulse that slow
    assert not speed.beyond(t[t["kind"] != "pulse"]).any()  # no pulses: nothing known
    n = speed.normalised(t)
    per_n = n["wall_s_median"] / n["n"]
    assert per_n.max() / per_n.min() > 1.6  # the index did not undo the stretch
    fitted = costlab.fit(t, "wall_s_median", dims=["n"])
    unmasked = costlab.CostModel(target="wall_s_median").fit(n[["n"]], n["wall_s_median"])
    assert fitted.complexity_ == unmasked.complexity_ == "O(n)"
    assert fitted.predict({"n": [64]})[0] == pytest.approx(unmasked.predict({"n": [64]})[0], rel=0.05)
    X = {"n": [64]}  # 64 was measured in the stretch (probe 10)
    f_masked = float(fitted.upper(X)[0] / fitted.predict(X)[0])
    f_unmasked = float(unmasked.upper(X)[0] / unmasked.predict(X)[0])
    assert f_masked < 1.1 < 1.5 < f_unmasked, (f_masked, f_unmasked)
    assert len(fitted.to_dict()["calibration"]["residuals"]) == len(probes) - 9
    # memory does not depend on the machine's speed: every row calibrates it
    mem = costlab.fit(t, "peak_bytes", dims=["n"])
    assert len(mem.to_dict()["calibration"]["residuals"]) == len(probes)


def test_synthesize_plans_time_limits_for_the_slow_quantile():
    t = _table(slow_from=14)
    space = InputSpace.from_dict({"inputs": [{"name": "x", "shape": ["n"], "dtype": "float32",
                                              "values": {"kind": "float", "min": 0.0, "max": 1.0}}],
                                  "dims": [{"name": "n", "min": 4, "max": 256}]})
    models = {"wall_s_median": costlab.fit(t, "wall_s_median", dims=["n"])}
    budgets = Budgets(latency_ms=100, memory_mib=1e6)
    s = speed.speed(t)
    fast = synthesize(models, budgets, space=space)
    slow = synthesize(models, budgets, space=space, speed=s)
    assert "machine_speed" not in fast.data and slow.data["machine_speed"] == s.to_dict()
    # limits where upper × factor reaches margin × budget: the 1-D cost is linear
    assert slow.limits["n"]["max"] == pytest.approx(fast.limits["n"]["max"] / s.factor, rel=0.03)
    w = slow.data["worst_admitted"]
    assert w["upper"]["wall_s_median"] * 1e3 <= budgets.latency_ms * budgets.margin
    costlab.Policy.from_dict(json.loads(slow.to_json()))  # validates against the schema (1.3)
    with pytest.raises(PolicyError, match="Speed with factor >= 1"):
        synthesize(models, budgets, space=space, speed={**s.to_dict(), "factor": 0.5})


def test_budget_reference_bisects_the_diagonal_to_the_input_nearest_its_target():
    space = InputSpace((InputSpec("x", "float32", ("batch", "seq_len"), ValueDomain("float", 0, 1)),),
                       (Dimension("batch", 1, 64), Dimension("seq_len", 8, 1024)))
    asked = []

    def measure(inputs):  # 1 µs per token; the reference's values every time
        b, n = inputs["x"].shape
        asked.append((b, n))
        return {"status": "ok", "wall_s_median": 1e-6 * b * n}

    sizes, s = speed.budget_reference(measure, space, 2e-3)
    assert len(asked) == speed.REFERENCE_STEPS
    assert sizes in [speed.diagonal(space, k / 128) for k in range(129)]
    assert s == pytest.approx(1e-6 * sizes["batch"] * sizes["seq_len"])
    assert 2e-3 / 1.3 < s <= 2e-3  # the largest within the target, one bisection step under it at most
    assert s == max(1e-6 * b * n for b, n in asked if 1e-6 * b * n <= 2e-3)
    # a target past the whole range ends next to the largest input, under it next to the smallest
    assert speed.budget_reference(measure, space, 10.0)[0] == speed.diagonal(space, 127 / 128)
    assert speed.budget_reference(measure, space, 1e-9)[0] == speed.diagonal(space, 1 / 128)
    # a cost that hardly moves along the diagonal, far under the target: whatever the noise,
    # the same reference every time (two runs of one plan must measure the same pulses)
    rng = np.random.default_rng(0)
    flat = [speed.budget_reference(lambda x: {"status": "ok", "wall_s_median": 1e-3 * rng.uniform(0.8, 1.5)},
                                   space, 25e-3)[0] for _ in range(5)]
    assert flat == [speed.diagonal(space, 127 / 128)] * 5
    # a failing reference is never chosen; with none measured, the geometric middle
    fails = speed.budget_reference(lambda x: {"status": "error"}, space, 2e-3)
    assert fails[0] == speed.reference_sizes(space) and math.isnan(fails[1])
    assert speed.reference_sizes(space) == {"batch": 8, "seq_len": 91}


def test_a_resumed_run_keeps_the_reference_its_log_measured(tmp_path):
    from costlab.pipeline.run import _reference

    space = InputSpace((InputSpec("x", "float32", ("batch", "seq_len"), ValueDomain("float", 0, 1)),),
                       (Dimension("batch", 1, 64), Dimension("seq_len", 8, 1024)))
    log = tmp_path / "probes.jsonl"
    rows = [{"plan": "p", "probe": "values/0", "kind": "values:random", "batch": 2, "seq_len": 9},
            {"plan": "p", "probe": "pulse/0", "kind": speed.KIND, "batch": 5, "seq_len": 300}]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    budgets = Budgets(latency_ms=10, memory_mib=64)
    # not on the diagonal, so only the log can have given it; nothing is measured (no model)
    assert _reference(None, space, budgets, log, True, {}) == {"batch": 5, "seq_len": 300}


def test_profile_measures_pulses_and_a_resumed_run_takes_them_from_the_log(tmp_path, zoo_models):
    model = zoo_models["mlp"]
    space = InputSpace.from_model(model).with_bounds(batch=(1, 64))
    kw = dict(points=4, examples=2, rounds=1, min_repeats=2, max_repeats=3, probe_time_s=0.01, progress=False,
              pulse={"every": 2}, log_path=tmp_path / "probes.jsonl")
    whole = costlab.profile(model, space, **kw)
    t = whole.table
    pulses = t[t["kind"] == "pulse"]
    assert len(pulses) == (len(t) - len(pulses) + 1) // 2
    assert set(pulses["batch"]) == {8}  # geometric middle of 1..64
    assert list(pulses["probe"]) == [f"pulse/{k}" for k in range(len(pulses))]
    assert t["finished_at"].is_monotonic_increasing
    # a log cut after 3 rows: the resumed run measures the rest, pulses included, with the same ids
    lines = (tmp_path / "probes.jsonl").read_text().splitlines()
    (tmp_path / "probes.jsonl").write_text("\n".join(lines[:3]) + "\n")
    again = costlab.profile(model, space, **kw, resume=True)
    assert list(again.table["probe"]) == list(t["probe"])
    assert again.resumed == 2  # pulses are not counted as resumed probes
    with pytest.raises(CostlabError, match="pulse"):
        costlab.profile(model, space, **{**kw, "pulse": {"every": 0}})
    with pytest.raises(CostlabError, match="every dimension"):
        costlab.profile(model, space, **{**kw, "pulse": {"sizes": {"seq_len": 3}}})


def test_verify_waits_for_the_machine_before_it_calls_a_slow_stretch_a_violation(tmp_path, monkeypatch):
    import sys
    from types import SimpleNamespace

    from costlab.adapters.callable import CallableAdapter

    slow = tmp_path / "slow"  # while this file exists the machine runs 3× slower, pulses included

    def model(inputs):
        end = time.perf_counter() + 1e-3 * inputs["x"].shape[0] * (3 if slow.exists() else 1)
        while time.perf_counter() < end:
            pass
        return inputs["x"]

    space = InputSpace.from_dict({"inputs": [{"name": "x", "shape": ["n"], "dtype": "float32",
                                              "values": {"kind": "float", "min": 0.0, "max": 1.0}}],
                                  "dims": [{"name": "n", "min": 4, "max": 256}]})
    t = _table()  # 1 ms × n, the reference n = 10 at 10 ms: what `model` costs at full speed
    planned = {**speed.speed(t).to_dict(), "factor": 1.3}
    policy = synthesize({"wall_s_median": costlab.fit(t, "wall_s_median", dims=["n"])},
                        Budgets(latency_ms=20, memory_mib=1e6), space=space, speed=planned)
    assert 3 * policy.limits["n"]["max"] > 20  # 3× slower, the largest admitted input is over budget
    adapter = CallableAdapter(model, space)
    kw = dict(probes=3, tightness=False, isolation="inprocess", pulse=1, progress=False)

    # the machine stays slow: the three measurements stand, marked beyond the planned speed
    slow.touch()
    stuck = costlab.verify(adapter, policy, settle_s=0.5, **kw)
    assert not stuck.ok and "beyond the 1.30× planned" in stuck.summary()
    assert (stuck.violations["index"] > 2.5).all()

    # it comes back while verify waits: three measurements at the planned speed decide
    def sleep(s):
        slow.unlink(missing_ok=True)
        time.sleep(s)

    monkeypatch.setattr(sys.modules["costlab.checks.verify"], "time", SimpleNamespace(monotonic=time.monotonic, sleep=sleep))
    slow.touch()
    back = costlab.verify(adapter, policy, settle_s=30, **kw)
    assert back.ok, back.summary()
    again = back.table[back.table["first_measure"] != ""]
    waited = again[again["first_measure"].str.contains("× the run's median time")]
    assert len(waited) == 1 and (waited["index"] < 1.3).all(), again["first_measure"]
    assert (again["latency_ms"] <= 20).all()  # the others were measured again once it was back


def test_verify_counts_a_measurement_next_to_a_slow_pulse_as_beyond_the_planned_speed():
    from costlab.checks.verify import _beyond_planned

    def row(latency, index, pulse_index):
        return {"latency_ms": latency, "memory_mib": 1.0, "status": "ok", "error": "",
                "index": index, "pulse_index": pulse_index}

    calm = [row(21, 1.1, 1.0), row(22, 1.1, 1.05), row(20.5, 1.1, 1.1)]
    assert not _beyond_planned(calm, 1.0, 1.3)
    # the running median of five pulses stays low through a short stretch; the raw pulse
    # before one of the three, or the one right after them, sees it
    assert _beyond_planned([calm[0], row(22, 1.1, 1.6), calm[2]], 1.0, 1.3)
    assert _beyond_planned(calm, 1.45, 1.3)
    assert _beyond_planned([row(21, 1.4, 1.0), *calm[1:]], 1.0, 1.3)  # the median one's index
    # one of the three ran on one core where the others got two: crowded off a core
    cores = [{**r, "parallelism": p} for r, p in zip(calm, (1.85, 1.02, 1.8), strict=True)]
    assert _beyond_planned(cores, 1.0, 1.3)
    assert not _beyond_planned([{**r, "parallelism": 1.8} for r in calm], 1.0, 1.3)
    assert not _beyond_planned([{**r, "parallelism": p} for r, p in zip(calm, (1.1, 1.0, 1.2), strict=True)],
                               1.0, 1.3)  # a model on one core: nothing to tell


def _crowded_table(seed=0):
    """A 2-D profile whose calls use two cores (CPU time 1.8× wall), except a stretch of
    probes that another process held a core through: one core, 1.8× the time."""
    rng = np.random.default_rng(seed)
    rows, t = [], 1000.0
    grid = [(b, s) for b in (1, 2, 4, 8, 16, 32) for s in (8, 16, 32, 64, 128)]
    for rnd in range(2):
        for k, (b, s) in enumerate(grid):
            t += 1
            held = rnd == 1 and 10 <= k < 16
            w = 1e-4 * b * s * rng.lognormal(0, 0.02) * (1.8 if held else 1.0)
            rows.append({"batch": b, "seq_len": s, "plan": "p", "probe": f"r{rnd}/{k}", "kind": "slice",
                         "status": "ok", "input_shapes": json.dumps({"x": [b, s]}), "wall_s_median": w,
                         "wall_s_min": w, "cpu_s_median": w * (1.0 if held else 1.8), "peak_bytes": 4e6,
                         "finished_at": t})
    return pd.DataFrame(rows)


def test_a_probe_crowded_off_a_core_is_found_by_its_cpu_parallelism():
    t = _crowded_table()
    held = t["probe"].isin([f"r1/{k}" for k in range(10, 16)])
    np.testing.assert_array_equal(speed.crowded(t).to_numpy(), held.to_numpy())
    assert speed.beyond(t).equals(speed.crowded(t))  # no pulses: parallelism alone
    one_core = t.assign(cpu_s_median=t["wall_s_median"])  # a model on one core: nothing to tell
    assert not speed.crowded(one_core).any()
    assert not speed.crowded(t.drop(columns="cpu_s_median")).any()
    fitted = costlab.fit(t, "wall_s_median", dims=["batch", "seq_len"])
    X = {"batch": [4], "seq_len": [32]}  # measured (r1/12) on one core
    assert float(fitted.upper(X)[0] / fitted.predict(X)[0]) < 1.15
    every = costlab.CostModel(target="wall_s_median").fit(t[["batch", "seq_len"]], t["wall_s_median"])
    assert float(every.upper(X)[0] / every.predict(X)[0]) > 1.5
