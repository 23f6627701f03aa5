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


def test_small_multiples_draw_one_corp_diagram_per_model(split) -> None:
    train, val = split
    glm = bl.fit(train, backend="reference")
    models = {
        "glm": glm,
        "noisy": np.clip(glm.predict_proba(val) + np.linspace(-0.05, 0.05, len(val)), 0, 1),
        "flat": np.full(len(val), val.rate),
        "squashed": 0.5 + 0.5 * (glm.predict_proba(val) - 0.5),
    }
    lab = Lab(train, val, models=models)
    panel = lab.calibration_panel
    panel.band.value = "none"  # no resampling: a quick redraw
    panel.arrangement.value = "small"
    assert panel.last_error is None, panel.last_error
    assert len(panel.grid) == 4 and {ax.get_title() for ax in panel.grid} == set(models)
    for ax in panel.grid:
        name = ax.get_title()
        (line,) = [li for li in ax.lines if li.get_label() == name]
        table = bl.reliability(val, models[name], bands=None)
        np.testing.assert_allclose(line.get_xdata(), table["predicted"])
        np.testing.assert_allclose(line.get_ydata(), table["recalibrated"])
    assert sum(ax.get_visible() for ax in panel.figure.axes if ax.get_title()) == 4
    panel.arrangement.value = "overlay"
    assert len(panel.grid) == 1 and panel.grid[0] is panel.axes
