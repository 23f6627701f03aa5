"""Trial-weighted isotonic regression of the observed rate on the predicted probability.

This is the CORP recalibration (Dimitriadis, Gneiting and Jordan, 2021): the pool-adjacent-
violators fit of ``k / n`` on the predictions, each group weighted by its ``n`` trials. Groups
with equal predictions are pooled first (their expanded rows are tied), so the fit equals
scikit-learn's ``IsotonicRegression`` on the expanded 0/1 rows, at the cost of one pass over
the distinct predictions (scipy's PAVA is O(levels)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import isotonic_regression

__all__ = ["IsotonicFit", "fit_isotonic", "isotonic_values"]


@dataclass(frozen=True)
class IsotonicFit:
    """The isotonic fit at each distinct prediction.

    Attributes
    ----------
    x : numpy.ndarray
        float64 ``[levels]``: the distinct predictions, increasing.
    y : numpy.ndarray
        float64 ``[levels]``: the recalibrated (isotonic) rate at each, non-decreasing, in
        [0, 1].
    trials, successes : numpy.ndarray
        int64 ``[levels]``: the trials and successes of the groups at each prediction.
    level_of : numpy.ndarray
        int64 ``[groups]``: the index into ``x`` of each group's prediction.
    """

    x: np.ndarray
    y: np.ndarray
    trials: np.ndarray
    successes: np.ndarray
    level_of: np.ndarray

    @property
    def per_group(self) -> np.ndarray:
        """The recalibrated rate of each group, float64 ``[groups]``."""
        return self.y[self.level_of]

    def predict(self, proba: np.ndarray) -> np.ndarray:
        """The fit at new predictions: linear interpolation between the distinct predictions
        and the end values beyond them, as scikit-learn's ``IsotonicRegression(
        out_of_bounds="clip").predict``. float64, the shape of ``proba``."""
        p = np.asarray(proba, dtype=np.float64)
        return np.interp(np.clip(p, self.x[0], self.x[-1]), self.x, self.y)


def fit_isotonic(proba: np.ndarray, trials: np.ndarray, successes: np.ndarray) -> IsotonicFit:
    """Trial-weighted isotonic regression of ``successes / trials`` on ``proba``.

    Parameters
    ----------
    proba : numpy.ndarray
        float64 ``[groups]``, the predictions (already checked: finite, in [0, 1]).
    trials, successes : numpy.ndarray
        int64 ``[groups]``, ``trials > 0`` and ``0 <= successes <= trials``.

    Returns
    -------
    IsotonicFit
    """
    x, level_of = np.unique(proba, return_inverse=True)
    level_of = level_of.astype(np.int64).reshape(-1)
    n = np.bincount(level_of, weights=trials, minlength=x.size).astype(np.int64)
    k = np.bincount(level_of, weights=successes, minlength=x.size).astype(np.int64)
    return IsotonicFit(x=x, y=isotonic_values(n, k), trials=n, successes=k, level_of=level_of)


def isotonic_values(trials: np.ndarray, successes: np.ndarray) -> np.ndarray:
    """PAVA of ``successes / trials`` weighted by ``trials``, in the given (sorted) order.

    Each block's value is recomputed as its summed successes over its summed trials, so a
    block of all failures is exactly 0 and one of all successes exactly 1. float64, the shape
    of ``trials``.
    """
    n = np.asarray(trials, dtype=np.float64)
    k = np.asarray(successes, dtype=np.float64)
    blocks = isotonic_regression(k / n, weights=n).blocks
    sizes = np.diff(blocks)
    rate = np.add.reduceat(k, blocks[:-1]) / np.add.reduceat(n, blocks[:-1])
    return np.repeat(rate, sizes)
