"""Features → float32 matrix: the encoder every fitted and exported model carries.

Fitted on the training :class:`~binomlab.Grouped`:

* string, categorical, enum and bool features are one-hot encoded over the values seen in
  training (a null counts as a value when training had it), plus an ``<unknown>`` column that
  catches values never seen in training;
* binned features (``Grouped.bins``) are one-hot over all their bins; a frame holding the raw
  numbers is binned with the same edges first;
* other numeric features are standardised with the trial-weighted mean and standard deviation,
  i.e. those of the raw rows; when training had nulls, a ``<null>`` indicator column is added
  and the null itself is encoded as the mean.

The encoder round-trips through JSON (``to_dict`` / ``from_dict``), which is how it travels in
an export manifest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from binomlab import binning
from binomlab.errors import BinomlabError, ColumnNotFoundError
from binomlab.grouped import Grouped

__all__ = ["Encoder"]

UNKNOWN = "<unknown>"
NULL = "<null>"


def _kind_of(dtype: pl.DataType) -> str:
    if dtype == pl.Boolean:
        return "bool"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum | pl.Categorical):
        return "string"
    if dtype.is_numeric():
        return "numeric"
    return "unsupported"


@dataclass(frozen=True)
class _Column:
    """How one feature becomes matrix columns."""

    name: str
    kind: str  # "string" | "bool" | "binned" | "numeric"
    categories: tuple[Any, ...] = ()  # one-hot kinds; None stands for null
    edges: tuple[float, ...] = ()  # binned
    mean: float = 0.0  # numeric
    scale: float = 1.0  # numeric
    null_indicator: bool = False  # numeric

    @property
    def width(self) -> int:
        if self.kind == "numeric":
            return 1 + int(self.null_indicator)
        return len(self.categories) + 1

    def names(self) -> list[str]:
        if self.kind == "numeric":
            return [self.name] + ([f"{self.name}={NULL}"] if self.null_indicator else [])
        labels = [NULL if c is None else str(c) for c in self.categories]
        return [f"{self.name}={label}" for label in [*labels, UNKNOWN]]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "numeric":
            out |= {"mean": self.mean, "scale": self.scale, "null_indicator": self.null_indicator}
        else:
            out["categories"] = list(self.categories)
        if self.kind == "binned":
            out["edges"] = [e if math.isfinite(e) else str(e) for e in self.edges]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _Column:
        return cls(
            name=data["name"],
            kind=data["kind"],
            categories=tuple(data.get("categories", ())),
            edges=tuple(float(e) for e in data.get("edges", ())),
            mean=float(data.get("mean", 0.0)),
            scale=float(data.get("scale", 1.0)),
            null_indicator=bool(data.get("null_indicator", False)),
        )


class Encoder:
    """Encode feature columns into a float32 matrix ``[rows, n_outputs]``.

    Build it with :meth:`Encoder.fit`; see the module docstring for the rules.
    """

    def __init__(self, columns: Sequence[_Column]) -> None:
        self._columns = tuple(columns)

    # -- fitting ---------------------------------------------------------------------------------

    @classmethod
    def fit(cls, data: Grouped) -> Encoder:
        """Fit on the training groups.

        Raises
        ------
        BinomlabError
            A feature whose dtype cannot be encoded (dates, times, ...): cast it first.
        """
        frame, n = data.frame, data.frame["n"].cast(pl.Float64)
        columns = []
        for name in data.features:
            series = frame[name]
            if name in data.bins:
                labels = binning.bin_labels(data.bins[name])
                columns.append(
                    _Column(name, "binned", categories=tuple(labels), edges=data.bins[name])
                )
                continue
            kind = _kind_of(series.dtype)
            if kind == "unsupported":
                msg = (
                    f"Cannot encode feature {name!r} of dtype {series.dtype}: cast it to a "
                    "string (one-hot) or a number (standardised) before grouping."
                )
                raise BinomlabError(msg)
            if kind == "numeric":
                columns.append(_numeric_column(name, series, n))
            else:
                values = series.unique().sort(nulls_last=False).to_list()
                columns.append(_Column(name, kind, categories=tuple(values)))
        return cls(columns)

    # -- what it produces ----------------------------------------------------------------------

    @property
    def features(self) -> tuple[str, ...]:
        """The feature columns it reads, in order."""
        return tuple(c.name for c in self._columns)

    @property
    def output_names(self) -> list[str]:
        """Names of the matrix columns, e.g. ``carrier=AA``, ``carrier=<unknown>``, ``hour``."""
        return [name for c in self._columns for name in c.names()]

    @property
    def n_outputs(self) -> int:
        """Width ``d`` of the encoded matrix."""
        return sum(c.width for c in self._columns)

    def standardisation(self) -> dict[str, tuple[float, float]]:
        """``{feature: (mean, scale)}`` of the standardised numeric features; an encoded value is
        ``(x - mean) / scale``, so a coefficient ``w`` on it is ``w / scale`` on ``x``."""
        return {c.name: (c.mean, c.scale) for c in self._columns if c.kind == "numeric"}

    # -- encoding --------------------------------------------------------------------------------

    def transform(self, data: Grouped | pl.DataFrame | pl.LazyFrame) -> np.ndarray:
        """Encode ``data`` (a Grouped, or a frame holding the raw feature columns).

        Returns
        -------
        numpy.ndarray
            float32 ``[rows, n_outputs]``.

        Raises
        ------
        ColumnNotFoundError
            A feature column is missing.
        BinomlabError
            A numeric feature is null where training had no nulls, or a value falls outside
            the explicit bin edges of a binned feature.
        """
        frame = data.frame if isinstance(data, Grouped) else data.lazy().collect()
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise ColumnNotFoundError.from_missing_and_available(
                missing, frame.columns, role="feature"
            )
        out = np.zeros((frame.height, self.n_outputs), dtype=np.float32)
        start = 0
        for column in self._columns:
            series = frame[column.name]
            if column.kind == "binned" and series.dtype.is_numeric():
                edges = {column.name: column.edges}
                binned = binning.apply_bins(frame.select(column.name), edges).collect()
                series = binning.check_binned(binned, edges, source=frame.lazy())[column.name]
            block = out[:, start : start + column.width]
            if column.kind == "numeric":
                _encode_numeric(column, series, block)
            else:
                _encode_one_hot(column, series, block)
            start += column.width
        return out

    # -- JSON ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description; :meth:`from_dict` rebuilds an equal encoder."""
        return {"version": 1, "columns": [c.to_dict() for c in self._columns]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Encoder:
        """Rebuild an encoder from :meth:`to_dict` output.

        Raises
        ------
        BinomlabError
            An unknown encoder version.
        """
        if data.get("version") != 1:
            msg = f"Unknown encoder version {data.get('version')!r}; expected 1."
            raise BinomlabError(msg)
        return cls([_Column.from_dict(c) for c in data["columns"]])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Encoder) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Encoder({len(self._columns)} features -> {self.n_outputs} columns)"


def _numeric_column(name: str, series: pl.Series, n: pl.Series) -> _Column:
    values = series.cast(pl.Float64).to_numpy()
    weights = n.to_numpy()
    present = ~np.isnan(values)
    if not present.any():
        msg = f"Numeric feature {name!r} is null in every group; there is nothing to learn from it."
        raise BinomlabError(msg)
    w, x = weights[present], values[present]
    mean = float(np.average(x, weights=w))
    std = float(np.sqrt(np.average((x - mean) ** 2, weights=w)))
    return _Column(
        name,
        "numeric",
        mean=mean,
        scale=std if std > 0 else 1.0,
        null_indicator=bool((~present).any()),
    )


def _encode_numeric(column: _Column, series: pl.Series, block: np.ndarray) -> None:
    if not series.dtype.is_numeric():
        msg = f"Feature {column.name!r} was numeric in training but is {series.dtype} here."
        raise BinomlabError(msg)
    values = series.cast(pl.Float64).to_numpy()
    nulls = np.isnan(values)
    if nulls.any() and not column.null_indicator:
        first = int(np.flatnonzero(nulls)[0])
        msg = (
            f"Numeric feature {column.name!r} is null or NaN at row {first} ({int(nulls.sum())} "
            "rows), but it had no nulls in training, so the model has no value for it."
        )
        raise BinomlabError(msg)
    block[:, 0] = np.where(nulls, 0.0, (values - column.mean) / column.scale)
    if column.null_indicator:
        block[:, 1] = nulls


def _encode_one_hot(column: _Column, series: pl.Series, block: np.ndarray) -> None:
    known = [c for c in column.categories if c is not None]
    unknown = len(column.categories)
    if column.kind == "bool":
        if series.dtype != pl.Boolean:
            msg = f"Feature {column.name!r} was bool in training but is {series.dtype} here."
            raise BinomlabError(msg)
        keys = series.cast(pl.String)
        known_keys = [str(c).lower() for c in known]
    else:
        keys = series.cast(pl.String)
        known_keys = [str(c) for c in known]
    index_of = {key: column.categories.index(c) for key, c in zip(known_keys, known, strict=True)}
    null_index = column.categories.index(None) if None in column.categories else unknown
    key = pl.col("key")
    codes = (
        pl.DataFrame({"key": keys})
        .select(
            pl.when(key.is_null())
            .then(null_index)
            .otherwise(
                key.replace_strict(
                    list(index_of), list(index_of.values()), default=unknown, return_dtype=pl.Int64
                )
            )
        )
        .to_series()
    )
    block[np.arange(len(block)), codes.to_numpy()] = 1.0
