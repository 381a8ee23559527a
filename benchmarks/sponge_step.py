"""Where does zoo:sponge's cost step? Its loop's time per token position, around 560 positions per pass.

`zoo:sponge` loops once per repeat of each row's first token; each pass works on the whole
(batch, seq_len, 64) embedding. With every token the same (`min`, the pattern its run is
measured with), one isolated worker (`costlab.measurement.executors.Subprocess`, the usual harness)
measures batch 2, 5 and 8 at sequence lengths putting batch × seq_len between 480 and 640.
Reported per input: the median warm time, the CPU time over the wall time, and the time over
the smooth growth of the two sizes below the step (`time / (b·s²)`, the loop's class,
relative to the first row of that batch). A jump in that ratio between two adjacent sizes is
a kernel or threading step (TensorFlow parallelising the loop body past a cost threshold),
which a smooth cost curve cannot follow and which `costlab verify`'s joint tightness search
has to measure across (`costlab.checks.verify.JOINT_SPREAD`).

Run: .venv/bin/python benchmarks/sponge_step.py [--out benchmarks/results/sponge_step.md]
"""

from __future__ import annotations

import argparse
import sys

from _output import finish  # benchmarks/_output.py: run as a script, its folder is on the path

POSITIONS = (480, 500, 520, 540, 550, 560, 570, 580, 600, 640)


def measure(batches) -> list[dict]:
    from costlab import InputSpace, loading
    from costlab.measurement.executors import Subprocess

    adapter = loading.load("zoo:sponge")
    space = InputSpace.from_model(adapter)
    out = []
    with Subprocess(adapter, memory_cap_mib=4096, timeout_s=60, min_repeats=5, max_repeats=50,
                    time_budget_s=0.3) as ex:
        for b in batches:
            for n in POSITIONS:
                s = round(n / b)
                r = ex.probe(space.pattern_inputs({"batch": b, "seq_len": s}, seed=0, values="min"))
                out.append({"batch": b, "seq_len": s, "positions": b * s, "ms": r["wall_s_median"] * 1e3,
                            "parallelism": r["cpu_s_median"] / r["wall_s_median"]})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="2,5,8")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    rows = measure([int(b) for b in args.batches.split(",")])
    lines = ["## zoo:sponge (all tokens equal) around 560 token positions per pass, one isolated worker\n",
             "| batch | seq_len | batch × seq_len | median (ms) | CPU / wall | time / (b·s²), relative |",
             "|---|---|---|---|---|---|"]
    first = {}
    for r in rows:
        unit = r["ms"] / (r["batch"] * r["seq_len"] ** 2)
        first.setdefault(r["batch"], unit)
        r["relative"] = unit / first[r["batch"]]
        lines.append(f"| {r['batch']} | {r['seq_len']} | {r['positions']} | {r['ms']:.1f} | "
                     f"{r['parallelism']:.2f} | {r['relative']:.2f} |")
    return finish(lines, rows, args.out)


if __name__ == "__main__":
    sys.exit(main())
