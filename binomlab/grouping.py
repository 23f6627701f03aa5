"""From raw rows (or existing counts) to a :class:`~binomlab.Grouped`, with Polars.

:func:`group` is the SQL ``select features, count(*) n, sum(label) k from t group by
features`` as lazy Polars queries on the streaming engine. A few global aggregates of the
label (rows, nulls, values outside {0, 1} or up to three distinct values) tell whether it
is binary; the label is read again only to quote its values in an error. When every feature
is an integer, bool or enum column (binned features are enums), those aggregates also give
the features' ranges, and the rows are counted by a dense integer key
(:mod:`binomlab.dense_keys`); otherwise, or when the ranges are too wide, by a hash group-by
run together (``collect_all``) with the label's aggregates. Databases and Spark (and
:func:`group_files`) instead count rows by the features *and* the label, at most two rows
per group, and :func:`fold_label_counts` checks and folds that small table; all paths raise
the same errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from binomlab import binning, dense_keys
from binomlab.errors import (
    BinomlabError,
    ColumnNotFoundError,
    EmptyDataError,
    InvalidCountsError,
    InvalidLabelError,
)
from binomlab.grouped import Grouped, check_feature_names
from binomlab.parquet_stats import footer_stats
from binomlab.progress import iterate
from binomlab.sources import expand_paths, is_spark_dataframe, parquet_files, to_lazy

__all__ = [
    "check_group_arguments",
    "check_group_schema",
    "fold_label_counts",
    "from_counts",
    "group",
    "group_files",
]

ROWS = "__binomlab_rows"
"""Name of the row count column in the (features, label) table :func:`fold_label_counts` takes."""
BinsArg = Mapping[str, int | Sequence[float]] | None


def _check_columns(schema: pl.Schema, wanted: Sequence[str], role: str) -> None:
    missing = [c for c in wanted if c not in schema]
    if missing:
        raise ColumnNotFoundError.from_missing_and_available(missing, list(schema), role=role)


def _check_feature_dtypes(schema: pl.Schema, features: Sequence[str]) -> None:
    for f in features:
        dtype = schema[f]
        if dtype.is_nested() or dtype == pl.Object:
            msg = (
                f"Feature {f!r} has dtype {dtype}; features must be scalar values (strings, "
                "categoricals, enums, integers, booleans, or numbers to bin)."
            )
            raise BinomlabError(msg)


def _preview(values: list[Any], limit: int = 10) -> str:
    shown = sorted(values, key=repr)[:limit]
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return f"{shown!r}{more}"


def _is_binary_number(v: Any) -> bool:
    return isinstance(v, int | float) and v in (0, 1)


def _resolve_positive(label: str, dtype: pl.DataType, values: list[Any], positive: Any) -> Any:
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
        Raw rows: a Polars DataFrame/LazyFrame, pandas DataFrame, pyarrow Table, or a path,
        glob or list of parquet/CSV/NDJSON files (scanned lazily, in streaming batches). A
        Spark DataFrame is grouped by Spark and only the groups are collected (see
        :func:`binomlab.spark.group_spark`); for a table in a SQL database use
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
        Leave out rows whose label is null instead of raising.

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
        Bad feature names (none, duplicates, ``n`` or ``k``), the label also listed as a
        feature, or bad ``bins``.
    TypeError
        ``data`` is not a kind of source binomlab reads.
    """
    if is_spark_dataframe(data):
        from binomlab.spark import group_spark

        return group_spark(
            data,
            features,
            label,
            positive=positive,
            bins=bins,
            drop_null_labels=drop_null_labels,
        )
    features = check_group_arguments(features, label)
    lf = to_lazy(data)
    schema = lf.collect_schema()
    check_group_schema(schema, features, label)

    edges = binning.resolve_bins(lf, bins, features=features, schema=schema)
    dtype = schema[label]
    rows = binning.apply_bins(lf.select(*features, label), edges)
    kept = rows.filter(pl.col(label).is_not_null()) if drop_null_labels else rows
    binned_schema = rows.collect_schema()
    counts = None
    if dense_keys.eligible(binned_schema, features):
        counts = _count_small_ranges(
            data, rows, kept, binned_schema, features, label, positive, drop_null_labels
        )
    if counts is None:
        # One streaming run: the label's summary (a few global aggregates) next to the grouping.
        found, counts = pl.collect_all(
            [
                lf.select(_label_summary(label, dtype, positive)),
                _hash_counts(kept, features, label, dtype, positive),
            ],
            engine="streaming",
        )
        _check_label(lf, label, dtype, positive, found.row(0, named=True), drop_null_labels)
    counts = counts.sort(features, nulls_last=False)
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
) -> pl.DataFrame | None:
    """``n`` and ``k`` per combination of integer, bool and enum features: by dense key when
    their ranges are small enough (:mod:`binomlab.dense_keys`), else by hash.

    The label's summary and the features' ranges come from the parquet footers when ``data``
    is parquet files that have them, else from a first pass over ``rows``. Should the
    footers disagree with the rows, the rows are counted again after that pass. Returns
    None when the footers show ranges too wide for a dense key: the caller's hash group-by
    then reads the label's summary in the same run, with no first pass.
    """
    dtype = schema[label]
    success = _success(label, positive)
    files = parquet_files(data)
    footers = files and footer_stats(files, features, schema, label, positive)
    dense = footers and dense_keys.layout(schema, features, footers)
    if footers and dense is None:
        return None
    if dense:
        _check_label(rows, label, dtype, positive, footers, drop_null_labels)
        try:
            return dense_keys.count(kept, dense, success, checked=True)
        except dense_keys.OutsideLayout:
            pass  # statistics that do not describe the rows: use the rows themselves
    summary = _label_summary(label, dtype, positive)
    ranges = dense_keys.range_exprs(schema, features)
    stats = rows.select(*summary, *ranges).collect(engine="streaming").row(0, named=True)
    _check_label(rows, label, dtype, positive, stats, drop_null_labels)
    dense = dense_keys.layout(schema, features, stats)
    if dense is None:
        return _hash_counts(kept, features, label, dtype, positive).collect(engine="streaming")
    return dense_keys.count(kept, dense, success)


def _success(label: str, positive: Any) -> pl.Expr:
    """1 where the label is a success: a 0/1 or bool label itself, else ``label == positive``."""
    return pl.col(label) if positive is None else pl.col(label) == positive


def _hash_counts(
    rows: pl.LazyFrame, features: Sequence[str], label: str, dtype: pl.DataType, positive: Any
) -> pl.LazyFrame:
    """``n`` and ``k`` per feature combination by a hash group-by (any feature dtypes)."""
    if positive is None and not (dtype == pl.Boolean or dtype.is_numeric()):
        k = pl.lit(0)  # not binary without positive=: _check_label raises
    else:
        k = _success(label, positive).sum()
    return rows.group_by(features).agg(
        # not strict: a label with NaN or 0.5 gets a null k here and an error from _check_label
        pl.len().cast(pl.Int64).alias("n"),
        k.cast(pl.Int64, strict=False).alias("k"),
    )


def _label_summary(label: str, dtype: pl.DataType, positive: Any) -> list[pl.Expr]:
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


def _check_label(
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
    _check_null_labels(label, summary["nulls"], drop_null_labels)
    if summary.get("bad", 0) or len(summary.get("some") or []) > 2:
        values = lf.select(pl.col(label).drop_nulls().unique()).collect()[label].to_list()
        _resolve_positive(label, dtype, values, positive)  # raises
    if "some" in summary:
        _resolve_positive(label, dtype, summary["some"], positive)


def _check_null_labels(label: str, null_rows: int, drop_null_labels: bool) -> None:
    if null_rows and not drop_null_labels:
        msg = (
            f"Label {label!r} is null in {null_rows:,} rows. Fill them, filter them, or pass "
            "drop_null_labels=True to leave them out."
        )
        raise InvalidLabelError(msg)


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
    files = expand_paths(paths)
    features = check_group_arguments(features, label)
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


def check_group_arguments(features: str | Sequence[str], label: Any) -> tuple[str, ...]:
    """Normalise ``features`` and check ``label`` is a name that is not also a feature.

    Raises
    ------
    BinomlabError
        Bad feature names (see :func:`~binomlab.grouped.check_feature_names`), a label that
        is not a string, or the label also listed as a feature.
    """
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
    _check_columns(schema, features, "feature")
    _check_columns(schema, [label], "label")
    _check_feature_dtypes(schema, features)
    if schema[label].is_nested():
        msg = f"Label {label!r} has dtype {schema[label]}; expected bool or 0/1."
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
    _check_null_labels(label, int(partial.filter(is_null)[ROWS].sum()), drop_null_labels)
    partial = partial.filter(~is_null)
    values = partial[label].unique().to_list()
    success = _resolve_positive(label, dtype, values, positive)

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


def _first_bad(frame: pl.DataFrame, condition: pl.Expr, column: str) -> tuple[int, Any, int]:
    """Row index and value of the first row meeting ``condition``, and how many rows do."""
    bad = frame.with_row_index("_row").filter(condition)
    return int(bad["_row"][0]), bad[column][0], bad.height


def _check_counts(frame: pl.DataFrame, trials: str, successes: str) -> None:
    for column in (trials, successes):
        dtype = frame.schema[column]
        if not dtype.is_numeric():
            msg = f"Count column {column!r} has dtype {dtype}; expected integer counts."
            raise InvalidCountsError(msg)
        col = pl.col(column)
        checks: list[tuple[pl.Expr, str]] = [(col.is_null(), "null")]
        if dtype.is_float():
            checks.append((~col.is_finite() | (col != col.floor()), "not a whole number"))
        checks.append((col < 0, "negative"))
        for condition, what in checks:
            if frame.select(condition.any()).item():
                row, value, count = _first_bad(frame, condition, column)
                msg = (
                    f"Count column {column!r} is {what} in {count:,} rows "
                    f"(first at row {row}: {value!r}); counts must be whole numbers >= 0."
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
        A count that is null, negative, not a whole number, successes above trials, or zero
        trials.
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
    _check_columns(schema, features, "feature")
    _check_columns(schema, [trials, successes], "count")
    _check_feature_dtypes(schema, features)

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
