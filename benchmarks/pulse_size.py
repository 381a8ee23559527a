"""Which reference input's slowdown does a model's boundary-sized input share?

`costlab.profiling.speed` divides probes' times by a machine-speed index read from a reference
input (a pulse) in a worker of its own. The policies benchmark's runs show the index's
swings reaching the model's large inputs only in part (conv, masked) or more than in full
(attention). This script measures it under a load it controls: a noisy neighbour of
`--hogs` busy processes, in phases that alternate with quiet ones.

For each model three isolated workers (`costlab.measurement.executors.Subprocess`) run side by side:
the *small* reference (the space's geometric middle, `costlab.profiling.speed.reference_sizes`),
the *budget-sized* reference (`costlab.profiling.speed.budget_reference`, as `costlab run` sizes it:
the largest input on the log diagonal within `--target-ms`, by bisection; the results of
`a4e9508` and before took the diagonal input nearest it in time, at most one bisection
step away), and
the *probes*: inputs of about the same cost with other aspects (one dimension stretched
to its maximum and the rest scaled down to match). Each round measures all of them; each
phase has `--rounds` rounds. Per load phase, each input's slowdown is its phase median
over the quiet phases' median. Reported: the slowdowns, and how far each reference's
slowdown is from the probes' (the ratio probe slowdown / reference slowdown: 1 means the
reference's index divides the neighbour out of the probes exactly).

Neighbours: `cpu` is a pure-Python busy loop per hog; `mem` copies a 256 MiB array in a
loop (memory bandwidth and caches). They are children of this script, killed at the end.

Run: .venv/bin/python benchmarks/pulse_size.py [--models conv,masked,attention,recurrent]
     [--target-ms 10] [--rounds 6] [--hogs 1,2] [--out benchmarks/results/pulse_size.md]
     [--from RESULTS.json ...]   (render earlier runs' JSON, merged by model, without measuring)
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
from _output import finish  # benchmarks/_output.py: run as a script, its folder is on the path

HOGS = {"cpu": "while True: pass",
        "mem": "import numpy as np\na = np.ones(1 << 25); b = np.empty_like(a)\nwhile True: np.copyto(b, a)"}


def stretched(ex, space, sizes: dict, cost_s: float, dim, seed: int, steps: int = 7) -> dict:
    """`dim` at its maximum and the other dimensions scaled down (one common log factor)
    until the cost is about `cost_s`."""
    lo, hi, best = 0.0, 1.0, None
    for _ in range(steps):
        t = (lo + hi) / 2  # 0: the others at their minimum, 1: as in `sizes`
        cand = {dim.name: dim.max}
        for d in space.dims:
            if d.name != dim.name:
                a, b = math.log(max(1, d.min)), math.log(max(1, sizes[d.name]))
                cand[d.name] = int(max(d.min, round(math.exp(a + t * (b - a)))))
        s = ex.probe(space.random_inputs(cand, seed=seed))["wall_s_median"]
        if best is None or abs(math.log(s / cost_s)) < abs(math.log(best[1] / cost_s)):
            best = (cand, s)
        lo, hi = (t, hi) if s < cost_s else (lo, t)
    return best[0]


def one(name: str, target_ms: float, rounds: int, hogs: list[int]) -> dict:
    from costlab import InputSpace, loading
    from costlab.measurement.executors import Subprocess
    from costlab.profiling.speed import PULSE_SEED, budget_reference, reference_sizes

    adapter = loading.load(f"zoo:{name}")
    space = InputSpace.from_model(adapter)
    kw = dict(memory_cap_mib=4096, timeout_s=120, min_repeats=3, max_repeats=50, time_budget_s=0.2)
    small_ex, big_ex, probe_ex = (Subprocess(adapter, **kw) for _ in range(3))
    children = []
    try:
        small = reference_sizes(space)
        big, big_s = budget_reference(big_ex.probe, space, target_ms / 1e3)  # as `costlab run` sizes it
        probes = {"diagonal": big}
        for d in space.dims:
            if d.max > big[d.name]:
                probes[f"{d.name} at max"] = stretched(probe_ex, space, big, big_s, d, seed=1)
        inputs = {"small": (small_ex, space.random_inputs(small, seed=PULSE_SEED)),
                  "budget": (big_ex, space.random_inputs(big, seed=PULSE_SEED))}
        inputs.update({f"probe {k}": (probe_ex, space.random_inputs(v, seed=1)) for k, v in probes.items()})
        for ex, x in inputs.values():  # warm
            ex.probe(x)
        phases = []
        for kind in HOGS:
            for n in hogs:
                phases += [("quiet", 0), (kind, n)]
        phases.append(("quiet", 0))
        times = []  # (phase index, input name, seconds)
        for p, (kind, n) in enumerate(phases):
            for proc in children:
                proc.kill()
                proc.wait()
            children = [subprocess.Popen([sys.executable, "-c", HOGS[kind]]) for _ in range(n)] if n else []
            for r in range(rounds):
                order = list(inputs) if r % 2 == 0 else list(reversed(inputs))
                for k in order:
                    ex, x = inputs[k]
                    times.append((p, k, ex.probe(x)["wall_s_median"]))
    finally:
        for proc in children:
            proc.kill()
            proc.wait()
        for ex in (small_ex, big_ex, probe_ex):
            ex.close()
    quiet = [p for p, (kind, _) in enumerate(phases) if kind == "quiet"]
    base = {k: float(np.median([s for p, kk, s in times if kk == k and p in quiet])) for k in inputs}
    slow = {}
    for p, (kind, n) in enumerate(phases):
        if kind != "quiet":
            slow[f"{kind}×{n}"] = {k: float(np.median([s for pp, kk, s in times if pp == p and kk == k]) / base[k])
                                  for k in inputs}
    return {"small": small, "budget": big, "probes": probes, "quiet_ms": {k: v * 1e3 for k, v in base.items()},
            "slowdown": slow, "phases": phases, "times": times}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="conv,masked,attention,recurrent")
    ap.add_argument("--target-ms", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--hogs", default="1,2")
    ap.add_argument("--out", default=None)
    ap.add_argument("--from", dest="from_", nargs="+", default=None,
                    help="render the results JSON of earlier runs (merged by model) instead of measuring")
    args = ap.parse_args(argv)
    hogs = [int(h) for h in args.hogs.split(",")]
    if args.from_:
        results = {}
        for path in args.from_:
            results.update(json.loads(Path(path).read_text()))
    else:
        results = {name: one(name, args.target_ms, args.rounds, hogs) for name in args.models.split(",")}
    rounds = sorted({sum(1 for p, k, _ in r["times"] if p == 0 and k == "small") for r in results.values()})
    lines = [f"## Reference size against a controlled neighbour ({'/'.join(map(str, rounds))} rounds per phase, "
             "quiet phases between)\n",
             "Slowdown: the phase's median over the quiet phases' median. Left: probe slowdown / reference "
             "slowdown, median over the probes (max/min over them); 1 means that reference's index divides the "
             "neighbour out of the probes.\n",
             "| model | small reference (ms) | budget-sized reference (ms) | probes (ms) | neighbour | small | "
             "budget-sized | probes | left by small | left by budget-sized |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        q = r["quiet_ms"]
        pk = [k for k in q if k.startswith("probe ")]
        for load, s in r["slowdown"].items():
            ps = np.array([s[k] for k in pk])
            ls, lb = ps / s["small"], ps / s["budget"]
            lines.append(
                f"| {name} | {q['small']:.2f} {r['small']} | {q['budget']:.2f} {r['budget']} | "
                f"{', '.join(f'{q[k]:.1f}' for k in pk)} | {load} | {s['small']:.2f} | {s['budget']:.2f} | "
                f"{', '.join(f'{x:.2f}' for x in ps)} | {np.median(ls):.2f} ({ls.min():.2f}–{ls.max():.2f}) | "
                f"{np.median(lb):.2f} ({lb.min():.2f}–{lb.max():.2f}) |")
    miss = {"small": [], "budget": []}  # |log left| per model and neighbour: how far each index is off
    for r in results.values():
        pk = [k for k in r["quiet_ms"] if k.startswith("probe ")]
        for s in r["slowdown"].values():
            for ref in miss:
                miss[ref].append(abs(math.log(float(np.median([s[k] for k in pk]) / s[ref]))))
    lines.append(f"\nHow far each reference's slowdown is from the probes' (|log left|, over models and neighbours): "
                 f"small median {np.median(miss['small']):.3f}, mean {np.mean(miss['small']):.3f}, max "
                 f"{np.max(miss['small']):.3f}; budget-sized median {np.median(miss['budget']):.3f}, mean "
                 f"{np.mean(miss['budget']):.3f}, max {np.max(miss['budget']):.3f}.")
    lines.append("\nProbes: " + "; ".join(f"{name}: " + ", ".join(f"{k} {v}" for k, v in r["probes"].items())
                                           for name, r in results.items()))
    return finish(lines, results, args.out)


if __name__ == "__main__":
    sys.exit(main())
