"""``bl.compare``: a leaderboard of models evaluated on the same grouped data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from binomlab._checks import check_bool
from binomlab._proba import named_model, resolve_proba
from binomlab.errors import BinomlabError
from binomlab.grouped import GroupedSource, require_grouped
from binomlab.metrics import evaluate
from binomlab.uncertainty import INTERVAL_METRICS, leaderboard_intervals, paired_test

__all__ = ["INTERVAL_SCHEMA", "LEADERBOARD_SCHEMA", "compare"]

LEADERBOARD_SCHEMA = {
    "model": pl.String,
    "backend": pl.String,
    "spec": pl.String,
    "params": pl.Int64,
    "nll": pl.Float64,
    "deviance": pl.Float64,
    "brier": pl.Float64,
    "auc": pl.Float64,
    "ece": pl.Float64,
    "dispersion": pl.Float64,
    "df_resid": pl.Float64,
    "df_note": pl.String,
    "seconds": pl.Float64,
    "epochs": pl.Int64,
}
INTERVAL_SCHEMA = {
    **{
        f"{metric}_{part}": pl.Float64
        for metric in INTERVAL_METRICS
        for part in ("se", "lower", "upper")
    },
    "nll_vs_best": pl.Float64,
    "nll_vs_best_se": pl.Float64,
    "nll_vs_best_p": pl.Float64,
}
"""The columns ``compare(..., intervals=True)`` adds after :data:`LEADERBOARD_SCHEMA`'s."""


def _describe(model: Any) -> dict[str, Any]:
    """Backend, spec, parameters, training seconds and epochs of a fitted model, if it is one."""
    if not hasattr(model, "predict_proba"):
        return {"backend": None, "spec": None, "params": None, "seconds": None, "epochs": None}
    spec = getattr(model, "spec", None)
    return {
        "backend": getattr(model, "backend", None),
        "spec": None if spec is None else str(spec),
        "params": getattr(model, "n_params_", None),
        "seconds": getattr(model, "seconds_", None),
        "epochs": getattr(model, "epochs_", None),
    }


def compare(
    models: Mapping[str, Any],
    data: GroupedSource,
    *,
    intervals: bool = True,
    level: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> pl.DataFrame:
    """Evaluate every model on ``data`` and rank them by per-trial NLL (best first).

    Parameters
    ----------
    models
        ``{name: model}``; a model is anything with ``predict_proba(data)`` (a ``Fitted``, a
        loaded ``Predictor``) or a plain array of probabilities, one per group of ``data``
        (e.g. a statsmodels GLM's predictions).
    data
        The grouped data to evaluate on, usually held-out trials: a Grouped or the path of
        a grouped parquet file (:func:`binomlab.read_grouped`), read once.
    intervals
        Add each metric's standard error and interval (:func:`binomlab.metric_intervals`:
        the test trials taken as independent draws; the ECE's by a bootstrap of the trials)
        and the paired comparison of every model with the best one
        (:func:`binomlab.paired_test` on the per-trial log loss).
    level, resamples, seed
        The intervals' confidence level, the ECE's bootstrap replicates and their seed.

    Returns
    -------
    pl.DataFrame
        One row per model: ``model``, ``backend``, ``spec``, ``params``, ``nll``,
        ``deviance``, ``brier``, ``auc``, ``ece``, ``dispersion`` (Pearson χ² over the residual
        degrees of freedom: ``groups − rank`` on a model's training data, ``groups`` on other
        data, see :func:`binomlab.evaluate`), ``df_resid`` (NaN where not defined),
        ``df_note`` (the rule used, or why there are no degrees of freedom), ``seconds``
        (training time) and ``epochs``; null where a plain array cannot say. ``params`` is
        the network's number of weights.
        With ``intervals`` (the default), then ``<metric>_se``, ``<metric>_lower`` and
        ``<metric>_upper`` for ``nll``, ``brier``, ``auc`` and ``ece``, and the paired
        comparison with the best model (the first row): ``nll_vs_best`` (the mean per-trial
        difference of log loss, ``≥ 0``), ``nll_vs_best_se`` and ``nll_vs_best_p`` (the
        two-sided p-value of "no difference"; null on the best row itself). Two models
        whose ``nll`` intervals overlap can still differ clearly: the paired columns are
        the test of that, as they share the trials.

    Raises
    ------
    NotGroupedError
        ``data`` is not grouped data (raw rows: the message says how to group them).
    BinomlabError
        ``models`` is empty or not a mapping; a bad ``level``, ``resamples`` or ``seed``.
    InvalidProbabilityError
        A model's probabilities have the wrong length or lie outside [0, 1].
    """
    if not isinstance(models, Mapping) or not models:
        msg = f"compare needs a non-empty dict {{name: model}}. Received: {models!r}"
        raise BinomlabError(msg)
    intervals = check_bool(intervals, name="intervals")
    data = require_grouped(data)
    rows, probas = [], []
    for name, model in models.items():
        with named_model(name):
            row = {"model": str(name), **_describe(model), **evaluate(data, model)}
            if intervals:
                proba = resolve_proba(data, model)
                row |= leaderboard_intervals(
                    data, proba, level=level, resamples=resamples, seed=seed
                )
                probas.append(proba)
        rows.append(row)
    if intervals:
        best = min(range(len(rows)), key=lambda i: (rows[i]["nll"], i))
        for row, proba in zip(rows, probas, strict=True):
            if row is rows[best]:
                row |= {"nll_vs_best": 0.0, "nll_vs_best_se": None, "nll_vs_best_p": None}
                continue
            test = paired_test(data, proba, probas[best], level=level)
            row |= {
                "nll_vs_best": test["difference"],
                "nll_vs_best_se": test["std_error"],
                "nll_vs_best_p": test["p_value"],
            }
    schema = LEADERBOARD_SCHEMA | (INTERVAL_SCHEMA if intervals else {})
    return pl.DataFrame(rows, schema=schema, strict=False).sort("nll", maintain_order=True)
