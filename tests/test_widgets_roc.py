"""The Calibration tab's ROC view draws what ``bl.roc_curve`` and ``bl.plot_roc`` compute."""

from __future__ import annotations

import numpy as np
import pytest

import binomlab as bl
from binomlab.testing import synthetic_rows

pytest.importorskip("ipywidgets")

from binomlab.widgets import Lab


@pytest.fixture(scope="module")
def split() -> tuple[bl.Grouped, bl.Grouped]:
    rows = synthetic_rows(20_000, seed=3)
    grouped = bl.group(rows, ["colour", "size"], "y")
    return grouped.split(0.3, seed=1)


def test_roc_view_draws_bl_roc_curve_for_the_selected_models(split) -> None:
    train, val = split
    glm = bl.fit(train, backend="reference")
    noisy = np.clip(glm.predict_proba(val) + np.linspace(-0.05, 0.05, len(val)), 0, 1)
    lab = Lab(train, val, models={"glm": glm, "noisy": noisy})
    view = lab.calibration_panel.roc
    assert view.last_error is None, view.last_error
    assert set(view.tables) == {"glm", "noisy"}
    for name, model in {"glm": glm, "noisy": noisy}.items():
        assert view.tables[name].equals(bl.roc_curve(val, model))
        line = next(li for li in view.axes.lines if li.get_label().startswith(f"{name}: AUC"))
        np.testing.assert_allclose(line.get_xdata(), view.tables[name]["fpr"])
        np.testing.assert_allclose(line.get_ydata(), view.tables[name]["tpr"])
    lab.state.select(["glm"])
    assert set(view.tables) == {"glm"}
    lab.state.select([])
    assert view.tables == {} and "Select one or more models" in view.view.value


def test_roc_view_shows_an_error_not_a_traceback(split) -> None:
    train, val = split
    lab = Lab(train, val, models={"short": np.full(3, 0.5)})
    view = lab.calibration_panel.roc
    assert isinstance(view.last_error, bl.InvalidProbabilityError)
    assert "binomlab-error" in view.error.value
