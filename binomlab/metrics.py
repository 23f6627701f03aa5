"""Metrics of predicted probabilities on grouped binomial counts.

Every metric here is computed from the groups (``n`` trials and ``k`` successes per row) and
equals, to rounding, the same metric computed on the expanded 0/1 rows, at the cost of one pass
over the groups: per-trial log-loss, Brier score, ROC AUC (ties counted as 1/2) and expected
calibration error. The grouping also gives the GLM goodness-of-fit numbers raw rows cannot:
the binomial deviance, Pearson's chi-squared and the dispersion.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import xlogy
from scipy.stats import chi2 as chi2_distribution

from binomlab._proba import check_bins, counts, resolve_proba, uniform_bins
from binomlab.errors import BinomlabError
from binomlab.grouped import require_grouped

if TYPE_CHECKING:
    from binomlab.grouped import Grouped, GroupedSource

__all__ = ["evaluate", "expected_calibration_error"]


def evaluate(
    data: GroupedSource, proba_or_fitted: Any, *, params: int | None = None
) -> dict[str, float | int | str | None]:
    """Score predicted probabilities on grouped data.

    Parameters
    ----------
    data : Grouped or path
        ``len(data)`` groups with ``n`` trials and ``k`` successes each: a
        :class:`~binomlab.Grouped`, or the path of a parquet file written by
        :meth:`~binomlab.Grouped.write_parquet` (read with :func:`binomlab.read_grouped`).
        Raw rows are refused with the call that groups them.
    proba_or_fitted : array-like of shape [groups] or fitted model
        The probability of success of each group, or an object whose ``predict_proba(data)``
        returns it.
    params : int, optional
        Number of fitted parameters, for the degrees of freedom of ``dispersion`` and the
        p-values: ``df_resid = groups − params``. By default the rule of ``df_rule`` below.

    Returns
    -------
    dict
        Python floats unless stated:

        ``nll``
            Per-trial negative log-likelihood (nats per trial),
            ``Σ[-k log p - (n-k) log(1-p)] / Σn``; equal to ``sklearn.metrics.log_loss`` on the
            expanded rows. Nothing is clipped: a probability of exactly 0 (1) in a group with a
            success (failure) gives ``inf``, while ``0 · log 0`` counts as 0.
        ``log_likelihood``
            ``-nll · Σn``, the binomial log-likelihood without the binomial coefficients.
        ``deviance``
            Binomial GLM deviance ``2 Σ[k log(k / (n p)) + (n-k) log((n-k) / (n (1-p)))]``, as
            statsmodels' ``GLM(..., family=Binomial())`` reports for counts. It is
            ``2 Σn · nll`` minus twice the log-likelihood of the saturated model of this
            grouping, so it depends on how the rows were grouped, unlike ``nll``; ``inf`` in
            the same cases as ``nll``.
        ``brier``
            ``Σ[k (1-p)² + (n-k) p²] / Σn``, the Brier score of the expanded rows.
        ``auc``
            ROC AUC of the expanded rows, ties counted as 1/2; ``nan`` when the data holds no
            successes or no failures.
        ``ece``
            Expected calibration error on 10 uniform bins, weighted by trials; see
            :func:`expected_calibration_error`.
        ``pearson_chi2``
            ``Σ (k - n p)² / (n p (1-p))``. A group with ``p`` in {0, 1} adds 0 when its
            outcomes all agree with ``p`` and ``inf`` otherwise.
        ``df_resid``, ``df_rule``, ``df_note``
            The residual degrees of freedom (int, or ``nan`` where not defined), the rule
            that gave them and a sentence saying so (or why there are none):

            * ``"in-sample"``: ``data`` is the data the model was fitted on (recognised by
              its :attr:`~binomlab.Grouped.fingerprint`, kept with the model, also after
              export and :func:`binomlab.load`): ``groups − rank``, the rank of the
              logistic design (statsmodels' ``df_resid``). An MLP has no defined rank:
              ``nan``, and ``df_note`` says why;
            * ``"held-out"``: other data, or plain probabilities: ``groups``. Only the
              training data itself is recognised: a part of it (a split of the training
              groups) counts as other data, and its statistics are then optimistic;
            * ``"params"``: ``groups − params`` with the ``params`` given.
        ``dispersion``
            ``pearson_chi2 / df_resid``, the quasi-binomial dispersion; ``nan`` when there are
            no residual degrees of freedom (``df_note`` says why). Near 1 for a
            well-specified binomial model, above 1 for overdispersion (groups varying more
            than a binomial allows).
        ``deviance_p``, ``pearson_p``
            Goodness-of-fit p-values: upper tails of χ² on ``df_resid`` degrees of freedom
            for ``deviance`` and ``pearson_chi2``. Small values reject the binomial model for
            these groups. ``nan`` with ``dispersion``.
        ``gof_reliable``
            False when the χ² approximation behind the p-values is doubtful: fewer than 80% of
            the groups expect at least 5 successes and 5 failures, or one expects less than 1
            (Cochran's rule). Sparse groups (many with ``n`` of a few trials) make it False.
        ``trials``, ``groups``, ``successes``
            Python ints: ``Σn``, ``len(data)``, ``Σk``.

    Raises
    ------
    NotGroupedError
        If `data` is not grouped data, e.g. raw rows: the message says to group them with
        ``bl.group(rows, features, label)`` (or ``bl.from_counts(frame, features)`` for a
        frame with ``n`` and ``k`` columns). Also a TypeError.
    EmptyDataError
        If `data` has no groups.
    InvalidProbabilityError
        If the probabilities are not 1-D, of length ``len(data)``, finite and within [0, 1].
    TypeError
        If the probabilities are not numeric.
    BinomlabError
        If `params` is not a non-negative integer, or `data` is a path to a file that is not
        a grouped parquet file.
    """
    data = require_grouped(data)
    trials, successes = counts(data)
    proba = resolve_proba(data, proba_or_fitted)

    n = trials.astype(np.float64)
    k = successes.astype(np.float64)
    total = float(n.sum())
    groups = len(proba)

    log_likelihood = float(np.sum(xlogy(k, proba) + xlogy(n - k, 1.0 - proba)))
    chi2 = pearson_chi2(n, k, proba)
    dev = deviance(n, k, proba)
    dof, rule, note = degrees_of_freedom(data, proba_or_fitted, params)
    return {
        "nll": -log_likelihood / total,
        "deviance": dev,
        "brier": float(np.sum(k * (1.0 - proba) ** 2 + (n - k) * proba**2)) / total,
        "auc": _auc(n, k, proba),
        "ece": _ece(n, k, proba, bins=10),
        "pearson_chi2": chi2,
        "dispersion": chi2 / dof if dof else float("nan"),
        "deviance_p": _chi2_sf(dev, dof),
        "pearson_p": _chi2_sf(chi2, dof),
        "df_resid": dof if dof is not None else float("nan"),
        "df_rule": rule,
        "df_note": note,
        "gof_reliable": _gof_reliable(n, proba),
        "trials": int(trials.sum()),
        "groups": groups,
        "successes": int(successes.sum()),
        "log_likelihood": log_likelihood,
    }


def expected_calibration_error(data: GroupedSource, proba: Any, *, bins: int = 10) -> float:
    """Expected calibration error on uniform bins of the predicted probability.

    Group ``i`` falls in bin ``min(floor(bins · p_i), bins - 1)``; the error is
    ``Σ_b (n_b / Σn) · |mean_p_b - rate_b|`` with ``n_b`` the trials of bin ``b``,
    ``mean_p_b`` their trial-weighted mean prediction and ``rate_b`` their success rate, which
    is the usual ECE of the expanded rows.

    Parameters
    ----------
    data : Grouped or path
        The grouped counts, as :func:`evaluate` takes them.
    proba : array-like of shape [groups] or fitted model
        Probabilities, or an object with ``predict_proba(data)``.
    bins : int, default 10
        Number of equal-width bins on [0, 1].

    Returns
    -------
    float
        In [0, 1].

    Raises
    ------
    BinomlabError
        If `bins` is not an integer >= 1.
    NotGroupedError, InvalidProbabilityError, EmptyDataError, TypeError
        As :func:`evaluate`.
    """
    check_bins(bins)
    data = require_grouped(data)
    trials, successes = counts(data)
    p = resolve_proba(data, proba)
    return _ece(trials.astype(np.float64), successes.astype(np.float64), p, bins=bins)


SMALL_EXPECTED = 5.0
"""Expected successes or failures below this make the χ² goodness-of-fit tests unreliable."""


def _chi2_sf(statistic: float, dof: int | None) -> float:
    """Upper-tail p-value of a χ² statistic on ``dof`` degrees of freedom (nan without)."""
    return float(chi2_distribution.sf(statistic, dof)) if dof else float("nan")


def _gof_reliable(n: np.ndarray, p: np.ndarray) -> bool:
    """Cochran's rule for the χ² approximation: at least 80% of the groups expect 5 or more
    successes and 5 or more failures, and none expects less than 1."""
    expected = np.minimum(n * p, n * (1.0 - p))
    return bool(np.mean(expected >= SMALL_EXPECTED) >= 0.8 and np.all(expected >= 1.0))


def deviance(n: np.ndarray, k: np.ndarray, p: np.ndarray) -> float:
    # The ratios are computed only where the count is positive, so 0 · log(anything) = 0 and a
    # positive count against p = 0 (or 1 - p = 0) gives log(inf) = inf.
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_k = np.where(k > 0, (k / n) / p, 1.0)
        ratio_rest = np.where(n - k > 0, ((n - k) / n) / (1.0 - p), 1.0)
    return float(2.0 * np.sum(xlogy(k, ratio_k) + xlogy(n - k, ratio_rest)))


def pearson_chi2(n: np.ndarray, k: np.ndarray, p: np.ndarray) -> float:
    numerator = (k - n * p) ** 2
    variance = n * p * (1.0 - p)
    degenerate = np.where(numerator == 0.0, 0.0, np.inf)
    terms = np.divide(numerator, variance, out=degenerate, where=variance > 0.0)
    return float(np.sum(terms))


def _auc(n: np.ndarray, k: np.ndarray, p: np.ndarray) -> float:
    positives = k
    negatives = n - k
    total_pos = float(positives.sum())
    total_neg = float(negatives.sum())
    if total_pos == 0.0 or total_neg == 0.0:
        return float("nan")
    # Merge groups with exactly equal predictions, in increasing order of p: their rows are tied.
    levels, level_of = np.unique(p, return_inverse=True)
    pos = np.bincount(level_of, weights=positives, minlength=len(levels))
    neg = np.bincount(level_of, weights=negatives, minlength=len(levels))
    neg_below = np.cumsum(neg) - neg
    return float(np.sum(pos * (neg_below + 0.5 * neg)) / (total_pos * total_neg))


def _ece(n: np.ndarray, k: np.ndarray, p: np.ndarray, *, bins: int) -> float:
    # Σ_b (n_b/N)|Σ_b n p / n_b - Σ_b k / n_b| simplifies to Σ_b |Σ_b n p - Σ_b k| / N.
    bin_of = uniform_bins(p, bins)
    gap = np.bincount(bin_of, weights=n * p - k, minlength=bins)
    return float(np.sum(np.abs(gap)) / n.sum())


def degrees_of_freedom(
    data: Grouped, model: Any, params: int | None = None
) -> tuple[int | None, str, str]:
    """``(df_resid, rule, note)`` of ``model``'s predictions on ``data`` by the rule of
    :func:`evaluate`; ``df_resid`` is None where it is not defined or not positive.

    Raises
    ------
    BinomlabError
        ``params`` is not a non-negative integer.
    """
    groups = len(data)
    if params is not None:
        if isinstance(params, bool) or not isinstance(params, numbers.Integral) or params < 0:
            msg = f"Expected params to be a non-negative integer. Received: params={params!r}"
            raise BinomlabError(msg)
        dof, rule = groups - int(params), "params"
        note = f"params={int(params)} given: {groups} groups − {int(params)} = {dof}"
    else:
        stats = getattr(model, "in_sample_", None)
        fitted_here = stats is not None and getattr(stats, "fingerprint", None) == (
            data.fingerprint if hasattr(data, "fingerprint") else None
        )
        if not fitted_here:
            dof, rule = groups, "held-out"
            note = (
                f"not the model's training data (not its fingerprint): df = {groups} groups; "
                "if these groups hold trials it was fitted on, its statistics here are "
                "optimistic"
            )
        elif stats.rank is None:
            return None, "in-sample", stats.df_note
        else:
            dof, rule = groups - stats.rank, "in-sample"
            note = (
                f"the model's training data: {groups} groups − rank {stats.rank} of the "
                f"design = {dof}"
            )
    if dof <= 0:
        return None, rule, f"{note}: no residual degrees of freedom (a saturated model)"
    return dof, rule, note
