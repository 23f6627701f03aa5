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


def _overlaps(a, b) -> bool:
    """Whether two display-space boxes share any area."""
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_many_models_legends_go_under_the_plots_not_over_the_curves(split) -> None:
    """Five models: the CORP overlay, the bias and the ROC legends would cover the curves
    inside the axes; they are drawn under each figure, with every model's entry, and the
    figure grows so the axes keep their size. Two models keep the legend inside."""
    train, val = split
    subsets = [["colour"], ["size"], ["colour", "size"]]
    models = {
        f"logistic on {'+'.join(f)}": bl.fit(train, backend="reference", features=f)
        for f in subsets
    }
    glm = models["logistic on colour+size"]
    rng = np.random.default_rng(0)
    for i in range(2):
        noise = rng.uniform(-0.03, 0.03, len(val))
        models[f"noisy {i}"] = np.clip(glm.predict_proba(val) + noise, 0.01, 0.99)
    lab = Lab(train, val, models=models)
    panel = lab.calibration_panel
    panel.arrangement.value = "overlay"  # five models: one diagram each unless asked
    views = {"corp": panel, "bias": panel.bias, "roc": panel.roc}
    for name, view in views.items():
        assert view.last_error is None, (name, view.last_error)
        figure, axes = view.figure, view.axes
        assert axes.get_legend() is None, name
        (legend,) = figure.legends
        texts = [t.get_text() for t in legend.get_texts()]
        for model in models:
            assert any(t.startswith(model) for t in texts), (name, model, texts)
        figure.canvas.draw()
        assert not _overlaps(legend.get_window_extent(), axes.get_window_extent()), name
    assert panel.figure.get_size_inches()[1] > 5.5  # grown, not squeezed into 5.5 in

    lab.state.select(["noisy 0", "noisy 1"])
    for name, view in views.items():
        assert view.axes.get_legend() is not None and not view.figure.legends, name


def test_many_models_get_one_diagram_each_until_the_user_chooses(split) -> None:
    """More than MAX_OVERLAID models would hide each other's curves and bands on one CORP
    diagram: the tab draws one per model (as the report does) until the user picks an
    arrangement, which is then kept."""
    from binomlab.widgets.state import MAX_OVERLAID

    train, val = split
    glm = bl.fit(train, backend="reference")
    base = glm.predict_proba(val)
    rng = np.random.default_rng(1)
    models = {"glm": glm}
    for i in range(MAX_OVERLAID):
        models[f"noisy {i}"] = np.clip(base + rng.uniform(-0.03, 0.03, len(val)), 0.01, 0.99)
    lab = Lab(train, val, models=models)
    panel = lab.calibration_panel
    assert panel.last_error is None, panel.last_error
    assert panel.arrangement.value == "small"
    assert len(panel.grid) == len(models) == MAX_OVERLAID + 1
    lab.state.select(list(models)[:MAX_OVERLAID])
    assert panel.arrangement.value == "overlay" and panel.grid == [panel.axes]
    lab.state.select(list(models))
    assert panel.arrangement.value == "small"
    panel.arrangement.value = "overlay"  # the user's choice wins from now on
    assert panel.grid == [panel.axes] and len(lab.state.selected) == len(models)
    lab.state.select(list(models)[:2])
    lab.state.select(list(models))
    assert panel.arrangement.value == "overlay" and panel.grid == [panel.axes]
