"""``bl.compare``: a leaderboard of models evaluated on the same grouped data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from binomlab.errors import BinomlabError
from binomlab.grouped import GroupedSource, require_grouped
from binomlab.metrics import evaluate

__all__ = ["LEADERBOARD_SCHEMA", "compare"]

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


def compare(models: Mapping[str, Any], data: GroupedSource) -> pl.DataFrame:
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

    Raises
    ------
    NotGroupedError
        ``data`` is not grouped data (raw rows: the message says how to group them).
    BinomlabError
        ``models`` is empty or not a mapping.
    InvalidProbabilityError
        A model's probabilities have the wrong length or lie outside [0, 1].
    """
    if not isinstance(models, Mapping) or not models:
        msg = f"compare needs a non-empty dict {{name: model}}. Received: {models!r}"
        raise BinomlabError(msg)
    data = require_grouped(data)
    rows = []
    for name, model in models.items():
        info = _describe(model)
        metrics = evaluate(data, model)
        rows.append({"model": str(name), **info, **metrics})
    return pl.DataFrame(rows, schema=LEADERBOARD_SCHEMA, strict=False).sort(
        "nll", maintain_order=True
    )
