"""The group-by: from raw rows to a :class:`~binomlab.Grouped`, with Polars.

:func:`group` is the SQL ``select features, count(*) n, sum(label) k from t group by
features`` as lazy Polars queries on the streaming engine. A few global aggregates of the
label (rows, nulls, values outside {0, 1} or up to three distinct values) tell whether it
is binary (:mod:`binomlab.grouping.labels`); the label is read again only to quote its values
in an error. When every feature is an integer, bool, enum or string column (binned features
are enums), those aggregates also give the integer features' ranges, and the rows are counted
by a dense integer key (:mod:`binomlab.grouping.dense_keys`; strings by their codes in a
categorical mapping, when a sample of the rows shows many groups); otherwise, or when the
ranges are too wide, by a hash group-by run together (``collect_all``) with the label's
aggregates, whose groups are then sorted (:func:`sort_groups`).
:func:`group_files` counts rows by the features *and* the label one file at a time, as
databases (:mod:`binomlab.grouping.sql`) and Spark (:mod:`binomlab.grouping.spark`) do, and
folds that small table with :func:`~binomlab.grouping.labels.fold_label_counts`; all paths
raise the same errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from binomlab import binning
from binomlab._checks import check_bool
from binomlab.errors import EmptyDataError
from binomlab.grouped import Grouped
from binomlab.grouping import dense_keys
from binomlab.grouping.checks import BinsArg, check_group_arguments, check_group_schema
from binomlab.grouping.labels import (
    ROWS,
    check_label,
    fold_label_counts,
    is_success,
    label_summary,
)
from binomlab.grouping.parquet_stats import footer_stats
from binomlab.grouping.sources import expand_paths, is_spark_dataframe, parquet_files, to_lazy
from binomlab.progress import iterate

__all__ = ["group", "group_files", "sort_groups"]


def group(
    data: Any,
    features: str | Sequence[str],
    label: str,
    *,
    positive: Any = None,
    bins: BinsArg = None,
    drop_null_labels: bool = False,
) -> Grouped:
    """Group raw 0/1 rows into binomial counts per feature combination.

    Parameters
    ----------
    data
        Raw rows: a Polars DataFrame/LazyFrame, pandas DataFrame, pyarrow Table, an object
        with ``__arrow_c_stream__``, a dict of columns ``{name: values}``, or a path, glob or
        list of parquet/CSV/NDJSON files (scanned lazily, in streaming batches): see
        :func:`binomlab.grouping.sources.to_lazy`. It is never changed. A Spark DataFrame
        is grouped by Spark and only the groups are collected (see
        :func:`binomlab.grouping.spark.group_spark`); for a table in a SQL database use
        :func:`binomlab.group_sql`.
    features
        Column name(s) to group by. Strings, categoricals, enums, integers and booleans; a
        numeric column can be discretised with ``bins``. A null feature value is a group of
        its own.
    label
        The outcome column: bool, integer or float 0/1, or any two-valued column together
        with ``positive=``.
    positive
        The label value that counts as a success. Needed unless the label is bool or 0/1.
    bins
        ``{"col": 10}`` for 10 quantile bins, or ``{"col": [0, 500, 1000, 5000]}`` for
        explicit edges (see :mod:`binomlab.binning`). The edges are kept on the result.
    drop_null_labels
        True or False (or a NumPy bool): leave out rows whose label is null instead of
        raising.

    Returns
    -------
    Grouped
        One row per feature combination, sorted by the features (nulls first): the features,
        then ``n`` (rows) and ``k`` (successes), both Int64.

    Raises
    ------
    ColumnNotFoundError
        A feature or the label is not in the data.
    InvalidLabelError
        The label is not binary, is null somewhere (unless ``drop_null_labels``), or
        ``positive`` is not one of its values.
    EmptyDataError
        No rows.
    BinomlabError
        Bad feature names (none, duplicates, ``n`` or ``k``, not strings), the label also
        listed as a feature, bad ``bins``, or a ``drop_null_labels`` that is not a bool.
    UnsupportedDataError
        ``data`` is not a kind of source binomlab reads (a numpy array: pass named columns);
        also a ``TypeError``.
    FileNotFoundError
        A path or glob that names no file.
    """
    if is_spark_dataframe(data):
        from binomlab.grouping.spark import group_spark

        return group_spark(
            data,
            features,
            label,
            positive=positive,
            bins=bins,
            drop_null_labels=drop_null_labels,
        )
    features = check_group_arguments(features, label, drop_null_labels=drop_null_labels)
    lf = to_lazy(data)
    schema = lf.collect_schema()
    check_group_schema(schema, features, label)

    edges = binning.resolve_bins(lf, bins, features=features, schema=schema)
    dtype = schema[label]
    rows = binning.apply_bins(lf.select(*features, label), edges)
    kept = rows.filter(pl.col(label).is_not_null()) if drop_null_labels else rows
    binned_schema = rows.collect_schema()
    counts, coded = None, ()
    if dense_keys.eligible(binned_schema, features):
        counts, coded = _count_small_ranges(
            data, rows, kept, binned_schema, features, label, positive, drop_null_labels
        )
    if counts is None:
        # One streaming run: the label's summary (a few global aggregates) next to the grouping.
        found, counts = pl.collect_all(
            [
                lf.select(label_summary(label, dtype, positive)),
                _hash_counts(kept, features, label, dtype, positive, coded=coded),
            ],
            engine="streaming",
        )
        check_label(lf, label, dtype, positive, found.row(0, named=True), drop_null_labels)
        counts = _decoded(sort_groups(counts, features), coded)
    if counts.height == 0:
        msg = f"Every row has a null label {label!r}; nothing is left to group."
        raise EmptyDataError(msg)
    counts = binning.check_binned(counts, edges, source=lf)
    return Grouped(counts, features, bins=edges)


def _count_small_ranges(
    data: Any,
    rows: pl.LazyFrame,
    kept: pl.LazyFrame,
    schema: pl.Schema,
    features: Sequence[str],
    label: str,
    positive: Any,
    drop_null_labels: bool,
) -> tuple[pl.DataFrame | None, tuple[str, ...]]:
    """``n`` and ``k`` per combination of integer, bool, enum and string features, sorted by
    the features: by dense key when their ranges are small enough (:mod:`binomlab.dense_keys`),
    else by hash; and the string features a hash group-by of many groups should code.

    The label's summary and the features' ranges come from the parquet footers when ``data``
    is parquet files that have them, else from a first pass over ``rows``. Should the
    footers disagree with the rows, the rows are counted again after that pass. The counts
    are None when the footers show ranges too wide for a dense key, or when string features
    show few groups in a sample of the first rows
    (:func:`~binomlab.grouping.dense_keys.few_groups`): the caller's hash group-by then reads
    the label's summary in the same run, with no first pass. When the sample shows many
    groups, the hash group-by codes the string features (:func:`_hash_counts`).
    """
    dtype = schema[label]
    success = is_success(label, positive)
    sample: dict[str, Any] = {}
    if exprs := dense_keys.sample_exprs(schema, features):
        head = rows.head(dense_keys.SAMPLE_ROWS).select(exprs)
        sample = head.collect(engine="streaming").row(0, named=True)
        if dense_keys.few_groups(features, sample):
            return None, ()
    # many groups (or no string feature): a hash group-by codes the strings
    coded = tuple(f for f in features if schema[f] == pl.String)
    files = parquet_files(data)
    footers = files and footer_stats(files, features, schema, label, positive)
    dense = footers and dense_keys.layout(schema, features, footers | sample)
    if footers and dense is None:
        return None, coded
    too_many = False  # string combinations beyond the dense key's limit
    if dense:
        check_label(rows, label, dtype, positive, footers, drop_null_labels)
        try:
            return dense_keys.count(kept, dense, success, checked=True), ()
        except dense_keys.OutsideLayout:
            pass  # statistics that do not describe the rows: use the rows themselves
        except dense_keys.TooManyCodes:
            too_many = True  # not every row was checked against the footers: take the pass
    summary = label_summary(label, dtype, positive)
    ranges = dense_keys.range_exprs(schema, features)
    stats = rows.select(*summary, *ranges).collect(engine="streaming").row(0, named=True)
    check_label(rows, label, dtype, positive, stats, drop_null_labels)
    dense = None if too_many else dense_keys.layout(schema, features, stats | sample)
    if dense is not None:
        try:
            return dense_keys.count(kept, dense, success), ()
        except dense_keys.TooManyCodes:
            pass  # more string combinations than the sample showed: hash after all
    counts = _hash_counts(kept, features, label, dtype, positive, coded=coded)
    return _decoded(sort_groups(counts.collect(engine="streaming"), features), coded), ()


def _hash_counts(
    rows: pl.LazyFrame,
    features: Sequence[str],
    label: str,
    dtype: pl.DataType,
    positive: Any,
    *,
    coded: Sequence[str] = (),
) -> pl.LazyFrame:
    """``n`` and ``k`` per feature combination by a hash group-by (any feature dtypes).

    The string features in ``coded`` are grouped by their codes in a private categorical
    mapping of each (``pl.Categories.random()``), so the hash table holds four-byte codes
    instead of strings: at 11M groups of three string features it takes half the memory and
    is faster (benchmarks/bench_memory.py). They come out Categorical; :func:`_decoded`
    turns them back into strings, after :func:`sort_groups` (which sorts them as strings).
    With few groups, hashing the strings themselves is cheaper than coding every row.
    """
    if positive is None and not (dtype == pl.Boolean or dtype.is_numeric()):
        k = pl.lit(0)  # not binary without positive=: check_label raises
    else:
        k = is_success(label, positive).sum()
    if coded:
        rows = rows.with_columns(
            pl.col(f).cast(pl.Categorical(pl.Categories.random())) for f in coded
        )
    return rows.group_by(features).agg(
        # not strict: a label with NaN or 0.5 gets a null k here and an error from check_label
        pl.len().cast(pl.Int64).alias("n"),
        k.cast(pl.Int64, strict=False).alias("k"),
    )


def sort_groups(counts: pl.DataFrame, features: Sequence[str]) -> pl.DataFrame:
    """``counts`` sorted by the features, nulls first: ``counts.sort(features,
    nulls_last=False)``, made cheaper for string (and categorical) features.

    Sorting a million groups by their strings compares strings a million times over; a
    string or categorical feature with few distinct values (at most a quarter of the groups)
    is sorted by its rank among them instead, the physical code of an Enum of its sorted
    distinct values, which orders the rows exactly as the strings do (Polars sorts a
    categorical by its strings too).
    """
    keys: list[pl.Expr] = []
    for f in features:
        key = pl.col(f)
        if counts.schema[f] == pl.String or isinstance(counts.schema[f], pl.Categorical):
            values = counts.get_column(f).unique().drop_nulls().cast(pl.String)
            if values.len() <= counts.height // 4:
                key = key.cast(pl.Enum(values.sort())).to_physical()
        keys.append(key)
    return counts.sort(keys, nulls_last=False)


def _decoded(counts: pl.DataFrame, coded: Sequence[str]) -> pl.DataFrame:
    """The ``coded`` features (Categorical, from :func:`_hash_counts`) as strings again."""
    if not coded:
        return counts
    return counts.with_columns(pl.col(f).cast(pl.String) for f in coded)


def _count_rows(
    lf: pl.LazyFrame, keys: list[str], edges: Mapping[str, binning.BinEdges]
) -> pl.DataFrame:
    """Rows per (features, label) combination, one streaming pass: the heavy step."""
    return (
        binning.apply_bins(lf.select(keys), edges)
        .group_by(keys)
        .agg(pl.len().cast(pl.Int64).alias(ROWS))
        .collect(engine="streaming")
    )


def group_files(
    paths: Sequence[str],
    features: str | Sequence[str],
    label: str,
    *,
    positive: Any = None,
    bins: BinsArg = None,
    drop_null_labels: bool = False,
    progress: bool = True,
) -> Grouped:
    """:func:`group` over files one at a time, with a progress bar (the CLI's ``group``).

    Each file is counted by (features, label) in its own streaming pass; the counts are
    summed and folded once, so the result (and every error) equals ``group(paths, ...)``.
    Quantile bins are computed over all files first.
    """
    check_bool(progress, name="progress")
    files = expand_paths(paths)
    features = check_group_arguments(features, label, drop_null_labels=drop_null_labels)
    everything = to_lazy(files)
    schema = everything.collect_schema()
    check_group_schema(schema, features, label)
    edges = binning.resolve_bins(everything, bins, features=features, schema=schema)
    keys = [*features, label]
    partials = [
        _count_rows(to_lazy(f), keys, edges) for f in iterate(files, "grouping", enabled=progress)
    ]
    partial = pl.concat(partials, how="vertical_relaxed").group_by(keys).agg(pl.col(ROWS).sum())
    counts = fold_label_counts(
        partial, features, label, positive=positive, drop_null_labels=drop_null_labels
    )
    counts = binning.check_binned(counts, edges, source=everything)
    return Grouped(counts, features, bins=edges)
