"""The probe timeout from the budgets, and the inputs a run never sends again."""

import pytest

from costlab.errors import CostlabError
from costlab.measurement.hazards import FIRST_CALL_S, FLOOR_S, TRACE_MIN_S, Hazards, probe_timeout


def test_the_timeout_follows_the_latency_budget_and_the_tracing_seen():
    # 20 ms budget, 5 repeats: 7 calls × 20 budgets = 2.8 s, + 0.5 s of repeats, + the allowance
    assert probe_timeout(20, min_repeats=5, probe_time_s=0.5) == pytest.approx(FIRST_CALL_S + 3.3)
    assert probe_timeout(20, min_repeats=5, probe_time_s=0.5, tracing_s=0.2) == pytest.approx(TRACE_MIN_S + 3.3)
    assert probe_timeout(20, min_repeats=5, probe_time_s=0.5, tracing_s=8.0) == pytest.approx(24 + 3.3)
    # a slower budget gives a longer timeout, linearly
    assert probe_timeout(500, min_repeats=5, probe_time_s=0.5, tracing_s=0) == pytest.approx(TRACE_MIN_S + 70.5)
    assert probe_timeout(0.001, min_repeats=1, probe_time_s=0, tracing_s=0) >= FLOOR_S
    with pytest.raises(CostlabError, match="latency budget"):
        probe_timeout(0)


def test_hazards_learn_the_slowest_first_call_from_ok_rows_only():
    h = Hazards(20, min_repeats=5, probe_time_s=0.5)
    assert h.timeout_s() == pytest.approx(FIRST_CALL_S + 3.3)
    h.observe({"status": "ok", "cold_s": 5.0, "wall_s_median": 1.0})
    h.observe({"status": "ok", "cold_s": 2.0, "wall_s_median": 0.5})  # smaller: the largest is kept
    h.observe({"status": "timeout", "cold_s": None, "wall_s_median": None})
    assert h.tracing_s == pytest.approx(4.0)
    assert h.timeout_s() == pytest.approx(12 + 3.3)
    fixed = Hazards(20, timeout_s=7)
    fixed.observe({"status": "ok", "cold_s": 50.0, "wall_s_median": 1.0})
    assert fixed.timeout_s() == 7 and fixed.to_dict()["rule"] == "fixed"
    with pytest.raises(CostlabError, match="timeout_s"):
        Hazards(20, timeout_s=-1)
    with pytest.raises(CostlabError, match="latency budget or a fixed"):
        Hazards()


def test_an_input_as_large_as_a_failure_with_its_values_is_blocked():
    h = Hazards(20)
    h.record({"batch": 1, "seq_len": 304}, "random", {"status": "timeout"}, "plan")
    h.record({"batch": 1, "seq_len": 9}, "random", {"status": "error"}, "plan")  # a refusal: not a cost
    h.record({"batch": 2, "seq_len": 8}, "random", {"status": "ok"}, "plan")
    assert len(h.failed) == 1
    for sizes in ({"batch": 1, "seq_len": 304}, {"batch": 23, "seq_len": 304}, {"batch": 1, "seq_len": 999}):
        assert h.blocking(sizes, "random")["sizes"] == {"batch": 1, "seq_len": 304}
    # smaller in one dimension, another value pattern, or other dimensions: sent
    assert h.blocking({"batch": 64, "seq_len": 303}, "random") is None
    assert h.blocking({"batch": 1, "seq_len": 304}, "max") is None
    assert h.blocking({"seq_len": 304}, "random") is None
    row = h.not_sent_row(h.blocking({"batch": 4, "seq_len": 400}, "random"))
    assert row["status"] == "timeout" and row["error"].startswith("not sent: at least as large")
    assert "{'batch': 1, 'seq_len': 304}" in row["error"] and "plan stage" in row["error"]
    assert h.to_dict()["not_sent"] == 1 and h.to_dict()["failed"][0]["status"] == "timeout"
    for status in ("oom", "crashed"):
        h.record({"batch": 100, "seq_len": 1}, "max", {"status": status}, "value scan")
        assert h.blocking({"batch": 100, "seq_len": 2}, "max")["status"] == "oom"
