"""The grouped binomial loss as LightGBM trains it: cross-entropy with label ``k/n`` and
weight ``n``, for the backend and for anyone's own ``lightgbm.train``.

For a group of ``n`` trials with ``k`` successes and predicted ``p = σ(z)``, LightGBM's
``cross_entropy`` objective with label ``y = k/n`` and weight ``w = n`` has gradient
``w·(p − y) = n·p − k`` and Hessian ``w·p(1 − p) = n·p(1 − p)``: the sums of those of the
group's ``n`` raw rows. Its loss, ``−w·[y·log p + (1 − y)·log(1 − p)]``, is the group's
binomial NLL (binomial coefficient dropped), and its weighted mean over groups is the per-trial
NLL that binomlab reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np

__all__ = ["OBJECTIVE", "binomial_dataset", "binomial_labels"]

OBJECTIVE: dict[str, Any] = {"objective": "cross_entropy", "metric": "cross_entropy"}
"""The LightGBM parameters of the grouped binomial loss."""


def binomial_labels(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LightGBM's label ``k/n`` and weight ``n`` (float64 ``[groups]`` each) of the counts.

    Raises
    ------
    ValueError
        Counts that are not ``0 <= k <= n``, ``n >= 1``, of the same shape.
    """
    k, n = np.asarray(k, np.float64), np.asarray(n, np.float64)
    if k.shape != n.shape or k.ndim != 1 or np.any(n < 1) or np.any((k < 0) | (k > n)):
        msg = "Expected successes k and trials n of one shape [groups] with 0 <= k <= n, n >= 1."
        raise ValueError(msg)
    return k / n, n


def binomial_dataset(
    X: np.ndarray,
    k: np.ndarray,
    n: np.ndarray,
    *,
    init_score: float | np.ndarray | None = None,
    categorical_feature: Sequence[int] = (),
    params: Mapping[str, Any] | None = None,
    reference: lgb.Dataset | None = None,
) -> lgb.Dataset:
    """A LightGBM ``Dataset`` of grouped counts for ``objective="cross_entropy"``.

    Parameters
    ----------
    X
        ``[groups, d]`` features (categorical columns as non-negative integer codes).
    k, n
        Successes and trials per group ``[groups]``.
    init_score
        The starting logit (one number, or one per group), e.g. the overall rate's.
    categorical_feature
        Column indices of ``X`` that LightGBM splits as categories.
    params
        Dataset parameters (``max_bin``, ...).
    reference
        A ``Dataset`` whose bins this one takes (see :mod:`binomlab_lightgbm.data`).
    """
    label, weight = binomial_labels(k, n)
    if init_score is not None:
        init_score = np.broadcast_to(np.asarray(init_score, np.float64), label.shape).copy()
    return lgb.Dataset(
        X,
        label=label,
        weight=weight,
        init_score=init_score,
        categorical_feature=list(categorical_feature) or "auto",
        params=dict(params or {}),
        reference=reference,
        free_raw_data=False,
    )
