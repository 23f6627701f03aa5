"""Grouped metrics equal the same metrics on the expanded 0/1 rows (and statsmodels' GLM)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import gammaln, xlogy
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from binomlab.errors import BinomlabError, EmptyDataError, InvalidProbabilityError
from binomlab.grouped import Grouped
from binomlab.metrics import evaluate, expected_calibration_error

REL = 1e-9


def make_grouped(n: np.ndarray, k: np.ndarray) -> Grouped:
    frame = pl.DataFrame(
        {
            "x": np.arange(len(n), dtype=np.int64),
            "n": np.asarray(n, dtype=np.int64),
            "k": np.asarray(k, dtype=np.int64),
        }
    )
    return Grouped(frame, ["x"])


def random_case(seed: int, groups: int = 40) -> tuple[Grouped, np.ndarray]:
    """Random counts with groups of n = 1, k = 0 and k = n, and random predictions."""
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 31, size=groups)
    n[:3] = [1, 7, 12]
    true_p = rng.uniform(0.01, 0.99, size=groups)
    k = rng.binomial(n, true_p)
    k[1] = 0
    k[2] = n[2]
    proba = np.clip(true_p + rng.normal(0.0, 0.15, size=groups), 0.01, 0.99)
    return make_grouped(n, k), proba


def expanded(data: Grouped, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(y, p) of the raw rows; expand() keeps group order, so p is repeated n times."""
    y = data.expand(label="y")["y"].to_numpy()
    p = np.repeat(proba, data.frame["n"].to_numpy())
    return y, p


def ece_reference(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE on raw rows: Σ_b (rows_b / rows) |mean p_b - mean y_b|."""
    bin_of = np.minimum(np.floor(bins * p), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = bin_of == b
        if inside.any():
            total += inside.mean() * abs(p[inside].mean() - y[inside].mean())
    return total


def check_against_rows(data: Grouped, proba: np.ndarray) -> dict[str, float | int]:
    result = evaluate(data, proba)
    y, p = expanded(data, proba)
    assert result["trials"] == len(y) == data.trials
    assert result["successes"] == int(y.sum()) == data.successes
    assert result["groups"] == len(data)
    assert result["nll"] == pytest.approx(log_loss(y, p, labels=[0, 1]), rel=REL)
    assert result["brier"] == pytest.approx(brier_score_loss(y, p, labels=[0, 1]), rel=REL)
    assert result["ece"] == pytest.approx(ece_reference(y, p), rel=REL, abs=1e-12)
    assert result["log_likelihood"] == pytest.approx(-result["nll"] * len(y), rel=REL)
    if 0 < y.sum() < len(y):
        assert result["auc"] == pytest.approx(roc_auc_score(y, p), rel=REL)
    else:
        assert math.isnan(result["auc"])
    return result


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_raw_row_metrics(seed: int) -> None:
    data, proba = random_case(seed)
    result = check_against_rows(data, proba)
    ints = {"trials", "groups", "successes", "df_resid"}
    texts = {"df_rule", "df_note"}
    assert all(
        type(v) is float for k, v in result.items() if k not in {*ints, *texts, "gof_reliable"}
    )
    assert all(type(result[k]) is str for k in texts)
    assert all(type(result[k]) is int for k in ints)
    assert type(result["gof_reliable"]) is bool


@pytest.mark.parametrize("seed", [0, 1])
def test_auc_with_ties_equals_sklearn(seed: int) -> None:
    data, proba = random_case(seed, groups=60)
    tied = np.round(proba, 1)
    assert len(np.unique(tied)) < len(tied)  # the test really has ties
    y, p = expanded(data, tied)
    assert evaluate(data, tied)["auc"] == pytest.approx(roc_auc_score(y, p), rel=REL)


@st.composite
def grouped_cases(draw: st.DrawFn) -> tuple[Grouped, np.ndarray]:
    groups = draw(st.integers(1, 25))
    n = np.array(draw(st.lists(st.integers(1, 20), min_size=groups, max_size=groups)))
    k = np.array([draw(st.integers(0, int(m))) for m in n])
    proba = np.array(
        draw(st.lists(st.floats(0.01, 0.99), min_size=groups, max_size=groups)), dtype=float
    )
    if draw(st.booleans()):
        # Many ties, and values on the ECE bin edges; kept off 0 and 1, which sklearn clips.
        proba = np.clip(np.round(proba, 1), 0.1, 0.9)
    return make_grouped(n, k), proba


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grouped_cases())
def test_metrics_equal_raw_row_metrics_property(case: tuple[Grouped, np.ndarray]) -> None:
    data, proba = case
    check_against_rows(data, proba)


@settings(max_examples=100, deadline=None)
@given(grouped_cases())
def test_deviance_is_nll_minus_saturated(case: tuple[Grouped, np.ndarray]) -> None:
    data, proba = case
    result = evaluate(data, proba)
    n = data.frame["n"].to_numpy().astype(float)
    k = data.frame["k"].to_numpy().astype(float)
    saturated = np.sum(xlogy(k, k / n) + xlogy(n - k, (n - k) / n))
    expected = 2.0 * result["trials"] * result["nll"] + 2.0 * saturated
    assert result["deviance"] == pytest.approx(expected, rel=1e-8, abs=1e-9)
    assert result["deviance"] >= 0.0
    family = sm.families.Binomial()
    reference = family.deviance(endog=k / n, mu=proba, var_weights=n)
    assert result["deviance"] == pytest.approx(reference, rel=1e-8, abs=1e-9)


@pytest.fixture(scope="module")
def star98() -> tuple[Grouped, object]:
    dataset = sm.datasets.star98.load_pandas()
    endog = dataset.endog[["NABOVE", "NBELOW"]]
    fitted = sm.GLM(endog, sm.add_constant(dataset.exog), family=sm.families.Binomial()).fit()
    k = endog["NABOVE"].to_numpy()
    n = k + endog["NBELOW"].to_numpy()
    return make_grouped(n, k), fitted


def test_glm_statistics_equal_statsmodels_on_star98(star98: tuple[Grouped, object]) -> None:
    data, fitted = star98
    params = int(fitted.df_model) + 1
    result = evaluate(data, np.asarray(fitted.mu), params=params)
    assert result["groups"] == 303
    assert result["deviance"] == pytest.approx(fitted.deviance, rel=REL)
    assert result["pearson_chi2"] == pytest.approx(fitted.pearson_chi2, rel=REL)
    assert result["dispersion"] == pytest.approx(fitted.pearson_chi2 / fitted.df_resid, rel=REL)
    # statsmodels' log-likelihood includes the binomial coefficients; ours leaves them out.
    n = data.frame["n"].to_numpy()
    k = data.frame["k"].to_numpy()
    log_binom = np.sum(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1))
    assert result["log_likelihood"] + log_binom == pytest.approx(fitted.llf, rel=REL)


def test_dispersion_defaults_and_degrees_of_freedom() -> None:
    data, proba = random_case(3)
    result = evaluate(data, proba)
    assert result["dispersion"] == pytest.approx(result["pearson_chi2"] / 40, rel=REL)
    assert evaluate(data, proba, params=5)["dispersion"] == pytest.approx(
        result["pearson_chi2"] / 35, rel=REL
    )
    assert math.isnan(evaluate(data, proba, params=40)["dispersion"])
    with pytest.raises(BinomlabError, match=r"non-negative integer\. Received: params=-1"):
        evaluate(data, proba, params=-1)


def test_pearson_chi2_by_hand() -> None:
    data = make_grouped(np.array([10, 4]), np.array([3, 4]))
    proba = np.array([0.5, 0.8])
    expected = (3 - 5) ** 2 / (10 * 0.25) + (4 - 3.2) ** 2 / (4 * 0.8 * 0.2)
    assert evaluate(data, proba)["pearson_chi2"] == pytest.approx(expected, rel=1e-12)


def test_certain_predictions_give_zero_or_inf() -> None:
    agree = make_grouped(np.array([5, 6, 10]), np.array([0, 6, 4]))
    proba = np.array([0.0, 1.0, 0.4])
    result = evaluate(agree, proba)
    # Groups predicted with certainty and right contribute nothing, and nothing is clipped.
    only_third = evaluate(make_grouped(np.array([10]), np.array([4])), np.array([0.4]))
    for name in ("deviance", "pearson_chi2"):
        assert result[name] == pytest.approx(only_third[name], rel=1e-12)
    assert result["log_likelihood"] == pytest.approx(only_third["log_likelihood"], rel=1e-12)
    assert result["nll"] == pytest.approx(-only_third["log_likelihood"] / 21, rel=1e-12)

    wrong = make_grouped(np.array([5, 6]), np.array([1, 6]))
    result = evaluate(wrong, np.array([0.0, 1.0]))
    assert result["nll"] == math.inf
    assert result["deviance"] == math.inf
    assert result["pearson_chi2"] == math.inf
    assert result["log_likelihood"] == -math.inf


def test_auc_is_nan_without_both_outcomes() -> None:
    data = make_grouped(np.array([3, 4]), np.array([3, 4]))
    result = evaluate(data, np.array([0.2, 0.7]))
    assert math.isnan(result["auc"])
    assert result["brier"] == pytest.approx((3 * 0.8**2 + 4 * 0.3**2) / 7, rel=1e-12)


def test_expected_calibration_error_bins() -> None:
    data, proba = random_case(4)
    y, p = expanded(data, proba)
    for bins in (1, 5, 10, 17):
        assert expected_calibration_error(data, proba, bins=bins) == pytest.approx(
            ece_reference(y, p, bins), rel=REL, abs=1e-12
        )
    assert evaluate(data, proba)["ece"] == expected_calibration_error(data, proba)
    with pytest.raises(BinomlabError, match=r"integer in \[1, 100,000\] .*Received: bins=0"):
        expected_calibration_error(data, proba, bins=0)


class StubModel:
    """A fitted model as far as evaluate is concerned: predict_proba(data) and n_params_."""

    def __init__(self, proba: np.ndarray, n_params: int | None = None) -> None:
        self.proba = proba
        self.calls = 0
        if n_params is not None:
            self.n_params_ = n_params

    def predict_proba(self, data: Grouped) -> np.ndarray:
        self.calls += 1
        assert isinstance(data, Grouped)
        return self.proba.astype(np.float32)


def test_fitted_model_is_accepted() -> None:
    data, proba = random_case(5)
    model = StubModel(proba, n_params=4)
    result = evaluate(data, model)
    assert model.calls == 1
    reference = evaluate(data, proba.astype(np.float32).astype(np.float64))
    assert result == reference
    # a model that was not fitted on these groups: held-out, df = groups (not its n_params_)
    assert (result["df_rule"], result["df_resid"]) == ("held-out", 40)
    assert result["dispersion"] == pytest.approx(result["pearson_chi2"] / 40, rel=REL)
    given = evaluate(data, model, params=4)
    assert (given["df_rule"], given["df_resid"]) == ("params", 36)
    assert given["dispersion"] == pytest.approx(result["pearson_chi2"] / 36, rel=REL)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.full(39, 0.5), r"length 39 but the data has 40 groups"),
        (np.full((40, 2), 0.5), r"must be 1-D .* shape \(40, 2\)"),
        (np.full(40, 0.5)[None, :], r"shape \(1, 40\)"),
        (np.array(0.5), r"shape \(\)"),
    ],
)
def test_wrong_shape_raises(bad: np.ndarray, match: str) -> None:
    data, _ = random_case(6)
    with pytest.raises(InvalidProbabilityError, match=match):
        evaluate(data, bad)


@pytest.mark.parametrize(
    ("index", "value", "shown"),
    [(7, np.nan, "nan"), (3, 1.2, "1.2"), (0, -0.1, "-0.1"), (11, np.inf, "inf")],
)
def test_bad_values_raise_and_leave_the_array_alone(index: int, value: float, shown: str) -> None:
    data, proba = random_case(7)
    proba[index] = value
    proba[25] = 2.0  # a second bad value, after the first
    before = proba.copy()
    with pytest.raises(
        InvalidProbabilityError, match=rf"2 bad value\(s\), the first at index {index}: {shown}"
    ):
        evaluate(data, proba)
    np.testing.assert_array_equal(proba, before)


def test_callers_array_is_not_modified_or_aliased() -> None:
    data, proba = random_case(8)
    proba32 = proba.astype(np.float32)
    before = proba.copy()
    evaluate(data, proba)
    evaluate(data, proba32)
    np.testing.assert_array_equal(proba, before)
    from binomlab._proba import resolve_proba

    resolved = resolve_proba(data, proba)
    assert resolved.dtype == np.float64
    assert not np.shares_memory(resolved, proba)


def test_list_and_polars_inputs_are_accepted() -> None:
    data, proba = random_case(9)
    reference = evaluate(data, proba)
    assert evaluate(data, proba.tolist()) == reference
    assert evaluate(data, pl.Series(proba)) == reference


@pytest.mark.parametrize("bad", [["a"] * 40, [object()] * 40, np.full(40, 0.5 + 0j), None])
def test_non_numeric_raises_type_error(bad: object) -> None:
    data, _ = random_case(10)
    with pytest.raises(TypeError, match="must be numeric, got"):
        evaluate(data, bad)


def test_missing_predictions_are_invalid_not_numeric() -> None:
    data, proba = random_case(11)
    with_null = [*proba[:5].tolist(), None, *proba[6:].tolist()]
    with pytest.raises(
        InvalidProbabilityError, match=r"1 bad value\(s\), the first at index 5: nan"
    ):
        evaluate(data, with_null)


def test_grouped_cannot_be_empty() -> None:
    frame = pl.DataFrame({"x": [1], "n": [1], "k": [0]}).clear()
    with pytest.raises(EmptyDataError):
        Grouped(frame, ["x"])


def test_goodness_of_fit_p_values_and_their_calibration() -> None:
    """Under a true binomial model the p-values are uniform; under overdispersion they are not."""
    from scipy import stats

    rng = np.random.default_rng(11)
    groups, trials = 60, 200
    p = rng.uniform(0.2, 0.8, groups)
    frame = pl.DataFrame({"g": np.arange(groups), "n": np.full(groups, trials)})
    binomial_p, overdispersed_p = [], []
    for _ in range(400):
        k = rng.binomial(trials, p)
        result = evaluate(Grouped(frame.with_columns(k=pl.Series(k)), ["g"]), p)
        assert result["gof_reliable"]
        assert result["pearson_p"] == pytest.approx(stats.chi2.sf(result["pearson_chi2"], groups))
        assert result["deviance_p"] == pytest.approx(stats.chi2.sf(result["deviance"], groups))
        binomial_p.append(result["pearson_p"])
        rho = 0.02  # intra-group correlation: beta-binomial with phi = 1/rho - 1
        k_over = stats.betabinom.rvs(trials, p * (1 / rho - 1), (1 - p) * (1 / rho - 1),
                                     random_state=rng)  # fmt: skip
        over = evaluate(Grouped(frame.with_columns(k=pl.Series(k_over)), ["g"]), p)
        overdispersed_p.append(over["pearson_p"])
        # quasi-binomial dispersion estimates 1 + (n - 1) rho
        assert over["dispersion"] > 1.5
    assert np.mean(np.array(binomial_p) < 0.05) == pytest.approx(0.05, abs=0.03)
    assert np.mean(np.array(overdispersed_p) < 0.05) > 0.95


def test_goodness_of_fit_is_flagged_unreliable_on_sparse_groups() -> None:
    data = Grouped(pl.DataFrame({"g": [0, 1, 2], "n": [2, 3, 1], "k": [1, 0, 1]}), ["g"])
    result = evaluate(data, [0.5, 0.3, 0.6], params=1)
    assert result["gof_reliable"] is False
    assert 0 <= result["pearson_p"] <= 1
    none_left = evaluate(data, [0.5, 0.3, 0.6], params=3)
    assert np.isnan(none_left["pearson_p"])
