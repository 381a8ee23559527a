"""How far costlab's measurement can be trusted: harness overhead, memory accuracy, repeatability.

a. Harness overhead. `costlab.measurement.timing.measure` on a warm ~1 ms call (zoo:mlp at the
   batch where one call takes about 1 ms) against a bare loop over the same call
   (`perf_counter` around each call, GC on, nothing else), alternated 9 times in one
   process; the ratio of medians (goal: ≤ 1.05). Also the same probe measured in an
   isolated worker against in-process.
b. Memory accuracy. zoo:alloc materialises exactly 1024 · seq_len bytes at batch 1 (a
   float32 tensor (1, 256, seq_len)); N = 1 MiB … 1 GiB, at powers of two and between them. For each N, in a fresh worker
   process under a memory cap: costlab's tensor peak (TF allocator statistics) and its
   process peak (VmHWM growth, reset through /proc/self/clear_refs), and, in another fresh
   process, `memory_profiler.memory_usage` around the first call at that size (its
   figure: the largest sampled RSS minus the RSS before; later calls read ~0 because TF's
   allocator keeps freed memory). Goal: costlab within 5% of N for N ≥ 16 MiB.
c. Repeatability. The same probe (zoo:attention, batch 8, seq_len 256) in 5 separate
   worker processes: coefficient of variation of the median time and of the peak.

Every probe that may allocate a lot runs in a child process under an address-space cap
(`resource.setrlimit`) and a timeout.

Run: .venv/bin/python benchmarks/measurement.py [--out benchmarks/results/measurement.md]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MIB = 2**20
# powers of two and sizes between them: TF's allocator rounds a request over 64 MiB up to a
# chunk of the next power of two, so powers of two alone hide it
SIZES_MIB = (1, 4, 16, 24, 48, 64, 73, 100, 256, 385, 700, 1024)
CHILD_CAP = 8 * 2**30  # address space a memory_profiler child may add over its start-up size


# --- a. harness overhead ---------------------------------------------------------------------
def overhead(pairs: int = 9) -> dict:
    from costlab import InputSpace, zoo
    from costlab.adapters import adapt
    from costlab.measurement.timing import measure

    adapter = adapt(zoo.build("mlp"))
    space = InputSpace.from_model(adapter)
    batch, t = 1, 0.0
    while batch < 4096:  # the batch where one warm call takes about 1 ms
        x = space.random_inputs({"batch": batch}, seed=0)
        adapter(x)
        t0 = time.perf_counter()
        for _ in range(20):
            adapter(x)
        t = (time.perf_counter() - t0) / 20
        if t >= 1e-3:
            break
        batch *= 2
    x = space.random_inputs({"batch": batch}, seed=0)

    def bare(n=200):
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            adapter(x)
            samples.append(time.perf_counter() - t0)
        return float(np.median(samples))

    ratios, harness, loop = [], [], []
    for _ in range(pairs):
        b = bare()
        m = measure(lambda: adapter(x), min_repeats=200, max_repeats=200, time_budget_s=60)["wall_s_median"]
        loop.append(b)
        harness.append(m)
        ratios.append(m / b)
    # isolated against in-process, the same probe alternated (the machine's noise drifts)
    from costlab.measurement.executors import InProcess, Subprocess

    kw = dict(min_repeats=200, max_repeats=200, time_budget_s=60)
    iso, inproc = [], []
    with Subprocess(adapter, memory_cap_mib=1024, timeout_s=120, **kw) as sub:
        here = InProcess(adapter, **kw)
        for _ in range(pairs):
            iso.append(sub.probe(x)["wall_s_median"])
            inproc.append(here.probe(x)["wall_s_median"])
    return {"batch": batch, "call_ms": t * 1e3, "pairs": pairs,
            "bare_ms_median": float(np.median(loop)) * 1e3,
            "harness_ms_median": float(np.median(harness)) * 1e3,
            "ratio_median": float(np.median(ratios)), "ratio_max": float(np.max(ratios)),
            "isolated_ms": float(np.median(iso)) * 1e3, "inprocess_ms": float(np.median(inproc)) * 1e3,
            "isolated_ratio_median": float(np.median(np.array(iso) / np.array(inproc)))}


# --- b. memory accuracy ------------------------------------------------------------------
def _cap_child():
    size = 0
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize"):
                size = int(line.split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (size + CHILD_CAP + 4 * 2**30, resource.RLIM_INFINITY))


def mprof_child(mib: int) -> None:
    """In a fresh process: memory_profiler's figure for the first call at N = mib MiB."""
    from memory_profiler import memory_usage

    from costlab.loading import load

    adapter = load("zoo:alloc")
    n = mib * MIB // 1024
    adapter({"values": np.ones((1, 16), "float32")})  # trace and warm at a tiny size
    x = {"values": np.ones((1, n), "float32")}
    gc.collect()
    base = memory_usage(-1, interval=0.01, timeout=0.2, max_usage=True)
    t0 = time.perf_counter()
    peak = memory_usage((adapter, (x,)), interval=0.01, max_usage=True)
    elapsed = time.perf_counter() - t0
    t1 = time.perf_counter()
    adapter(x)
    bare = time.perf_counter() - t1
    print(json.dumps({"mprof_bytes": (peak - base) * MIB, "mprof_s": elapsed, "bare_s": bare}))


def memory(sizes=SIZES_MIB) -> list[dict]:
    from costlab import InputSpace
    from costlab.loading import load
    from costlab.measurement.executors import Subprocess

    adapter = load("zoo:alloc")
    rows = []
    for mib in sizes:
        n = mib * MIB // 1024
        truth = 1024 * n
        space = InputSpace.from_model(adapter, bounds={"batch": (1, 1), "seq_len": (n, n)})
        x = space.random_inputs({"batch": 1, "seq_len": n}, seed=0)
        with Subprocess(adapter, memory_cap_mib=4 * mib + 1024, timeout_s=300, probes_per_worker=1,
                        min_repeats=3, max_repeats=3, time_budget_s=5) as sub:
            r = sub.probe(x)
        child = subprocess.run([sys.executable, __file__, "--mprof-child", str(mib)], capture_output=True,
                               text=True, timeout=600, preexec_fn=_cap_child)
        lines = [ln for ln in child.stdout.splitlines() if ln.startswith("{")]
        mp = json.loads(lines[-1]) if lines else {"mprof_bytes": float("nan"), "mprof_s": float("nan"),
                                                  "bare_s": float("nan")}
        rows.append({"N_mib": mib, "status": r["status"],
                     "tensor_peak_err": r["peak_bytes"] / truth - 1 if r["status"] == "ok" else None,
                     "allocator_peak_err": (r["allocator_peak_bytes"] / truth - 1
                                            if r["status"] == "ok" and r.get("allocator_peak_bytes") else None),
                     "process_peak_err": r["process_delta_bytes"] / truth - 1 if r["status"] == "ok" else None,
                     "mprof_err": mp["mprof_bytes"] / truth - 1,
                     "mprof_call_s": mp["mprof_s"], "bare_call_s": mp["bare_s"]})
        print(f"  N={mib} MiB: {rows[-1]}", file=sys.stderr)
    return rows


# --- c. repeatability ------------------------------------------------------------------------
def repeatability(processes: int = 5) -> dict:
    from costlab import InputSpace
    from costlab.loading import load
    from costlab.measurement.executors import Subprocess

    adapter = load("zoo:attention")
    x = InputSpace.from_model(adapter).random_inputs({"batch": 8, "seq_len": 256}, seed=0)
    with Subprocess(adapter, memory_cap_mib=2048, timeout_s=300, probes_per_worker=1,
                    min_repeats=10, max_repeats=30, time_budget_s=1.0) as sub:
        rows = [sub.probe(x) for _ in range(processes)]
        workers = sub.started
    t = np.array([r["wall_s_median"] for r in rows])
    tmin = np.array([r["wall_s_min"] for r in rows])
    m = np.array([r["peak_bytes"] for r in rows], float)
    p = np.array([r["process_delta_bytes"] for r in rows], float)
    cv = lambda a: float(a.std(ddof=1) / a.mean())  # noqa: E731
    return {"processes": workers, "median_ms": [float(v) * 1e3 for v in t], "time_cv": cv(t),
            "min_ms": [float(v) * 1e3 for v in tmin], "min_cv": cv(tmin),
            "peak_mib": [float(v) / MIB for v in m], "peak_cv": cv(m),
            "process_peak_mib": [float(v) / MIB for v in p], "process_peak_cv": cv(p)}


def report(a: dict, b: list[dict], c: dict, seconds: float) -> str:
    pct = lambda v: "—" if v is None or v != v else f"{v * 100:+.1f}%"  # noqa: E731
    lines = ["# Measurement: harness overhead, memory accuracy, repeatability", "",
             f"`.venv/bin/python benchmarks/measurement.py` on {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, {seconds:.0f} s in all.", "",
             "## a. Harness overhead (goal ≤ 5% at ~1 ms calls)", "",
             f"zoo:mlp at batch {a['batch']} (one call ≈ {a['call_ms']:.2f} ms); {a['pairs']} alternated pairs of "
             "200 calls each.", "",
             "| bare loop median | costlab `measure` median | ratio (median of pairs) | worst pair |",
             "|---|---|---|---|",
             f"| {a['bare_ms_median']:.3f} ms | {a['harness_ms_median']:.3f} ms | {a['ratio_median']:.3f} | "
             f"{a['ratio_max']:.3f} |", "",
             f"The same probe in an isolated worker against in-process, {a['pairs']} alternated pairs: medians "
             f"{a['isolated_ms']:.3f} ms and {a['inprocess_ms']:.3f} ms, median ratio {a['isolated_ratio_median']:.3f}.", "",
             "## b. Memory accuracy against a known allocation (goal within 5% for N ≥ 16 MiB)", "",
             "Relative error against N = 1024 · seq_len bytes (zoo:alloc), each N in fresh processes.", "",
             "costlab's tensor peak (`peak_bytes`) is the peak of the bytes requested from TensorFlow's allocator "
             "(its profiler's `requested_bytes`); the allocator's own peak (`allocator_peak_bytes`) counts the "
             "chunks it handed out.", "",
             "| N | costlab tensor peak (requested) | TF allocator peak | costlab process peak | memory_profiler | "
             "memory_profiler call time vs bare |",
             "|---|---|---|---|---|---|"]
    for r in b:
        slow = r["mprof_call_s"] / r["bare_call_s"] if r["bare_call_s"] == r["bare_call_s"] else float("nan")
        lines.append(f"| {r['N_mib']} MiB | {pct(r['tensor_peak_err'])} | {pct(r.get('allocator_peak_err'))} | "
                     f"{pct(r['process_peak_err'])} | "
                     f"{pct(r['mprof_err'])} | {r['mprof_call_s'] * 1e3:.0f} ms vs {r['bare_call_s'] * 1e3:.0f} ms "
                     f"({slow:.1f}×) |")
    lines += ["", "## c. Repeatability: the same probe in separate processes", "",
              f"zoo:attention at batch 8, seq_len 256, {c['processes']} fresh worker processes.", "",
              "| figure | values | coefficient of variation |", "|---|---|---|",
              f"| median time | {', '.join(f'{v:.2f}' for v in c['median_ms'])} ms | {c['time_cv'] * 100:.1f}% |",
              f"| fastest call | {', '.join(f'{v:.2f}' for v in c['min_ms'])} ms | {c['min_cv'] * 100:.1f}% |",
              f"| tensor peak | {', '.join(f'{v:.2f}' for v in c['peak_mib'])} MiB | {c['peak_cv'] * 100:.2f}% |",
              f"| process peak | {', '.join(f'{v:.1f}' for v in c['process_peak_mib'])} MiB | "
              f"{c['process_peak_cv'] * 100:.1f}% |", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "measurement.md"))
    p.add_argument("--mprof-child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--sizes", default=",".join(map(str, SIZES_MIB)), help="N in MiB, comma-separated")
    args = p.parse_args(argv)
    if args.mprof_child:
        mprof_child(args.mprof_child)
        return 0
    t0 = time.time()
    print("a. overhead", file=sys.stderr)
    a = overhead()
    print(f"  {a}", file=sys.stderr)
    print("b. memory", file=sys.stderr)
    b = memory(tuple(int(s) for s in args.sizes.split(",")))
    print("c. repeatability", file=sys.stderr)
    c = repeatability()
    print(f"  {c}", file=sys.stderr)
    text = report(a, b, c, time.time() - t0)
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(json.dumps({"overhead": a, "memory": b, "repeatability": c},
                                                              indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
