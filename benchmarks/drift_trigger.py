"""Could the run's shape churn tell which models need the drift check?

The drift check (`costlab.runtime.drift`) reads the policy's frontier after a few hundred
distinct shapes in one worker. A cheaper trigger was considered: make it only when the run's
shape churn (16 new shapes in one fresh worker, `costlab.runtime.churn`) shows a process
that keeps what each shape built (`TRIGGER`: resident growth per 100 new shapes, or the share
of new shapes retraced). This runs that churn for each model, as `costlab run` does, and puts
the trigger's figures beside the slowdown the reference input showed after 240 shapes
(`benchmarks/results/shape_drift.md`, measured directly).

Run: .venv/bin/python benchmarks/drift_trigger.py [--models attention,masked,recurrent,conv,mlp,sponge]
     [--repeats 2] [--out benchmarks/results/drift_trigger.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from _output import finish  # benchmarks/_output.py: run as a script, its folder is on the path

#: The trigger considered: resident growth per 100 new shapes (MiB), share of new shapes retraced.
TRIGGER = {"rss_growth_mib_per_100_shapes": 50.0, "retraced_share": 0.5}


def fires(f: dict) -> bool:
    return (100 * f["rss_growth_mib_per_new_shape"] >= TRIGGER["rss_growth_mib_per_100_shapes"]
            or f["retraced"] / max(1, f["shapes"]) >= TRIGGER["retraced_share"])


def figures(name: str, seed: int) -> dict:
    from costlab import InputSpace, loading
    from costlab.runtime.churn import churn

    adapter = loading.load(f"zoo:{name}")
    return churn(adapter, InputSpace.from_model(adapter), shapes=16, seed=seed).figures


def main(argv=None) -> int:
    from costlab import _env

    _env.set_tf_defaults()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="attention,masked,recurrent,conv,mlp,sponge")
    ap.add_argument("--repeats", type=int, default=2, help="churn runs per model, each with its own seed")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    slow = {}
    known = Path(__file__).parent / "results" / "shape_drift.json"
    if known.is_file():
        for name, rows in json.loads(known.read_text()).items():
            ref = [r["ref_ms"] for r in rows]
            slow[name] = (sum(ref[-3:]) / 3) / (sum(ref[:3]) / 3) if len(ref) >= 6 else None
    rows = []
    for name in args.models.split(","):
        for seed in range(args.repeats):
            f = figures(name, seed)
            rows.append({"model": name, "seed": seed, "growth_mib_per_100": 100 * f["rss_growth_mib_per_new_shape"],
                         "retraced": f"{f['retraced']}/{f['shapes']}", "fires": fires(f),
                         "slowdown_after_240": slow.get(name)})
            print(rows[-1], file=sys.stderr)
    lines = [f"## A drift trigger from shape churn, on the zoo ({datetime.date.today()}, {args.repeats} churn runs per model)", "",
             f"Trigger considered: resident growth ≥ {TRIGGER['rss_growth_mib_per_100_shapes']:g} MiB "
             f"per 100 new shapes, or ≥ {TRIGGER['retraced_share']:.0%} of new shapes retraced.", "",
             "| model | seed | resident growth (MiB per 100 new shapes) | retraced | fires | reference's slowdown after 240 shapes (shape_drift.md) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        s = "—" if r["slowdown_after_240"] is None else f"{r['slowdown_after_240']:.2f}×"
        lines.append(f"| {r['model']} | {r['seed']} | {r['growth_mib_per_100']:.1f} | {r['retraced']} | "
                     f"{'yes' if r['fires'] else 'no'} | {s} |")
    slowed = sorted({r["model"] for r in rows if (r["slowdown_after_240"] or 0) >= 1.25})
    caught = sorted({r["model"] for r in rows if r["fires"] and r["model"] in slowed})
    false = sorted({r["model"] for r in rows if r["fires"] and r["model"] not in slowed})
    lines += ["", f"Models that slow down ≥ 1.25× after 240 shapes: {', '.join(slowed) or 'none'}; the trigger "
              f"fires on {', '.join(caught) or 'none of them'}, and on {', '.join(false) or 'no other model'}. "
              "So the drift check is the preset's decision (on in standard and thorough, off in quick), "
              "not this trigger's."]
    return finish(lines, rows, args.out)


if __name__ == "__main__":
    sys.exit(main())
