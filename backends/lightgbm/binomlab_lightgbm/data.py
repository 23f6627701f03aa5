"""The encoded groups as LightGBM's table: the index form's codes as category numbers.

In the index form (:class:`~binomlab.layout.IndexLayout`) a feature with levels holds the
weight row of its level, ``first + level``; LightGBM takes categories as small non-negative
integers, so the table holds ``level = code − first`` (``0 … levels − 1``) in those columns,
and the ONNX export adds ``first`` back to every category of a split. Numeric columns
(standardised numbers, null indicators) go in as they are. One-hot inputs (no layout) are all
numeric columns.

LightGBM builds its bins (the split candidates) from the counts of the values in its table,
and those count rows — groups here, trials on the raw rows. :meth:`Columns.reference` is a
table holding each distinct value of each column once, from which the training
``Dataset`` takes its bins instead (LightGBM's ``reference=``): they then depend on the
values alone, so the groups and their raw rows get the same bins. Every level of a feature
is its own bin (the table has one missing category, ``-1``, and ``max_bin_by_feature`` gives
each categorical column room for all its levels, so LightGBM's rule of dropping the rarest
levels past 99% of the rows never applies); a numeric column with more distinct values than
``max_bin`` is cut into ``max_bin`` bins of about equally many distinct values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from binomlab.layout import IndexLayout

__all__ = ["Columns"]


@dataclass(frozen=True)
class Columns:
    """Which columns of the encoded matrix are categories, and their code offsets.

    Attributes
    ----------
    width
        Columns of the encoded matrix (the ONNX input width).
    categorical
        Indices of the columns LightGBM splits as categories.
    offsets
        ``first`` of each of ``categorical``: ``code = level + offset``.
    """

    width: int
    categorical: tuple[int, ...] = ()
    offsets: tuple[int, ...] = ()
    levels: tuple[int, ...] = ()

    @classmethod
    def of(cls, width: int, layout: IndexLayout | None) -> Columns:
        """The columns of an encoded matrix of ``width`` columns in ``layout``'s form."""
        if layout is None:
            return cls(int(width))
        return cls(
            int(width),
            tuple(layout.codes),
            tuple(int(f) for f in layout.firsts),
            tuple(int(n) for n in layout.levels),
        )

    def max_bins(self, max_bin: int) -> list[int]:
        """LightGBM's ``max_bin_by_feature``: ``max_bin`` for a numeric column, room for
        every level (and the missing bin) for a categorical one."""
        room = dict(zip(self.categorical, self.levels, strict=True))
        return [room[j] + 2 if j in room else int(max_bin) for j in range(self.width)]

    def reference(self, table: np.ndarray) -> np.ndarray:
        """The table LightGBM takes its bins from: each distinct value of each column of
        ``table`` once (padded with the column's first value), and one missing category
        (``-1``) in every categorical column; float32 ``[values + 1, width]``."""
        distinct = [np.unique(table[:, j]) for j in range(table.shape[1])]
        rows = max((len(d) for d in distinct), default=0) + 1
        out = np.zeros((rows, table.shape[1]), np.float32)
        for j, values in enumerate(distinct):
            if len(values):
                out[:, j] = values[0]
                out[: len(values), j] = values
        out[-1, list(self.categorical)] = -1
        return out

    def table(self, X: np.ndarray) -> np.ndarray:
        """``X [rows, width]`` as LightGBM's float32 table (codes as level numbers)."""
        out = np.array(X, dtype=np.float32, copy=True, order="C")
        for column, offset in zip(self.categorical, self.offsets, strict=True):
            out[:, column] -= offset
        return out

    def to_dict(self) -> dict[str, list[int] | int]:
        return {
            "width": self.width,
            "categorical": list(self.categorical),
            "offsets": list(self.offsets),
            "levels": list(self.levels),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Columns:
        return cls(
            int(data["width"]),
            tuple(int(c) for c in data["categorical"]),
            tuple(int(o) for o in data["offsets"]),
            tuple(int(n) for n in data.get("levels", ())),
        )
