"""Would a bound from the measured rows above an input tighten a step's limit? Checked on kept runs.

`CostModel.upper` inside the measured range is the fitted curve times the q = 0.95
quantile of measured/fit over the nearest measured rows. Where the cost has a step the
curve cannot follow (`zoo:sponge`: 1.3-2.2× at 550-560 token positions per pass,
`benchmarks/sponge_step.py`), the neighbours of an input below the step include rows past
it, and the bound takes their ratio there too (sponge's tightness of 0.74 in the `085c846`
policies run).

A cost that grows with every dimension is at most the cost of any larger input. So a second
bound needs no curve: the smallest time measured at an input at least as large in every
dimension, times `r`, the q quantile of the same-size replicates' scatter
(measured / their group's median). This script reads, per run, on the time bound's
calibration rows (times at the run's median speed):
- leave-one-out coverage of that envelope (rows with some larger row) and of the bound
  `min(local bound, envelope)`, against the local bound's own (`bound_coverage.py`);
- at the inputs verify's tightness search measured (`verify/tightness_probes.csv`, each
  draw over its index: the time at the run's median speed), the envelope over the local
  bound (median) and the share of draws over each bound;
- the policy synthesised again from the run's cost models with the time bound replaced by
  `min(local bound, envelope)` (budgets, planned speed and drift from `policy.json`): each
  joint maximum against the policy's, and the tightness that would give against verify's
  measured boundary (only where both keep the policy's joint offsets: the boundary is in
  the policy's own measure).

It assumes the cost grows with every dimension; where the data contradict that beyond the
replicate scatter, the envelope's coverage says so.

Run: .venv/bin/python benchmarks/dominance_bound.py RUN_DIR [RUN_DIR ...]
     [--out benchmarks/results/dominance_bound.md]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from _output import finish  # benchmarks/_output.py: run as a script, its folder is on the path
from bound_coverage import loo_log_factors  # the same folder


def replicate_factor(sizes: np.ndarray, y: np.ndarray, q: float) -> float:
    """exp of the q quantile of log(measured / median of its same-size group), over groups of ≥ 2."""
    keys = [tuple(r) for r in np.round(sizes, 9)]
    groups: dict = {}
    for k, v in zip(keys, y, strict=True):
        groups.setdefault(k, []).append(v)
    res = [np.log(v / np.median(g)) for g in groups.values() if len(g) >= 2 for v in g]
    return float(np.exp(np.quantile(res, q))) if res else float("nan")


def envelope(X: np.ndarray, sizes: np.ndarray, y: np.ndarray, r: float, skip: int | None = None) -> np.ndarray:
    """r × the smallest `y` among rows of `sizes` at least as large as each row of `X` in
    every dimension (row `skip` left out), nan where there is none."""
    out = np.full(len(X), np.nan)
    for i, x in enumerate(X):
        dom = (sizes >= x - 1e-9).all(axis=1)
        if skip is not None:
            dom[skip] = False
        if dom.any():
            out[i] = r * y[dom].min()
    return out


class _Enveloped:
    """A time cost model whose bound is min(its own, the envelope of its calibration rows)."""

    def __init__(self, model, sizes, y, r):
        self._model, self._sizes, self._y, self._r = model, sizes, y, r

    def __getattr__(self, name):
        return getattr(self._model, name)

    def upper(self, X, q=None):
        up = self._model.upper(X, q)
        env = envelope(np.asarray(X[self._model.dims_], float), self._sizes, self._y, self._r)
        return np.where(np.isnan(env), up, np.minimum(up, env))


def study(run: Path) -> dict | None:
    from costlab import CostModel, InputSpace, synthesize
    from costlab.profiling.speed import Speed

    models = {t: CostModel.from_dict(d) for t, d in json.loads((run / "cost_models.json").read_text()).items()}
    m = models.get("wall_s_median")
    if m is None or getattr(m, "_cal_res", None) is None or getattr(m, "_cal_against", "") != "fit":
        return None
    sizes = np.exp(m._cal_sizes)
    fitted = m.predict(pd.DataFrame(sizes, columns=m.dims_))
    y = fitted * np.exp(m._cal_res)
    r = replicate_factor(sizes, y, m.q)
    if not np.isfinite(r):
        return None
    # leave-one-out: the local bound as bound_coverage computes it, the envelope without the row itself
    loo_local = fitted * np.exp(loo_log_factors(m))
    loo_env = np.array([envelope(sizes[i:i + 1], sizes, y, r, skip=i)[0] for i in range(len(y))])
    has = ~np.isnan(loo_env)
    both = np.where(has, np.minimum(loo_local, np.nan_to_num(loo_env, nan=np.inf)), loo_local)
    out = {"run": run.name, "rows": len(y), "replicate_factor": r, "with_larger_row": int(has.sum()),
           "local_covered": float(np.mean(y <= loo_local * (1 + 1e-9))),
           "envelope_covered": float(np.mean(y[has] <= loo_env[has] * (1 + 1e-9))) if has.any() else None,
           "min_covered": float(np.mean(y <= both * (1 + 1e-9)))}
    # verify's tightness draws
    tp = run / "verify" / "tightness_probes.csv"
    if tp.exists():
        t = pd.read_csv(tp)
        t = t[(t["status"] == "ok") & (t["index"] > 0)]
        X = t[m.dims_].astype(float)
        draw = t["latency_ms"].to_numpy() / 1e3 / t["index"].to_numpy()
        local = m.upper(X)
        env = envelope(X.to_numpy(), sizes, y, r)
        bound = np.where(np.isnan(env), local, np.minimum(local, env))
        out.update({"draws": len(t), "env_over_local": float(np.nanmedian(env / local)),
                    "draws_over_local": float(np.mean(draw > local)), "draws_over_min": float(np.mean(draw > bound))})
    # the policy again, its time bound replaced
    pol = json.loads((run / "policy.json").read_text())
    space = InputSpace.from_dict(json.loads((run / "profile.json").read_text())["space"])
    speed = Speed.from_dict(pol["machine_speed"]) if pol.get("machine_speed") else None
    drift = (pol.get("shapes") or {}).get("drift")
    kw = dict(space=space, speed=speed, model=pol.get("model"), drift=drift if drift and drift["planned_ms"] else None)
    plain = synthesize(models, pol["budgets"], **kw)
    wrapped = {**models, "wall_s_median": _Enveloped(m, sizes, y, r)}
    tighter = synthesize(wrapped, pol["budgets"], **kw)
    tight = {}
    tc = run / "verify" / "tightness.csv"
    for row in (csv.DictReader(tc.open()) if tc.exists() else []):
        tight[row["limit"]] = float(row["boundary"]) if row.get("boundary") else None
    joints = []
    for a, b in zip(plain.data["joint"], tighter.data["joint"], strict=False):
        own = next((j["offsets"] for j in pol["joint"] if j["name"] == a["name"]), None)
        same = a["offsets"] == b["offsets"] == own
        bnd = tight.get(a["name"]) if same else None  # verify's boundary is in the policy's own measure
        joints.append({"name": a["name"], "resynthesised": a["max"], "with_envelope": b["max"], "boundary": bnd,
                       "tightness": a["max"] / bnd if bnd else None,
                       "tightness_with_envelope": b["max"] / bnd if bnd else None})
    out["joint"] = joints
    out["share"] = (plain.data["admitted_fraction"]["policy"], tighter.data["admitted_fraction"]["policy"])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    results = [r for r in (study(Path(p)) for p in args.runs) if r is not None]
    f = lambda v, s="{:.3f}": "–" if v is None else s.format(v)  # noqa: E731
    lines = ["## A bound from the measured rows above an input (time, leave-one-out on the calibration rows)\n",
             "| run | rows | replicate factor | rows with a larger row | local bound covered | envelope covered | "
             "min(local, envelope) covered | verify draws | envelope / local there (median) | draws over local | "
             "draws over min |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['run']} | {r['rows']} | {r['replicate_factor']:.2f} | {r['with_larger_row']} | "
                     f"{f(r['local_covered'])} | {f(r['envelope_covered'])} | {f(r['min_covered'])} | "
                     f"{r.get('draws', '–')} | {f(r.get('env_over_local'), '{:.2f}')} | "
                     f"{f(r.get('draws_over_local'))} | {f(r.get('draws_over_min'))} |")
    lines += ["", "### Synthesised again (budgets, planned speed and drift of the policy)", "",
              "| run | joint | max: local bound | max: min(local, envelope) | verify's boundary | tightness: local | "
              "tightness: min | admitted share: local / min |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for j in r["joint"]:
            lines.append(f"| {r['run']} | {j['name']} | {j['resynthesised']} | {j['with_envelope']} | "
                         f"{f(j['boundary'], '{:g}')} | {f(j['tightness'], '{:.2f}')} | "
                         f"{f(j['tightness_with_envelope'], '{:.2f}')} | {r['share'][0]:.0%} / {r['share'][1]:.0%} |")
    return finish(lines, results, args.out)


if __name__ == "__main__":
    sys.exit(main())
