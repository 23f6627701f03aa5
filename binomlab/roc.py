"""ROC curves on grouped counts: exact, one point per distinct prediction.

A group's trials share one prediction, so sorting the distinct predictions and accumulating
their successes (true positives) and failures (false positives) gives the ROC curve of the
expanded 0/1 rows — the points :func:`sklearn.metrics.roc_curve` returns with
``drop_intermediate=False`` — in O(groups log groups).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from binomlab._colors import checked_colors
from binomlab._proba import counts, named_model, resolve_proba
from binomlab.errors import BinomlabError
from binomlab.grouped import require_grouped
from binomlab.uncertainty import delong

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from binomlab.grouped import GroupedSource

__all__ = ["plot_roc", "roc_curve"]

LEGEND_WIDTH = 44
"""Characters per line of a legend entry (longer names wrap)."""


def roc_curve(data: GroupedSource, proba_or_fitted: Any) -> pl.DataFrame:
    """The ROC curve of a model's predictions on grouped data.

    Parameters
    ----------
    data : Grouped or path
        The grouped counts, as :func:`binomlab.evaluate` takes them.
    proba_or_fitted : array-like of shape [groups] or fitted model
        Probabilities, or an object with ``predict_proba(data)``.

    Returns
    -------
    polars.DataFrame
        One row per threshold, highest first, starting at ``(0, 0)``: ``threshold`` (a row is
        called positive when its prediction is ``>= threshold``; ``inf`` for the first row),
        ``fpr`` and ``tpr`` (false and true positive rates), ``false_positives`` and
        ``true_positives`` (Int64 counts of trials). The area under it (trapezoids) is
        :func:`binomlab.evaluate`'s ``auc``.

    Raises
    ------
    BinomlabError
        The data has no successes or no failures (one of the rates is undefined).
    NotGroupedError, InvalidProbabilityError, EmptyDataError, TypeError
        As :func:`binomlab.evaluate`.
    """
    data = require_grouped(data)
    trials, successes = counts(data)
    proba = resolve_proba(data, proba_or_fitted)
    levels, level_of = np.unique(proba, return_inverse=True)
    pos = np.bincount(level_of, weights=successes, minlength=levels.size)[::-1]
    neg = np.bincount(level_of, weights=trials - successes, minlength=levels.size)[::-1]
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos == 0 or total_neg == 0:
        which = "successes" if total_pos == 0 else "failures"
        msg = f"The data has no {which}: the ROC curve's {'tpr' if total_pos == 0 else 'fpr'} "
        msg += "is undefined. Evaluate on data with both outcomes."
        raise BinomlabError(msg)
    tp = np.r_[0.0, np.cumsum(pos)]
    fp = np.r_[0.0, np.cumsum(neg)]
    return pl.DataFrame(
        {
            "threshold": np.r_[np.inf, levels[::-1]],
            "fpr": fp / total_neg,
            "tpr": tp / total_pos,
            "false_positives": pl.Series(fp, dtype=pl.Int64),
            "true_positives": pl.Series(tp, dtype=pl.Int64),
        }
    )


def plot_roc(
    data: GroupedSource,
    models: Any,
    *,
    ax: Axes | None = None,
    colors: Sequence[str] | None = None,
) -> Axes:
    """Draw the ROC curve of one or more models, each labelled with its AUC and DeLong's
    95% interval.

    Parameters
    ----------
    data : Grouped or path
        The grouped counts.
    models : array-like, fitted model, or dict of name -> array-like or fitted model
        A single model is labelled ``"model"``.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made when omitted.
    colors : sequence of str, optional
        One matplotlib colour per model (default: :func:`binomlab._colors.model_colors`, a
        distinct colour each), e.g. to keep a model's colour across plots.

    Returns
    -------
    matplotlib.axes.Axes
        The chance diagonal, one curve per model (a distinct colour each), a legend.

    Raises
    ------
    BinomlabError
        An empty dict of models, not one colour per model, and as :func:`roc_curve`.
    """
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    data = require_grouped(data)
    named = dict(models) if isinstance(models, Mapping) else {"model": models}
    if not named:
        msg = "Expected at least one model to plot. Received: models={}"
        raise BinomlabError(msg)
    colors = checked_colors(colors, len(named))
    made = ax is None
    if ax is None:
        _, ax = plt.subplots(figsize=(5.0, 5.0))
    ax.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="0.45", label="chance")
    trials, successes = counts(data)
    n, k = trials.astype(np.float64), successes.astype(np.float64)
    z = norm.ppf(0.975)
    for (name, model), color in zip(named.items(), colors, strict=True):
        with named_model(name):
            proba = resolve_proba(data, model)
            table = roc_curve(data, proba)
        auc, se = delong(n, k, proba)
        interval = "" if not np.isfinite(se) else (
            f" [{max(0.0, auc - z * se):.3f}, {min(1.0, auc + z * se):.3f}]"
        )  # fmt: skip
        # long run names wrap, so the legend stays inside the axes
        label = textwrap.fill(f"{name}: AUC {auc:.3f}{interval}", LEGEND_WIDTH)
        ax.plot(table["fpr"], table["tpr"], color=color, linewidth=1.8, label=label)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right", fontsize="small", framealpha=0.85)
    if made:
        ax.figure.tight_layout()
    return ax
