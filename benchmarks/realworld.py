"""costlab on real architectures it was never tuned to (`benchmarks/realmodels.py`).

For each model: `costlab run` and `costlab verify` (the real commands, in subprocesses),
then an independent check of every validity limit the run found: an exhaustive scan of
the sizes around it, each judged in a freshly started worker (the other dimensions at the
run's smallest valid corner), against the model's configuration where it has one
(`realmodels.TRUTH`). Writes `benchmarks/results/realworld.md` and `.json`.

Run (from the repository root; not part of `make test`):

    .venv/bin/python benchmarks/realworld.py --models mobilenet_v3_small,bert_tiny
    .venv/bin/python benchmarks/realworld.py --from-runs runs/realworld   # reuse run directories
    .venv/bin/python benchmarks/realworld.py --report   # rewrite the table from the stored results
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: (budgets, extra flags) per model: the budgets the issue tried them at.
#: The heavier image models declare batch 1..16 (their 64-image calls take seconds).
IMAGE = ["--latency-ms", "100", "--memory-mib", "256"]
TEXT = ["--latency-ms", "50", "--memory-mib", "128"]
MODELS = {
    "mobilenet_v3_small": (IMAGE, []),
    "mobilenet_v2": (IMAGE, []),
    "efficientnet_b0": (IMAGE, ["--dim", "batch=1:16"]),
    "resnet50": (IMAGE, ["--dim", "batch=1:16"]),
    "densenet121": (IMAGE, ["--dim", "batch=1:16"]),
    "bert_tiny": (TEXT, []),
    "gpt2_tiny": (TEXT, []),
    "distilbert_tiny": (TEXT, []),
    "roberta_tiny": (TEXT, []),
    "text_lstm": (TEXT, []),
}
#: Sizes scanned on each side of a validity limit, each in a fresh worker.
SCAN = 3


def _costlab(*args, timeout=7200) -> tuple[int, str, float]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "costlab.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)
    return proc.returncode, proc.stdout + proc.stderr, time.time() - t0


def scan(name: str, run_dir: Path) -> dict:
    """Each validity limit of the run, against fresh-process verdicts around it."""
    from costlab.loading import load
    from costlab.policy import Policy
    from costlab.profiling.validity import Judge

    validity = json.loads((run_dir / "validity.json").read_text())
    policy = Policy.from_json(run_dir / "policy.json")
    adapter = load(f"benchmarks.realmodels:{name}")
    space = policy.space
    base = dict(validity.get("floor") or {d: lim["min"] for d, lim in policy.limits.items()})
    out = {}
    judge = Judge(adapter, space.with_bounds(**{d: (1, max(lim["max"], 4096)) for d, lim in policy.limits.items()}),
                  values="random", seed=0, memory_cap_mib=4096, timeout_s=300, env=None)
    try:
        for d, lim in validity["limits"].items():
            rows = []
            for side in ("min", "max"):
                if lim.get(side) is None:
                    continue
                edge = lim[side]
                for size in range(max(1, edge - SCAN), edge + SCAN + 1):
                    ok, err = judge({**base, d: size}, where=("fresh",))
                    rows.append({"side": side, "size": size, "valid": ok, "error": err[:160]})
            valid = [r["size"] for r in rows if r["valid"]]
            out[d] = {"found": {"min": lim.get("min"), "max": lim.get("max")}, "scan": rows,
                      "scan_min": min((r["size"] for r in rows if r["side"] == "min" and r["valid"]), default=None),
                      "scan_max": max((r["size"] for r in rows if r["side"] == "max" and r["valid"]), default=None),
                      "valid": valid}
    finally:
        judge.close()
    return out


def _figures(name: str, run_dir: Path, run_log: str, verify_log: str) -> dict:
    policy = json.loads((run_dir / "policy.json").read_text())
    tight = {}
    tpath = run_dir.parent / f"{name}_verify" / "tightness.csv"
    if tpath.is_file():
        import pandas as pd

        t = pd.read_csv(tpath)
        tight = {str(r["limit"]): {"value": int(r["value"]), "boundary": int(r["boundary"]), "exact": bool(r["exact"]),
                                   "tightness": float(r["tightness"]),
                                   "limited_by": str(r.get("limited_by", ""))} for _, r in t.iterrows()}
    violations = re.search(r"(\d+) violation\(s\)", verify_log)
    return {"limits": {d: {k: lim[k] for k in ("min", "max", "limited_by")} for d, lim in policy["limits"].items()},
            "joint": [{k: j[k] for k in ("name", "max", "offsets")} for j in policy.get("joint") or []],
            "complexity": policy.get("complexity"), "violations": int(violations.group(1)) if violations else None,
            "over_bound": "BOUND EXCEEDED" in verify_log, "tightness": tight,
            "fresh_corners_ran": "the model ran every one" in verify_log}


def _tight(name: str, v: dict) -> str:
    """A limit's tightness; a limit at the measured range shows where its budget's boundary lies."""
    if v.get("limited_by") == "measured range":
        beyond = "≥ " if not v["exact"] else ""
        return (f"{name} at the range {v['value']}, boundary {beyond}{v['boundary']}" if v["boundary"] > v["value"]
                else f"{name} at the range {v['value']}, boundary {v['boundary']} ({v['tightness']:.2f})")
    return f"{name} {v['tightness']:.2f}"


def report(results: dict) -> str:
    from realmodels import TRUTH

    lines = ["# Real models: costlab on architectures it was never tuned to", "",
             f"`.venv/bin/python benchmarks/realworld.py` on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}. "
             "Models are built in code with random weights (`benchmarks/realmodels.py`); each ran "
             "`costlab run` (default settings) then `costlab verify --probes 60`.", "",
             "| model | run | exit | verify violations (errors counted) | validity limits found | scan in fresh "
             "processes | truth | limits (limited by) | tightness |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results.values():  # rows stored before tightness carried `limited_by`: the policy's
        f = r["figures"]
        for k, v in f["tightness"].items():
            v.setdefault("limited_by", f["limits"][k]["limited_by"] if k in f["limits"] else "joint budget")
    for name, r in results.items():
        f = r["figures"]
        found = "; ".join(f"{d} {v['found']['min'] or ''}..{v['found']['max'] or ''}" for d, v in r["scan"].items()) or "none"
        scanned = "; ".join(f"{d} {v['scan_min'] or ''}..{v['scan_max'] or ''}" for d, v in r["scan"].items()) or "—"
        truth = "; ".join(f"{d} ..{t.get('max', '')}" for d, t in TRUTH.get(name, {}).items()) or "the scan"
        lims = ", ".join(f"{d} {v['min']}..{v['max']} ({v['limited_by']})" for d, v in f["limits"].items())
        tight = ", ".join(_tight(k, v) for k, v in f["tightness"].items()) or "—"
        lines.append(f"| {name} | {r['run_s'] / 60:.1f} min | {r['run_rc']} | {f['violations']} | {found} | {scanned} | "
                     f"{truth} | {lims} | {tight} |")
    import realmodels

    lines += ["", "Models and configurations (`benchmarks/realmodels.py`; budgets and flags of `costlab run`):", ""]
    for name, r in results.items():
        budgets, extra = MODELS.get(name, ([], []))
        doc = (getattr(realmodels, name).__doc__ or "").strip().splitlines()[0]
        lines.append(f"- {name}: {doc} `{' '.join(budgets + extra)}` (commit {r.get('commit', 'before 2026-12-07')})")
    lines += ["", "Classes found against the architecture's (`realmodels.ARCH`, from its arithmetic: the classes "
              "of the terms of its cost over the sizes the model takes, in costlab's notation: a class gives each "
              "dimension's growth, so b·words + b·bytes is O(batch · words · bytes); a class matches when it is "
              "one of them):",
              "", "| model | wall time found | architecture | peak memory found | architecture | match |",
              "|---|---|---|---|---|---|"]
    for name, r in results.items():
        c = r["figures"]["complexity"] or {}
        wall, mem = realmodels.ARCH.get(name, ((), ()))
        got = (c.get("wall_s_median"), c.get("peak_bytes"))
        ok = got[0] in wall and got[1] in mem
        why = realmodels.WHY.get(name, "")
        match = "yes" if ok else "**no**" + (f": {why}" if why else "")
        lines.append(f"| {name} | {got[0]} | {' + '.join(wall)} | {got[1]} | {' + '.join(mem)} | {match} |")
    lines += ["", "Against the issue's bar (computed from the rows above): a run with a policy (exit 0 or 3), 0 "
              "violations, each validity limit equal to the fresh-process scan and the configuration, and each "
              "limit set by a budget or a joint budget sound (tightness ≤ 1.00) and tight (≥ 0.85); a limit at "
              "the measured range passes when its budget's boundary was measured beyond it.", "",
              "| model | policy | violations | validity | sound | tight | failing limits |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(_bar(name, r, TRUTH.get(name, {})))
    lines.append("")
    return "\n".join(lines)


def _bar(name: str, r: dict, truth: dict) -> str:
    f = r["figures"]
    valid = all(v["found"]["min"] == v["scan_min"] and v["found"]["max"] == v["scan_max"]
                and truth.get(d, {}).get("max", v["found"]["max"]) == v["found"]["max"] for d, v in r["scan"].items())
    valid = valid and all(d in r["scan"] for d, t in truth.items() if t)
    failing = []
    for k, v in f["tightness"].items():
        if v.get("limited_by") == "measured range":
            if v["boundary"] <= v["value"]:
                failing.append(f"{k}: boundary {v['boundary']} not beyond the range {v['value']}")
        elif v["tightness"] > 1.0 or v["tightness"] < 0.85:
            failing.append(f"{k} {v['tightness']:.2f}")
    ranged = [k for k, v in f["limits"].items() if v["limited_by"] == "measured range" and k not in f["tightness"]]
    failing += [f"{k}: at the measured range, not measured past it" for k in ranged]
    sound = all(v["tightness"] <= 1.0 for v in f["tightness"].values() if v.get("limited_by") != "measured range")
    tight = all(v["tightness"] >= 0.85 for v in f["tightness"].values() if v.get("limited_by") != "measured range")
    yes = {True: "yes", False: "**no**"}
    return (f"| {name} | {yes[r['run_rc'] in (0, 3)]} | {f['violations']} | {yes[valid]} | {yes[sound]} | "
            f"{yes[tight]} | {'; '.join(failing) or '—'} |")


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--runs", default=str(ROOT / "runs" / "realworld"), help="where the run directories go")
    p.add_argument("--from-runs", action="store_true", help="reuse the run and verify directories under --runs")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "realworld.md"))
    p.add_argument("--report", action="store_true", help="only rewrite the table from the stored results")
    args = p.parse_args(argv)
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    stored = Path(args.out).with_suffix(".json")
    results = json.loads(stored.read_text()) if stored.is_file() else {}  # other models' rows are kept
    for name in [] if args.report else args.models.split(","):
        budgets, extra = MODELS[name]
        run_dir, verify_dir = runs / name, runs / f"{name}_verify"
        if args.from_runs:
            meta = json.loads((runs / f"{name}.json").read_text())
            rc, run_log, run_s, verify_log = meta["run_rc"], meta["run_log"], meta["run_s"], meta["verify_log"]
        else:
            rc, run_log, run_s = _costlab("run", f"benchmarks.realmodels:{name}", *budgets, *extra, "--out", run_dir)
            _, verify_log, _ = _costlab("verify", f"benchmarks.realmodels:{name}", run_dir / "policy.json",
                                        "--probes", "60", "--out", verify_dir)
            (runs / f"{name}.json").write_text(json.dumps({"run_rc": rc, "run_s": run_s, "run_log": run_log,
                                                           "verify_log": verify_log}))
        print(f"{name}: run exit {rc} in {run_s:.0f} s", file=sys.stderr)
        results[name] = {"run_rc": rc, "run_s": run_s, "scan": scan(name, run_dir),
                         "figures": _figures(name, run_dir, run_log, verify_log),
                         "date": time.strftime("%Y-%m-%d %H:%M"), "commit": _commit()}
        stored.write_text(json.dumps(results, indent=2, default=str) + "\n")  # each model as it finishes
    sys.path.insert(0, str(Path(__file__).parent))
    text = report(results)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
