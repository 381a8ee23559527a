"""Shape churn: what a stream of distinct input shapes costs one serving process.

Every new shape can make a framework trace and compile again (TF `tf.function`
retracing, XLA recompilation) and keep what it built, and make the allocator grow. An
attacker who sends many distinct shapes pays nothing extra, the server pays on each. `churn`
sends `shapes` distinct shapes to one fresh process (an isolated worker, or this process
for `isolation="inprocess"`), then the same shapes again, and reports:

- the first call at a new shape against a warm call at it (`cold_s` / `wall_s_median`),
  and the first call at a shape already seen once (second pass);
- how many new shapes made the framework trace again (first call over 10× a warm one);
- the process's resident memory before each probe, and its growth per new shape (median
  over the first pass; the second pass should add ~nothing).

The policy can then cap distinct shapes or pad inputs to shape buckets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from costlab.errors import CostlabError
from costlab.inputs.space import InputSpace


@dataclass
class Churn:
    """Figures of one churn run; `table` has one row per call sequence (`pass` 1 or 2)."""

    table: pd.DataFrame
    shapes: int
    dims: list

    @property
    def figures(self) -> dict:
        t = self.table[self.table["status"] == "ok"]
        first, second = t[t["pass"] == 1], t[t["pass"] == 2]
        rss = self.table["rss_before_bytes"].to_numpy(float)  # before each probe, both passes
        n = self.shapes
        per_shape = np.diff(rss[: n + 1]) if len(rss) > n else np.diff(rss)
        ratio = first["cold_s"] / first["wall_s_median"]
        return {
            "shapes": n, "dims": self.dims, "failed": int((self.table["status"] != "ok").sum()),
            "new_shape_cold_ms_median": float(first["cold_s"].median() * 1e3),
            "new_shape_cold_ms_max": float(first["cold_s"].max() * 1e3),
            "seen_shape_cold_ms_median": float(second["cold_s"].median() * 1e3),
            "warm_ms_median": float(first["wall_s_median"].median() * 1e3),
            "new_shape_cold_over_warm": float(ratio.median()),
            "seen_shape_cold_over_warm": float((second["cold_s"] / second["wall_s_median"]).median()),
            "retraced": int((ratio > 10).sum()),
            "rss_growth_mib_per_new_shape": float(np.median(per_shape) / 2**20) if len(per_shape) else float("nan"),
            "rss_growth_mib_first_pass": float((rss[min(n, len(rss) - 1)] - rss[0]) / 2**20) if len(rss) else float("nan"),
            "rss_growth_mib_second_pass": float((rss[-1] - rss[n]) / 2**20) if len(rss) > n else float("nan"),
        }

    def summary(self) -> str:
        f = self.figures
        return (f"shape churn ({f['shapes']} distinct shapes over {', '.join(f['dims'])}, one process): "
                f"first call at a new shape {f['new_shape_cold_ms_median']:.1f} ms "
                f"({f['new_shape_cold_over_warm']:.1f}× a warm call of {f['warm_ms_median']:.2f} ms), "
                f"{f['retraced']} retraced (up to {f['new_shape_cold_ms_max']:.0f} ms); at a shape seen before "
                f"{f['seen_shape_cold_ms_median']:.1f} ms; resident memory {f['rss_growth_mib_per_new_shape']:+.2f} MiB "
                f"per new shape (median), {f['rss_growth_mib_first_pass']:+.1f} MiB over the {f['shapes']} new "
                f"shapes, {f['rss_growth_mib_second_pass']:+.1f} MiB over the repeat pass")

    def save(self, out_dir) -> Path:
        path = Path(out_dir) / "churn.json"
        path.write_text(json.dumps({**self.figures, "rows": json.loads(self.table.to_json(orient="records"))},
                                   indent=2) + "\n")
        return path


def distinct_sizes(space: InputSpace, n: int, *, seed: int = 0, avoid=()) -> list[dict]:
    """Up to `n` distinct size dicts: batch at its minimum (unless it is the only
    dimension), the others drawn from the lower half of their log range so compute stays
    small and the churn is what is measured, widening to the whole range when the lower
    half has too few; sizes in `avoid` (e.g. already run in this process) are skipped."""
    from costlab.profiling.plan import at_fraction

    rng = np.random.default_rng(seed)
    free = [d for d in space.dims if d.name != "batch" and d.max > d.min] or list(space.dims)
    seen = {tuple(sorted(a.items())) for a in avoid}
    out = []
    for upto in (0.5, 1.0):
        for _ in range(50 * n):
            if len(out) >= n:
                return out
            s = {d.name: d.min for d in space.dims}
            for d in free:
                s[d.name] = int(rng.integers(d.min, max(d.min, at_fraction(d.min, d.max, upto)) + 1))
            s = space.snap(s)
            key = tuple(sorted(s.items()))
            if key not in seen:
                seen.add(key)
                out.append(s)
    return out


def churn(model, space: InputSpace | None = None, *, shapes: int = 16, seed: int = 0,
          isolation: str = "subprocess", avoid=(), timeout_s: float = 60.0,
          memory_cap_mib: float = 4096, backend: str | None = None, hazards=None) -> Churn:
    """Send `shapes` distinct input shapes to one fresh process, then the same again.

    Args:
        model: A Keras model or an adapter.
        space: The input space. Defaults to the model's own.
        shapes: Distinct shapes (fewer when the space has fewer). Defaults to `16`.
        seed: Seed for the shapes and values. Defaults to `0`.
        isolation: `"subprocess"` (a fresh worker, default) or `"inprocess"` (this
            process: shapes it has already run are not new to it, so pass them in `avoid`).
        avoid: Size dicts not to use. Defaults to `()`.
        timeout_s: Per-probe timeout of the worker. Defaults to `60`.
        memory_cap_mib: Per-probe memory cap of the worker. Defaults to `4096`.
        backend: Keras backend of the worker (see `costlab.profile`). Defaults to `None`.
        hazards: The run's `costlab.measurement.hazards.Hazards`: shapes as large as an input
            that timed out, ran out of memory or crashed (random values) are not drawn, one
            that fails in the first pass is not sent in the second, and the worker takes its
            timeout. Defaults to `None`.

    Returns:
        A `Churn`.
    """
    from costlab.adapters import adapt
    from costlab.measurement.executors import InProcess, Subprocess

    if not isinstance(shapes, int) or isinstance(shapes, bool) or shapes < 2:
        raise CostlabError(f"Expected an integer `shapes` >= 2. Received: shapes={shapes!r}")
    adapter = adapt(model)
    space = space or InputSpace.from_model(adapter)
    sizes = distinct_sizes(space, shapes, seed=seed, avoid=avoid if isolation == "inprocess" else ())
    if hazards is not None:
        sizes = [s for s in sizes if hazards.blocking(s, "random") is None]
    if len(sizes) < 2:
        raise CostlabError(f"The space has fewer than 2 distinct shapes to churn through. Received: {space.dims}")
    kw = dict(min_repeats=3, max_repeats=3, time_budget_s=1.0)
    if backend is not None:
        isolation = "subprocess"  # a backend is fixed per process
    executor = (Subprocess(adapter, memory_cap_mib=memory_cap_mib, timeout_s=timeout_s, hazards=hazards,
                           env={"KERAS_BACKEND": backend} if backend else None, **kw)
                if isolation == "subprocess" else InProcess(adapter, **kw))
    rows = []
    with executor:
        for p in (1, 2):
            for i, s in enumerate(sizes):
                blocked = hazards.blocking(s, "random") if hazards is not None else None
                if blocked is not None:
                    r = hazards.not_sent_row(blocked)
                else:
                    r = executor.probe(space.random_inputs(s, seed=seed + i))
                    if hazards is not None:
                        hazards.record(s, "random", r, "shape churn")
                rows.append({**s, "pass": p, "status": r["status"], "error": r.get("error") or "",
                             "cold_s": r.get("cold_s"), "wall_s_median": r.get("wall_s_median"),
                             "rss_before_bytes": r.get("rss_before_bytes"),
                             "process_peak_bytes": r.get("process_peak_bytes")})
    return Churn(pd.DataFrame(rows), len(sizes), [d.name for d in space.dims if d.name != "batch"] or space.dim_names)
