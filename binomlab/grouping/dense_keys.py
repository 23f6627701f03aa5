"""Counting rows by a dense key when every feature has a small, known set of values.

When each feature is an integer, a boolean or an enum (binned features are enums), the
feature combination maps to one integer: each feature's offset from its minimum (0 for
false, the category index for an enum, one more slot for null when the feature has nulls),
combined like the digits of a mixed-radix number, times two plus the label's 0/1. Counting
rows per key is then an array index (``numpy.bincount``) instead of a hash table lookup:
DuckDB's "perfect hash aggregate". The key is computed by a Polars streaming query and
counted batch by batch, so memory stays at one batch and one count array whatever the
size of the input.

A string feature's digit is its value's code in a private Polars categorical mapping
(``pl.Categories.random()``), numbered as the values first appear, slot 0 for null. Its
size is only known once every row has streamed by, so the count array grows as new codes
appear, and at the end the codes are put in sorted order by sorting the distinct values
alone (a thousand strings rather than a million groups). Looking strings up in one small
mapping per column is much cheaper than hashing their combinations into one table of a
million groups, but dearer than a hash group-by when there are few groups: the path is taken
only when a sample of the rows shows at least :data:`MIN_CODED_GROUPS` combinations
(:func:`few_groups`).

:func:`layout` decides whether the dense path applies (the dtypes, and at most
:func:`max_bins` keys); :func:`count` runs it and returns what the hash path returns.
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
    "MIN_CODED_GROUPS",
    "SAMPLE_ROWS",
    "SMALL_BINS",
    "Digit",
    "Layout",
    "OutsideLayout",
    "TooManyCodes",
    "count",
    "eligible",
    "few_groups",
    "layout",
    "max_bins",
    "range_exprs",
    "sample_exprs",
    "stat_name",
]

MAX_BINS = 1 << 22
"""Most keys (feature combinations × 2 label values) counted densely: a 32 MiB array. With
more, :func:`layout` returns None and the rows are grouped by hashing."""

SMALL_BINS = 1 << 20
"""Keys counted densely however few the rows (an 8 MiB array); above, up to :data:`MAX_BINS`
when there are at least an eighth as many rows as keys (:func:`max_bins`)."""

CHUNK_ROWS = 1 << 20
"""Rows per streamed batch counted at a time (more when the count array is larger: each
batch's ``bincount`` costs the array's length)."""

MIN_CODED_GROUPS = 1 << 17
"""Fewest feature combinations (estimated from :data:`SAMPLE_ROWS` rows) for which string
features are counted by dense key; with fewer, Polars' hash group-by is faster."""

SAMPLE_ROWS = 1 << 16
"""Rows at the head of the data whose distinct values estimate the number of groups."""

KEY = pl.Int32
"""The key's dtype: :data:`MAX_BINS` keys fit, and half the bytes of Int64 to compute."""

_SMALL_INTEGERS = (pl.Int8, pl.Int16, pl.UInt8, pl.UInt16)


class OutsideLayout(Exception):
    """A row's values lie outside the layout :func:`count` was asked to check against."""


class TooManyCodes(Exception):
    """The string features' combinations outgrew :func:`max_bins` while the rows streamed."""


def _kind(dtype: pl.DataType) -> str | None:
    if dtype == pl.Boolean:
        return "bool"
    if isinstance(dtype, pl.Enum):
        return "enum"
    if dtype.is_integer():
        return "int"
    if dtype == pl.String:
        return "string"
    return None


def eligible(schema: pl.Schema, features: Sequence[str]) -> bool:
    """Whether every feature has a dtype the dense path handles: integer, bool, enum or
    string."""
    return all(_kind(schema[f]) is not None for f in features)


def stat_name(feature: str, what: str) -> str:
    return f"__binomlab_{what}_{feature}"


def max_bins(rows: int | None) -> int:
    """Most keys counted densely for ``rows`` rows: :data:`SMALL_BINS` whatever the rows, up
    to :data:`MAX_BINS` when there are at least an eighth as many rows as keys (a count array
    much longer than the rows costs more to allocate and scan than a hash table)."""
    return min(MAX_BINS, max(SMALL_BINS, 8 * (rows or 0)))


def sample_exprs(schema: pl.Schema, features: Sequence[str]) -> list[pl.Expr]:
    """Each feature's number of distinct values (null counting as one), for a sample of the
    rows: :func:`few_groups` and :func:`layout` read them. Empty when no feature is a string
    (the ranges of the others are exact)."""
    if not any(_kind(schema[f]) == "string" for f in features):
        return []
    return [pl.col(f).n_unique().alias(stat_name(f, "sampled")) for f in features]


def _sampled(features: Sequence[str], sample: dict[str, Any]) -> int:
    """Combinations the sample suggests: the product of its distinct values per feature."""
    return math.prod(max(int(sample[stat_name(f, "sampled")]), 1) for f in features)


def few_groups(features: Sequence[str], sample: dict[str, Any]) -> bool:
    """Whether string features are better grouped by hashing: the features of ``sample``
    (:func:`sample_exprs` on :data:`SAMPLE_ROWS` rows) combine into fewer than
    :data:`MIN_CODED_GROUPS` groups. False for an empty sample (no string feature)."""
    return bool(sample) and _sampled(features, sample) < MIN_CODED_GROUPS


def range_exprs(schema: pl.Schema, features: Sequence[str]) -> list[pl.Expr]:
    """Global aggregates :func:`layout` needs: each feature's null count, and the minimum and
    maximum of the integer ones (a boolean or an enum has its range in its dtype). None for
    a string feature: its codes are counted as they come, with a slot for null always."""
    exprs = []
    for f in features:
        if _kind(schema[f]) == "string":
            continue
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
        return _gather(table, slots, self.has_null, self.name)


def _gather(table: pl.Series, slots: np.ndarray, has_null: bool, name: str) -> pl.Series:
    """``table[slot]``, or ``table[slot - 1]`` with null for slot 0 when ``has_null``."""
    offsets = slots - int(has_null)
    index = pl.Series(np.maximum(offsets, 0), dtype=pl.UInt32)
    if has_null:
        index = index.scatter(np.flatnonzero(offsets < 0), None)
    return table.gather(index).alias(name)


@dataclass(frozen=True)
class Layout:
    """The dense key of a set of features: ``key = Σ slot_i · stride_i``, major to minor.

    ``digits`` are the features whose values are known beforehand (integers, bools, enums),
    ``coded`` the string features, numbered while the rows stream (see :func:`count`), and
    ``order`` all of them in the order of the output's columns, and ``limit`` the most keys
    the ``coded`` features may grow the count array to (:func:`max_bins` of the rows).
    """

    digits: tuple[Digit, ...]
    coded: tuple[str, ...] = ()
    order: tuple[str, ...] = ()
    limit: int = SMALL_BINS

    @property
    def combinations(self) -> int:
        """Combinations of the ``digits`` (the ``coded`` features' are known only at the end)."""
        return math.prod(d.size for d in self.digits)

    def key(self, success: pl.Expr, *, checked: bool = False) -> pl.Expr:
        """``2 · combination + success`` of the ``digits`` (success an expression of 0/1),
        Int32.

        With ``checked``, a row whose feature or label values lie outside the layout (or
        whose label is null) gets the key -1 instead of another combination's key.
        """
        slots = [d.expr() for d in self.digits]
        label = success.cast(KEY)
        key = label
        if slots:
            key = slots[0]
            for digit, slot in zip(self.digits[1:], slots[1:], strict=True):
                key = key * digit.size + slot
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
        """The feature columns of the given combination numbers (``digits`` only)."""
        columns = []
        rest = combinations
        for d in reversed(self.digits):
            rest, slots = np.divmod(rest, d.size)
            columns.append(d.values(slots))
        return columns[::-1]


def layout(schema: pl.Schema, features: Sequence[str], stats: dict[str, Any]) -> Layout | None:
    """The dense key of ``features`` from :func:`range_exprs`'s values (and, for string
    features, :func:`sample_exprs`'), or None when the dtypes do not allow one or it would
    need more than :func:`max_bins` keys (for the rows ``stats["rows"]``, if given)."""
    if not eligible(schema, features):
        return None
    digits, coded = [], []
    for f in features:
        dtype = schema[f]
        kind = _kind(dtype)
        if kind == "string":
            coded.append(f)
            continue
        has_null = stats[stat_name(f, "nulls")] > 0
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
    limit = max_bins(stats.get("rows"))
    dense = Layout(tuple(digits), tuple(coded), tuple(features), limit)
    # the string features' codes: at least those the sample shows, and a null slot each
    coded_slots = math.prod(int(stats.get(stat_name(f, "sampled"), 0)) + 1 for f in coded)
    if 2 * dense.combinations * coded_slots > limit:
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
    TooManyCodes
        The string features (``dense.coded``) have more combinations than :func:`max_bins`
        allows: group the rows by hashing instead.
    """
    if dense.coded:
        return _count_coded(rows, dense, success, checked=checked)
    bins = 2 * dense.combinations
    totals = np.zeros(bins, dtype=np.int64)
    keys = rows.select(dense.key(success, checked=checked))
    try:
        batches = keys.collect_batches(
            chunk_size=max(CHUNK_ROWS, bins // 2), maintain_order=False, engine="streaming"
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


def _count_coded(
    rows: pl.LazyFrame, dense: Layout, success: pl.Expr, *, checked: bool
) -> pl.DataFrame:
    """:func:`count` with string features: their codes are combined with the ``digits``' key
    in NumPy, batch by batch, into a count array that grows as new codes appear.

    The array's axes are the string features (slot 0 null, then code + 1 in order of first
    appearance), then the ``digits``' key with the label (``2 · dense.combinations``). At the
    end each string axis is permuted into the sorted order of its values, and the axes into
    the order of the features. Leaving the loop early (:class:`TooManyCodes`) drops the
    batch iterator, which stops the query.
    """
    # A categorical mapping of our own per string feature, numbering its values as they come.
    # Polars drops a mapping no data uses: these empty columns keep each alive until the end.
    alive = {f: pl.Series(f, [], dtype=pl.Categorical(pl.Categories.random())) for f in dense.coded}
    codes = [
        (pl.col(f).cast(s.dtype).to_physical() + 1).fill_null(0).alias(f) for f, s in alive.items()
    ]
    fixed = 2 * dense.combinations
    sizes = [1] * len(dense.coded)
    seen = [1] * len(dense.coded)
    totals = np.zeros(fixed, dtype=np.int64)
    batches = rows.select(*codes, dense.key(success, checked=checked)).collect_batches(
        chunk_size=2 * CHUNK_ROWS, maintain_order=False, engine="streaming"
    )
    try:
        for batch in batches:
            if batch.height == 0:
                continue
            low = batch.get_column("__binomlab_key").to_numpy()
            if checked and low.min() < 0:
                msg = "a row lies outside the dense key's layout"
                raise OutsideLayout(msg)
            columns = [batch.get_column(f).to_numpy() for f in dense.coded]
            seen = [max(s, int(c.max()) + 1) for s, c in zip(seen, columns, strict=True)]
            if any(w > s for w, s in zip(seen, sizes, strict=True)):
                totals, sizes = _grow(totals, sizes, seen, fixed, dense.limit)
            key = columns[0].astype(np.int64)
            for column, size in zip(columns[1:], sizes[1:], strict=True):
                key *= size
                key += column
            key *= fixed
            key += low
            totals += np.bincount(key, minlength=totals.size)
    except pl.exceptions.InvalidOperationError as error:  # a value too wide for Int32
        if not checked:
            raise
        raise OutsideLayout(str(error)) from error

    grid = totals.reshape(*sizes, *(d.size for d in dense.digits), 2)
    tables = {}
    for axis, (f, keep) in enumerate(alive.items()):
        physical = pl.Series(f, np.arange(seen[axis] - 1, dtype=np.uint32))
        # not strict: a code Polars reserved but never assigned (a race it allows between
        # threads) reads as null; it is sorted last, and no row has it
        values = physical.cat.to(keep.dtype, strict=False).cast(pl.String)
        order = values.arg_sort(nulls_last=True).to_numpy()
        # slot 0 (null) first, then the codes in their values' order; spare slots stay last
        perm = np.concatenate([[0], order + 1, np.arange(seen[axis], sizes[axis])])
        grid = np.take(grid, perm, axis=axis)
        tables[f] = values.gather(order)
    inner = [*dense.coded, *(d.name for d in dense.digits)]
    grid = grid.transpose([inner.index(f) for f in dense.order] + [len(inner)])
    trials = grid[..., 0] + grid[..., 1]
    present = np.flatnonzero(trials)
    slots = np.unravel_index(present, trials.shape)
    digits = {d.name: d for d in dense.digits}
    columns = [
        _gather(tables[f], s, True, f) if f in tables else digits[f].values(s)
        for f, s in zip(dense.order, slots, strict=True)
    ]
    return pl.DataFrame(
        [
            *columns,
            pl.Series("n", trials.reshape(-1)[present], dtype=pl.Int64),
            pl.Series("k", grid[..., 1][slots], dtype=pl.Int64),
        ]
    )


def _grow(
    totals: np.ndarray, sizes: list[int], wanted: list[int], fixed: int, limit: int
) -> tuple[np.ndarray, list[int]]:
    """The count array with room for ``wanted`` codes per string feature (doubling a size
    that grows, so that it is copied a few times only), and its new sizes.

    Raises
    ------
    TooManyCodes
        More than ``limit`` keys would be needed.
    """
    grown = [max(w, 2 * s) if w > s else s for w, s in zip(wanted, sizes, strict=True)]
    if math.prod(grown) * fixed > limit:
        grown = [max(w, s) for w, s in zip(wanted, sizes, strict=True)]
        if math.prod(grown) * fixed > limit:
            msg = f"{math.prod(grown) * fixed:,} keys, more than {limit:,}"
            raise TooManyCodes(msg)
    out = np.zeros((*grown, fixed), dtype=np.int64)
    out[tuple(slice(0, s) for s in sizes)] = totals.reshape(*sizes, fixed)
    return out.reshape(-1), grown
