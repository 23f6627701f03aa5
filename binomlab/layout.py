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

In the treatment design (the logistic spec's) a feature's reference level, and a level whose
column was aliased, has no weight row: its code is :data:`NO_ROW` (``-1``) and it adds
nothing (:attr:`IndexLayout.holes` says such codes occur). :meth:`IndexLayout.sparse` gives the
one-hot matrix as a sparse CSR matrix, which is how the GLM's Newton driver uses the index
form: its Hessian ``X̃ᵀWX̃`` is then a sum over groups of per-level terms, never a dense
``[groups × levels]`` product.

Codes are exact integers in float32 up to 2**24 (16.7M weight rows): a wider first layer is
refused (:data:`MAX_WIDTH`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from binomlab.errors import BinomlabError

__all__ = [
    "EMBED_MAX",
    "FORMS",
    "MAX_WIDTH",
    "NO_ROW",
    "IndexLayout",
    "check_network_inputs",
    "embedding_dims",
    "embedding_size",
]

FORMS = ("dense", "index")
"""How an encoder lays out its matrix: one-hot (``dense``), or codes (``index``)."""
EMBED_MAX = 600
"""The largest embedding the default rule gives (:func:`embedding_size`)."""
MAX_WIDTH = 2**24
"""The most weight rows an index-form matrix can address (float32 holds integers exactly up
to 2**24)."""
NO_ROW = -1
"""The code of a level without a weight row (the treatment design's reference level, an
aliased level): it adds nothing to the first layer."""


@dataclass(frozen=True)
class IndexLayout:
    """Which columns of an index-form matrix are codes and which are numbers.

    Attributes
    ----------
    width
        Rows of the first layer's weight: the width ``d`` of the one-hot matrix.
    codes
        Columns of the matrix that hold a weight row (``0 <= code < width``, or
        :data:`NO_ROW` where ``holes``), one per feature with levels, in feature order.
    numbers
        Columns that hold numbers (standardised values, null indicators).
    number_rows
        The weight row each of ``numbers`` multiplies.
    names
        The feature of each of ``codes``.
    levels
        The number of levels of each of ``codes``: a code of that column lies in
        ``[first, first + levels)``.
    firsts
        The first weight row of each of ``codes`` (its levels' rows follow it).
    holes
        True when a code may be :data:`NO_ROW` (the treatment design): ``levels`` and
        ``firsts`` then count the feature's weight rows, not its levels, and the layout feeds
        a linear model only (no embeddings).
    """

    width: int
    codes: tuple[int, ...]
    numbers: tuple[int, ...]
    number_rows: tuple[int, ...]
    names: tuple[str, ...] = ()
    levels: tuple[int, ...] = ()
    firsts: tuple[int, ...] = ()
    holes: bool = False

    def __post_init__(self) -> None:
        lowest = 0 if self.holes else 1  # a linear model may have no weight rows
        if not lowest <= self.width <= MAX_WIDTH:
            msg = (
                f"An index-form first layer has {lowest} to {MAX_WIDTH:,} weight rows. Received: "
                f"width={self.width:,}. Pool rare levels (min_frequency=...) or bin the feature."
            )
            raise BinomlabError(msg)
        if len(self.numbers) != len(self.number_rows):
            msg = f"Expected one weight row per number column. Received: {self!r}"
            raise BinomlabError(msg)
        if not len(self.names) == len(self.levels) == len(self.firsts) == len(self.codes):
            msg = f"Expected a name, a level count and a first row per code. Received: {self!r}"
            raise BinomlabError(msg)

    @property
    def n_inputs(self) -> int:
        """Columns of the index-form matrix."""
        return len(self.codes) + len(self.numbers)

    def dense(self, X: np.ndarray) -> np.ndarray:
        """The one-hot matrix ``[rows, width]`` of ``X [rows, n_inputs]``, in ``X``'s dtype."""
        X = np.asarray(X)
        out = np.zeros((X.shape[0], self.width), X.dtype)
        for column in self.codes:
            codes = X[:, column].astype(np.int64)
            hit = np.flatnonzero(codes != NO_ROW)
            out[hit, codes[hit]] = 1
        out[:, list(self.number_rows)] = X[:, list(self.numbers)]
        return out

    def unit_rows(self, dtype: type = np.float32) -> np.ndarray:
        """The index form ``[width + 1, n_inputs]`` of the zero row and the unit rows: its
        :meth:`dense` is ``[0; I]``, so a linear model's logits on it are its intercept and
        intercept + each coefficient. Only a layout with ``holes`` has a zero row.

        Raises
        ------
        BinomlabError
            The layout has no holes (every row of it selects a level of every feature).
        """
        if not self.holes and self.codes:
            msg = "Only a layout with holes (the treatment design) has an all-zero row."
            raise BinomlabError(msg)
        out = np.zeros((self.width + 1, self.n_inputs), dtype)
        out[:, list(self.codes)] = NO_ROW
        for column, first, levels in zip(self.codes, self.firsts, self.levels, strict=True):
            rows = first + np.arange(levels)
            out[1 + rows, column] = rows
        for column, row in zip(self.numbers, self.number_rows, strict=True):
            out[1 + row, column] = 1
        return out

    def sparse(self, X: np.ndarray) -> Any:
        """The one-hot matrix of ``X [rows, n_inputs]`` as a float64 CSR matrix ``[rows,
        width]`` (``scipy.sparse``): memory ∝ rows × features, not rows × width."""
        from scipy import sparse

        X = np.asarray(X)
        rows = np.arange(X.shape[0])
        parts = [(rows, X[:, c].astype(np.int64), np.ones(X.shape[0])) for c in self.codes]
        parts += [
            (rows, np.full(X.shape[0], r), X[:, c].astype(np.float64))
            for c, r in zip(self.numbers, self.number_rows, strict=True)
        ]
        if not parts:
            return sparse.csr_matrix((X.shape[0], self.width))
        i, j, v = (np.concatenate(a) for a in zip(*parts, strict=True))
        keep = (j != NO_ROW) & (v != 0)
        coo = sparse.coo_matrix((v[keep], (i[keep], j[keep])), shape=(X.shape[0], self.width))
        return coo.tocsr()

    def first_layer(self, X: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``dense(X) @ W + b`` by lookup: ``W [width, h]``, ``b [h]`` → ``[rows, h]``
        (float64)."""
        X, W = np.asarray(X, np.float64), np.asarray(W, np.float64)
        out = np.zeros((X.shape[0], W.shape[1])) + np.asarray(b, np.float64)
        padded = np.vstack([W, np.zeros((1, W.shape[1]))])  # NO_ROW (-1) picks the zero row
        for column in self.codes:
            out += padded[X[:, column].astype(np.int64)]
        if self.numbers:
            out += X[:, list(self.numbers)] @ W[list(self.number_rows)]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "codes": list(self.codes),
            "numbers": list(self.numbers),
            "number_rows": list(self.number_rows),
            "names": list(self.names),
            "levels": list(self.levels),
            "firsts": list(self.firsts),
        } | ({"holes": True} if self.holes else {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexLayout:
        return cls(
            width=int(data["width"]),
            codes=_ints(data["codes"]),
            numbers=_ints(data["numbers"]),
            number_rows=_ints(data["number_rows"]),
            names=tuple(str(n) for n in data["names"]),
            levels=_ints(data["levels"]),
            firsts=_ints(data["firsts"]),
            holes=bool(data.get("holes", False)),
        )


def check_network_inputs(kind: str, embed: Any, input_dim: int, layout: IndexLayout | None) -> None:
    """The rule every backend's network builder applies to its inputs: a layout feeds the
    first layer of ``layout.n_inputs == input_dim`` columns — an MLP's first hidden layer
    (``kind == "mlp"``, a layout without holes) or the logistic spec's one layer
    (``kind == "logistic"``, where the treatment design's reference levels are holes) — and
    embeddings (``embed`` not None) need one.

    Raises
    ------
    ValueError
        Any rule broken (a plugin reading its native files turns it into a
        ``ModelFileError``).
    """
    if layout is not None and (
        kind not in ("mlp", "logistic") or layout.n_inputs != int(input_dim)
    ):
        msg = (
            f"An index layout feeds the first layer of an MLP or a logistic spec, of "
            f"{int(input_dim)} inputs here; received {kind!r} and {layout}"
        )
        raise ValueError(msg)
    if layout is not None and layout.holes and kind != "logistic":
        msg = (
            "This index layout has levels without a weight row (the treatment design's "
            "reference levels): it feeds a linear model, not an MLP's first layer."
        )
        raise ValueError(msg)
    if embed is not None and layout is None:
        msg = "A spec with embed=... embeds level codes: it needs the index form's layout."
        raise ValueError(msg)


def embedding_size(levels: int) -> int:
    """The default embedding dimension of a feature with ``levels`` levels: fastai's rule,
    ``min(600, round(1.6 · levels^0.56))`` (e.g. 2 levels → 2, 16 → 8, 100 → 21, 20,000 →
    410)."""
    return int(min(EMBED_MAX, round(1.6 * levels**0.56)))


def embedding_dims(embed: Any, layout: IndexLayout) -> tuple[int, ...]:
    """The embedding dimension of each code column of ``layout`` for ``MLP(embed=...)``:
    ``"auto"`` → :func:`embedding_size` for every feature, an int → that for every feature,
    ``{feature: d}`` → those, the rule for the features not named.

    Raises
    ------
    BinomlabError
        A named feature that has no levels (numeric, or not a feature of the model).
    """
    if isinstance(embed, Mapping):
        unknown = sorted(set(embed) - set(layout.names))
        if unknown:
            msg = (
                f"embed names {unknown}, which are not features with levels of this model; "
                f"those are {list(layout.names)} (numeric features are not embedded)."
            )
            raise BinomlabError(msg)
        return tuple(
            int(embed.get(name, embedding_size(levels)))
            for name, levels in zip(layout.names, layout.levels, strict=True)
        )
    if embed == "auto":
        return tuple(embedding_size(levels) for levels in layout.levels)
    return tuple(int(embed) for _ in layout.codes)


def _ints(values: Sequence[Any]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)
