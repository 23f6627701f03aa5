"""One colour per model in every binomlab plot, so a model keeps its colour across them."""

from __future__ import annotations

from collections.abc import Sequence

from binomlab.errors import BinomlabError

__all__ = ["MODEL_COLORS", "checked_colors", "model_colors"]

MODEL_COLORS = (
    # matplotlib's tab10 without its grey (the diagonal's colour) ...
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    # ... then the light halves of tab20's pairs, again without grey
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#dbdb8d",
    "#9edae5",
)
"""The model colours in the order they are handed out; a model's colour is its position
here (repeating after 18), in every plot and in the Lab's curves."""


def model_colors(count: int) -> list[str]:
    """The first ``count`` of :data:`MODEL_COLORS` (repeating after 18): a distinct colour
    per model, never grey."""
    return [MODEL_COLORS[i % len(MODEL_COLORS)] for i in range(count)]


def checked_colors(colors: Sequence[str] | None, count: int) -> list[str]:
    """``colors`` as a list of one colour per model, or :func:`model_colors` when None.

    Raises
    ------
    BinomlabError
        ``colors`` holds a different number of colours than there are models.
    """
    if colors is None:
        return model_colors(count)
    if isinstance(colors, str) or len(colors) != count:
        given = "a single string" if isinstance(colors, str) else f"{len(colors)} colours"
        msg = f"Expected one colour per model ({count}). Received: {given}"
        raise BinomlabError(msg)
    return list(colors)
