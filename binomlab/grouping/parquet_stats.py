"""A parquet file's own statistics in place of a pass over its rows.

Every parquet writer in common use stores, per row group and per column, the number of nulls
and the minimum and maximum value; readers trust them to skip row groups. :func:`~binomlab.group`
needs exactly those numbers before it counts by dense key (the rows, the label's nulls, the
features' nulls and integer ranges, see :func:`binomlab.grouping.dense_keys.range_exprs`), so
for parquet files it reads them from the footers, in milliseconds, instead of reading every
row once more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from binomlab.grouping.dense_keys import stat_name

if TYPE_CHECKING:
    import pyarrow.parquet as pq

__all__ = ["footer_stats"]


def _column_stats(metas: Sequence[pq.FileMetaData], column: str) -> tuple[int, Any, Any] | None:
    """Nulls, minimum and maximum of ``column`` over every row group (min and max None when
    every value is null), or None when a row group lacks them or a file lacks the column."""
    nulls, low, high = 0, None, None
    for meta in metas:
        names = [meta.schema.column(i).path for i in range(meta.num_columns)]
        if column not in names:
            return None
        index = names.index(column)
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            stats = group.column(index).statistics
            if stats is None or not stats.has_null_count:
                return None
            nulls += stats.null_count
            if stats.null_count == group.num_rows:
                continue
            if not stats.has_min_max:
                return None
            low = stats.min if low is None else min(low, stats.min)
            high = stats.max if high is None else max(high, stats.max)
    return nulls, low, high


def footer_stats(
    files: Sequence[str],
    features: Sequence[str],
    binned_schema: pl.Schema,
    label: str,
    positive: Any,
) -> dict[str, Any] | None:
    """The label's summary and the features' ranges, as the pass over the rows gives them.

    Parameters
    ----------
    files
        Parquet files.
    features, label, positive
        As in :func:`binomlab.group`.
    binned_schema
        The features' dtypes after binning: min and max are read for the integer ones,
        nothing for the string ones.

    Returns
    -------
    dict or None
        ``rows``, ``nulls`` (the label's), ``bad`` (0) for an integer label, and the
        features' statistics named by :func:`~binomlab.grouping.dense_keys.stat_name`; None when a
        statistic is missing, or the label is not bool or integer 0/1 with no ``positive``
        (then its values must be read to be checked).
    """
    label_dtype = binned_schema[label]
    if positive is not None or not (label_dtype == pl.Boolean or label_dtype.is_integer()):
        return None
    import pyarrow.parquet as pq  # only for files: `import binomlab` stays light

    metas = [pq.read_metadata(f) for f in files]
    label_stats = _column_stats(metas, label)
    if label_stats is None:
        return None
    label_nulls, low, high = label_stats
    out: dict[str, Any] = {
        "rows": sum(meta.num_rows for meta in metas),
        "nulls": label_nulls,
    }
    if label_dtype.is_integer():
        if low is not None and (low < 0 or high > 1):
            return None  # not 0/1: the pass over the rows finds the values to quote
        out["bad"] = 0
    for f in features:
        if binned_schema[f] == pl.String:
            continue  # coded as the rows stream, with a slot for null always: nothing to read
        found = _column_stats(metas, f)
        if found is None:
            return None
        nulls, low, high = found
        out[stat_name(f, "nulls")] = nulls
        if binned_schema[f].is_integer():
            out[stat_name(f, "min")] = low
            out[stat_name(f, "max")] = high
    return out
