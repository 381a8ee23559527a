"""Explore budgets interactively: move a latency or memory budget, see the limits follow.

`budget_explorer` returns an ipywidgets widget: sliders for the latency budget, the
memory budget and the margin; on every change it synthesises the policy again from the
same fitted cost curves (`costlab.synthesize`, nothing is measured) and redraws the
admitted region over two dimensions and the table of limits. The computation behind it
is plain functions that need no kernel: `limits_for` (the policy for a budget),
`limits_table` (its limits as a DataFrame) and `draw_region` (the picture).

Example:
    >>> import json
    >>> from costlab import CostModel, Profile
    >>> from costlab.viz.explore import limits_for, limits_table
    >>> prof = Profile.load("data/sample_run")
    >>> raw = json.load(open("data/sample_run/cost_models.json"))
    >>> models = {t: CostModel.from_dict(d) for t, d in raw.items()}
    >>> policy = limits_for(models, prof, latency_ms=15, memory_mib=24)
    >>> limits_table(policy)["max"].tolist()  # doctest: +SKIP
    [16, 715, 1757]
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd

from costlab.curves import CostModel
from costlab.errors import PolicyError
from costlab.inputs.space import InputSpace
from costlab.measurement.costs import BUDGETED
from costlab.policy import Budgets, Policy, joint_value, synthesize

#: Budget fields and how a cost target converts to them (as `Budgets.targets()`).
_UNITS = {k: (c.budget, c.scale, c.short) for k, c in BUDGETED.items()}


def _models(cost_models) -> dict:
    """`{target: CostModel}` from fitted models or their `to_dict()` data (`cost_models.json`)."""
    if not isinstance(cost_models, dict) or not cost_models:
        raise PolicyError(f"Expected a non-empty dict of cost models `{{target: CostModel}}`. "
                          f"Received: cost_models={cost_models!r}")
    out = {}
    for t, m in cost_models.items():
        if isinstance(m, CostModel):
            out[t] = m
        elif isinstance(m, dict):
            out[t] = CostModel.from_dict(m)
        else:
            raise PolicyError(f"Expected a CostModel or its `to_dict()` for `cost_models[{t!r}]`. "
                              f"Received: {type(m).__name__}")
    return out


def _context(space_or_profile) -> dict:
    """What `synthesize` needs besides the curves and budgets, from a Profile or an InputSpace."""
    if isinstance(space_or_profile, InputSpace):
        return {"space": space_or_profile}
    space = getattr(space_or_profile, "space", None)
    if isinstance(space, InputSpace) and hasattr(space_or_profile, "calibration"):  # a Profile
        from costlab.profiling.speed import speed

        return {"space": space, "model": space_or_profile.model or None,
                "measured_on": space_or_profile.machine or None,
                "calibration": space_or_profile.calibration(),
                "speed": speed(space_or_profile.table)}  # the slow quantile the run planned for
    raise PolicyError(f"Expected a costlab Profile or InputSpace for `space_or_profile`. "
                      f"Received: {type(space_or_profile).__name__}")


def limits_for(cost_models: dict, space_or_profile, *, latency_ms: float, memory_mib: float,
               margin: float = 0.9, joint: bool = True, extrapolate: float = 1.0,
               joint_offsets: bool = True) -> Policy:
    """The policy fitted curves give for one pair of budgets; what the explorer shows.

    Args:
        cost_models: `{target: CostModel}`, or their `to_dict()` data as in a run's
            `cost_models.json`.
        space_or_profile: The `Profile` the curves were fitted on (its space, model
            description, host and memory calibration are used), or the `InputSpace`.
        latency_ms: Median latency budget per request, milliseconds.
        memory_mib: Peak memory budget per request, MiB.
        margin: Limits keep the upper bound under `margin × budget`. Defaults to `0.9`.
        joint: Look for joint budgets. Defaults to `True`.
        extrapolate: See `synthesize`. Defaults to `1.0`.
        joint_offsets: Let joint budgets shift a dimension, `(batch + c) × seq_len`
            (`synthesize`). Defaults to `True`.

    Returns:
        A `Policy`.

    Raises:
        PolicyError: Bad arguments, or budgets that even the smallest input exceeds.
    """
    budgets = Budgets(latency_ms=latency_ms, memory_mib=memory_mib, margin=margin)
    return synthesize(_models(cost_models), budgets, joint=joint, extrapolate=extrapolate,
                      joint_offsets=joint_offsets, **_context(space_or_profile))


def limits_table(policy: Policy) -> pd.DataFrame:
    """The limits of a policy, one row per dimension and per joint budget.

    Returns:
        A DataFrame indexed by `limit` (a dimension or a joint budget such as
        `batch×seq_len`) with columns `min`, `max` and `limited by`.
    """
    rows = [{"limit": d, "min": int(v["min"]), "max": int(v["max"]), "limited by": v["limited_by"]}
            for d, v in policy.limits.items()]
    rows += [{"limit": j["name"], "min": int(joint_value({d: policy.limits[d]["min"] for d in j["dims"]},
                                                         j["dims"], j.get("offsets"))),
              "max": int(j["max"]), "limited by": f"joint budget ({j['limited_by']})"}
             for j in policy.joint]
    return pd.DataFrame(rows, columns=["limit", "min", "max", "limited by"]).set_index("limit")


def budget_fraction(cost_models: dict, budgets, X: pd.DataFrame) -> np.ndarray:
    """Per row of sizes `X`: the largest upper-bound cost over its budget, across the
    budgeted costs (1.0 = at the budget itself; the policy keeps it under the margin)."""
    budgets = Budgets(**budgets) if isinstance(budgets, dict) else budgets
    upper = {t: m.upper(X[m.dims_]) for t, m in cost_models.items()}
    return np.broadcast_to(budgets.ratio(upper, margin=False), (len(X),)).astype(float)


def draw_region(policy: Policy, cost_models: dict, *, dims=None, space: InputSpace | None = None,
                measured: pd.DataFrame | None = None, n: int = 60, ax=None):
    """Draw a policy's admitted region over two dimensions, on the budget fraction.

    The background is the budget fraction of the calibrated upper bound
    (`budget_fraction`) over a log grid of the space, any other dimension at its limit;
    the solid contour is the budget, the dashed one margin × budget; the hatched area is
    what the policy admits (per-axis limits and joint budgets), the star its most
    expensive admitted input. With one dimension, the budget fraction against it, the
    other dimensions as large as the policy admits at each size (past the limit, at
    their minimum: even the cheapest input of that size).

    Args:
        policy: The policy (`limits_for`, `synthesize` or `Policy.from_json`).
        cost_models: `{target: CostModel}` the fraction is computed from.
        dims: The one or two dimensions drawn. Defaults to the first two of the space.
        space: The range of the axes. Defaults to the policy's own limits widened to
            the cost curves' measured range.
        measured: Probes to mark (a profile table: a column per dimension). Defaults to
            `None`.
        n: Grid points per axis. Defaults to `60`.
        ax: A matplotlib axes. Defaults to a new figure.

    Returns:
        The matplotlib axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    cost_models = _models(cost_models)
    budgets = policy.budgets
    names = list(policy.limits)
    dims = list(dims or names[:2])
    unknown = [d for d in dims if d not in names]
    if unknown or not 1 <= len(dims) <= 2:
        raise PolicyError(f"Expected one or two of the policy's dimensions {names} for `dims`. Received: dims={dims!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 5.0))

    def extent(d):
        if space is not None:
            return space.dim(d).min, space.dim(d).max
        hi = max([policy.limits[d]["max"]] + [m.range_[d][1] for m in cost_models.values() if d in m.range_])
        return policy.limits[d]["min"], hi

    at = {d: v["max"] for d, v in policy.limits.items()}
    region = policy.region()
    worst = (policy.worst_admitted or {}).get("sizes") or {}
    if len(dims) == 1:
        d = dims[0]
        lo, hi = extent(d)
        xs = np.unique(np.geomspace(lo, hi, n).round())
        X = pd.DataFrame([_largest_with(region, d, x) for x in xs], columns=names).astype(float)
        frac = budget_fraction(cost_models, budgets, X)
        ax.plot(xs, frac, "-", color="C0", label="upper bound / budget")
        ax.axhline(1.0, color="k", lw=1, label="budget")
        ax.axhline(budgets.margin, color="k", lw=1, ls="--", label=f"margin × budget ({budgets.margin:g})")
        ax.axvspan(policy.limits[d]["min"], policy.limits[d]["max"], color="C2", alpha=0.2, label="admitted")
        ax.set(xscale="log", xlabel=d, ylabel="upper-bound cost / budget")
    else:
        x, y = dims
        (xlo, xhi), (ylo, yhi) = extent(x), extent(y)
        xs, ys = np.geomspace(xlo, xhi, n), np.geomspace(ylo, yhi, n)
        gx, gy = np.meshgrid(xs, ys)
        X = pd.DataFrame({o: np.full(gx.size, float(at[o])) for o in names})
        X[x], X[y] = gx.ravel(), gy.ravel()
        frac = budget_fraction(cost_models, budgets, X).reshape(gx.shape)
        mesh = ax.pcolormesh(gx, gy, frac, shading="auto", cmap="viridis", norm=_log_norm(frac))
        ax.figure.colorbar(mesh, ax=ax, label="upper-bound cost / budget")
        ax.contour(gx, gy, frac, levels=[budgets.margin], colors="w", linestyles="--", linewidths=1)
        ax.contour(gx, gy, frac, levels=[1.0], colors="w", linewidths=1.5)
        inside = region.contains(X).reshape(gx.shape).astype(float)
        ax.contourf(gx, gy, inside, levels=[0.5, 1.5], colors="none", hatches=["//"])
        ax.contour(gx, gy, inside, levels=[0.5], colors="r", linewidths=2)
        if measured is not None and {x, y} <= set(measured.columns):
            ax.plot(measured[x], measured[y], ".", color="0.85", ms=4, label="measured probes")
        if worst:
            ax.plot([worst[x]], [worst[y]], "*", color="r", ms=14, mec="k", label="worst admitted")
        # Proxy artists: contours have no legend entries of their own.
        ax.plot([], [], "r-", lw=2, label="admitted (hatched)")
        ax.plot([], [], "-", color="0.4", lw=1.5, label="budget")
        ax.plot([], [], "--", color="0.4", lw=1, label=f"margin × budget ({budgets.margin:g})")
        ax.set(xscale="log", yscale="log", xlabel=x, ylabel=y, xlim=(xlo, xhi), ylim=(ylo, yhi))
    ax.set_title(f"{policy.data['model'].get('name', 'model')}: {budgets.latency_ms:g} ms, "
                 f"{budgets.memory_mib:g} MiB, margin {budgets.margin:g}", fontsize=10)
    for axis in (ax.xaxis, ax.yaxis) if len(dims) == 2 else (ax.xaxis,):
        axis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
    return ax


def _largest_with(region, d: str, x: float) -> dict:
    """The most expensive admitted sizes with `d` at `x` (the others at their limits, scaled
    down onto each joint budget); past `d`'s limits, the others at their minimum."""
    if not region.lo[d] <= x <= region.hi[d]:
        return {**region.lo, d: x}
    s = {**region.hi, d: x}
    for g, j in region.joint:
        movable = [o for o in g if o != d] if d in g else list(g)
        while joint_value(s, g, region.off(g)) > j + 1e-9:
            o = max(movable, key=lambda o: s[o] / region.lo[o])
            if s[o] <= region.lo[o]:
                break
            s[o] = max(region.lo[o], math.floor(s[o] * 0.97))
    return s


def _log_norm(values):
    from matplotlib.colors import LogNorm

    v = values[np.isfinite(values) & (values > 0)]
    lo, hi = (float(v.min()), float(v.max())) if len(v) else (0.1, 10.0)
    return LogNorm(vmin=min(lo, 0.5), vmax=max(hi, 1.5))


def _png(policy, cost_models, dims, space, measured) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 5.0))  # not pyplot: no figure is left open or shown twice
    draw_region(policy, cost_models, dims=dims, space=space, measured=measured, ax=fig.add_subplot())
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def budget_explorer(cost_models: dict, space_or_profile, *, latency_ms: float | None = None,
                    memory_mib: float | None = None, margin: float | None = None, policy: Policy | None = None,
                    dims=None, latency_range=None, memory_range=None, joint: bool = True,
                    joint_offsets: bool | None = None):
    """An interactive budget explorer: sliders for the budgets, the admitted region and the limits.

    Moving a slider synthesises the policy again (`limits_for`, from the same curves;
    nothing is measured), then redraws the region over `dims` (`draw_region`, as a PNG
    image) and the limits table (`limits_table`). A budget that even the smallest input
    exceeds shows the reason instead of limits.

    Args:
        cost_models: `{target: CostModel}` or their `to_dict()` data (`cost_models.json`).
        space_or_profile: The `Profile` the curves were fitted on (its probes are marked
            on the picture), or the `InputSpace`.
        latency_ms: Initial median latency budget, ms. Defaults to `None`: the policy's.
        memory_mib: Initial peak memory budget, MiB. Defaults to `None`: the policy's.
        margin: Initial margin. Defaults to `None`: the policy's, else `0.9`.
        policy: A policy whose budgets set the initial values (e.g. a run's
            `policy.json`). Defaults to `None`.
        dims: The one or two dimensions drawn. Defaults to the first two of the space.
        latency_range: `(min, max)` of the latency slider, ms. Defaults to a tenth to
            ten times the initial budget.
        memory_range: `(min, max)` of the memory slider, MiB. Defaults likewise.
        joint: Look for joint budgets. Defaults to `True`.
        joint_offsets: Let joint budgets shift a dimension (`synthesize`). Defaults to
            `None`: as the `policy`'s joint budgets do (plain products when none has an
            offset), else `True`.

    Returns:
        An `ipywidgets.VBox`. Its attributes: `latency`, `memory`, `margin` (the
        sliders: set `.value` to move them), `table` (an `HTML` widget with the limits),
        `plot` (an `Image` widget), `message` (an `HTML` widget: the worst admitted
        input, or why no policy exists), `policy` (the current `Policy`, or `None`),
        `refresh()` (recompute now).

    Raises:
        PolicyError: No initial budgets (neither the values nor a `policy`), or bad
            cost models or space.

    Example:
        >>> explorer = budget_explorer(models, prof, latency_ms=15, memory_mib=24)  # doctest: +SKIP
        >>> explorer.latency.value = 30  # doctest: +SKIP
        >>> explorer.policy.limits["seq_len"]["max"]  # doctest: +SKIP
    """
    import ipywidgets as widgets

    if joint_offsets is None:
        joint_offsets = policy is None or any(any((j.get("offsets") or {}).values())
                                              for j in policy.joint)

    models = _models(cost_models)
    context = _context(space_or_profile)
    space = context["space"]
    measured = getattr(space_or_profile, "ok", None)
    start = policy.budgets if policy is not None else None
    latency_ms = latency_ms if latency_ms is not None else (start.latency_ms if start else None)
    memory_mib = memory_mib if memory_mib is not None else (start.memory_mib if start else None)
    margin = margin if margin is not None else (start.margin if start else 0.9)
    if latency_ms is None or memory_mib is None:
        raise PolicyError("Expected initial budgets: `latency_ms` and `memory_mib`, or a `policy` holding them. "
                          f"Received: latency_ms={latency_ms!r}, memory_mib={memory_mib!r}, policy={policy!r}")
    Budgets(latency_ms=latency_ms, memory_mib=memory_mib, margin=margin)  # validates them
    dims = list(dims or space.dim_names[:2])
    unknown = [d for d in dims if d not in space.dim_names]
    if unknown or not 1 <= len(dims) <= 2:
        raise PolicyError(f"Expected one or two of the space's dimensions {space.dim_names} for `dims`. "
                          f"Received: dims={dims!r}")

    def log_slider(value, rng, description, unit):
        lo, hi = rng or (value / 10, value * 10)
        if not 0 < lo <= value <= hi:
            raise PolicyError(f"Expected 0 < min <= {value:g} <= max for the {description} slider's range. "
                              f"Received: {rng!r}")
        return widgets.FloatLogSlider(value=value, base=10, min=math.log10(lo), max=math.log10(hi), step=0.02,
                                      description=f"{description} ({unit})", continuous_update=False,
                                      readout_format=".3g", style={"description_width": "initial"},
                                      layout=widgets.Layout(width="420px"))

    latency = log_slider(float(latency_ms), latency_range, "latency", "ms")
    memory = log_slider(float(memory_mib), memory_range, "memory", "MiB")
    margin_w = widgets.FloatSlider(value=float(margin), min=0.5, max=1.0, step=0.05, description="margin",
                                   continuous_update=False, readout_format=".2f")
    plot = widgets.Image(format="png", layout=widgets.Layout(width="560px"))
    table = widgets.HTML()
    message = widgets.HTML()
    box = widgets.VBox([widgets.HBox([latency, memory, margin_w]), message,
                        widgets.HBox([plot, table], layout=widgets.Layout(align_items="center"))])
    box.latency, box.memory, box.margin = latency, memory, margin_w
    box.plot, box.table, box.message = plot, table, message
    box.policy = None

    def refresh(_change=None):
        try:
            pol = limits_for(models, space_or_profile, latency_ms=latency.value, memory_mib=memory.value,
                             margin=margin_w.value, joint=joint, joint_offsets=joint_offsets)
        except PolicyError as exc:
            box.policy = None
            table.value = ""
            message.value = f"<b>No policy:</b> {_escape(str(exc))}"
            return
        box.policy = pol
        worst = pol.worst_admitted
        costs = ", ".join(f"{worst['upper'][t] * k:.3g} {u}" for t, (_, k, u) in _UNITS.items() if t in worst["upper"])
        message.value = (f"Most expensive admitted input {worst['sizes']}: upper bound {costs} "
                         f"({worst['budget_fraction']:.0%} of its budget); admits "
                         f"{pol.data['admitted_fraction']['policy']:.0%} of the space.")
        table.value = limits_table(pol).to_html()
        plot.value = _png(pol, models, dims, space, measured)

    for w in (latency, memory, margin_w):
        w.observe(refresh, names="value")
    box.refresh = refresh
    refresh()
    return box


def _escape(text: str) -> str:
    import html

    return html.escape(text)
