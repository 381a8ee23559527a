"""Does a model slow down as distinct input shapes accumulate in one process?

For each model, one isolated worker (`costlab.measurement.executors.Subprocess`) is sent `--shapes`
inputs of distinct random sizes (batch 1-39, seq_len 8-299, random values, seeded); before
every `--every`-th of them it measures the reference input (batch 8, seq_len 91, the same
values each time) with the usual harness. Reported per model: the reference's median warm
time at the start, its largest, and the ratio of the last three readings to the first
three. A server that lets one process see many shapes pays that slowdown on every request;
the policy's `shapes.max_distinct` caps the shapes per process, and `costlab verify` runs
its probes in workers that each take at most that many (`costlab.checks.verify.ShapeCapped`).

Run: .venv/bin/python benchmarks/shape_drift.py [--models attention,masked,recurrent]
     [--shapes 240] [--every 20] [--out benchmarks/results/shape_drift.md]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from _output import finish  # benchmarks/_output.py: run as a script, its folder is on the path

REF = {"batch": 8, "seq_len": 91}


def drift(name: str, shapes: int, every: int) -> list[dict]:
    from costlab import InputSpace, loading
    from costlab.measurement.executors import Subprocess

    adapter = loading.load(f"zoo:{name}")
    space = InputSpace.from_model(adapter)
    rng = np.random.default_rng(0)
    out = []
    with Subprocess(adapter, memory_cap_mib=4096, timeout_s=60, min_repeats=3, max_repeats=50,
                    time_budget_s=0.2) as ex:
        for i in range(shapes + 1):
            if i % every == 0:
                r = ex.probe(space.random_inputs(REF, seed=1))
                out.append({"shapes_seen": i, "ref_ms": r["wall_s_median"] * 1e3,
                            "parallelism": r["cpu_s_median"] / r["wall_s_median"],
                            "rss_mib": (r.get("rss_before_bytes") or 0) / 2**20})
            if i < shapes:
                s = {"batch": int(rng.integers(1, 40)), "seq_len": int(rng.integers(8, 300))}
                ex.probe(space.random_inputs(s, seed=i))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="attention,masked,recurrent")
    ap.add_argument("--shapes", type=int, default=240)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    results = {name: drift(name, args.shapes, args.every) for name in args.models.split(",")}
    lines = [f"## Reference input's time as distinct shapes accumulate in one worker ({args.shapes} shapes)\n",
             "| model | first (ms) | largest (ms) | last 3 / first 3 | resident memory growth (MiB) | readings (ms, every "
             f"{args.every} shapes) |", "|---|---|---|---|---|---|"]
    for name, rows in results.items():
        t = [r["ref_ms"] for r in rows]
        ratio = float(np.median(t[-3:]) / np.median(t[:3]))
        lines.append(f"| {name} | {t[0]:.2f} | {max(t):.2f} | {ratio:.2f} | "
                     f"{rows[-1]['rss_mib'] - rows[0]['rss_mib']:.0f} | {', '.join(f'{x:.1f}' for x in t)} |")
    return finish(lines, results, args.out)


if __name__ == "__main__":
    sys.exit(main())
