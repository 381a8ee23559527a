"""Refit stored runs with whichever costlab is importable: do two versions decide alike?

A live before/after comparison of `benchmarks/policies.py` mixes two things: what the code
does with measurements, and what the machine measured this time. This script separates
them. For each run directory given, it loads the stored profile, fits every cost and
synthesizes the policy twice from the same measurements (from the curves alone, and with
the joint maxima the run measured on the frontier, as `costlab run` does), and prints the
classes, the upper-bound factors and the limits as JSON. Run it under two versions (a
`git worktree` of each, put first on `PYTHONPATH`) and `diff` the outputs: identical output
means any difference between the live runs came from the measurements.

Shape drift and churn are left out (they are measured in separate processes, not refitted),
so a run that planned for drift gets its limits before drift here.

Run: PYTHONPATH=/path/to/checkout .venv/bin/python benchmarks/refit.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import importlib
import json
import sys

import costlab

try:  # the stage layout
    from costlab.profiling.session import Profile

    _run_module = importlib.import_module("costlab.pipeline.run")
except ImportError:  # the flat layout before it (costlab.profile, costlab.run: modules)
    Profile = importlib.import_module("costlab.profile").Profile
    _run_module = importlib.import_module("costlab.run")


def refit(run_dir: str) -> dict:
    prof = Profile.load(run_dir)
    stored = json.loads(open(f"{run_dir}/policy.json").read())
    budgets = {k: stored["budgets"][k] for k in ("latency_ms", "memory_mib", "margin") if k in stored["budgets"]}
    models = costlab.fit_profile(prof)
    # the range the run was asked for: each limit's maximum bounds it (batch: the zoo's 64)
    space = prof.space.with_bounds(**{d: (1, 64 if d == "batch" else lim["max"]) for d, lim in stored["limits"].items()})
    measured = {j["name"]: j["measured"]["boundary"] for j in stored.get("joint", [])
                if (j.get("measured") or {}).get("boundary")}
    out = {"classes": {t: m.complexity_ for t, m in models.items()},
           "upper_factor": {t: round(m.upper_factor_, 6) for t, m in models.items()}}
    for name, kw in (("from curves", {}), ("with measured joint maxima", {"joint_max": measured})):
        pol = costlab.synthesize(models, budgets, space=space, calibration=prof.calibration(),
                                 speed=_run_module._speed(prof.table), **kw)
        out[name] = {"limits": {d: lim.get("max") for d, lim in pol.data["limits"].items()},
                     "joint": [[j["name"], j.get("offsets"), j["max"]] for j in pol.data["joint"]]}
    return out


if __name__ == "__main__":
    print(json.dumps({d: refit(d) for d in sys.argv[1:]}, indent=1, sort_keys=True))
