"""The exceptions binomlab raises.

Every error is a :class:`BinomlabError`, itself a :class:`ValueError`, so ``except ValueError``
keeps working. Each message names the offending column or value and says how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "AliasedColumnsWarning",
    "BackendNotFoundError",
    "BinomlabError",
    "BinsMismatchError",
    "ColumnNotFoundError",
    "ConvergenceWarning",
    "EmptyDataError",
    "InvalidCountsError",
    "InvalidLabelError",
    "InvalidProbabilityError",
    "ModelFileError",
    "NotFittedError",
    "NotGroupedError",
    "PerfectSeparationWarning",
    "TrainingDivergedError",
    "UnseenValueError",
    "UnsupportedDataError",
]


class BinomlabError(ValueError):
    """Base class of every error binomlab raises on bad input."""


class ColumnNotFoundError(BinomlabError):
    """A column that was asked for is not in the data."""

    @classmethod
    def from_missing_and_available(
        cls, missing: Iterable[str], available: Iterable[str], *, role: str = "column"
    ) -> ColumnNotFoundError:
        missing = list(missing)
        available = list(available)
        role = role if len(missing) == 1 else f"{role}s"
        msg = (
            f"{role.capitalize()} {_quoted(missing)} not found in the data. "
            f"Available columns: {available}."
        )
        hints = [
            f"{name!r} -> {close[0]!r}"
            for name in missing
            if (close := difflib.get_close_matches(name, available, n=1))
        ]
        if hints:
            msg += f" Hint: did you mean {', '.join(hints)}?"
        return cls(msg)


class InvalidCountsError(BinomlabError):
    """Counts that cannot be binomial counts (k > n, negative, fractional, null)."""


class InvalidLabelError(BinomlabError):
    """A label column that is not a binary outcome."""


class InvalidProbabilityError(BinomlabError):
    """Predicted probabilities of the wrong shape, non-finite or outside [0, 1]."""


class EmptyDataError(BinomlabError):
    """The input holds no rows (or no trials) to work on."""


class UnsupportedDataError(BinomlabError, TypeError):
    """Data of a kind binomlab cannot read (a NumPy array, a number, ...): binomlab needs named
    columns. Also a :class:`TypeError`, as a wrong kind of argument is."""


class NotGroupedError(BinomlabError, TypeError):
    """Something other than grouped data (raw rows, say) where a Grouped is expected. Also a
    :class:`TypeError`."""

    @classmethod
    def from_received(
        cls, name: str, received: str, *, has_counts: bool, reads_files: bool
    ) -> NotGroupedError:
        """The error for argument ``name`` given a ``received`` type, with the hint that
        groups raw rows (``has_counts``: the data has ``n`` and ``k`` columns)."""
        accepted = "a Grouped" + (" or the path of a grouped parquet file" * reads_files)
        made = "(from bl.group, bl.from_counts or bl.read_grouped)"
        if has_counts:
            hint = "It has n and k columns: make it a Grouped with bl.from_counts(data, features)."
        else:
            hint = (
                "Group raw rows first with bl.group(rows, features, label), or use "
                "bl.from_counts(frame, features) for a frame with n and k columns."
            )
        return cls(f"{name} must be {accepted} {made}. Received: {received}. {hint}")


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)


class BackendNotFoundError(BinomlabError):
    """The training backend asked for is not installed (or failed to load)."""


class NotFittedError(BinomlabError):
    """A model was used for prediction or export before it was trained."""


class TrainingDivergedError(BinomlabError):
    """Training went astray: a loss became NaN or infinite, or the training NLL rose far above
    the constant base-rate model's (see :data:`binomlab.backends.loop.DIVERGENCE_RULE`)."""


class ModelFileError(BinomlabError):
    """An exported model directory that is missing files, corrupted or of an unknown format."""


class UnseenValueError(BinomlabError):
    """A feature value the model never saw in training (a new category, a null where training
    had none, a bin no training trial fell in): the model has no trained weight for it."""


class BinsMismatchError(BinomlabError):
    """Data binned with other bin edges than the model's: its bins are other intervals."""


class ConvergenceWarning(UserWarning):
    """A deterministic optimiser stopped before it met its tolerance: the estimate it returns
    is not the optimum (statsmodels and scikit-learn warn the same way)."""


class PerfectSeparationWarning(ConvergenceWarning):
    """The maximum-likelihood estimate does not exist: some groups are predicted perfectly
    (success rate 0 or 1) and their coefficients grow without bound."""


class AliasedColumnsWarning(UserWarning):
    """Columns of the logistic design that are linear combinations of others were dropped:
    their coefficients are not identified."""
