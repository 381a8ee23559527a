"""Time to a policy: `quick`, `standard` and a full grid, side by side (issue 29).

For each model and each way of getting a policy, the benchmark reports:
- the wall time from the command to a written policy (the median of `--repeats` runs);
- the model calls, every one counted (warm-ups, pulses, validity checks, churn, throughput
  and drift included);
- then `costlab verify` on the first run's policy: violations and tightness.

The three ways:
- `quick` and `standard`: `costlab run MODEL --preset P` in a subprocess.
- `grid`: a perfplot-style full factorial, `--grid-points` log-spaced sizes per dimension
  (default 7), 2 rounds. Each size is measured with the `standard` preset's repeats in
  isolated workers, fitted by the same `CostModel` (`costlab.fit_profile`), and synthesized
  by the same `costlab.synthesize`. It also runs in a subprocess, so TensorFlow's start-up
  counts on every side.

Calls are counted by the model itself. Each model here is a factory in this module
(`benchmarks.time_to_policy:attention`, ...) that builds the model and wraps its
`predict_on_batch`, the call path costlab uses. The wrapper appends one byte per call to
the file named by `COSTLAB_BENCH_CALLS` (O_APPEND, so it stays one write per call across
processes). The workers load the same factory, so their calls count too.

Models: `mlp` (1 free dimension), `attention` (2), `conv` (3) and `multimodal` (4: a tied
batch, seq_len, height and width); from the real-model corpus, `mobilenet_v3_small` (an
image model) and `bert_tiny` (a keras_hub text backbone).

Run: .venv/bin/python benchmarks/time_to_policy.py [--models mlp,attention,conv,multimodal,mobilenet_v3_small,bert_tiny]
     [--modes quick,standard,grid] [--repeats 3] [--grid-points 7] [--out benchmarks/results/time_to_policy.md]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: Budgets per model (latency ms, memory MiB): those of benchmarks/policies.py and realworld.py.
BUDGETS = {"mlp": (5, 16), "attention": (20, 64), "conv": (20, 64), "multimodal": (20, 64),
           "mobilenet_v3_small": (100, 256), "bert_tiny": (50, 128)}
FREE_DIMS = {"mlp": 1, "attention": 2, "conv": 3, "multimodal": 4, "mobilenet_v3_small": 3, "bert_tiny": 2}


# --- the counted models (imported by costlab's workers too) -------------------------------
def _counted(model):
    path = os.environ.get("COSTLAB_BENCH_CALLS")
    if not path:
        return model
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    inner = model.predict_on_batch

    def predict_on_batch(*args, **kwargs):
        os.write(fd, b".")
        return inner(*args, **kwargs)

    model.predict_on_batch = predict_on_batch
    return model


def _zoo(name):
    from costlab import zoo

    return _counted(zoo.build(name))


def mlp():
    return _zoo("mlp")


def attention():
    return _zoo("attention")


def conv():
    return _zoo("conv")


def multimodal():
    return _zoo("multimodal")


def mobilenet_v3_small():
    sys.path.insert(0, str(ROOT))
    from benchmarks import realmodels

    return _counted(realmodels.mobilenet_v3_small())


def bert_tiny():
    sys.path.insert(0, str(ROOT))
    from benchmarks import realmodels

    return _counted(realmodels.bert_tiny())


# --- the grid ------------------------------------------------------------------------
def grid(name: str, out: Path, points: int) -> None:
    """Measure the full factorial grid of `name` in isolated workers and write its policy."""
    import itertools

    import costlab
    from costlab import _env
    from costlab.loading import load
    from costlab.pipeline.settings import RunSettings
    from costlab.profiling.plan import log_points
    from costlab.profiling.session import Profile, session

    _env.set_tf_defaults()
    s = RunSettings.preset("standard")
    adapter = load(f"benchmarks.time_to_policy:{name}")
    space = costlab.InputSpace.from_model(adapter)
    axes = [log_points(d.min, d.max, points) for d in space.dims]
    sizes = [dict(zip(space.dim_names, combo, strict=True)) for combo in itertools.product(*axes)]
    out.mkdir(parents=True, exist_ok=True)
    with session(adapter, space, plan=f"grid-{name}-{points}", total=2 * len(sizes), isolation="subprocess",
                 min_repeats=s.min_repeats, max_repeats=s.max_repeats, probe_time_s=s.probe_time_s,
                 log_path=out / "probes.jsonl", progress=False) as prober:
        for rnd in range(2):
            for i, sz in enumerate(sizes if rnd == 0 else sizes[::-1]):
                prober.run(sz, lambda sz=sz, i=i: prober.inputs(sz, i), "grid", rnd, i, f"grid/{rnd}/{i}")
        describe = getattr(prober.executor, "describe", None) or adapter.describe()
    prof = Profile(prober.table(), space, describe, _env.machine())
    prof.save(out)
    models = costlab.fit_profile(prof)
    lat, mem = BUDGETS[name]
    pol = costlab.synthesize(models, {"latency_ms": lat, "memory_mib": mem}, space=space, model=prof.model,
                             measured_on=prof.machine, calibration=prof.calibration())
    (out / "cost_models.json").write_text(json.dumps({t: m.to_dict() for t, m in models.items()}, indent=2) + "\n")
    pol.to_json(out / "policy.json")


# --- the benchmark -------------------------------------------------------------------
def _once(name: str, mode: str, out: Path, points: int) -> dict:
    calls = out.with_suffix(".calls")
    calls.unlink(missing_ok=True)
    env = {**os.environ, "COSTLAB_BENCH_CALLS": str(calls), "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    lat, mem = BUDGETS[name]
    if mode == "grid":
        cmd = [sys.executable, str(Path(__file__).resolve()), "--grid-one", name, "--out-dir", str(out),
               "--grid-points", str(points)]
    else:
        cmd = [str(BIN / "costlab"), "run", f"benchmarks.time_to_policy:{name}", "--latency-ms", str(lat),
               "--memory-mib", str(mem), "--preset", mode, "--out", str(out)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - t0
    ok = (out / "policy.json").is_file() and r.returncode in (0, 3)
    if not ok:
        print(r.stdout[-2000:], r.stderr[-3000:], file=sys.stderr)
    timings = json.loads((out / "timings.json").read_text()) if (out / "timings.json").is_file() else None
    return {"wall_s": wall, "calls": calls.stat().st_size if calls.exists() else 0, "exit": r.returncode,
            "ok": ok, "timings": timings}


def _verify(name: str, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    v = subprocess.run([str(BIN / "costlab"), "verify", f"benchmarks.time_to_policy:{name}", str(out / "policy.json"),
                        "--out", str(out / "verify")], capture_output=True, text=True, cwd=ROOT, env=env)
    table = list(csv.DictReader((out / "verify" / "verify.csv").open())) if (out / "verify" / "verify.csv").is_file() else []
    tp = out / "verify" / "tightness.csv"
    tight = list(csv.DictReader(tp.open())) if tp.exists() else []
    return {"exit": v.returncode, "probes": len(table), "violations": sum(1 for t in table if t["violation"]),
            "tightness": {t["limit"]: t.get("tightness") for t in tight}}


def _limits(policy: dict) -> str:
    from costlab.policy import joint_expression

    limits = ", ".join(f"{d} ≤ {lim['max']} ({lim['limited_by']})" for d, lim in policy["limits"].items())
    return limits + "".join(f", {joint_expression(j)} ≤ {j['max']}" for j in policy.get("joint", []))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mlp,attention,conv,multimodal,mobilenet_v3_small,bert_tiny")
    ap.add_argument("--modes", default="quick,standard,grid")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--grid-points", type=int, default=7)
    ap.add_argument("--out", default=None)
    ap.add_argument("--keep", default=None, help="keep the run directories here")
    ap.add_argument("--grid-one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.grid_one:
        grid(args.grid_one, Path(args.out_dir), args.grid_points)
        return 0
    sys.path.insert(0, str(ROOT))
    from benchmarks._output import finish

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="costlab-ttp-"))
    base.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.models.split(","):
        for mode in args.modes.split(","):
            runs = [_once(name, mode, base / f"{name}-{mode}-{i}", args.grid_points) for i in range(args.repeats)]
            first = base / f"{name}-{mode}-0"
            row = {"model": name, "dims": FREE_DIMS[name], "mode": mode, "runs": runs,
                   "wall_s": statistics.median(r["wall_s"] for r in runs),
                   "calls": statistics.median(r["calls"] for r in runs), "ok": all(r["ok"] for r in runs)}
            if runs[0]["ok"]:
                row["policy"] = _limits(json.loads((first / "policy.json").read_text()))
                row["verify"] = _verify(name, first)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "runs"}), flush=True)
    lines = [f"## Time to a policy ({args.repeats} runs each; median wall time from the command to a written policy)\n",
             "| model | free dims | way | wall s (median) | model calls (median) | verify violations / probes | tightness (each limit) | policy |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        v = r.get("verify") or {}
        tight = ", ".join(f"{k} {float(t):.2f}" for k, t in (v.get("tightness") or {}).items() if t) or "–"
        lines.append(f"| {r['model']} | {r['dims']} | {r['mode']} | {r['wall_s']:.0f} | {r['calls']:.0f} | "
                     f"{v.get('violations', '–')} / {v.get('probes', '–')} | {tight} | {r.get('policy', 'failed')} |")
    lines += ["", "Where the time went (the first run's `timings.json`, seconds per stage):", ""]
    for r in rows:
        t = r["runs"][0].get("timings")
        if t:
            lines.append(f"- {r['model']} {r['mode']}: {t['total_s']:.0f} s in `costlab.run`: "
                         + ", ".join(f"{k} {v:.1f}" for k, v in sorted(t["stages"].items(), key=lambda kv: -kv[1])))
    return finish(lines, rows, args.out)


if __name__ == "__main__":
    sys.exit(main())
