"""Cost-curve classes and extrapolation: costlab.CostModel against big_O, on the same data.

Synthetic costs of known class (1, log n, n, n log n, n², n³, and the 2-D products b·s and
b·s²), with a constant overhead of 0-90% of the largest cost, multiplicative log-normal noise
of 1-20% plus heavy-tailed outliers (5% of points ×1.5-3), and the largest cost at 100 µs,
10 ms or 1 s. Each fitter sees the same points (10 log-spaced sizes, 16 to 4096; the 2-D
grid 6 × 7). Reported:

- class accuracy, overall and on the easier cells (overhead ≤ 50%, noise ≤ 5%);
- unsafe errors: a class lower than the truth (a policy would admit too much) — for
  costlab both the best estimate (`complexity_`) and the class `upper()` bounds with
  (`bound_complexity_`: the steepest class the data allow, which is what a policy rests
  on) — and the share of fits where the truth was not even among the classes costlab
  lists as ones the data cannot rule out (`ambiguous_`: `consistent_` and `hidden_`);
- extrapolation at 2× and 4× the largest size: median |log(pred/true)|, and how often
  costlab's `upper()` falls under the truth;
- confusion matrices (rows truth, columns reported);
- the same after measuring more where the power is undetermined (larger sizes, as
  `costlab run` does), with big_O given the same final points;
- a reference fitter that is told the answer's form (only the six true shapes c0 + c1·g(n),
  picked by BIC): what the data themselves can tell apart.

big_O (PyPI big-O 0.11) is 1-D only; the 2-D products are costlab's alone.

Run: .venv/bin/python benchmarks/curves_vs_bigo.py [--reps N] [--seed S]
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings

import numpy as np
import pandas as pd

from costlab import CostModel

CLASSES_1D = {  # name -> (growth, (power, log))
    "1": (lambda n: np.ones_like(n), (0, 0)),
    "log n": (lambda n: np.log2(n), (0, 1)),
    "n": (lambda n: n, (1, 0)),
    "n log n": (lambda n: n * np.log2(n), (1, 1)),
    "n²": (lambda n: n**2, (2, 0)),
    "n³": (lambda n: n**3, (3, 0)),
}
OVERHEADS = (0.0, 0.1, 0.5, 0.9)
NOISES = (0.01, 0.05, 0.10, 0.20)
SCALES = (1e-4, 1e-2, 1.0)
N = np.geomspace(16, 4096, 10).round()
ORDER = [(0, 0), (0, 1), (0.5, 0), (1, 0), (1, 1), (1.5, 0), (2, 0), (2, 1), (3, 0)]


def noisy(x, noise, rng):
    """Multiplicative log-normal noise, and 5% of points ×1.5-3 (heavy-tailed outliers)."""
    y = x * np.exp(rng.normal(0, noise, len(x)))
    out = rng.random(len(x)) < 0.05
    return np.where(out, y * rng.uniform(1.5, 3, len(x)), y)


def synth(growth, n, overhead, noise, scale, rng):
    g = growth(n)
    g = g / g.max()
    c0 = overhead / (1 - overhead) if overhead < 1 else 1.0  # overhead share of the largest cost
    truth = (c0 + g) / (c0 + 1) * scale

    return truth, noisy(truth, noise, rng), (lambda m: (c0 + growth(m) / growth(n).max()) / (c0 + 1) * scale)


def bigo_class(ns, ys):
    import big_o

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best, _ = big_o.infer_big_o_class(ns, ys)
    name = type(best).__name__
    table = {"Constant": (0, 0), "Logarithmic": (0, 1), "Linear": (1, 0), "Linearithmic": (1, 1),
             "Quadratic": (2, 0), "Cubic": (3, 0)}
    if name in table:
        return table[name], best
    if name == "Polynomial":  # time = a·n^k: take k, rounded to the candidates
        k = float(best.coeff[1]) if hasattr(best, "coeff") else np.nan
        return (min((p for p, j in ORDER if j == 0), key=lambda p: abs(p - k)), 0), best
    return (9, 0), best  # Exponential: steeper than every candidate


def oracle_class(ns, ys):
    """A reference that knows the answer's form: only the six true shapes c0 + c1·g(n),
    each fitted in log space (relative NNLS), picked by BIC. No fitter that must also
    consider other shapes can be expected to beat it; its accuracy shows what the data
    themselves can tell apart."""
    from scipy.optimize import nnls

    best = None
    for growth, e in CLASSES_1D.values():
        g = growth(ns) / growth(ns).max()
        A = np.ones((len(ns), 1)) if e == (0, 0) else np.column_stack([np.ones_like(ns), g])
        c, _ = nnls(A / ys[:, None], np.ones(len(ns)))
        r = np.log(ys / np.maximum(A @ c, 1e-300))
        bic = len(ns) * np.log(max(float(r @ r) / len(ns), 1e-8)) + int((c > 0).sum()) * np.log(len(ns))
        if best is None or bic < best[0]:
            best = (bic, e)
    return best[1]


def label(e):
    return {v[1]: k for k, v in CLASSES_1D.items()}.get(tuple(e), f"n^{e[0]:g}" + (" log n" if e[1] else ""))


def run_1d(reps, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for (name, (growth, truth)), ov, noise, scale in itertools.product(CLASSES_1D.items(), OVERHEADS, NOISES, SCALES):
        for _ in range(reps):
            true_y, y, f = synth(growth, N, ov, noise, scale, rng)
            X = pd.DataFrame({"n": N})
            m = CostModel().fit(X, y)
            got = (m.exponents_["n"]["power"], m.exponents_["n"]["log"])
            consistent = {(c["n"]["power"], c["n"]["log"]) for c in m.consistent_ + m.hidden_}
            far = pd.DataFrame({"n": [2 * N[-1], 4 * N[-1]]})
            true_far = f(far["n"].to_numpy())
            pred = m.predict(far)
            up = m.upper(far)
            b, best = bigo_class(N, y)
            bpred = np.maximum(best.compute(far["n"].to_numpy()), 1e-300)
            # Measure more while the power is undetermined, as `costlab run` does
            # (`refine.settle`): the plan over the next 4× of the range, up to two times.
            Xs, ys, ms = N, y, m
            for _ in range(2):
                if not ms.undetermined_dims():
                    break
                more = Xs.max() * np.array([1.6, 2.5, 4.0])
                Xs, ys = np.concatenate([Xs, more]), np.concatenate([ys, noisy(f(more), noise, rng)])
                ms = CostModel().fit(pd.DataFrame({"n": Xs}), ys)
            got_s = (ms.exponents_["n"]["power"], ms.exponents_["n"]["log"])
            bound = (m.bound_exponents_["n"]["power"], m.bound_exponents_["n"]["log"])
            bound_s = (ms.bound_exponents_["n"]["power"], ms.bound_exponents_["n"]["log"])
            listed_s = {(c["n"]["power"], c["n"]["log"]) for c in ms.consistent_ + ms.hidden_}
            b_s = bigo_class(Xs, ys)[0] if len(Xs) > len(N) else b
            rows.append({"truth": name, "overhead": ov, "noise": noise, "scale": scale,
                         "settle_ok": got_s == truth, "settle_bigo_ok": b_s == truth, "extra": len(Xs) - len(N),
                         "settle_unsafe": ORDER.index(got_s) < ORDER.index(truth),
                         "bound_unsafe": bound < truth, "settle_bound_unsafe": bound_s < truth,
                         "listed_unsafe": max(consistent) < truth, "settle_listed_unsafe": max(listed_s | {got_s}) < truth,
                         "n_listed": len(consistent), "settle_n_listed": len(listed_s | {got_s}),
                         "bound_over": bound > truth, "settle_bound_over": bound_s > truth,
                         "settle_silent": ORDER.index(got_s) < ORDER.index(truth) and truth not in listed_s,
                         "costlab": label(got), "bigo": label(b), "oracle_ok": oracle_class(N, y) == truth,
                         "costlab_ok": got == truth, "bigo_ok": b == truth,
                         "costlab_unsafe": ORDER.index(got) < ORDER.index(truth) if got in ORDER else False,
                         "costlab_silent": ORDER.index(got) < ORDER.index(truth) and truth not in consistent,
                         "bigo_unsafe": (ORDER.index(b) < ORDER.index(truth)) if b in ORDER else False,
                         "err2": abs(np.log(pred[0] / true_far[0])), "err4": abs(np.log(pred[1] / true_far[1])),
                         "bigo_err2": abs(np.log(bpred[0] / true_far[0])), "bigo_err4": abs(np.log(bpred[1] / true_far[1])),
                         "under2": up[0] < true_far[0], "under4": up[1] < true_far[1],
                         "loose2": up[0] / true_far[0], "loose4": up[1] / true_far[1]})
    return pd.DataFrame(rows)


def run_2d(reps, seed):
    rng = np.random.default_rng(seed + 1)
    b, s = np.meshgrid([1, 2, 4, 8, 16, 32], [16, 32, 64, 128, 256, 512, 1024])
    X = pd.DataFrame({"batch": b.ravel(), "seq_len": s.ravel()})
    cases = {"batch · seq_len": ((1, 0), (1, 0)), "batch · seq_len²": ((1, 0), (2, 0))}
    rows = []
    for (name, (eb, es)), ov, noise, scale in itertools.product(cases.items(), OVERHEADS, NOISES, SCALES):
        for _ in range(reps):
            def growth(frame, eb=eb, es=es):
                return frame["batch"].to_numpy(float) ** eb[0] * frame["seq_len"].to_numpy(float) ** es[0]
            g = growth(X)
            c0 = ov / (1 - ov)
            truth = (c0 + g / g.max()) / (c0 + 1) * scale
            y = truth * np.exp(rng.normal(0, noise, len(truth)))
            out = rng.random(len(y)) < 0.05
            y = np.where(out, y * rng.uniform(1.5, 3, len(y)), y)
            m = CostModel().fit(X, y)
            got = (tuple(m.exponents_["batch"].values()), tuple(m.exponents_["seq_len"].values()))
            bound = (tuple(m.bound_exponents_["batch"].values()), tuple(m.bound_exponents_["seq_len"].values()))
            consistent = {(tuple(c["batch"].values()), tuple(c["seq_len"].values())) for c in m.consistent_ + m.hidden_}
            far = pd.DataFrame({"batch": [64, 128], "seq_len": [2048, 4096]})
            true_far = (c0 + growth(far) / g.max()) / (c0 + 1) * scale
            pred, up = m.predict(far), m.upper(far)
            rows.append({"truth": name, "overhead": ov, "noise": noise, "scale": scale,
                         "costlab": m.complexity_, "costlab_ok": got == (eb, es),
                         "costlab_unsafe": ORDER.index(got[0]) < ORDER.index(eb) or ORDER.index(got[1]) < ORDER.index(es),
                         "costlab_silent": (ORDER.index(got[0]) < ORDER.index(eb) or ORDER.index(got[1]) < ORDER.index(es))
                         and (eb, es) not in consistent,
                         "bound_unsafe": bound[0] < eb or bound[1] < es,
                         "listed_unsafe": not any(c[0] >= eb and c[1] >= es for c in consistent),
                         "n_listed": len(consistent),
                         "bound_over": (bound[0] > eb or bound[1] > es) and not (bound[0] < eb or bound[1] < es),
                         "err2": abs(np.log(pred[0] / true_far[0])), "err4": abs(np.log(pred[1] / true_far[1])),
                         "under2": up[0] < true_far[0], "under4": up[1] < true_far[1],
                         "loose2": up[0] / true_far[0], "loose4": up[1] / true_far[1]})
    return pd.DataFrame(rows)


def pct(x):
    return f"{100 * float(np.mean(x)):.1f}%"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="repetitions per grid cell (default 5)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    one = run_1d(args.reps, args.seed)
    two = run_2d(max(1, args.reps // 2), args.seed)
    easy1 = one[(one.overhead <= 0.5) & (one.noise <= 0.05)]
    easy2 = two[(two.overhead <= 0.5) & (two.noise <= 0.05)]
    print(f"## Cost-curve classes: costlab vs big_O ({len(one)} 1-D fits, {len(two)} 2-D fits, seed {args.seed})\n")
    print("| | costlab 1-D | big_O 1-D | costlab 2-D | reference: knows the 6 true forms, 1-D |")
    print("|---|---|---|---|---|")
    print(f"| class accuracy, whole grid | {pct(one.costlab_ok)} | {pct(one.bigo_ok)} | {pct(two.costlab_ok)} | "
          f"{pct(one.oracle_ok)} |")
    print(f"| class accuracy, overhead ≤ 50% and noise ≤ 5% | {pct(easy1.costlab_ok)} | {pct(easy1.bigo_ok)} | "
          f"{pct(easy2.costlab_ok)} | {pct(easy1.oracle_ok)} |")
    print(f"| unsafe: every class reported (`complexity_` and `ambiguous_`) lower than truth, whole grid | "
          f"{pct(one.listed_unsafe)} | {pct(one.bigo_unsafe)} | {pct(two.listed_unsafe)} |")
    print(f"| classes reported per fit (mean) | {one.n_listed.mean():.1f} | 1 | {two.n_listed.mean():.1f} |")
    print(f"| unsafe: the class `upper()` bounds with (`bound_complexity_`) lower than truth | {pct(one.bound_unsafe)} | "
          f"{pct(one.bigo_unsafe)} | {pct(two.bound_unsafe)} |")
    print(f"| `bound_complexity_` steeper than truth (its term may be small: see looseness) | {pct(one.bound_over)} | — | "
          f"{pct(two.bound_over)} |")
    print(f"| best estimate alone (`complexity_`) lower than truth | {pct(one.costlab_unsafe)} | "
          f"{pct(one.bigo_unsafe)} | {pct(two.costlab_unsafe)} |")
    print(f"| best estimate lower and the truth not listed in `ambiguous_` | {pct(one.costlab_silent)} | — | {pct(two.costlab_silent)} |")
    for k in (2, 4):
        print(f"| median abs log error at {k}× the largest size | {np.median(one[f'err{k}']):.3f} | "
              f"{np.median(one[f'bigo_err{k}']):.3f} | {np.median(two[f'err{k}']):.3f} |")
        print(f"| `upper()` under the truth at {k}× | {pct(one[f'under{k}'])} | — | {pct(two[f'under{k}'])} |")
        print(f"| median `upper()` / truth at {k}× (looseness) | {np.median(one[f'loose{k}']):.2f} | — | "
              f"{np.median(two[f'loose{k}']):.2f} |")
    measured = one[one.extra > 0]
    print(f"\n### Measuring more while the power is undetermined (1-D)\n\nWhen `undetermined_dims()` is not "
          f"empty, 3 more sizes over the next 4× of the range are measured (the plan `costlab run` measures: "
          f"`refine.settle`), up to two times (`--settle 2`); big_O gets the same final points. {pct(one.extra > 0)} of the fits "
          f"measured more ({measured.extra.mean():.1f} points on average).\n")
    print("| | costlab | big_O |")
    print("|---|---|---|")
    print(f"| class accuracy, whole grid | {pct(one.settle_ok)} | {pct(one.settle_bigo_ok)} |")
    print(f"| class accuracy, overhead ≤ 50% and noise ≤ 5% | {pct(easy1.settle_ok)} | {pct(easy1.settle_bigo_ok)} |")
    print(f"| unsafe: every class reported lower than truth, whole grid | {pct(one.settle_listed_unsafe)} | — |")
    print(f"| classes reported per fit (mean) | {one.settle_n_listed.mean():.1f} | 1 |")
    print(f"| unsafe: `bound_complexity_` lower than truth | {pct(one.settle_bound_unsafe)} | — |")
    print(f"| `bound_complexity_` steeper than truth | {pct(one.settle_bound_over)} | — |")
    print(f"| best estimate alone (`complexity_`) lower than truth | {pct(one.settle_unsafe)} | — |")
    print(f"| best estimate lower and the truth not listed in `ambiguous_` | {pct(one.settle_silent)} | — |")
    print("\n### Accuracy by noise and overhead (costlab / big_O, 1-D)\n")
    piv = one.groupby(["noise", "overhead"]).agg(c=("costlab_ok", "mean"), b=("bigo_ok", "mean")).reset_index()
    print("| noise \\ overhead | " + " | ".join(f"{o:.0%}" for o in OVERHEADS) + " |")
    print("|---" * (len(OVERHEADS) + 1) + "|")
    for nz in NOISES:
        cells = piv[piv.noise == nz].set_index("overhead")
        print(f"| {nz:.0%} | " + " | ".join(f"{cells.loc[o, 'c']:.0%} / {cells.loc[o, 'b']:.0%}" for o in OVERHEADS) + " |")
    print("\n### Looseness of `upper()` at 4× the largest size by noise and overhead (median upper / truth, 1-D)\n")
    loose = one.groupby(["noise", "overhead"])["loose4"].median().unstack()
    print("| noise \\ overhead | " + " | ".join(f"{o:.0%}" for o in OVERHEADS) + " |")
    print("|---" * (len(OVERHEADS) + 1) + "|")
    for nz in NOISES:
        print(f"| {nz:.0%} | " + " | ".join(f"{loose.loc[nz, o]:.2f}" for o in OVERHEADS) + " |")
    for who in ("costlab", "bigo"):
        print(f"\n### Confusion, {'costlab' if who == 'costlab' else 'big_O'} (1-D; rows truth, columns reported)\n")
        conf = pd.crosstab(one["truth"], one[who]).reindex(index=list(CLASSES_1D))
        cols = list(conf.columns)
        print("| truth | " + " | ".join(cols) + " |")
        print("|---" * (len(cols) + 1) + "|")
        for t, r in conf.iterrows():
            print(f"| {t} | " + " | ".join(str(int(v)) for v in r.to_numpy()) + " |")
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
