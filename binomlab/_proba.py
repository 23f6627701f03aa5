"""Turn "an array of probabilities or a fitted model" into one checked float64 vector.

Shared by :mod:`binomlab.metrics` and :mod:`binomlab.calibration`, so every function that takes
``proba_or_fitted`` (or ``bins``) accepts the same inputs and fails with the same messages.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from binomlab.errors import BinomlabError, EmptyDataError, InvalidProbabilityError

if TYPE_CHECKING:
    from binomlab.grouped import Grouped

__all__ = ["check_bins", "counts", "named_model", "resolve_proba", "uniform_bins"]


def resolve_proba(data: Grouped, proba_or_fitted: Any) -> np.ndarray:
    """Predicted probabilities for each group of `data`, validated.

    Parameters
    ----------
    data : Grouped
        The grouped data the probabilities are for, ``len(data)`` groups.
    proba_or_fitted : array-like or fitted model
        Either probabilities, one per group in the order of ``data.frame``, or any object with a
        ``predict_proba(data)`` method (a ``Fitted``, a ``Predictor``, ...), which is called.

    Returns
    -------
    numpy.ndarray
        float64, shape ``[len(data)]``, finite, within [0, 1]. Always a fresh array: the caller's
        array is never returned or modified.

    Raises
    ------
    TypeError
        If the probabilities are not numeric (strings, objects, complex numbers).
    InvalidProbabilityError
        If they are not 1-D, do not have one value per group, or hold a value that is NaN,
        infinite or outside [0, 1].
    """
    if callable(getattr(proba_or_fitted, "predict_proba", None)):
        raw = proba_or_fitted.predict_proba(data)
        source = f"{type(proba_or_fitted).__name__}.predict_proba(data)"
    else:
        raw = proba_or_fitted
        source = "The predicted probabilities"
    proba = _as_float_array(raw, source)

    if proba.ndim != 1:
        msg = (
            f"{source} must be 1-D with one probability per group, got shape {proba.shape}. "
            "Pass the probability of success only (for a [groups, 2] array, take column 1)."
        )
        raise InvalidProbabilityError(msg)
    if proba.shape[0] != len(data):
        msg = (
            f"{source} has length {proba.shape[0]} but the data has {len(data)} groups. "
            "Predict on the same Grouped data you evaluate."
        )
        raise InvalidProbabilityError(msg)
    bad = ~(np.isfinite(proba) & (proba >= 0.0) & (proba <= 1.0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        msg = (
            f"{source} must be finite and within [0, 1]: {int(bad.sum())} bad value(s), "
            f"the first at index {first}: {float(proba[first])!r}."
        )
        raise InvalidProbabilityError(msg)
    return proba


@contextmanager
def named_model(name: Any) -> Iterator[None]:
    """Add the note "In models[name]." to an error raised for one model of several, so the
    message says which one (its probabilities, its features) is at fault."""
    try:
        yield
    except (BinomlabError, TypeError) as err:
        err.add_note(f"In models[{name!r}].")
        raise


def counts(data: Grouped) -> tuple[np.ndarray, np.ndarray]:
    """Trials and successes of each group, as int64 arrays of shape ``[len(data)]``.

    Raises
    ------
    EmptyDataError
        If `data` has no groups.
    """
    if len(data) == 0:
        msg = "The grouped data has no groups; there is nothing to evaluate."
        raise EmptyDataError(msg)
    frame = data.frame
    trials = frame.get_column("n").to_numpy().astype(np.int64, copy=True)
    successes = frame.get_column("k").to_numpy().astype(np.int64, copy=True)
    return trials, successes


def _as_float_array(raw: Any, source: str) -> np.ndarray:
    """A float64 copy of `raw`, or ``TypeError`` if it is not numeric."""
    if raw is None:
        msg = f"{source} must be numeric, got None."
        raise TypeError(msg)
    array = np.asarray(raw)
    if array.dtype.kind in "biuf":
        return array.astype(np.float64, copy=True)
    if array.dtype.kind == "O":
        try:
            return np.array(array, dtype=np.float64)
        except (TypeError, ValueError):
            pass
    msg = (
        f"{source} must be numeric, got an array of dtype {array.dtype} "
        f"(type {type(raw).__name__}). Pass a float array or a fitted model with predict_proba."
    )
    raise TypeError(msg)


MAX_BINS = 100_000
"""More bins than this are refused: the tables hold one row per bin."""


def check_bins(bins: Any) -> None:
    """Raise ``BinomlabError`` unless `bins` is an integer in [1, :data:`MAX_BINS`]."""
    if (
        isinstance(bins, bool)
        or not isinstance(bins, numbers.Integral)
        or not 1 <= bins <= MAX_BINS
    ):
        msg = (
            f"Expected bins to be an integer in [1, {MAX_BINS:,}] (strategy='groups' gives "
            f"one point per group). Received: bins={bins!r}"
        )
        raise BinomlabError(msg)


def uniform_bins(proba: np.ndarray, bins: int) -> np.ndarray:
    """The bin of each probability among ``bins`` equal-width bins of [0, 1]: bin ``b`` holds
    ``[b/bins, (b+1)/bins)``, and 1.0 falls in the last one. int64, the shape of ``proba``."""
    return np.minimum(np.floor(bins * proba), bins - 1).astype(np.int64)
