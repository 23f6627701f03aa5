"""One colour per model in every binomlab plot, so a model keeps its colour across them."""

from __future__ import annotations

from typing import Any

__all__ = ["model_colors"]


def model_colors(count: int) -> list[Any]:
    """A distinct colour per model, never grey (the diagonal's colour): tab10 without its
    grey for up to nine models, tab20 without its greys beyond (repeating after 18)."""
    import matplotlib as mpl

    if count <= 9:
        return [c for i, c in enumerate(mpl.colormaps["tab10"].colors) if i != 7][:count]
    palette = [c for i, c in enumerate(mpl.colormaps["tab20"].colors) if i not in (14, 15)]
    return [palette[i % len(palette)] for i in range(count)]
