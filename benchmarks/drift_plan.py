"""Is shape drift a fixed time per call, or does it grow with the input? (what plan fits it)

`costlab.runtime.drift` plans for drift by adding the largest added time read at the policy's
frontier to every time curve. The alternative tried here: the tightest line
`added = fixed + proportional × time before`, both terms ≥ 0, on or above every frontier
input's reading of one check (a linear program, `scipy.optimize.linprog`, minimising the
line's sum over the inputs). If masked's drift grew with the input, the line would be
mostly proportional, and planning it as `bound × (1 + proportional)` would give the
smaller frontier after planning less added time than the largest reading does.

Reads the drift records the other drift benchmarks wrote (`frontier_drift.json`,
`frontier_drift_repeats.json`), no measurement of its own:

    .venv/bin/python benchmarks/drift_plan.py --out benchmarks/results/drift_plan.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.optimize import linprog

HERE = Path(__file__).parent / "results"


def line(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(fixed, proportional) of the tightest line with both terms ≥ 0 over the points."""
    res = linprog(c=[len(t), t.sum()], A_ub=-np.column_stack([np.ones_like(t), t]), b_ub=-y,
                  bounds=[(0, None), (0, None)], method="highs")
    return float(res.x[0]), float(res.x[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rows = []
    for name in ("frontier_drift.json", "frontier_drift_repeats.json"):
        for r in json.loads((HERE / name).read_text()):
            if r["model"] != "masked":
                continue
            keep = [k for k in r["before_ms"] if k != "speed reference"]
            t = np.array([r["before_ms"][k] for k in keep])
            y = np.array([r["after_ms"][k] - r["before_ms"][k] * r["control_after_ms"][k] / r["control_before_ms"][k]
                          for k in keep])
            fixed, prop = line(t, y)
            half = t.min() / 2  # an input half the time of the cheapest one read
            rows.append({"source": name, "stream": r.get("stream", "uniform"), "seed": r.get("seed", 0),
                         "points": ", ".join(f"{a:.1f} ms: {b:+.1f}" for a, b in zip(t, y, strict=True)),
                         "fixed": fixed, "proportional": prop, "largest": float(y.max()),
                         "line_at_half": fixed + prop * half, "half": half})
    lines = ["## Masked's drift readings: a fixed time per call, or one that grows with the input?", "",
             "Per check: each frontier input's time before the shapes and the time they added (against the "
             "control), the tightest line `fixed + proportional × time` (both ≥ 0) over them, the largest added "
             "time (what `costlab.runtime.drift` plans), and what the line would plan at an input half the time of the "
             "cheapest one read (a frontier brought down by the plan).", "",
             "| record | stream, seed | (time before: added) per input | line: fixed (ms) | line: proportional | "
             "largest added (ms) | line at half the cheapest input (ms) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['source']} | {r['stream']}, {r['seed']} | {r['points']} | {r['fixed']:.2f} | "
                     f"{r['proportional']:.2f} | {r['largest']:.2f} | {r['line_at_half']:.2f} "
                     f"(at {r['half']:.1f} ms) |")
    fx = [r["fixed"] for r in rows]
    pr = [r["proportional"] for r in rows]
    lines += ["", f"Over {len(rows)} checks the line's fixed part reads {min(fx):.2f}-{max(fx):.2f} ms and its "
              f"proportional part {min(pr):.2f}-{max(pr):.2f}; at half the cheapest input the line plans "
              f"{min(r['line_at_half'] / r['largest'] for r in rows):.2f}-"
              f"{max(r['line_at_half'] / r['largest'] for r in rows):.2f} of the largest added time."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
