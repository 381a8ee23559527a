"""costlab.viz.plots on the stored sample run: labels and units, failure markers, the policy
boundary on the heatmap, residuals, cold against warm, and the files `save_all` writes."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from costlab import plots
from costlab.curves import CostModel, fit
from costlab.errors import CostlabError
from costlab.policy import Policy
from costlab.profiling.session import Profile

RUN = Path(__file__).resolve().parent.parent / "data" / "sample_run"


def _ax():
    fig, ax = plots.figure()
    return ax


def _with_failures(prof, statuses):
    """A copy of the profile whose last rows failed with `statuses` (last row first)."""
    t = prof.table.copy()
    for k, s in enumerate(statuses):
        i = t.index[-1 - k]
        t.loc[i, "status"] = s
        t.loc[i, "error"] = f"{s} at probe {i}"
        t.loc[i, ["wall_s_median", "peak_bytes", "cold_s"]] = np.nan
    return Profile(t, prof.space, prof.model, prof.machine)


@pytest.mark.parametrize("target, unit", [("wall_s_median", "[ms]"), ("peak_bytes", "[MiB]")])
def test_cost_vs_dim_has_units_labels_and_a_title(sample, target, unit):
    prof, models, _ = sample
    m = models[target]
    ax = plots.cost_vs_dim(prof, m, "seq_len", ax=_ax())
    assert ax.get_ylabel().endswith(unit)
    assert "seq_len" in ax.get_xlabel()
    assert "seq_len" in ax.get_title() and m.complexity_ in ax.get_title()
    assert ax.get_xscale() == ax.get_yscale() == "log"
    # the measured points of each slice are drawn in the display unit
    scale = 1e3 if unit == "[ms]" else 1 / 2**20
    ok = prof.ok
    sl = ok[(ok["kind"] == "slice:seq_len") & (ok[target] > 0)]  # zero peaks have no place on a log axis
    drawn = np.concatenate([ln.get_ydata() for ln in ax.lines if ln.get_label().startswith("batch=")])
    assert np.allclose(np.sort(drawn), np.sort(sl[target].to_numpy() * scale))


def test_cost_vs_dim_marks_each_failed_status_at_the_bottom(sample):
    prof, models, _ = sample
    failed = _with_failures(prof, ["oom", "oom", "oom", "timeout", "timeout", "crashed"])
    ax = plots.cost_vs_dim(failed, models["wall_s_median"], "seq_len", ax=_ax())
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"oom (3)", "timeout (2)", "crashed (1)"} <= set(legend)
    bad = failed.failures
    for status, count in (("oom", 3), ("timeout", 2), ("crashed", 1)):
        (line,) = [ln for ln in ax.lines if ln.get_label() == f"{status} ({count})"]
        assert line.get_marker() == plots.STATUS_STYLE[status][0]
        assert sorted(line.get_xdata()) == sorted(bad[bad["status"] == status]["seq_len"].astype(float))
        # y in axes coordinates: at the bottom whatever the data's scale
        assert line.get_transform() == ax.get_xaxis_transform()
        assert np.all(np.asarray(line.get_ydata()) < 0.1)
    # the unmodified profile has no failure marks at all
    clean = plots.cost_vs_dim(prof, models["wall_s_median"], "seq_len", ax=_ax())
    assert not [t.get_text() for t in clean.get_legend().get_texts() if "(" in t.get_text()
                and t.get_text().split(" ")[0] in plots.STATUS_STYLE]


def test_cost_vs_dim_takes_a_table_too(sample):
    prof, models, _ = sample
    ax = plots.cost_vs_dim(prof.table, models["peak_bytes"], "batch", ax=_ax())
    assert ax.get_ylabel() == "peak memory [MiB]"


def _joint_line(ax, name):
    lines = [ln for ln in ax.lines if ln.get_label().startswith(name + " ≤")]
    assert len(lines) == 1, [ln.get_label() for ln in ax.lines]
    return lines[0]


def test_heatmap_draws_the_joint_budget_and_axis_limits_at_the_policy_values(sample):
    prof, models, pol = sample
    ax = plots.heatmap(prof, models["wall_s_median"], ("batch", "seq_len"), pol, ax=_ax())
    j = pol.data["joint"][0]
    line = _joint_line(ax, j["name"])
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    assert len(x) > 10
    assert np.allclose(x * y, j["max"])
    # the curve spans the visible axes
    assert x.min() >= ax.get_xlim()[0] * 0.999 and x.max() <= ax.get_xlim()[1] * 1.001
    for d, want in (("batch", "x"), ("seq_len", "y")):
        lim = pol.limits[d]
        (ln,) = [ln for ln in ax.lines if ln.get_label().startswith(f"{d} ≤ {lim['max']} ")]
        data = ln.get_xdata() if want == "x" else ln.get_ydata()
        assert np.allclose(data, lim["max"])
        assert lim["limited_by"] in ln.get_label()
    worst = pol.data["worst_admitted"]["sizes"]
    (star,) = [ln for ln in ax.lines if ln.get_label().startswith("worst admitted input")]
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (worst["batch"], worst["seq_len"])
    assert ax.get_xlabel().startswith("batch") and ax.get_ylabel().startswith("seq_len")
    assert "[ms]" in ax.get_title()


def test_heatmap_follows_a_changed_joint_budget(sample):
    prof, models, pol = sample
    data = pol.to_dict()
    data["joint"][0]["max"] = 900
    ax = plots.heatmap(prof, models["peak_bytes"], ("seq_len", "batch"), Policy.from_dict(data), ax=_ax())
    line = _joint_line(ax, data["joint"][0]["name"])
    assert np.allclose(np.asarray(line.get_xdata()) * np.asarray(line.get_ydata()), 900)
    assert "[MiB]" in ax.get_title()


def test_heatmap_colours_the_prediction_and_overlays_measurements(sample):
    prof, models, _ = sample
    m = models["wall_s_median"]
    ax = plots.heatmap(prof, m, ax=_ax(), n=12)
    mesh = ax.collections[0]
    grid = np.asarray(mesh.get_array()).reshape(12, 12)
    xs = np.geomspace(*plots._axis_range("batch", m, prof.table, None), 12)
    ys = np.geomspace(*plots._axis_range("seq_len", m, prof.table, None), 12)
    want = m.predict(pd.DataFrame({"batch": [xs[3]], "seq_len": [ys[7]]}))[0] * 1e3
    assert grid[7, 3] == pytest.approx(want)
    scatter = ax.collections[1]
    assert len(scatter.get_offsets()) == len(prof.ok)
    assert np.allclose(np.sort(scatter.get_array()), np.sort(prof.ok["wall_s_median"].to_numpy() * 1e3))


def test_heatmap_of_three_dimensions_holds_the_third_fixed():
    rng = np.random.default_rng(0)
    rows = [{"a": a, "b": b, "c": c, "plan": "p", "kind": "joint", "status": "ok",
             "wall_s_median": 1e-4 * a * b * c * rng.uniform(0.95, 1.05)}
            for a in (1, 2, 4, 8) for b in (1, 3, 9) for c in (2, 4, 8)]
    table = pd.DataFrame(rows)
    m = fit(table, dims=["a", "b", "c"])
    ax = plots.heatmap(table, m, ("a", "b"), ax=_ax(), fixed={"c": 4})
    assert "c=4" in ax.get_title()
    assert len(ax.collections[1].get_offsets()) == len(table[table["c"] == 4])
    with pytest.raises(CostlabError, match="fixed"):
        plots.heatmap(table, m, ("a", "b"), ax=_ax(), fixed={"a": 4})


def test_residuals_are_log_ratios_with_the_upper_factor_drawn(sample):
    prof, models, _ = sample
    m = models["wall_s_median"]
    ax = plots.residuals(prof, m, "seq_len", ax=_ax())
    ok = prof.ok
    want = np.log(ok["wall_s_median"].to_numpy() / m.predict(ok[m.dims_]))
    points = [ln for ln in ax.lines if ln.get_marker() == "o"]
    got = np.concatenate([ln.get_ydata() for ln in points])
    assert np.allclose(np.sort(got), np.sort(want))
    (factor,) = [ln for ln in ax.lines if ln.get_label().startswith("upper factor")]
    assert np.allclose(factor.get_ydata(), math.log(m.upper_factor_))
    assert f"×{m.upper_factor_:.2f}" in factor.get_label()
    assert "ln(measured / predicted)" in ax.get_ylabel()
    assert "residuals" in ax.get_title() and "seq_len" in ax.get_xlabel()


def test_residuals_leave_rows_under_the_resolution_hollow(sample):
    prof, models, _ = sample
    ax = plots.residuals(prof, models["peak_bytes"], "batch", ax=_ax())
    peak = prof.ok["peak_bytes"]
    under = int(((peak > 0) & (peak < 2**20)).sum())  # 0 has no logarithm: not drawn
    assert under > 0
    assert any(ln.get_label() == f"under resolution, not fitted ({under})" for ln in ax.lines)


def test_cold_warm_draws_the_first_call_against_the_warm_median(sample):
    prof, _, _ = sample
    failed = _with_failures(prof, ["oom", "error"])
    ax = plots.cold_warm(failed, "batch", ax=_ax())
    ok = failed.ok
    (cold,) = [ln for ln in ax.lines if ln.get_label().startswith("cold")]
    (warm,) = [ln for ln in ax.lines if ln.get_label() == "warm median"]
    assert np.allclose(cold.get_ydata(), ok["cold_s"].to_numpy() * 1e3)
    assert np.allclose(warm.get_ydata(), ok["wall_s_median"].to_numpy() * 1e3)
    assert ax.get_ylabel() == "wall time per call [ms]"
    ratio = ok["cold_s"] / ok["wall_s_median"]
    assert f"median ×{ratio.median():.1f}" in ax.get_title()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "oom (1)" in legend and "error (1)" in legend


def test_curve_region_and_churn_draw_labelled_axes(sample):
    _, models, pol = sample
    ax = plots.curve(models["peak_bytes"], "seq_len", ax=_ax())
    assert ax.get_ylabel() == "peak memory [MiB]" and len(ax.lines) == 4
    ax = plots.region(pol, ax=_ax())
    assert np.allclose(np.prod([_joint_line(ax, pol.data["joint"][0]["name"]).get_xdata(),
                                _joint_line(ax, pol.data["joint"][0]["name"]).get_ydata()], axis=0),
                       pol.data["joint"][0]["max"])
    churn = json.loads((RUN / "churn.json").read_text())
    ax = plots.churn(churn, ax=_ax())
    assert ax.get_ylabel() == "wall time per call [ms]" and f"{churn['shapes']} new shapes" in ax.get_title()


@pytest.mark.parametrize("call, needle", [
    pytest.param(lambda p, m, pol: plots.cost_vs_dim(p, m["wall_s_median"], "tokens", ax=_ax()),
                 "Unknown dimension 'tokens'", id="unknown-dim"),
    pytest.param(lambda p, m, pol: plots.cost_vs_dim([1, 2], m["wall_s_median"], "batch", ax=_ax()),
                 "Received: list", id="not-a-table"),
    pytest.param(lambda p, m, pol: plots.cost_vs_dim(p, CostModel(target="x"), "batch", ax=_ax()),
                 "fitted CostModel", id="unfitted-model"),
    pytest.param(lambda p, m, pol: plots.heatmap(p, m["wall_s_median"], ("batch", "batch"), ax=_ax()),
                 "two different dimensions", id="heatmap-same-dims"),
    pytest.param(lambda p, m, pol: plots.heatmap(p, m["wall_s_median"], ("batch", "width"), ax=_ax()),
                 "'width'", id="heatmap-unknown-dim"),
    pytest.param(lambda p, m, pol: plots.residuals(p, m["wall_s_median"], "width", ax=_ax()),
                 "'width'", id="residuals-unknown-dim"),
    pytest.param(lambda p, m, pol: plots.cold_warm(p.table.drop(columns=["cold_s"]), "batch", ax=_ax()),
                 "no 'cold_s' column", id="no-cold-column"),
    pytest.param(lambda p, m, pol: plots.region(pol, ("batch", "tokens"), ax=_ax()),
                 "'tokens'", id="region-unknown-dim"),
    pytest.param(lambda p, m, pol: plots.churn({"rows": []}, ax=_ax()), "Received: dict", id="churn-no-rows"),
])
def test_bad_calls_raise_one_error_naming_what_was_received(sample, call, needle):
    prof, models, pol = sample
    with pytest.raises(CostlabError) as info:
        call(prof, models, pol)
    assert needle in str(info.value)


def test_heatmap_needs_two_dimensions():
    table = pd.DataFrame({"n": [8, 16, 32, 64, 128, 256], "plan": "p", "kind": "slice:n", "status": "ok"})
    table["wall_s_median"] = 1e-3 + 1e-6 * table["n"] ** 2
    m = fit(table, dims=["n"])
    with pytest.raises(CostlabError, match=r"at least two dimensions.*\['n'\]"):
        plots.heatmap(table, m, ax=_ax())


def test_save_all_writes_every_picture(sample, tmp_path):
    prof, models, pol = sample
    chosen = {t: models[t] for t in ("wall_s_median", "peak_bytes")}
    paths = plots.save_all(prof, chosen, tmp_path, policy=pol)
    names = {p.name for p in paths}
    for t in chosen:
        for d in prof.dims:
            assert f"cost_{t}_vs_{d}.png" in names and f"residuals_{t}_vs_{d}.png" in names
        assert f"heatmap_{t}_batch_seq_len.png" in names
    assert {"cold_warm_vs_batch.png", "cold_warm_vs_seq_len.png"} <= names
    for p in paths:
        img = matplotlib.image.imread(p)
        assert img.shape[0] > 300 and img.shape[1] > 500
        assert img[..., :3].std() > 0.05, p.name  # not blank


_BACKEND_SCRIPT = """
import json, sys
from pathlib import Path
import matplotlib
from costlab import plots
from costlab.curves import CostModel
from costlab.profiling.session import Profile
run = Path(sys.argv[1])
prof = Profile.load(run)
m = CostModel.from_dict(json.loads((run / "cost_models.json").read_text())["wall_s_median"])
ax = plots.cost_vs_dim(prof, m, "batch")
print(matplotlib.get_backend().lower(), type(ax.figure.canvas).__name__)
"""


@pytest.mark.parametrize("preset, want", [(None, "agg"), ("pdf", "pdf")], ids=["no-backend", "pdf-set"])
def test_a_new_figure_uses_agg_only_when_no_backend_is_set_up(preset, want):
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY", "WAYLAND_DISPLAY")}
    if preset:
        env["MPLBACKEND"] = preset
    proc = subprocess.run([sys.executable, "-c", _BACKEND_SCRIPT, str(RUN)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    backend, canvas = proc.stdout.split()
    assert backend == want, proc.stdout
    assert canvas.lower().startswith("figurecanvas" + want)
