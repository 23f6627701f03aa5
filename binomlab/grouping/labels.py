"""The label: checked binary and folded into ``k``, the same way on every grouping path.

Databases and Spark (and :func:`~binomlab.grouping.group_files`) count rows by the features
*and* the label, at most two rows per group, and :func:`fold_label_counts` checks and folds that
small table. The Polars group-by counts ``n`` and ``k`` directly and checks the label from a few
global aggregates (:func:`label_summary`, :func:`check_label`); both raise the same errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from binomlab.errors import EmptyDataError, InvalidLabelError

__all__ = ["ROWS", "fold_label_counts"]

ROWS = "__binomlab_rows"
"""Name of the row count column in the (features, label) table :func:`fold_label_counts` takes."""


def _preview(values: list[Any], limit: int = 10) -> str:
    shown = sorted(values, key=repr)[:limit]
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return f"{shown!r}{more}"


def _is_binary_number(v: Any) -> bool:
    return isinstance(v, int | float) and v in (0, 1)


def resolve_positive(label: str, dtype: pl.DataType, values: list[Any], positive: Any) -> Any:
    """The success value of the label, after checking the label is binary.

    Raises
    ------
    InvalidLabelError
        More than two values, values other than 0/1 (or bool) with no ``positive=``, or a
        ``positive`` that is not among the values.
    """
    if positive is None:
        if dtype == pl.Boolean:
            return True
        if dtype.is_numeric() and all(_is_binary_number(v) for v in values):
            return 1
        hint = ""
        if len(values) == 2:
            hint = f" Name the success value, e.g. positive={max(values, key=repr)!r}."
        msg = (
            f"Label {label!r} ({dtype}) has values {_preview(values)}; expected 0/1 or bool, or a "
            f"two-valued column with positive= naming the success value.{hint}"
        )
        raise InvalidLabelError(msg)
    if len(values) > 2:
        msg = (
            f"Label {label!r} has {len(values)} distinct values {_preview(values)}; a binary "
            "label has at most two. Derive a 0/1 or bool column first, "
            f"e.g. (pl.col({label!r}) > threshold)."
        )
        raise InvalidLabelError(msg)
    if positive not in values:
        msg = (
            f"positive={positive!r} is not a value of label {label!r}; its values are "
            f"{_preview(values)}."
        )
        raise InvalidLabelError(msg)
    return positive


def is_success(label: str, positive: Any) -> pl.Expr:
    """1 where the label is a success: a 0/1 or bool label itself, else ``label == positive``."""
    return pl.col(label) if positive is None else pl.col(label) == positive


def label_summary(label: str, dtype: pl.DataType, positive: Any) -> list[pl.Expr]:
    """Global aggregates that tell whether the label is binary: rows, nulls, and either the
    count of values outside {0, 1} (bool/numeric without ``positive``) or up to three
    distinct values."""
    y = pl.col(label)
    exprs = [pl.len().alias("rows"), y.null_count().alias("nulls")]
    if positive is None and dtype == pl.Boolean:
        return exprs
    if positive is None and dtype.is_numeric():
        return [*exprs, ((y != 0) & (y != 1)).sum().alias("bad")]
    return [*exprs, y.drop_nulls().unique().head(3).implode().alias("some")]


def check_label(
    lf: pl.LazyFrame,
    label: str,
    dtype: pl.DataType,
    positive: Any,
    summary: dict[str, Any],
    drop_null_labels: bool,
) -> None:
    """Raise the errors :func:`fold_label_counts` raises, from the label's summary; only on
    the error path is the label read again, for the full list of its values."""
    if summary["rows"] == 0:
        msg = "The data holds no rows to group."
        raise EmptyDataError(msg)
    check_null_labels(label, summary["nulls"], drop_null_labels)
    if summary.get("bad", 0) or len(summary.get("some") or []) > 2:
        values = lf.select(pl.col(label).drop_nulls().unique()).collect()[label].to_list()
        resolve_positive(label, dtype, values, positive)  # raises
    if "some" in summary:
        resolve_positive(label, dtype, summary["some"], positive)


def check_null_labels(label: str, null_rows: int, drop_null_labels: bool) -> None:
    if null_rows and not drop_null_labels:
        msg = (
            f"Label {label!r} is null in {null_rows:,} rows. Fill them, filter them, or pass "
            "drop_null_labels=True to leave them out."
        )
        raise InvalidLabelError(msg)


def fold_label_counts(
    partial: pl.DataFrame,
    features: Sequence[str],
    label: str,
    *,
    positive: Any = None,
    drop_null_labels: bool = False,
) -> pl.DataFrame:
    """Fold rows counted per (features, label) into ``n`` and ``k`` per feature combination.

    This is the last, small step of every grouping path: Polars, a database
    (:func:`binomlab.group_sql`) and Spark all count rows by the features *and* the label,
    and hand that table here, so the label is checked the same way and the errors read the
    same whichever engine did the counting.

    Parameters
    ----------
    partial
        The feature columns, the label and an integer row count named :data:`ROWS`; at most
        one row per (features, label) combination.
    features, label
        Column names, as checked by :func:`check_group_arguments`.
    positive, drop_null_labels
        As in :func:`group`.

    Returns
    -------
    pl.DataFrame
        The features, then ``n`` and ``k`` (Int64), sorted by the features (nulls first).

    Raises
    ------
    EmptyDataError
        ``partial`` is empty, or every label is null and ``drop_null_labels`` is set.
    InvalidLabelError
        The label is not binary, is null somewhere (unless ``drop_null_labels``), or
        ``positive`` is not one of its values.
    """
    if partial.height == 0:
        msg = "The data holds no rows to group."
        raise EmptyDataError(msg)
    partial = partial.with_columns(pl.col(ROWS).cast(pl.Int64))
    dtype = partial.schema[label]
    is_null = pl.col(label).is_null()
    check_null_labels(label, int(partial.filter(is_null)[ROWS].sum()), drop_null_labels)
    partial = partial.filter(~is_null)
    values = partial[label].unique().to_list()
    success = resolve_positive(label, dtype, values, positive)

    counts = (
        partial.group_by(features)
        .agg(
            pl.col(ROWS).sum().alias("n"),
            pl.col(ROWS).filter(pl.col(label) == success).sum().alias("k"),
        )
        .sort(features, nulls_last=False)
    )
    if counts.height == 0:
        msg = f"Every row has a null label {label!r}; nothing is left to group."
        raise EmptyDataError(msg)
    return counts
