"""binomlab: train and compare probability models on grouped binomial counts.

Millions of 0/1 rows over a few discrete features collapse into one row per feature
combination with ``n`` trials and ``k`` successes; every number binomlab computes on that
grouped table equals the same number computed on the raw rows.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from binomlab import backends
from binomlab.bias import bias, plot_bias
from binomlab.calibration import calibration, plot_calibration, wilson_interval
from binomlab.compare import compare
from binomlab.crossval import CrossValidation, cross_validate
from binomlab.decomposition import decompose
from binomlab.encoding import Encoder
from binomlab.errors import (
    AliasedColumnsWarning,
    BackendNotFoundError,
    BinomlabError,
    BinsMismatchError,
    ColumnNotFoundError,
    ConvergenceWarning,
    EmptyDataError,
    InvalidCountsError,
    InvalidLabelError,
    InvalidProbabilityError,
    ModelFileError,
    NotFittedError,
    NotGroupedError,
    PerfectSeparationWarning,
    TrainingDivergedError,
    UnseenValueError,
    UnsupportedDataError,
)
from binomlab.export import Predictor, load
from binomlab.glm import Summary, lrt
from binomlab.grouped import Grouped, read_grouped
from binomlab.grouping import from_counts, group, group_sql
from binomlab.metrics import evaluate
from binomlab.recalibration import Recalibrated, recalibrate
from binomlab.reliability import reliability
from binomlab.roc import plot_roc, roc_curve
from binomlab.specs import GBDT, MLP, Logistic
from binomlab.training import Fitted, fit
from binomlab.uncertainty import metric_intervals, paired_test

try:
    __version__ = version("binomlab")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "GBDT",
    "MLP",
    "AliasedColumnsWarning",
    "BackendNotFoundError",
    "BinomlabError",
    "BinsMismatchError",
    "ColumnNotFoundError",
    "ConvergenceWarning",
    "CrossValidation",
    "EmptyDataError",
    "Encoder",
    "Fitted",
    "Grouped",
    "InvalidCountsError",
    "InvalidLabelError",
    "InvalidProbabilityError",
    "Logistic",
    "ModelFileError",
    "NotFittedError",
    "NotGroupedError",
    "PerfectSeparationWarning",
    "Predictor",
    "Recalibrated",
    "Summary",
    "TrainingDivergedError",
    "UnseenValueError",
    "UnsupportedDataError",
    "__version__",
    "backends",
    "bias",
    "calibration",
    "compare",
    "cross_validate",
    "decompose",
    "evaluate",
    "fit",
    "from_counts",
    "group",
    "group_sql",
    "load",
    "lrt",
    "metric_intervals",
    "paired_test",
    "plot_bias",
    "plot_calibration",
    "plot_roc",
    "read_grouped",
    "recalibrate",
    "reliability",
    "roc_curve",
    "wilson_interval",
]


def __getattr__(name: str):
    # bl.widgets imports ipywidgets and matplotlib: only on first use, not with `import binomlab`.
    if name == "widgets":
        import importlib

        return importlib.import_module("binomlab.widgets")
    msg = f"module 'binomlab' has no attribute {name!r}"
    raise AttributeError(msg)
