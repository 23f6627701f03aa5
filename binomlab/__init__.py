"""binomlab: train and compare probability models on grouped binomial counts.

Millions of 0/1 rows over a few discrete features collapse into one row per feature
combination with ``n`` trials and ``k`` successes; every number binomlab computes on that
grouped table equals the same number computed on the raw rows.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from binomlab.calibration import calibration, plot_calibration, wilson_interval
from binomlab.errors import (
    BinomlabError,
    ColumnNotFoundError,
    EmptyDataError,
    InvalidCountsError,
    InvalidLabelError,
    InvalidProbabilityError,
)
from binomlab.grouped import Grouped, read_grouped
from binomlab.grouping import from_counts, group
from binomlab.metrics import evaluate

try:
    __version__ = version("binomlab")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "BinomlabError",
    "ColumnNotFoundError",
    "EmptyDataError",
    "Grouped",
    "InvalidCountsError",
    "InvalidLabelError",
    "InvalidProbabilityError",
    "__version__",
    "calibration",
    "evaluate",
    "from_counts",
    "group",
    "plot_calibration",
    "read_grouped",
    "wilson_interval",
]
