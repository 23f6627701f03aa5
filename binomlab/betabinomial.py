"""The beta-binomial likelihood on grouped counts, and predictive intervals for counts.

Groups of trials often vary more than a binomial allows (clicks from the same site on the same
day are correlated). The beta-binomial adds one concentration ``φ``: success probabilities
vary around the mean ``μ`` as Beta(μφ, (1 − μ)φ), so a group's variance is
``nμ(1 − μ)(1 + (n − 1)ρ)`` with intra-group correlation ``ρ = 1 / (1 + φ)``. As ``φ → ∞`` it
becomes the binomial. These NumPy functions are the oracle the plugins' losses are tested
against.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import gammaln, log_expit

from binomlab._checks import check_fraction
from binomlab.errors import BinomlabError

__all__ = [
    "PHI_RANGE",
    "beta_binomial_nll",
    "intra_class_correlation",
    "log_rising",
    "phi_from_log",
    "predictive_interval",
]

PHI_RANGE = (1e-8, 1e12)
"""Where the plugins' losses clamp ``φ`` (``ρ`` from about 1 down to 1e-12, the binomial)."""


def phi_from_log(log_phi: np.ndarray) -> np.ndarray:
    """``φ = exp(θ)`` for ``θ = log φ`` float64 ``[rows]``, clamped to :data:`PHI_RANGE` as the
    losses clamp it in training."""
    return np.exp(np.clip(np.asarray(log_phi, np.float64), *np.log(PHI_RANGE)))


def beta_binomial_nll(z: np.ndarray, k: np.ndarray, n: np.ndarray, phi: Any) -> float:
    """Per-trial beta-binomial NLL without the binomial coefficient.

    ``−Σ[lgamma(k+α) + lgamma(n−k+β) − lgamma(n+φ) − lgamma(α) − lgamma(β) + lgamma(φ)] / Σn``
    with ``α = μφ``, ``β = (1 − μ)φ``, ``μ = sigmoid(z)``; ``z``, ``k``, ``n`` are ``[groups]``
    (computed in float64), ``phi > 0`` one value or float64 ``[groups]``; raises
    :class:`~binomlab.errors.BinomlabError` for a ``phi`` not positive and finite.

    Each pair ``lgamma(x + m) − lgamma(x)`` is :func:`log_rising`, which does not subtract two
    huge lgammas: at ``φ = 1e11`` the plain difference of ``lgamma(φ) ≈ 2.7e12`` keeps only
    about 1e-3 of a nat per group, while the NLL tends to the binomial's as ``φ → ∞``.
    """
    z, k, n = (np.asarray(v, dtype=np.float64) for v in (z, k, n))
    phi = np.asarray(phi, dtype=np.float64)
    if not np.all(np.isfinite(phi) & (phi > 0)):
        bad = phi if phi.ndim == 0 else phi[~(np.isfinite(phi) & (phi > 0))][0]
        msg = (
            f"Expected phi to be positive and finite (φ → ∞ is the binomial: use "
            f"binomlab.nll.grouped_nll). Received: phi={float(bad)!r}"
        )
        raise BinomlabError(msg)
    log_phi = np.log(phi)
    ll = (
        log_rising(log_expit(z) + log_phi, k)
        + log_rising(log_expit(-z) + log_phi, n - k)
        - log_rising(np.broadcast_to(log_phi, z.shape), n)
    )
    return float(-np.sum(ll) / np.sum(n))


_STIRLING_FROM = 10.0
"""From it, :func:`log_rising` uses Stirling's series (see :func:`_binet`)."""


_BINET = (1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188, 691 / 360360, 1 / 156)
"""The magnitudes of the alternating terms of Stirling's series, in ``1/x, 1/x³, …``."""


def _binet(x: np.ndarray) -> np.ndarray:
    """``ω(x) = lgamma(x) − (x − ½)·log x + x − ½·log 2π`` for ``x >= 10``: seven terms of
    Stirling's series (the next, ``3617/122400·x⁻¹⁵``, is below 3e-17)."""
    inv = 1.0 / x
    inv2 = inv * inv
    total = np.full(x.shape, _BINET[-1])
    for term in reversed(_BINET[:-1]):
        total = term - inv2 * total
    return inv * total


def log_rising(log_x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``lgamma(x + m) − lgamma(x)``, the log of the rising factorial, for ``x = exp(log_x)``
    and counts ``m >= 0`` (float64 ``[groups]``; 0 where ``m`` is 0).

    From ``x >= 10`` as ``(x − ½)·log1p(m/x) + m·(log x + log1p(m/x)) − m + ω(x + m) − ω(x)``
    (Stirling's series), without subtracting two huge lgammas however large ``x``; below,
    as the difference of scipy's ``gammaln``.
    """
    log_x, m = np.broadcast_arrays(np.asarray(log_x, np.float64), np.asarray(m, np.float64))
    x = np.exp(log_x)
    large = x >= _STIRLING_FROM
    out = np.zeros(x.shape)
    small = ~large & (m > 0)
    out[small] = gammaln(x[small] + m[small]) - gammaln(x[small])
    xl, ml, log_xl = x[large], m[large], log_x[large]
    log1p = np.log1p(ml / xl)
    out[large] = (xl - 0.5) * log1p + ml * (log_xl + log1p) - ml + _binet(xl + ml) - _binet(xl)
    return out


def intra_class_correlation(phi: float | None) -> float:
    """``ρ = 1 / (1 + φ)``: 0 for the binomial (``phi`` None)."""
    return 0.0 if phi is None else 1.0 / (1.0 + phi)


MAX_TRIALS = 2**52
"""The largest ``n`` of a predictive interval: above it float64 no longer counts every trial."""


def predictive_interval(
    mu: np.ndarray, n: Any, *, phi: float | None, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed predictive interval for the number of successes out of ``n`` trials.

    Parameters
    ----------
    mu
        Success probabilities, float64 ``[rows]``.
    n
        Trials: an int, or ints ``[rows]``.
    phi
        Beta-binomial concentration: one value, float64 ``[rows]`` (one per row, from a model
        whose φ is an output of the network), or None for the binomial.
    level
        Coverage, in (0, 1).

    Returns
    -------
    (lower, upper)
        int64 ``[rows]``: the ``(1 − level)/2`` and ``(1 + level)/2`` quantiles of the count.

    Raises
    ------
    BinomlabError
        ``level`` not a number in (0, 1), or ``n`` not whole numbers >= 0, one or one per
        row.
    """
    level = check_fraction(level, name="level")
    try:
        trials = np.broadcast_to(np.asarray(n), np.shape(mu))
    except ValueError:
        msg = (
            f"Expected n to be one number of trials or one per row ({np.size(mu)}). "
            f"Received: n of shape {np.shape(n)}"
        )
        raise BinomlabError(msg) from None
    if (
        not np.issubdtype(trials.dtype, np.number)
        or np.any(trials < 0)
        or np.any(trials != np.floor(trials))
        or np.any(trials > MAX_TRIALS)
    ):
        msg = (
            f"Expected n to be whole numbers in [0, 2**52] (counted exactly in float64). "
            f"Received: n={n!r}"
        )
        raise BinomlabError(msg)
    trials = trials.astype(np.int64)
    tails = ((1.0 - level) / 2.0, (1.0 + level) / 2.0)
    if phi is None:
        dist = _stats().binom(trials, mu)
    else:
        dist = _stats().betabinom(trials, mu * phi, (1.0 - mu) * phi)
    lower, upper = (np.asarray(dist.ppf(q)).astype(np.int64) for q in tails)
    return lower, upper


def _stats() -> Any:
    """``scipy.stats``, imported on first use (it takes half a second)."""
    from scipy import stats

    return stats
