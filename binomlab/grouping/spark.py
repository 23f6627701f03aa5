"""Grouping a Spark DataFrame in Spark: only the groups travel to the driver.

``bl.group(spark_df, features, label)`` lands here. Spark runs
``df.groupBy(*features, label).count()`` on the cluster; the result, at most two rows per group
(three with null labels), is collected through Arrow and folded into ``n`` and ``k`` by the
same code as every other source, so labels are checked and errors read the same.

pyspark is an optional dependency (``pip install 'binomlab[spark]'``); this module is imported
only when a Spark DataFrame is passed in, and it is already imported by then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from binomlab.errors import BinomlabError
from binomlab.grouped import Grouped
from binomlab.grouping.checks import check_group_arguments, check_group_schema
from binomlab.grouping.labels import ROWS, fold_label_counts

__all__ = ["group_spark"]


def _quote(name: str) -> str:
    """A Spark SQL column reference to the column called exactly ``name`` (no struct paths)."""
    return "`" + name.replace("`", "``") + "`"


def _polars_schema(df: Any, wanted: Sequence[str]) -> pl.Schema:
    """Every column name of ``df``, with the Polars dtype it collects to for those in ``wanted``.

    Read from the DataFrame's schema: no Spark job runs. Columns not in ``wanted`` get the
    Null dtype, so a column type that Arrow cannot carry only matters if it is used.
    """
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import StructType

    names = list(df.columns)
    used = [c for c in dict.fromkeys(wanted) if c in names]
    arrow = to_arrow_schema(StructType([df.schema[c] for c in used]))
    dtypes = pl.DataFrame(pa.Table.from_pylist([], schema=arrow)).schema
    return pl.Schema({c: dtypes.get(c, pl.Null()) for c in names})


def group_spark(
    df: Any,
    features: str | Sequence[str],
    label: str,
    *,
    positive: Any = None,
    bins: Mapping[str, Any] | None = None,
    drop_null_labels: bool = False,
) -> Grouped:
    """Group a Spark DataFrame's raw 0/1 rows in Spark and collect only the groups.

    Called by :func:`binomlab.group` for a ``pyspark.sql.DataFrame`` (classic or Spark
    Connect, pyspark >= 4); the arguments mean the same.

    Parameters
    ----------
    df
        A Spark DataFrame holding the features and the label.
    features, label, positive, drop_null_labels
        As in :func:`binomlab.group`.
    bins
        Not supported here: discretise in Spark first (e.g. ``pyspark.ml.feature.Bucketizer``
        or a ``when`` expression).

    Returns
    -------
    Grouped
        Sorted by the features (nulls first). Features keep the types Spark gives them
        through Arrow: strings stay strings, integers keep their width, booleans stay
        booleans.

    Raises
    ------
    ColumnNotFoundError
        A feature or the label is not a column of ``df`` (names are matched exactly).
    InvalidLabelError
        The label is not binary, is null somewhere (unless ``drop_null_labels``), or
        ``positive`` is not one of its values.
    EmptyDataError
        ``df`` holds no rows.
    BinomlabError
        Bad feature names, the label also listed as a feature, or ``bins`` given.
    """
    features = check_group_arguments(features, label, drop_null_labels=drop_null_labels)
    if bins:
        msg = (
            f"bins={dict(bins)!r} is not supported for a Spark DataFrame: bin the column in "
            "Spark first (e.g. pyspark.ml.feature.Bucketizer), then group the binned column."
        )
        raise BinomlabError(msg)
    check_group_schema(_polars_schema(df, [*features, label]), features, label)

    from pyspark.sql import functions as F

    keys = [F.col(_quote(c)) for c in (*features, label)]
    counted = df.groupBy(*keys).agg(F.count(F.lit(1)).alias(ROWS))
    partial = pl.DataFrame(counted.toArrow())
    partial.columns = [*features, label, ROWS]
    counts = fold_label_counts(
        partial, features, label, positive=positive, drop_null_labels=drop_null_labels
    )
    return Grouped(counts, features)
