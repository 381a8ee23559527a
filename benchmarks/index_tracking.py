"""Does the speed index follow the probes it scales? Checked on kept verify runs.

`costlab verify`'s tightness search measures each step's input five times (fresh values,
seconds apart) and reads each latency at the policy's planned speed: measured × factor /
index. That is only as good as the index's power to predict how fast *that* measurement
ran. This script takes every step with at least three successful draws from
`verify/tightness_probes.csv` of runs kept by `benchmarks/policies.py --keep DIR`, and
within each step regresses the draws' log latency (over the step's median) on their log
index (the running median of five pulses, `index`) and on the last single pulse
(`pulse_index`), each over the step's median. A slope of 1 would mean the index divides
out exactly what slowed the draws; 0, that it divides in noise. It also reports the spread
of the planned reading against the raw one: how much the index adds.

And the level, over the whole search: each draw's latency over the run's own fitted curve
at its sizes (`cost_models.json`, the time at the run's median speed), median over the
draws, next to the median index. Where the index reads the machine's speed as the
boundary's inputs feel it, the two agree, and their quotient (the draws' cost at the run's
median speed over the curve: what the tightness search reads, up to the planned factor)
is about 1.

Run: .venv/bin/python benchmarks/index_tracking.py RUN_DIR [RUN_DIR ...]
     [--out benchmarks/results/index_tracking.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from _output import finish  # benchmarks/_output.py: run as a script, its folder is on the path


def tracking(run: Path) -> dict | None:
    path = run / "verify" / "tightness_probes.csv"
    if not path.exists():
        return None
    t = pd.read_csv(path)
    t = t[(t["status"] == "ok") & (t["latency_ms"] > 0)]
    parts = []
    for _, g in t.groupby("step"):
        if len(g) < 3:
            continue
        parts.append(pd.DataFrame({
            "lat": np.log(g["latency_ms"] / g["latency_ms"].median()),
            "index": np.log(g["index"] / g["index"].median()),
            "pulse": np.log(g["pulse_index"] / g["pulse_index"].median())}))
    if not parts:
        return None
    d = pd.concat(parts)
    planned = d["lat"] - d["index"]  # log(measured / index), over the step's median
    out = {"model": run.name, "draws": len(d), "steps": len(parts), "sd_latency": float(d["lat"].std()),
           "sd_planned": float(planned.std()), "index_median": float(t["index"].median())}
    models = run / "cost_models.json"
    if models.exists():
        import json

        from costlab.curves import CostModel

        m = CostModel.from_dict(json.loads(models.read_text())["wall_s_median"])
        over = t["latency_ms"].to_numpy() / 1e3 / m.predict(t[m.dims_])
        out["over_curve_median"] = float(np.median(over))
        out["over_curve_at_index"] = float(np.median(over / t["index"].to_numpy()))
    for k in ("index", "pulse"):
        x, y = d[k].to_numpy(), d["lat"].to_numpy()
        out[f"slope_{k}"] = float(np.polyfit(x, y, 1)[0]) if x.std() > 0 else float("nan")
        out[f"corr_{k}"] = float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 else float("nan")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    rows = [r for r in (tracking(p) for p in args.runs) if r]
    lines = ["## The speed index against the draws it scales (within each tightness step)\n",
             "| model | steps | draws | slope on index | correlation | slope on last pulse | correlation | "
             "sd of log latency | sd of log planned reading | level: draws / run's curve | index | "
             "draws / (curve × index) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        level = (f"{r['over_curve_median']:.2f} | {r['index_median']:.2f} | {r['over_curve_at_index']:.2f}"
                 if "over_curve_median" in r else f"– | {r['index_median']:.2f} | –")
        lines.append(f"| {r['model']} | {r['steps']} | {r['draws']} | {r['slope_index']:.2f} | {r['corr_index']:.2f} | "
                     f"{r['slope_pulse']:.2f} | {r['corr_pulse']:.2f} | {r['sd_latency']:.3f} | {r['sd_planned']:.3f} | "
                     f"{level} |")
    return finish(lines, rows, args.out)


if __name__ == "__main__":
    sys.exit(main())
