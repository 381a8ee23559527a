"""What the guard costs per request: `Guard.check` latency against the 20 µs goal.

The policy is the one `make demo`-style runs write for zoo:attention (data/sample_run's,
rebuilt by data/regenerate.py): token ids `(batch, seq_len)` int32 with a joint budget.
Cases, each `--calls` checks in `--rounds` interleaved rounds (1000 warm-up checks before
each round), timed one call at a time with `perf_counter_ns` in this process (no model
runs, no TF import):

- typical:   the smallest batch the policy admits of 128-token sequences (the common request);
- at limits: the largest admitted input (worst_admitted sizes);
- rejected:  a sequence over the limit (rejected from its shape alone, before any value is read);
- malformed: a ragged nested list;
- json list: the typical request as nested Python lists (what a JSON body decodes to);
- padded:    the typical request padded to the policy's shape buckets (`pad=True`);
- reference: one `ndarray.max()` over the typical array and nothing else — the jitter of
  the machine itself at this time scale (a shared VM's p99 is several times its median).

Reports median, p99 and max per case; the goal (issue 6) is p99 ≤ 20 µs for numpy inputs
inside the policy. Machines are shared: compare the cases with each other in one run.

Run: .venv/bin/python benchmarks/guard.py [--out benchmarks/results/guard.md]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from _output import emit  # benchmarks/_output.py: run as a script, its folder is on the path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from costlab import Guard, InputRejected, Policy  # noqa: E402


def _time(fn, arg, calls: int) -> np.ndarray:
    for _ in range(1000):
        fn(arg)
    out = np.empty(calls)
    perf = time.perf_counter_ns
    gc.disable()
    try:
        for i in range(calls):
            t0 = perf()
            fn(arg)
            out[i] = perf() - t0
    finally:
        gc.enable()
    return out / 1e3  # µs


def _rejecting(guard):
    def f(x):
        try:
            guard.check(x)
        except InputRejected:
            return
        raise AssertionError("expected a rejection")
    return f


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default=str(ROOT / "data" / "sample_run" / "policy.json"))
    ap.add_argument("--calls", type=int, default=20000, help="timed checks per case, over all rounds")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds over the cases")
    ap.add_argument("--out", default=None, help="write the table as markdown here")
    args = ap.parse_args(argv)
    policy = Policy.from_json(args.policy)
    name = next(iter(policy.data["inputs"]))
    lim = policy.limits
    worst = (policy.data.get("worst_admitted") or {}).get("sizes") or {d: v["max"] for d, v in lim.items()}
    guard = Guard(policy, max_distinct=0)
    rng = np.random.default_rng(0)
    hi_id = policy.data["inputs"][name]["values"]["max"]
    typical_len = int(min(max(128, lim["seq_len"]["min"]), lim["seq_len"]["max"]))
    b0 = lim["batch"]["min"]
    typical = rng.integers(0, hi_id + 1, (b0, typical_len)).astype("int32")
    at_limits = rng.integers(0, hi_id + 1, (worst["batch"], worst["seq_len"])).astype("int32")
    over = np.zeros((b0, lim["seq_len"]["max"] + 1), "int32")
    cases = [("typical", guard.check, typical), ("at limits", guard.check, at_limits),
             ("rejected (too long)", _rejecting(guard), over),
             ("malformed (ragged)", _rejecting(guard), [[1, 2, 3], [4]]),
             ("json list (typical)", guard.check, typical.tolist())]
    # The machine's own jitter, for scale: one numpy reduction over the typical array.
    cases.append(("reference: ndarray.max alone", lambda a: a.max(), typical))
    if (policy.data.get("shapes") or {}).get("buckets"):
        cases.append(("padded to buckets", Guard(policy, pad=True, max_distinct=0).check, typical[:, :typical_len - 3]))
    # Interleaved rounds, so every case sees the same minutes of a shared machine (its speed
    # drifts by 2× between minutes); each case's figures pool its rounds.
    per_round = max(1, args.calls // args.rounds)
    timed: dict[str, list] = {label: [] for label, _, _ in cases}
    for _ in range(args.rounds):
        for label, fn, arg in cases:
            timed[label].append(_time(fn, arg, per_round))
    rows = []
    for label, _fn, arg in cases:
        us = np.concatenate(timed[label])
        shape = list(np.shape(arg)) if not isinstance(arg, list) or label.startswith("json") else "ragged"
        rows.append({"case": label, "shape": shape, "median_us": float(np.median(us)),
                     "p90_us": float(np.percentile(us, 90)), "p99_us": float(np.percentile(us, 99)),
                     "max_us": float(us.max())})
    shown = os.path.relpath(args.policy, ROOT) if Path(args.policy).resolve().is_relative_to(ROOT) else args.policy
    head = (f"## Guard.check latency ({per_round * args.rounds} calls per case in {args.rounds} interleaved rounds, policy {shown}"
            f" for model {policy.data['model']['name']}, {platform.processor() or platform.machine()}, "
            f"Python {platform.python_version()}, numpy {np.__version__})\n\n"
            "| case | input shape | median µs | p90 µs | p99 µs | max µs |\n|---|---|---|---|---|---|\n")
    table = head + "".join(f"| {r['case']} | {r['shape']} | {r['median_us']:.1f} | {r['p90_us']:.1f} | {r['p99_us']:.1f} | "
                           f"{r['max_us']:.0f} |\n" for r in rows)
    inside = [r for r in rows if r["case"] in ("typical", "at limits")]
    verdict = max(r["p99_us"] for r in inside)
    table += f"\nGoal p99 ≤ 20 µs for numpy inputs inside the policy: worst p99 {verdict:.1f} µs — " \
             f"{'met' if verdict <= 20 else 'NOT met'}.\n"
    emit(table, rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
