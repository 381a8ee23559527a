"""Finding expensive inputs: value-dependent worst cases, shape churn, failing inputs, multi-input spaces."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from costlab import InputSpace, InvalidSpace, profile, worst
from costlab.profiling.table import load_failure
from costlab.runtime.churn import churn

FAST = dict(examples=2, min_repeats=3, max_repeats=5, probe_time_s=0.05, progress=False)


def test_the_search_finds_the_sponge_inputs_within_a_fixed_budget(zoo_models):
    model = zoo_models["sponge"]
    space = InputSpace.from_model(model)
    found = worst.search(model, space, {"batch": 1, "seq_len": 256}, examples=30, seed=0)
    assert (found.table["source"] == "search").sum() == 30
    assert found.ratio >= 5, found.summary()
    # what makes it expensive: the first token repeated throughout
    tokens = found.inputs["tokens"]
    assert (tokens == tokens[0, 0]).mean() > 0.5, found.summary()
    assert found.random_median_s < found.cost_s


def test_the_search_reports_no_sponge_on_a_value_independent_model(zoo_models):
    model = zoo_models["attention"]
    found = worst.search(model, InputSpace.from_model(model), {"batch": 1, "seq_len": 128}, examples=10, random=5)
    assert found.ratio < 3, found.summary()


def test_search_checks_its_arguments(zoo_models):
    space = InputSpace.from_model(zoo_models["sponge"])
    with pytest.raises(Exception, match="seq_len=5000, outside"):
        worst.search(zoo_models["sponge"], space, {"batch": 1, "seq_len": 5000})
    with pytest.raises(Exception, match="examples=0"):
        worst.search(zoo_models["sponge"], space, {"batch": 1, "seq_len": 16}, examples=0)


def test_shape_churn_in_a_fresh_worker():
    from costlab.loading import load

    c = churn(load("zoo:attention"), shapes=8)
    f = c.figures
    assert f["failed"] == 0 and len(c.table) == 16
    assert len(set(c.table[c.table["pass"] == 1]["seq_len"])) == 8
    assert f["retraced"] >= 1  # TF traces again at the first new shapes
    assert f["new_shape_cold_ms_max"] > 5 * f["warm_ms_median"]
    assert f["new_shape_cold_over_warm"] > f["seen_shape_cold_over_warm"]
    assert f["rss_growth_mib_first_pass"] > f["rss_growth_mib_second_pass"]
    assert "per new shape" in c.summary()


def test_a_multi_input_model_with_a_tied_axis_profiles_end_to_end(zoo_models, tmp_path):
    import costlab

    model = zoo_models["masked"]
    space = InputSpace.from_model(model).with_bounds(batch=(1, 8), seq_len=(16, 256))
    assert [i.shape for i in space.inputs] == [("batch", "seq_len"), ("batch", "seq_len")]
    assert space.inputs[1].values.max == 1  # a mask holds 0 or 1
    run = costlab.run(model, {"latency_ms": 20, "memory_mib": 32}, tmp_path, space=space, points=5,
                      churn=0, throughput_s=0, boundary=False, settle=0, isolation="inprocess", **FAST)
    shapes = [json.loads(s) for s in run.profile.table["input_shapes"]]
    assert all(s["tokens"] == s["mask"] for s in shapes)
    assert (run.profile.table["status"] == "ok").all()
    assert set(run.policy.data["inputs"]) == {"tokens", "mask"}
    assert "seq_len" in run.policy.limits


def test_failing_inputs_are_kept_reproducibly(tmp_path):
    from costlab.loading import load

    adapter = load("zoo:bomb")
    space = adapter.space.with_bounds(mib=(1, 1024))
    # max_probe_s out of the way: a loaded machine's times must not stop the 1 GiB plan probe
    prof = profile(adapter, space, points=4, rounds=1, isolation="subprocess", memory_cap_mib=200,
                   failures_dir=tmp_path, max_probe_s=600, **FAST)
    bad = prof.failures
    assert len(bad) >= 1 and set(bad["status"]) == {"oom"}
    entries = [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert len(entries) == len(bad)
    for entry in entries:  # every failure's arrays reload at the shape it was called with
        inputs = load_failure(tmp_path / entry["arrays"])
        assert list(inputs["x"].shape) == json.loads(entry["input_shapes"])["x"]
    planned = [e for e in entries if e["kind"] != "fuzz"]  # Hypothesis examples have no recipe
    assert planned and all(e["recipe"] is None for e in entries if e["kind"] == "fuzz")
    first = planned[0]
    again = space.random_inputs(first["recipe"]["sizes"], seed=first["recipe"]["seed"])
    np.testing.assert_array_equal(again["x"], load_failure(tmp_path / first["arrays"])["x"])


def test_space_files_in_yaml_and_mismatches_named(tmp_path, zoo_models):
    import yaml

    model = zoo_models["masked"]
    data = InputSpace.from_model(model).with_bounds(seq_len=(8, 64)).to_dict()
    f = tmp_path / "space.yaml"
    f.write_text(yaml.safe_dump(data))
    assert InputSpace.from_file(f).check_model(model).dim("seq_len").max == 64
    data["inputs"][1]["name"] = "attention_mask"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(InvalidSpace, match=r"inputs \['attention_mask', 'tokens'\] are not the model's inputs \['mask', 'tokens'\]"):
        InputSpace.from_file(f).check_model(model)
    data = InputSpace.from_model(zoo_models["mlp"]).to_dict()
    data["inputs"][0]["shape"] = ["batch", 32]
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(InvalidSpace, match="axis 1: the model fixes it at 64, the space has 32"):
        InputSpace.from_file(f).check_model(zoo_models["mlp"])
    data["dims"][0]["min"] = 9
    data["dims"][0]["max"] = 2
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(InvalidSpace, match="`batch`: min=9 is larger than max=2"):
        InputSpace.from_file(f)
    with pytest.raises(InvalidSpace, match="Expected a .json, .yaml or .yml"):
        (tmp_path / "space.txt").write_text("{}")
        InputSpace.from_file(tmp_path / "space.txt")


def test_cli_lists_failing_inputs(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "costlab.cli", "run", "zoo:bomb", "--latency-ms", "50",
                           "--memory-mib", "64", "--set", "memory_cap_mib=300", "--set", "points=8", "--set", "rounds=1",
                           "--set", "examples=2", "--set", "probe_time_s=0.05", "--set", "churn=0", "--set", "throughput_s=0",
                           "--set", "boundary=false", "--set", "settle=0", "--set", "refine=false", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(tmp_path / "profile.csv")
    failed = int((table["status"] != "ok").sum())
    assert failed >= 1 and f"failing inputs ({failed}, kept in" in proc.stdout and "oom" in proc.stdout
    assert table.loc[table["status"] == "oom", "repro"].str.endswith(".npz").all()


def test_the_value_scan_measures_a_sponge_with_its_worst_pattern(zoo_models, tmp_path):
    """A data-dependent loop: a constant row makes every token repeat the first, seq_len
    passes instead of about one. The scan finds a constant pattern, confirms it, and keeps
    every measurement as profile rows that no curve is fitted on."""
    from costlab.inputs.space import VALUE_PATTERNS
    from costlab.profiling import speed

    model = zoo_models["sponge"]
    space = InputSpace.from_model(model).with_bounds(batch=(1, 8), seq_len=(8, 256))
    found = worst.scan(model, space, log_path=tmp_path / "probes.jsonl", **FAST)
    assert found.pattern in ("min", "max", "repeat"), found.summary()
    assert found.ratio >= 3 and found.cost == "time" and found.sizes in worst.scan_sizes(space)
    t = found.table
    assert set(t["pattern"]) == set(VALUE_PATTERNS) and t["confirm"].sum() == 2 * worst.CONFIRM
    assert (t["status"] == "ok").all()
    p = found.probes
    assert len(p) == len(t) and speed.is_scan(p).all() and set(p["values"]) == set(VALUE_PATTERNS)
    assert len((tmp_path / "probes.jsonl").read_text().splitlines()) == len(p)
    assert speed.normalised(p).empty  # no curve is fitted on them
    d = found.to_dict()
    assert d["pattern"] == found.pattern and d["chosen_by"] == "scan" and len(d["scan"]) == len(t)
    again = worst.ValueScan.from_dict(d)
    assert again.pattern == found.pattern and again.summary() == found.summary()
    # resumed from its log, the scan measures nothing again and decides the same
    resumed = worst.scan(model, space, log_path=tmp_path / "probes.jsonl", resume=True, **FAST)
    assert len((tmp_path / "probes.jsonl").read_text().splitlines()) == len(p)
    assert resumed.pattern == found.pattern and resumed.ratio == found.ratio
    np.testing.assert_array_equal(resumed.table["wall_s_min"], t["wall_s_min"])
    assert "every limit is set for it" in found.summary()


def test_the_value_scan_keeps_random_values_for_a_value_independent_model(zoo_models):
    model = zoo_models["attention"]
    space = InputSpace.from_model(model).with_bounds(batch=(1, 8), seq_len=(16, 256))
    found = worst.scan(model, space, **FAST)
    assert found.pattern == "random" and found.ratio == 1.0 and found.sizes is None, found.summary()
    first = found.table[~found.table["confirm"]]
    assert (first.loc[first["pattern"] != "random", "ratio_time"] < 2).all(), found.table
    assert found.summary().startswith("values: measured with random values")


def test_the_value_scan_checks_its_arguments(zoo_models):
    model = zoo_models["attention"]
    with pytest.raises(Exception, match=r"Unknown value patterns \['zeros'\]"):
        worst.scan(model, patterns=["zeros"])
    with pytest.raises(Exception, match="threshold=1"):
        worst.scan(model, threshold=1)
    with pytest.raises(Exception, match="Expected `values` to be one of random, min"):
        profile(model, values="zeros")
