"""Do the zoo models' fitted classes match their architecture? Profiles repeated on this machine.

Each zoo model is profiled `--reps` times at the small sizes the tests use
(tests/test_pipeline.py's ARCHITECTURE: attention batch 2-16 × seq_len 64-1024, recurrent
16-512 × 16-128, conv 1-16 × 16-128², mlp batch 512-16384; 5 log-spaced points per axis,
the joint corners, 3 Hypothesis examples, 3-10 repeats within 0.15 s per probe, in this
process) and every target is fitted with `costlab.fit_profile` as `costlab run` does.
Per model and target it counts the profiles whose reported class is exactly the
architecture's (attention `batch · seq_len²`, recurrent `batch · seq_len`, conv
`batch · height · width`, mlp `batch`), whose powers match it (a log factor more or less),
and whose class differs but lists the architecture's in `ambiguous_` (not ruled out; the
bound covers it); the rest are misses (neither). Wall times are classed on the calls' median
CPU time (`fit`'s `IDENTIFY`); the same fits with the fastest wall time, and with the
median wall time itself, choosing are shown for contrast.

`--busy N` runs N busy loops (`while True: pass`, one process each) beside the profiles: a
loaded machine, as CI runners and shared hosts are.

`--save DIR` keeps each profile's table (`DIR/<model>_<rep>.csv`); `--load DIR` fits those
tables again instead of profiling, so two versions of the fitter can be compared on the
same measurements (this machine's timing noise otherwise differs more between runs than
fitters do).

Run: .venv/bin/python benchmarks/zoo_classes.py [--reps 5] [--out benchmarks/results/zoo_classes.md]
     [--busy N] [--save DIR | --load DIR]
Takes about 20 s per profile on a 2-core machine (4 models × 5 reps: ~7 minutes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import costlab  # noqa: E402
from costlab import InputSpace, zoo  # noqa: E402
from costlab.curves import term_name  # noqa: E402

MODELS = {
    "attention": (dict(batch=(2, 16), seq_len=(64, 1024)), {"batch": 1, "seq_len": 2}),
    "recurrent": (dict(batch=(16, 512), seq_len=(16, 128)), {"batch": 1, "seq_len": 1}),
    "conv": (dict(batch=(1, 16), height=(16, 128), width=(16, 128)), {"batch": 1, "height": 1, "width": 1}),
    "mlp": (dict(batch=(512, 16384)), {"batch": 1}),
}
QUICK = dict(points=5, examples=3, min_repeats=3, max_repeats=10, probe_time_s=0.15, progress=False)
TARGETS = ("wall_s_median", "wall_s_p95", "peak_bytes")


def verdict(m, arch: dict) -> str:
    label = f"O({term_name({d: (p, 0) for d, p in arch.items()})})"
    if m.complexity_ == label:
        return "exact"
    if {d: e["power"] for d, e in m.exponents_.items()} == arch:
        return "powers"
    return "listed" if label in m.ambiguous_ else "miss"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--out", default=None)
    ap.add_argument("--save", default=None, help="keep each profile's table in this directory")
    ap.add_argument("--load", default=None, help="fit the tables --save kept instead of profiling")
    ap.add_argument("--busy", type=int, default=0, help="busy loops running beside the profiles (default 0)")
    args = ap.parse_args(argv)
    if args.save:
        Path(args.save).mkdir(parents=True, exist_ok=True)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        return _run(args)
    finally:
        for p in busy:
            p.kill()


def _run(args) -> int:
    warnings.simplefilter("ignore")
    counts: dict = {}
    seen: dict = {}
    t0 = time.time()
    for name in args.models.split(","):
        bounds, arch = MODELS[name]
        if not args.load:
            model = zoo.build(name)
            space = InputSpace.from_model(model).with_bounds(**bounds)
        for rep in range(args.reps):
            if args.load:
                path = Path(args.load) / f"{name}_{rep}.csv"
                if not path.exists():
                    break
                prof = SimpleNamespace(table=pd.read_csv(path), dims=list(bounds))
            else:
                prof = costlab.profile(model, space, seed=rep, **QUICK)
                if args.save:
                    prof.table.to_csv(Path(args.save) / f"{name}_{rep}.csv", index=False)
            fits = {"": costlab.fit_profile(prof, TARGETS)}
            if "cpu_s_median" in prof.table:
                fits[" (fastest wall time chooses)"] = {
                    "wall_s_median": costlab.fit(prof.table, "wall_s_median", dims=prof.dims, identify_by="wall_s_min")}
            fits[" (median chooses)"] = {t: costlab.fit(prof.table, t, dims=prof.dims, identify_by=False)
                                         for t in ("wall_s_median",)}
            for how, models in fits.items():
                for t, m in models.items():
                    v = verdict(m, arch)
                    key = (name, t + how)
                    counts.setdefault(key, {"exact": 0, "powers": 0, "listed": 0, "miss": 0})[v] += 1
                    seen.setdefault(key, []).append(m.complexity_)
            print(f"{name} rep {rep}: " + ", ".join(f"{t}: {m.complexity_}" for t, m in fits[""].items()), flush=True)
    how = f"loaded from {args.load}" if args.load else f"{args.busy} busy loops beside them" if args.busy else "unloaded"
    lines = [f"## Zoo classes against the architecture ({args.reps} profiles per model, {how}, "
             f"{time.time() - t0:.0f} s)\n",
             "| model | target | exact | powers match (log differs) | listed in `ambiguous_` | miss | classes read |",
             "|---|---|---|---|---|---|---|"]
    for (name, t), c in counts.items():
        read = ", ".join(f"{k} ×{v}" for k, v in sorted(
            {x: seen[(name, t)].count(x) for x in set(seen[(name, t)])}.items(), key=lambda kv: -kv[1]))
        lines.append(f"| {name} | {t} | {c['exact']} | {c['powers']} | {c['listed']} | {c['miss']} | {read} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
