"""``bl.widgets``: the Lab notebook app and its panels (needs ipywidgets 8).

``Lab(train, val)`` shows the data, trains models in a background thread, compares them,
draws their calibration and exports them. Every panel also works on its own, and all state
lives in plain Python objects (:class:`LabState`, the panels' attributes) that tests and
notebooks can read.
"""

from __future__ import annotations

try:
    import ipywidgets  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    msg = "binomlab.widgets needs ipywidgets 8. Install it with: pip install 'binomlab[widgets]'"
    raise ImportError(msg) from err

from binomlab.widgets.calibration_panel import CalibrationPanel
from binomlab.widgets.compare_panel import ComparePanel
from binomlab.widgets.data_panel import DataPanel
from binomlab.widgets.export_panel import ExportPanel
from binomlab.widgets.lab import Lab
from binomlab.widgets.state import LabState
from binomlab.widgets.train_panel import TrainPanel

__all__ = [
    "CalibrationPanel",
    "ComparePanel",
    "DataPanel",
    "ExportPanel",
    "Lab",
    "LabState",
    "TrainPanel",
]
