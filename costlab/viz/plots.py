"""Pictures of cost: measurements, fitted curves, residuals and policy boundaries.

Every function draws on `ax` when one is given and otherwise on a new pyplot figure, and
returns the axes. Without a configured matplotlib backend (a script on a headless
machine) the non-interactive Agg backend is selected; a backend already set up (a
notebook's inline backend, `MPLBACKEND`) is left alone. `save_all` draws on standalone
`matplotlib.figure.Figure` objects, so writing files never touches pyplot's state.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd

from costlab.errors import CostlabError
from costlab.measurement.costs import COSTS

#: `{cost column: (label, unit, scale from the column's unit to the displayed one)}`.
UNITS = {k: (c.label, c.unit, c.scale) for k, c in COSTS.items()}

#: Marker and colour of each failure status, drawn at the bottom of the axes.
STATUS_STYLE = {"oom": ("v", "tab:red"), "timeout": ("s", "tab:orange"), "crashed": ("X", "black"),
                "error": ("D", "tab:purple")}
_OTHER_STATUS = ("P", "dimgrey")

#: Colour of each probe kind (the part of `kind` before `:`).
KIND_COLORS = {"slice": "tab:blue", "joint": "tab:green", "boundary": "tab:orange", "fuzz": "tab:purple"}


def units(target: str) -> tuple[str, str, float]:
    """`(label, unit, scale)` for a cost column; unknown columns are shown as they are."""
    return UNITS.get(target, (target, "", 1.0))


def _axes(ax, figsize=(6.4, 5.0)):
    if ax is not None:
        return ax
    import matplotlib

    backend_or_none = getattr(matplotlib.rcParams, "_get_backend_or_none", None)
    if backend_or_none is not None and backend_or_none() is None:
        matplotlib.use("Agg")  # nothing set up: a headless script; a notebook's backend is kept
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _finish(ax):
    """Legend, grid and plain log ticks on both axes; the axes."""
    _legend(ax)
    ax.grid(True, which="both", alpha=0.3)
    _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    return ax


def _dress(ax, dim: str, label: str, unit: str, title: str, legend: str, loglog: bool) -> None:
    """A cost-against-size plot's scales, labels, title, legend and grid."""
    if loglog:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(f"{dim} (size)")
    ax.set_ylabel(f"{label} [{unit}]" if unit else label)
    ax.set_title(title, fontsize=10)
    _legend(ax, title=legend)
    ax.grid(True, which="both", alpha=0.3)


def _legend(ax, **kw):
    """A legend under the axes, so it never hides data."""
    kw = {"fontsize": 7, "loc": "upper center", "bbox_to_anchor": (0.5, -0.16), "ncol": 2,
          "title_fontsize": 7, **kw}
    return ax.legend(**kw)


def _plain_log_ticks(axis):
    """Sizes as plain numbers (2, 5, 10, 200) on a log axis, not 2×10⁰."""
    from matplotlib.ticker import LogFormatter

    axis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1.2, 0.5)))


def _source(profile_or_table, model=None) -> tuple[pd.DataFrame, list[str], str]:
    """(table, dimension names, model name) of a `Profile` or a profile table, as the curves
    were fitted on it: pulses left out, times at the run's median speed (`costlab.profiling.speed`)."""
    from costlab.profiling.speed import normalised

    if hasattr(profile_or_table, "table") and hasattr(profile_or_table, "dims"):
        return (normalised(profile_or_table.table), list(profile_or_table.dims),
                str(profile_or_table.model.get("name", "model")))
    if isinstance(profile_or_table, pd.DataFrame):
        table = profile_or_table
        if model is not None and hasattr(model, "dims_"):
            dims = list(model.dims_)
        else:
            first = next((c for c in ("plan", "kind") if c in table.columns), None)
            if first is None:
                raise CostlabError("Cannot tell the dimension columns of this table: it has no `plan` or `kind` "
                                   f"column. Received columns: {list(table.columns)}")
            dims = list(table.columns[: list(table.columns).index(first)])
        missing = [c for c in [*dims, "status"] if c not in table.columns]
        if missing:
            raise CostlabError(f"The table lacks columns {missing}. Received columns: {list(table.columns)}")
        return normalised(table), dims, "model"
    raise CostlabError(f"Expected a Profile or a profile table (pandas DataFrame). "
                       f"Received: {type(profile_or_table).__name__}")


def _check_dim(dim, dims, what="dimension"):
    if dim not in dims:
        raise CostlabError(f"Unknown {what} {dim!r}; expected one of {list(dims)}. Received: {dim!r}")


def _check_model(model):
    if not hasattr(model, "terms_"):
        raise CostlabError(f"Expected a fitted CostModel. Received: {model!r}")


def _ok(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """Successful rows whose `column` is a positive finite number."""
    if column not in table.columns:
        raise CostlabError(f"The table has no {column!r} column. Received columns: {list(table.columns)}")
    ok = table[table["status"] == "ok"]
    y = pd.to_numeric(ok[column], errors="coerce")
    return ok[np.isfinite(y) & (y > 0)]


def mark_failures(ax, table: pd.DataFrame, dim: str, *, y: float = 0.03):
    """Mark every failed probe at its size along `dim`, at the bottom of the axes.

    Failed probes have no cost to plot; each status gets its own marker (`STATUS_STYLE`)
    and one legend entry with its count.

    Args:
        ax: The axes.
        table: A profile table.
        dim: The dimension on the x axis.
        y: Height of the marks as a fraction of the axes. Defaults to `0.03`.

    Returns:
        `{status: count}` of the probes marked.
    """
    bad = table[table["status"] != "ok"]
    counts = {}
    for status, g in bad.groupby("status", sort=True):
        marker, color = STATUS_STYLE.get(status, _OTHER_STATUS)
        ax.plot(g[dim].astype(float), np.full(len(g), y), linestyle="none", marker=marker, color=color,
                markersize=8, markeredgecolor="white", transform=ax.get_xaxis_transform(), clip_on=False,
                zorder=6, label=f"{status} ({len(g)})")
        counts[status] = len(g)
    return counts


def cost_vs_dim(profile, model, dim: str, *, ax=None, loglog: bool = True):
    """Scatter the measured cost against `dim`, with the fitted curve and its upper bound.

    Each slice of the sweep (other dimensions held fixed) is drawn with its own curve and
    a shaded band between the fit (solid) and the upper bound (dotted); other probes are
    grey; failed probes are marked at the bottom of the axes, one marker per status.

    Args:
        profile: A `Profile`, or its table (a DataFrame; dimensions from `model`).
        model: The fitted `CostModel` of one target.
        dim: The dimension for the x axis.
        ax: A matplotlib axes. Defaults to a new figure.
        loglog: Log scales on both axes. Defaults to `True`.

    Returns:
        The matplotlib axes.

    Raises:
        CostlabError: `dim` is not a dimension, or the table lacks the model's target.
    """
    _check_model(model)
    table, dims, name = _source(profile, model)
    _check_dim(dim, dims)
    label, unit, scale = units(model.target)
    ax = _axes(ax)
    others = [d for d in dims if d != dim]
    ok = _ok(table, model.target)
    kinds = ok["kind"].astype(str) if "kind" in ok.columns else pd.Series("", index=ok.index)
    sl = ok[kinds == f"slice:{dim}"]
    groups = list(sl.groupby(others)) if others and len(sl) else ([((), sl)] if len(sl) else [])
    if not groups:  # no sweep slice along `dim`: the curve with the others at their median
        at = tuple(float(np.median(ok[o])) if len(ok) else model.range_.get(o, [1, 1])[0] for o in others)
        groups = [(at, ok.iloc[:0])]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        desc = ", ".join(f"{o}={v:g}" for o, v in zip(others, key, strict=True)) or "measured"
        if len(g):
            color = ax.plot(g[dim], g[model.target] * scale, "o", label=desc)[0].get_color()
            lo, hi = float(g[dim].min()), float(g[dim].max()) * 2
        else:
            color = "tab:blue"
            lo, hi = model.range_[dim][0], model.range_[dim][1] * 2
        xs = np.geomspace(lo, hi, 60)
        X = pd.DataFrame({dim: xs, **{o: v for o, v in zip(others, key, strict=True)}})
        pred, up = model.predict(X[model.dims_]) * scale, model.upper(X[model.dims_]) * scale
        ax.plot(xs, pred, "-", color=color, alpha=0.8)
        ax.plot(xs, up, ":", color=color, alpha=0.8)
        ax.fill_between(xs, pred, up, color=color, alpha=0.12, linewidth=0)
    rest = ok[kinds != f"slice:{dim}"]
    if len(rest):
        ax.plot(rest[dim], rest[model.target] * scale, ".", color="grey", alpha=0.5, label="other probes")
    mark_failures(ax, table, dim)
    _dress(ax, dim, label, unit, f"{name}: {label} vs {dim}\nfit {model.complexity_}",
           "solid: fit, dotted: upper bound, band between them", loglog)
    if loglog:
        _plain_log_ticks(ax.xaxis)
        _plain_log_ticks(ax.yaxis)
    return ax


def residuals(profile_or_table, model, dim: str | None = None, *, ax=None):
    """Plot ln(measured / predicted) of every successful probe against `dim`.

    Points are coloured by probe kind. The zero line is the fit; the dashed line is the
    upper bound's factor beyond the measured range (`upper_factor_`), and the short red
    dashes are the bound at each probe (`upper / predict`, calibrated locally). Probes
    under the target's measurement resolution, which the fit leaves out, are hollow.

    Args:
        profile_or_table: A `Profile`, or its table (dimensions from `model`).
        model: The fitted `CostModel` of one target.
        dim: The dimension for the x axis. Defaults to the model's first.
        ax: A matplotlib axes. Defaults to a new figure.

    Returns:
        The matplotlib axes.

    Raises:
        CostlabError: `dim` is not one of the model's dimensions, or the table lacks the
            model's target.
    """
    from costlab.curves import TARGETS

    _check_model(model)
    table, _, name = _source(profile_or_table, model)
    dim = model.dims_[0] if dim is None else dim
    _check_dim(dim, model.dims_, "dimension of the model")
    label, _, _ = units(model.target)
    ax = _axes(ax)
    ok = _ok(table, model.target)
    y = ok[model.target].astype(float).to_numpy()
    pred = model.predict(ok[model.dims_])
    r = np.log(y / np.maximum(pred, 1e-300))
    resolution = TARGETS.get(model.target, (None, 0.0))[1]
    fitted = y >= resolution
    kinds = (ok["kind"].astype(str).str.split(":").str[0] if "kind" in ok.columns
             else pd.Series("probe", index=ok.index)).to_numpy()
    x = ok[dim].astype(float).to_numpy()
    for kind in sorted(set(kinds[fitted])):
        m = fitted & (kinds == kind)
        ax.plot(x[m], r[m], "o", color=KIND_COLORS.get(kind, "tab:grey"), alpha=0.75, label=f"{kind} ({int(m.sum())})")
    if (~fitted).any():
        ax.plot(x[~fitted], r[~fitted], "o", markerfacecolor="none", color="grey",
                label=f"under resolution, not fitted ({int((~fitted).sum())})")
    local = np.log(model.upper(ok[model.dims_]) / np.maximum(pred, 1e-300))
    ax.plot(x, local, "_", color="tab:red", markersize=10, label="upper bound at each probe")
    ax.axhline(0.0, color="black", linewidth=1, label="fit")
    uf = float(model.upper_factor_)
    ax.axhline(math.log(uf), color="tab:red", linestyle="--", linewidth=1,
               label=f"upper factor ×{uf:.2f} (beyond measured range)")
    ax.set_xscale("log")
    ax.set_xlabel(f"{dim} (size)")
    ax.set_ylabel("ln(measured / predicted)  (× ratio)")
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:+.2f} (×{math.exp(v):.2f})"))
    med = float(np.median(np.abs(r[fitted]))) if fitted.any() else float("nan")
    ax.set_title(f"{name}: {label} residuals vs {dim}\nfit {model.complexity_}; median |ln| {med:.3f} over "
                 f"{int(fitted.sum())} probes", fontsize=10)
    _legend(ax)
    ax.grid(True, which="both", alpha=0.3)
    _plain_log_ticks(ax.xaxis)
    return ax


def _fixed_values(table, dims, others, fixed, policy) -> dict:
    """Values of the dimensions a 2-D picture holds fixed: given, else the policy's worst
    admitted input, else the size most measured."""
    out = {}
    worst = ((policy.worst_admitted or {}).get("sizes") or {}) if policy is not None else {}
    for o in others:
        if fixed and o in fixed:
            out[o] = float(fixed[o])
        elif o in worst:
            out[o] = float(worst[o])
        elif o in table.columns and len(table):
            out[o] = float(table[o].mode().iloc[0])
        else:
            raise CostlabError(f"Pass `fixed={{{o!r}: size}}`: no value to hold {o!r} at")
    unknown = sorted(set(fixed or {}) - set(others))
    if unknown:
        raise CostlabError(f"`fixed` names dimensions that are not held fixed: {unknown}; "
                           f"the fixed dimensions are {others}. Received: fixed={fixed!r}")
    return out


def _axis_range(d, model, table, policy):
    lo, hi = [], []
    if model is not None and d in getattr(model, "range_", {}):
        lo.append(model.range_[d][0])
        hi.append(model.range_[d][1])
    if table is not None and d in table.columns and len(table):
        lo.append(float(table[d].min()))
        hi.append(float(table[d].max()))
    if policy is not None and d in policy.limits:
        lo.append(policy.limits[d]["min"])
        hi.append(policy.limits[d]["max"])
    lo, hi = max(min(lo), 1e-9), max(hi)
    if hi <= lo:
        lo, hi = lo / 1.5, hi * 1.5
    return lo / 1.15, hi * 1.15


def draw_policy(ax, policy, dims, *, fixed=None, xlim=None, ylim=None, shade: float = 0.55) -> dict:
    """Draw a policy's boundary over two of its dimensions on `ax` (log axes assumed).

    Per-axis maxima (and minima above the axis' start) are dashed red lines; each joint
    budget is a solid red curve `(d1 + o1) × (d2 + o2) = max / (product of the fixed
    dimensions in it, each plus its offset)`, or a line when only one of its dimensions is
    drawn; sizes the policy does not
    admit are greyed out; the worst admitted input is a star.

    Args:
        ax: The axes.
        policy: A `Policy`.
        dims: `(x dimension, y dimension)`.
        fixed: Sizes of the policy's other dimensions. Defaults to `None` (the worst
            admitted input's).
        xlim: `(lo, hi)` of the x axis. Defaults to `None` (the axes' current limits).
        ylim: The same for the y axis.
        shade: Opacity of the white veil over the sizes not admitted; `0` draws none.
            Defaults to `0.55`.

    Returns:
        `{label: line}` of the boundary lines drawn.
    """
    from costlab.policy import joint_expression

    d1, d2 = dims
    lims = policy.limits
    worst = (policy.worst_admitted or {}).get("sizes") or {}
    at = {d: float((fixed or {}).get(d, worst.get(d, lims[d]["max"]))) for d in lims if d not in dims}
    xlo, xhi = xlim or ax.get_xlim()
    ylo, yhi = ylim or ax.get_ylim()
    drawn = {}
    for d, axline, lo in ((d1, ax.axvline, xlo), (d2, ax.axhline, ylo)):
        if d not in lims:
            continue
        lab = f"{d} ≤ {lims[d]['max']} ({lims[d]['limited_by']})"
        drawn[lab] = axline(lims[d]["max"], color="tab:red", linestyle="--", linewidth=1.5, label=lab)
        if lims[d]["min"] > lo * 1.001:
            axline(lims[d]["min"], color="tab:red", linestyle="--", linewidth=1)
    for j in policy.joint:
        drawn_dims = [d for d in j["dims"] if d in (d1, d2)]
        held = [d for d in j["dims"] if d not in (d1, d2)]
        off = {d: float((j.get("offsets") or {}).get(d, 0)) for d in j["dims"]}
        c = float(j["max"]) / math.prod(at.get(d, 1.0) + off[d] for d in held)
        held_txt = f" at {', '.join(f'{d}={at[d]:g}' for d in held)}" if held else ""
        name = j["name"] if not any(off.values()) else f"{j['name']} = {joint_expression(j)}"
        lab = f"{name} ≤ {j['max']}{held_txt} (joint, {j['limited_by']})"
        if len(drawn_dims) == 2:
            # (x + ox)(y + oy) = c: y = c / (x + ox) - oy
            ox, oy = off.get(d1, 0.0), off.get(d2, 0.0)
            a = max(xlo, c / (yhi + oy) - ox)
            b = min(xhi, c / (ylo + oy) - ox)
            if 0 < a < b:
                xs = np.geomspace(a, b, 200)
                drawn[lab] = ax.plot(xs, c / (xs + ox) - oy, color="tab:red", linewidth=2, label=lab)[0]
        elif len(drawn_dims) == 1:
            axline = ax.axvline if drawn_dims[0] == d1 else ax.axhline
            drawn[lab] = axline(c - off[drawn_dims[0]], color="tab:red", linewidth=2, label=lab)
    if shade:
        from matplotlib.colors import ListedColormap

        xs, ys = np.geomspace(xlo, xhi, 200), np.geomspace(ylo, yhi, 200)
        XX, YY = np.meshgrid(xs, ys)
        frame = pd.DataFrame({d: np.full(XX.size, v) for d, v in at.items()})
        frame[d1], frame[d2] = XX.ravel(), YY.ravel()
        for d in lims:
            if d not in frame:
                frame[d] = float(lims[d]["max"])
        admitted = policy.region().contains(frame).reshape(XX.shape)
        ax.pcolormesh(xs, ys, np.ma.masked_where(admitted, np.ones(XX.shape)), cmap=ListedColormap(["white"]),
                      alpha=shade, shading="nearest", zorder=1.5, rasterized=True)
        ax.plot([], [], "s", markerfacecolor="white", markeredgecolor="0.5", markersize=9, label="not admitted")
    if d1 in worst and d2 in worst:
        ax.plot([worst[d1]], [worst[d2]], "*", color="gold", markeredgecolor="black", markersize=14, zorder=7,
                label=f"worst admitted input ({d1}={worst[d1]}, {d2}={worst[d2]})")
    ax.set_xlim(xlo, xhi)
    ax.set_ylim(ylo, yhi)
    return drawn


def heatmap(profile_or_table, model, dims=None, policy=None, *, ax=None, fixed=None, n: int = 80,
            colorbar: bool = True):
    """A 2-D map of the predicted cost over two dimensions, measured probes overlaid,
    with the policy's boundary.

    The colour is `model.predict` over a log grid covering the measured range and the
    policy's limits; measured probes are dots in the same colour scale (a dot that stands
    out from its background is a probe the fit misses). With `policy`, its per-axis
    maxima, its joint budgets and the sizes it does not admit are drawn (`draw_policy`),
    and the dotted white contour is where the upper bound reaches margin × budget.
    Failed probes are drawn at their sizes with their status marker.

    Args:
        profile_or_table: A `Profile`, or its table (dimensions from `model`).
        model: The fitted `CostModel` of one target.
        dims: `(x dimension, y dimension)`. Defaults to the model's first two.
        policy: A `Policy` whose boundary to draw. Defaults to `None`.
        ax: A matplotlib axes. Defaults to a new figure.
        fixed: `{dimension: size}` for the model's other dimensions. Defaults to
            `None` (the policy's worst admitted input, else the size most measured);
            with more than two dimensions only probes at these sizes are overlaid.
        n: Grid points per axis. Defaults to `80`.
        colorbar: Add a colour bar. Defaults to `True`.

    Returns:
        The matplotlib axes.

    Raises:
        CostlabError: The model has fewer than two dimensions, or `dims` are not two of
            its dimensions.
    """
    from matplotlib.colors import LogNorm

    _check_model(model)
    table, _, name = _source(profile_or_table, model)
    if len(model.dims_) < 2:
        raise CostlabError(f"A heatmap needs a model of at least two dimensions. Received a model of "
                           f"{model.dims_}")
    dims = tuple(model.dims_[:2]) if dims is None else tuple(dims)
    if len(dims) != 2 or dims[0] == dims[1]:
        raise CostlabError(f"Expected two different dimensions for `dims`. Received: dims={dims!r}")
    for d in dims:
        _check_dim(d, model.dims_, "dimension of the model")
    d1, d2 = dims
    others = [d for d in model.dims_ if d not in dims]
    at = _fixed_values(table, model.dims_, others, fixed, policy)
    label, unit, scale = units(model.target)
    ax = _axes(ax, figsize=(7.2, 6.0))
    ok = _ok(table, model.target)
    for o, v in at.items():
        ok = ok[ok[o].astype(float) == v]
    (xlo, xhi), (ylo, yhi) = (_axis_range(d, model, table, policy) for d in dims)
    xs, ys = np.geomspace(xlo, xhi, n), np.geomspace(ylo, yhi, n)
    XX, YY = np.meshgrid(xs, ys)
    frame = pd.DataFrame({d1: XX.ravel(), d2: YY.ravel(), **{o: np.full(XX.size, v) for o, v in at.items()}})
    Z = (model.predict(frame[model.dims_]) * scale).reshape(XX.shape)
    measured = ok[model.target].astype(float).to_numpy() * scale
    values = np.concatenate([Z.ravel(), measured])
    values = values[np.isfinite(values) & (values > 0)]
    norm = LogNorm(vmin=values.min(), vmax=values.max())
    mesh = ax.pcolormesh(xs, ys, Z, norm=norm, cmap="viridis", shading="nearest", rasterized=True)
    if len(ok):
        ax.scatter(ok[d1], ok[d2], c=measured, cmap="viridis", norm=norm, s=34, edgecolors="white",
                   linewidths=0.8, zorder=5, label=f"measured ({len(ok)})")
    bad = table[table["status"] != "ok"]
    for o, v in at.items():
        bad = bad[bad[o].astype(float) == v]
    for status, g in bad.groupby("status", sort=True):
        marker, color = STATUS_STYLE.get(status, _OTHER_STATUS)
        ax.plot(g[d1], g[d2], linestyle="none", marker=marker, color=color, markeredgecolor="white",
                markersize=9, zorder=6, label=f"{status} ({len(g)})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    if policy is not None:
        budget = policy.budgets.targets().get(model.target)
        if budget is not None:
            key, _ = budget
            level = getattr(policy.budgets, key) * policy.budgets.margin
            U = (model.upper(frame[model.dims_]) * scale).reshape(XX.shape)
            if U.min() < level < U.max():
                ax.contour(xs, ys, U, levels=[level], colors="white", linestyles=":", linewidths=1.5)
                ax.plot([], [], ":", color="white", label=f"upper bound = margin × budget ({level:g} {unit})")
        draw_policy(ax, policy, dims, fixed=at, xlim=(xlo, xhi), ylim=(ylo, yhi))
    ax.set_xlim(xlo, xhi)
    ax.set_ylim(ylo, yhi)
    ax.set_xlabel(f"{d1} (size)")
    ax.set_ylabel(f"{d2} (size)")
    held = f" at {', '.join(f'{o}={v:g}' for o, v in at.items())}" if at else ""
    ax.set_title(f"{name}: predicted {label} [{unit}] over {d1} × {d2}{held}\nfit {model.complexity_}",
                 fontsize=10)
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label=f"{label} [{unit}]" if unit else label)
    _legend(ax, facecolor="0.8")
    _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    return ax


def cold_warm(profile_or_table, dim: str | None = None, *, ax=None, cold: str = "cold_s",
              warm: str = "wall_s_median"):
    """The first call at each probe's shape (cold) against its warm median, along `dim`.

    Each probe is a pair joined by a thin line: a red triangle (cold) over a blue dot
    (warm). The first probe of
    each worker process, whose first call also pays the framework's start-up, is ringed.
    Failed probes are marked at the bottom, one marker per status.

    Args:
        profile_or_table: A `Profile` or its table.
        dim: The dimension for the x axis. Defaults to the first dimension.
        ax: A matplotlib axes. Defaults to a new figure.
        cold: The first-call column. Defaults to `"cold_s"`.
        warm: The warm column. Defaults to `"wall_s_median"`.

    Returns:
        The matplotlib axes.

    Raises:
        CostlabError: `dim` is not a dimension, or a column is missing.
    """
    from matplotlib.collections import LineCollection

    table, dims, name = _source(profile_or_table)
    dim = dims[0] if dim is None else dim
    _check_dim(dim, dims)
    ok = _ok(_ok(table, cold), warm)
    ax = _axes(ax)
    x = ok[dim].astype(float).to_numpy()
    c = ok[cold].astype(float).to_numpy() * 1e3
    w = ok[warm].astype(float).to_numpy() * 1e3
    ax.add_collection(LineCollection([[(a, b), (a, d)] for a, b, d in zip(x, c, w, strict=True)],
                                     colors="lightgrey", linewidths=1, zorder=1))
    ax.plot(x, c, "^", color="tab:red", alpha=0.8, label=f"cold: first call ({len(ok)})")
    ax.plot(x, w, "o", color="tab:blue", alpha=0.8, label="warm median")
    if "worker_probe" in ok.columns:
        first = (pd.to_numeric(ok["worker_probe"], errors="coerce") == 0).to_numpy()
        if first.any():
            ax.plot(x[first], c[first], "o", markersize=13, markerfacecolor="none", color="black",
                    label=f"worker's first probe ({int(first.sum())}, includes start-up)")
    mark_failures(ax, table, dim)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"{dim} (size)")
    ax.set_ylabel("wall time per call [ms]")
    ratio = c / w
    figures = (f"cold / warm: median ×{np.median(ratio):.1f}, max ×{np.max(ratio):.1f}" if len(ok)
               else "no successful probe")
    ax.set_title(f"{name}: first call (cold) vs warm median vs {dim}\n{figures}", fontsize=10)
    return _finish(ax)


def curve(model, dim: str | None = None, *, ax=None, beyond: float = 2.0):
    """A fitted curve alone: predicted cost (solid) and upper bound (dotted) along `dim`.

    The other dimensions are held at the smallest and at the largest size measured (one
    pair of curves each); the measured range of `dim` is shaded and the curves continue
    to `beyond` times its largest size, where the bound uses the global factor.

    Args:
        model: A fitted `CostModel`.
        dim: The dimension for the x axis. Defaults to the model's first.
        ax: A matplotlib axes. Defaults to a new figure.
        beyond: How far past the measured range to draw, as a multiple of its largest
            size. Defaults to `2.0`.

    Returns:
        The matplotlib axes.

    Raises:
        CostlabError: The model is not fitted, or `dim` is not one of its dimensions.
    """
    _check_model(model)
    dim = model.dims_[0] if dim is None else dim
    _check_dim(dim, model.dims_, "dimension of the model")
    label, unit, scale = units(model.target)
    ax = _axes(ax)
    lo, hi = model.range_[dim]
    xs = np.geomspace(lo, hi * beyond, 80)
    others = [d for d in model.dims_ if d != dim]
    ends = [("smallest", 0), ("largest", 1)] if others else [("", 0)]
    for (which, k), color in zip(ends, ("tab:blue", "tab:orange"), strict=False):
        at = {o: model.range_[o][k] for o in others}
        X = pd.DataFrame({dim: xs, **{o: np.full(len(xs), v) for o, v in at.items()}})
        desc = ", ".join(f"{o}={v:g}" for o, v in at.items()) or "fit"
        ax.plot(xs, model.predict(X[model.dims_]) * scale, "-", color=color, label=f"{desc} ({which})" if which else desc)
        ax.plot(xs, model.upper(X[model.dims_]) * scale, ":", color=color)
    ax.axvspan(lo, hi, color="grey", alpha=0.12, label=f"measured {dim} {lo:g}–{hi:g}")
    _dress(ax, dim, label, unit, f"{label} vs {dim}: {model.complexity_}", "solid: fit, dotted: upper bound", True)
    _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    return ax


def region(policy, dims=None, *, ax=None, fixed=None):
    """The sizes a policy admits over two of its dimensions (one: a bar of its range).

    Args:
        policy: A `Policy`.
        dims: `(x dimension, y dimension)`. Defaults to the first two limits.
        ax: A matplotlib axes. Defaults to a new figure.
        fixed: Sizes of the other dimensions. Defaults to `None` (the worst admitted
            input's).

    Returns:
        The matplotlib axes.

    Raises:
        CostlabError: `dims` are not two of the policy's dimensions.
    """
    lims = policy.limits
    names = list(lims)
    name = policy.data.get("model", {}).get("name", "model")
    ax = _axes(ax, figsize=(6.4, 5.4))
    if len(names) == 1 and dims is None:
        d = names[0]
        lo, hi = lims[d]["min"], lims[d]["max"]
        ax.barh([0], [hi - lo], left=[lo], height=0.5, color="tab:green", alpha=0.5,
                label=f"admitted {d} {lo}–{hi}")
        ax.axvline(hi, color="tab:red", linestyle="--", linewidth=1.5, label=f"{d} ≤ {hi} ({lims[d]['limited_by']})")
        ax.set_ylim(-1.5, 1.5)
        ax.set_yticks([])
        ax.set_xscale("log")
        ax.set_xlim(lo / 1.3, hi * 1.5)
        ax.set_xlabel(f"{d} (size)")
        ax.set_title(f"{name}: admitted {d} ≤ {hi} ({lims[d]['limited_by']})", fontsize=10)
        _legend(ax)
        _plain_log_ticks(ax.xaxis)
        return ax
    dims = tuple(names[:2]) if dims is None else tuple(dims)
    if len(dims) != 2 or dims[0] == dims[1]:
        raise CostlabError(f"Expected two different dimensions for `dims`. Received: dims={dims!r}")
    for d in dims:
        _check_dim(d, names, "dimension of the policy")
    ax.set_facecolor("#8fd19e")  # admitted sizes stay green, the rest is veiled in white
    ax.set_xscale("log")
    ax.set_yscale("log")
    (xlo, xhi), (ylo, yhi) = (_axis_range(d, None, None, policy) for d in dims)
    xhi, yhi = xhi * 1.3, yhi * 1.3
    draw_policy(ax, policy, dims, fixed=fixed, xlim=(xlo, xhi), ylim=(ylo, yhi), shade=0.85)
    ax.set_xlabel(f"{dims[0]} (size)")
    ax.set_ylabel(f"{dims[1]} (size)")
    ax.set_title(f"{name}: admitted sizes (green)", fontsize=10)
    return _finish(ax)


def churn(data, *, ax=None):
    """Shape churn: the first call at each new shape, the first call at a shape seen
    before, and the warm median, against the size that changed.

    Args:
        data: `churn.json` as a dict, or a `costlab.runtime.churn.Churn`.
        ax: A matplotlib axes. Defaults to a new figure.

    Returns:
        The matplotlib axes.

    Raises:
        CostlabError: `data` has no rows.
    """
    if hasattr(data, "table") and hasattr(data, "figures"):
        rows, figures = data.table, data.figures
    elif isinstance(data, dict) and data.get("rows"):
        rows, figures = pd.DataFrame(data["rows"]), data
    else:
        raise CostlabError(f"Expected churn.json's contents or a Churn with rows. Received: {type(data).__name__}")
    dims = [d for d in figures.get("dims") or [] if d in rows.columns]
    dim = dims[0] if dims else None
    ax = _axes(ax)
    ok = rows[rows["status"] == "ok"]
    x_of = (lambda g: g[dim].astype(float)) if dim else (lambda g: np.arange(len(g), dtype=float))
    first, second = ok[ok["pass"] == 1], ok[ok["pass"] == 2]
    ax.plot(x_of(first), first["cold_s"] * 1e3, "^", color="tab:red", label=f"first call, new shape ({len(first)})")
    ax.plot(x_of(second), second["cold_s"] * 1e3, "v", color="tab:orange",
            label=f"first call, shape seen before ({len(second)})")
    ax.plot(x_of(first), first["wall_s_median"] * 1e3, "o", color="tab:blue", alpha=0.7, label="warm median")
    if dim:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"{dim} (size)" if dim else "shape (order sent)")
    ax.set_ylabel("wall time per call [ms]")
    ax.set_title(f"shape churn: {figures.get('shapes', len(first))} new shapes, {figures.get('retraced', 0)} "
                 f"retraced\nnew shape ×{figures.get('new_shape_cold_over_warm', float('nan')):.1f} a warm call, "
                 f"{figures.get('rss_growth_mib_per_new_shape', float('nan')):+.2f} MiB resident per new shape",
                 fontsize=10)
    _legend(ax)
    ax.grid(True, which="both", alpha=0.3)
    if dim:
        _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    return ax


def speed_index(profile_or_table, *, ax=None, factor: float | None = None):
    """The machine-speed index over the run: each pulse's time over the run's median
    (`costlab.profiling.speed`) and their running median (the index probes are divided by), against
    minutes since the first probe, with the slow quantile the policy plans for.

    Args:
        profile_or_table: A `Profile` or its table, with pulses.
        ax: A matplotlib axes. Defaults to a new figure.
        factor: The planned factor to draw. Defaults to the table's own (`Speed.factor`).

    Returns:
        The matplotlib axes.

    Raises:
        CostlabError: The table has fewer than 3 successful pulses.
    """
    from costlab.profiling import speed as _speed

    table = profile_or_table.table if hasattr(profile_or_table, "table") else profile_or_table
    s = _speed.speed(table) if isinstance(table, pd.DataFrame) else None
    if s is None:
        raise CostlabError("Expected a profile with pulses (costlab run measures them; profile(pulse=...)). "
                           "Received: fewer than 3 successful pulses")
    p = _speed.pulse_rows(table)
    t0 = float(table["finished_at"].min())
    minutes = (p["finished_at"].astype(float) - t0) / 60
    raw = p["wall_s_median"].astype(float).to_numpy()
    factor = s.factor if factor is None else factor
    ax = _axes(ax)
    ax.plot(minutes, raw / s.reference_s, "o", color="tab:blue", ms=3, alpha=0.6, label=f"pulse ({s.pulses})")
    ax.plot(minutes, _speed.smooth(raw) / s.reference_s, "-", color="tab:blue", lw=1.2,
            label=f"index (running median of {_speed.SMOOTH})")
    ax.axhline(1.0, color="grey", lw=0.8, label=f"run's median ({s.reference_s * 1e3:.2f} ms)")
    ax.axhline(factor, color="tab:red", ls="--", lw=1.0, label=f"planned for (q = {s.q:g}): {factor:.2f}×")
    ax.set_xlabel("minutes since the first probe")
    ax.set_ylabel("reference input's time / run's median")
    ax.set_title(f"machine speed: reference input {s.reference}", fontsize=10)
    _legend(ax)
    ax.grid(True, alpha=0.3)
    return ax


def figure(ncols: int = 1, *, width: float = 6.4, height: float = 5.0):
    """A standalone figure (not registered with pyplot) and its axes, for files and HTML.

    Returns:
        `(figure, axes)`: one axes for `ncols=1`, else an array of them.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    return fig, fig.subplots(1, ncols)


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def save_all(profile, cost_models: dict, out_dir, *, policy=None) -> list[Path]:
    """Write every picture of a profile and its fits to `out_dir`; return the paths.

    Per target and dimension `cost_<target>_vs_<dim>.png` (`cost_vs_dim`) and
    `residuals_<target>_vs_<dim>.png`; per target and pair of its dimensions
    `heatmap_<target>_<d1>_<d2>.png` (with `policy`'s boundary when given); per
    dimension `cold_warm_vs_<dim>.png` when the table has first-call times;
    `speed_index.png` (`speed_index`) when it has pulses.

    Args:
        profile: A `Profile`.
        cost_models: `{target: CostModel}`.
        out_dir: Directory, created if missing.
        policy: A `Policy` to draw on the heatmaps. Defaults to `None`.

    Returns:
        The paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for target, model in cost_models.items():
        for dim in profile.dims:
            fig, ax = figure()
            cost_vs_dim(profile, model, dim, ax=ax)
            paths.append(_save(fig, out / f"cost_{target}_vs_{dim}.png"))
            if dim in model.dims_:
                fig, ax = figure()
                residuals(profile, model, dim, ax=ax)
                paths.append(_save(fig, out / f"residuals_{target}_vs_{dim}.png"))
        for d1, d2 in itertools.combinations(model.dims_, 2):
            fig, ax = figure(width=7.2, height=6.0)
            heatmap(profile, model, (d1, d2), policy, ax=ax)
            paths.append(_save(fig, out / f"heatmap_{target}_{d1}_{d2}.png"))
    if "cold_s" in profile.table.columns:
        for dim in profile.dims:
            fig, ax = figure()
            cold_warm(profile, dim, ax=ax)
            paths.append(_save(fig, out / f"cold_warm_vs_{dim}.png"))
    from costlab.profiling.speed import speed as _speed

    if _speed(profile.table) is not None:
        fig, ax = figure()
        speed_index(profile, ax=ax)
        paths.append(_save(fig, out / "speed_index.png"))
    return paths
