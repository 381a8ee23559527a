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

Run: .venv/bin/python benchmarks/index_tracking.py RUN_DIR [RUN_DIR ...]
     [--out benchmarks/results/index_tracking.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from _output import emit  # benchmarks/_output.py: run as a script, its folder is on the path


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
           "sd_planned": float(planned.std())}
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
             "sd of log latency | sd of log planned reading |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['steps']} | {r['draws']} | {r['slope_index']:.2f} | {r['corr_index']:.2f} | "
                     f"{r['slope_pulse']:.2f} | {r['corr_pulse']:.2f} | {r['sd_latency']:.3f} | {r['sd_planned']:.3f} |")
    emit("\n".join(lines) + "\n", rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
