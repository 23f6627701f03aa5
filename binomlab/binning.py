"""Discretising numeric features into bins before grouping, and again at predict time.

A bin specification maps a feature to either a number of quantile bins (edges taken from the
data) or explicit edges. Either way it is resolved once into a tuple of edges, kept on the
:class:`~binomlab.Grouped` and reused on any new frame, so training and prediction bin alike.

Bins are left-closed, ``[a, b)``, except the last of explicit edges, which is closed on both
sides: ``bins={"distance": [0, 500, 1000, 5000]}`` makes ``[0, 500)``, ``[500, 1000)`` and
``[1000, 5000]``. Quantile bins get open outer ends (``-inf`` and ``inf``), so every value
falls in a bin. A binned feature becomes an ordered :class:`polars.Enum` whose categories are
the bin labels, in bin order. Nulls stay null (their own group); NaN is an error.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import polars as pl

from binomlab.errors import BinomlabError, ColumnNotFoundError

__all__ = ["BinEdges", "apply_bins", "bin_labels", "check_binned", "resolve_bins"]

BinEdges = tuple[float, ...]
"""Strictly increasing bin edges, at least two; the ends may be infinite."""

_BELOW, _ABOVE, _NAN = "<below>", "<above>", "<NaN>"
_SENTINELS = (_BELOW, _ABOVE, _NAN)


def _format_edge(edge: float) -> str:
    if math.isinf(edge):
        return "inf" if edge > 0 else "-inf"
    if edge.is_integer() and abs(edge) < 1e15:
        return str(int(edge))
    return repr(edge)


def bin_labels(edges: BinEdges) -> list[str]:
    """Readable labels of the bins that ``edges`` delimit, one per bin, in order.

    >>> bin_labels((0.0, 500.0, 1000.0))
    ['[0, 500)', '[500, 1000]']
    >>> bin_labels((-math.inf, 3.0, math.inf))
    ['< 3', '>= 3']
    """
    labels = []
    last = len(edges) - 2
    for i, (lo, hi) in enumerate(itertools.pairwise(edges)):
        a, b = _format_edge(lo), _format_edge(hi)
        if math.isinf(lo) and math.isinf(hi):
            labels.append("all")
        elif math.isinf(lo):
            labels.append(f"< {b}")
        elif math.isinf(hi):
            labels.append(f">= {a}")
        else:
            labels.append(f"[{a}, {b}]" if i == last else f"[{a}, {b})")
    return labels


def _check_edges(column: str, edges: Sequence[float]) -> BinEdges:
    try:
        out = tuple(float(e) for e in edges)
    except (TypeError, ValueError):
        msg = f"Bin edges for {column!r} must be numbers. Received: bins={{{column!r}: {edges!r}}}"
        raise BinomlabError(msg) from None
    if len(out) < 2:
        msg = (
            f"Bin edges for {column!r} need at least two values (one bin). "
            f"Received: {list(edges)!r}. Pass an int for quantile bins instead."
        )
        raise BinomlabError(msg)
    increasing = all(b > a for a, b in itertools.pairwise(out))
    if any(math.isnan(e) for e in out) or not increasing:
        msg = (
            f"Bin edges for {column!r} must be strictly increasing numbers. "
            f"Received: {list(edges)!r}"
        )
        raise BinomlabError(msg)
    return out


def resolve_bins(
    lf: pl.LazyFrame,
    bins: Mapping[str, int | Sequence[float]] | None,
    *,
    features: Sequence[str],
    schema: pl.Schema,
) -> dict[str, BinEdges]:
    """Turn a user's ``bins=`` argument into explicit edges per feature.

    ``bins`` is a dict ``{feature: number of quantile bins | edges}``, or an object with a
    ``bins`` dict of edges (a Grouped, a fitted or loaded model), whose edges are reused for
    the features grouped here: new rows binned as the model's training rows were.

    Quantile edges (``{"col": 10}``) are computed in one lazy query over all such columns,
    ignoring nulls; duplicate quantiles (a column with few distinct values) are merged, so a
    column may get fewer bins than asked for.

    Raises
    ------
    ColumnNotFoundError
        A binned column is not among ``features``.
    BinomlabError
        A binned column is not numeric, the bin count is not a positive int, or edges are not
        strictly increasing.
    """
    if not isinstance(bins, Mapping) and isinstance(getattr(bins, "bins", None), Mapping):
        # a Grouped, a fitted or a loaded model: reuse its edges for the features grouped here
        bins = {c: edges for c, edges in bins.bins.items() if c in features}
    if not bins:
        return {}
    if not isinstance(bins, Mapping):
        msg = (
            "bins must be a dict such as {'distance': 10}, or a Grouped or model whose edges "
            f"to reuse. Received: bins={bins!r}"
        )
        raise BinomlabError(msg)
    unknown = [c for c in bins if c not in features]
    if unknown:
        raise ColumnNotFoundError.from_missing_and_available(
            unknown, list(features), role="binned feature"
        )
    resolved: dict[str, BinEdges] = {}
    quantile_cols: dict[str, int] = {}
    for column, spec in bins.items():
        if not schema[column].is_numeric():
            msg = (
                f"Cannot bin feature {column!r} of dtype {schema[column]}: "
                "bins need a numeric column."
            )
            raise BinomlabError(msg)
        if isinstance(spec, bool) or not isinstance(spec, int | Sequence):
            msg = (
                f"bins[{column!r}] must be a number of quantile bins (int >= 1) or a list of "
                f"edges. Received: {spec!r}"
            )
            raise BinomlabError(msg)
        if isinstance(spec, int):
            if spec < 1:
                msg = f"bins[{column!r}] must be at least 1. Received: {spec}"
                raise BinomlabError(msg)
            quantile_cols[column] = spec
        else:
            resolved[column] = _check_edges(column, spec)
    if quantile_cols:
        exprs = [
            pl.col(c)
            .cast(pl.Float64)
            .fill_nan(None)
            .quantile([j / q for j in range(1, q)] or [0.5], interpolation="linear")
            .alias(c)
            for c, q in quantile_cols.items()
        ]
        row = lf.select(exprs).collect(engine="streaming").row(0, named=True)
        for c, q in quantile_cols.items():
            inner = sorted({float(v) for v in row[c] if v is not None}) if q > 1 else []
            resolved[c] = (-math.inf, *inner, math.inf)
    return {c: resolved[c] for c in bins}


def _bin_expr(column: str, edges: BinEdges) -> pl.Expr:
    labels = bin_labels(edges)
    dtype = pl.Enum([*labels, *_SENTINELS])
    # The last edge is closed: nudge it up so [a, b) with b just above the edge holds it.
    breaks = [*edges[:-1], math.nextafter(edges[-1], math.inf)]
    finite = [e for e in breaks if not math.isinf(e)]
    value = pl.col(column).cast(pl.Float64)
    if finite:
        binned = value.bin_intervals(finite, labels=_labels_for(edges, labels)).cast(dtype)
    else:  # a single bin from -inf to inf
        binned = pl.when(value.is_null()).then(None).otherwise(pl.lit(labels[0], dtype=dtype))
    return pl.when(value.is_nan()).then(pl.lit(_NAN, dtype=dtype)).otherwise(binned).alias(column)


def _labels_for(edges: BinEdges, labels: list[str]) -> list[str]:
    """Labels for ``bin_intervals``: sentinels for the open outer intervals that exist."""
    out = list(labels)
    if not math.isinf(edges[0]):
        out.insert(0, _BELOW)
    if not math.isinf(edges[-1]):
        out.append(_ABOVE)
    return out


def apply_bins(data: pl.LazyFrame | pl.DataFrame, bins: Mapping[str, BinEdges]) -> pl.LazyFrame:
    """Replace each binned column by its bin label (an Enum in bin order), lazily.

    Values outside explicit edges and NaN get sentinel labels (``"<below>"``, ``"<above>"``,
    ``"<NaN>"``); :func:`check_binned` turns those into errors once the (small) result is in
    memory, so the binning itself stays a single streaming pass.
    """
    lf = data.lazy()
    if not bins:
        return lf
    return lf.with_columns(_bin_expr(c, edges) for c, edges in bins.items())


def check_binned(
    frame: pl.DataFrame, bins: Mapping[str, BinEdges], *, source: pl.LazyFrame | None = None
) -> pl.DataFrame:
    """Raise on values that fell outside the edges or were NaN; cast bins to their final Enum.

    ``frame`` holds binned columns produced by :func:`apply_bins`. ``source`` is the
    unbinned data, read again only on the error path to quote an offending value.

    Raises
    ------
    BinomlabError
        A binned column holds NaN or a value outside its explicit edges.
    """
    for column, edges in bins.items():
        bad = frame.filter(pl.col(column).cast(pl.String).is_in(_SENTINELS))
        if bad.height:
            kinds = set(bad[column].cast(pl.String).to_list())
            if _NAN in kinds:
                msg = (
                    f"Feature {column!r} holds NaN, which cannot be binned. Fill or filter it "
                    f"first, e.g. pl.col({column!r}).fill_nan(None) to make it a null group."
                )
                raise BinomlabError(msg)
            example = ""
            if source is not None:
                lo, hi = edges[0], edges[-1]
                value = pl.col(column).cast(pl.Float64)
                first = (
                    source.select(pl.col(column))
                    .filter((value < lo) | (value > hi))
                    .head(1)
                    .collect()
                )
                if first.height:
                    example = f" (e.g. {first.item()!r})"
            msg = (
                f"Feature {column!r} has values outside its bin edges "
                f"[{_format_edge(edges[0])}, {_format_edge(edges[-1])}]{example}. "
                f"Widen the edges, e.g. start with float('-inf') or end with float('inf')."
            )
            raise BinomlabError(msg)
    return frame.with_columns(pl.col(c).cast(pl.Enum(bin_labels(e))) for c, e in bins.items())
