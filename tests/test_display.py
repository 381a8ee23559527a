"""costlab.viz.display and the notebook reprs: what the HTML says, that it is escaped, that
its picture is a real PNG, and that a live Jupyter kernel renders it."""

import base64
import io
import re
from pathlib import Path

import matplotlib.image
import nbformat
import pytest
from nbclient import NotebookClient

from costlab.curves import CostModel
from costlab.policy import Policy
from costlab.profiling.session import Profile
from costlab.viz import display

RUN = Path(__file__).resolve().parent.parent / "data" / "sample_run"


def _images(html_text):
    """Decoded PNG arrays of every `<img>` in the HTML; every src must be a data URI."""
    srcs = re.findall(r'<img[^>]*src="([^"]*)"', html_text)
    out = []
    for src in srcs:
        assert src.startswith("data:image/png;base64,"), src[:60]
        raw = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        out.append(matplotlib.image.imread(io.BytesIO(raw), format="png"))
    return out


def _one_picture(html_text):
    (img,) = _images(html_text)
    assert img.shape[0] > 200 and img.shape[1] > 300
    assert img[..., :3].std() > 0.05  # not blank
    return img


def test_profile_html_counts_probes_by_status_and_shows_the_ranges(sample):
    prof, _, _ = sample
    t = prof.table.copy()
    t.loc[t.index[:4], "status"] = "oom"
    t.loc[t.index[4:5], "status"] = "timeout"
    text = display.profile_html(Profile(t, prof.space, prof.model, prof.machine))
    assert "<td" in text and "Profile of attention" in text
    assert re.search(r">ok</td><td[^>]*>70<", text)
    assert re.search(r">oom</td><td[^>]*>4<", text)
    assert re.search(r">timeout</td><td[^>]*>1<", text)
    assert re.search(r">crashed</td><td[^>]*>0<", text)
    for d in prof.dims:
        dim = prof.space.dim(d)
        assert f"{dim.min}–{dim.max}" in text
    assert "wall_s_median [ms]" in text and "peak_bytes [MiB]" in text
    first = t.iloc[0]
    assert f"{first['wall_s_median'] * 1e3:.4g}" in text
    _one_picture(text)


def test_profile_html_escapes_what_comes_from_the_data(sample):
    prof, _, _ = sample
    t = prof.table.copy()
    t.loc[t.index[0], "status"] = "error"
    t.loc[t.index[0], "error"] = "<script>alert(1)</script> & more"
    model = {**prof.model, "name": "<b>evil</b>"}
    text = display.profile_html(Profile(t, prof.space, model, prof.machine))
    assert "<script>" not in text and "<b>evil</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in text
    assert "&lt;b&gt;evil&lt;/b&gt;" in text


@pytest.mark.parametrize("target, unit, scale", [("wall_s_median", "ms", 1e3), ("peak_bytes", "MiB", 1 / 2**20)])
def test_cost_model_html_lists_class_terms_range_and_bound(sample, target, unit, scale):
    _, models, _ = sample
    m = models[target]
    text = display.cost_model_html(m)
    assert m.complexity_ in text
    for t in m.terms_:
        assert f"{t['coef'] * scale:.4g} {unit}" in text
    for cls in m.ambiguous_:
        assert cls in text
    assert f"×{m.upper_factor_:.3f}" in text
    for d, (lo, hi) in m.range_.items():
        assert f"{d}={lo:g}–{hi:g}" in text
    _one_picture(text)
    assert m._repr_html_() == text  # CostModel's own repr delegates here


def test_cost_model_html_of_an_unfitted_model_says_so():
    text = CostModel(target="wall_s_median")._repr_html_()
    assert "not fitted" in text and not _images(text)


def test_policy_html_shows_budgets_limits_evidence_joint_request_and_serving(sample):
    _, _, pol = sample
    text = display.policy_html(pol)
    d = pol.data
    for k, v in d["budgets"].items():
        assert re.search(rf">{k}</td><td[^>]*>{v:g}<", text), k
    for name, lim in pol.limits.items():
        assert re.search(rf">{name}</td><td[^>]*>{lim['min']}</td><td[^>]*>{lim['max']}</td>"
                         rf"<td[^>]*>{lim['limited_by']}</td>", text), name
        assert f"predicted {lim['predicted']['wall_s_median'] * 1e3:.4g} ms" in text
        assert f"upper {lim['upper']['peak_bytes'] / 2**20:.4g} MiB" in text
    j = d["joint"][0]
    assert re.search(rf">{j['name']}</td><td[^>]*>{j['input']}</td><td[^>]*>{j['max']}</td>"
                     rf"<td[^>]*>{j['box_max']}</td>", text)
    assert re.search(rf">timeout_ms</td><td[^>]*>{d['request']['timeout_ms']:g}<", text)
    assert re.search(rf">max_concurrency</td><td[^>]*>{d['serving']['max_concurrency']}<", text)
    assert re.search(rf">rate_limit_rps</td><td[^>]*>{d['serving']['rate_limit_rps']:.4g}<", text)
    _one_picture(text)
    assert pol._repr_html_() == text


def test_policy_html_escapes_the_model_name(sample):
    _, _, pol = sample
    data = pol.to_dict()
    data["model"]["name"] = 'x"><img src=http://example.com/a.png>'
    text = display.policy_html(Policy.from_dict(data))
    assert "http://example.com" in text  # still shown, as text
    assert len(re.findall(r"<img", text)) == 1  # only the plot
    _images(text)


_CELLS = [
    "import json\nfrom pathlib import Path\nfrom costlab.curves import CostModel\nfrom costlab.policy import Policy\n"
    "from costlab import Profile\nrun = Path({run!r})",
    'Policy.from_json(run / "policy.json")',
    'CostModel.from_dict(json.loads((run / "cost_models.json").read_text())["wall_s_median"])',
    "Profile.load(run)",
    "from costlab import plots\n"
    'ax = plots.cost_vs_dim(Profile.load(run), CostModel.from_dict(json.loads((run / "cost_models.json")'
    '.read_text())["peak_bytes"]), "seq_len")',
    "import matplotlib\nmatplotlib.get_backend()",
]


def test_reprs_render_as_html_in_a_live_kernel(sample):
    _, models, pol = sample
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c.format(run=str(RUN)) if "{run" in c else c) for c in _CELLS]
    NotebookClient(nb, timeout=600, kernel_name="python3").execute()

    def html_of(cell):
        (out,) = [o for o in cell.outputs if o.output_type == "execute_result"]
        assert "text/html" in out.data, out.data.keys()
        return out.data["text/html"]

    policy_html = html_of(nb.cells[1])
    j = pol.data["joint"][0]
    assert f">{j['name']}</td>" in policy_html and f">{j['max']}</td>" in policy_html
    assert "Policy for attention" in policy_html and "data:image/png;base64," in policy_html
    model_html = html_of(nb.cells[2])
    assert models["wall_s_median"].complexity_ in model_html and "data:image/png;base64," in model_html
    assert "Profile of attention" in html_of(nb.cells[3])
    # a plot made without `ax` shows inline: the notebook's backend was not replaced by Agg
    assert any(o.output_type == "display_data" and "image/png" in o.data for o in nb.cells[4].outputs)
    (backend,) = [o for o in nb.cells[5].outputs if o.output_type == "execute_result"]
    assert "inline" in backend.data["text/plain"]
