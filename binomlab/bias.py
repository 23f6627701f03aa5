"""Bias by feature level: where a model over- or under-predicts, with its uncertainty.

Per level of a feature, the bias is the mean over the level's trials of ``p − y`` (the
prediction minus the outcome, as :func:`model_diagnostics.calibration.compute_bias` defines
it: positive where the model predicts too high). Its standard error and test are those of
the expanded rows — the sample standard deviation of ``p − y`` (``ddof=1``) over
``√trials`` and Student's t on ``trials − 1`` degrees of freedom — computed from the groups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from scipy import stats

from binomlab._checks import check_fraction, check_int, check_names
from binomlab._colors import checked_colors
from binomlab._proba import counts, named_model, resolve_proba
from binomlab.errors import BinomlabError, ColumnNotFoundError
from binomlab.grouped import require_grouped

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from binomlab.grouped import Grouped, GroupedSource

__all__ = ["bias", "plot_bias"]

BIAS_SCHEMA = {
    "model": pl.String,
    "feature": pl.String,
    "level": pl.String,
    "trials": pl.Int64,
    "observed": pl.Float64,
    "predicted": pl.Float64,
    "bias_mean": pl.Float64,
    "bias_stderr": pl.Float64,
    "lower": pl.Float64,
    "upper": pl.Float64,
    "p_value": pl.Float64,
}


def bias(
    data: GroupedSource,
    models: Any,
    features: str | list[str] | None = None,
    *,
    level: float = 0.95,
    bins: int = 10,
) -> pl.DataFrame:
    """Bias of each model per level of each feature, with its interval and p-value.

    Parameters
    ----------
    data : Grouped or path
        The grouped counts, as :func:`binomlab.evaluate` takes them.
    models : array-like, fitted model, or dict of name -> array-like or fitted model
        Probabilities (one per group) or objects with ``predict_proba(data)``; a single
        model is named ``"model"``.
    features : str or list of str, optional
        Feature columns of `data` (default: all of them).
    level : float, default 0.95
        Confidence level of the interval.
    bins : int, default 10
        A numeric feature with more distinct values than this is cut into this many bins
        of about equal trials (levels ``"[low, high]"``, the smallest and largest value in
        the bin); categorical, boolean and binned features keep every level.

    Returns
    -------
    polars.DataFrame
        One row per model, feature and level (levels in the feature's order: sorted, null
        first, bins in edge order): ``model``, ``feature``, ``level`` (the value as text,
        null for null), ``trials`` (Int64), ``observed`` (success rate), ``predicted``
        (trial-weighted mean prediction), ``bias_mean`` (``predicted − observed``),
        ``bias_stderr``, ``lower``, ``upper`` (t interval), ``p_value`` (two-sided t-test
        of no bias). ``bias_stderr`` and what depends on it are NaN for a level of one
        trial, and for a level where ``p − y`` does not vary (one prediction and every
        outcome alike), whose sample standard deviation of 0 would claim a certain bias
        (model-diagnostics reports 0 and a p-value of 0 there).

    Raises
    ------
    ColumnNotFoundError
        A name in `features` is not a feature of `data`.
    BinomlabError
        An empty dict of models, a bad `level` or `bins`.
    NotGroupedError, InvalidProbabilityError, EmptyDataError, TypeError
        As :func:`binomlab.evaluate`.
    """
    level = check_fraction(level, name="level")
    bins = check_int(bins, name="bins", minimum=2, maximum=10_000)
    named = dict(models) if isinstance(models, Mapping) else {"model": models}
    if not named:
        msg = "Expected at least one model. Received: models={}"
        raise BinomlabError(msg)
    data = require_grouped(data)
    chosen = _check_features(data, features)
    trials, successes = counts(data)
    n, k = trials.astype(np.float64), successes.astype(np.float64)
    levels = {feature: _levels(data, feature, n, bins) for feature in chosen}
    rows = []
    for name, model in named.items():
        with named_model(name):
            proba = resolve_proba(data, model)
        for feature, (labels, level_of) in levels.items():
            rows.extend(
                {"model": str(name), "feature": feature, **row}
                for row in _bias_rows(n, k, proba, labels, level_of, level)
            )
    return pl.DataFrame(rows, schema=BIAS_SCHEMA)


def _bias_rows(
    n: np.ndarray,
    k: np.ndarray,
    proba: np.ndarray,
    labels: list[str | None],
    level_of: np.ndarray,
    level: float,
) -> list[dict[str, Any]]:
    size = len(labels)
    trials = np.bincount(level_of, weights=n, minlength=size)
    succ = np.bincount(level_of, weights=k, minlength=size)
    predicted = np.bincount(level_of, weights=n * proba, minlength=size) / trials
    mean = predicted - succ / trials
    # k rows of p - 1 and n - k rows of p per group, around their level's mean.
    m = mean[level_of]
    squares = k * (proba - 1.0 - m) ** 2 + (n - k) * (proba - m) ** 2
    ss = np.bincount(level_of, weights=squares, minlength=size)
    # One trial has no sample sd, and a level where p − y never varies (one prediction, every
    # outcome alike: few or extreme trials) has a sample sd of 0, which would claim certainty.
    defined = (trials > 1) & (ss > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        stderr = np.where(defined, np.sqrt(ss / (trials - 1.0) / trials), np.nan)
        t = mean / stderr
    dof = trials - 1.0
    p_value = np.where(defined, 2.0 * stats.t.sf(np.abs(t), np.maximum(dof, 1.0)), np.nan)
    half = stats.t.ppf(0.5 + level / 2.0, np.maximum(dof, 1.0)) * stderr
    return [
        {
            "level": labels[i],
            "trials": int(trials[i]),
            "observed": succ[i] / trials[i],
            "predicted": predicted[i],
            "bias_mean": mean[i],
            "bias_stderr": stderr[i],
            "lower": mean[i] - half[i],
            "upper": mean[i] + half[i],
            "p_value": p_value[i],
        }
        for i in range(size)
    ]


def _check_features(data: Grouped, features: Any) -> tuple[str, ...]:
    if features is None:
        return tuple(data.features)
    chosen = check_names(features, name="features")
    missing = [f for f in chosen if f not in data.features]
    if missing:
        msg = f"Feature(s) {missing} are not features of the data: {list(data.features)}."
        raise ColumnNotFoundError(msg)
    return chosen


def _levels(
    data: Grouped, feature: str, n: np.ndarray, bins: int
) -> tuple[list[str | None], np.ndarray]:
    """The level labels of ``feature`` and each group's level index (int64 ``[groups]``)."""
    column = data.frame.get_column(feature)
    numeric = column.dtype.is_numeric() and column.dtype != pl.Boolean
    if numeric and column.n_unique() > bins:
        return _quantile_levels(column, n, bins)
    if isinstance(column.dtype, pl.Enum):
        present = set(column.cast(pl.String).to_list())
        values = [v for v in [None, *column.dtype.categories.to_list()] if v in present]
        text = column.cast(pl.String)
    elif isinstance(column.dtype, pl.Categorical):
        text = column.cast(pl.String)
        values = text.unique().sort(nulls_last=False).to_list()
    else:
        values = column.unique().sort(nulls_last=False).to_list()
        text = column
    index = {v: i for i, v in enumerate(values)}
    level_of = np.array([index[v] for v in text.to_list()], dtype=np.int64)
    labels = [None if v is None else str(v) for v in values]
    return labels, level_of


def _quantile_levels(
    column: pl.Series, n: np.ndarray, bins: int
) -> tuple[list[str | None], np.ndarray]:
    """Bins of about equal trials over the sorted values; a null is a level of its own."""
    values = column.to_numpy().astype(np.float64)
    null = column.is_null().to_numpy()
    order = np.argsort(np.where(null, -np.inf, values), kind="stable")
    present = order[~null[order]]
    cumulative = np.cumsum(n[present])
    edges = cumulative[-1] * np.arange(1, bins) / bins
    bin_of_sorted = np.searchsorted(edges, cumulative - n[present], side="right")
    # equal values share a bin: the bin of a value is that of its first group
    sorted_values = values[present]
    first = np.searchsorted(sorted_values, sorted_values, side="left")
    bin_of_sorted = bin_of_sorted[first]
    used, bin_of_sorted = np.unique(bin_of_sorted, return_inverse=True)
    offset = int(null.any())
    level_of = np.zeros(len(values), dtype=np.int64)
    level_of[present] = bin_of_sorted + offset
    labels: list[str | None] = [None] if offset else []
    for b in range(used.size):
        inside = sorted_values[bin_of_sorted == b]
        labels.append(f"[{inside.min():g}, {inside.max():g}]")
    return labels, level_of


def plot_bias(
    data: GroupedSource,
    models: Any,
    feature: str,
    *,
    level: float = 0.95,
    bins: int = 10,
    ax: Axes | None = None,
    colors: Sequence[str] | None = None,
) -> Axes:
    """Draw the bias of each model per level of ``feature``, with its interval.

    Parameters
    ----------
    data, models, level, bins
        As :func:`bias`.
    feature : str
        One feature of `data`.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made when omitted.
    colors : sequence of str, optional
        One matplotlib colour per model (default: :func:`binomlab._colors.model_colors`, a
        distinct colour each, as in the other plots).

    Returns
    -------
    matplotlib.axes.Axes
        Levels on the x axis, ``bias_mean`` with its interval per model (side by side), a
        zero line, and the trials of each level under its label.

    Raises
    ------
    BinomlabError
        Not one colour per model, and as :func:`bias`.
    """
    import matplotlib.pyplot as plt

    if not isinstance(feature, str):
        msg = f"Expected feature to be one feature name. Received: feature={feature!r}"
        raise BinomlabError(msg)
    table = bias(data, models, feature, level=level, bins=bins)
    names = list(dict.fromkeys(table["model"].to_list()))
    colors = checked_colors(colors, len(names))
    first = table.filter(pl.col("model") == names[0])
    labels = ["<null>" if v is None else v for v in first["level"].to_list()]
    made = ax is None
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(labels) + 2.0), 4.0))
    x = np.arange(len(labels), dtype=np.float64)
    width = 0.8 / len(names)
    for i, (name, color) in enumerate(zip(names, colors, strict=True)):
        rows = table.filter(pl.col("model") == name)
        mean = rows["bias_mean"].to_numpy()
        error = np.vstack([mean - rows["lower"].to_numpy(), rows["upper"].to_numpy() - mean])
        shift = (i - (len(names) - 1) / 2.0) * width
        ax.errorbar(x + shift, mean, yerr=error, fmt="o", capsize=3, color=color, label=name)
    ax.axhline(0.0, color="0.5", linewidth=1, linestyle="--")
    trials = first["trials"].to_list()
    ax.set_xticks(x, [f"{label}\n{t:,}" for label, t in zip(labels, trials, strict=True)])
    ax.tick_params(axis="x", labelrotation=0 if len(labels) <= 8 else 45)
    ax.set_xlabel(f"{feature} (trials below each level)")
    ax.set_ylabel("bias: predicted − observed")
    if len(names) > 1:
        ax.legend(loc="best")
    if made:
        ax.figure.tight_layout()  # the levels' labels and trials fit in the figure
    return ax
