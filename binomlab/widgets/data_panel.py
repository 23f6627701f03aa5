"""The Data tab: what the grouped data holds and how much grouping saved."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import polars as pl

from binomlab.grouped import Grouped
from binomlab.widgets._render import frame_html
from binomlab.widgets.state import LabState

__all__ = ["DataPanel", "data_summary", "feature_table"]


def data_summary(parts: dict[str, Grouped]) -> pl.DataFrame:
    """One row per named part: groups, trials, successes, success rate, compression."""
    return pl.DataFrame(
        [
            {
                "part": name,
                "groups": len(g),
                "trials": g.trials,
                "successes": g.successes,
                "rate": g.rate,
                "compression": g.compression,
            }
            for name, g in parts.items()
        ],
        schema={
            "part": pl.String,
            "groups": pl.Int64,
            "trials": pl.Int64,
            "successes": pl.Int64,
            "rate": pl.Float64,
            "compression": pl.Float64,
        },
    )


def feature_table(data: Grouped) -> pl.DataFrame:
    """One row per feature: its dtype (without parameters: ``Enum``, not its categories), its
    number of distinct values among the groups, and its number of bins if it was binned."""
    cardinalities = data.cardinalities()
    bins = data.bins
    return pl.DataFrame(
        {
            "feature": list(data.features),
            "dtype": [str(data.frame.schema[f].base_type()) for f in data.features],
            "cardinality": [cardinalities[f] for f in data.features],
            "binned": [f"{len(bins[f]) - 1} bins" if f in bins else "" for f in data.features],
        },
        schema={
            "feature": pl.String,
            "dtype": pl.String,
            "cardinality": pl.Int64,
            "binned": pl.String,
        },
    )


class DataPanel(widgets.VBox):
    """Groups, trials, success rate and compression of the data, and its features.

    Parameters
    ----------
    train, val
        The grouped data (``val`` optional); ignored when ``state`` is given.
    state
        A :class:`LabState` shared with other panels.

    Attributes
    ----------
    summary
        :func:`data_summary` of ``train`` (and ``val``).
    features
        :func:`feature_table` of ``train``.
    """

    def __init__(
        self,
        train: Grouped | None = None,
        val: Grouped | None = None,
        *,
        state: LabState | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.state = state if state is not None else LabState(train, val)
        data = self.state.train if self.state.train is not None else self.state.eval_data
        parts = {"train": data}
        if self.state.val is not None:
            parts["val"] = self.state.val
        self.summary = data_summary(parts)
        self.features = feature_table(data)
        total = data_summary({"all": data}).row(0, named=True)
        headline = (
            f"Training data: <b>{total['trials']:,}</b> raw rows (trials) in "
            f"<b>{total['groups']:,}</b> groups: <b>{total['compression']:,.1f}×</b> fewer "
            "rows to train on, with the same loss. "
            f"Success rate <b>{total['rate']:.2%}</b>."
        )
        self.headline = widgets.HTML(headline)
        self.summary_view = widgets.HTML(frame_html(self.summary, css_class="binomlab-data"))
        self.features_view = widgets.HTML(frame_html(self.features, css_class="binomlab-features"))
        self.children = (
            self.headline,
            widgets.HTML("<b>Parts</b>"),
            self.summary_view,
            widgets.HTML("<b>Features</b> (cardinality: distinct values among the groups)"),
            self.features_view,
        )
