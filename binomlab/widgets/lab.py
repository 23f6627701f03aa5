"""``bl.widgets.Lab``: the five panels in tabs, sharing one :class:`LabState`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from binomlab.grouped import Grouped
from binomlab.widgets._render import LAB_STYLE
from binomlab.widgets.calibration_panel import CalibrationPanel
from binomlab.widgets.compare_panel import ComparePanel
from binomlab.widgets.data_panel import DataPanel
from binomlab.widgets.export_panel import ExportPanel
from binomlab.widgets.report import ReportPanel, log_to_mlflow, write_report
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
    report_path
        The report file the "Write report" button writes by default.

    Attributes
    ----------
    state
        The :class:`LabState`: models, selection, training history.
    data_panel, train_panel, compare_panel, calibration_panel, export_panel
        The panels, each usable on its own as well.
    tabs
        The ``Tab`` holding them.
    report_panel
        Under the tabs: the report's file and its "Write report" button (:meth:`report`).
    """

    def __init__(
        self,
        train: Grouped,
        val: Grouped | None = None,
        *,
        models: Mapping[str, Any] | None = None,
        backend_names: list[str] | None = None,
        export_folder: str = "models",
        report_path: str = "report.html",
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
        self.report_panel = ReportPanel(self.state, path=report_path)
        self.add_class("binomlab-lab")
        title = widgets.HTML(f"{LAB_STYLE}<b>binomlab Lab</b>")
        self.children = (title, self.tabs, self.report_panel)

    @property
    def models(self) -> dict[str, Any]:
        """The models of the Lab, ``{name: model}``."""
        return self.state.models

    @property
    def leaderboard(self):
        """The Compare tab's leaderboard frame (:attr:`ComparePanel.table`): ``bl.compare``'s
        columns with their intervals, then each run's options; best NLL first."""
        return self.compare_panel.table

    def report(
        self, path: str | os.PathLike[str] = "report.html", *, overwrite: bool = False
    ) -> Path:
        """Write the Lab's report, one self-contained HTML page, and return its path.

        The data summary, the leaderboard with intervals and options, every run's NLL curve,
        the CORP calibration diagram(s) and the score decomposition
        (:func:`~binomlab.widgets.report.write_report`).

        Raises
        ------
        BinomlabError
            ``path`` exists and ``overwrite`` is False; no model; an unwritable path.
        """
        return write_report(self.state, path, overwrite=overwrite)

    def log_to_mlflow(self, experiment: str | None = None) -> list[str]:
        """Log every model as an MLflow run, in ``experiment`` (MLflow's active one when
        None): params the resolved training config, metrics the leaderboard's, tags backend
        and spec (:func:`~binomlab.widgets.report.log_to_mlflow`); the run ids.

        Raises
        ------
        BinomlabError
            ``mlflow`` is not installed (``pip install mlflow``), or there is no model.
        """
        return log_to_mlflow(self.state, experiment)
