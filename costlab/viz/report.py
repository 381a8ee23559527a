"""One self-contained HTML report of a run directory.

`write_report(run_dir)` reads what `costlab run` wrote (`profile.csv`, `profile.json`,
`cost_models.json`, `policy.json`, `boundary.json`, `churn.json`, `throughput.json`,
`failures/failures.jsonl`; all but the profile optional) and writes `report.html`: every
picture is a base64 PNG inside the file, the style is inline, there is no script, so the
file can be mailed or attached to a CI run and opened anywhere.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
from pathlib import Path

from costlab.errors import CostlabError
from costlab.profiling.speed import is_pulse, speed
from costlab.rundir import Run
from costlab.runtime.drift import check_medians
from costlab.viz import display, plots
from costlab.viz.display import esc, fmt, html_table, kv_table, png_img

#: Targets drawn per dimension (`wall_s_p99` too when the policy budgets it); the other
#: percentiles are listed in the complexity table, not drawn.
DRAWN_TARGETS = ("wall_s_median", "peak_bytes")

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1180px;padding:12px 20px;
color:#222;font-size:14px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;border-bottom:2px solid #ddd;margin-top:28px;padding-bottom:3px}
h3{font-size:15px;margin:16px 0 4px 0}nav a{margin-right:12px}
.grid{display:flex;flex-wrap:wrap;gap:10px}.grid img{width:560px;max-width:100%;border:1px solid #eee}
.note{color:#555}.bad{color:#b00020}code{background:#f4f4f4;padding:0 3px}
"""


def load_run(run_dir) -> dict:
    """Everything a run directory holds, read by `costlab.rundir.Run.load`, as a dict.

    Returns:
        `{"dir", "profile", "cost_models", "policy", "boundary", "churn", "throughput",
        "skipped", "validity", "failures"}`; absent optional files give `None` (`{}` for
        `cost_models`, `[]` for `failures`).

    Raises:
        CostlabError: As `Run.load`.
    """
    run = Run.load(run_dir)
    out = {"dir": run.out_dir, "profile": run.profile, "cost_models": run.cost_models, "policy": run.policy}
    for key in ("boundary", "churn", "throughput", "skipped", "validity"):
        out[key] = run.files.get(key)
    out["failures"] = run.files["failures"]
    return out


def _img(draw, *args, alt, width=6.4, height=5.0, **kw) -> str:
    fig, ax = plots.figure(width=width, height=height)
    draw(*args, ax=ax, **kw)
    return png_img(fig, alt=alt, dpi=90)


def _summary(run: dict) -> list[str]:
    prof, pol = run["profile"], run["policy"]
    t = prof.table
    m = prof.model
    versions = ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items())
    failed = int((t["status"] != "ok").sum())  # a failing pulse is a failure too
    rows = [("model", m.get("name")), ("framework", f"{m.get('framework', '?')} ({versions})" if versions
                                       else m.get("framework")),
            ("sha256", (m.get("sha256") or "")[:16] + "…"), ("call", m.get("call")),
            ("machine", f"{prof.machine.get('cpu', '?')}, {prof.machine.get('cores', '?')} cores"),
            ("probes", f"{int((~is_pulse(t)).sum())} ({failed} failed)")]
    pulses = int(is_pulse(t).sum())
    if pulses:
        rows.append(("pulses", f"{pulses} (the reference input; see Machine speed over the run)"))
    parts = [kv_table(dict(rows)), html_table([(s, n) for s, n in display.status_counts(t[~is_pulse(t)]).items()
                                               if n], ("status", "probes"))]
    parts.append(html_table(display.profile_dims_rows(prof), ("dimension", "space", "measured (ok)",
                                                              "distinct sizes")))
    if prof.memory_fallback:
        parts.append(f'<p class="bad"><strong>Memory:</strong> {esc(prof.memory_fallback)}.</p>')
    if pol is None:
        parts.append('<p class="note">No <code>policy.json</code> in this run directory: no budgets or limits.</p>')
        return parts
    vp = pol.data.get("value_pattern")
    if vp:
        from costlab.profiling.values import PATTERN_WORDS

        how = ("the value scan" if vp.get("chosen_by") == "scan" else "given")
        said = (f"{vp['pattern']} ({PATTERN_WORDS.get(vp['pattern'], '')}; {how}"
                + (f": {vp['ratio']:.1f}× the {vp['cost']} of random values at {vp['at']}"
                   if vp["pattern"] != "random" and vp.get("ratio") else "") + ")")
        parts += ["<h3>Values measured</h3>", kv_table({"every size measured with": said})]
        scan = [r for r in vp.get("scan") or [] if r.get("pattern") != "random"]
        if scan:
            parts.append(html_table([(json.dumps(r["sizes"]), r["pattern"], r["status"],
                                      "" if r.get("ratio_time") is None else f"{r['ratio_time']:.2f}",
                                      "" if r.get("ratio_memory") is None else f"{r['ratio_memory']:.2f}",
                                      "yes" if r.get("confirm") else "") for r in scan],
                                    ("sizes", "pattern", "status", "time / random", "memory / random",
                                     "second look")))
    parts += ["<h3>Budgets</h3>", kv_table(pol.data["budgets"]), "<h3>Limits</h3>",
              html_table(display.policy_limit_rows(pol), ("dimension", "min", "max", "limited by", "evidence"))]
    joint = display.policy_joint_rows(pol)
    if joint:
        parts += ["<h3>Joint budgets</h3>", html_table(joint, ("joint", "input", "max", "box alone", "limited by", "computed as"))]
    worst = pol.worst_admitted
    if worst:
        parts += [f"<h3>Worst admitted input: {esc(fmt(worst['sizes']))}</h3>",
                  html_table([(tg, display.with_units(tg, worst["predicted"].get(tg)),
                               display.with_units(tg, worst["upper"].get(tg))) for tg in worst["predicted"]],
                             ("cost", "predicted", "upper bound")),
                  f'<p class="note">The most expensive admitted input uses {worst["budget_fraction"]:.0%} of its '
                  f"budget (upper bound over budget).</p>"]
    return parts


def _complexity(run: dict) -> list[str]:
    models = run["cost_models"]
    if not models:
        return ['<p class="note">No <code>cost_models.json</code> in this run directory: nothing was fitted.</p>']
    rows = []
    for target, m in models.items():
        amb = m.ambiguous_
        rows.append((target, m.complexity_, ", ".join(m.undetermined_dims()) or "none",
                     f"<details><summary>{len(amb)}</summary>{esc(', '.join(amb))}</details>" if amb else "none",
                     m.bound_complexity_, f"×{m.upper_factor_:.3f}", f"{m.score_:.3f}", fmt({d: f"{lo:g}–{hi:g}" for d, (lo, hi)
                                                                         in m.range_.items()})))
    parts = [html_table(rows, ("target", "complexity", "undetermined powers", "also consistent",
                               "bound's class", "upper factor", "held-out score", "measured range"), raw_columns=(3,))]
    for target, m in models.items():
        parts += [f"<h3>{esc(target)}: {esc(m.complexity_)}</h3>", display.cost_model_terms(m)]
    return parts


def _plots(run: dict) -> list[str]:
    prof, pol, models = run["profile"], run["policy"], run["cost_models"]
    name = prof.model.get("name", "model")
    parts = []
    targets = set(DRAWN_TARGETS) | (set(pol.budgets.targets()) if pol is not None else set())
    drawn = {t: m for t, m in models.items() if t in targets}
    if not drawn:
        parts.append('<p class="note">No fitted cost to draw.</p>')
    for target, m in drawn.items():
        label, unit, _ = plots.units(target)
        imgs = []
        for d in prof.dims:
            imgs.append(_img(plots.cost_vs_dim, prof, m, d, alt=f"{label} [{unit}] against {d}, fit and upper bound"))
            if d in m.dims_:
                imgs.append(_img(plots.residuals, prof, m, d, alt=f"residuals of {label} against {d}"))
        for d1, d2 in itertools.combinations(m.dims_, 2):
            imgs.append(_img(plots.heatmap, prof, m, (d1, d2), pol, alt=f"predicted {label} over {d1} and {d2}"
                             + (" with the policy boundary" if pol is not None else ""), width=7.0, height=6.0))
        parts += [f"<h3>{esc(label)} [{esc(unit)}]: {esc(m.complexity_)}</h3>", '<div class="grid">',
                  *imgs, "</div>"]
    if "cold_s" in prof.table.columns and len(prof.ok):
        parts += ["<h3>First call (cold) against the warm median</h3>", '<div class="grid">',
                  *[_img(plots.cold_warm, prof, d, alt=f"cold against warm along {d} for {name}")
                    for d in prof.dims], "</div>"]
    sp = speed(prof.table)
    if sp is not None:
        parts += ["<h3>Machine speed over the run</h3>", f'<p class="note">{esc(sp.summary())}.</p>',
                  '<div class="grid">', _img(plots.speed_index, prof, alt=f"machine-speed index over the run of {name}"),
                  "</div>"]
    if pol is not None:
        parts += ["<h3>Admitted sizes</h3>", '<div class="grid">',
                  _img(plots.region, pol, alt=f"sizes the policy admits for {name}",
                       height=5.4 if len(pol.limits) > 1 else 3.2), "</div>"]
    return parts


def _policy_fields(run: dict) -> list[str]:
    pol = run["policy"]
    if pol is None:
        return ['<p class="note">No policy.</p>']
    d = pol.data
    parts = []
    for section in ("request", "serving"):
        if d.get(section):
            parts += [f"<h3>{section.capitalize()}</h3>", kv_table(display.scalars(d[section]))]
    payload = (d.get("request") or {}).get("payload")
    if payload:
        parts += ["<h3>Payload per input</h3>",
                  html_table([(k, v["elements"], v["raw_bytes"], v["json_bytes"]) for k, v in payload.items()],
                             ("input", "elements", "raw bytes", "JSON bytes"))]
    shapes = d.get("shapes")
    if shapes:
        parts += [f"<h3>Shapes: {esc(shapes.get('reason', ''))}</h3>",
                  html_table([(k, v) for k, v in (shapes.get("buckets") or {}).items()]
                             + [("max distinct shapes", shapes.get("max_distinct")),
                                ("padded shapes", shapes.get("padded_shapes"))], ("dimension", "buckets"))]
        drift = shapes.get("drift")
        if drift:
            verdict = (f"planned for: {drift['planned_ms']:g} ms added to every time curve" if drift["planned_ms"] else
                       f"not planned for: median ratio {drift['median_ratio']:g} under {drift['threshold']:g}")
            checks = drift.get("checks") or []
            if len(checks) > 1:
                verdict += f"; the largest of {len(checks)} checks' median ratios: {check_medians(checks)}"
            parts += [f"<h3>Shape drift after {drift['shapes']} distinct shapes in one process ({esc(verdict)})</h3>",
                      html_table([(k, (drift.get("inputs") or {}).get(k), (drift.get("before_ms") or {}).get(k),
                                   (drift.get("after_ms") or {}).get(k),
                                   f"{(drift.get('control_before_ms') or {}).get(k)} → "
                                   f"{(drift.get('control_after_ms') or {}).get(k)}", r, drift["added_ms"][k])
                                  for k, r in drift["ratio"].items()],
                                 ("frontier input", "sizes", "before (ms)", "after (ms)", "control before → after (ms)",
                                  "ratio", "added (ms)"))]
    parts += ["<h3>Inputs</h3>",
              html_table([(n, s["dtype"], s["shape"], s.get("values")) for n, s in d["inputs"].items()],
                         ("input", "dtype", "shape", "values"))]
    return parts


def _boundary(run: dict) -> list[str]:
    b = run["boundary"]
    if not b:
        return ['<p class="note">No <code>boundary.json</code>: the boundary search did not run.</p>']
    limits = run["policy"].limits if run["policy"] is not None else {}
    rows = [(key, v.get("dim", key.split("@")[0]), v.get("from", "box corner"), v.get("start"), v["limit"],
             ("" if v["exact"] else "≥ ") + str(v["boundary"]),
             limits.get(v.get("dim", key.split("@")[0]), {}).get("max")) for key, v in b.items()]
    return [html_table(rows, ("search", "dimension", "from", "start", "started at", "measured boundary",
                              "final limit"))]


def _validity(run: dict) -> list[str]:
    v = (run["policy"].data.get("validity") if run["policy"] is not None else None) or run.get("validity")
    if not v:
        return ['<p class="note">No validity search in this run (<code>validity.json</code>): the model\'s own '
                "limits were not searched in a fresh process.</p>"]
    parts = [f'<p>Judged in freshly started workers ({v.get("fresh_checks", 0)} fresh verdicts) and a warm one, '
             f'on {esc(v.get("backend"))} through <code>{esc(v.get("call"))}</code>; the admitted region never passes '
             "these limits, whatever the budgets.</p>"]
    if v.get("limits"):
        parts.append(html_table([(d, lim.get("min"), lim.get("max"), lim.get("multiple_of") or "", lim.get("error"))
                                 for d, lim in v["limits"].items()],
                                ("dimension", "smallest valid", "largest valid", "only multiples of",
                                 "the model's error past it")))
    else:
        parts.append("<p>The model ran every admitted corner in a fresh process: no validity limit.</p>")
    if v.get("floor"):
        parts.append(f'<p class="note">Smallest valid corner: <code>{esc(json.dumps(v["floor"]))}</code>.</p>')
    for note in v.get("notes") or []:
        parts.append(f'<p class="note">{esc(note)}</p>')
    return parts


def _churn_throughput(run: dict) -> list[str]:
    parts = []
    churn, thr = run["churn"], run["throughput"]
    if churn:
        figures = {k: v for k, v in churn.items() if k != "rows"}
        parts += ["<h3>Shape churn</h3>", kv_table(figures)]
        if churn.get("rows"):
            parts += ['<div class="grid">', _img(plots.churn, churn, alt="first call at new and seen shapes"),
                      "</div>"]
    else:
        parts.append('<p class="note">No <code>churn.json</code>: shape churn was not measured.</p>')
    if thr:
        parts += ["<h3>Throughput at the worst admitted input</h3>", kv_table(display.scalars(thr)
                                                                             | {"sizes": thr.get("sizes")})]
    else:
        parts.append('<p class="note">No <code>throughput.json</code>: throughput was not measured.</p>')
    return parts


def _failures(run: dict) -> list[str]:
    prof = run["profile"]
    bad = prof.failures
    parts = []
    if run.get("skipped"):
        parts += ["<h3>Stages skipped (the policy was written without them)</h3>",
                  html_table([(k.get("stage"), json.dumps(k.get("sizes")) if k.get("sizes") else "", k.get("error"),
                               k.get("without"), k.get("repro", "")) for k in run["skipped"]],
                             ("stage", "at", "error", "so", "input kept"))]
    if len(bad):
        cols = [*prof.dims, "kind", "status", "error"] + (["repro"] if "repro" in bad.columns else [])
        parts.append(html_table([[r[c] for c in cols] for _, r in bad.iterrows()], cols))
    else:
        parts.append("<p>No probe failed.</p>")
    if run["failures"]:
        parts.append(f'<p class="note">{len(run["failures"])} failing inputs are kept in '
                     f"<code>failures/</code> (<code>failures.jsonl</code>; load the arrays with "
                     f"<code>costlab.load_failure</code>).</p>")
    if prof.not_launched:
        parts += ["<h3>Not launched (predicted over the hard caps)</h3>",
                  html_table([(p.get("sizes"), p.get("kind"), p.get("over"), p.get("predicted_s"),
                               p.get("predicted_mib")) for p in prof.not_launched],
                             ("sizes", "kind", "over", "predicted s", "predicted MiB"))]
    return parts


def render(run: dict) -> str:
    """The report's HTML for a loaded run (`load_run`)."""
    prof = run["profile"]
    name = prof.model.get("name", "model")
    sections = [("summary", "Summary", _summary), ("complexity", "Complexity per cost", _complexity),
                ("plots", "Plots", _plots), ("policy", "Policy fields", _policy_fields),
                ("boundary", "Budget boundary", _boundary), ("validity", "Validity limits", _validity),
                ("churn", "Shape churn and throughput", _churn_throughput), ("failures", "Failures", _failures)]
    body = []
    for anchor, title, build in sections:
        body += [f'<h2 id="{anchor}">{esc(title)}</h2>', *build(run)]
    nav = "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t, _ in sections)
    when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>costlab report: {esc(name)}</title><style>{_CSS}</style></head><body>"
            f"<h1>costlab report: {esc(name)}</h1>"
            f'<p class="note">Run directory <code>{esc(run["dir"])}</code>; written {esc(when)}.</p>'
            f"<nav>{nav}</nav>" + "\n".join(body) + "</body></html>\n")


def write_report(run_dir, out=None) -> Path:
    """Write one self-contained HTML report of a run directory.

    Sections: summary (model, budgets, limits, joint budgets, worst admitted input),
    complexity per cost with its terms, plots (cost against each dimension with the fit
    and upper band and failed probes marked by status, residuals, heatmaps with the
    policy's boundary, first call against warm, admitted sizes), policy fields (request,
    serving, shapes, inputs), budget boundary, shape churn and throughput, failures.

    Args:
        run_dir: A directory written by `costlab run`.
        out: The file to write. Defaults to `None` (`report.html` in `run_dir`).

    Returns:
        The path written.

    Raises:
        CostlabError: `run_dir` is missing or not a run directory, a file in it cannot
            be read, or `out` cannot be written.

    Example:
        >>> from costlab.viz.report import write_report
        >>> write_report("runs/demo")  # doctest: +SKIP
        PosixPath('runs/demo/report.html')
    """
    run = load_run(run_dir)
    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    text = render(run)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CostlabError(f"Cannot write the report to {out or path}: {exc.strerror or exc}") from None
    return path
