"""Features → float32 matrix: the encoder every fitted and exported model carries.

Fitted on the training :class:`~binomlab.Grouped`:

* string, categorical, enum and bool features, and binned features (``Grouped.bins``), have
  **levels**: the values seen in training, in sort order (a null first, when training had one;
  bins in the order of their edges). With ``min_frequency=N``, levels with fewer than ``N``
  training trials are pooled into one trained level, ``<other>``;
* the **treatment** design (the logistic spec's, as R and patsy build it) gives one 0/1 column
  per level except the feature's reference level, the first in sort order unless
  ``reference={feature: level}`` names another; its coefficients are contrasts with the
  reference, so the model is identifiable beside the intercept. The **one-hot** design (the
  MLP's) gives one column per level;
* other numeric features are standardised with the trial-weighted mean and standard deviation,
  i.e. those of the raw rows; when training had nulls, a ``<null>`` indicator column is added
  and the null itself is encoded as the mean.

There is no column for values the model never saw: such a value (an unseen category, a null
where training had none, a bin no training trial fell in) is an :class:`UnseenValueError`,
naming the feature, the values and the trials they hold, unless the model was fitted with
``unseen="other"``, which sends them to the feature's trained ``<other>`` level. A column of
another type than in training (integers for a string feature) is an error too, and so is a
Grouped binned with other edges than the model's (:class:`BinsMismatchError`).

In the **index form** (``form="index"``) the matrix has one column per feature instead of one
per level: a feature with levels holds the first-layer weight row its level selects (in the
treatment design, ``-1`` for the reference level and an aliased level, which have no row), a
numeric feature its value(s); :attr:`Encoder.layout` says which is which (see
:mod:`binomlab.layout`). A network's first layer is then a lookup, the GLM's design a sparse
matrix, and the encoded data take ``rows × features`` numbers, not ``rows × levels``.

The encoder round-trips through JSON (``to_dict`` / ``from_dict``), which is how it travels in
an export manifest.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from binomlab import binning
from binomlab.errors import (
    BinomlabError,
    BinsMismatchError,
    ColumnNotFoundError,
    UnseenValueError,
)
from binomlab.grouped import Grouped
from binomlab.grouping.sources import to_lazy
from binomlab.layout import FORMS, NO_ROW, IndexLayout

__all__ = ["DESIGNS", "OTHER", "UNSEEN", "Encoder"]

OTHER = "<other>"
"""The pooled level of the levels with fewer than ``min_frequency`` training trials."""
NULL = "<null>"
DESIGNS = ("treatment", "one-hot")
"""``treatment``: a column per level but the reference (identifiable beside an intercept);
``one-hot``: a column per level."""
UNSEEN = ("error", "other")
"""What a value the model never saw does: raise, or go to the feature's ``<other>`` level."""
_VERSION = 2
_SHOWN = 5  # unseen values quoted in an error message


def _kind_of(dtype: pl.DataType) -> str:
    if dtype == pl.Boolean:
        return "bool"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum | pl.Categorical):
        return "string"
    if dtype.is_numeric():
        return "numeric"
    return "unsupported"


def _label(level: Any) -> str:
    return NULL if level is None else str(level)


@dataclass(frozen=True)
class _Column:
    """How one feature becomes matrix columns.

    ``levels`` are the trained levels in order (None stands for null) and ``pooled`` the
    training values merged into ``<other>``, the last level when there are any;
    ``reference`` is the index (into :meth:`all_levels`) of the level without a column in the
    treatment design.
    """

    name: str
    kind: str  # "string" | "bool" | "binned" | "numeric"
    levels: tuple[Any, ...] = ()
    pooled: tuple[Any, ...] = ()
    reference: int = 0
    edges: tuple[float, ...] = ()  # binned
    mean: float = 0.0  # numeric
    scale: float = 1.0  # numeric
    null_indicator: bool = False  # numeric

    @property
    def has_other(self) -> bool:
        return bool(self.pooled)

    def all_levels(self) -> list[str]:
        """Labels of every trained level, ``<other>`` last when there is one."""
        return [_label(v) for v in self.levels] + ([OTHER] if self.has_other else [])

    def columns(self, design: str) -> list[int]:
        """Indices into :meth:`all_levels` that get a matrix column."""
        count = len(self.levels) + int(self.has_other)
        if design == "treatment":
            return [i for i in range(count) if i != self.reference]
        return list(range(count))

    def names(self, design: str) -> list[str]:
        if self.kind == "numeric":
            return [self.name] + ([f"{self.name}={NULL}"] if self.null_indicator else [])
        labels = self.all_levels()
        return [f"{self.name}={labels[i]}" for i in self.columns(design)]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "numeric":
            out |= {"mean": self.mean, "scale": self.scale, "null_indicator": self.null_indicator}
        else:
            out |= {
                "levels": list(self.levels),
                "pooled": list(self.pooled),
                "reference": self.reference,
            }
        if self.kind == "binned":
            out["edges"] = [e if math.isfinite(e) else str(e) for e in self.edges]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _Column:
        """The column :meth:`to_dict` described; every key it writes is required, so an
        incomplete description is an error, never a silent default.

        Raises
        ------
        BinomlabError
            An unknown kind, a missing key, or a mean or scale that is no finite number (a
            scale that is not positive).
        """
        kind = data.get("kind") if isinstance(data, Mapping) else None
        if kind not in _COLUMN_KEYS:
            msg = f"Unknown encoder column {data!r}: expected a kind among {tuple(_COLUMN_KEYS)}."
            raise BinomlabError(msg)
        missing = [key for key in ("name", *_COLUMN_KEYS[kind]) if key not in data]
        if missing:
            msg = f"The encoder column {data.get('name')!r} ({kind}) lacks {missing}."
            raise BinomlabError(msg)
        mean, scale = data.get("mean", 0.0), data.get("scale", 1.0)
        if not (_finite(mean) and _finite(scale) and scale > 0):
            msg = (
                f"The encoder column {data['name']!r} needs a finite mean and a positive scale. "
                f"Received: mean={mean!r}, scale={scale!r}"
            )
            raise BinomlabError(msg)
        return cls(
            name=data["name"],
            kind=kind,
            levels=tuple(data.get("levels", ())),
            pooled=tuple(data.get("pooled", ())),
            reference=int(data.get("reference", 0)),
            edges=tuple(float(e) for e in data.get("edges", ())),
            mean=float(mean),
            scale=float(scale),
            null_indicator=bool(data.get("null_indicator", False)),
        )


_COLUMN_KEYS = {
    "numeric": ("mean", "scale", "null_indicator"),
    "string": ("levels", "pooled", "reference"),
    "bool": ("levels", "pooled", "reference"),
    "binned": ("levels", "pooled", "reference", "edges"),
}
"""The keys :meth:`_Column.to_dict` writes for each kind of column."""


def _finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


class Encoder:
    """Encode feature columns into a float32 matrix ``[rows, n_outputs]``.

    Build it with :meth:`Encoder.fit`; see the module docstring for the rules.
    """

    def __init__(
        self,
        columns: Sequence[_Column],
        *,
        design: str = "treatment",
        unseen: str = "error",
        aliased: Iterable[str] = (),
        form: str = "dense",
    ) -> None:
        _check_choice("form", form, FORMS)
        self._columns = tuple(columns)
        self.design = design
        self.unseen = unseen
        self.aliased = tuple(aliased)
        self.form = form
        names = [name for c in self._columns for name in c.names(design)]
        dropped = set(self.aliased)
        self._keep = np.array([name not in dropped for name in names], dtype=bool)
        self._rows: dict[str, np.ndarray] = {}  # index form: weight row of each level
        self._index_keep = np.zeros(0, bool)  # index form: the matrix columns kept
        self.layout = self._index_layout() if form == "index" else None
        """The :class:`~binomlab.layout.IndexLayout` of the index form, None for dense."""

    # -- fitting ---------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        data: Grouped,
        *,
        design: str = "treatment",
        reference: Mapping[str, Any] | None = None,
        min_frequency: int | Mapping[str, int] | None = None,
        unseen: str = "error",
        form: str = "dense",
    ) -> Encoder:
        """Fit on the training groups.

        Parameters
        ----------
        data
            The training groups.
        design
            One of :data:`DESIGNS`.
        reference
            ``{feature: level}``: the reference level of a feature in the treatment design
            (default: its first level in sort order). A binned feature's level is its label,
            e.g. ``"[0, 500)"``.
        min_frequency
            Levels with fewer training trials are pooled into ``<other>``: one int for every
            feature with levels (numeric features have none), or ``{feature: int}``.
        unseen
            One of :data:`UNSEEN`.
        form
            ``"dense"`` (one-hot columns) or ``"index"`` (a code column per feature with
            levels): see the module docstring.

        Raises
        ------
        BinomlabError
            A feature whose dtype cannot be encoded (dates, times, ...: cast it first); a
            bad ``design``, ``unseen``, ``reference``, ``min_frequency`` or ``form``.
        """
        _check_choice("design", design, DESIGNS)
        _check_choice("form", form, FORMS)
        _check_choice("unseen", unseen, UNSEEN)
        if unseen == "other" and min_frequency is None:
            msg = (
                "unseen='other' sends unseen values to the trained <other> level, which "
                "min_frequency=N makes (the levels with fewer than N training trials): pass "
                "both, or leave unseen='error'."
            )
            raise BinomlabError(msg)
        reference = _check_feature_map("reference", reference, data.features)
        frequency = _min_frequencies(min_frequency, data.features)
        frame, n = data.frame, data.frame["n"]
        columns = []
        for name in data.features:
            series = frame[name]
            if name in data.bins:
                labels = binning.bin_labels(data.bins[name])
                column = _level_column(name, "binned", series.cast(pl.String), n, labels)
                column = replace(column, edges=data.bins[name])
            else:
                kind = _kind_of(series.dtype)
                if kind == "unsupported":
                    msg = (
                        f"Cannot encode feature {name!r} of dtype {series.dtype}: cast it to a "
                        "string (levels) or a number (standardised) before grouping."
                    )
                    raise BinomlabError(msg)
                if kind == "numeric":
                    if not isinstance(min_frequency, Mapping):  # one int: features with levels
                        frequency.pop(name, None)
                    if name in reference or name in frequency:
                        option = "reference" if name in reference else "min_frequency"
                        msg = (
                            f"{option} applies to features with levels; {name!r} is numeric "
                            f"({series.dtype}). Cast it to a string or bin it to give it levels."
                        )
                        raise BinomlabError(msg)
                    columns.append(_numeric_column(name, series, n.cast(pl.Float64)))
                    continue
                column = _level_column(name, kind, series, n, None)
            column = _pool(column, frame, name, frequency.get(name))
            column = _with_reference(column, reference)
            columns.append(column)
        return cls(columns, design=design, unseen=unseen, form=form)

    def with_form(self, form: str) -> Encoder:
        """This encoder giving the matrix in ``form`` (``"dense"``: the one-hot/treatment
        columns, e.g. for statsmodels; ``"index"``: codes), the same model otherwise.

        Raises
        ------
        BinomlabError
            ``form`` is not one of ``"dense"``, ``"index"``.
        """
        return Encoder(
            self._columns, design=self.design, unseen=self.unseen, aliased=self.aliased, form=form
        )

    def without(self, names: Iterable[str]) -> Encoder:
        """This encoder with the output columns ``names`` dropped (aliased columns: a value
        that would have had one is encoded as the reference)."""
        return Encoder(
            self._columns,
            design=self.design,
            unseen=self.unseen,
            aliased=(*self.aliased, *names),
            form=self.form,
        )

    # -- what it produces ----------------------------------------------------------------------

    @property
    def features(self) -> tuple[str, ...]:
        """The feature columns it reads, in order."""
        return tuple(c.name for c in self._columns)

    @property
    def output_names(self) -> list[str]:
        """Names of the matrix columns, e.g. ``carrier=AA``, ``carrier=<other>``, ``hour``."""
        names = [name for c in self._columns for name in c.names(self.design)]
        return [name for name, keep in zip(names, self._keep, strict=True) if keep]

    @property
    def n_outputs(self) -> int:
        """Width ``d`` of the one-hot matrix: the columns of the dense form, the first-layer
        weight rows of the index form."""
        return int(self._keep.sum())

    @property
    def n_inputs(self) -> int:
        """Columns of the matrix :meth:`transform` gives: ``n_outputs`` in the dense form, one
        per feature with levels plus the numeric columns in the index form."""
        return self.n_outputs if self.layout is None else self.layout.n_inputs

    def _index_layout(self) -> IndexLayout:
        """The layout of the index form; fills ``_rows`` (each level's weight row, or NO_ROW
        for the reference and aliased levels) and ``_index_keep`` (the numeric matrix
        columns not aliased)."""
        codes, numbers, number_rows, names, levels, firsts = [], [], [], [], [], []
        keep = iter(self._keep.tolist())
        index_keep: list[bool] = []
        row = 0
        for column in self._columns:
            kept = [next(keep) for _ in column.names(self.design)]
            if column.kind == "numeric":
                for flag in kept:
                    index_keep.append(flag)
                    if flag:
                        numbers.append(len(codes) + len(numbers))
                        number_rows.append(row)
                        row += 1
                continue
            pairs = zip(column.columns(self.design), kept, strict=True)
            with_row = [i for i, flag in pairs if flag]
            rows = np.full(len(column.all_levels()), NO_ROW, np.int64)
            rows[with_row] = row + np.arange(len(with_row))
            self._rows[column.name] = rows
            index_keep.append(True)
            codes.append(len(codes) + len(numbers))
            names.append(column.name)
            levels.append(len(with_row))
            firsts.append(row)
            row += len(with_row)
        self._index_keep = np.array(index_keep, bool)
        return IndexLayout(
            width=row,
            codes=tuple(codes),
            numbers=tuple(numbers),
            number_rows=tuple(number_rows),
            names=tuple(names),
            levels=tuple(levels),
            firsts=tuple(firsts),
            holes=self.design == "treatment" or bool(self.aliased),
        )

    def standardisation(self) -> dict[str, tuple[float, float]]:
        """``{feature: (mean, scale)}`` of the standardised numeric features; an encoded value is
        ``(x - mean) / scale``, so a coefficient ``w`` on it is ``w / scale`` on ``x``."""
        return {c.name: (c.mean, c.scale) for c in self._columns if c.kind == "numeric"}

    def terms(self) -> list[tuple[str, str | None]]:
        """``(feature, level)`` of every output column (level None for a numeric feature's
        own column, ``"<null>"`` for its null indicator)."""
        out: list[tuple[str, str | None]] = []
        for c in self._columns:
            if c.kind == "numeric":
                out += [(c.name, None)] + ([(c.name, NULL)] if c.null_indicator else [])
            else:
                labels = c.all_levels()
                out += [(c.name, labels[i]) for i in c.columns(self.design)]
        return [t for t, keep in zip(out, self._keep, strict=True) if keep]

    def references(self) -> dict[str, str]:
        """``{feature: reference level}`` of the level features in the treatment design."""
        if self.design != "treatment":
            return {}
        return {c.name: c.all_levels()[c.reference] for c in self._columns if c.kind != "numeric"}

    def levels(self) -> dict[str, list[str]]:
        """``{feature: trained levels}`` of the level features (``<other>`` last if pooled)."""
        return {c.name: c.all_levels() for c in self._columns if c.kind != "numeric"}

    @property
    def bins(self) -> dict[str, tuple[float, ...]]:
        """Bin edges of the binned features, as ``Grouped.bins`` holds them."""
        return {c.name: c.edges for c in self._columns if c.kind == "binned"}

    # -- encoding --------------------------------------------------------------------------------

    def transform(self, data: Any, *, dtype: type = np.float32) -> np.ndarray:
        """Encode ``data``: a Grouped, or raw feature columns in any source ``bl.group`` reads.

        Parameters
        ----------
        data
            A :class:`~binomlab.Grouped`, or rows holding (at least) the feature columns: a
            Polars DataFrame or LazyFrame, a pandas DataFrame, a pyarrow Table, any object
            with ``__arrow_c_stream__``, a dict of columns ``{name: values}``, or a path,
            glob or list of parquet / CSV / NDJSON files (read by
            :func:`binomlab.grouping.sources.to_lazy`; only the feature columns are read).
            The caller's object is never changed.
        dtype
            ``np.float32`` (what networks take) or ``np.float64`` (the GLM drivers: a
            standardised number is exact in it, and the fit on the features' own scale equals
            statsmodels' to float64 precision).

        Returns
        -------
        numpy.ndarray
            ``dtype`` ``[rows, n_inputs]``: the one-hot matrix (``n_inputs == n_outputs``), or
            in the index form a column per feature (codes are whole numbers).

        Raises
        ------
        ColumnNotFoundError
            A feature column is missing.
        UnsupportedDataError
            ``data`` is no kind of table binomlab reads, e.g. a numpy array (pass named
            columns). Also a ``TypeError``.
        FileNotFoundError
            A path or glob that names no file.
        UnseenValueError
            A value the model never saw (see the module docstring).
        BinsMismatchError
            ``data`` is a Grouped binned with other edges than the model's.
        BinomlabError
            A feature of another type than in training, a numeric feature null where
            training had none, or a raw number outside the explicit edges of a binned feature.
        """
        if isinstance(data, Grouped):
            self._check_bins(data.bins)
            self._check_features(data.frame.columns)
            frame, trials = data.frame, data.frame["n"]
        else:
            frame, trials = self._read(data), None
        blocks = []
        for column in self._columns:
            series = frame[column.name]
            if column.kind == "binned" and series.dtype.is_numeric():
                edges = {column.name: column.edges}
                binned = binning.apply_bins(frame.select(column.name), edges).collect()
                series = binning.check_binned(binned, edges, source=frame.lazy())[column.name]
            if column.kind == "numeric":
                block = np.zeros((frame.height, column.null_indicator + 1), dtype)
                _encode_numeric(column, series, block)
            elif self.form == "index":
                codes = self._codes(column, series, trials)
                block = self._rows[column.name][codes].astype(dtype).reshape(-1, 1)
            else:
                codes = self._codes(column, series, trials)
                kept = column.columns(self.design)
                block = np.zeros((frame.height, len(kept)), dtype)
                position = np.full(len(column.all_levels()), -1)
                position[kept] = np.arange(len(kept))
                rows = position[codes]
                hit = rows >= 0
                block[np.flatnonzero(hit), rows[hit]] = 1.0
            blocks.append(block)
        out = np.concatenate(blocks, axis=1) if blocks else np.zeros((frame.height, 0))
        if self.form == "index":
            return np.ascontiguousarray(out[:, self._index_keep], dtype=dtype)
        return np.ascontiguousarray(out[:, self._keep], dtype=dtype)

    def _read(self, data: Any) -> pl.DataFrame:
        """The feature columns of raw rows, through the one reader ``bl.group`` uses."""
        rows = to_lazy(data)
        self._check_features(rows.collect_schema().names())
        return rows.select(self.features).collect()

    def _check_features(self, columns: list[str]) -> None:
        missing = [f for f in self.features if f not in columns]
        if missing:
            raise ColumnNotFoundError.from_missing_and_available(missing, columns, role="feature")

    def _check_bins(self, bins: Mapping[str, tuple[float, ...]]) -> None:
        for column in self._columns:
            if column.kind != "binned" or column.name not in bins:
                continue
            if tuple(bins[column.name]) != tuple(column.edges):
                msg = (
                    f"Feature {column.name!r} of this data was binned with the edges "
                    f"{_edges(bins[column.name])}, but the model's are {_edges(column.edges)}: "
                    "its bins are other intervals. Group the rows with the model's edges, "
                    f"bl.group(rows, ..., bins=model.bins), or pass the raw rows."
                )
                raise BinsMismatchError(msg)

    def _codes(self, column: _Column, series: pl.Series, trials: pl.Series | None) -> np.ndarray:
        """Index into ``column.all_levels()`` per row; unseen values by :attr:`unseen`."""
        _check_level_dtype(column, series)
        keys = series.cast(pl.String)
        index = {_key(column, v): i for i, v in enumerate(column.levels) if v is not None}
        other = len(column.levels) if column.has_other else -1
        index |= {_key(column, v): other for v in column.pooled if v is not None}
        null_code = column.levels.index(None) if None in column.levels else -1
        if None in column.pooled:
            null_code = other
        codes = (
            pl.DataFrame({"key": keys})
            .select(
                pl.when(pl.col("key").is_null())
                .then(null_code)
                .otherwise(
                    pl.col("key").replace_strict(
                        list(index), list(index.values()), default=-1, return_dtype=pl.Int64
                    )
                )
            )
            .to_series()
            .to_numpy()
        )
        unseen = codes < 0
        if unseen.any():
            if self.unseen == "other" and column.has_other:
                codes = np.where(unseen, other, codes)
            else:
                raise UnseenValueError(_unseen_message(self, column, series, unseen, trials))
        return codes

    # -- JSON ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description; :meth:`from_dict` rebuilds an equal encoder."""
        return {
            "version": _VERSION,
            "design": self.design,
            "unseen": self.unseen,
            "aliased": list(self.aliased),
            "form": self.form,
            "columns": [c.to_dict() for c in self._columns],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Encoder:
        """Rebuild an encoder from :meth:`to_dict` output.

        Raises
        ------
        BinomlabError
            An unknown encoder version, design or unseen rule.
        """
        if data.get("version") != _VERSION:
            msg = (
                f"Unknown encoder version {data.get('version')!r}; this binomlab reads version "
                f"{_VERSION}. A model exported by an older binomlab must be trained and "
                "exported again."
            )
            raise BinomlabError(msg)
        _check_choice("design", data.get("design"), DESIGNS)
        _check_choice("unseen", data.get("unseen"), UNSEEN)
        return cls(
            [_Column.from_dict(c) for c in data["columns"]],
            design=data["design"],
            unseen=data["unseen"],
            aliased=data.get("aliased", ()),
            form=data.get("form", "dense"),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Encoder) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Encoder({len(self._columns)} features -> {self.n_outputs} columns, "
            f"design={self.design!r}" + (", form='index')" if self.layout is not None else ")")
        )


# -- fitting helpers -----------------------------------------------------------------------------


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        msg = f"Expected {name} to be one of {allowed}. Received: {name}={value!r}"
        raise BinomlabError(msg)


def _check_feature_map(
    name: str, value: Mapping[str, Any] | None, features: Sequence[str]
) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        msg = f"Expected {name} to be a dict {{feature: ...}}. Received: {name}={value!r}"
        raise BinomlabError(msg)
    unknown = [f for f in value if f not in features]
    if unknown:
        msg = f"{name} names {unknown[0]!r}, which is not a feature; the features are {features}."
        raise BinomlabError(msg)
    return dict(value)


def _min_frequencies(
    value: int | Mapping[str, int] | None, features: Sequence[str]
) -> dict[str, int]:
    if value is None:
        return {}
    per_feature = (
        _check_feature_map("min_frequency", value, features)
        if isinstance(value, Mapping)
        else dict.fromkeys(features, value)
    )
    for feature, count in per_feature.items():
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
            msg = (
                "Expected min_frequency to be a whole number of training trials >= 1 (or a "
                f"dict of them by feature). Received: {count!r} for {feature!r}"
            )
            raise BinomlabError(msg)
    return {f: int(c) for f, c in per_feature.items()}


def _level_column(
    name: str, kind: str, series: pl.Series, n: pl.Series, order: list[str] | None
) -> _Column:
    """The levels seen in training (each with >= 1 trial), in sort order or ``order``'s."""
    present = pl.DataFrame({"value": series, "n": n}).group_by("value").agg(pl.col("n").sum())
    values = present["value"].to_list()
    if order is not None:
        rank = {label: i for i, label in enumerate(order)}
        values = sorted(values, key=lambda v: -1 if v is None else rank[v])
    elif isinstance(series.dtype, pl.Enum):  # its own order
        values = present.sort("value", nulls_last=False)["value"].to_list()
    else:
        by = pl.col("value").cast(pl.String) if series.dtype == pl.Categorical else "value"
        values = present.sort(by, nulls_last=False)["value"].to_list()
    reserved = [v for v in (OTHER, NULL) if kind == "string" and v in values]
    if reserved:
        use = "pooling" if reserved[0] == OTHER else "the null level"
        msg = (
            f"Feature {name!r} has a level named {reserved[0]!r}, which binomlab keeps for "
            f"{use}: rename it first."
        )
        raise BinomlabError(msg)
    return _Column(name, kind, levels=tuple(values))


def _pool(column: _Column, frame: pl.DataFrame, name: str, threshold: int | None) -> _Column:
    if threshold is None:
        return column
    trials = dict(frame.group_by(name).agg(pl.col("n").sum()).select(pl.col(name), "n").iter_rows())
    if column.kind == "binned":  # the frame holds labels (Enum or String)
        trials = {None if k is None else str(k): v for k, v in trials.items()}
    rare = tuple(v for v in column.levels if trials[v] < threshold)
    if not rare:
        return column
    kept = tuple(v for v in column.levels if trials[v] >= threshold)
    return replace(column, levels=kept, pooled=rare)


def _with_reference(column: _Column, reference: Mapping[str, Any]) -> _Column:
    if column.name not in reference:
        return column
    wanted = reference[column.name]
    labels = column.all_levels()
    matches = [  # by value of the same type, or by label: 1 is not True
        i
        for i, v in enumerate(column.levels)
        if (type(v) is type(wanted) and v == wanted) or _label(v) == str(wanted)
    ]
    if wanted == OTHER and column.has_other:
        matches = [len(column.levels)]
    if not matches:
        where = " (it was pooled into <other>)" if wanted in column.pooled else ""
        msg = (
            f"reference={{{column.name!r}: {wanted!r}}} is not a level of {column.name!r}{where}. "
            f"Its levels: {labels[:20]}{' ...' if len(labels) > 20 else ''}"
        )
        raise BinomlabError(msg)
    return replace(column, reference=matches[0])


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


# -- encoding helpers ----------------------------------------------------------------------------


def _key(column: _Column, value: Any) -> str:
    """A training value as the string its column is matched on."""
    return str(value).lower() if column.kind == "bool" else str(value)


def _check_level_dtype(column: _Column, series: pl.Series) -> None:
    dtype = series.dtype
    if dtype == pl.Null:  # an all-null column: its nulls are judged as values
        return
    expected = {"bool": "bool", "string": "string", "binned": "string"}[column.kind]
    if _kind_of(dtype) != expected:
        what = {"bool": "bool", "string": "a string", "binned": "binned (bin labels)"}
        msg = (
            f"Feature {column.name!r} was {what[column.kind]} in training but is {dtype} here; "
            f"cast it as it was in training (e.g. pl.col({column.name!r}).cast(pl."
            f"{'Boolean' if column.kind == 'bool' else 'String'})): values are matched by type, "
            "not coerced."
        )
        raise BinomlabError(msg)


def _unseen_message(
    encoder: Encoder,
    column: _Column,
    series: pl.Series,
    unseen: np.ndarray,
    trials: pl.Series | None,
) -> str:
    mask = pl.Series(unseen)
    values = series.filter(mask)
    weights = trials.filter(mask) if trials is not None else pl.Series([1] * len(values))
    table = (
        pl.DataFrame({"value": values.cast(pl.String), "n": weights})
        .group_by("value")
        .agg(pl.col("n").sum())
        .sort("n", "value", descending=[True, False], nulls_last=True)
    )
    shown = ", ".join(
        f"{_label(v)!r}" if v is not None else NULL for v in table["value"].head(_SHOWN)
    )
    more = f" and {table.height - _SHOWN} more" if table.height > _SHOWN else ""
    unit = "trials" if trials is not None else "rows"
    if column.has_other:
        fix = (
            f"it has a trained {OTHER} level (the levels with fewer than min_frequency "
            f"training trials): fit with unseen='other' to send them there"
        )
    else:
        fix = (
            "fit with min_frequency=N to pool the levels with fewer than N training trials "
            f"into a trained {OTHER} level, and unseen='other' to send unseen values there"
        )
    if encoder.unseen == "other" and not column.has_other:
        fix = (
            f"this model sends unseen values to {OTHER}, but {column.name!r} has no {OTHER} "
            f"level (no level had fewer than min_frequency trials); raise min_frequency"
        )
    return (
        f"Feature {column.name!r} holds {table.height} value(s) the model never saw in "
        f"training: {shown}{more} ({int(table['n'].sum())} {unit}); the model has no trained "
        f"weight for them. Filter them out, or {fix}."
    )


def _edges(edges: Sequence[float]) -> str:
    return "[" + ", ".join(f"{e:g}" for e in edges) + "]"


def _encode_numeric(column: _Column, series: pl.Series, block: np.ndarray) -> None:
    # an all-null column (dtype Null, e.g. from a dict of Nones or no rows): its nulls are nulls
    if not (series.dtype.is_numeric() or series.dtype == pl.Null):
        msg = (
            f"Feature {column.name!r} was numeric in training but is {series.dtype} here; cast "
            "it to a number as it was in training."
        )
        raise BinomlabError(msg)
    values = series.cast(pl.Float64).to_numpy()
    nulls = np.isnan(values)
    if nulls.any() and not column.null_indicator:
        first = int(np.flatnonzero(nulls)[0])
        msg = (
            f"Numeric feature {column.name!r} is null or NaN at row {first} ({int(nulls.sum())} "
            "rows), but it had no nulls in training, so the model has no value for it."
        )
        raise UnseenValueError(msg)
    block[:, 0] = np.where(nulls, 0.0, (values - column.mean) / column.scale)
    if column.null_indicator:
        block[:, 1] = nulls
