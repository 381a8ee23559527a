"""Do the policies hold, and how tight are they? `costlab run` then `costlab verify` per zoo model.

For each model: `costlab run zoo:NAME` with the budgets below (the demo's settings
otherwise: isolated workers, two rounds, boundary refinement, churn, a 3 s concurrent run),
then `costlab verify` with 200 probes in isolated workers (worst admitted input, each axis
at its maximum, the admitted region's frontier, Hypothesis draws) and the tightness
bisection. Reported per model: probes, violations, the most expensive measured probe
against its budget, and per limit its tightness (limit / measured boundary at
margin × budget; `≥` marks a boundary the search did not bracket within 4× the limit, so
the tightness is at most the figure shown). Goal (issue 6): 0 violations over ≥ 200
probes, every limit ≥ 0.85 of its true boundary.

Everything runs through the CLI, in subprocesses, with a memory cap on every probe.
Takes about 4 minutes per model on a 2-core machine.

Run: .venv/bin/python benchmarks/policies.py [--models attention,recurrent,conv,mlp]
     [--out benchmarks/results/policies.md]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: Budgets per model: tight enough that latency or memory binds inside the measured range.
BUDGETS = {"attention": ("20", "64"), "recurrent": ("20", "64"), "conv": ("20", "64"), "mlp": ("5", "16"),
           "masked": ("20", "64")}


def _run(args) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "costlab"), *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="attention,recurrent,conv,mlp")
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--out", default=None)
    ap.add_argument("--keep", default=None, help="keep the run directories here")
    args = ap.parse_args(argv)
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="costlab-policies-"))
    rows, tight_rows = [], []
    for name in args.models.split(","):
        lat, mem = BUDGETS[name]
        out = base / name
        t0 = time.time()
        r = _run(["run", f"zoo:{name}", "--latency-ms", lat, "--memory-mib", mem, "--out", out])
        run_s = time.time() - t0
        if r.returncode != 0:
            print(r.stdout, r.stderr, file=sys.stderr)
            rows.append({"model": name, "error": f"run failed ({r.returncode})"})
            continue
        policy = json.loads((out / "policy.json").read_text())
        t0 = time.time()
        v = _run(["verify", f"zoo:{name}", out / "policy.json", "--probes", args.probes, "--out", out / "verify"])
        verify_s = time.time() - t0
        print(r.stdout.splitlines()[0] if r.stdout else "", "\n", v.stdout, sep="")
        table = list(csv.DictReader((out / "verify" / "verify.csv").open()))
        ok = [t for t in table if t["status"] == "ok"]
        worst_lat = max(float(t["latency_ms"]) for t in ok) / float(lat) if ok else float("nan")
        worst_mem = max(float(t["memory_mib"]) for t in ok) / float(mem) if ok else float("nan")
        violations = sum(1 for t in table if t["violation"])
        limits = ", ".join(f"{d} ≤ {lim['max']} ({lim['limited_by']})" for d, lim in policy["limits"].items())
        limits += "".join(f", {j['name']} ≤ {j['max']}" for j in policy.get("joint", []))
        rows.append({"model": name, "budgets": f"{lat} ms / {mem} MiB", "limits": limits, "probes": len(table),
                     "violations": violations, "exit": v.returncode, "worst_latency": worst_lat,
                     "worst_memory": worst_mem, "run_s": run_s, "verify_s": verify_s})
        tp = out / "verify" / "tightness.csv"
        for t in (csv.DictReader(tp.open()) if tp.exists() else []):
            tight_rows.append({"model": name, **t})
    lines = [f"## Policies verified on the zoo models ({args.probes} probes each, isolated workers)\n",
             "| model | budgets (p50 / peak) | limits | probes | violations | most expensive probe / budget (latency, memory) | run s | verify s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['error']} | | | | | | |")
            continue
        lines.append(f"| {r['model']} | {r['budgets']} | {r['limits']} | {r['probes']} | {r['violations']} | "
                     f"{r['worst_latency']:.0%}, {r['worst_memory']:.0%} | {r['run_s']:.0f} | {r['verify_s']:.0f} |")
    lines += ["", "### Tightness (limit / largest size measured within margin × budget along it)", "",
              "| model | limit | policy max | measured boundary | tightness | probes |", "|---|---|---|---|---|---|"]
    for t in tight_rows:
        ge = "" if t["exact"] == "True" else "≥ "
        lines.append(f"| {t['model']} | {t['limit']} | {t['value']} | {ge}{t['boundary']} | "
                     f"{'≤ ' if ge else ''}{float(t['tightness']):.2f} | {t['probes']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if all(r.get("violations", 1) == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
