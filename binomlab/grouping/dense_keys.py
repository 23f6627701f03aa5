"""Counting rows by a dense key when every feature has a small, known set of values.

When each feature is an integer, a boolean or an enum (binned features are enums), the
feature combination maps to one integer: each feature's offset from its minimum (0 for
false, the category index for an enum, one more slot for null when the feature has nulls),
combined like the digits of a mixed-radix number, times two plus the label's 0/1. Counting
rows per key is then an array index (``numpy.bincount``) instead of a hash table lookup:
DuckDB's "perfect hash aggregate". The key is computed by a Polars streaming query and
counted batch by batch, so memory stays at one batch and one count array whatever the
size of the input.

:func:`layout` decides whether the dense path applies (the dtypes, and at most
:data:`MAX_BINS` keys); :func:`count` runs it and returns what the hash path returns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

__all__ = [
    "KEY",
    "MAX_BINS",
    "Digit",
    "Layout",
    "OutsideLayout",
    "count",
    "eligible",
    "layout",
    "range_exprs",
    "stat_name",
]

MAX_BINS = 1 << 20
"""Most keys (feature combinations × 2 label values) counted densely: an 8 MiB array. With
more, :func:`layout` returns None and the rows are grouped by hashing."""

CHUNK_ROWS = 1 << 20
"""Rows per streamed batch counted at a time."""

KEY = pl.Int32
"""The key's dtype: :data:`MAX_BINS` keys fit, and half the bytes of Int64 to compute."""

_SMALL_INTEGERS = (pl.Int8, pl.Int16, pl.UInt8, pl.UInt16)


class OutsideLayout(Exception):
    """A row's values lie outside the layout :func:`count` was asked to check against."""


def _kind(dtype: pl.DataType) -> str | None:
    if dtype == pl.Boolean:
        return "bool"
    if isinstance(dtype, pl.Enum):
        return "enum"
    if dtype.is_integer():
        return "int"
    return None


def eligible(schema: pl.Schema, features: Sequence[str]) -> bool:
    """Whether every feature has a dtype the dense path handles: integer, bool or enum."""
    return all(_kind(schema[f]) is not None for f in features)


def stat_name(feature: str, what: str) -> str:
    return f"__binomlab_{what}_{feature}"


def range_exprs(schema: pl.Schema, features: Sequence[str]) -> list[pl.Expr]:
    """Global aggregates :func:`layout` needs: each feature's null count, and the minimum and
    maximum of the integer ones (a boolean or an enum has its range in its dtype)."""
    exprs = []
    for f in features:
        exprs.append(pl.col(f).null_count().alias(stat_name(f, "nulls")))
        if _kind(schema[f]) == "int":
            exprs += [
                pl.col(f).min().alias(stat_name(f, "min")),
                pl.col(f).max().alias(stat_name(f, "max")),
            ]
    return exprs


@dataclass(frozen=True)
class Digit:
    """One feature's place in the dense key: ``size`` slots, the first for null if
    ``has_null``, then the values from ``low`` up (``low`` is 0 for bools and enums)."""

    name: str
    dtype: pl.DataType
    low: int
    size: int
    has_null: bool

    def expr(self) -> pl.Expr:
        """The feature's slot, Int32, in [0, size) for every value the layout was made for.

        A value outside the layout gives a slot outside [0, size), which :meth:`Layout.key`
        can check for, or fails the cast to Int32 (strict casts: they are much faster).
        """
        col = pl.col(self.name)
        if self.size == int(self.has_null):  # only nulls: every row in slot 0
            return pl.lit(0, dtype=KEY)
        if isinstance(self.dtype, pl.Enum):
            offset = col.to_physical().cast(KEY)
        elif self.dtype == pl.Boolean or self.low == 0:
            offset = col.cast(KEY)
        elif self.dtype in _SMALL_INTEGERS:
            offset = col.cast(KEY) - self.low
        else:  # subtract in the column's dtype: the offsets of the layout's values are small
            offset = (col - pl.lit(self.low, dtype=self.dtype)).cast(KEY)
        if self.has_null:
            return (offset + 1).fill_null(0)
        return offset

    def values(self, slots: np.ndarray) -> pl.Series:
        """The feature values of ``slots`` (the inverse of :meth:`expr`), in the feature's dtype."""
        if isinstance(self.dtype, pl.Enum):
            table = self.dtype.categories.cast(self.dtype)
        elif self.dtype == pl.Boolean:
            table = pl.Series([False, True], dtype=pl.Boolean)
        else:
            # low + offset in 128 bits: low + size may not fit the feature's dtype
            wide = pl.UInt128 if self.dtype == pl.UInt128 else pl.Int128
            count = self.size - int(self.has_null)
            shifted = pl.int_range(0, count, dtype=wide) + pl.lit(self.low, dtype=wide)
            table = pl.select(shifted.cast(self.dtype)).to_series()
        offsets = slots - int(self.has_null)
        index = pl.Series(np.maximum(offsets, 0), dtype=pl.UInt32)
        if self.has_null:
            index = index.scatter(np.flatnonzero(offsets < 0), None)
        return table.gather(index).alias(self.name)


@dataclass(frozen=True)
class Layout:
    """The dense key of a set of features: ``key = Σ slot_i · stride_i``, major to minor."""

    digits: tuple[Digit, ...]

    @property
    def combinations(self) -> int:
        return math.prod(d.size for d in self.digits)

    def key(self, success: pl.Expr, *, checked: bool = False) -> pl.Expr:
        """``2 · combination + success`` (success an expression of 0/1), Int32.

        With ``checked``, a row whose feature or label values lie outside the layout (or
        whose label is null) gets the key -1 instead of another combination's key.
        """
        slots = [d.expr() for d in self.digits]
        key = slots[0]
        for digit, slot in zip(self.digits[1:], slots[1:], strict=True):
            key = key * digit.size + slot
        label = success.cast(KEY)
        key = key * 2 + label
        if checked:
            inside = [
                (slot >= 0) & (slot < d.size) for d, slot in zip(self.digits, slots, strict=True)
            ]
            inside.append((label >= 0) & (label <= 1))
            # a null anywhere (a slot without a null slot, the label) makes `inside` null: -1
            key = pl.when(pl.all_horizontal(inside)).then(key).otherwise(-1)
        return key.alias("__binomlab_key")

    def decode(self, combinations: np.ndarray) -> list[pl.Series]:
        """The feature columns of the given combination numbers."""
        columns = []
        rest = combinations
        for d in reversed(self.digits):
            rest, slots = np.divmod(rest, d.size)
            columns.append(d.values(slots))
        return columns[::-1]


def layout(schema: pl.Schema, features: Sequence[str], stats: dict[str, Any]) -> Layout | None:
    """The dense key of ``features`` from :func:`range_exprs`'s values, or None when the
    dtypes do not allow one or it would need more than :data:`MAX_BINS` keys."""
    if not eligible(schema, features):
        return None
    digits = []
    for f in features:
        dtype = schema[f]
        has_null = stats[stat_name(f, "nulls")] > 0
        kind = _kind(dtype)
        if kind == "enum":
            low, values = 0, len(dtype.categories)
        elif kind == "bool":
            low, values = 0, 2
        elif stats[stat_name(f, "min")] is None:  # all null
            low, values = 0, 0
        else:
            low, high = int(stats[stat_name(f, "min")]), int(stats[stat_name(f, "max")])
            values = high - low + 1
        digits.append(Digit(f, dtype, low, values + int(has_null), has_null))
    dense = Layout(tuple(digits))
    if 2 * dense.combinations > MAX_BINS:
        return None
    return dense


def count(
    rows: pl.LazyFrame, dense: Layout, success: pl.Expr, *, checked: bool = False
) -> pl.DataFrame:
    """Rows and successes per feature combination that occurs, by dense key.

    Parameters
    ----------
    rows
        The features (binned, if any) and the label, with null labels already filtered out.
    dense
        From :func:`layout` on the same features.
    success
        1 for a success, 0 for a failure (the label is checked binary beforehand).
    checked
        Check every row against the layout: for a layout made from statistics that were
        not computed from these rows (a parquet file's footer).

    Returns
    -------
    pl.DataFrame
        The features, ``n`` and ``k`` (Int64), one row per combination with ``n > 0``, in
        the order of the key: sorted by the features, nulls first.

    Raises
    ------
    OutsideLayout
        With ``checked``, a row outside the layout (or with a null label).
    """
    bins = 2 * dense.combinations
    totals = np.zeros(bins, dtype=np.int64)
    keys = rows.select(dense.key(success, checked=checked))
    try:
        batches = keys.collect_batches(
            chunk_size=CHUNK_ROWS, maintain_order=False, engine="streaming"
        )
        for batch in batches:
            key = batch.to_series().to_numpy()
            if checked and key.size and key.min() < 0:
                msg = "a row lies outside the dense key's layout"
                raise OutsideLayout(msg)
            totals += np.bincount(key, minlength=bins)
    except pl.exceptions.InvalidOperationError as error:  # a value too wide for Int32
        if not checked:
            raise
        raise OutsideLayout(str(error)) from error
    failures, successes = totals[0::2], totals[1::2]
    trials = failures + successes
    present = np.flatnonzero(trials)
    return pl.DataFrame(
        [
            *dense.decode(present),
            pl.Series("n", trials[present], dtype=pl.Int64),
            pl.Series("k", successes[present], dtype=pl.Int64),
        ]
    )
