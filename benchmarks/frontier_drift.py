"""Does a policy's own frontier slow down in a process that has taken its `shapes.max_distinct` shapes?

`benchmarks/shape_drift.py` shows `zoo:masked` reading a small reference input 3.2× slower
after 240 distinct shapes in one process. A policy lets one process take up to
`shapes.max_distinct` distinct shapes, and `costlab verify` runs its probes in workers
that each take up to that many (`costlab.verify.ShapeCapped`), so what matters for a
policy is how much its *boundary* inputs slow down at that count. This script measures it
on the run directories kept by `policies.py --keep RUNS`.

For each run directory: the policy's worst admitted input, each dimension's edge point
(`costlab.verify.edge_points`: that dimension at its maximum, the others as large as the
joint budgets allow) and the run's speed reference (`machine_speed.reference`) are
measured `--readings` times each in one fresh isolated worker, and alongside each reading
in a second worker that sees only those inputs (the control: a stretch of the host between
the two sets divides out). Then the first worker takes `max_distinct - 1 - inputs` more
distinct shapes (`--shapes` overrides the count), one call each, drawn log-uniformly
inside the policy's admitted region (seeded; at most 300 shapes when the cap is higher); then both workers measure the inputs again.
Drift = (after / before in the first worker) / (after / before in the control), medians
of the readings.

With `--checkpoints 16,32,...` the inputs are read (own worker and control) at those shape
counts too, on the way: where the drift starts.

Run: .venv/bin/python benchmarks/frontier_drift.py RUNS/masked RUNS/attention ...
     [--readings 5] [--shapes N] [--checkpoints 16,32,48,64]
     [--out benchmarks/results/frontier_drift.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from _output import emit  # benchmarks/_output.py: run as a script, its folder is on the path

#: Shapes sent when the policy's cap is higher (or absent) and `--shapes` is not given.
MAX_SHAPES = 300


def admitted_sizes(policy, n: int, avoid: list[dict], seed: int = 0) -> list[dict]:
    import pandas as pd

    region = policy.region()
    dims = list(region.dims)
    rng = np.random.default_rng(seed)
    lo = np.log([max(1, region.lo[d]) for d in dims])
    hi = np.log([max(1, region.hi[d]) for d in dims])
    X = pd.DataFrame(np.rint(np.exp(rng.uniform(lo, hi, size=(100 * max(n, 1), len(dims))))).astype(int), columns=dims)
    X = X[region.contains(X)].drop_duplicates()
    seen = {tuple(a[d] for d in dims) for a in avoid}
    out = [dict(zip(dims, map(int, row), strict=True)) for row in X.to_numpy() if tuple(row) not in seen]
    return out[:n]


def one(run_dir: Path, readings: int, shapes: int | None, checkpoints=()) -> dict:
    from costlab import adapters
    from costlab.isolation import Subprocess
    from costlab.policy import Policy
    from costlab.speed import PULSE_SEED
    from costlab.verify import edge_points

    policy = Policy.from_json(run_dir / "policy.json")
    name = policy.data["model"]["name"]
    adapter = adapters.load(f"zoo:{name}" if not name.startswith("zoo:") else name)
    space = policy.space
    inputs = {"worst admitted": {d: int(v) for d, v in policy.data["worst_admitted"]["sizes"].items()}}
    inputs.update({f"{d} at max": s for d, s in edge_points(policy.region()).items()})
    if policy.data.get("machine_speed"):
        inputs["speed reference"] = {d: int(v) for d, v in policy.data["machine_speed"]["reference"].items()}
    cap = (policy.data.get("shapes") or {}).get("max_distinct") or 100
    n = shapes if shapes is not None else min(cap, MAX_SHAPES)
    distinct = list({tuple(sorted(s.items())): s for s in inputs.values()}.values())
    others = admitted_sizes(policy, max(0, n - len(distinct)), distinct)
    xs = {k: space.random_inputs(s, seed=PULSE_SEED) for k, s in inputs.items()}
    timed = dict(min_repeats=3, max_repeats=30, time_budget_s=0.2)
    ex = Subprocess(adapter, memory_cap_mib=4096, timeout_s=120, **timed)

    def read() -> tuple[dict, dict]:
        own, ctl = {k: [] for k in xs}, {k: [] for k in xs}
        for _ in range(readings):
            for k, x in xs.items():
                own[k].append(ex.probe(x)["wall_s_median"])
                ctl[k].append(ex.pulse(x)["wall_s_median"])
        return ({k: float(np.median(v)) for k, v in own.items()}, {k: float(np.median(v)) for k, v in ctl.items()})

    with ex:
        for x in xs.values():  # both workers started and warm
            ex.probe(x)
            ex.pulse(x)
        before, c_before = read()
        sent, path = len(distinct), {}
        for stop in sorted({c for c in checkpoints if len(distinct) < c < len(distinct) + len(others)}
                           | {len(distinct) + len(others)}):
            ex.measure_kw = dict(min_repeats=1, max_repeats=1, time_budget_s=0.0)
            while sent < stop:
                ex.probe(space.random_inputs(others[sent - len(distinct)], seed=sent))
                sent += 1
            ex.measure_kw = timed
            after, c_after = read()
            path[stop] = {k: (after[k] / before[k]) / (c_after[k] / c_before[k]) for k in xs}
    drift = path[max(path)]
    return {"model": name, "max_distinct": cap, "shapes": len(distinct) + len(others), "inputs": inputs,
            "before_ms": {k: v * 1e3 for k, v in before.items()}, "after_ms": {k: v * 1e3 for k, v in after.items()},
            "control_before_ms": {k: v * 1e3 for k, v in c_before.items()},
            "control_after_ms": {k: v * 1e3 for k, v in c_after.items()}, "drift": drift,
            "drift_by_shapes": {str(k): v for k, v in path.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--readings", type=int, default=5)
    ap.add_argument("--shapes", type=int, default=None)
    ap.add_argument("--checkpoints", default="",
                    help="comma-separated shape counts at which to read the inputs too, on the way to the cap")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    checkpoints = [int(c) for c in args.checkpoints.split(",") if c]
    results = [one(r, args.readings, args.shapes, checkpoints) for r in args.runs]
    lines = ["## A policy's frontier after its distinct-shape cap, in one process (control: a worker seeing only "
             "these inputs)\n",
             "| model | max_distinct | shapes sent | input | sizes | before (ms) | after (ms) | control before → after (ms) "
             "| drift |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for k, s in r["inputs"].items():
            lines.append(f"| {r['model']} | {r['max_distinct']} | {r['shapes']} | {k} | {json.dumps(s)} | "
                         f"{r['before_ms'][k]:.2f} | {r['after_ms'][k]:.2f} | {r['control_before_ms'][k]:.2f} → "
                         f"{r['control_after_ms'][k]:.2f} | {r['drift'][k]:.2f} |")
    if checkpoints:
        lines += ["\nDrift by distinct shapes taken (shapes: drift):\n", "| model | input | drift along the way |",
                  "|---|---|---|"]
        for r in results:
            for k in r["inputs"]:
                lines.append(f"| {r['model']} | {k} | " + ", ".join(
                    f"{n}: {v[k]:.2f}" for n, v in r["drift_by_shapes"].items()) + " |")
    emit("\n".join(lines) + "\n", results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
