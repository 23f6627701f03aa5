"""Raw rows (or existing counts) to a :class:`~binomlab.Grouped`.

:func:`group` runs the group-by in Polars (:mod:`~binomlab.grouping.groupby`, counting by a
dense key where it can, :mod:`~binomlab.grouping.dense_keys`) over any source
:mod:`~binomlab.grouping.sources` reads, or hands a Spark DataFrame to Spark
(:mod:`~binomlab.grouping.spark`); :func:`group_sql` pushes it down to a database
(:mod:`~binomlab.grouping.sql`); :func:`from_counts` takes counts already made. Every path
checks its arguments and the label the same way (:mod:`~binomlab.grouping.checks`,
:mod:`~binomlab.grouping.labels`): an engine that counts rows by the features and the label
(:data:`ROWS`) hands that table to :func:`fold_label_counts`.
"""

from __future__ import annotations

from binomlab.grouping.checks import check_group_arguments, check_group_schema
from binomlab.grouping.counts import from_counts
from binomlab.grouping.groupby import group, group_files
from binomlab.grouping.labels import ROWS, fold_label_counts
from binomlab.grouping.sql import group_sql

__all__ = [
    "ROWS",
    "check_group_arguments",
    "check_group_schema",
    "fold_label_counts",
    "from_counts",
    "group",
    "group_files",
    "group_sql",
]
