"""Pictures of cost: measurements and the fitted curve against each dimension."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

UNITS = {"wall_s_median": ("median wall time", "ms", 1e3), "wall_s_p95": ("p95 wall time", "ms", 1e3),
         "wall_s_p99": ("p99 wall time", "ms", 1e3),
         "peak_bytes": ("peak memory", "MiB", 1 / 2**20)}


def cost_vs_dim(profile, model, dim: str, *, ax=None, loglog: bool = True):
    """Scatter the measured cost against `dim`, with the fitted curve and its upper bound.

    Each slice of the sweep (other dimensions held fixed) is drawn with its own curve;
    failed probes are marked at the bottom of the axes.

    Args:
        profile: A `Profile`.
        model: The `CostModel` of one target.
        dim: The dimension for the x axis.
        ax: A matplotlib axes. Defaults to a new figure.
        loglog: Log scales on both axes. Defaults to `True`.

    Returns:
        The matplotlib axes.
    """
    import matplotlib

    if ax is None:
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4))
    label, unit, scale = UNITS.get(model.target, (model.target, "", 1.0))
    table = profile.table
    others = [d for d in profile.dims if d != dim]
    ok = table[table["status"] == "ok"]
    sl = ok[ok["kind"] == f"slice:{dim}"]
    groups = sl.groupby(others) if others else [((), sl)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        desc = ", ".join(f"{o}={v}" for o, v in zip(others, key, strict=True)) or "measured"
        pts = ax.plot(g[dim], g[model.target] * scale, "o", label=desc)[0]
        xs = np.geomspace(g[dim].min(), g[dim].max() * 2, 60)
        X = pd.DataFrame({dim: xs, **{o: v for o, v in zip(others, key, strict=True)}})
        ax.plot(xs, model.predict(X) * scale, "-", color=pts.get_color(), alpha=0.8)
        ax.plot(xs, model.upper(X) * scale, ":", color=pts.get_color(), alpha=0.6)
    rest = ok[ok["kind"] != f"slice:{dim}"]
    if len(rest):
        ax.plot(rest[dim], rest[model.target] * scale, ".", color="grey", alpha=0.5, label="other probes")
    bad = table[table["status"] != "ok"]
    for status, g in bad.groupby("status"):
        ax.plot(g[dim], np.full(len(g), np.nan), "x", label=f"{status} ({len(g)})")
    if loglog:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(dim)
    ax.set_ylabel(f"{label} [{unit}]")
    ax.set_title(f"{profile.model.get('name', 'model')}: {label} vs {dim} — fit {model.complexity_}")
    ax.legend(fontsize=7, title="line: fit, dotted: upper", title_fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return ax


def save_all(profile, cost_models: dict, out_dir) -> list[Path]:
    """Write `cost_<target>_vs_<dim>.png` for every target and dimension; return the paths."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for target, model in cost_models.items():
        for dim in profile.dims:
            fig, ax = plt.subplots(figsize=(6.4, 4.2))
            cost_vs_dim(profile, model, dim, ax=ax)
            fig.tight_layout()
            p = out / f"cost_{target}_vs_{dim}.png"
            fig.savefig(p, dpi=110)
            plt.close(fig)
            paths.append(p)
    return paths
