"""``bl.widgets.Lab``: the five panels in tabs, sharing one :class:`LabState`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets

from binomlab.grouped import Grouped
from binomlab.widgets.calibration_panel import CalibrationPanel
from binomlab.widgets.compare_panel import ComparePanel
from binomlab.widgets.data_panel import DataPanel
from binomlab.widgets.export_panel import ExportPanel
from binomlab.widgets.state import LabState
from binomlab.widgets.train_panel import TrainPanel

__all__ = ["Lab"]

TITLES = ("Data", "Train", "Compare", "Calibration", "Export")


class Lab(widgets.VBox):
    """The notebook app: Data, Train, Compare, Calibration and Export tabs.

    Parameters
    ----------
    train
        The training groups.
    val
        Held-out groups: validation data of every run, and what models are compared and
        calibrated on (``train`` without them).
    models
        Models to compare from the start, ``{name: model}``.
    backend_names
        The backends the Train tab offers (default: every installed one).
    export_folder
        The Export tab's default folder.

    Attributes
    ----------
    state
        The :class:`LabState`: models, selection, training history.
    data_panel, train_panel, compare_panel, calibration_panel, export_panel
        The panels, each usable on its own as well.
    tabs
        The ``Tab`` holding them.
    """

    def __init__(
        self,
        train: Grouped,
        val: Grouped | None = None,
        *,
        models: Mapping[str, Any] | None = None,
        backend_names: list[str] | None = None,
        export_folder: str = "models",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.state = LabState(train, val, models=models)
        self.data_panel = DataPanel(state=self.state)
        self.train_panel = TrainPanel(state=self.state, backend_names=backend_names)
        self.compare_panel = ComparePanel(state=self.state)
        self.calibration_panel = CalibrationPanel(state=self.state)
        self.export_panel = ExportPanel(state=self.state, folder=export_folder)
        panels = (
            self.data_panel,
            self.train_panel,
            self.compare_panel,
            self.calibration_panel,
            self.export_panel,
        )
        self.tabs = widgets.Tab(children=panels, titles=TITLES, selected_index=1)
        self.add_class("binomlab-lab")
        self.children = (widgets.HTML("<b>binomlab Lab</b>"), self.tabs)

    @property
    def models(self) -> dict[str, Any]:
        """The models of the Lab, ``{name: model}``."""
        return self.state.models

    @property
    def leaderboard(self):
        """The Compare tab's leaderboard frame."""
        return self.compare_panel.table
