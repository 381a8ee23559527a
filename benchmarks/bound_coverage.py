"""How often does a new measurement land under the upper bound's local calibration? Leave-one-out on kept runs.

`CostModel.upper` inside the measured range is the fitted curve times the q = 0.95 quantile
of measured/fit over the nearest measured rows (`CostModel.upper_factors`). Its promise: a
measurement at that size reads under the bound 95% of the time. This checks the promise
against the run's own measurements: each calibration row in turn is left out, the factor at
its size is computed from the others with the package's own code, and the row counts as
covered when its measured/fit ratio is at most that factor. Reported per run and cost: the
rows, the coverage, and the median factor (how much headroom the bound adds).

For comparison, one alternative that follows local structure instead of spreading it: a
linear trend of the log ratio over the same neighbours (log sizes), plus the q quantile of
their prediction errors (each residual over sqrt(1 - leverage), times sqrt(1 + the query's
leverage)). A bound that admits more only by covering less is no improvement.

Run dirs come from `benchmarks/policies.py --keep DIR` (one directory per model).

Run: .venv/bin/python benchmarks/bound_coverage.py RUN_DIR [RUN_DIR ...]
     [--out benchmarks/results/bound_coverage.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from _output import finish  # benchmarks/_output.py: run as a script, its folder is on the path


def local_linear(r: np.ndarray, Z: np.ndarray, q: float) -> float:
    """The q quantile of a new log ratio at offset 0 from neighbours `r` at offsets `Z`."""
    A = np.c_[np.ones(len(r)), Z]
    G = np.linalg.inv(A.T @ A + 1e-9 * np.eye(A.shape[1]))
    coef = G @ A.T @ r
    h = np.einsum("ki,ij,kj->k", A, G, A)
    e = (r - A @ coef) / np.sqrt(np.clip(1 - h, 1e-3, None)) * np.sqrt(1 + G[0, 0])
    return float(coef[0] + np.quantile(e, q))


def loo_log_factors(model) -> np.ndarray:
    """Per calibration row, the log of the bound's factor at its size with that row left
    out (`CostModel.upper_factors` on the others)."""
    cal, sizes = model._cal_res.copy(), model._cal_sizes.copy()
    n, cur = len(cal), []
    try:
        for i in range(n):
            keep = np.r_[0:i, i + 1:n]
            model._cal_res, model._cal_sizes = cal[keep], sizes[keep]
            cur.append(float(np.log(model.upper_factors(np.exp(sizes[i : i + 1]))[0])))
    finally:
        model._cal_res, model._cal_sizes = cal, sizes
    return np.array(cur)


def coverage(model) -> dict:
    from costlab.curves import LOCAL_MIN, LOCAL_SHARE

    cal, sizes = model._cal_res, model._cal_sizes
    lo = np.array([model.range_[d][0] for d in model.dims_])
    hi = np.array([model.range_[d][1] for d in model.dims_])
    span = np.where(hi > lo, np.log(hi) - np.log(lo), 1.0)
    n = len(cal)
    cur, alt = loo_log_factors(model), []
    for i in range(n):
        keep = np.r_[0:i, i + 1:n]
        k = min(n - 1, max(LOCAL_MIN, int(np.ceil(LOCAL_SHARE * (n - 1)))))
        d = (((sizes[keep] - sizes[i]) / span) ** 2).sum(axis=1)
        nb = keep[np.argpartition(d, k - 1)[:k]]
        alt.append(local_linear(cal[nb], (sizes[nb] - sizes[i]) / span, model.q))
    alt = np.array(alt)
    return {"rows": n, "q": model.q, "covered": float(np.mean(cal <= cur)), "factor": float(np.exp(np.median(cur))),
            "alt_covered": float(np.mean(cal <= alt)), "alt_factor": float(np.exp(np.median(alt)))}


def main(argv=None) -> int:
    from costlab.curves import fit

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    results = []
    for run in args.runs:
        table = pd.read_csv(Path(run) / "profile.csv")
        for target in ("wall_s_median", "peak_bytes"):
            try:
                model = fit(table, target)
            except Exception as exc:  # noqa: BLE001 - a cost with too few rows above resolution
                print(f"{run}: {target}: not fitted ({exc})", file=sys.stderr)
                continue
            if getattr(model, "_cal_res", None) is None or len(model._cal_res) < 12:
                continue
            results.append({"run": Path(run).name, "target": target, **coverage(model)})
    lines = ["## Upper bound's local calibration, leave-one-out (q = 0.95)\n",
             "| run | cost | rows | covered | median factor | alternative (local linear): covered | median factor |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['run']} | {r['target']} | {r['rows']} | {r['covered']:.3f} | {r['factor']:.3f} | "
                     f"{r['alt_covered']:.3f} | {r['alt_factor']:.3f} |")
    allc = np.mean([r["covered"] for r in results]) if results else float("nan")
    alta = np.mean([r["alt_covered"] for r in results]) if results else float("nan")
    lines.append(f"\nMean coverage: {allc:.3f} (local calibration), {alta:.3f} (local linear).")
    return finish(lines, results, args.out)


if __name__ == "__main__":
    sys.exit(main())
