"""Cost curves: fit cost = Σ c·Π x_d^i·log2(x_d)^j per dimension, choose the growth class
that extrapolates best, and bound it from above.

Every hypothesis gives each dimension a leading exponent (i, j) from `EXPONENTS`; its
basis is every product over dimensions of that dimension's lower-order factors (1, x, …,
the leading one), so `batch: (1, 0), seq_len: (2, 0)` fits
`c0 + c1·s + c2·s² + c3·b + c4·b·s + c5·b·s²`. Coefficients are non-negative
(`scipy.optimize.nnls`) and weighted for relative error, so units do not matter. A
hypothesis whose leading factor of some dimension carries under `negligible` of the cost at
the largest point is dropped as a duplicate of a lower one.

Rows measured at the same sizes (replicates, repeated rounds) are pooled by their median
before fitting; `upper()` is still calibrated on the individual rows.

Selection is robust and favours evidence over flexibility. Every hypothesis is fitted by
iteratively reweighted NNLS (Huber, then Tukey's bisquare on log residuals); points further
than 5 robust standard deviations (at least 1%) from the most flexible hypothesis are left
out of the choice as outliers (a stalled call at the top size would otherwise read as steep
growth or bend the fit). Each hypothesis is then scored by BIC on the log residuals
(`n·log(RSS/n) + k·log n`, k its non-zero coefficients, RSS/n floored at `tolerance`²),
on its full basis and in its minimal form (constant + leading term), whichever scores
better. Wall times are classed on the calls' CPU time when it carries the work, else on
the fastest repeat (`identify`; `IDENTIFY` per target), then fitted on their own rows. Hypotheses within `margin` of the
best BIC are consistent with the data; the one reported (`complexity_`) is, among those
within `simplicity` of the best, the one with the fewest fractional powers, then the lowest
degree (powers first, then log factors): costs of ML models are mostly integer-power
polynomials, and allocator staircases in real memory profiles make steeper classes fit
slightly better. The others are listed in `ambiguous_`. `upper()` bounds with the steepest
growth the data allow: of every hypothesis steeper than the chosen one, fitted with its
leading coefficient pushed as high as a BIC within `margin` permits, the one predicting
the most at twice the largest size (a steep term hidden under noise or a large constant is
bounded, not assumed absent). `score_` is the median |log(pred/true)| of each of the largest points
(the `holdout` share) when fitted on all the others: how well the chosen class
extrapolates; those held-out errors also calibrate the bound beyond the data.

Example:
    >>> import pandas as pd
    >>> X = pd.DataFrame({"n": [8, 16, 32, 64, 128, 256]})
    >>> y = 1e-3 + 1e-6 * X["n"] ** 2
    >>> CostModel().fit(X, y).complexity_
    'O(n²)'
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from costlab.errors import FitError, NotFittedError

#: Candidate leading terms per dimension, (power, log power), simplest first.
EXPONENTS = ((0, 0), (0, 1), (0.5, 0), (1, 0), (1, 1), (1.5, 0), (2, 0), (2, 1), (3, 0))
OUT_OF_RANGE = ("extrapolate", "clip", "raise")
_SUPERSCRIPT = {0.5: "^½", 1: "", 1.5: "^1.5", 2: "²", 3: "³"}

#: Relative error under which fits count as equally good (the BIC's RSS is floored at its
#: square): 0.1%, finer than a timer on a shared machine or an allocator's rounding of a
#: peak resolves. Misfit under it leaves the choice to parameter counts.
RESOLUTION = 0.001

#: `tolerance` per target for `fit`. TF's BFC pool counts the chunks it hands out, not the
#: bytes asked for, and a chunk can be up to twice its request: two live float32 tensors
#: of 0.25-40 MiB each read 2.0-2.6× one tensor's size at peak, and zoo:conv's peak, 128 B
#: per pixel up to 8 MiB, reads exactly 16 MiB (182 B per pixel) at 92 000 pixels. Peak
#: memory is a staircase; 0.2 is the spread one allocation's rounding leaves (a factor
#: uniform in log over [1, 2): ln 2 / √12). At 0.001 zoo:conv's peak read as
#: `O(batch³ · height² · width²)` in 8 of 8 profiles, at 0.1 one profile in a few still
#: read `O(batch log batch · height · width)`; 0.1-0.2 read every stored zoo profile's
#: architecture class, 0.25 began to read the GRU's as `O(log batch · seq_len)`.
TOLERANCE = {"peak_bytes": 0.2}


def _lower(e):
    """Factors a dimension with leading term e contributes to the basis, incl. e itself."""
    i, j = e
    out = [(0, 0)]
    out += [(k, 0) for k in range(1, math.floor(i) + 1) if k < i or (k == i and j > 0)]
    if e != (0, 0):
        out.append(e)
    return out


def _pool(X_rows, y_rows, how=np.median):
    """Distinct sizes and the median (or `how`) cost of the rows at each."""
    Xv, which = np.unique(X_rows, axis=0, return_inverse=True)
    which = which.ravel()
    return Xv, np.array([how(y_rows[which == k]) for k in range(len(Xv))])


def _bic(res, k: int, tol2: float) -> float:
    """BIC of a log-normal error model, `n·log(RSS/n) + k·log n`, with RSS/n floored at
    `tol2`: misfit under the measurement's resolution (allocator rounding, timer jitter)
    leaves the choice to the parameter count."""
    n = len(res)
    return n * math.log(max(float(res @ res) / n, tol2)) + k * math.log(n)


def _factor(x, e):
    i, j = e
    v = np.power(x, i, dtype=float)
    if j:
        v = v * np.log2(np.maximum(x, 2.0)) ** j  # log2 clamped at 1 so the factor stays >= x^i
    return v


def _degree(exps) -> tuple:
    return (sum(i for i, _ in exps), sum(j for _, j in exps))


def _fractional(exps) -> int:
    """How many dimensions have a fractional power (x^½, x^1.5)."""
    return sum(1 for i, _ in exps if i != int(i))


def term_name(factors: dict) -> str:
    parts = []
    for d, (i, j) in factors.items():
        if (i, j) == (0, 0):
            continue
        p = f"{d}{_SUPERSCRIPT.get(i, f'^{i:g}')}" if i else ""
        lg = f"log {d}" if j == 1 else (f"log^{j} {d}" if j else "")
        parts.append(" ".join(x for x in (p, lg) if x))
    return " · ".join(parts) if parts else "1"


class _Hypothesis:
    """One choice of leading exponent per dimension and its basis."""

    def __init__(self, dims, exps):
        self.dims = dims
        self.exps = exps
        self.terms = [dict(zip(dims, combo, strict=True))
                      for combo in itertools.product(*(_lower(e) for e in exps))]

    def design(self, X: np.ndarray) -> np.ndarray:
        cols = []
        for t in self.terms:
            col = np.ones(len(X))
            for k, d in enumerate(self.dims):
                if t[d] != (0, 0):
                    col = col * _factor(X[:, k], t[d])
            cols.append(col)
        return np.column_stack(cols)

    def fit(self, X, y, w=None) -> np.ndarray:
        """Non-negative coefficients minimising the (weighted) squared relative error."""
        A = self.design(X) / y[:, None]
        scale = A.max(axis=0)
        scale[scale == 0] = 1.0
        sw = np.ones(len(y)) if w is None else np.sqrt(w)
        coef, _ = nnls(A / scale * sw[:, None], sw, maxiter=50 * A.shape[1])
        return coef / scale

    def fit_minimal(self, X, y) -> np.ndarray:
        """The class's minimal form, constant + leading product term (Extra-P's
        `c0 + c1·f(x)`), by the same relative NNLS; the other coefficients are 0."""
        D = self.design(X)[:, [0, -1]] / y[:, None]
        scale = D.max(axis=0)
        scale[scale == 0] = 1.0
        c, _ = nnls(D / scale, np.ones(len(y)))
        coef = np.zeros(len(self.terms))
        coef[0], coef[-1] = c / scale
        return coef

    def robust_fit(self, X, y, iters=10):
        """Iteratively reweighted `fit`: Huber weights first, then Tukey's bisquare, on
        log residuals scaled by their MAD, so a wild point (a stalled call, an allocator
        step) stops pulling the curve. Returns `(coef, log residuals, weights)`."""
        w = np.ones(len(y))
        for it in range(iters):
            coef = self.fit(X, y, w)
            r = np.log(y / np.maximum(self.design(X) @ coef, 1e-300))
            s = max(1.4826 * float(np.median(np.abs(r - np.median(r)))), 1e-3)
            if it < 3:
                a = np.abs(r) / (1.5 * s)
                new = np.where(a <= 1, 1.0, 1.0 / np.maximum(a, 1e-12))
            else:
                b = np.abs(r) / (4.685 * s)
                new = np.where(b < 1, (1 - b * b) ** 2, 0.0)
            if new.sum() < 0.5 * len(y) or np.allclose(new, w, atol=1e-3):
                break
            w = new
        return coef, r, w


class CostModel:
    """A fitted cost curve over one or more input dimensions.

    Args:
        target: Name of the cost fitted (e.g. `"wall_s_median"`, `"peak_bytes"`),
            recorded only. Defaults to `None`.
        exponents: Candidate leading (power, log power) per dimension. Defaults to
            `EXPONENTS`.
        holdout: Share of the largest points scored by leave-one-out (`score_`, and the
            bound's calibration beyond the data). Defaults to `0.3`.
        margin: BIC difference within which classes count as consistent with the data
            (listed in `ambiguous_`, bounded by `upper`). Defaults to `6.0` (odds ≈ 20:1).
        simplicity: BIC difference within which the simplest class is reported rather
            than the best-scoring one. Defaults to `6.0` (the simplest consistent class).
        negligible: Share of the cost at the largest point under which a leading factor
            counts as absent. Defaults to `0.03`.
        q: Quantile of the upper bound's calibration. Defaults to `0.95`.
        out_of_range: Beyond the measured sizes, `"extrapolate"` the curve, `"clip"` sizes
            to the measured range, or `"raise"`. Defaults to `"extrapolate"`.
        floor: Costs under it are raised to it (resolution of the measurement). Defaults
            to `None`, i.e. 1e-9 of the largest cost.
        tolerance: Relative misfit the measurement cannot resolve: the BIC's mean squared
            log residual is floored at its square, so classes that fit within it differ
            only by their parameter counts. Defaults to `RESOLUTION` (0.1%); `fit` uses
            `TOLERANCE` per target (allocator rounding makes peak memory a staircase).

    Attributes (after `fit`):
        dims_: Dimension names, in column order.
        terms_: List of `{"coef": c, "factors": {dim: [i, j]}}` with non-zero `c`.
        exponents_: `{dim: {"power": i, "log": j}}`, the leading term per dimension.
        complexity_: Human-readable class, e.g. `"O(batch · seq_len²)"`.
        ambiguous_: Other classes the data cannot tell apart from the chosen one: those
            in `consistent_` and in `hidden_`.
        consistent_: Exponents of every class whose fit is consistent with the data
            (BIC within `margin`), chosen first.
        hidden_: Exponents of steeper classes whose best fit leaves their leading term
            out, but which the data allow to carry at least `negligible` of the cost at
            the largest point (growth that may hide in the scatter). `upper` bounds them.
        bound_exponents_: `{dim: {"power": i, "log": j}}` of the curve `upper` bounds with
            beyond the measured range: the steepest class the data allow (the chosen one
            when nothing steeper fits). A policy's safety rests on this class, not on
            `complexity_`, which is the best single estimate.
        bound_complexity_: The same, human-readable.
        score_: Held-out median |log(pred/true)| of the chosen hypothesis.
        outliers_: Points left out of the class choice as outliers.
        identified_on_: Name of the `identify` costs that chose the class (its `name`,
            e.g. `"wall_s_min"`), or `None` when `y` chose it.
        upper_factor_: Multiplier from the bound's curve to the calibrated `q` upper bound
            outside the measured range (inside it, `upper_factors` calibrates locally).
        range_: `{dim: [min, max]}` measured.
        n_points_: Distinct sizes fitted; `n_rows_`: rows before pooling replicates.
    """

    def __init__(self, *, target=None, exponents=EXPONENTS, holdout=0.3, margin=6.0, simplicity=6.0,
                 negligible=0.03, q=0.95, out_of_range="extrapolate", floor=None, tolerance=RESOLUTION):
        self.target = target
        self.tolerance = tolerance
        self.holdout = holdout
        self.exponents = exponents
        self.margin = margin
        self.simplicity = simplicity
        self.negligible = negligible
        self.q = q
        self.out_of_range = out_of_range
        self.floor = floor

    # --- fitting ------------------------------------------------------------------------
    def _validate(self, X, y):
        if not isinstance(X, pd.DataFrame):
            raise FitError(f"Expected a pandas DataFrame with one column per dimension for `X`. "
                           f"Received: {type(X).__name__}")
        if X.shape[1] == 0:
            raise FitError("Expected at least one dimension column in `X`. Received: no columns")
        if not (isinstance(self.tolerance, (int, float)) and 0 < self.tolerance < 1):
            raise FitError(f"Expected `tolerance` in (0, 1), a relative error. Received: tolerance={self.tolerance!r}")
        if self.out_of_range not in OUT_OF_RANGE:
            raise FitError(f"Expected `out_of_range` in {OUT_OF_RANGE}. Received: out_of_range={self.out_of_range!r}")
        y = np.asarray(y, dtype=float).ravel()
        if len(y) != len(X):
            raise FitError(f"`X` has {len(X)} rows but `y` has {len(y)}")
        try:
            Xv = X.to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise FitError(f"Dimension columns must be numeric. Received dtypes: {dict(X.dtypes.astype(str))}") from None
        if not np.isfinite(Xv).all():
            raise FitError("Sizes in `X` must be finite numbers; found NaN or inf")
        if (Xv <= 0).any():
            bad = X.columns[(Xv <= 0).any(axis=0)].tolist()
            raise FitError(f"Sizes must be positive. Received non-positive sizes in {bad}: min {Xv.min():g}")
        if not np.isfinite(y).all():
            raise FitError(f"Costs must be finite; {int((~np.isfinite(y)).sum())} of {len(y)} are NaN or inf")
        if (y < 0).any():
            raise FitError(f"Costs must be non-negative. Received min cost {y.min():g}")
        if len(y) < 5:
            raise FitError(f"Need at least 5 measured points to fit a cost curve. Received: {len(y)}")
        single = [c for c in X.columns if X[c].nunique() < 3]
        if single:
            raise FitError(f"Each dimension needs at least 3 distinct sizes to fit its growth. "
                           f"Received fewer for {single}: {[sorted(X[c].unique().tolist()) for c in single]}")
        return Xv, y

    def fit(self, X, y, *, select=None, identify=None, calibrate=None):
        """Fit the curve.

        Args:
            X: DataFrame with one column per dimension (sizes).
            y: The cost per row.
            select: Boolean mask of the rows that choose the class (a design made for
                identifying growth, such as the log-spaced sweep); the chosen class is
                then fitted and its bound calibrated on every row. Rows clustered in one
                region (probes bisecting toward a budget boundary) sharpen the curve there
                but would bias the choice of class. Defaults to `None` (every row).
            identify: A less noisy measure of the same calls, one per row (e.g. the
                fastest of the repeats for a median time), that chooses the class
                (`complexity_`, `consistent_`); rows at the same sizes pool by their
                least. The class is then fitted to `y`, and the steeper classes `y`
                allows (`hidden_`, the bound) are judged on `y` against that fit.
                Defaults to `None` (`y` chooses).
            calibrate: Boolean mask of the rows that calibrate the bound locally
                (`upper_factors`); the others still fit the curve. Rows measured while the
                machine ran slower than the speed a policy plans for
                (`costlab.profiling.speed.beyond`) are left out this way. Ignored when fewer than
                `LOCAL_MIN` rows would remain. Defaults to `None` (every row).

        Returns:
            self.

        Raises:
            FitError: Too few points, a dimension with fewer than 3 sizes, NaN costs,
                non-positive sizes.
        """
        X_rows, y_rows = self._validate(X, y)
        floor = self.floor if self.floor is not None else 1e-9 * y_rows.max()
        if floor <= 0:
            raise FitError("All costs are zero: nothing to fit")
        y_rows = np.maximum(y_rows, floor)
        if identify is not None:
            _, id_rows = self._validate(X, identify)
            id_rows = np.maximum(id_rows, floor)
            if not (id_rows > floor).any():
                identify, id_rows = None, None
        self.identified_on_ = getattr(identify, "name", "identify") if identify is not None else None
        if select is not None:
            select = np.asarray(select, dtype=bool).ravel()
            if len(select) != len(y_rows):
                raise FitError(f"`select` has {len(select)} entries but `X` has {len(y_rows)} rows")
            if len(np.unique(X_rows[select], axis=0)) < 5:
                select = None  # too few to choose a class on: every row chooses
        Xall, y_all = _pool(X_rows, y_rows)
        # The costs that choose the class. Replicates of `identify` pool by their least: it
        # is a reading interference only ever raises, and a shared machine's slow minutes
        # raise whole rounds (the fastest repeat of one size, measured in two rounds a
        # minute apart, read 9.5 and 23 ms).
        c_rows, how = (y_rows, np.median) if identify is None else (id_rows, np.min)
        Xv, y = _pool(X_rows, c_rows, how) if select is None else _pool(X_rows[select], c_rows[select], how)
        if len(y) < 5:
            raise FitError(f"Need at least 5 distinct measured sizes to fit a cost curve. Received: {len(y)}")
        dims = list(X.columns)
        lo, hi = Xv.min(axis=0), Xv.max(axis=0)
        size = (np.log(Xv) - np.log(lo)) / np.where(hi > lo, np.log(hi) - np.log(lo), 1.0)
        size = size.sum(axis=1)
        hyps = [_Hypothesis(dims, exps) for exps in itertools.product(self.exponents, repeat=len(dims))]
        self._fit_dims = dims
        inl = self._inliers(Xv, y)
        Xi, yi = Xv[inl], y[inl]
        folds = self._folds(size[inl])
        top = folds[-1][1][0]  # the largest point: the last fold leaves it out
        hi_wo = np.delete(Xi, top, axis=0).max(axis=0)
        tol2 = float(self.tolerance) ** 2

        def bic_of(h, X, y, coef):
            res = np.log(y / np.maximum(h.design(X) @ coef, 1e-300))
            return _bic(res, int((coef > 0).sum()), tol2)

        def best_fit(h, X, y, form=None):
            """(coef, BIC, form): the full basis or the minimal form, whichever scores
            better (NNLS leaves small positive coefficients on lower terms that each cost
            a parameter: c0 + c·b·s² can lose to O(1) on its full basis yet beat it alone)."""
            if form != "minimal":
                full = h.fit(X, y)
                if form == "full" or len(h.terms) <= 2:
                    return full, bic_of(h, X, y, full), "full"
            mini = h.fit_minimal(X, y)
            if form == "minimal":
                return mini, bic_of(h, X, y, mini), "minimal"
            b_full, b_min = bic_of(h, X, y, full), bic_of(h, X, y, mini)
            return (mini, b_min, "minimal") if b_min < b_full else (full, b_full, "full")

        results, without_top = [], []
        train_wo = folds[-1][0]
        for h in hyps:
            coef_wo, bic_wo, _ = best_fit(h, Xi[train_wo], yi[train_wo])  # the largest point left out
            if self._leading_present(h, coef_wo, hi_wo):  # the same choice without that point
                without_top.append({"h": h, "bic": float(bic_wo)})
            coef, bic, form = best_fit(h, Xi, yi)
            if not self._leading_present(h, coef, hi):
                continue
            fold_coefs = [best_fit(h, Xi[train], yi[train], form)[0] for train, _ in folds]
            # signed log(true / predicted) of each held-out point (the largest sizes)
            heldout = np.concatenate([np.log(yi[test] / np.maximum(h.design(Xi[test]) @ c, 1e-300))
                                      for (_, test), c in zip(folds, fold_coefs, strict=True)])
            results.append({"h": h, "coef": coef, "heldout": heldout, "bic": float(bic),
                            "score": float(np.median(np.abs(heldout)))})
        if not results:
            raise FitError("No hypothesis fits these costs (all leading terms negligible)")
        chosen, ok = self._select(results)
        if without_top:
            # A class that hinges on the single largest point (growth, or one stalled call
            # there?) is not decided: the class chosen without that point is consistent too.
            alt, _ = self._select(without_top)
            listed = {r["h"].exps for r in ok}
            if alt["h"].exps not in listed:
                match = next((r for r in results if r["h"].exps == alt["h"].exps), None)
                if match is not None:
                    ok = ok + [match]
        self.outliers_ = int((~inl).sum())
        bic_max = min(r["bic"] for r in results) + self.margin
        if select is not None or identify is not None:
            # The class is chosen; its coefficients come from every row of the cost itself,
            # and the steeper classes that cost allows are judged against that fit on the
            # same rows (a BIC is comparable only on the same data).
            h = chosen["h"]
            coef = h.robust_fit(Xall, y_all)[0]
            heldout = chosen["heldout"]
            if identify is not None:  # held-out errors of the cost itself, for the bound
                size_all = ((np.log(Xall) - np.log(Xall.min(axis=0)))
                            / np.where(Xall.max(axis=0) > Xall.min(axis=0),
                                       np.log(Xall.max(axis=0)) - np.log(Xall.min(axis=0)), 1.0)).sum(axis=1)
                heldout = np.concatenate([np.log(y_all[test] / np.maximum(h.design(Xall[test]) @ h.fit(Xall[train], y_all[train]), 1e-300))
                                          for train, test in self._folds(size_all)])
            chosen = {**chosen, "coef": coef, "heldout": heldout}
            Xi, yi = Xall, y_all
            lo, hi = Xall.min(axis=0), Xall.max(axis=0)
            res = np.log(yi / np.maximum(h.design(Xi) @ coef, 1e-300))
            bic_max = _bic(res, int((coef > 0).sum()), tol2) + self.margin
        steep, possible = self._steepest(hyps, chosen, Xi, yi, hi, bic_max, tol2)
        # Steeper classes whose leading term the data allow a non-negligible share of the
        # cost at the top, though the best fit of them leaves it out: growth that may hide
        # in the scatter or under a constant. Listed and bounded; measuring more of the same
        # range would not decide them.
        listed = {r["h"].exps for r in ok}
        hidden = [r for r in possible if r["h"].exps not in listed]
        self.dims_ = dims
        self._h, self._coef = chosen["h"], chosen["coef"]
        self._steep_h, self._steep_coef = steep["h"], steep["coef"]
        self.terms_ = _terms_data(self._h, self._coef)
        self.exponents_ = {d: {"power": e[0], "log": e[1]} for d, e in zip(dims, self._h.exps, strict=True)}
        self.complexity_ = self._complexity(self._h.exps)
        self._set_bound_class()
        self.ambiguous_ = sorted({self._complexity(r["h"].exps) for r in ok + hidden} - {self.complexity_})
        self.hidden_ = [{d: {"power": e[0], "log": e[1]} for d, e in zip(dims, r["h"].exps, strict=True)}
                        for r in hidden]
        self.consistent_ = [{d: {"power": e[0], "log": e[1]} for d, e in zip(dims, r["h"].exps, strict=True)}
                            for r in ok]
        self.score_ = chosen["score"]
        self.range_ = {d: [float(lo[k]), float(hi[k])] for k, d in enumerate(dims)}
        # Calibrate the upper bound on held-out errors and in-sample residuals, whichever
        # is larger at q: the bound must hold where the curve is used, beyond the data.
        insample = np.log(y_rows / np.maximum(self._h.design(X_rows) @ self._coef, 1e-300))
        heldout = chosen["heldout"]
        self.upper_factor_ = float(np.exp(max(0.0, np.quantile(insample, self.q), np.quantile(heldout, self.q))))
        # Inside the measured range the bound is calibrated locally: on the rows nearest the
        # query (log sizes), against the curve the bound uses. Timing scatter and a curve's
        # misfit differ across sizes (sub-millisecond calls jitter more; threading and kernel
        # choices bend the curve), and a limit is decided where it sits, not on average.
        # Against the fitted curve: inside the range the data pin the cost down, and the
        # steepest curve they allow matters only beyond it.
        cal_rows = np.ones(len(y_rows), dtype=bool)
        if calibrate is not None:
            calibrate = np.asarray(calibrate, dtype=bool).ravel()
            if len(calibrate) != len(y_rows):
                raise FitError(f"`calibrate` has {len(calibrate)} entries but `X` has {len(y_rows)} rows")
            if calibrate.sum() >= LOCAL_MIN:
                cal_rows = calibrate
        self._cal_sizes = np.log(X_rows[cal_rows])
        self._cal_res = np.log(y_rows[cal_rows] / np.maximum(self._h.design(X_rows[cal_rows]) @ self._coef, 1e-300))
        self._cal_against = "fit"
        self.n_points_ = len(y_all)
        self.n_rows_ = len(y_rows)
        return self

    def _select(self, results):
        """The reported hypothesis and every hypothesis consistent with the data.

        Consistent: BIC within `margin` of the best (a BIC difference of 6 is odds of
        about 20:1). Reported: among those within `simplicity` of the best, the one with
        the fewest fractional powers, then the lowest degree (powers first, then log
        factors): costs of ML models are mostly integer-power polynomials.
        """
        best = min(r["bic"] for r in results)

        def order(r):
            return (_fractional(r["h"].exps), _degree(r["h"].exps), r["bic"])

        ok = sorted((r for r in results if r["bic"] <= best + self.margin), key=order)
        chosen = min((r for r in ok if r["bic"] <= best + self.simplicity), key=order)
        return chosen, [chosen] + [r for r in ok if r is not chosen]

    def _steepest(self, hyps, chosen, X, y, hi, bic_max, tol2):
        """The bound's curve: of every hypothesis steeper than the chosen one (in one
        dimension at a time beyond two dimensions), the one
        whose leading term can carry the largest cost at twice the largest size while its
        BIC stays under `bic_max` (consistent with the data), fitted with that leading
        coefficient. A steep term the data cannot rule out — growth hidden under noise or
        a large constant — is bounded at the most the data allow, not assumed absent.

        Returns `(bound, possible)`: the bound's hypothesis and coefficients, and every
        steeper hypothesis whose leading term can carry at least `negligible` of the cost
        at the largest point within `bic_max`."""
        best = (float((chosen["h"].design(2 * hi[None, :]) @ chosen["coef"])[0]), chosen["h"], chosen["coef"])
        possible = []
        # Every steeper class in up to two dimensions; beyond two, steeper in one dimension
        # at a time (the others as chosen), which keeps it to a few candidates per dimension.
        base = chosen["h"].exps
        if len(base) <= 2:
            steeper = {h.exps for h in hyps if _degree(h.exps) > _degree(base)}
        else:
            steeper = {tuple(e if k == i else b for k, b in enumerate(base))
                       for i in range(len(base)) for e in self.exponents if _degree([e]) > _degree([base[i]])}
        for h in hyps:
            if h.exps not in steeper:
                continue
            G = h.design(X) / y[:, None]
            lead = len(h.terms) - 1  # the product of every dimension's leading factor
            rest = np.delete(G, lead, axis=1)
            scale = np.maximum(rest.max(axis=0), 1e-300)

            def fit_at(c, h=h, G=G, lead=lead, rest=rest, scale=scale):
                other, _ = nnls(rest / scale, 1.0 - c * G[:, lead], maxiter=50 * rest.shape[1])
                coef = np.insert(other / scale, lead, c)
                res = np.log(y / np.maximum(h.design(X) @ coef, 1e-300))
                bic = _bic(res, int((coef > 0).sum()), tol2)
                # the minimal form at this leading coefficient: the constant alone beside it
                g0, r = G[:, 0], 1.0 - c * G[:, lead]
                mini = np.zeros(len(coef))
                mini[0], mini[lead] = max(0.0, float(g0 @ r) / float(g0 @ g0)), c
                res_m = np.log(y / np.maximum(h.design(X) @ mini, 1e-300))
                bic_m = _bic(res_m, int((mini > 0).sum()), tol2)
                return (mini, bic_m) if bic_m < bic else (coef, bic)

            c_hi = 1.0 / G[:, lead].min()  # the leading term alone would exceed some cost
            if fit_at(0.0)[1] > bic_max:
                # Without its leading term this class does not fit: it may still fit with it
                # (a class chosen on other data, `identify`, can sit below the cost's own).
                c_lo = next((c for c in (float(h.fit(X, y)[lead]), float(h.fit_minimal(X, y)[lead]))
                             if 0 < c < c_hi and fit_at(c)[1] <= bic_max), None)
                if c_lo is None:
                    continue
            else:
                c_lo = c_hi * 1e-9
                if fit_at(c_lo)[1] > bic_max:
                    c_lo = 0.0
            if c_lo > 0:  # bisect in log space: the feasible coefficient spans many decades
                for _ in range(24):
                    mid = math.sqrt(c_lo * c_hi)
                    c_lo, c_hi = (mid, c_hi) if fit_at(mid)[1] <= bic_max else (c_lo, mid)
            coef, _ = fit_at(c_lo)
            if self._leading_present(h, coef, hi):
                possible.append({"h": h, "coef": coef})
            far = float((h.design(2 * hi[None, :]) @ coef)[0])
            if far > best[0]:
                best = (far, h, coef)
        return {"h": best[1], "coef": best[2]}, possible

    def _inliers(self, X, y, cut=5.0):
        """Points the class choice may use: those within `cut` robust standard deviations
        (at least 1%) of the most flexible hypothesis (every dimension at its steepest
        candidate, with all lower terms), fitted robustly. A stalled call or a replicate
        hit by a neighbour's load is left out instead of bending the choice, while steep
        growth, which that hypothesis can follow, is never mistaken for an outlier. At
        most a fifth of the points are left out."""
        n = len(y)
        h = _Hypothesis(self._fit_dims, tuple(max(self.exponents) for _ in self._fit_dims))
        coef, r, _ = h.robust_fit(X, y)
        k = max(int((coef > 0).sum()), 1)
        sd = 1.4826 * float(np.median(np.abs(r))) * math.sqrt(n / max(n - k, 1))
        inl = np.abs(r) <= cut * max(sd, 0.01)
        keep = max(5, math.ceil(0.8 * n))
        if inl.sum() < keep:
            inl = np.abs(r) <= np.sort(np.abs(r))[keep - 1]
        return inl

    def _folds(self, size):
        """Leave out, one at a time, each of the largest `holdout` share of the points.

        Training keeps every other point, so the large-size regime where growth shows is
        always in the fit, and the score still measures prediction at the largest sizes.
        """
        n = len(size)
        order = np.argsort(size, kind="stable")
        k = max(3, int(np.ceil(self.holdout * n)))
        idx = np.arange(n)
        return [(idx[idx != i], np.array([i])) for i in order[-k:]]

    def _leading_present(self, h, coef, hi) -> bool:
        """Every dimension's leading factor carries a non-negligible share at the top."""
        contrib = h.design(hi[None, :])[0] * coef
        total = contrib.sum()
        if total <= 0:
            return False
        for d, e in zip(h.dims, h.exps, strict=True):
            if e == (0, 0):
                continue
            share = sum(c for t, c in zip(h.terms, contrib, strict=True) if t[d] == e)
            if share < self.negligible * total:
                return False
        return True

    def _set_bound_class(self):
        """`bound_exponents_` and `bound_complexity_` from the bound's curve: per dimension
        the steeper of its leading factor and the fitted curve's (`upper` takes the larger
        of the two curves beyond the data)."""
        exps = tuple(max(a, b) for a, b in zip(self._steep_h.exps, self._h.exps, strict=True))
        self.bound_exponents_ = {d: {"power": e[0], "log": e[1]} for d, e in zip(self.dims_, exps, strict=True)}
        self.bound_complexity_ = self._complexity(exps)

    def _complexity(self, exps) -> str:
        return f"O({term_name(dict(zip(self.dims_, exps, strict=True))) if any(e != (0, 0) for e in exps) else '1'})"

    # --- use ----------------------------------------------------------------------------
    def undetermined_dims(self) -> list[str]:
        """Dimensions whose power differs between classes consistent with the data."""
        self._check()
        return [d for d in self.dims_ if len({c[d]["power"] for c in self.consistent_}) > 1]

    def _check(self):
        if not hasattr(self, "terms_"):
            raise NotFittedError("This CostModel is not fitted yet. Call `fit(X, y)` first.")

    def _matrix(self, X) -> np.ndarray:
        if isinstance(X, dict):
            X = pd.DataFrame({k: np.atleast_1d(v) for k, v in X.items()})
        missing = [d for d in self.dims_ if d not in X]
        if missing:
            raise FitError(f"`X` lacks dimension columns {missing}. Received columns: {list(X.columns)}")
        Xv = X[self.dims_].to_numpy(dtype=float)
        lo = np.array([self.range_[d][0] for d in self.dims_])
        hi = np.array([self.range_[d][1] for d in self.dims_])
        if self.out_of_range == "clip":
            Xv = np.clip(Xv, lo, hi)
        elif self.out_of_range == "raise" and ((Xv < lo) | (Xv > hi)).any():
            raise FitError(f"Sizes outside the measured range {self.range_} with out_of_range='raise'")
        return Xv

    def predict(self, X) -> np.ndarray:
        """Predicted cost per row of `X` (DataFrame or `{dim: values}`)."""
        self._check()
        return self._h.design(self._matrix(X)) @ self._coef

    def upper(self, X, q=None) -> np.ndarray:
        """A conservative bound. Inside the measured range: the fitted curve times the `q`
        quantile of measured/fit over the nearest measured rows (`upper_factors`), since
        there the data pin the cost down. Beyond it: the steepest curve the data allow
        (or the fit, if higher) times the global factor.

        Args:
            X: Sizes, as for `predict`.
            q: Must equal the `q` the model was calibrated with. Defaults to `None`.
        """
        self._check()
        if q is not None and q != self.q:
            raise FitError(f"This model's upper bound is calibrated at q={self.q}. Received: q={q}")
        Xv = self._matrix(X)
        fitted = self._h.design(Xv) @ self._coef
        base = np.maximum(fitted, self._steep_h.design(Xv) @ self._steep_coef)
        if getattr(self, "_cal_against", "max") == "fit":  # calibrated locally against the fit
            base = np.where(self._calibrated_inside(Xv), fitted, base)
        return base * self.upper_factors(Xv)

    def _calibrated_inside(self, Xv: np.ndarray) -> np.ndarray:
        """Rows of `Xv` inside the measured range, where the bound is calibrated locally."""
        cal = getattr(self, "_cal_res", None)
        if cal is None or len(cal) < LOCAL_MIN:
            return np.zeros(len(Xv), dtype=bool)
        lo = np.array([self.range_[d][0] for d in self.dims_])
        hi = np.array([self.range_[d][1] for d in self.dims_])
        return ((Xv >= lo) & (Xv <= hi)).all(axis=1)

    def upper_factors(self, Xv: np.ndarray) -> np.ndarray:
        """The bound's factor over the curve per row of sizes `Xv`: inside the measured
        range, the `q` quantile of the measured/curve ratios of the `LOCAL_SHARE` nearest
        measured rows (at least `LOCAL_MIN`; log size, each dimension scaled by its
        measured log range) — below 1 where the curve over-predicts its neighbourhood, so
        there `upper` can sit under `predict`; outside it, the global `upper_factor_`
        (held-out errors at the largest sizes, at least 1)."""
        factor = np.full(len(Xv), self.upper_factor_)
        inside = self._calibrated_inside(Xv)
        if not inside.any():
            return factor
        cal = self._cal_res
        lo = np.array([self.range_[d][0] for d in self.dims_])
        hi = np.array([self.range_[d][1] for d in self.dims_])
        span = np.where(hi > lo, np.log(hi) - np.log(lo), 1.0)
        k = min(len(cal), max(LOCAL_MIN, math.ceil(LOCAL_SHARE * len(cal))))
        q = np.log(Xv[inside]) / span
        ref = self._cal_sizes / span
        dist = ((q[:, None, :] - ref[None, :, :]) ** 2).sum(axis=2)
        nearest = np.argpartition(dist, k - 1, axis=1)[:, :k]
        # No floor at 1: where the nearby measurements sit below the curve (a curve that
        # over-predicts there), the bound follows the measurements, not the curve.
        factor[inside] = np.exp(np.quantile(cal[nearest], self.q, axis=1))
        return factor

    # --- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain data: parameters, fitted terms, class; `from_dict` restores a usable model."""
        self._check()
        return {"target": self.target, "complexity": self.complexity_, "exponents": self.exponents_,
                "bound_complexity": self.bound_complexity_,
                "dims": self.dims_, "terms": self.terms_,
                "steep_terms": _terms_data(self._steep_h, self._steep_coef),
                "ambiguous": self.ambiguous_, "consistent": self.consistent_, "hidden": self.hidden_,
                "score": self.score_, "q": self.q, "tolerance": self.tolerance,
                "identified_on": getattr(self, "identified_on_", None),
                "upper_factor": self.upper_factor_, "range": self.range_,
                "out_of_range": self.out_of_range, "n_points": self.n_points_,
                "calibration": {"log_sizes": np.round(self._cal_sizes, 6).tolist(),
                                "residuals": np.round(self._cal_res, 6).tolist(),
                                "against": getattr(self, "_cal_against", "max")}
                if getattr(self, "_cal_res", None) is not None else None}

    @classmethod
    def from_dict(cls, data: dict) -> CostModel:
        try:
            m = cls(target=data.get("target"), q=data["q"], out_of_range=data["out_of_range"],
                    tolerance=data.get("tolerance", RESOLUTION))
            m.dims_ = list(data["dims"])
            m.terms_ = data["terms"]
            m.exponents_ = data["exponents"]
            m.complexity_ = data["complexity"]
            m.ambiguous_ = list(data["ambiguous"])
            m.consistent_ = list(data.get("consistent", [data["exponents"]]))
            m.hidden_ = list(data.get("hidden", []))
            m.score_ = data["score"]
            m.identified_on_ = data.get("identified_on")
            m.upper_factor_ = data["upper_factor"]
            m.range_ = data["range"]
            cal = data.get("calibration")
            if cal:
                m._cal_sizes = np.asarray(cal["log_sizes"], dtype=float).reshape(-1, len(m.dims_))
                m._cal_res = np.asarray(cal["residuals"], dtype=float)
                # files written before 0.1.0's last fitter calibrated against max(fit, steepest)
                m._cal_against = cal.get("against", "max")
            m.n_points_ = data["n_points"]
            m._h, m._coef = _from_terms(m.dims_, data["terms"])
            m._steep_h, m._steep_coef = _from_terms(m.dims_, data["steep_terms"])
            m._set_bound_class()
        except (KeyError, TypeError) as exc:
            raise FitError(f"Malformed cost model: missing or wrong field {exc}") from None
        return m

    def _repr_html_(self):
        """An HTML table of the fitted terms with an inline plot, for notebooks."""
        from costlab.viz.display import cost_model_html

        return cost_model_html(self)

    def __repr__(self):
        if hasattr(self, "complexity_"):
            return f"CostModel(target={self.target!r}, complexity={self.complexity_!r})"
        return f"CostModel(target={self.target!r})"


def _terms_data(h, coef) -> list[dict]:
    """The non-zero terms of a fitted hypothesis as plain data."""
    return [{"coef": float(c), "factors": {d: list(e) for d, e in t.items()}}
            for t, c in zip(h.terms, coef, strict=True) if c > 0]


def _from_terms(dims, terms):
    h = _Hypothesis.__new__(_Hypothesis)
    h.dims = dims
    h.terms = [{d: tuple(t["factors"][d]) for d in dims} for t in terms]
    h.exps = tuple(max((t[d] for t in h.terms), default=(0, 0)) for d in dims)
    return h, np.array([t["coef"] for t in terms], dtype=float)



#: Columns whose costs choose a target's class in `fit`, in order of preference: the first
#: the table has (and, for CPU time, that carries the work: `CPU_SHARE`) is used. A call's
#: CPU time does not include the time it waits while a neighbour holds the cores, so on a
#: loaded machine it grows mostly with the work, where wall time — even the fastest repeat —
#: grows faster at the large sizes, whose calls cannot slip between preemptions. Profiles
#: of the zoo models at the test sizes with two busy loops beside them on the 2-core
#: machine (benchmarks/results/zoo_classes_busy.md): CPU time read zoo:attention's
#: `O(batch · seq_len²)` in 5 of 5, the fastest wall time in 2, the median in 3. Unloaded
#: (zoo_classes.md) every reading names or lists each model's class. Not immune: TF's pool
#: threads spin while a preempted sibling holds up a parallel op, which is CPU time.
IDENTIFY = {t: ("cpu_s_median", "wall_s_min") for t in ("wall_s_median", "wall_s_p95", "wall_s_p99")}

#: CPU time identifies the class only where it carries the work: its median ratio to the
#: fastest wall time is at least this. Below it the call mostly waits — on an accelerator
#: (GPU kernels run off the host's CPU time; not exercised on this CPU-only machine), on
#: I/O or a sleep — and the fastest wall time identifies instead.
CPU_SHARE = 0.5

#: Local calibration of `upper` inside the measured range: the share of measured rows
#: nearest the query whose residuals set its factor, and the fewest rows used.
LOCAL_SHARE, LOCAL_MIN = 0.15, 10

#: Costs `fit_profile` fits by default: `(floor, resolution)`. Costs under `floor` are
#: raised to it; rows under `resolution` are left out of the fit, because the source
#: cannot see them: TF's oneDNN CPU allocator serves allocations under 256 KiB from a
#: small-size pool its statistics do not count, so peaks under 1 MiB read too low or 0.
TARGETS = {"wall_s_median": (1e-6, 0.0), "wall_s_p95": (1e-6, 0.0), "wall_s_p99": (1e-6, 0.0),
           "peak_bytes": (4096.0, 2.0**20)}


def _identifier(rows: pd.DataFrame, columns) -> str | None:
    """The first of `columns` with a positive, finite reading on every row; a CPU-time
    column only where it carries the work (`CPU_SHARE` of the fastest wall time)."""
    for col in columns:
        if col not in rows.columns:
            continue
        v = rows[col].astype(float)
        if not (np.isfinite(v) & (v > 0)).all():
            continue
        if col.startswith("cpu_s") and "wall_s_min" in rows.columns:
            share = float(np.median(v / rows["wall_s_min"].astype(float)))
            if not share >= CPU_SHARE:
                continue
        return col
    return None


def fit(table: pd.DataFrame, target: str = "wall_s_median", *, dims=None, resolution=None,
        identify_by=None, normalise: bool = True, **params) -> CostModel:
    """Fit a `CostModel` of `target` on the successful rows of a profile table.

    Args:
        table: A `Profile.table` (or any DataFrame with dimension and cost columns).
        target: The cost column. Defaults to `"wall_s_median"`.
        dims: Dimension columns. Defaults to the columns before `kind` in a profile table.
        resolution: Rows whose cost is under it are left out. Defaults to the target's
            entry in `TARGETS` (1 MiB for `peak_bytes`), else `0`.
        identify_by: Column whose costs choose the class (`CostModel.fit`'s `identify`),
            or `False` for the target itself. Defaults to the target's entry in
            `IDENTIFY`: wall times are classed by `cpu_s_median` where the CPU time
            carries the work (`CPU_SHARE`), else by `wall_s_min`.
        normalise: Where the table has pulses (a reference probe repeated through the
            run, `costlab.profiling.speed`), divide every time by the machine-speed index at the
            moment its probe finished: the curve is the cost at the run's median speed.
            Pulse rows are never fitted. Defaults to `True`.
        **params: Passed to `CostModel`.

    Rows of `kind` `boundary:<dim>` (bisection toward a budget boundary) fit the
    coefficients and calibrate the bound but do not choose the class (`CostModel.fit`'s
    `select`).

    Returns:
        The fitted `CostModel`.

    Raises:
        FitError: Unknown columns, or data the curve cannot be fitted on.
    """
    if not isinstance(table, pd.DataFrame):
        raise FitError(f"Expected a pandas DataFrame (Profile.table). Received: {type(table).__name__}")
    if dims is None:
        first = next((c for c in ("plan", "kind") if c in table.columns), None)
        if first is None:
            raise FitError("Pass `dims=`: the table has no `plan` or `kind` column to find the dimension columns by")
        dims = list(table.columns[: list(table.columns).index(first)])
    missing = [c for c in [*dims, target] if c not in table.columns]
    if missing:
        raise FitError(f"Columns {missing} are not in the table. Received columns: {list(table.columns)}")
    from costlab.profiling import speed

    timed = str(target).startswith(speed.TIME_PREFIXES)
    slow = speed.beyond(table) if normalise and timed else pd.Series(False, index=table.index)
    table = speed.normalised(table) if normalise else table[~speed.is_pulse(table) & ~speed.is_scan(table)]
    table = table.assign(_beyond=slow[table.index])
    rows = table[table["status"] == "ok"] if "status" in table.columns else table
    floor, default_res = TARGETS.get(target, (None, 0.0))
    resolution = default_res if resolution is None else resolution
    y = rows[target].astype(float)
    kept = rows[y >= resolution] if resolution else rows
    if resolution and len(kept) < 5:
        raise FitError(f"Only {len(kept)} of {len(rows)} successful probes have {target} at or above "
                       f"the measurement resolution {resolution:g}: measure larger inputs")
    params.setdefault("floor", floor)
    if target in TOLERANCE:
        params.setdefault("tolerance", TOLERANCE[target])
    if identify_by:
        if identify_by not in kept.columns:
            raise FitError(f"Column {identify_by!r} (identify_by) is not in the table. "
                           f"Received columns: {list(table.columns)}")
        ident = identify_by
    else:
        ident = None if identify_by is False else _identifier(kept, IDENTIFY.get(target, ()))
    select = ~kept["kind"].astype(str).str.startswith("boundary:") if "kind" in kept.columns else None
    if select is not None and select.all():
        select = None
    identify = kept[ident].astype(float) if ident is not None else None
    if identify is not None and not (np.isfinite(identify) & (identify > 0)).all():
        identify = None  # rows from before the column was measured: the cost chooses
    calibrate = ~kept["_beyond"].to_numpy(dtype=bool)
    return CostModel(target=target, **params).fit(kept[dims], kept[target].astype(float), select=select,
                                                  identify=identify, calibrate=None if calibrate.all() else calibrate)


def fit_profile(profile, targets=tuple(TARGETS)) -> dict[str, CostModel]:
    """Fit every target of a `Profile` that has enough data: `{target: CostModel}`.

    A target that cannot be fitted (e.g. all peaks under the memory resolution) is left
    out; `fit_profile_notes` also returns why.
    """
    models, _ = fit_profile_notes(profile, targets)
    return models


def fit_profile_notes(profile, targets=tuple(TARGETS)) -> tuple[dict, dict]:
    """Like `fit_profile`, also returning `{target: reason}` for targets left out."""
    models, skipped = {}, {}
    for t in targets:
        try:
            models[t] = fit(profile.table, t, dims=profile.dims)
        except FitError as exc:
            skipped[t] = str(exc)
    return models, skipped
