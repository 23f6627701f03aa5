"""The index form of encoded features: integer codes in, not one-hot floats.

A one-hot matrix ``[rows, d]`` over features with many levels is mostly zeros, and a
network's first layer ``X @ W`` (``W [d, h]``) spends nearly all its time multiplying them.
In the index form the encoded matrix has one column per feature instead: a feature with
levels holds the **row of W** its level selects (an integer, stored in the matrix's float
dtype), a numeric feature its standardised value (and its null indicator, when it has one).
The first layer is then a lookup summed over features,

    ``h = Σ_f W[code_f] + numbers @ W[number_rows] + b``,

exactly ``one_hot @ W + b`` without the matrix. :class:`IndexLayout` says which column is
which; :meth:`IndexLayout.dense` rebuilds the one-hot matrix (for comparison and for backends
that take only dense inputs) and :meth:`IndexLayout.first_layer` is the NumPy reference of
the lookup.

Codes are exact integers in float32 up to 2**24 (16.7M weight rows): a wider first layer is
refused (:data:`MAX_WIDTH`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from binomlab.errors import BinomlabError

__all__ = ["FORMS", "MAX_WIDTH", "IndexLayout"]

FORMS = ("dense", "index")
"""How an encoder lays out its matrix: one-hot (``dense``), or codes (``index``)."""
MAX_WIDTH = 2**24
"""The most weight rows an index-form matrix can address (float32 holds integers exactly up
to 2**24)."""


@dataclass(frozen=True)
class IndexLayout:
    """Which columns of an index-form matrix are codes and which are numbers.

    Attributes
    ----------
    width
        Rows of the first layer's weight: the width ``d`` of the one-hot matrix.
    codes
        Columns of the matrix that hold a weight row (``0 <= code < width``), one per feature
        with levels, in feature order.
    numbers
        Columns that hold numbers (standardised values, null indicators).
    number_rows
        The weight row each of ``numbers`` multiplies.
    """

    width: int
    codes: tuple[int, ...]
    numbers: tuple[int, ...]
    number_rows: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 0 < self.width <= MAX_WIDTH:
            msg = (
                f"An index-form first layer has 1 to {MAX_WIDTH:,} weight rows. Received: "
                f"width={self.width:,}. Pool rare levels (min_frequency=...) or bin the feature."
            )
            raise BinomlabError(msg)
        if len(self.numbers) != len(self.number_rows):
            msg = f"Expected one weight row per number column. Received: {self!r}"
            raise BinomlabError(msg)

    @property
    def n_inputs(self) -> int:
        """Columns of the index-form matrix."""
        return len(self.codes) + len(self.numbers)

    def dense(self, X: np.ndarray) -> np.ndarray:
        """The one-hot matrix ``[rows, width]`` of ``X [rows, n_inputs]``, in ``X``'s dtype."""
        X = np.asarray(X)
        out = np.zeros((X.shape[0], self.width), X.dtype)
        rows = np.arange(X.shape[0])
        for column in self.codes:
            out[rows, X[:, column].astype(np.int64)] = 1
        out[:, list(self.number_rows)] = X[:, list(self.numbers)]
        return out

    def first_layer(self, X: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``dense(X) @ W + b`` by lookup: ``W [width, h]``, ``b [h]`` → ``[rows, h]``
        (float64)."""
        X, W = np.asarray(X, np.float64), np.asarray(W, np.float64)
        out = np.zeros((X.shape[0], W.shape[1])) + np.asarray(b, np.float64)
        for column in self.codes:
            out += W[X[:, column].astype(np.int64)]
        if self.numbers:
            out += X[:, list(self.numbers)] @ W[list(self.number_rows)]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "codes": list(self.codes),
            "numbers": list(self.numbers),
            "number_rows": list(self.number_rows),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexLayout:
        return cls(
            width=int(data["width"]),
            codes=_ints(data["codes"]),
            numbers=_ints(data["numbers"]),
            number_rows=_ints(data["number_rows"]),
        )


def _ints(values: Sequence[Any]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)
