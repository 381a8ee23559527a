"""Does a worker process have a speed of its own, and does a probe share it with the pulse?

`costlab.profiling.speed` reads the machine's speed from a reference input (a pulse). Whether that
pulse should run in the probes' worker or in a worker of its own depends on two things
this script measures:

- how far apart fresh worker processes of the same model read the same input at the
  same moment (a process offset: memory layout, thread placement), and
- whether a larger probe in a worker is offset by as much as the reference in that same
  worker (then a pulse in the probes' worker cancels the offset, and one in another
  worker adds its own).

For each model, `--workers` isolated workers (`costlab.measurement.executors.Subprocess`) are started
side by side; then `--rounds` times, in every worker in turn, the reference input (the
space's geometric middle, `costlab.profiling.speed.reference_sizes`, the same values each time) and
a large probe (`--probe` times the reference's sizes along the first dimension) are
measured with the usual harness (min 3 warm calls, 0.2 s). The rounds interleave the
workers, so a slow stretch of the host reaches every worker alike; each reading is divided
by its round's median over the workers, and each worker's offset is the median of those
ratios over the rounds. Reported per model: the reference's and the probe's worker offsets
(their range), their correlation across workers, and how much of the probe's offset a
same-worker pulse leaves (probe offset / reference offset) against one from the other
workers (probe offset alone); and how well the rounds' medians over the workers (the
host's stretches) of the reference and the probe go together.

Run: .venv/bin/python benchmarks/pulse_workers.py [--models conv,attention,masked]
     [--workers 6] [--rounds 12] [--probe 4] [--out benchmarks/results/pulse_workers.md]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from _output import finish  # benchmarks/_output.py: run as a script, its folder is on the path


def offsets(name: str, workers: int, rounds: int, probe: int) -> dict:
    from costlab import InputSpace, loading
    from costlab.measurement.executors import Subprocess
    from costlab.profiling.speed import PULSE_SEED, reference_sizes

    adapter = loading.load(f"zoo:{name}")
    space = InputSpace.from_model(adapter)
    ref = reference_sizes(space)
    first = space.dims[0]
    big = {**ref, first.name: int(min(first.max, max(first.min, ref[first.name] * probe)))}
    ref_in = space.random_inputs(ref, seed=PULSE_SEED)
    big_in = space.random_inputs(big, seed=1)
    execs = [Subprocess(adapter, memory_cap_mib=4096, timeout_s=120, min_repeats=3, max_repeats=50,
                        time_budget_s=0.2) for _ in range(workers)]
    t_ref = np.full((rounds, workers), np.nan)
    t_big = np.full((rounds, workers), np.nan)
    try:
        for ex in execs:  # start every worker, and warm each on both inputs
            ex.probe(ref_in)
            ex.probe(big_in)
        for r in range(rounds):
            order = range(workers) if r % 2 == 0 else range(workers - 1, -1, -1)
            for w in order:
                t_ref[r, w] = execs[w].probe(ref_in)["wall_s_median"]
                t_big[r, w] = execs[w].probe(big_in)["wall_s_median"]
    finally:
        for ex in execs:
            ex.close()
    # each reading over its round's median across workers: the host's stretch divides out
    o_ref = np.median(t_ref / np.median(t_ref, axis=1, keepdims=True), axis=0)
    o_big = np.median(t_big / np.median(t_big, axis=1, keepdims=True), axis=0)
    left_same = o_big / o_ref  # a pulse in the probe's own worker
    # the host's stretches: each round's median over the workers, reference against probe
    host = float(np.corrcoef(np.log(np.median(t_ref, axis=1)), np.log(np.median(t_big, axis=1)))[0, 1])
    return {"reference": ref, "probe": big, "reference_ms": float(np.median(t_ref) * 1e3),
            "probe_ms": float(np.median(t_big) * 1e3), "offset_reference": o_ref.tolist(),
            "offset_probe": o_big.tolist(), "correlation": float(np.corrcoef(o_ref, o_big)[0, 1]), "host_correlation": host,
            "spread_reference": float(o_ref.max() / o_ref.min()), "spread_probe": float(o_big.max() / o_big.min()),
            "spread_same_worker": float(left_same.max() / left_same.min()),
            "times_reference_ms": (t_ref * 1e3).tolist(), "times_probe_ms": (t_big * 1e3).tolist()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="conv,attention,masked")
    ap.add_argument("--workers", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--probe", type=int, default=4)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    results = {name: offsets(name, args.workers, args.rounds, args.probe) for name in args.models.split(",")}
    lines = [f"## Worker processes' own speed ({args.workers} workers side by side, {args.rounds} interleaved rounds)\n",
             "Offset: a worker's median, over the rounds, of its reading / the round's median over the workers.\n",
             "| model | reference (ms) | probe (ms) | reference offsets: max / min | probe offsets: max / min | "
             "correlation | probe offset left by a same-worker pulse: max / min | rounds: reference against probe "
             "(correlation) | offsets (reference; probe) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['reference_ms']:.2f} {r['reference']} | {r['probe_ms']:.2f} {r['probe']} | "
            f"{r['spread_reference']:.2f} | {r['spread_probe']:.2f} | {r['correlation']:.2f} | "
            f"{r['spread_same_worker']:.2f} | {r['host_correlation']:.2f} | {', '.join(f'{x:.2f}' for x in r['offset_reference'])}; "
            f"{', '.join(f'{x:.2f}' for x in r['offset_probe'])} |")
    return finish(lines, results, args.out)


if __name__ == "__main__":
    sys.exit(main())
