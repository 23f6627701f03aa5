"""`Grouped`: raw Bernoulli rows collapsed to one row of counts per feature combination."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from binomlab import binning, splitting
from binomlab._checks import check_names, check_seed
from binomlab.errors import (
    BinomlabError,
    ColumnNotFoundError,
    EmptyDataError,
    InvalidCountsError,
    NotGroupedError,
)

__all__ = [
    "COUNT_COLUMNS",
    "MAX_COUNT",
    "Grouped",
    "GroupedSource",
    "read_grouped",
    "require_grouped",
]

COUNT_COLUMNS = ("n", "k")
MAX_COUNT = 2**63 - 1
"""The largest count an Int64 holds: every count, and the total Σn of a Grouped, stay within."""
_PARQUET_KEY = "binomlab.grouped"
_FORMAT_VERSION = 1
SeedLike = int | np.random.Generator | None


def check_feature_names(features: str | Sequence[str]) -> tuple[str, ...]:
    """Normalise ``features`` to a tuple of names and reject empty, duplicate or reserved ones.

    Raises
    ------
    BinomlabError
        Not a name or a sequence of names, no features, a duplicate, or a feature named
        ``n`` or ``k``.
    """
    names = check_names(features, name="features")
    if not names:
        msg = "features must name at least one column. Received: features=[]"
        raise BinomlabError(msg)
    dupes = sorted({f for f in names if names.count(f) > 1})
    if dupes:
        msg = f"Duplicate features {dupes}: name each column once."
        raise BinomlabError(msg)
    reserved = [f for f in names if f in COUNT_COLUMNS]
    if reserved:
        msg = (
            f"A feature cannot be named {reserved[0]!r}: 'n' and 'k' are the trial and success "
            f"counts of every Grouped. Rename it first, e.g. df.rename({{{reserved[0]!r}: "
            f"'{reserved[0]}_feature'}})."
        )
        raise BinomlabError(msg)
    return names


def _as_generator(seed: SeedLike) -> np.random.Generator:
    """The generator a ``seed=`` argument stands for (checked by :func:`check_seed`)."""
    seed = check_seed(seed, name="seed", generator=True)
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def total_overflows(column: str) -> pl.Expr:
    """True when the Int64 (or narrower) counts of ``column`` sum beyond :data:`MAX_COUNT`."""
    return pl.col(column).cast(pl.Int128).sum() > MAX_COUNT


def require_grouped(data: Any, *, name: str = "data", files: bool = True) -> Grouped:
    """``data`` as a :class:`Grouped`: itself, or (``files``) the grouped parquet file at the
    path it names, read with :func:`read_grouped`.

    Raises
    ------
    NotGroupedError
        Anything else, e.g. raw rows: the message says how to group them (``bl.group``, or
        ``bl.from_counts`` when the frame has ``n`` and ``k`` columns). Also a TypeError.
    BinomlabError, FileNotFoundError
        As :func:`read_grouped`.
    """
    if isinstance(data, Grouped):
        return data
    if files and isinstance(data, str | os.PathLike):
        return read_grouped(data)
    has_counts = set(COUNT_COLUMNS) <= _column_names(data)
    raise NotGroupedError.from_received(
        name, type(data).__name__, has_counts=has_counts, reads_files=files
    )


def _column_names(data: Any) -> set[str]:
    """The column names of an in-memory table (Polars, pandas, Arrow, dict), else none; a
    LazyFrame is not resolved for them."""
    if isinstance(data, pl.LazyFrame):
        return set()
    if isinstance(data, Mapping):
        return {str(c) for c in data}
    names = getattr(data, "column_names", None)  # pyarrow
    if names is None:
        names = getattr(data, "columns", None)  # polars, pandas
    try:
        return {str(c) for c in names} if names is not None else set()
    except TypeError:
        return set()


class Grouped:
    """Grouped binomial data: the feature columns, then ``n`` trials and ``k`` successes.

    Build one with :func:`binomlab.group` (from raw rows) or :func:`binomlab.from_counts`
    (from counts). Every group has ``n >= 1`` and ``0 <= k <= n``; ``n`` and ``k`` are Int64.

    Parameters
    ----------
    frame
        The counts table. It is validated, not copied (Polars frames are immutable).
    features
        Names of the feature columns, in order.
    bins
        Bin edges of the features that were discretised, reapplied to new data at predict time.

    Raises
    ------
    ColumnNotFoundError, InvalidCountsError, BinomlabError
        Missing columns, counts that are not valid binomial counts, or bad feature names.
    """

    __slots__ = ("_bins", "_features", "_fingerprint", "_frame")

    def __init__(
        self,
        frame: pl.DataFrame,
        features: Sequence[str],
        *,
        bins: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        features = check_feature_names(features)
        missing = [c for c in (*features, *COUNT_COLUMNS) if c not in frame.columns]
        if missing:
            raise ColumnNotFoundError.from_missing_and_available(missing, frame.columns)
        if frame.height == 0:
            msg = "A Grouped needs at least one group; the data holds none."
            raise EmptyDataError(msg)
        for c in COUNT_COLUMNS:
            if frame.schema[c] != pl.Int64:
                msg = f"Column {c!r} must be Int64. Received: {frame.schema[c]}."
                raise InvalidCountsError(msg)
        bad = frame.select(
            (pl.col("n").is_null().any() | pl.col("k").is_null().any()).alias("null"),
            (pl.col("n") < 1).any().alias("empty"),
            ((pl.col("k") < 0) | (pl.col("k") > pl.col("n"))).any().alias("range"),
        ).row(0)
        if any(bad):
            msg = "Grouped counts need 1 <= n and 0 <= k <= n with no nulls in every group."
            raise InvalidCountsError(msg)
        if frame.select(total_overflows("n")).item():
            msg = (
                f"The groups hold more than {MAX_COUNT:,} trials in all (2**63 - 1, the most an "
                "Int64 count holds)."
            )
            raise InvalidCountsError(msg)
        self._frame = frame.select(*features, *COUNT_COLUMNS)
        self._features = features
        self._bins = {c: tuple(float(e) for e in edges) for c, edges in (bins or {}).items()}
        self._fingerprint: str | None = None

    # -- what it holds ----------------------------------------------------------------------

    @property
    def frame(self) -> pl.DataFrame:
        """The counts table: feature columns, then ``n`` and ``k`` (Int64)."""
        return self._frame

    @property
    def features(self) -> tuple[str, ...]:
        """The feature column names."""
        return self._features

    @property
    def bins(self) -> dict[str, binning.BinEdges]:
        """Bin edges per discretised feature (empty when nothing was binned)."""
        return dict(self._bins)

    def __len__(self) -> int:
        return self._frame.height

    @property
    def fingerprint(self) -> str:
        """sha256 (hex) of the groups whatever their row order: the features, bin edges and
        every row's values and counts. A fitted model keeps its training data's fingerprint, to
        recognise that data later (``bl.evaluate`` counts degrees of freedom by it)."""
        if self._fingerprint is None:
            import hashlib

            digest = hashlib.sha256()
            header = {"features": list(self._features), "bins": self._bins}
            digest.update(json.dumps(header, sort_keys=True, default=str).encode())
            # The CSV of the rows as strings, sorted by those strings (nulls first), hashed a
            # slice at a time: the bytes of one whole CSV, without holding every value as a
            # string, nor the CSV, at once (millions of groups took GiBs).
            frame = self._frame
            order = frame.select(
                pl.arg_sort_by([_string_rank(frame[c]) for c in frame.columns], nulls_last=False)
            ).to_series()
            for start in range(0, max(frame.height, 1), _FINGERPRINT_ROWS):
                rows = frame.select(pl.all().gather(order.slice(start, _FINGERPRINT_ROWS)))
                text = rows.select(pl.all().cast(pl.String))
                csv = text.write_csv(include_header=start == 0, null_value="\\N")
                digest.update(csv.encode())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    @property
    def trials(self) -> int:
        """Σn, the number of raw rows the groups stand for."""
        return int(self._frame["n"].sum())

    @property
    def successes(self) -> int:
        """Σk, the number of raw rows with outcome 1."""
        return int(self._frame["k"].sum())

    @property
    def rate(self) -> float:
        """Overall success rate Σk / Σn."""
        return self.successes / self.trials

    @property
    def compression(self) -> float:
        """Raw rows per group, Σn / groups: how much smaller the grouped table is."""
        return self.trials / len(self)

    def cardinalities(self) -> dict[str, int]:
        """Number of distinct values (null counted) of each feature among the groups."""
        return {f: self._frame[f].n_unique() for f in self._features}

    def summary(self) -> str:
        """One line: groups, trials, success rate and compression."""
        return (
            f"{len(self):,} groups · {self.trials:,} trials · {self.successes:,} successes "
            f"({self.rate:.2%}) · {self.compression:,.1f}× compression"
        )

    def __repr__(self) -> str:
        feats = ", ".join(f"{f} ({self._frame.schema[f]})" for f in self._features)
        return f"Grouped: {self.summary()}\nfeatures: {feats}\n{self._frame}"

    def _repr_html_(self) -> str:
        return f"<p><b>Grouped</b>: {self.summary()}</p>{self._frame._repr_html_()}"

    def equals(self, other: Grouped) -> bool:
        """True when both hold the same features, bins and counts, row for row."""
        return (
            isinstance(other, Grouped)
            and self._features == other._features
            and self._bins == other._bins
            and self._frame.equals(other._frame)
        )

    # -- new data through the same binning ----------------------------------------------------

    def apply_bins(self, data: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
        """Bin a frame of raw feature values with this Grouped's edges (for prediction).

        Raises
        ------
        BinomlabError
            NaN or a value outside explicit edges in a binned column.
        """
        if not self._bins:
            return data.lazy().collect()
        binned = binning.apply_bins(data, self._bins).collect()
        return binning.check_binned(binned, self._bins, source=data.lazy())

    # -- splitting ------------------------------------------------------------------------------

    def _with_counts(self, n: np.ndarray, k: np.ndarray) -> Grouped:
        """A Grouped with the same groups and new counts; groups left with n = 0 are dropped."""
        frame = self._frame.with_columns(
            n=pl.Series(n, dtype=pl.Int64), k=pl.Series(k, dtype=pl.Int64)
        ).filter(pl.col("n") > 0)
        return Grouped(frame, self._features, bins=self._bins)

    def _counts(self) -> tuple[np.ndarray, np.ndarray]:
        return self._frame["n"].to_numpy(), self._frame["k"].to_numpy()

    def split(self, test: float = 0.2, *, seed: SeedLike = 0) -> tuple[Grouped, Grouped]:
        """Split the *trials* into train and test, exactly as shuffling the raw rows would.

        ``round(test · Σn)`` trials (halves up) go to the test part, drawn without replacement
        (multivariate hypergeometric over the groups' successes and failures); the rest stay
        in train. Groups with no trials left on a side are dropped from that side.

        Parameters
        ----------
        test
            Fraction of trials for the test part, strictly between 0 and 1 (a Python or
            NumPy float).
        seed
            A non-negative int (a NumPy integer too), None (fresh entropy) or a
            :class:`numpy.random.Generator`.

        Returns
        -------
        (train, test)

        Raises
        ------
        BinomlabError
            ``test`` not a number in (0, 1), a bad ``seed`` (a string, a float, a bool, a
            negative number), a side left empty, or more than ~1e9 trials.
        """
        rng = _as_generator(seed)
        n, k = self._counts()
        size = splitting.test_size(test, int(n.sum()))
        n_test, k_test = splitting.draw_rows(n, k, size, rng)
        return self._with_counts(n - n_test, k - k_test), self._with_counts(n_test, k_test)

    def kfold(self, k: int = 5, *, seed: SeedLike = 0) -> list[tuple[Grouped, Grouped]]:
        """Partition the trials into ``k`` folds; return ``(train, test)`` for each fold.

        As if the raw rows were shuffled and cut into ``k`` consecutive parts of sizes as
        equal as possible (the first ``Σn % k`` one trial larger): every trial is in exactly
        one test fold.

        Parameters
        ----------
        k
            Number of folds, an int >= 2 (a NumPy integer too).
        seed
            As :meth:`split`.

        Raises
        ------
        BinomlabError
            ``k`` is not an int >= 2, or exceeds Σn; a bad ``seed`` (as :meth:`split`).
        """
        rng = _as_generator(seed)
        n, succ = self._counts()
        left_n, left_k = n.copy(), succ.copy()
        folds = []
        for size in splitting.fold_sizes(k, int(n.sum())):
            fold_n, fold_k = splitting.draw_rows(left_n, left_k, size, rng)
            left_n -= fold_n
            left_k -= fold_k
            folds.append((fold_n, fold_k))
        return [
            (self._with_counts(n - fn, succ - fk), self._with_counts(fn, fk)) for fn, fk in folds
        ]

    # -- back to rows, and to disk -----------------------------------------------------------

    def expand(self, *, label: str = "y", max_rows: int | None = 50_000_000) -> pl.DataFrame:
        """The raw rows the groups stand for: the features and a 0/1 ``label`` column (Int64).

        Each group gives ``k`` rows with 1, then ``n − k`` rows with 0, in group order.

        Raises
        ------
        BinomlabError
            More than ``max_rows`` rows would be made (pass ``max_rows=None`` to allow it), or
            ``label`` clashes with a feature name.
        """
        if label in self._features:
            msg = f"label={label!r} is also a feature name; pick another label name."
            raise BinomlabError(msg)
        if max_rows is not None and self.trials > max_rows:
            msg = (
                f"expand() would make {self.trials:,} rows, more than max_rows={max_rows:,}. "
                "Pass max_rows=None if you really want them all."
            )
            raise BinomlabError(msg)
        return (
            self._frame.with_columns(pl.int_ranges(0, pl.col("n"), dtype=pl.Int64).alias("_i"))
            .explode("_i")
            .select(*self._features, (pl.col("_i") < pl.col("k")).cast(pl.Int64).alias(label))
        )

    def write_parquet(self, path: str | os.PathLike[str]) -> None:
        """Write the counts to parquet, with features and bin edges in the file's metadata.

        Read it back with :func:`binomlab.read_grouped`.
        """
        meta = {
            "format_version": _FORMAT_VERSION,
            "features": list(self._features),
            "bins": {c: [_json_float(e) for e in edges] for c, edges in self._bins.items()},
        }
        self._frame.write_parquet(path, metadata={_PARQUET_KEY: json.dumps(meta)})


GroupedSource = Grouped | str | os.PathLike[str]
"""What the functions that take grouped data accept (:func:`require_grouped`): a Grouped, or
the path of a grouped parquet file."""


def _json_float(x: float) -> float | str:
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def read_grouped(path: str | os.PathLike[str]) -> Grouped:
    """Read a :class:`Grouped` written by :meth:`Grouped.write_parquet`.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    BinomlabError
        The file is not a parquet file, was not written by binomlab (for a plain counts
        table the message names :func:`binomlab.from_counts`), or by a newer format version.
    """
    if not isinstance(path, str | os.PathLike):
        msg = f"Expected path to be a str or os.PathLike. Received: path={path!r}"
        raise BinomlabError(msg)
    if not os.path.isfile(path):
        msg = f"File not found: {os.fspath(path)!r}."
        raise FileNotFoundError(msg)
    try:
        meta_raw: Any = pl.read_parquet_metadata(path).get(_PARQUET_KEY)
    except (pl.exceptions.PolarsError, OSError) as err:
        msg = f"{os.fspath(path)!r} is not a parquet file binomlab can read: {err}"
        raise BinomlabError(msg) from None
    if meta_raw is None:
        msg = (
            f"{os.fspath(path)!r} is not a binomlab Grouped parquet file (no {_PARQUET_KEY!r} "
            "metadata). For a plain counts table use binomlab.from_counts(path, features)."
        )
        raise BinomlabError(msg)
    meta = _parse_meta(path, meta_raw)
    if meta.get("format_version") != _FORMAT_VERSION:
        msg = (
            f"{os.fspath(path)!r} has Grouped format version {meta.get('format_version')!r}; "
            f"this binomlab reads version {_FORMAT_VERSION}. Upgrade binomlab."
        )
        raise BinomlabError(msg)
    try:
        bins = {c: [float(e) for e in edges] for c, edges in meta.get("bins", {}).items()}
    except (AttributeError, TypeError, ValueError):
        msg = f"{os.fspath(path)!r} has corrupted bin edges in its metadata: {meta['bins']!r}"
        raise BinomlabError(msg) from None
    return Grouped(pl.read_parquet(path), meta.get("features", ()), bins=bins)


def _parse_meta(path: str | os.PathLike[str], raw: str) -> dict[str, Any]:
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict):
        msg = f"{os.fspath(path)!r} has corrupted {_PARQUET_KEY!r} metadata: {raw[:200]!r}"
        raise BinomlabError(msg)
    return meta


_FINGERPRINT_ROWS = 1 << 18
"""Rows hashed at a time by :attr:`Grouped.fingerprint`."""


def _string_rank(column: pl.Series) -> pl.Series:
    """A UInt32 key of ``column`` that sorts as ``column.cast(pl.String)`` does (the rank
    of each value's string among the distinct strings; null stays null)."""
    text = column.cast(pl.String)
    return text.cast(pl.Enum(text.unique().drop_nulls().sort())).to_physical()
