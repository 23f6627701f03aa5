"""The CORP score decomposition: ``score = miscalibration − discrimination + uncertainty``.

For a consistent scoring function of the mean (log loss, Brier score), the recalibrated
predictions ``r`` — the trial-weighted isotonic regression of the outcomes on the predictions
(:mod:`binomlab.isotonic`) — split the mean score ``S(p)`` into

* ``miscalibration = S(p) − S(r)``: what recalibrating the model would gain (≥ 0),
* ``discrimination = S(ȳ) − S(r)``: what the model's ranking of the trials is worth over the
  constant base rate ``ȳ`` (≥ 0),
* ``uncertainty = S(ȳ)``: the score of the base rate, the same for every model,

as in Dimitriadis, Gneiting and Jordan (2021) and :func:`model_diagnostics.scoring.decompose`
(whose numbers these equal on the expanded rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from scipy.special import xlogy

from binomlab._proba import counts, named_model, resolve_proba
from binomlab.errors import BinomlabError
from binomlab.grouped import require_grouped
from binomlab.isotonic import fit_isotonic

if TYPE_CHECKING:
    from binomlab.grouped import GroupedSource

__all__ = ["DECOMPOSITION_SCHEMA", "SCORES", "decompose"]

SCORES = ("log_loss", "brier")
DECOMPOSITION_SCHEMA = {
    "model": pl.String,
    "scoring": pl.String,
    "miscalibration": pl.Float64,
    "discrimination": pl.Float64,
    "uncertainty": pl.Float64,
    "score": pl.Float64,
}
"""The columns of :func:`decompose`'s frame."""


def decompose(
    data: GroupedSource,
    models: Any,
    *,
    scoring: str | tuple[str, ...] = SCORES,
) -> pl.DataFrame:
    """Decompose each model's score into miscalibration, discrimination and uncertainty.

    Parameters
    ----------
    data : Grouped or path
        The grouped counts, as :func:`binomlab.evaluate` takes them (usually test data).
    models : array-like, fitted model, or dict of name -> array-like or fitted model
        Probabilities (one per group) or objects with ``predict_proba(data)``; a single
        model is named ``"model"``.
    scoring : "log_loss", "brier", or a tuple of them, default both
        The per-trial scores: log loss (``nll`` of :func:`binomlab.evaluate`) and the Brier
        score (squared error).

    Returns
    -------
    polars.DataFrame
        One row per model and score, in the order given: ``model``, ``scoring``,
        ``miscalibration``, ``discrimination``, ``uncertainty``, ``score`` (Float64, per
        trial), with ``score = miscalibration − discrimination + uncertainty`` to rounding.
        An infinite log loss (a prediction of 0 or 1 contradicted by a trial) makes
        ``score`` and ``miscalibration`` infinite.

    Raises
    ------
    BinomlabError
        An empty dict of models or an unknown score.
    NotGroupedError, InvalidProbabilityError, EmptyDataError, TypeError
        As :func:`binomlab.evaluate`.
    """
    chosen = (scoring,) if isinstance(scoring, str) else scoring
    if not isinstance(chosen, tuple | list) or not chosen or any(s not in SCORES for s in chosen):
        msg = f"Expected scoring to be one or more of {SCORES}. Received: scoring={scoring!r}"
        raise BinomlabError(msg)
    named = dict(models) if isinstance(models, Mapping) else {"model": models}
    if not named:
        msg = "Expected at least one model to decompose. Received: models={}"
        raise BinomlabError(msg)
    data = require_grouped(data)
    trials, successes = counts(data)
    n, k = trials.astype(np.float64), successes.astype(np.float64)
    total = float(n.sum())
    base_rate = np.full(n.size, k.sum() / total)
    rows = []
    for name, model in named.items():
        with named_model(name):
            proba = resolve_proba(data, model)
        recalibrated = fit_isotonic(proba, trials, successes).per_group
        for score in dict.fromkeys(chosen):
            value = mean_score(n, k, proba, score)
            uncertainty = mean_score(n, k, base_rate, score)
            optimum = mean_score(n, k, recalibrated, score)
            rows.append(
                {
                    "model": str(name),
                    "scoring": score,
                    "miscalibration": value - optimum,
                    "discrimination": uncertainty - optimum,
                    "uncertainty": uncertainty,
                    "score": value,
                }
            )
    return pl.DataFrame(rows, schema=DECOMPOSITION_SCHEMA)


def mean_score(n: np.ndarray, k: np.ndarray, proba: np.ndarray, score: str) -> float:
    """The per-trial mean of ``score`` ("log_loss" or "brier") over the expanded rows."""
    if score == "log_loss":
        # + 0.0: a score of zero prints as 0, not -0
        return float(-np.sum(xlogy(k, proba) + xlogy(n - k, 1.0 - proba)) / n.sum()) + 0.0
    return float(np.sum(k * (1.0 - proba) ** 2 + (n - k) * proba**2) / n.sum())
