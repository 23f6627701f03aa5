"""The beta-binomial oracle and predictive intervals for counts."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats
from scipy.special import expit, gammaln

import binomlab as bl
from binomlab.betabinomial import beta_binomial_nll, intra_class_correlation, predictive_interval
from binomlab.nll import grouped_nll
from binomlab.testing import synthetic_rows


def test_nll_equals_scipy_logpmf_minus_the_binomial_coefficient() -> None:
    rng = np.random.default_rng(0)
    n = rng.integers(1, 60, 200).astype(float)
    k = np.floor(rng.random(200) * (n + 1))
    k[:5], k[5:10] = 0, n[5:10]
    z = rng.normal(0, 2, 200)
    for phi in (0.3, 4.0, 250.0):
        mu = expit(z)
        logpmf = stats.betabinom.logpmf(k, n, mu * phi, (1 - mu) * phi)
        log_coef = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
        expected = -np.sum(logpmf - log_coef) / n.sum()
        assert beta_binomial_nll(z, k, n, phi) == pytest.approx(expected, rel=1e-10)


def test_large_phi_tends_to_the_binomial() -> None:
    rng = np.random.default_rng(1)
    n = rng.integers(1, 30, 50).astype(float)
    k = rng.binomial(n.astype(int), 0.3).astype(float)
    z = rng.normal(-0.8, 0.5, 50)
    # the gap to the binomial is O(n/φ): at φ = 1e12 it is below 1e-10 of the NLL
    assert beta_binomial_nll(z, k, n, 1e9) == pytest.approx(grouped_nll(z, k, n), rel=1e-6)
    assert beta_binomial_nll(z, k, n, 1e12) == pytest.approx(grouped_nll(z, k, n), rel=1e-10)
    assert intra_class_correlation(None) == 0.0
    assert intra_class_correlation(9.0) == pytest.approx(0.1)


@pytest.mark.parametrize("phi", [None, 8.0])
def test_predictive_interval_covers(phi) -> None:
    rng = np.random.default_rng(2)
    mu = rng.uniform(0.05, 0.95, 4000)
    n = rng.integers(5, 200, 4000)
    lower, upper = predictive_interval(mu, n, phi=phi, level=0.9)
    if phi is None:
        k = rng.binomial(n, mu)
    else:
        k = stats.betabinom.rvs(n, mu * phi, (1 - mu) * phi, random_state=rng)
    covered = np.mean((lower <= k) & (k <= upper))
    assert 0.9 <= covered <= 0.96  # discrete quantiles cover at least the level
    assert lower.dtype == np.int64
    with pytest.raises(bl.BinomlabError, match=r"n to be whole numbers"):
        predictive_interval(mu[:2], [3.5, 2], phi=phi)


def test_predictive_interval_takes_one_phi_per_row() -> None:
    rng = np.random.default_rng(3)
    mu, n = rng.uniform(0.05, 0.95, 50), rng.integers(1, 300, 50)
    phi = np.exp(rng.uniform(-1.0, 8.0, 50))
    lower, upper = predictive_interval(mu, n, phi=phi)
    for i in range(50):
        one = predictive_interval(mu[i : i + 1], n[i : i + 1], phi=float(phi[i]))
        assert (lower[i], upper[i]) == (one[0][0], one[1][0])


def test_fitted_and_loaded_models_give_intervals(tmp_path) -> None:
    g = bl.group(synthetic_rows(), ["colour", "size"], "y")
    fitted = bl.fit(g, backend="reference")
    assert fitted.loss == "binomial"
    assert fitted.phi_ is None
    assert fitted.phi_model is None and fitted.predict_phi(g) is None
    lower, upper = fitted.predict_interval(g, 100)
    p = fitted.predict_proba(g)
    assert np.array_equal(lower, stats.binom.ppf(0.025, 100, p).astype(int))
    assert np.array_equal(upper, stats.binom.ppf(0.975, 100, p).astype(int))
    served = bl.load(fitted.export(tmp_path / "m"))
    assert served.loss == "binomial"
    assert served.phi is None
    assert served.phi_model is None and served.predict_phi(g) is None
    rows = g.frame.select(g.features)
    assert np.array_equal(
        served.predict_interval(rows, 100)[1], fitted.predict_interval(rows, 100)[1]
    )
    assert pl.Series(upper - lower).min() > 0


@pytest.mark.parametrize("phi", [0.05, 3.0, 9.99, 10.0, 1e4, 1e8, 1e11, 1e12])
def test_nll_equals_mpmath_at_any_concentration(phi) -> None:
    """50-digit lgammas as the oracle: the plain float64 difference of lgamma(φ) ≈ φ·log φ
    keeps only ~1e-3 nats per group at φ = 1e11, which is why the NLL is not written so."""
    mpmath = pytest.importorskip("mpmath")
    rng = np.random.default_rng(4)
    n = np.concatenate([rng.integers(1, 40, 30), [1, 2, 5_000, 2_000_000]]).astype(float)
    k = np.floor(rng.random(n.size) * (n + 1))
    k[:3], k[3:6] = 0, n[3:6]
    z = np.concatenate([rng.normal(-0.5, 2.0, n.size - 2), [-30.0, 25.0]])
    with mpmath.workdps(50):
        total = mpmath.mpf(0)
        for zi, ki, ni in zip(z, k, n, strict=True):
            mu = 1 / (1 + mpmath.exp(-mpmath.mpf(zi)))
            a, b, f = mu * phi, (1 - mu) * phi, mpmath.mpf(phi)
            total += (
                mpmath.loggamma(ki + a) + mpmath.loggamma(ni - ki + b) - mpmath.loggamma(ni + f)
                - mpmath.loggamma(a) - mpmath.loggamma(b) + mpmath.loggamma(f)
            )  # fmt: skip
        expected = float(-total / n.sum())
    assert beta_binomial_nll(z, k, n, phi) == pytest.approx(expected, rel=1e-12)
    # φ as one value or one per group (a φ network)
    per_group = np.full(n.size, phi)
    assert beta_binomial_nll(z, k, n, per_group) == pytest.approx(expected, rel=1e-12)


def test_log_rising_at_the_switch_to_stirling() -> None:
    """Either side of x = 10, against 50-digit lgammas, for counts from 1 to 10⁷."""
    mpmath = pytest.importorskip("mpmath")
    from binomlab.betabinomial import log_rising

    x = np.array([9.999999, 10.0, 10.000001, 12.5, 1e3, 1e9])
    for m in (0.0, 1.0, 37.0, 1e7):
        got = log_rising(np.log(x), np.full(x.size, m))
        with mpmath.workdps(50):
            exact = [float(mpmath.loggamma(mpmath.mpf(v) + m) - mpmath.loggamma(v)) for v in x]
        np.testing.assert_allclose(got, exact, rtol=1e-14, atol=0 if m else 1e-300)


@pytest.mark.parametrize("phi", [0.0, -1.0, np.inf, np.nan, np.array([2.0, 0.0])])
def test_nll_refuses_a_phi_not_positive_and_finite(phi) -> None:
    z, k, n = np.zeros(2), np.ones(2), np.full(2, 3.0)
    with pytest.raises(bl.BinomlabError, match=r"Expected phi to be positive and finite"):
        beta_binomial_nll(z, k, n, phi)
