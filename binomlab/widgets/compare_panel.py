"""The Compare tab: the leaderboard of every model in the Lab, with checkboxes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets
import polars as pl

from binomlab.compare import LEADERBOARD_SCHEMA
from binomlab.grouped import Grouped
from binomlab.widgets._render import frame_html
from binomlab.widgets.checklist import ModelChecklist
from binomlab.widgets.panel import Panel
from binomlab.widgets.state import LabState

__all__ = ["ComparePanel"]


class ComparePanel(Panel):
    """``bl.compare`` of every model on the held-out data, refreshed when a model is added.

    Parameters
    ----------
    data
        The groups to evaluate on; ignored when ``state`` is given.
    models
        ``{name: model}`` to compare (``Fitted``, ``Predictor`` or probabilities).
    state
        A :class:`LabState` shared with other panels (its ``eval_data`` is used).

    Attributes
    ----------
    table
        The leaderboard (``bl.compare``'s frame), best NLL first.
    checklist
        One checkbox per model: the selection the Calibration panel draws.
    last_error
        The exception of the last failed refresh (also shown), or None.
    """

    def __init__(
        self,
        data: Grouped | None = None,
        *,
        models: Mapping[str, Any] | None = None,
        state: LabState | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(state if state is not None else LabState(data, models=models), **kwargs)
        self.table = pl.DataFrame(schema=LEADERBOARD_SCHEMA)
        self.checklist = ModelChecklist(self.state, title="show in Calibration:", wrap=True)
        self.caption = widgets.HTML()
        self.board = widgets.HTML()
        self.board.add_class("binomlab-leaderboard")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _button: self.refresh())
        self.state.subscribe(self._on_state)
        self.children = (
            self.caption,
            self.board,
            self.checklist,
            self.refresh_button,
            self.error,
        )
        self.refresh()

    def _on_state(self, event: str) -> None:
        if event == "models":
            self.refresh()
        else:
            self.checklist.sync()

    def refresh(self) -> None:
        """Recompute the leaderboard and the checkboxes from the state's models."""
        self.checklist.sync()
        try:
            table = self.state.leaderboard()
            data = self.state.eval_data
        except Exception as err:
            self._show_error(err)
            return
        self._clear_error()
        self.table = table
        part = "validation" if self.state.val is not None else "given"
        self.caption.value = (
            f"{table.height} model(s) on the {part} data ({data.trials:,} trials, "
            f"{len(data):,} groups); metrics per trial, best NLL first."
        )
        shown = table.select(
            "model",
            "backend",
            "spec",
            "params",
            "nll",
            "brier",
            "auc",
            "ece",
            "dispersion",
            "seconds",
            "epochs",
        ).with_columns(  # a dispersion that is not defined shows why, not a bare NaN
            pl.when(pl.col("dispersion").is_nan())
            .then(pl.lit("n/a: ") + table["df_note"])
            .otherwise(pl.col("dispersion").round(4).cast(pl.String))
            .alias("dispersion")
        )
        self.board.value = frame_html(shown, css_class="binomlab-leaderboard-table")
