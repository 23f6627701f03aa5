"""One colour per model in every binomlab plot, so a model keeps its colour across them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

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
        ``colors`` is not a list or tuple of colours (a single string, a dict, a number), holds
        a different number of colours than there are models, or holds a value matplotlib
        does not read as a colour (checked before anything is drawn).
    """
    if colors is None:
        return model_colors(count)
    if isinstance(colors, str | Mapping) or not isinstance(colors, Sequence | np.ndarray):
        msg = (
            f"Expected colors to be a list of colours, one per model ({count}). "
            f"Received: {colors!r}"
        )
        raise BinomlabError(msg)
    if len(colors) != count:
        msg = f"Expected one colour per model ({count}). Received: {len(colors)} colours"
        raise BinomlabError(msg)
    from matplotlib.colors import is_color_like

    for i, colour in enumerate(colors):
        if colour is None or not is_color_like(colour):
            msg = (
                f"Expected colors[{i}] to be a matplotlib colour ('#1f77b4', 'red', "
                f"(0.1, 0.2, 0.5)). Received: {colour!r}"
            )
            raise BinomlabError(msg)
    return list(colors)
