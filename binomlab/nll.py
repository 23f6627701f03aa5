"""The grouped binomial NLL in NumPy: the oracle every backend is tested against, and what the
core's training loop reports after every epoch."""

from __future__ import annotations

import numpy as np
from scipy.special import expit

__all__ = ["base_rate_nll", "grouped_nll", "grouped_nll_grad", "sigmoid"]


def grouped_nll(z: np.ndarray, k: np.ndarray, n: np.ndarray) -> float:
    """Per-trial binomial NLL ``Σ[n·softplus(z) − k·z] / Σn`` (``z``, ``k``, ``n``: float64
    ``[groups]``), equal to the mean binary cross-entropy over the raw rows."""
    return float(np.sum(n * np.logaddexp(0.0, z) - k * z) / np.sum(n))


def grouped_nll_grad(z: np.ndarray, k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Gradient of :func:`grouped_nll` with respect to ``z``: ``(n·sigmoid(z) − k) / Σn``."""
    return (n * expit(z) - k) / np.sum(n)


def base_rate_nll(k: np.ndarray, n: np.ndarray) -> float:
    """Per-trial NLL of the constant model at the overall rate ``p = Σk/Σn``: the entropy
    ``−[p log p + (1 − p) log(1 − p)]`` (0 when every trial fails or every one succeeds)."""
    p = float(np.sum(k) / np.sum(n))
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return float(-(p * np.log(p) + (1.0 - p) * np.log1p(-p)))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(−z))`` in float64, exact in both tails (no overflow)."""
    return expit(np.asarray(z, np.float64))
