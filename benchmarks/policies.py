"""Do the policies hold, and how tight are they? `costlab run` then `costlab verify` per zoo model.

For each model: `costlab run zoo:NAME` with the budgets below (the demo's settings
otherwise: isolated workers, two rounds, boundary refinement, churn, a 3 s concurrent run),
then `costlab verify` with 200 probes in isolated workers (worst admitted input, each axis
at its maximum, the admitted region's frontier, Hypothesis draws) and the tightness
bisection. Reported per model: the share of the profiled space (log-size measure) the
per-axis box, the policy with plain-product joint budgets (the same cost models
synthesised again with `joint_offsets=False`) and the policy admit; probes, violations,
the most expensive measured probe against its budget, and per limit its tightness
(limit / measured boundary at margin × budget, each search step measured 5 times and
within only when all 5 are; `≥` marks a boundary the search did not bracket within 4×
the limit, so the tightness is at most the figure shown). Goal (issue 6): 0 violations over ≥ 200
probes, every limit ≥ 0.85 of its true boundary.

The machine's speed: `costlab run` measures a reference input every third probe
(`costlab.profiling.speed`), fits times at the run's median speed and plans the limits for the 95th
percentile of the speed index (`machine_speed.factor`); verify measures the same input and
reads every boundary probe's latency at that planned speed. Reported per model: the
index's spread over the run (p5, p95, max), the factor planned for, and the index during
verify (median, max, relative to the run's median). With `--raw`, each policy is verified
a second time with `--pulse 0` (raw latencies, as before the speed index): the tightness
against a boundary measured in whatever stretch of the host verify ran in, for comparison.

Each run starts with the value scan (`costlab.profiling.values.scan`): the "values measured" column
says which value pattern every size was measured with and what it cost against random
values. `zoo:sponge` loops once per repeat of each row's first token, so a constant row
costs seq_len passes where random ids cost about one. `--contrast sponge` (the default)
also runs it with `--values random` (sizes measured with random values only, as before
the scan) and verifies that policy the same way, without the tightness search: the
violations a policy from random values lets through.

Everything runs through the CLI, in subprocesses, with a memory cap on every probe.
Takes about 4 minutes per model on a 2-core machine (5 with `--raw`).

Run: .venv/bin/python benchmarks/policies.py [--models attention,recurrent,conv,mlp,masked,sponge]
     [--contrast sponge] [--raw]
     [--out benchmarks/results/policies.md]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from costlab.policy import joint_expression
from costlab.runtime.drift import THRESHOLD, check_medians

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: Budgets per model: tight enough that latency or memory binds inside the measured range.
BUDGETS = {"attention": ("20", "64"), "recurrent": ("20", "64"), "conv": ("20", "64"), "mlp": ("5", "16"),
           "masked": ("20", "64"), "sponge": ("20", "64")}


def _index(drift: dict) -> str:
    return f"{drift['index']:.2f}" if drift.get("index") else "–"


def _higher(drift: dict) -> str:
    # the counts `costlab run` read the drift at first and did not keep (`--drift-share`)
    return "".join(f" ({h['shapes']} read first: {h['planned_ms']:.2f} ms, {h['why']})"
                   for h in drift.get("higher") or [])


def _filled(tight: dict) -> str:
    # shapes each boundary-search worker took before measuring (a drift-planned policy)
    n = int(tight.get("filled") or 0)
    return f"{n} shapes" if n else "–"


def _run(args) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "costlab"), *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def _plain_share(name: str, out: Path) -> float:
    """The share of the space the run's policy would admit with plain-product joint budgets:
    the same cost models, budgets, machine speed and asked space (the model's own, as
    `costlab run zoo:NAME` takes it) and shape drift planned for, synthesised with `joint_offsets=False`."""
    import pandas as pd

    from costlab import loading
    from costlab.curves import CostModel
    from costlab.inputs.space import InputSpace
    from costlab.policy import Budgets, synthesize
    from costlab.profiling import speed

    policy = json.loads((out / "policy.json").read_text())
    models = {t: CostModel.from_dict(d) for t, d in json.loads((out / "cost_models.json").read_text()).items()}
    space = InputSpace.from_model(loading.load(f"zoo:{name}"))
    plain = synthesize(models, Budgets(**policy["budgets"]), space=space, joint_offsets=False,
                       speed=speed.speed(pd.read_csv(out / "profile.csv")),
                       drift=(policy.get("shapes") or {}).get("drift"))
    return plain.data["admitted_fraction"]["policy"]


def _limits(policy: dict) -> str:
    limits = ", ".join(f"{d} ≤ {lim['max']} ({lim['limited_by']})" for d, lim in policy["limits"].items())
    return limits + "".join(f", {joint_expression(j)} ≤ {j['max']}" for j in policy.get("joint", []))


def _contrast(name: str, base: Path, probes: int) -> dict:
    """`name`'s policy when its sizes are measured with random values only (`--values
    random`), verified as the others are but without the tightness search."""
    lat, mem = BUDGETS[name]
    out = base / f"{name}-random-values"
    r = _run(["run", f"zoo:{name}", "--latency-ms", lat, "--memory-mib", mem, "--set", "values=random", "--out", out])
    if r.returncode != 0:
        print(r.stdout, r.stderr, file=sys.stderr)
        return {"model": name, "error": f"run failed ({r.returncode})"}
    policy = json.loads((out / "policy.json").read_text())
    v = _run(["verify", f"zoo:{name}", out / "policy.json", "--probes", probes, "--no-tightness", "--out", out / "verify"])
    print(v.stdout)
    table = list(csv.DictReader((out / "verify" / "verify.csv").open()))
    ok = [t for t in table if t["status"] == "ok"]
    worst = max(ok, key=lambda t: float(t["latency_ms"]))
    return {"model": name, "limits": _limits(policy), "probes": len(table),
            "violations": sum(1 for t in table if t["violation"]),
            "worst_latency": float(worst["latency_ms"]) / float(lat),
            "worst_memory": max(float(t["memory_mib"]) for t in ok) / float(mem),
            "worst_input": f"{worst['input_shapes']} ({worst['kind']}, {worst.get('values', '?')} values)"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="attention,recurrent,conv,mlp,masked,sponge")
    ap.add_argument("--contrast", default="sponge",
                    help="models also run with --values random and verified, for contrast ('' for none)")
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--out", default=None)
    ap.add_argument("--keep", default=None, help="keep the run directories here")
    ap.add_argument("--raw", action="store_true", help="also verify with --pulse 0 (raw latencies)")
    args = ap.parse_args(argv)
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="costlab-policies-"))
    rows, tight_rows = [], []
    contrast = [_contrast(name, base, args.probes) for name in args.contrast.split(",") if name]
    for name in args.models.split(","):
        lat, mem = BUDGETS[name]
        out = base / name
        t0 = time.time()
        r = _run(["run", f"zoo:{name}", "--latency-ms", lat, "--memory-mib", mem, "--out", out])
        run_s = time.time() - t0
        if r.returncode != 0:
            print(r.stdout, r.stderr, file=sys.stderr)
            rows.append({"model": name, "error": f"run failed ({r.returncode})"})
            continue
        policy = json.loads((out / "policy.json").read_text())
        t0 = time.time()
        v = _run(["verify", f"zoo:{name}", out / "policy.json", "--probes", args.probes, "--out", out / "verify"])
        verify_s = time.time() - t0
        print(r.stdout.splitlines()[0] if r.stdout else "", "\n", v.stdout, sep="")
        table = list(csv.DictReader((out / "verify" / "verify.csv").open()))
        ok = [t for t in table if t["status"] == "ok"]
        worst_lat = max(float(t["latency_ms"]) for t in ok) / float(lat) if ok else float("nan")
        worst_mem = max(float(t["memory_mib"]) for t in ok) / float(mem) if ok else float("nan")
        violations = sum(1 for t in table if t["violation"])
        limits = _limits(policy)
        frac = policy.get("admitted_fraction") or {}
        vp = policy.get("value_pattern") or {"pattern": "random"}
        values = vp["pattern"] + (f" ({vp['ratio']:.1f}× random, {vp['cost']})" if vp["pattern"] != "random" else "")
        rows.append({"model": name, "budgets": f"{lat} ms / {mem} MiB", "values": values, "limits": limits,
                     "probes": len(table),
                     "admitted": f"{frac.get('box', 0):.0%} / {_plain_share(name, out):.0%} / {frac.get('policy', 0):.0%}",
                     "violations": violations, "exit": v.returncode, "worst_latency": worst_lat,
                     "worst_memory": worst_mem, "run_s": run_s, "verify_s": verify_s,
                     "classes": {t: m["complexity"] for t, m in json.loads((out / "cost_models.json").read_text()).items()
                                 if t in ("wall_s_median", "peak_bytes")}})
        ms = policy.get("machine_speed") or {}
        idx = [float(t["index"]) for t in table if t.get("index")]
        rows[-1]["speed"] = (f"{ms['quantiles']['p5']:.2f}–{ms['quantiles']['p95']:.2f} (max "
                             f"{ms['quantiles']['max']:.2f}) | {ms['factor']:.2f} | "
                             f"{sorted(idx)[len(idx) // 2]:.2f} (max {max(idx):.2f})" if ms and idx else "– | – | –")
        sh = policy.get("shapes") or {}
        dr = sh.get("drift")
        rows[-1]["drift"] = (f"{sh.get('max_distinct') or '–'} | {dr['shapes']}{_higher(dr)} | "
                             + ", ".join(f"{k} {v:.2f}× ({dr['added_ms'][k]:+.1f} ms)" for k, v in dr["ratio"].items())
                             + f" | {dr['median_ratio']:.2f} | "
                             + (check_medians(dr.get("checks") or []) or "1 check")
                             + f" | {_index(dr)} | {dr['planned_ms']:.2f}" if dr else "– | – | – | – | – | – | –")
        raw = {}
        if args.raw:
            w = _run(["verify", f"zoo:{name}", out / "policy.json", "--probes", args.probes, "--pulse", "0",
                      "--out", out / "verify_raw"])
            rows[-1]["raw_violations"] = sum(1 for t in csv.DictReader((out / "verify_raw" / "verify.csv").open())
                                             if t["violation"]) if w.returncode in (0, 1) else "failed"
            rp = out / "verify_raw" / "tightness.csv"
            raw = {t["limit"]: t for t in (csv.DictReader(rp.open()) if rp.exists() else [])}
        tp = out / "verify" / "tightness.csv"
        for t in (csv.DictReader(tp.open()) if tp.exists() else []):
            tight_rows.append({"model": name, **t, "raw": raw.get(t["limit"])})
    lines = [f"## Policies verified on the zoo models ({args.probes} probes each, isolated workers)\n",
             "| model | budgets (p50 / peak) | values measured | limits | admitted share: box / plain joint / policy | probes | violations | most expensive probe / budget (latency, memory) | run s | verify s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['error']} | | | | | | | | |")
            continue
        lines.append(f"| {r['model']} | {r['budgets']} | {r['values']} | {r['limits']} | {r['admitted']} | {r['probes']} | "
                     f"{r['violations']} | {r['worst_latency']:.0%}, {r['worst_memory']:.0%} | {r['run_s']:.0f} | "
                     f"{r['verify_s']:.0f} |")
    lines += ["", "### Machine speed (reference input's time / the run's median)", "",
              "| model | over the run: p5–p95 (max) | planned for (q = 0.95) | during verify: median (max) |",
              "|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['speed']} |" for r in rows if "speed" in r]
    lines += ["", "### Shape drift (`costlab.runtime.drift`: the frontier after the shapes in one worker, against a control "
              f"worker; planned for when the median ratio is ≥ {THRESHOLD:g}, by adding the largest added time, "
              "over the check's speed index, to every time curve)", "",
              "| model | max_distinct | shapes sent | ratio (added time) per frontier input (the kept check) | median | "
              "each check's median (`checked_drift`: the largest is kept) | speed index during the check | "
              "planned (ms) |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['drift']} |" for r in rows if "drift" in r]
    head = "| model | limit | policy max | measured boundary | tightness | probes | search workers first took |"
    if args.raw:
        head += " raw: boundary | raw: tightness |"
    lines += ["", "### Tightness (limit / largest size measured within margin × budget along it, "
              "latency read at the planned machine speed; a step within only when all its draws are)", "", head,
              "|" + "---|" * (head.count("|") - 1)]
    for t in tight_rows:
        ge = "" if t["exact"] == "True" else "≥ "
        line = (f"| {t['model']} | {t['limit']} | {t['value']} | {ge}{t['boundary']} | "
                f"{'≤ ' if ge else ''}{float(t['tightness']):.2f} | {t['probes']} | "
                f"{_filled(t)} |")
        if args.raw:
            w = t.get("raw")
            rge = "" if not w or w["exact"] == "True" else "≥ "
            line += (f" {rge}{w['boundary']} | {'≤ ' if rge else ''}{float(w['tightness']):.2f} |" if w else " – | – |")
        lines.append(line)
    lines += ["", "### Growth classes (the run's cost_models.json)", "", "| model | wall_s_median | peak_bytes |",
              "|---|---|---|"]
    lines += [f"| {r['model']} | {r['classes'].get('wall_s_median', '–')} | {r['classes'].get('peak_bytes', '–')} |"
              for r in rows if "classes" in r]
    if args.raw:
        lines += ["", "Violations with raw latencies (`verify --pulse 0`): " + ", ".join(
            f"{r['model']} {r.get('raw_violations', '–')}" for r in rows if "error" not in r) + "."]
    if contrast:
        lines += ["", "### For contrast: measured with random values (`costlab run --values random`, no value scan)", "",
                  "| model | limits | probes | violations | most expensive probe / budget (latency, memory) | "
                  "most expensive input |", "|---|---|---|---|---|---|"]
        lines += [f"| {c['model']} | {c['limits']} | {c['probes']} | {c['violations']} | {c['worst_latency']:.0%}, "
                  f"{c['worst_memory']:.0%} | {c['worst_input']} |" if "error" not in c else
                  f"| {c['model']} | {c['error']} | | | | |" for c in contrast]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if all(r.get("violations", 1) == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
