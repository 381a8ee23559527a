"""Does a policy's own frontier slow down in a process that has taken its `shapes.max_distinct` shapes?

`benchmarks/shape_drift.py` shows `zoo:masked` reading a small reference input 3.2× slower
after 240 distinct shapes in one process. A policy lets one process take up to
`shapes.max_distinct` distinct shapes, and `costlab verify` runs its probes in workers
that each take up to that many (`costlab.checks.verify.ShapeCapped`), so what matters for a
policy is how much its *boundary* inputs slow down at that count. This script measures it
on the run directories kept by `policies.py --keep RUNS`.

For each run directory, `costlab.runtime.drift.frontier_drift` (what `costlab run` now does before
it writes the policy): the policy's worst admitted input and each dimension's edge point
(`costlab.policy.edge_points`: that dimension at its maximum, the others as large as the
joint budgets allow) are measured `--readings` times each in one fresh isolated worker,
and alongside each reading in a second worker that sees only those inputs (the control: a
stretch of the host between the two sets divides out). Then the first worker takes more
distinct shapes up to `max_distinct` in all (`--shapes` overrides the count), one call
each, from the stream `costlab verify` sends (`--stream`, below; seeded; at most 300 shapes
when the cap is higher); then both workers measure the inputs again. Drift = (after /
before in the first worker) / (after / before in the control), medians of the readings;
the table ends with what `costlab run` would plan for from it. (Results before 2026-12-01
evening also read the run's speed reference, with its own copy of this procedure.)

With `--checkpoints 16,32,...` the inputs are read (own worker and control) at those shape
counts too, on the way: where the drift starts.

With `--repeats N` the whole check is made N times per run directory, each in two fresh
workers with its own seed (0, 1, ...): how far one check's verdict can move from one check
to the next. `--stream uniform,verify` makes it with each way of picking the shapes sent
(`frontier_drift(stream=...)`: the stream `costlab verify` sends, frontier points and
Hypothesis draws, what `costlab run` sends; or log-uniform over the region, what it sent
before). The last table
sets each check beside the one the run itself made (its `drift.json`).

Run: .venv/bin/python benchmarks/frontier_drift.py RUNS/masked RUNS/attention ...
     [--readings 5] [--shapes N] [--checkpoints 16,32,48,64] [--repeats 1] [--stream verify]
     [--out benchmarks/results/frontier_drift.md]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from _output import finish  # benchmarks/_output.py: run as a script, its folder is on the path


def one(run_dir: Path, readings: int, shapes: int | None, checkpoints=(), seed: int = 0,
        stream: str = "verify") -> dict:
    from costlab import loading
    from costlab.policy import Policy
    from costlab.runtime.drift import SHAPES, frontier_drift

    policy = Policy.from_json(run_dir / "policy.json")
    name = policy.data["model"]["name"]
    adapter = loading.load(f"zoo:{name}" if not name.startswith("zoo:") else name)
    cap = (policy.data.get("shapes") or {}).get("max_distinct")
    d = frontier_drift(adapter, policy, shapes=shapes if shapes is not None else min(cap or SHAPES, SHAPES),
                       readings=readings, checkpoints=checkpoints, seed=seed, stream=stream,
                       values=(policy.data.get("value_pattern") or {}).get("pattern", "random"))
    ms = lambda v: {k: x * 1e3 for k, x in v.items()}  # noqa: E731
    return {"model": name, "run": str(run_dir), "seed": seed, "stream": stream, "max_distinct": cap, "shapes": d.shapes, "inputs": d.inputs,
            "before_ms": ms(d.before_s), "after_ms": ms(d.after_s), "control_before_ms": ms(d.control_before_s),
            "control_after_ms": ms(d.control_after_s), "drift": d.ratio, "added_ms": ms(d.added_s),
            "planned_ms": d.planned_s * 1e3, "median_ratio": d.median_ratio,
            "drift_by_shapes": {str(k): v for k, v in d.path.items()}}


def _moved(d: dict, worker: str) -> float:
    """Median over the inputs of after / before in `worker` ("" the check's own, "control_")."""
    return statistics.median(d[f"{worker}after_ms"][i] / d[f"{worker}before_ms"][i] for i in d["before_ms"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--readings", type=int, default=5)
    ap.add_argument("--shapes", type=int, default=None)
    ap.add_argument("--checkpoints", default="",
                    help="comma-separated shape counts at which to read the inputs too, on the way to the cap")
    ap.add_argument("--repeats", type=int, default=1, help="checks per run directory, seeds 0..N-1")
    ap.add_argument("--stream", default="verify", help="comma-separated: verify, uniform")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    from costlab.runtime.drift import THRESHOLD

    checkpoints = [int(c) for c in args.checkpoints.split(",") if c]
    results = [one(r, args.readings, args.shapes, checkpoints, seed, stream) for r in args.runs
               for stream in args.stream.split(",") for seed in range(args.repeats)]
    lines = ["## A policy's frontier after its distinct-shape cap, in one process (control: a worker seeing only "
             "these inputs)\n",
             "| model | stream | seed | max_distinct | shapes sent | input | sizes | before (ms) | after (ms) "
             "| control before → after (ms) | drift |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for k, s in r["inputs"].items():
            lines.append(f"| {r['model']} | {r['stream']} | {r['seed']} | {r['max_distinct']} | {r['shapes']} | {k} | "
                         f"{json.dumps(s)} | "
                         f"{r['before_ms'][k]:.2f} | {r['after_ms'][k]:.2f} | {r['control_before_ms'][k]:.2f} → "
                         f"{r['control_after_ms'][k]:.2f} | {r['drift'][k]:.2f} |")
    if checkpoints:
        lines += ["\nDrift by distinct shapes taken (shapes: drift):\n",
                  "| model | stream | seed | input | drift along the way |", "|---|---|---|---|---|"]
        for r in results:
            for k in r["inputs"]:
                lines.append(f"| {r['model']} | {r['stream']} | {r['seed']} | {k} | " + ", ".join(
                    f"{n}: {v[k]:.2f}" for n, v in r["drift_by_shapes"].items()) + " |")
    lines += ["\nWhat `costlab run` would plan (`costlab.runtime.drift`: the largest added time when the median ratio "
              f"over the frontier inputs is ≥ {THRESHOLD:g}; the speed reference is not a frontier input):\n",
              "| model | check | median ratio | own worker after / before (median over inputs) "
              "| control after / before | planned (ms) |", "|---|---|---|---|---|---|"]
    runs_seen = []
    for r in results:
        if r["run"] not in runs_seen:  # the check the run itself made, when it kept one
            runs_seen.append(r["run"])
            kept = Path(r["run"]) / "drift.json"
            if kept.exists():
                k = json.loads(kept.read_text())
                lines.append(f"| {r['model']} | in the run (drift.json) | {k['median_ratio']:.2f} | "
                             f"{_moved(k, ''):.2f} | {_moved(k, 'control_'):.2f} | {k['planned_ms']:.2f} |")
        lines.append(f"| {r['model']} | {r['stream']}, seed {r['seed']} | {r['median_ratio']:.2f} | "
                     f"{_moved(r, ''):.2f} | {_moved(r, 'control_'):.2f} | {r['planned_ms']:.2f} |")
    return finish(lines, results, args.out)


if __name__ == "__main__":
    sys.exit(main())
