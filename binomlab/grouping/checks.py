"""The arguments and columns every grouping path checks first, the same way.

:func:`~binomlab.group`, :func:`~binomlab.from_counts`, :func:`~binomlab.group_sql` and Spark
all normalise the feature names and look the features and the label up in the source's schema
here, so a missing column or a bad dtype raises the same error whichever engine counts the rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from binomlab._checks import check_bool
from binomlab.errors import BinomlabError, ColumnNotFoundError, InvalidLabelError
from binomlab.grouped import check_feature_names

__all__ = ["BinsArg", "check_group_arguments", "check_group_schema"]

BinsArg = Mapping[str, int | Sequence[float]] | None
"""The ``bins=`` argument: ``{"col": 10}`` (quantile bins) or ``{"col": [edges]}``."""


def check_columns(schema: pl.Schema, wanted: Sequence[str], role: str) -> None:
    """Raise :class:`~binomlab.ColumnNotFoundError` naming the ``wanted`` columns (the
    ``role``: feature, label, count) that ``schema`` lacks, and the ones it has."""
    missing = [c for c in wanted if c not in schema]
    if missing:
        raise ColumnNotFoundError.from_missing_and_available(missing, list(schema), role=role)


def check_feature_dtypes(schema: pl.Schema, features: Sequence[str]) -> None:
    """Raise :class:`~binomlab.BinomlabError` for a nested or object feature column."""
    for f in features:
        dtype = schema[f]
        if dtype.is_nested() or dtype == pl.Object:
            msg = (
                f"Feature {f!r} has dtype {dtype}; features must be scalar values (strings, "
                "categoricals, enums, integers, booleans, or numbers to bin)."
            )
            raise BinomlabError(msg)


def check_group_arguments(
    features: str | Sequence[str], label: Any, *, drop_null_labels: Any = False
) -> tuple[str, ...]:
    """Normalise ``features``, check ``label`` is a name that is not also a feature and
    ``drop_null_labels`` a bool.

    Raises
    ------
    BinomlabError
        Bad feature names (see :func:`~binomlab.grouped.check_feature_names`), a label that
        is not a string, the label also listed as a feature, or a ``drop_null_labels`` that
        is not True or False (``"no"`` is refused, not taken as true).
    """
    check_bool(drop_null_labels, name="drop_null_labels")
    features = check_feature_names(features)
    if not isinstance(label, str):
        msg = f"label must be a column name. Received: label={label!r}"
        raise BinomlabError(msg)
    if label in features:
        msg = f"Column {label!r} is both the label and a feature; a model cannot see its outcome."
        raise BinomlabError(msg)
    return features


def check_group_schema(schema: pl.Schema, features: Sequence[str], label: str) -> None:
    """Check that the features and the label are columns of ``schema`` with usable dtypes.

    Raises
    ------
    ColumnNotFoundError
        A feature or the label is not in ``schema``; the message lists the available columns.
    BinomlabError
        A nested or object feature.
    InvalidLabelError
        A nested label.
    """
    check_columns(schema, features, "feature")
    check_columns(schema, [label], "label")
    check_feature_dtypes(schema, features)
    if schema[label].is_nested():
        msg = f"Label {label!r} has dtype {schema[label]}; expected bool or 0/1."
        raise InvalidLabelError(msg)
