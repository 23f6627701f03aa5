"""``bl.cross_validate``: k-fold cross-validation on exact trial folds, through ``bl.fit``.

The folds are :meth:`binomlab.Grouped.kfold`'s: the trials are partitioned as if the raw rows
had been shuffled and cut into ``folds`` parts, so every trial is scored exactly once, by a
model that never saw it. Every model is fitted and scored on the same folds (a paired design),
each fit through :func:`binomlab.fit` (so any backend works) and each test part scored with
:func:`binomlab.evaluate`.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
import reprlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from binomlab._checks import check_bool, check_fraction, check_seed, is_bool
from binomlab.backends.protocol import TrainConfig
from binomlab.errors import BinomlabError
from binomlab.grouped import Grouped, GroupedSource, require_grouped
from binomlab.metrics import evaluate
from binomlab.progress import counter
from binomlab.training import fit, resolve

__all__ = ["FOLD_SCHEMA", "METRICS", "CrossValidation", "cross_validate"]

METRICS = ("nll", "brier", "auc", "ece")
"""The metrics of :func:`binomlab.evaluate` that each test fold is scored on."""

FOLD_SCHEMA = {
    "model": pl.String,
    "backend": pl.String,
    "spec": pl.String,
    "fold": pl.Int64,
    "train_trials": pl.Int64,
    "val_trials": pl.Int64,
    "test_trials": pl.Int64,
    **dict.fromkeys(METRICS, pl.Float64),
    "seconds": pl.Float64,
    "epochs": pl.Int64,
    "stop_reason": pl.String,
}
"""The columns of :attr:`CrossValidation.folds`, one row per (model, fold)."""

_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig)) - {"options"}
_FIT_ONLY = frozenset(
    name
    for name, parameter in inspect.signature(fit).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    and name not in _CONFIG_FIELDS | {"model", "backend"}
)
"""``bl.fit``'s keyword arguments that :func:`binomlab.training.resolve` does not take (val,
callbacks, the encoding options, features): the rest are checked before anything trains."""

_SET_BY_CROSS_VALIDATE = {
    "train": "cross_validate fits every model on each fold's training part",
    "val": (
        "cross_validate makes the validation part of each fold itself: pass "
        "cross_validate(..., val=fraction)"
    ),
}


class CrossValidation(pl.DataFrame):
    """The result of :func:`cross_validate`: a Polars frame with one row per model, and the
    per-fold scores in :attr:`folds`.

    Columns: ``model``, ``folds``, then ``nll``, ``nll_se``, ``brier``, ``brier_se``, ``auc``,
    ``auc_se``, ``ece``, ``ece_se`` and ``seconds`` (see :func:`cross_validate`).

    Frames derived from it (``filter``, ``sort``, ``select``, ...) are plain Polars frames,
    without ``folds``.
    """

    folds: pl.DataFrame | None = None

    def __init__(self, table: pl.DataFrame, folds: pl.DataFrame) -> None:
        super().__init__(table)
        self.folds = folds


def _model_arguments(
    models: Any, fit_options: Mapping[str, Any], seed: int
) -> dict[str, dict[str, Any]]:
    """``{name: bl.fit keyword arguments}``: the common options, overridden by the model's."""
    if not isinstance(models, Mapping) or not models:
        msg = (
            "Expected models to be a non-empty dict {name: spec or dict of bl.fit arguments}, "
            "e.g. {'glm': 'logistic', 'mlp': {'model': 'mlp:32', 'epochs': 20}}. "
            f"Received: models={models!r}"
        )
        raise BinomlabError(msg)
    bad_names = [name for name in models if not isinstance(name, str)]
    if bad_names:
        msg = f"Expected the names in models to be strings. Received: {bad_names[0]!r}"
        raise BinomlabError(msg)
    runs = {}
    for name, value in models.items():
        own = dict(value) if isinstance(value, Mapping) else {"model": value}
        bad_keys = [key for key in own if not isinstance(key, str)]
        if bad_keys:
            msg = (
                f"Expected the keys of models[{name!r}] to be names of bl.fit arguments "
                f"(strings). Received: {bad_keys[0]!r}"
            )
            raise BinomlabError(msg)
        arguments = {"seed": seed, **fit_options, **own}
        for key, reason in _SET_BY_CROSS_VALIDATE.items():
            if key in arguments:
                where = f"models[{name!r}]" if key in own else "**fit_options"
                shown = reprlib.repr(arguments[key])
                msg = f"{where} sets {key}, but {reason}. Received: {key}={shown}"
                raise BinomlabError(msg)
        runs[str(name)] = arguments
    return runs


def _check_before_training(train: Grouped, runs: Mapping[str, Mapping[str, Any]]) -> None:
    """Resolve every model's spec, backend and options as ``bl.fit`` does (its own checks and
    messages), so that a typo in the last model fails before the first one trains."""
    for name, arguments in runs.items():
        checked = {k: v for k, v in arguments.items() if k not in _FIT_ONLY}
        try:
            resolve(train, **checked)
        except BinomlabError as err:
            err.add_note(f"In cross_validate, models[{name!r}].")
            raise


def _trial_folds(
    grouped: Grouped, folds: int, seed: int, val: float | None
) -> list[tuple[Grouped, Grouped | None, Grouped]]:
    """``(fit_train, fit_val, test)`` per fold: ``grouped.kfold(folds, seed=seed)``, each
    training part split again with ``val`` (a generator seeded by ``(seed, fold)``)."""
    whole = isinstance(folds, numbers.Integral) and not is_bool(folds)
    if not (whole and 2 <= folds <= grouped.trials):
        msg = (
            f"Expected folds to be an int >= 2 and at most the {grouped.trials:,} trials (every "
            f"fold needs one). Received: folds={folds!r}"
        )
        raise BinomlabError(msg)
    out = []
    parts = grouped.kfold(int(folds), seed=seed)
    for fold, (train, test) in enumerate(parts, start=1):
        fit_val = None
        if val is not None:
            train, fit_val = train.split(val, seed=np.random.default_rng((seed, fold)))
        out.append((train, fit_val, test))
    return out


class _Bar:
    """One tqdm bar over every fit (models × folds), its description the model and fold."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self._bar: Any = counter(total, "cross_validate", unit="fit", enabled=enabled)

    def start(self, name: str, fold: int, folds: int) -> None:
        if self._bar is not None:
            self._bar.set_description(f"{name} · fold {fold}/{folds}")

    def done(self, name: str, fold: int, nll: float) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"{name} fold {fold}: test nll {nll:.5f}", refresh=False)
            self._bar.update()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def cross_validate(
    grouped: GroupedSource,
    models: Mapping[str, Any],
    folds: int = 5,
    *,
    seed: int = 0,
    val: float | None = None,
    progress: bool = True,
    **fit_options: Any,
) -> CrossValidation:
    """Cross-validate ``models`` on ``folds`` exact folds of the trials of ``grouped``.

    The folds are ``grouped.kfold(folds, seed=seed)``: as if the raw rows were shuffled and
    cut into ``folds`` parts of sizes as equal as possible (they differ by at most one
    trial), so every trial is in exactly one test fold. For each fold, every model is fitted
    with :func:`binomlab.fit` on the other folds' trials and scored with
    :func:`binomlab.evaluate` on the fold's trials. All models see the same folds (and the
    same validation parts), so their per-fold scores are paired.

    Parameters
    ----------
    grouped
        A :class:`~binomlab.Grouped`, or the path of a grouped parquet file
        (:func:`binomlab.read_grouped`). It is never changed.
    models
        ``{name: model}``, a non-empty mapping with string names. A model is a spec
        ``bl.fit(model=...)`` takes (``"logistic"``, ``"mlp:64,32"``, :class:`~binomlab.Logistic`,
        :class:`~binomlab.MLP`) or a dict of ``bl.fit`` keyword arguments, e.g.
        ``{"model": "mlp:32", "backend": "lightning", "epochs": 20, "lr": 1e-3}``; its keys
        override ``fit_options``. ``train`` and ``val`` are set by cross-validation and are
        refused there.
    folds
        Number of folds, an int >= 2 and at most ``grouped.trials``.
    seed
        A non-negative integer below 2**32. It draws the folds and the validation parts, and
        is every fit's ``seed`` unless a model's dict sets its own. The same seed gives the
        same folds and, backends being deterministic, the same result.
    val
        None (default), or a fraction in (0, 1): each fold's training part is split again,
        exactly on its trials (``train.split(val, seed=numpy.random.default_rng((seed,
        fold)))``, fold counted from 1, the same for every model), and ``bl.fit`` trains on
        the rest with that part as ``val=``. With adam/adamw the
        validation NLL picks the best epoch and drives ``early_stopping``; newton and lbfgs
        only record it. The validation trials are neither trained on nor scored, so
        ``train_trials`` is smaller by ``val_trials``.
    progress
        True (default) draws one tqdm bar over the ``len(models) × folds`` fits, showing the
        model and the fold being fitted.
    **fit_options
        ``bl.fit`` keyword arguments common to all models (``backend="reference"``,
        ``epochs=...``, backend options), overridden by a model's dict.

    Returns
    -------
    CrossValidation
        A Polars frame, one row per model in the order of ``models``:

        ``model``
            The name.
        ``folds``
            Number of folds (Int64).
        ``nll``, ``brier``, ``auc``, ``ece``
            The plain (unweighted) mean over the folds of each test fold's metric, as
            :func:`binomlab.evaluate` defines it: per-trial NLL in nats, Brier score, ROC AUC
            and expected calibration error. The folds differ by at most one trial, so the
            trial-weighted mean (for ``nll`` and ``brier``, the pooled out-of-fold score)
            differs from it negligibly. A fold whose test part has no successes or no
            failures has a NaN AUC, and so has the mean.
        ``nll_se``, ``brier_se``, ``auc_se``, ``ece_se``
            The standard error of that mean, ``sd(ddof=1) / √folds`` of the fold metrics.
            It is only approximate, and tends to be too small: the folds' models share most
            of their training data, so their scores are not independent, and no unbiased
            estimator of the variance of k-fold cross-validation exists (Bengio & Grandvalet,
            2004). Compare models by their paired per-fold differences rather than by
            overlapping ± SE intervals.
        ``seconds``
            Total training time of the model over the folds (wall seconds of ``bl.fit``'s
            training, scoring not included).

        Its attribute ``folds`` is a Polars frame with one row per (model, fold), models in
        order and folds 1 to ``folds``: ``model``, ``backend``, ``spec``, ``fold``,
        ``train_trials`` (trials fitted on), ``val_trials`` (null without ``val``),
        ``test_trials``, the four metrics, ``seconds``, ``epochs`` (epochs or iterations
        run) and ``stop_reason`` (``fitted.stop_reason``: ``max_iter`` or ``stalled`` mark a
        fold that did not converge).

    Raises
    ------
    NotGroupedError
        ``grouped`` is not grouped data, e.g. raw rows (the message says how to group them).
        Also a TypeError.
    BinomlabError
        ``models`` empty or not a mapping, a name that is not a string, a model's dict
        setting ``train`` or ``val``; ``folds`` not an int >= 2 or more than the trials;
        ``seed`` not an integer in [0, 2**32); ``val`` not a fraction in (0, 1), or leaving a
        validation part empty; ``progress`` not a bool. A model's spec, backend or options
        are refused by ``bl.fit``'s own checks, all of them before anything trains (the
        error carries a note naming the model).
    BackendNotFoundError, TrainingDivergedError, UnseenValueError
        As :func:`binomlab.fit` and :func:`binomlab.evaluate`, with a note naming the model
        and the fold. A test fold can hold a level of a rare feature value that its training
        part lacks. ``min_frequency=N, unseen="other"`` scores it only when each training
        part has some level with fewer than ``N`` trials (that trains the ``<other>`` level
        unseen values go to); otherwise pool or drop the rare levels before cross-validating.
    KeyboardInterrupt
        Training was interrupted (Ctrl-C): no partial result is returned.

    Warns
    -----
    ConvergenceWarning, PerfectSeparationWarning, AliasedColumnsWarning
        Whatever a fit warns is passed on as it is, under the warning filters in force
        (Python shows a repeated warning once per place by default; the ``stop_reason``
        column records each fold's outcome).

    Examples
    --------
    >>> cv = bl.cross_validate(train, {"glm": "logistic",
    ...                                "mlp": {"model": "mlp:32", "epochs": 20}},
    ...                        folds=5, backend="lightning")  # doctest: +SKIP
    >>> cv.folds.pivot("model", index="fold", values="nll")  # paired  # doctest: +SKIP
    """
    grouped = require_grouped(grouped, name="grouped")
    seed = check_seed(seed, name="seed", bits=32)
    val = None if val is None else check_fraction(val, name="val")
    progress = check_bool(progress, name="progress")
    runs = _model_arguments(models, fit_options, seed)
    parts = _trial_folds(grouped, folds, seed, val)
    _check_before_training(parts[0][0], runs)

    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
    bar = _Bar(len(runs) * len(parts), enabled=progress)
    try:
        for fold, (train, fit_val, test) in enumerate(parts, start=1):
            for name, arguments in runs.items():
                bar.start(name, fold, len(parts))
                try:
                    row = _fit_and_score(train, fit_val, test, arguments)
                except (Exception, KeyboardInterrupt) as err:
                    err.add_note(f"In cross_validate, models[{name!r}], fold {fold}/{len(parts)}.")
                    raise
                rows[name].append({"model": name, "fold": fold, **row})
                bar.done(name, fold, row["nll"])
    finally:
        bar.close()

    per_fold = pl.DataFrame([r for model in rows.values() for r in model], schema=FOLD_SCHEMA)
    sqrt_folds = math.sqrt(len(parts))
    statistics = []
    for metric in METRICS:
        statistics.append(pl.col(metric).mean())
        statistics.append((pl.col(metric).std(ddof=1) / sqrt_folds).alias(f"{metric}_se"))
    table = per_fold.group_by("model", maintain_order=True).agg(
        pl.len().cast(pl.Int64).alias("folds"), *statistics, pl.col("seconds").sum()
    )
    return CrossValidation(table, per_fold)


def _fit_and_score(
    train: Grouped, fit_val: Grouped | None, test: Grouped, arguments: Mapping[str, Any]
) -> dict[str, Any]:
    """Fit one model on one fold's training part and score it on the fold's test part."""
    fitted = fit(train, val=fit_val, **arguments)
    if fitted.stop_reason == "interrupted":  # bl.fit keeps an interrupted model: stop here
        msg = "cross_validate was interrupted; no result is returned."
        raise KeyboardInterrupt(msg)
    scores = evaluate(test, fitted)
    return {
        "backend": fitted.backend,
        "spec": str(fitted.spec),
        "train_trials": train.trials,
        "val_trials": None if fit_val is None else fit_val.trials,
        "test_trials": test.trials,
        **{metric: scores[metric] for metric in METRICS},
        "seconds": fitted.seconds_,
        "epochs": fitted.epochs_,
        "stop_reason": fitted.stop_reason,
    }
