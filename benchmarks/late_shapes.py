"""Does a shape first seen late in a process run slower than one seen early?

`costlab.runtime.drift` reads a policy's frontier inputs in a fresh worker, sends it many distinct
shapes, and reads the same inputs again: every input it reads was first seen (traced) while
the process was young. A server's process also meets shapes for the first time when it
already holds many. This benchmark reads both kinds, at several counts of shapes held:

- `early`: inputs the worker took first (before any other shape), read again at each count;
- `late`: inputs of a shape the worker has never seen, taken at that count (a fresh shape
  at each count, next to the early one in size);
- `control`: the same late inputs in a second worker that holds only those and the early
  ones (`Subprocess.pulse`), read right after.

Each reading is the usual probe: a cold call, a warm-up call, then warm calls until the
median is stable (`costlab.measurement.timing`); the median warm time is reported. The shapes sent
between readings are the admitted stream `costlab verify` and the drift check send
(`costlab.runtime.drift.stream_sizes`), one call each, on a policy from the policies benchmark.

Run: .venv/bin/python benchmarks/late_shapes.py RUNS/masked RUNS/attention
     [--counts 0,50,100,200,300] [--out benchmarks/results/late_shapes.md]
(RUNS: a directory kept by `benchmarks/policies.py --keep`.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _output import finish  # benchmarks/_output.py: run as a script, its folder is on the path

#: (label, sizes) of the inputs read: a small one and one of the policy's worst admitted size.
SMALL = {"batch": 1, "seq_len": 9}


def late_shapes(run: Path, counts: list[int]) -> list[dict]:
    from costlab import Policy, loading
    from costlab.measurement.executors import Subprocess
    from costlab.profiling.speed import PULSE_SEED
    from costlab.runtime.drift import stream_sizes

    policy = Policy.from_json(run / "policy.json")
    name = policy.data["model"]["name"]
    adapter = loading.load(f"zoo:{name}")
    space = policy.space
    values = (policy.data.get("value_pattern") or {}).get("pattern", "random")
    worst = {d: int(v) for d, v in policy.data["worst_admitted"]["sizes"].items()}
    bases = {"small": policy.region().onto({**SMALL}), "worst admitted": worst}
    # late shapes: each base moved by 1, 2, ... (the small one's seq_len up, the worst admitted
    # one's roomiest dimension down: both stay admitted), one per count; kept out of the stream
    dims = list(space.dim_names)
    lo = policy.region().lo
    room = max(dims, key=lambda d: worst[d] / max(1, lo[d]))  # the worst input's dimension with most room down
    late = {}
    for i, c in enumerate(counts):
        late[("small", c)] = policy.region().onto({**bases["small"], "seq_len": bases["small"]["seq_len"] + 1 + i})
        late[("worst admitted", c)] = policy.region().onto({**worst, room: worst[room] - 1 - i})
    assert len({json.dumps(s, sort_keys=True) for s in late.values()}) == len(late), late
    avoid = list(bases.values()) + list(late.values())
    stream = stream_sizes(policy, max(counts), avoid=avoid, seed=3)
    x = lambda s: space.pattern_inputs(s, seed=PULSE_SEED, values=values)  # noqa: E731
    ms = lambda r: (r.get("wall_s_median") or float("nan")) * 1e3  # noqa: E731
    out = []
    with Subprocess(adapter, memory_cap_mib=4096, timeout_s=120, min_repeats=5, max_repeats=50,
                    time_budget_s=0.2) as ex:
        for b in bases.values():
            ex.probe(x(b))
            ex.pulse(x(b))
        sent = 0
        for c in counts:
            ex.measure_kw = dict(min_repeats=1, max_repeats=1, time_budget_s=0.0)
            while sent < c:
                ex.probe(space.pattern_inputs(stream[sent], seed=sent, values=values))
                sent += 1
            ex.measure_kw = dict(min_repeats=5, max_repeats=50, time_budget_s=0.2)
            for label, b in bases.items():
                s = late[(label, c)]
                out.append({"model": name, "held": c + len(bases), "input": label,
                            "early_sizes": b, "late_sizes": s,
                            "early_ms": ms(ex.probe(x(b))), "late_ms": ms(ex.probe(x(s))),
                            "control_late_ms": ms(ex.pulse(x(s)))})
    assert all(set(r["late_sizes"]) == set(dims) for r in out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--counts", default="0,50,100,200,300")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]
    rows = [r for run in args.runs for r in late_shapes(run, counts)]
    lines = ["## A shape first seen late in a process, against one seen early (median warm time)\n",
             "| model | shapes held | input | early: sizes, ms | late: sizes, ms | the late one in a young "
             "worker (ms) | late / young |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['held']} | {r['input']} | {json.dumps(r['early_sizes'])}, "
                     f"{r['early_ms']:.2f} | {json.dumps(r['late_sizes'])}, {r['late_ms']:.2f} | "
                     f"{r['control_late_ms']:.2f} | {r['late_ms'] / r['control_late_ms']:.2f} |")
    return finish(lines, rows, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
