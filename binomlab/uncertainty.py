"""Standard errors and intervals for the metrics of :func:`binomlab.evaluate`, on groups.

Each metric is an average over the test trials (the expanded 0/1 rows), and so is its
uncertainty: the trials are taken as independent draws, exactly as a textbook computation on
the raw rows would take them, and every number here equals that computation on
:meth:`~binomlab.Grouped.expand`'s rows, in O(groups):

* ``nll`` and ``brier``: the mean of a per-trial loss; its standard error is the rows' sample
  standard deviation (``ddof=1``) over ``√trials``, and the interval is Student's t on
  ``trials − 1`` degrees of freedom.
* ``auc``: DeLong's variance (DeLong, DeLong and Clarke-Pearson, 1988) from the structural
  components of the positive and the negative rows, ties counted as 1/2; normal interval.
* ``ece``: no closed form (an absolute value per bin), so the trials are *resampled*: a
  bootstrap of the expanded rows (``trials`` draws with replacement), done on the groups as one
  multinomial draw over every group's successes and failures (for large tables, the normal
  limit of the ten bins' gaps over the drawn trials); the interval is the estimate ± z times
  the replicates' sd. The ECE is biased upward — positive even for a calibrated model — so
  its interval says how precisely the ECE is measured, not whether the model is calibrated:
  :func:`binomlab.reliability`'s consistency band and :func:`binomlab.decompose`'s
  miscalibration answer that.

Every interval is cut to the metric's possible values (``nll ≥ 0``; Brier, AUC, ECE in
[0, 1]); the true value lies there, so the cut interval covers it as often as the uncut one.

:func:`paired_test` compares two models on the same trials: the mean per-trial difference of
their losses and its standard error, equal to :func:`scipy.stats.ttest_rel` on the rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from scipy import stats

from binomlab._checks import check_fraction, check_int, check_seed
from binomlab._proba import counts, resolve_proba, uniform_bins
from binomlab.errors import BinomlabError
from binomlab.grouped import require_grouped

if TYPE_CHECKING:
    from binomlab.grouped import GroupedSource

__all__ = ["INTERVAL_METRICS", "metric_intervals", "paired_test"]

INTERVAL_METRICS = ("nll", "brier", "auc", "ece")
PAIRED_METRICS = ("nll", "brier")
ECE_BINS = 10
"""The bins of the ECE, as :func:`binomlab.evaluate` computes it."""
MAX_RESAMPLES = 100_000
EXACT_BOOTSTRAP_CELLS = 2_000_000
"""The ECE bootstrap draws every (group, outcome) cell of every replicate up to this many
cells (about half a second); beyond it, the bins' gaps come from their normal limit."""


def metric_intervals(
    data: GroupedSource,
    proba_or_fitted: Any,
    *,
    level: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> pl.DataFrame:
    """Estimates, standard errors and intervals of the NLL, Brier score, AUC and ECE.

    What the uncertainty is about: the test trials, taken as independent draws (the expanded
    rows, as a computation on the raw rows takes them). The NLL and Brier score are means of
    a per-trial loss (standard error ``sd / √trials``, Student's t interval); the AUC has
    DeLong's variance (normal interval); the ECE's standard error is the sd of
    ``resamples`` bootstrap replicates that resample the trials with replacement (normal
    interval; see the module's note on its bias). Intervals are cut to the metric's range. The
    model is held fixed: these say how much its score would vary over other test sets of
    the same size, not how much refitting it would change it.

    Parameters
    ----------
    data : Grouped or path
        The grouped test counts, as :func:`binomlab.evaluate` takes them.
    proba_or_fitted : array-like of shape [groups] or fitted model
        Probabilities, or an object with ``predict_proba(data)``.
    level : float, default 0.95
        Two-sided confidence level, in (0, 1).
    resamples : int, default 1000
        Bootstrap replicates for the ECE, in [10, 100,000]; the cost is
        ``resamples × 2 × groups``.
    seed : int, default 0
        Seed of the bootstrap (a non-negative integer): the same seed gives the same
        interval.

    Returns
    -------
    polars.DataFrame
        One row per metric (``nll``, ``brier``, ``auc``, ``ece``) with ``metric``,
        ``estimate`` (as :func:`binomlab.evaluate`), ``std_error``, ``lower``, ``upper`` and
        ``method`` (how the uncertainty was computed). ``std_error`` (and the interval) is
        NaN where it is not defined: an infinite NLL, fewer than two trials, an AUC without
        two positives and two negatives, or an AUC of exactly 0 or 1 (a perfect ranking, where
        DeLong's variance is 0: no zero-width interval is claimed).

    Raises
    ------
    BinomlabError
        A bad `level`, `resamples` or `seed`.
    NotGroupedError, InvalidProbabilityError, EmptyDataError, TypeError
        As :func:`binomlab.evaluate`.
    """
    level = check_fraction(level, name="level")
    resamples = check_int(resamples, name="resamples", minimum=10, maximum=MAX_RESAMPLES)
    seed = check_seed(seed)
    data = require_grouped(data)
    trials, successes = counts(data)
    proba = resolve_proba(data, proba_or_fitted)
    n, k = trials.astype(np.float64), successes.astype(np.float64)
    total = float(n.sum())
    z = stats.norm.ppf(0.5 + level / 2.0)
    rows = []
    for metric in PAIRED_METRICS:
        on_success, on_failure = per_trial_loss(proba, metric)
        mean, se = _mean_and_se(n, k, on_success, on_failure)
        half = _t_quantile(level, total) * se
        rows.append(
            (metric, mean, se, *_in_range(metric, mean - half, mean + half), "t: sd of the "
             "trials / √trials")
        )  # fmt: skip
    auc, auc_se = delong(n, k, proba)
    rows.append(
        ("auc", auc, auc_se, *_in_range("auc", auc - z * auc_se, auc + z * auc_se),
         "normal: DeLong's variance")
    )  # fmt: skip
    ece, replicates, how = _bootstrap_ece(n, k, proba, resamples, np.random.default_rng(seed))
    ece_se = float(np.std(replicates, ddof=1)) if total >= 2 else float("nan")
    rows.append(
        ("ece", ece, ece_se, *_in_range("ece", ece - z * ece_se, ece + z * ece_se),
         f"normal: sd of {resamples} bootstrap resamples of the trials ({how})")
    )  # fmt: skip
    return pl.DataFrame(
        rows,
        schema={
            "metric": pl.String,
            "estimate": pl.Float64,
            "std_error": pl.Float64,
            "lower": pl.Float64,
            "upper": pl.Float64,
            "method": pl.String,
        },
        orient="row",
    )


def paired_test(
    data: GroupedSource,
    model_a: Any,
    model_b: Any,
    *,
    metric: str = "nll",
    level: float = 0.95,
) -> dict[str, float | int | str]:
    """Paired comparison of two models on the same trials: is ``a``'s loss below ``b``'s?

    For every trial (expanded row) ``d = loss_a − loss_b``, with the per-trial log loss
    (``metric="nll"``) or squared error (``"brier"``). The result is the paired t-test of
    ``mean(d) = 0`` over the trials, equal to :func:`scipy.stats.ttest_rel` on the expanded
    rows, computed from the groups.

    Parameters
    ----------
    data : Grouped or path
        The grouped test counts both models predict.
    model_a, model_b : array-like of shape [groups] or fitted model
        Probabilities, or objects with ``predict_proba(data)``.
    metric : {"nll", "brier"}, default "nll"
    level : float, default 0.95
        Confidence level of the interval for the mean difference.

    Returns
    -------
    dict
        ``metric``; ``difference`` (``mean(d)``: negative when ``a`` is better, in the
        metric's units per trial); ``std_error`` (sample sd of ``d`` over ``√trials``);
        ``lower``, ``upper`` (the t interval); ``t`` and ``df`` (``trials − 1``);
        ``p_value`` (two-sided); ``trials``. When ``d`` is the same on every trial
        (identical predictions) ``std_error`` is 0 and ``t`` and ``p_value`` are NaN (no
        test); when a loss is infinite, all three are NaN.

    Raises
    ------
    BinomlabError
        An unknown `metric` or a bad `level`.
    NotGroupedError, InvalidProbabilityError, EmptyDataError, TypeError
        As :func:`binomlab.evaluate`.
    """
    if metric not in PAIRED_METRICS:
        msg = f"Expected metric to be one of {PAIRED_METRICS}. Received: metric={metric!r}"
        raise BinomlabError(msg)
    level = check_fraction(level, name="level")
    data = require_grouped(data)
    trials, successes = counts(data)
    n, k = trials.astype(np.float64), successes.astype(np.float64)
    a_success, a_failure = per_trial_loss(resolve_proba(data, model_a), metric)
    b_success, b_failure = per_trial_loss(resolve_proba(data, model_b), metric)
    with np.errstate(invalid="ignore"):
        mean, se = _mean_and_se(n, k, a_success - b_success, a_failure - b_failure)
    total = float(n.sum())
    dof = total - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / se if se > 0 else float("nan")
    p_value = float(2.0 * stats.t.sf(abs(t), dof)) if np.isfinite(t) else float("nan")
    half = _t_quantile(level, total) * se
    return {
        "metric": metric,
        "difference": mean,
        "std_error": se,
        "lower": mean - half,
        "upper": mean + half,
        "t": float(t),
        "df": int(dof),
        "p_value": p_value,
        "trials": int(trials.sum()),
    }


def per_trial_loss(proba: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """A group's per-trial loss for a success and for a failure, float64 ``[groups]`` each:
    ``(−log p, −log(1 − p))`` for ``"nll"``, ``((1 − p)², p²)`` for ``"brier"``."""
    if metric == "nll":
        with np.errstate(divide="ignore"):
            return -np.log(proba), -np.log1p(-proba)
    return (1.0 - proba) ** 2, proba**2


def _mean_and_se(
    n: np.ndarray, k: np.ndarray, on_success: np.ndarray, on_failure: np.ndarray
) -> tuple[float, float]:
    """Mean and standard error (sd with ``ddof=1`` over √rows) of the expanded rows' values:
    ``k`` rows of ``on_success`` and ``n − k`` of ``on_failure`` per group."""
    total = float(n.sum())
    failures = n - k
    # A value no row carries (k = 0 or n − k = 0) contributes nothing, even an infinite one.
    on_success = np.where(k > 0, on_success, 0.0)
    on_failure = np.where(failures > 0, on_failure, 0.0)
    mean = float((np.sum(k * on_success) + np.sum(failures * on_failure)) / total)
    if total < 2 or not np.isfinite(mean):
        return mean, float("nan")
    ss = float(np.sum(k * (on_success - mean) ** 2) + np.sum(failures * (on_failure - mean) ** 2))
    return mean, float(np.sqrt(ss / (total - 1.0) / total))


def _t_quantile(level: float, trials: float) -> float:
    return float(stats.t.ppf(0.5 + level / 2.0, trials - 1.0)) if trials > 1 else float("nan")


def delong(n: np.ndarray, k: np.ndarray, proba: np.ndarray) -> tuple[float, float]:
    """ROC AUC of the expanded rows and DeLong's standard error, from the groups.

    A positive row at prediction ``p`` has the structural component ``P(negative < p) +
    P(negative = p) / 2``, a negative row ``P(positive > p) + P(positive = p) / 2``; the
    variance is ``S10 / positives + S01 / negatives`` with ``S10``, ``S01`` their sample
    variances (``ddof=1``). Returns ``(nan, nan)`` without positives or negatives, and a NaN
    standard error with fewer than two of either or an AUC of exactly 0 or 1.
    """
    levels, level_of = np.unique(proba, return_inverse=True)
    pos = np.bincount(level_of, weights=k, minlength=levels.size)
    neg = np.bincount(level_of, weights=n - k, minlength=levels.size)
    total_pos, total_neg = float(pos.sum()), float(neg.sum())
    if total_pos == 0.0 or total_neg == 0.0:
        return float("nan"), float("nan")
    v10 = (np.cumsum(neg) - neg + 0.5 * neg) / total_neg
    v01 = (total_pos - np.cumsum(pos) + 0.5 * pos) / total_pos
    auc = float(np.sum(pos * v10) / total_pos)
    if total_pos < 2 or total_neg < 2:
        return auc, float("nan")
    if auc in (0.0, 1.0):  # a perfect ranking: DeLong's variance is 0, which claims too much
        return auc, float("nan")
    s10 = float(np.sum(pos * (v10 - auc) ** 2) / (total_pos - 1.0))
    s01 = float(np.sum(neg * (v01 - auc) ** 2) / (total_neg - 1.0))
    return auc, float(np.sqrt(s10 / total_pos + s01 / total_neg))


RANGES = {"nll": (0.0, np.inf), "brier": (0.0, 1.0), "auc": (0.0, 1.0), "ece": (0.0, 1.0)}
"""Where each metric's value can lie: its interval is cut to this range."""


def _in_range(metric: str, lower: float, upper: float) -> tuple[float, float]:
    """``(lower, upper)`` cut to the metric's possible values. The true value always lies
    in that range, so the cut interval covers it exactly as often as the uncut one."""
    low, high = RANGES[metric]
    return float(np.clip(lower, low, high)), float(np.clip(upper, low, high))


def _bootstrap_ece(
    n: np.ndarray,
    k: np.ndarray,
    proba: np.ndarray,
    resamples: int,
    rng: np.random.Generator,
    *,
    exact_cells: int = EXACT_BOOTSTRAP_CELLS,
) -> tuple[float, np.ndarray, str]:
    """The ECE, ``resamples`` bootstrap replicates of it, and how they were drawn.

    A replicate draws ``Σn`` trials with replacement from the expanded rows. Exactly, that
    is a multinomial over every group's successes and failures (``resamples × 2 × groups``
    draws, used up to ``exact_cells``). Beyond it, the replicates of the ten bins' gaps
    ``Σ(p − y)`` — each a sum over the drawn trials — come from their multivariate normal
    limit, with the mean and covariance of one drawn trial times ``Σn``.
    """
    total = float(n.sum())
    bin_of = uniform_bins(proba, ECE_BINS)
    gap = np.bincount(bin_of, weights=n * proba - k, minlength=ECE_BINS)
    ece = float(np.sum(np.abs(gap)) / total)
    # A success in bin b adds p - 1 to that bin's gap, a failure adds p.
    cells = np.concatenate([k, n - k])
    value_of_cell = np.concatenate([proba - 1.0, proba])
    bin_of_cell = np.concatenate([bin_of, bin_of])
    if resamples * cells.size <= exact_cells:
        weight = np.zeros((cells.size, ECE_BINS))
        weight[np.arange(cells.size), bin_of_cell] = value_of_cell
        draws = rng.multinomial(int(total), cells / total, size=resamples)
        return ece, np.abs(draws @ weight).sum(axis=1) / total, "exact"
    # One drawn trial adds value v to its bin's gap: the mean of that 10-vector is gap / Σn,
    # its second moment diagonal (one bin per trial).
    mean = gap / total
    second = np.bincount(bin_of_cell, weights=cells * value_of_cell**2, minlength=ECE_BINS)
    covariance = np.diag(second / total) - np.outer(mean, mean)
    gaps = rng.multivariate_normal(total * mean, total * covariance, size=resamples, method="eigh")
    return ece, np.abs(gaps).sum(axis=1) / total, "normal limit"


def leaderboard_intervals(
    data: GroupedSource, proba: np.ndarray, *, level: float, resamples: int, seed: int
) -> dict[str, float]:
    """``{metric_se, metric_lower, metric_upper}`` for every metric of
    :data:`INTERVAL_METRICS`, as :func:`metric_intervals` gives them."""
    table = metric_intervals(data, proba, level=level, resamples=resamples, seed=seed)
    out: dict[str, float] = {}
    for row in table.iter_rows(named=True):
        for field, suffix in (("std_error", "se"), ("lower", "lower"), ("upper", "upper")):
            out[f"{row['metric']}_{suffix}"] = row[field]
    return out
