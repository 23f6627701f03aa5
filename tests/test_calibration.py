"""Reliability tables on groups equal the same tables on the expanded rows; Wilson covers."""

from __future__ import annotations

import matplotlib
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom
from statsmodels.stats.proportion import proportion_confint

from binomlab.calibration import calibration, plot_calibration, wilson_interval
from binomlab.errors import BinomlabError, InvalidCountsError, InvalidProbabilityError
from binomlab.grouped import Grouped

matplotlib.use("Agg")

COLUMNS = [
    "bin",
    "p_min",
    "p_max",
    "mean_predicted",
    "observed",
    "trials",
    "successes",
    "lower",
    "upper",
    "dispersion",
]


def make_grouped(n: np.ndarray, k: np.ndarray, x: np.ndarray | None = None) -> Grouped:
    x = np.arange(len(n), dtype=np.int64) if x is None else x
    frame = pl.DataFrame(
        {"x": x, "n": np.asarray(n, dtype=np.int64), "k": np.asarray(k, dtype=np.int64)}
    )
    return Grouped(frame, ["x"])


def random_case(seed: int, groups: int = 60, ties: bool = False) -> tuple[Grouped, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 40, size=groups)
    proba = rng.beta(2.0, 3.0, size=groups)
    if ties:
        proba = np.round(proba, 1)
    k = rng.binomial(n, proba)
    return make_grouped(n, k), proba


def raw_table(y: np.ndarray, p: np.ndarray, bin_of: np.ndarray) -> pl.DataFrame:
    """The reliability table computed row by row on the expanded data, statsmodels' Wilson."""
    rows = []
    for b in np.unique(bin_of):
        inside = bin_of == b
        n, k = int(inside.sum()), int(y[inside].sum())
        lower, upper = proportion_confint(k, n, alpha=0.05, method="wilson")
        rows.append(
            {
                "bin": int(b),
                "p_min": p[inside].min(),
                "p_max": p[inside].max(),
                "mean_predicted": p[inside].mean(),
                "observed": k / n,
                "trials": n,
                "successes": k,
                "lower": float(lower),
                "upper": float(upper),
            }
        )
    return pl.DataFrame(rows, schema_overrides={"bin": pl.Int64, "trials": pl.Int64})


def expanded(data: Grouped, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = data.expand(label="y")["y"].to_numpy()
    return y, np.repeat(proba, data.frame["n"].to_numpy())


def assert_tables_equal(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got.columns == COLUMNS
    assert got.schema["bin"] == got.schema["trials"] == got.schema["successes"] == pl.Int64
    assert got["bin"].to_list() == want["bin"].to_list()
    assert got["trials"].to_list() == want["trials"].to_list()
    assert got["successes"].to_list() == want["successes"].to_list()
    for column in ("p_min", "p_max", "mean_predicted", "observed", "lower", "upper"):
        np.testing.assert_allclose(got[column], want[column], rtol=1e-9, atol=1e-12, err_msg=column)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("bins", [1, 4, 10, 25])
def test_uniform_table_equals_raw_rows(bins: int, ties: bool) -> None:
    data, proba = random_case(bins, ties=ties)
    y, p = expanded(data, proba)
    got = calibration(data, proba, bins, strategy="uniform")
    assert_tables_equal(got, raw_table(y, p, np.minimum(np.floor(bins * p), bins - 1)))
    assert got["trials"].sum() == data.trials


def quantile_bins(p: np.ndarray, bins: int) -> np.ndarray:
    edges = np.quantile(p, np.arange(1, bins) / bins, method="inverted_cdf")
    return np.unique(np.searchsorted(edges, p, side="left"), return_inverse=True)[1]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("bins", [1, 3, 10, 40])
def test_quantile_table_equals_raw_rows(bins: int, ties: bool) -> None:
    data, proba = random_case(100 + bins, ties=ties)
    y, p = expanded(data, proba)
    got = calibration(data, proba, bins)  # quantile is the default
    assert_tables_equal(got, raw_table(y, p, quantile_bins(p, bins)))
    assert got["trials"].sum() == data.trials
    assert got["bin"].to_list() == list(range(got.height))
    if not ties and bins <= 10:
        # 60 distinct predictions and about 1,200 trials: every quantile bin is used.
        assert got.height == bins
        shares = got["trials"].to_numpy() / data.trials
        assert np.all(np.abs(shares - 1 / bins) < 0.06)


@settings(max_examples=100, deadline=None)
@given(
    n=st.lists(st.integers(1, 15), min_size=1, max_size=20),
    levels=st.integers(1, 12),
    bins=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
)
def test_quantile_bins_property(n: list[int], levels: int, bins: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    trials = np.array(n)
    proba = rng.integers(0, levels + 1, size=len(n)) / levels  # ties, and 0 and 1
    data = make_grouped(trials, rng.binomial(trials, proba))
    y, p = expanded(data, proba)
    got = calibration(data, proba, bins)
    assert_tables_equal(got, raw_table(y, p, quantile_bins(p, bins)))
    # Groups with equal predictions share a bin: bins do not overlap.
    assert np.all(got["p_max"].to_numpy()[:-1] < got["p_min"].to_numpy()[1:])


def test_groups_strategy_has_one_row_per_group() -> None:
    rng = np.random.default_rng(7)
    n = rng.integers(1, 50, size=30)
    proba = rng.uniform(0.05, 0.95, size=30)
    labels = np.array([f"g{i:02d}" for i in range(30)])
    data = make_grouped(n, rng.binomial(n, proba), x=labels)
    got = calibration(data, proba, strategy="groups")
    assert got.columns == ["bin", "x", *COLUMNS[1:]]
    assert got.height == len(data)
    assert got["bin"].to_list() == list(range(30))
    assert got["x"].to_list() == labels.tolist()
    assert got["trials"].to_list() == data.frame["n"].to_list()
    assert got["successes"].to_list() == data.frame["k"].to_list()
    np.testing.assert_array_equal(got["mean_predicted"], proba)
    np.testing.assert_array_equal(got["p_min"], proba)
    np.testing.assert_allclose(got["observed"], data.frame["k"] / data.frame["n"], rtol=1e-15)
    lower, upper = proportion_confint(data.frame["k"], data.frame["n"], method="wilson")
    np.testing.assert_allclose(got["lower"], lower, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got["upper"], upper, rtol=1e-9, atol=1e-12)


def test_fitted_model_and_level() -> None:
    data, proba = random_case(3)

    class Stub:
        def predict_proba(self, data: Grouped) -> np.ndarray:
            return proba

    got = calibration(data, Stub(), 5, level=0.8)
    assert got.equals(calibration(data, proba, 5, level=0.8))
    lower, upper = proportion_confint(got["successes"], got["trials"], alpha=0.2, method="wilson")
    np.testing.assert_allclose(got["lower"], lower, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got["upper"], upper, rtol=1e-9, atol=1e-12)


def test_wilson_matches_statsmodels_and_edges() -> None:
    k = np.array([0, 1, 5, 19, 20, 0, 37])
    n = np.array([20, 20, 20, 20, 20, 1, 100])
    for level in (0.5, 0.9, 0.95, 0.99):
        lower, upper = wilson_interval(k, n, level=level)
        want_lower, want_upper = proportion_confint(k, n, alpha=1 - level, method="wilson")
        np.testing.assert_allclose(lower, want_lower, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(upper, want_upper, rtol=1e-12, atol=1e-15)
        assert np.all(lower[k == 0] == 0.0)
        assert np.all(upper[k == n] == 1.0)
        assert np.all((lower <= k / n) & (k / n <= upper))
    lower, upper = wilson_interval(3, 10)
    assert lower.shape == upper.shape == ()
    assert float(lower) == pytest.approx(0.10779127, abs=1e-8)
    assert float(upper) == pytest.approx(0.60322185, abs=1e-8)


def test_wilson_coverage_by_simulation() -> None:
    rng = np.random.default_rng(20240607)
    draws = 4000
    grid = np.round(np.arange(0.05, 0.951, 0.05), 2)
    coverage = {}
    for n in (20, 100, 1000):
        for p in grid:
            k = rng.binomial(n, p, size=draws)
            lower, upper = wilson_interval(k, np.full(draws, n))
            covered = float(np.mean((lower <= p) & (p <= upper)))
            coverage[n, p] = covered
            # The simulation agrees with the exact coverage, Σ over covered k of the pmf.
            support = np.arange(n + 1)
            low, up = wilson_interval(support, np.full(n + 1, n))
            exact = binom.pmf(support, n, p)[(low <= p) & (p <= up)].sum()
            assert abs(covered - exact) < 4.5 * np.sqrt(exact * (1 - exact) / draws)
    values = np.array(list(coverage.values()))
    assert 0.94 <= values.mean() <= 0.96
    assert values.min() >= 0.90, min(coverage, key=coverage.get)


def test_plot_two_models() -> None:
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes
    from matplotlib.container import ErrorbarContainer

    data, proba = random_case(11)
    rng = np.random.default_rng(0)
    other = np.clip(proba + rng.normal(0, 0.1, size=len(proba)), 0.0, 1.0)
    ax = plot_calibration(data, {"good": proba, "noisy": other}, bins=8)
    try:
        assert isinstance(ax, Axes)
        series = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert [c.get_label() for c in series] == ["good", "noisy"]
        table = calibration(data, proba, 8)
        x, y = series[0].lines[0].get_data()
        np.testing.assert_allclose(x, table["mean_predicted"])
        np.testing.assert_allclose(y, table["observed"])
        diagonal = [line for line in ax.lines if line.get_label() == "perfectly calibrated"]
        assert len(diagonal) == 1
        np.testing.assert_array_equal(diagonal[0].get_xydata(), [[0, 0], [1, 1]])
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == ["perfectly calibrated", "good", "noisy"]
        assert ax.get_xlabel() == "mean predicted probability"
        assert ax.get_ylabel() == "observed rate"
        # limits="data": the axes span the predictions and what is drawn, with a margin
        low, high = ax.get_xlim()
        assert ax.get_ylim() == (low, high)
        drawn = np.concatenate([proba, other, table["observed"]])
        assert low <= drawn.min() and high >= drawn.max()
        assert low >= max(0.0, drawn.min() - 0.06) and high <= min(1.0, drawn.max() + 0.06)
    finally:
        plt.close(ax.figure)
    ax = plot_calibration(data, proba, limits="unit", histogram=False)
    try:
        assert ax.get_xlim() == (0.0, 1.0)
        assert ax.get_ylim() == (0.0, 1.0)
    finally:
        plt.close(ax.figure)


def test_plot_groups_sizes_points_by_trials() -> None:
    import matplotlib.pyplot as plt

    data, proba = random_case(12, groups=15)
    fig, given_ax = plt.subplots()
    try:
        ax = plot_calibration(data, proba, strategy="groups", ax=given_ax)
        assert ax is given_ax
        (points,) = ax.collections[:1]
        assert points.get_label() == "model"
        sizes = points.get_sizes()
        trials = data.frame["n"].to_numpy()
        assert len(sizes) == len(data)
        big = trials >= trials.max() / 50  # above the minimum marker size
        np.testing.assert_allclose(sizes[big] / trials[big], 200 / trials.max())
    finally:
        plt.close(fig)


def test_bad_arguments_raise() -> None:
    data, proba = random_case(13)
    with pytest.raises(
        BinomlabError,
        match=r"Expected one of \('quantile', 'uniform', 'groups'\)\. Received: strategy='x'",
    ):
        calibration(data, proba, strategy="x")
    for bins in (0, -3, 2.5, True, "10"):
        with pytest.raises(BinomlabError, match=r"integer in \[1, 100,000\] .*Received: bins="):
            calibration(data, proba, bins)
    with pytest.raises(BinomlabError, match=r"level to be in \(0, 1\)\. Received: level=1\.5"):
        calibration(data, proba, level=1.5)
    with pytest.raises(InvalidProbabilityError, match="length 59 but the data has 60 groups"):
        calibration(data, proba[:-1])
    with pytest.raises(BinomlabError, match="at least one model"):
        plot_calibration(data, {})
    with pytest.raises(InvalidCountsError, match="trials > 0"):
        wilson_interval([0, 1], [0, 3])
    with pytest.raises(InvalidCountsError, match="0 <= successes <= trials"):
        wilson_interval([4], [3])


def test_overdispersed_intervals_cover_beta_binomial_truth() -> None:
    """With extra-binomial variation, plain Wilson intervals undercover; widened ones do not."""
    from scipy import stats

    rng = np.random.default_rng(5)
    groups, trials, rho = 200, 400, 0.02
    phi_bb = 1 / rho - 1
    truth = rng.uniform(0.1, 0.9, groups)
    frame = pl.DataFrame({"g": np.arange(groups), "n": np.full(groups, trials)})
    plain, widened = [], []
    for _ in range(30):
        k = stats.betabinom.rvs(trials, truth * phi_bb, (1 - truth) * phi_bb, random_state=rng)
        data = Grouped(frame.with_columns(k=pl.Series(k)), ["g"])
        for overdispersed, sink in ((False, plain), (True, widened)):
            table = calibration(data, truth, strategy="groups", overdispersed=overdispersed)
            covered = (table["lower"].to_numpy() <= truth) & (truth <= table["upper"].to_numpy())
            sink.append(float(covered.mean()))
        # quasi-binomial dispersion estimates 1 + (n - 1) rho = 8.98
        assert table["dispersion"][0] == pytest.approx(1 + (trials - 1) * rho, rel=0.3)
    assert np.mean(plain) < 0.6
    assert np.mean(widened) == pytest.approx(0.95, abs=0.03)
    fixed = calibration(data, truth, strategy="groups", overdispersed=4.0)
    assert (fixed["dispersion"] == 4.0).all()
    with pytest.raises(BinomlabError, match=r"Received: 0\.5"):
        calibration(data, truth, overdispersed=0.5)
