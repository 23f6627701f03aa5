"""Data that is already aggregated into counts: :func:`from_counts`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from binomlab import binning
from binomlab.errors import BinomlabError, EmptyDataError, InvalidCountsError
from binomlab.grouped import MAX_COUNT, Grouped, check_feature_names, total_overflows
from binomlab.grouping.checks import BinsArg, check_columns, check_feature_dtypes
from binomlab.grouping.sources import to_lazy

__all__ = ["from_counts"]


def _first_bad(frame: pl.DataFrame, condition: pl.Expr, column: str) -> tuple[int, Any, int]:
    """Row index and value of the first row meeting ``condition``, and how many rows do."""
    bad = frame.with_row_index("_row").filter(condition)
    return int(bad["_row"][0]), bad[column][0], bad.height


def _beyond_int64(col: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Values an Int64 cannot hold (only unsigned 64-bit, float and decimal columns have any)."""
    if dtype == pl.UInt64:
        return col > pl.lit(MAX_COUNT, dtype=pl.UInt64)
    if dtype.is_float() or dtype.is_decimal():
        return col.cast(pl.Float64) >= 2.0**63
    return pl.lit(False)


def _check_counts(frame: pl.DataFrame, trials: str, successes: str) -> None:
    for column in (trials, successes):
        dtype = frame.schema[column]
        if not dtype.is_numeric():
            msg = f"Count column {column!r} has dtype {dtype}; expected integer counts."
            raise InvalidCountsError(msg)
        col = pl.col(column)
        checks: list[tuple[pl.Expr, str]] = [(col.is_null(), "null")]
        if dtype.is_float() or dtype.is_decimal():
            whole = col.cast(pl.Float64)
            checks.append((~whole.is_finite() | (whole != whole.floor()), "not a whole number"))
        checks.append((col < 0, "negative"))
        checks.append((_beyond_int64(col, dtype), f"beyond Int64 (above {MAX_COUNT:,})"))
        for condition, what in checks:
            if frame.select(condition.any()).item():
                row, value, count = _first_bad(frame, condition, column)
                msg = (
                    f"Count column {column!r} is {what} in {count:,} rows "
                    f"(first at row {row}: {value!r}); counts must be whole numbers in "
                    f"[0, 2**63 - 1]."
                )
                raise InvalidCountsError(msg)
    over = pl.col(successes) > pl.col(trials)
    if frame.select(over.any()).item():
        row, value, count = _first_bad(frame, over, successes)
        msg = (
            f"Successes {successes!r} exceed trials {trials!r} in {count:,} rows (first at row "
            f"{row}: {successes}={value!r} > {trials}={frame[trials][row]!r})."
        )
        raise InvalidCountsError(msg)
    if frame.select(total_overflows(trials)).item():
        msg = (
            f"The trials {trials!r} sum to more than {MAX_COUNT:,} (2**63 - 1), beyond what "
            "the Int64 counts of a Grouped hold."
        )
        raise InvalidCountsError(msg)
    empty = pl.col(trials) == 0
    if frame.select(empty.any()).item():
        row, _, count = _first_bad(frame, empty, trials)
        msg = (
            f"Trials {trials!r} is 0 in {count:,} rows (first at row {row}); every group needs "
            f"at least one trial. Filter them out first, e.g. .filter(pl.col({trials!r}) > 0)."
        )
        raise InvalidCountsError(msg)


def from_counts(
    data: Any,
    features: str | Sequence[str],
    *,
    trials: str = "n",
    successes: str = "k",
    bins: BinsArg = None,
) -> Grouped:
    """Build a :class:`Grouped` from data that is already aggregated into counts.

    Rows with the same feature values (after binning, if ``bins`` is given) are merged by
    summing their counts.

    Parameters
    ----------
    data
        Any source :func:`group` accepts, holding the features and the two count columns.
    features
        The feature column name(s).
    trials, successes
        Names of the trial count and success count columns (whole numbers, 0 <= k <= n,
        n >= 1); float columns are accepted when every value is a whole number.
    bins
        As in :func:`group`.

    Raises
    ------
    ColumnNotFoundError
        A feature or count column is missing.
    InvalidCountsError
        A count that is null, negative, not a whole number, beyond Int64 (above 2**63 - 1),
        successes above trials, zero trials, or trials that sum beyond Int64.
    EmptyDataError
        No rows.
    """
    features = check_feature_names(features)
    if trials == successes:
        msg = f"trials and successes must be different columns. Received: {trials!r} for both."
        raise BinomlabError(msg)
    clash = [c for c in (trials, successes) if c in features]
    if clash:
        msg = f"Column {clash[0]!r} is both a feature and a count column."
        raise BinomlabError(msg)
    lf = to_lazy(data)
    schema = lf.collect_schema()
    check_columns(schema, features, "feature")
    check_columns(schema, [trials, successes], "count")
    check_feature_dtypes(schema, features)

    frame = lf.select(*features, trials, successes).collect(engine="streaming")
    if frame.height == 0:
        msg = "The data holds no rows of counts."
        raise EmptyDataError(msg)
    _check_counts(frame, trials, successes)
    edges = binning.resolve_bins(frame.lazy(), bins, features=features, schema=schema)
    counts = (
        binning.apply_bins(frame, edges)
        .group_by(features)
        .agg(
            pl.col(trials).cast(pl.Int64).sum().alias("n"),
            pl.col(successes).cast(pl.Int64).sum().alias("k"),
        )
        .sort(features, nulls_last=False)
        .collect()
    )
    counts = binning.check_binned(counts, edges, source=frame.lazy())
    return Grouped(counts, features, bins=edges)
