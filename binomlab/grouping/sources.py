"""Turning any raw-row source into one lazy Polars query.

Accepted: a Polars DataFrame or LazyFrame, a pandas DataFrame, a pyarrow Table or RecordBatch,
any object exposing the Arrow C stream interface (``__arrow_c_stream__``), a dict of columns
(``{name: values}``), and a path, glob or list of paths of parquet / CSV / NDJSON files. Files
are scanned lazily: only the columns a query needs are read, in streaming batches, never the
whole file into memory. :func:`to_lazy` is the one reader: ``bl.group``, ``bl.from_counts``
and every ``predict_*`` (through :meth:`binomlab.Encoder.transform`) read their data with it.
"""

from __future__ import annotations

import glob as _glob
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from binomlab.errors import BinomlabError, UnsupportedDataError

__all__ = ["SUPPORTED_FILE_TYPES", "expand_paths", "is_spark_dataframe", "to_lazy"]

_SCANNERS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "tsv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}
SUPPORTED_FILE_TYPES = tuple(_SCANNERS)

_ACCEPTED = (
    "a polars DataFrame or LazyFrame, a pandas DataFrame, a pyarrow Table, an object with "
    "__arrow_c_stream__, a dict of columns {name: values}, or a path/glob/list of paths to "
    ".parquet, .csv, .tsv, .ndjson or .jsonl files"
)


def _is_instance_of(data: Any, module: str, names: tuple[str, ...]) -> bool:
    """isinstance check against a library that is only looked up if already imported."""
    mod = sys.modules.get(module)
    return mod is not None and isinstance(data, tuple(getattr(mod, n) for n in names))


def is_spark_dataframe(data: Any) -> bool:
    """True for a PySpark DataFrame (classic or Spark Connect), without importing pyspark."""
    return _is_instance_of(data, "pyspark.sql.dataframe", ("DataFrame",)) or _is_instance_of(
        data, "pyspark.sql.connect.dataframe", ("DataFrame",)
    )


def _file_kind(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in _SCANNERS:
        msg = (
            f"Cannot read {path!r}: unknown file type {suffix or '(none)'!r}. "
            f"Expected one of {SUPPORTED_FILE_TYPES}."
        )
        raise BinomlabError(msg)
    return _SCANNERS[suffix]


def _expand_path(path: str) -> list[str]:
    if os.path.isdir(path):
        found = sorted(_glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True))
        if not found:
            msg = f"Directory {path!r} holds no .parquet files."
            raise FileNotFoundError(msg)
        return found
    if _glob.has_magic(path):
        found = sorted(_glob.glob(path, recursive=True))
        if not found:
            msg = f"No files match the pattern {path!r}."
            raise FileNotFoundError(msg)
        return found
    if not os.path.exists(path):
        msg = f"File not found: {path!r}."
        raise FileNotFoundError(msg)
    return [path]


def expand_paths(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """The files that paths, globs and directories name, in order.

    Raises
    ------
    FileNotFoundError
        A path, directory or glob that matches no file.
    """
    return [f for p in paths for f in _expand_path(os.fspath(p))]


def _scan_files(paths: Sequence[str | os.PathLike[str]]) -> pl.LazyFrame:
    files = expand_paths(paths)
    kinds = {_file_kind(f) for f in files}
    if len(kinds) > 1:
        msg = f"Cannot mix file types in one source: got {sorted(kinds)} from {list(paths)!r}."
        raise BinomlabError(msg)
    kind = kinds.pop()
    if kind == "parquet":
        return pl.scan_parquet(files)
    if kind == "csv":
        return pl.scan_csv(files)
    if kind == "tsv":
        return pl.scan_csv(files, separator="\t")
    return pl.scan_ndjson(files)


def _paths(data: Any) -> list[str | os.PathLike[str]] | None:
    if isinstance(data, str | os.PathLike):
        return [data]
    if (
        isinstance(data, list | tuple)
        and data
        and all(isinstance(p, str | os.PathLike) for p in data)
    ):
        return list(data)
    return None


def parquet_files(data: Any) -> list[str] | None:
    """The parquet files ``data`` names (a path, glob, directory or list of them), or None
    when ``data`` is not paths or names other files. Call after :func:`to_lazy` succeeded."""
    paths = _paths(data)
    if paths is None:
        return None
    files = expand_paths(paths)
    return files if all(_file_kind(f) == "parquet" for f in files) else None


_CONVERSION_ERRORS = (pl.exceptions.PolarsError, TypeError, ValueError)
"""What Polars (and pyarrow: ``ArrowInvalid`` is a ValueError) raise on a table it cannot take."""


def _convert(data: Any, what: str) -> pl.LazyFrame:
    """An in-memory table (pandas, Arrow, Arrow C stream, dict of columns) as a frame."""
    try:
        if what == "pandas":
            return pl.from_pandas(data).lazy()
        if what == "arrow":
            return pl.from_arrow(data).lazy()  # type: ignore[union-attr]
        return pl.DataFrame(data).lazy()
    except _CONVERSION_ERRORS as err:
        kind = f"{type(data).__module__}.{type(data).__qualname__}"
        msg = f"Cannot read the {kind} as a table of columns: {err}"
        raise UnsupportedDataError(msg) from None


def _from_columns(data: Mapping[Any, Any]) -> pl.LazyFrame:
    """A dict of columns as a frame (the dict and its columns are copied, never changed)."""
    bad = [name for name in data if not isinstance(name, str)]
    if bad:
        msg = f"A dict of columns needs string column names. Received the key {bad[0]!r}."
        raise UnsupportedDataError(msg)
    lengths = {name: _length(values) for name, values in data.items()}
    if len(set(lengths.values())) > 1:
        msg = (
            f"The columns of a dict must have one value per row each; their lengths differ: "
            f"{lengths}."
        )
        raise UnsupportedDataError(msg)
    return _convert(dict(data), "columns")


def _length(values: Any) -> int | str:
    try:
        return len(values)
    except TypeError:
        return "a scalar"


def _unsupported(data: Any) -> UnsupportedDataError:
    kind = f"{type(data).__module__}.{type(data).__qualname__}"
    if isinstance(data, np.ndarray):
        msg = (
            f"Cannot read a numpy array (shape {data.shape}): binomlab reads features by column "
            "name. Pass named columns instead, e.g. pl.DataFrame(array, schema=[names]) or a "
            "dict {name: column}."
        )
    else:
        msg = f"Cannot read data of type {kind}. Expected {_ACCEPTED}."
    return UnsupportedDataError(msg)


def to_lazy(data: Any) -> pl.LazyFrame:
    """Return ``data`` as a :class:`polars.LazyFrame` without copying where Polars can avoid it.

    Parameters
    ----------
    data
        A Polars DataFrame or LazyFrame, a pandas DataFrame, a pyarrow Table or RecordBatch,
        any object with ``__arrow_c_stream__``, a dict of columns ``{name: values}``, or a
        path, glob, directory or list of paths of parquet / CSV / TSV / NDJSON files.

    The caller's object is never modified.

    Raises
    ------
    UnsupportedDataError
        ``data`` is none of the accepted kinds (a numpy array: the message says to pass
        named columns), or a dict of columns that is no table. Also a ``TypeError``.
    FileNotFoundError
        A path, directory or glob that matches no file.
    BinomlabError
        A file type binomlab cannot scan, or several file types mixed.
    """
    if isinstance(data, pl.LazyFrame):
        return data
    if isinstance(data, pl.DataFrame):
        return data.lazy()
    paths = _paths(data)
    if paths is not None:
        return _scan_files(paths)
    if isinstance(data, Mapping):
        return _from_columns(data)
    if _is_instance_of(data, "pandas", ("DataFrame",)):
        return _convert(data, "pandas")
    if _is_instance_of(data, "pyarrow", ("Table", "RecordBatch")):
        return _convert(data, "arrow")
    if hasattr(data, "__arrow_c_stream__") and not isinstance(data, np.ndarray):
        return _convert(data, "stream")
    raise _unsupported(data)
