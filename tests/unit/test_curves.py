from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from costlab import CostModel, FitError, NotFittedError, fit

DATA = Path(__file__).resolve().parents[2] / "data"
N = np.array([8, 16, 32, 64, 128, 256, 512, 1024], float)


def _noisy(y, rel, seed=0):
    return y * np.exp(np.random.default_rng(seed).normal(0, rel, len(y)))


@pytest.mark.parametrize("growth, expected", [
    (lambda n: np.ones_like(n), "O(1)"),
    (lambda n: n, "O(n)"),
    (lambda n: n * np.log2(n), "O(n log n)"),
    (lambda n: n**2, "O(n²)"),
    (lambda n: n**3, "O(n³)"),
])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_the_class_of_synthetic_costs(growth, expected, seed):
    g = growth(N)
    y = _noisy(0.2 + g / g.max(), 0.01, seed)  # 20% constant overhead, 1% noise
    model = CostModel().fit(pd.DataFrame({"n": N}), y)
    assert model.complexity_ == expected


def test_two_dimensional_product_and_extrapolation():
    b, s = np.meshgrid([1, 2, 4, 8, 16, 32], [8, 16, 32, 64, 128, 256, 512])
    X = pd.DataFrame({"batch": b.ravel(), "seq_len": s.ravel()})

    def truth(X):
        return 1e-3 + 1e-8 * X["batch"] * X["seq_len"] ** 2 + 1e-6 * X["batch"] * X["seq_len"]

    model = CostModel(target="t").fit(X, _noisy(truth(X).to_numpy(), 0.03))
    assert model.complexity_ == "O(batch · seq_len²)"
    assert model.exponents_ == {"batch": {"power": 1, "log": 0}, "seq_len": {"power": 2, "log": 0}}
    far = pd.DataFrame({"batch": [64], "seq_len": [2048]})  # 2x and 4x beyond the data
    ratio = model.predict(far)[0] / truth(far)[0]
    assert 0.9 < ratio < 1.1
    assert model.upper(far)[0] >= model.predict(far)[0]


def test_round_trip_through_plain_data():
    X = pd.DataFrame({"n": N})
    model = CostModel(target="wall").fit(X, 1e-3 + 1e-6 * N**2)
    again = CostModel.from_dict(model.to_dict())
    np.testing.assert_allclose(again.predict(X), model.predict(X))
    np.testing.assert_allclose(again.upper(X), model.upper(X))
    assert again.complexity_ == model.complexity_
    assert model.to_dict()["exponents"] == {"n": {"power": 2, "log": 0}}


def test_scatter_of_the_data_widens_what_counts_as_consistent():
    # peak_bytes of zoo:mlp (batch 1-4096) measured here: 2.0-2.3 KiB per row, plainly
    # linear, but allocator steps gave steeper classes held-out errors 0.04 lower than
    # linear's; with a fixed 0.01 tolerance the fit read O(batch²).
    model = fit(pd.read_csv(DATA / "regression" / "mlp_peak_bytes.csv"), "peak_bytes")
    assert model.complexity_ == "O(batch)"
    assert "O(batch²)" in model.ambiguous_  # still bounded by the steeper class


def test_replicates_are_pooled_by_their_median():
    X = pd.DataFrame({"n": np.repeat(N, 3)})
    y = np.repeat(1e-3 + 1e-6 * N**2, 3) * np.tile([1.0, 1.02, 5.0], len(N))  # one wild replicate each
    model = CostModel().fit(X, y)
    assert model.n_points_ == len(N) and model.n_rows_ == 3 * len(N)
    assert model.complexity_ == "O(n²)"
    np.testing.assert_allclose(model.predict(pd.DataFrame({"n": N})), 1.02 * (1e-3 + 1e-6 * N**2), rtol=0.05)
    # the upper bound is calibrated on single rows, so it covers the wild replicates
    assert model.upper_factor_ > 4


def test_real_allocator_staircase_reads_as_the_integer_power():
    # peak_bytes of zoo:attention measured here (batch 2-16, seq_len 64-1024, seed 1): TF's
    # allocator steps (2.0x, 2.2x, 2.8x the score tensor) made the lowest-degree rule read
    # O(batch log batch · seq_len^1.5); the architecture's class fits it as well.
    table = pd.read_csv(DATA / "regression" / "attention_peak_bytes.csv")
    model = fit(table, "peak_bytes")
    assert model.complexity_ == "O(batch · seq_len²)"


def test_an_allocator_step_within_the_peak_tolerance_is_not_growth():
    # one BFC-sized step (1.4×, as zoo:conv's 16 MiB chunk) over the top third of a linear peak
    n = np.geomspace(4096, 2**20, 12).round()
    table = pd.DataFrame({"n": n, "kind": "slice:n", "status": "ok", "peak_bytes": 128 * n * np.where(n > 3e5, 1.4, 1.0)})
    assert CostModel().fit(table[["n"]], table["peak_bytes"]).complexity_ != "O(n)"  # at 0.1%: steeper
    model = fit(table, "peak_bytes")
    assert model.tolerance == 0.2 and model.complexity_ == "O(n)"
    assert CostModel.from_dict(model.to_dict()).tolerance == 0.2
    with pytest.raises(FitError, match=r"`tolerance` in \(0, 1\).*tolerance=2"):
        CostModel(tolerance=2).fit(table[["n"]], table["peak_bytes"])


def test_identify_chooses_the_class_and_the_cost_sets_the_level():
    # A shared machine: interference adds 0-150% to a call's median time at random, while the
    # fastest repeat stays within 2% of the call's own n log n cost.
    rng = np.random.default_rng(3)
    n = np.repeat(np.geomspace(16, 4096, 10).round(), 2)
    own = 2e-4 + 1e-7 * n * np.log2(n)
    fastest = own * np.exp(rng.normal(0, 0.02, len(n)))
    median = own * (1 + rng.uniform(0, 1.5, len(n)))
    X = pd.DataFrame({"n": n})
    model = CostModel().fit(X, median, identify=pd.Series(fastest, name="wall_s_min"))
    assert model.complexity_ == "O(n log n)" and model.identified_on_ == "wall_s_min"
    at = pd.DataFrame({"n": [1024.0]})
    assert model.predict(at)[0] > 1.3 * (2e-4 + 1e-7 * 1024 * 10)  # the median's level, not the fastest's
    assert (model.upper(X) >= 0.95 * median).mean() >= 0.9
    table = X.assign(kind="slice:n", status="ok", wall_s_median=median, wall_s_min=fastest)
    assert fit(table, "wall_s_median").identified_on_ == "wall_s_min"
    assert fit(table, "wall_s_median", identify_by=False).identified_on_ is None
    assert CostModel.from_dict(fit(table, "wall_s_median").to_dict()).identified_on_ == "wall_s_min"
    with pytest.raises(FitError, match="'wall_s_max' \\(identify_by\\)"):
        fit(table, "wall_s_median", identify_by="wall_s_max")


def test_cpu_time_classes_wall_time_where_it_carries_the_work():
    # A loaded machine: the large calls wait longer for a core (wall grows as n^1.5 on top),
    # while their CPU time is the work itself, linear. Where CPU time carries the work it
    # chooses the class; where it does not (a call that waits on an accelerator, I/O or a
    # sleep: CPU a small share of wall time) the fastest wall time chooses.
    rng = np.random.default_rng(5)
    n = np.repeat(np.geomspace(16, 4096, 10).round(), 2)
    work = 1e-3 + 1e-6 * n
    wall_min = work * (1 + (n / n.max()) ** 1.5) * np.exp(rng.normal(0, 0.01, len(n)))
    table = pd.DataFrame({"n": n, "kind": "slice:n", "status": "ok", "wall_s_min": wall_min,
                          "wall_s_median": wall_min * 1.05,
                          "cpu_s_median": work * np.exp(rng.normal(0, 0.01, len(n)))})
    on_cpu = fit(table, "wall_s_median")
    assert on_cpu.identified_on_ == "cpu_s_median" and on_cpu.complexity_ == "O(n)"
    assert fit(table, "wall_s_median", identify_by="wall_s_min").complexity_ != "O(n)"  # the premise
    waits = table.assign(cpu_s_median=0.1 * table["cpu_s_median"])  # CPU 10% of the wall time
    assert fit(waits, "wall_s_median").identified_on_ == "wall_s_min"
    older = table.drop(columns="cpu_s_median")  # tables from before the column existed
    assert fit(older, "wall_s_median").identified_on_ == "wall_s_min"
    partial = table.assign(cpu_s_median=np.where(n == n.max(), np.nan, table["cpu_s_median"]))
    assert fit(partial, "wall_s_median").identified_on_ == "wall_s_min"


def test_undetermined_dims_name_what_the_data_cannot_decide():
    # a 1.3x range with 10% noise cannot tell n from n², a 128x range can
    narrow = np.array([100, 104, 108, 112, 117, 122, 127, 132], float)
    model = CostModel().fit(pd.DataFrame({"n": narrow}), _noisy(narrow**2, 0.1, seed=4))
    assert model.undetermined_dims() == ["n"]
    assert len({c["n"]["power"] for c in model.consistent_}) > 1
    wide = CostModel().fit(pd.DataFrame({"n": N}), _noisy(N**2, 0.01))
    assert wide.undetermined_dims() == []
    again = CostModel.from_dict(model.to_dict())
    assert again.undetermined_dims() == ["n"]


def test_not_fitted_error_before_fit():
    with pytest.raises(NotFittedError, match="not fitted"):
        CostModel().predict(pd.DataFrame({"n": [1]}))


def test_out_of_range_options():
    X = pd.DataFrame({"n": N})
    y = 1e-3 + 1e-6 * N**2
    far = pd.DataFrame({"n": [4096]})
    clip = CostModel(out_of_range="clip").fit(X, y)
    assert clip.predict(far)[0] == pytest.approx(clip.predict(pd.DataFrame({"n": [1024]}))[0])
    with pytest.raises(FitError, match="out_of_range='raise'"):
        CostModel(out_of_range="raise").fit(X, y).predict(far)


BAD_FITS = [
    pytest.param(pd.DataFrame({"n": [1, 2, 3]}), [1, 2, 3], "at least 5", id="too-few-points"),
    pytest.param(pd.DataFrame({"n": [8] * 6}), [1.0] * 6, r"3 distinct sizes.*\['n'\]", id="single-size"),
    pytest.param(pd.DataFrame({"n": N}), [1, 2, np.nan, 4, 5, 6, 7, 8], "NaN", id="nan-cost"),
    pytest.param(pd.DataFrame({"n": -N}), list(N), "positive", id="negative-sizes"),
    pytest.param(pd.DataFrame({"n": N}), [1, 2, 3], "8 rows but `y` has 3", id="length-mismatch"),
    pytest.param(pd.DataFrame({"n": N}), -N, "non-negative", id="negative-cost"),
    pytest.param(N, N, "DataFrame", id="not-a-dataframe"),
]


@pytest.mark.parametrize("X, y, message", BAD_FITS)
def test_bad_fit_input_gets_a_clear_error(X, y, message):
    with pytest.raises(FitError, match=message):
        CostModel().fit(X, y)


def test_fit_on_a_table_uses_ok_rows_and_the_resolution():
    table = pd.DataFrame({"n": list(N) + [2048], "kind": "slice:n",
                          "status": ["ok"] * 8 + ["oom"],
                          "peak_bytes": list(2.0**20 * N / 8) + [np.nan]})
    model = fit(table, "peak_bytes")
    assert model.complexity_ == "O(n)" and model.n_points_ == 8
    with pytest.raises(FitError, match="resolution"):
        fit(table.assign(peak_bytes=100.0), "peak_bytes")
    with pytest.raises(FitError, match=r"Columns \['wall'\]"):
        fit(table, "wall")


def test_select_chooses_the_class_on_the_design_and_fits_on_every_row():
    n = np.geomspace(8, 1024, 8).round()
    y = 1e-3 + 1e-7 * n**2
    extra = np.linspace(300, 500, 12).round()  # clustered rows, biased high
    X = pd.DataFrame({"n": np.concatenate([n, extra])})
    Y = np.concatenate([y, 1.3 * (1e-3 + 1e-7 * extra**2)])
    design = np.arange(len(X)) < len(n)
    chosen = CostModel().fit(X, Y, select=design)
    alone = CostModel().fit(X[design], Y[design])
    assert chosen.complexity_ == alone.complexity_ == "O(n²)"
    at = pd.DataFrame({"n": [400]})
    assert chosen.predict(at)[0] > alone.predict(at)[0]  # the clustered rows pull the curve there
    assert chosen.n_points_ == len(n) + len(extra)
    with pytest.raises(FitError, match="`select` has 3 entries"):
        CostModel().fit(X, Y, select=[True, False, True])


def test_calibrate_leaves_rows_out_of_the_bound_but_not_the_curve():
    rng = np.random.default_rng(5)
    n = np.tile(np.geomspace(8, 1024, 8).round(), 4)
    y = (1e-3 + 1e-5 * n) * rng.lognormal(0, 0.02, len(n))
    slow = np.arange(len(n)) % 8 == 5  # one size in each of the four rounds read slow,
    # and a stretch of four probes in the third round
    slow[18:22] = True
    y_seen = np.where(slow, 1.7 * y, y)
    X = pd.DataFrame({"n": n})
    every = CostModel().fit(X, y_seen)
    kept = CostModel().fit(X, y_seen, calibrate=~slow)
    assert every.complexity_ == kept.complexity_ == "O(n)"
    np.testing.assert_allclose(kept.predict(X), every.predict(X))  # the same curve
    at = pd.DataFrame({"n": [float(n[5])]})
    assert kept.upper(at)[0] / kept.predict(at)[0] < 1.1 < 1.5 < every.upper(at)[0] / every.predict(at)[0]
    assert len(CostModel.from_dict(kept.to_dict()).to_dict()["calibration"]["residuals"]) == (~slow).sum()
    few = CostModel().fit(X, y_seen, calibrate=np.arange(len(n)) < 3)  # too few left: every row
    assert len(few.to_dict()["calibration"]["residuals"]) == len(n)
    with pytest.raises(FitError, match="`calibrate` has 2 entries"):
        CostModel().fit(X, y_seen, calibrate=[True, False])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_growth_hidden_under_a_constant_is_listed_and_bounded(seed):
    # 90% of the largest cost is a constant and the noise is 5%: cubic growth shows only in
    # the last point or two, and a constant fits about as well
    y = _noisy(9 + (N / N[-1]) ** 3, 0.05, seed=seed)
    model = CostModel().fit(pd.DataFrame({"n": N}), y)
    listed = [(c["n"]["power"], c["n"]["log"]) for c in model.consistent_ + model.hidden_]
    assert (3, 0) in listed and "O(n³)" in model.ambiguous_ + [model.complexity_]
    far = pd.DataFrame({"n": [2 * N[-1], 4 * N[-1]]})
    assert (model.upper(far) >= 9 + np.array([8, 64])).all()  # the truth at 2× and 4×
    assert model.bound_exponents_ == {"n": {"power": 3, "log": 0}}  # the bound's class, not the estimate's
    again = CostModel.from_dict(model.to_dict())
    assert again.hidden_ == model.hidden_
    assert again.bound_complexity_ == model.bound_complexity_ == "O(n³)"


def test_a_clean_curve_is_bounded_by_its_own_class_or_steeper():
    # Where the data pin the growth down, the bound's class is never below the estimate's,
    # and the bound's own curve is the fitted one or a steeper one the data allow.
    model = CostModel().fit(pd.DataFrame({"n": N}), 1e-3 + 1e-7 * N**2)
    assert model.complexity_ == "O(n²)"
    bound = model.bound_exponents_["n"]
    assert (bound["power"], bound["log"]) >= (2, 0)
