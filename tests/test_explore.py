"""The budget explorer: limits from budgets (no kernel), the widget, and a live kernel."""

import json
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from costlab import CostModel, Policy, PolicyError, Profile  # noqa: E402
from costlab.viz.explore import budget_explorer, draw_region, limits_for, limits_table  # noqa: E402

RUN = Path(__file__).resolve().parent.parent / "data" / "sample_run"


@pytest.fixture(scope="module")
def sample():
    models = {t: CostModel.from_dict(d) for t, d in json.loads((RUN / "cost_models.json").read_text()).items()}
    return models, Profile.load(RUN), Policy.from_json(RUN / "policy.json")


def test_limits_for_reproduces_the_stored_policy(sample):
    models, prof, stored = sample
    b = stored.budgets
    # The stored policy was synthesised from these curves with these budgets (plus the
    # serving figures, which do not move the limits), by a costlab that wrote plain products.
    assert not any(any((j.get("offsets") or {}).values()) for j in stored.data["joint"])
    policy = limits_for(models, prof, latency_ms=b.latency_ms, memory_mib=b.memory_mib, margin=b.margin,
                        joint_offsets=False)
    assert {d: v["max"] for d, v in policy.limits.items()} == {d: v["max"] for d, v in stored.limits.items()}
    assert [j["max"] for j in policy.data["joint"]] == [j["max"] for j in stored.data["joint"]]


@pytest.mark.parametrize("budget", ["latency_ms", "memory_mib"])
def test_a_larger_budget_never_admits_less(sample, budget):
    models, prof, _ = sample
    steps = {"latency_ms": [4, 6, 9, 14, 20, 40], "memory_mib": [4, 8, 16, 32, 64]}[budget]
    base = {"latency_ms": 1000.0, "memory_mib": 1024.0}

    def policy(value, joint=True):
        return limits_for(models, prof, **{**base, budget: value}, joint=joint)

    box_before, before = None, None
    for value in steps:
        box = {d: v["max"] for d, v in policy(value, joint=False).limits.items()}
        if box_before is not None:
            assert all(box[d] >= box_before[d] for d in box), (value, box_before, box)
        box_before = box
        now = policy(value)
        if before is not None:
            # Everything admitted under the smaller budget is admitted under the larger.
            assert now.region().contains(before.region().frontier()).all(), (value, before, now)
            assert now.data["admitted_fraction"]["policy"] >= before.data["admitted_fraction"]["policy"]
        before = now
    assert box_before != {d: v["max"] for d, v in policy(steps[0], joint=False).limits.items()}, \
        "the budgets swept never moved the limits"


def test_limits_table_lists_dimensions_and_joint_budgets(sample):
    models, prof, stored = sample
    table = limits_table(stored)
    assert list(table.columns) == ["min", "max", "limited by"]
    assert table.loc["seq_len", "max"] == stored.limits["seq_len"]["max"]
    for j in stored.data["joint"]:
        assert table.loc[j["name"], "max"] == j["max"]


@pytest.mark.parametrize("call, match", [
    pytest.param(dict(latency_ms=1e-3, memory_mib=24), "cannot be met", id="budget-below-smallest-input"),
    pytest.param(dict(latency_ms=-1, memory_mib=24), "latency_ms=-1", id="negative-latency"),
    pytest.param(dict(latency_ms=15, memory_mib=24, margin=2), "margin=2", id="margin-over-one"),
], )
def test_limits_for_rejects_bad_budgets(sample, call, match):
    models, prof, _ = sample
    with pytest.raises(PolicyError, match=match):
        limits_for(models, prof, **call)


@pytest.mark.parametrize("args, match", [
    pytest.param(({}, "profile"), "non-empty dict", id="no-models"),
    pytest.param(("models", 3), "Profile or InputSpace", id="not-a-space"),
])
def test_bad_arguments_name_themselves(sample, args, match):
    models, _, _ = sample
    cm, where = args
    with pytest.raises(PolicyError, match=match):
        limits_for(models if cm == "models" else cm, sample[1] if where == "profile" else where,
                   latency_ms=15, memory_mib=24)


@pytest.mark.parametrize("dims", [["batch", "seq_len"], ["seq_len"]])
def test_draw_region(sample, dims):
    models, prof, stored = sample
    ax = draw_region(stored, models, dims=dims, measured=prof.ok)
    assert ax.get_xlabel() == dims[0]
    assert "15 ms" in ax.get_title()
    matplotlib.pyplot.close(ax.figure)


def test_explorer_builds_and_follows_its_sliders(sample):
    pytest.importorskip("ipywidgets")
    models, prof, stored = sample
    w = budget_explorer(models, prof, policy=stored)
    assert w.latency.value == pytest.approx(stored.budgets.latency_ms)
    assert w.policy.limits["seq_len"]["max"] == stored.limits["seq_len"]["max"]
    assert "seq_len" in w.table.value and bytes(w.plot.value).startswith(b"\x89PNG")
    table, png, seq = w.table.value, bytes(w.plot.value), w.policy.limits["seq_len"]["max"]

    w.latency.value = stored.budgets.latency_ms / 2  # as a user dragging the slider
    assert w.policy.budgets.latency_ms == pytest.approx(stored.budgets.latency_ms / 2, rel=0.05)
    assert w.policy.limits["seq_len"]["max"] < seq
    assert w.table.value != table and bytes(w.plot.value) != png
    assert str(w.policy.limits["seq_len"]["max"]) in w.table.value

    w.latency.value = 10 ** w.latency.min  # the slider's smallest: a tenth of the initial budget
    assert w.policy is None and "No policy" in w.message.value and w.table.value == ""

    w.latency.value = stored.budgets.latency_ms
    w.memory.value = stored.budgets.memory_mib
    assert w.policy.limits["seq_len"]["max"] == seq


def test_explorer_needs_budgets(sample):
    pytest.importorskip("ipywidgets")
    models, prof, _ = sample
    with pytest.raises(PolicyError, match="initial budgets"):
        budget_explorer(models, prof)
    with pytest.raises(PolicyError, match="dims"):
        budget_explorer(models, prof, latency_ms=15, memory_mib=24, dims=["height"])


def test_explorer_in_a_live_kernel():
    """A real kernel builds the explorer from a stored run and shows it as a widget view."""
    pytest.importorskip("ipywidgets")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    source = f"""\
import json
from costlab import CostModel, Policy, Profile
from costlab.viz.explore import budget_explorer

run = {str(RUN)!r}
models = {{t: CostModel.from_dict(d) for t, d in json.load(open(run + "/cost_models.json")).items()}}
explorer = budget_explorer(models, Profile.load(run), policy=Policy.from_json(run + "/policy.json"))
explorer.latency.value = 8
print("limits", {{d: v["max"] for d, v in explorer.policy.limits.items()}})
explorer"""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(RUN)}}).execute()
    outputs = nb.cells[0].outputs
    assert any(o.get("output_type") == "stream" and "limits" in o.get("text", "") for o in outputs), outputs
    views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert views, outputs
    assert views[0]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
