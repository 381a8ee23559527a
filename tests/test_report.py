"""costlab.viz.report and `costlab report`: one self-contained HTML file per run directory."""

import base64
import html
import io
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from costlab.errors import CostlabError
from costlab.viz.report import write_report

RUN = Path(__file__).resolve().parent.parent / "data" / "sample_run"


class _Refs(HTMLParser):
    """Every tag, and every attribute that could fetch something."""

    def __init__(self):
        super().__init__()
        self.tags, self.refs, self.imgs, self.ids = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        for key in ("src", "href", "data", "srcset", "poster", "action"):
            if key in attrs:
                self.refs.append((tag, key, attrs[key]))
        if tag == "img":
            self.imgs.append(attrs.get("src", ""))


def _parse(text) -> _Refs:
    p = _Refs()
    p.feed(text)
    p.close()
    return p


def _copy(tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(RUN, run)
    return run


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = _copy(tmp_path_factory.mktemp("report"))
    path = write_report(run)
    return run, path, path.read_text(encoding="utf-8")


def test_report_is_written_into_the_run_directory(report):
    run, path, _ = report
    assert path == run / "report.html" and path.is_file()


def test_report_is_self_contained(report):
    _, _, text = report
    p = _parse(text)
    assert "script" not in p.tags and "link" not in p.tags and "iframe" not in p.tags
    assert "@import" not in text and "url(" not in text
    for tag, key, value in p.refs:
        if tag == "a" and key == "href":
            assert value.startswith("#") and value[1:] in p.ids, value  # in-page links only
        else:
            assert tag == "img" and key == "src" and value.startswith("data:image/png;base64,"), (tag, key,
                                                                                                  value[:80])
    # 2 costs × (2 dims × (cost, residuals) + heatmap) + cold/warm × 2 + admitted sizes + churn
    assert len(p.imgs) == 14
    for src in p.imgs:
        raw = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        img = matplotlib.image.imread(io.BytesIO(raw), format="png")
        assert img.shape[0] > 300 and img.shape[1] > 400
        assert img[..., :3].std() > 0.05  # something drawn, not a blank canvas


def test_report_states_the_run_s_figures(report):
    _, _, text = report
    policy = json.loads((RUN / "policy.json").read_text())
    models = json.loads((RUN / "cost_models.json").read_text())
    churn = json.loads((RUN / "churn.json").read_text())
    thr = json.loads((RUN / "throughput.json").read_text())
    boundary = json.loads((RUN / "boundary.json").read_text())
    p = _parse(text)
    assert p.ids == ["summary", "complexity", "plots", "policy", "boundary", "validity", "churn", "failures"]
    for name, lim in policy["limits"].items():
        assert f">{name}</td><td style" in text
        assert f">{lim['max']}</td>" in text and f">{lim['limited_by']}</td>" in text
    for j in policy["joint"]:
        assert f">{html.escape(j['name'])}</td>" in text and f">{j['max']}</td>" in text
    for t, m in models.items():
        assert f">{t}</td>" in text
        assert html.escape(m["complexity"]) in text
        assert f"×{m['upper_factor']:.3f}" in text
    assert f">{churn['new_shape_cold_over_warm']:.4g}<" in text
    assert f">{thr['rps']:.4g}<" in text
    for key, b in boundary.items():
        section = text.split('id="boundary"')[1]
        row = section.partition(f">{html.escape(key)}</td>")[2].split("</tr>")[0]
        assert f">{'' if b['exact'] else html.escape('≥ ')}{b['boundary']}</td>" in row, row
    assert f">{policy['request']['timeout_ms']:g}<" in text
    assert "No probe failed." in text


def test_failed_probes_are_listed_escaped_and_marked(tmp_path):
    run = _copy(tmp_path)
    table = pd.read_csv(run / "profile.csv", keep_default_na=False, na_values=[""])
    table["error"] = table["error"].astype(object).fillna("")
    table.loc[table.index[-2:], "status"] = "oom"
    table.loc[table.index[-3], "status"] = "error"
    table.loc[table.index[-3], "error"] = "<b>ValueError</b>: shape & size"
    table.loc[table.index[-3:], ["wall_s_median", "peak_bytes", "cold_s"]] = float("nan")
    table.to_csv(run / "profile.csv", index=False)
    text = write_report(run).read_text()
    assert "<b>ValueError</b>" not in text
    assert "&lt;b&gt;ValueError&lt;/b&gt;: shape &amp; size" in text
    failures = text.split('id="failures"')[1]
    assert failures.count(">oom</td>") == 2 and failures.count(">error</td>") == 1
    assert "75 (3 failed)" in text


def test_memory_read_from_the_process_peak_of_a_tensorflow_model_is_flagged(tmp_path, report):
    assert "process high-water mark" not in report[2]  # the sample run read tensor peaks
    run = _copy(tmp_path)
    table = pd.read_csv(run / "profile.csv", keep_default_na=False, na_values=[""])
    table.loc[table.index[:5], "memory_source"] = "process_vmhwm"
    table.loc[table.index[:5], "env"] = json.dumps({"TF_ENABLE_ONEDNN_OPTS": "0"})
    table.to_csv(run / "profile.csv", index=False)
    text = write_report(run).read_text()
    assert ("5 of 75 probes read memory as the process high-water mark" in text
            and "TF_ENABLE_ONEDNN_OPTS=0" in text), text[:3000]


def test_a_policy_s_shape_drift_is_tabled(tmp_path):
    run = _copy(tmp_path)
    pol = json.loads((run / "policy.json").read_text())
    drift = {"shapes": 98, "readings": 5, "threshold": 1.25, "inputs": {"worst admitted": {"batch": 5, "seq_len": 723}},
             "ratio": {"worst admitted": 1.46}, "added_ms": {"worst admitted": 5.71}, "median_ratio": 1.46,
             "planned_ms": 5.71, "before_ms": {"worst admitted": 12.4}, "after_ms": {"worst admitted": 18.1},
             "control_before_ms": {"worst admitted": 12.5}, "control_after_ms": {"worst admitted": 12.5}}
    pol["schema_version"] = "1.5"
    pol.setdefault("shapes", {"buckets": {}, "max_distinct": None, "reason": "r", "evidence": {}})["drift"] = drift
    (run / "policy.json").write_text(json.dumps(pol))
    text = write_report(run).read_text()
    assert "Shape drift after 98 distinct shapes in one process (planned for: 5.71 ms added" in text
    assert "worst admitted" in text and "5.71" in text and "12.5 → 12.5" in text


def test_optional_files_may_be_missing(tmp_path):
    run = _copy(tmp_path)
    for f in ("policy.json", "churn.json", "throughput.json", "boundary.json"):
        (run / f).unlink()
    out = tmp_path / "elsewhere" / "r.html"
    assert write_report(run, out) == out
    assert not (run / "report.html").exists()
    text = out.read_text()
    assert "No <code>policy.json</code>" in text and "No <code>churn.json</code>" in text
    assert "No <code>throughput.json</code>" in text and "No <code>boundary.json</code>" in text
    assert len(_parse(text).imgs) == 2 * 5 + 2  # no policy: no admitted-sizes picture; no churn picture


@pytest.mark.parametrize("setup, needle", [
    pytest.param(lambda d: d / "absent", "Run directory not found: {d}/absent", id="missing-dir"),
    pytest.param(lambda d: (d / "f.txt").write_text("x") and d / "f.txt", "Received a file: {d}/f.txt",
                 id="a-file"),
    pytest.param(lambda d: d, "Not a costlab run directory: {d} (no profile.csv or profile.json; it holds nothing)",
                 id="empty-dir"),
    pytest.param(lambda d: (shutil.copytree(RUN, d / "r"), (d / "r" / "cost_models.json").write_text("{oops"),
                            d / "r")[-1], "Cannot read the cost models {d}/r/cost_models.json", id="bad-json"),
    pytest.param(lambda d: (shutil.copytree(RUN, d / "r"), (d / "r" / "policy.json").write_text('{"schema_version": "9"}'),
                            d / "r")[-1], "Policy file {d}/r/policy.json", id="bad-policy"),
])
def test_bad_run_directories_raise_one_error_naming_them(tmp_path, setup, needle):
    target = setup(tmp_path)
    with pytest.raises(CostlabError) as info:
        write_report(target)
    assert needle.format(d=tmp_path) in str(info.value)


def _costlab(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "costlab.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=RUN.parent.parent)


def test_cli_report_writes_the_file_it_prints(tmp_path):
    run = _copy(tmp_path)
    out = tmp_path / "r.html"
    proc = _costlab("report", run, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert len(_parse(out.read_text()).imgs) == 14


@pytest.mark.parametrize("args, needle", [
    pytest.param(["report", "no/such/run"], "Run directory not found: no/such/run", id="missing-dir"),
    pytest.param(["report", "pyproject.toml"], "Received a file: pyproject.toml", id="a-file"),
    pytest.param(["report", "costlab"], "Not a costlab run directory: costlab (no profile.csv", id="not-a-run"),
    pytest.param(["report"], "RUN_DIR", id="no-argument"),
])
def test_cli_report_errors_are_one_line_and_exit_2(args, needle):
    proc = _costlab(*args)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    err = lines[0]
    assert err.startswith("costlab: error:") and "Traceback" not in proc.stderr
    assert needle in err, err
