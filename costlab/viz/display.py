"""HTML views of profiles, cost models and policies, for notebooks and the run report.

`Profile._repr_html_`, `CostModel._repr_html_` and `Policy._repr_html_` call these, so a
notebook cell ending in one of them shows a compact table and an inline picture (a
base64 PNG: the HTML stands alone, nothing is fetched). Every text taken from the data is
escaped with `html.escape`.
"""

from __future__ import annotations

import base64
import html
import io
import math

import numpy as np
import pandas as pd

from costlab.viz import plots

#: Statuses a probe can have, in the order tables list them.
STATUSES = ("ok", "error", "oom", "timeout", "crashed")

_STYLE = ("border-collapse:collapse;margin:4px 0 10px 0;font-size:12px;"
          "font-family:system-ui,-apple-system,'Segoe UI',sans-serif")
_CELL = "border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top"


def esc(value) -> str:
    """`value` as escaped HTML text."""
    return html.escape(str(value), quote=True)


def fmt(value) -> str:
    """A short human form of a number, list or mapping (not yet escaped)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "—"
        return f"{v:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def html_table(rows, header=None, *, raw_columns=()) -> str:
    """An HTML table of `rows` (sequences of cells); cells are formatted with `fmt` and
    escaped, except the columns whose index is in `raw_columns` (already HTML).

    Args:
        rows: Iterable of row sequences.
        header: Column titles. Defaults to `None` (no header row).
        raw_columns: Indices of columns holding HTML to insert as it is. Defaults to `()`.

    Returns:
        The HTML string.
    """
    out = [f'<table style="{_STYLE}">']
    if header:
        out.append("<tr>" + "".join(f'<th style="{_CELL};background:#f0f0f0">{esc(h)}</th>' for h in header)
                   + "</tr>")
    for row in rows:
        cells = [c if k in raw_columns else esc(fmt(c)) for k, c in enumerate(row)]
        out.append("<tr>" + "".join(f'<td style="{_CELL}">{c}</td>' for c in cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def kv_table(mapping: dict) -> str:
    """A two-column table of `{field: value}`."""
    return html_table([(k, v) for k, v in mapping.items()], ("field", "value"))


def png_img(fig, *, alt: str = "plot", dpi: int = 100, width: str | None = None) -> str:
    """An `<img>` with `fig` embedded as a base64 PNG (a data: URI); nothing is written.

    Args:
        fig: A matplotlib figure (preferably `plots.figure()`, not registered with pyplot).
        alt: Alternative text. Defaults to `"plot"`.
        dpi: Resolution. Defaults to `100`.
        width: CSS width. Defaults to `None` (the image's own, at most the page's).

    Returns:
        The `<img>` tag.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    _close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    style = f"max-width:100%;{f'width:{width};' if width else ''}"
    return f'<img alt="{esc(alt)}" style="{style}" src="data:image/png;base64,{data}"/>'


def _close(fig):
    """Release a figure pyplot manages (a standalone `Figure` needs nothing)."""
    import sys

    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close(fig)


def with_units(target: str, value) -> str:
    """A cost in its display unit (`plots.UNITS`), e.g. `13.5 ms`."""
    label, unit, scale = plots.units(target)
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return fmt(value)
    return f"{value * scale:.4g} {unit}".strip()


def _heading(text: str, sub: str = "") -> str:
    more = f' <span style="color:#666;font-weight:normal">{esc(sub)}</span>' if sub else ""
    return f'<div style="font-weight:bold;font-size:13px;margin:6px 0 2px 0">{esc(text)}{more}</div>'


def _per_dim(draw, dims, alt: str) -> str:
    """One figure, a panel per dimension (the first three): `draw(dim, ax)` on each."""
    dims = list(dims)[:3]
    fig, axes = plots.figure(len(dims), width=4.6, height=4.4)
    for ax, d in zip(np.atleast_1d(axes), dims, strict=True):
        draw(d, ax)
    return png_img(fig, alt=alt)


def _wrap(*parts) -> str:
    return ('<div class="costlab" style="font-family:system-ui,-apple-system,\'Segoe UI\',sans-serif;'
            'font-size:12px">' + "".join(parts) + "</div>")


# --- Profile ------------------------------------------------------------------------------

def status_counts(table: pd.DataFrame) -> dict:
    """`{status: probes}`, the known statuses first (zeros included), then any others."""
    counts = table["status"].value_counts().to_dict() if "status" in table.columns else {}
    return {**{s: int(counts.get(s, 0)) for s in STATUSES}, **{s: int(n) for s, n in counts.items()
                                                               if s not in STATUSES}}


def profile_dims_rows(profile) -> list[tuple]:
    """One row per dimension: space range, measured range of successful probes, sizes."""
    ok = profile.ok
    rows = []
    for d in profile.dims:
        dim = profile.space.dim(d)
        seen = ok[d] if len(ok) else pd.Series(dtype=float)
        rows.append((d, f"{dim.min}–{dim.max}", f"{fmt(seen.min())}–{fmt(seen.max())}" if len(seen) else "—",
                     int(seen.nunique())))
    return rows


def profile_head(table: pd.DataFrame, dims, n: int = 8) -> str:
    """The first `n` rows of a profile table, the informative columns, costs in ms and MiB."""
    cols = [*dims, *[c for c in ("kind", "status") if c in table.columns]]
    head = table.head(n)
    rows = []
    conv = [(c, plots.units(c)) for c in ("cold_s", "wall_s_median", "wall_s_p99", "peak_bytes") if c in table.columns]
    for _, r in head.iterrows():
        rows.append([r[c] for c in cols] + [_scaled(r[c], scale) for c, (_, _, scale) in conv]
                    + ([r["error"]] if "error" in table.columns else []))
    header = cols + [f"{c} [{u}]" for c, (_, u, _) in conv] + (["error"] if "error" in table.columns else [])
    return html_table(rows, header)


def _scaled(v, scale):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v * scale


def profile_html(profile, *, head: int = 8) -> str:
    """HTML of a `Profile`: probes by status, dimension ranges, the table's first rows,
    and first-call against warm time along each dimension (`plots.cold_warm`).

    Args:
        profile: A `Profile`.
        head: Table rows shown. Defaults to `8`.

    Returns:
        An HTML string.
    """
    from costlab.profiling.speed import is_pulse

    t = profile.table
    name = profile.model.get("name", "model")
    pulse = is_pulse(t)
    pulses = f" and {int(pulse.sum())} pulses (the reference input, costlab.profiling.speed)" if pulse.any() else ""
    parts = [_heading(f"Profile of {name}", f"{int((~pulse).sum())} probes{pulses} on "
                                            f"{profile.machine.get('cpu', 'an unknown CPU')}"),
             html_table([(s, n) for s, n in status_counts(t[~pulse]).items()], ("status", "probes")),
             html_table(profile_dims_rows(profile), ("dimension", "space", "measured (ok)", "distinct sizes")),
             _heading(f"First {min(head, len(t))} of {len(t)} rows"), profile_head(t, profile.dims, head)]
    if "cold_s" in t.columns and len(profile.ok):
        parts.append(_per_dim(lambda d, ax: plots.cold_warm(profile, d, ax=ax), profile.dims,
                              f"first call against warm median of {name}"))
    return _wrap(*parts)


# --- CostModel ----------------------------------------------------------------------------

def cost_model_rows(model) -> list[tuple]:
    """`(field, value)` rows of a fitted `CostModel`: class, what else is consistent,
    exponents, range, bound, score."""
    amb = model.ambiguous_
    return [("target", model.target), ("complexity", model.complexity_),
            ("also consistent", f"{len(amb)}: {', '.join(amb)}" if amb else "none"),
            ("undetermined powers", ", ".join(model.undetermined_dims()) or "none"),
            ("bound's class (beyond range)", model.bound_complexity_),
            ("exponents", {d: f"{e['power']:g}" + (f" log^{e['log']}" if e["log"] else "")
                           for d, e in model.exponents_.items()}),
            ("measured range", {d: f"{lo:g}–{hi:g}" for d, (lo, hi) in model.range_.items()}),
            ("upper factor (beyond range)", f"×{model.upper_factor_:.3f} at q={model.q:g}"),
            ("held-out score", f"median |ln(pred/true)| {model.score_:.3f}"),
            ("distinct sizes fitted", getattr(model, "n_points_", None))]


def cost_model_terms(model) -> str:
    """HTML table of the fitted terms and their coefficients, in the cost's units."""
    from costlab.curves import term_name

    _, unit, scale = plots.units(model.target)
    rows = [(term_name({d: tuple(e) for d, e in t["factors"].items()}), f"{t['coef'] * scale:.4g} {unit}".strip())
            for t in model.terms_]
    return html_table(rows, ("term", "coefficient"))


def cost_model_html(model) -> str:
    """HTML of a `CostModel`: its class, the classes the data cannot rule out, the fitted
    terms with coefficients, measured range and bound factor, and the curve with its
    upper bound over the measured range (`plots.curve`; the model holds no measurements).

    Args:
        model: A `CostModel`, fitted or not.

    Returns:
        An HTML string.
    """
    if not hasattr(model, "terms_"):
        return _wrap(_heading(f"CostModel(target={model.target!r})", "not fitted: call fit(X, y)"))
    parts = [_heading(f"CostModel of {model.target}", model.complexity_),
             html_table(cost_model_rows(model), ("field", "value")), cost_model_terms(model)]
    parts.append(_per_dim(lambda d, ax: plots.curve(model, d, ax=ax), model.dims_, f"fitted {model.target} curve"))
    return _wrap(*parts)


# --- Policy -------------------------------------------------------------------------------

def _evidence(entry: dict, budgets) -> str:
    """Predicted and upper-bound costs of the budgeted targets where a limit binds."""
    out = []
    for t, (key, _) in budgets.targets().items():
        pred, up = (entry.get("predicted") or {}).get(t), (entry.get("upper") or {}).get(t)
        if pred is None and up is None:
            continue
        out.append(f"{t}: predicted {with_units(t, pred)}, upper {with_units(t, up)} "
                   f"(budget {getattr(budgets, key):g} × {budgets.margin:g})")
    return "; ".join(out)


def policy_limit_rows(policy) -> list[tuple]:
    """One row per limit: dimension, min, max, what bound it, and the evidence."""
    b = policy.budgets
    return [(d, lim["min"], lim["max"], lim["limited_by"], _evidence(lim, b)) for d, lim in policy.limits.items()]


def policy_joint_rows(policy) -> list[tuple]:
    """One row per joint budget: name, input, max, the box's max, what bound it, and how
    it is computed (`(batch + 185) × seq_len` when it has offsets)."""
    from costlab.policy import joint_expression

    return [(j["name"], j["input"], j["max"], j.get("box_max"), j["limited_by"], joint_expression(j))
            for j in policy.joint]


def scalars(section: dict) -> dict:
    """The fields of a policy section that are not themselves sections."""
    return {k: v for k, v in (section or {}).items() if not isinstance(v, dict)}


def policy_html(policy) -> str:
    """HTML of a `Policy`: budgets, each limit with what bound it and the costs there,
    joint budgets, the worst admitted input, request and serving fields, shape buckets,
    and the admitted region (`plots.region`).

    Args:
        policy: A `Policy`.

    Returns:
        An HTML string.
    """
    d = policy.data
    name = d["model"].get("name", "model")
    parts = [_heading(f"Policy for {name}", f"schema {d['schema_version']}, created {d.get('created', '?')}"),
             kv_table(d["budgets"]),
             html_table(policy_limit_rows(policy), ("dimension", "min", "max", "limited by", "evidence"))]
    joint = policy_joint_rows(policy)
    if joint:
        parts += [_heading("Joint budgets", "product of the sizes ≤ max"),
                  html_table(joint, ("joint", "input", "max", "box alone", "limited by", "computed as"))]
    worst = d.get("worst_admitted")
    if worst:
        parts += [_heading("Worst admitted input", fmt(worst["sizes"])),
                  html_table([(t, with_units(t, worst["predicted"].get(t)), with_units(t, worst["upper"].get(t)))
                              for t in worst["predicted"]], ("cost", "predicted", "upper bound"))]
    for section in ("request", "serving"):
        if d.get(section):
            parts += [_heading(section.capitalize()), kv_table(scalars(d[section]))]
    thr = (d.get("serving") or {}).get("throughput")
    if thr:
        parts += [_heading("Throughput measured at the worst admitted input"), kv_table(scalars(thr))]
    shapes = d.get("shapes")
    if shapes:
        parts += [_heading("Shapes", shapes.get("reason", "")),
                  html_table([(k, v) for k, v in (shapes.get("buckets") or {}).items()]
                             + [("max distinct shapes", shapes.get("max_distinct"))], ("dimension", "buckets"))]
    fig, ax = plots.figure(width=6.0, height=5.2 if len(policy.limits) > 1 else 3.0)
    plots.region(policy, ax=ax)
    parts.append(png_img(fig, alt=f"admitted sizes of {name}", width="520px"))
    return _wrap(*parts)
