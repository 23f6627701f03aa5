"""A model keeps one colour in every view of the Lab — its training curve, the leaderboard's
swatch, the CORP overlay and small multiples, the bias and ROC plots, and the report — whatever
else is selected, renamed or deleted.

Every assertion reads the colour matplotlib drew (or the SVG / HTML the panel shows) and
compares it with the state's colour of that model.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import binomlab as bl
from binomlab._colors import MODEL_COLORS, checked_colors, model_colors
from binomlab.testing import synthetic_rows

pytest.importorskip("ipywidgets")

from matplotlib.colors import to_hex

from binomlab.widgets import Lab
from binomlab.widgets.report import report_html


@pytest.fixture(scope="module")
def split() -> tuple[bl.Grouped, bl.Grouped]:
    rows = synthetic_rows(20_000, seed=3)
    return bl.group(rows, ["colour", "size"], "y").split(0.3, seed=1)


@pytest.fixture(scope="module")
def models(split) -> dict[str, object]:
    train, val = split
    glm = bl.fit(train, backend="reference")
    p = glm.predict_proba(val)
    return {
        "glm": glm,
        "noisy": np.clip(p + np.linspace(-0.05, 0.05, len(val)), 0, 1),
        "flat": np.full(len(val), val.rate),
        "squashed": 0.5 + 0.5 * (p - 0.5),
    }


def _drawn(axes, names) -> dict[str, str]:
    """``{model: colour}`` of the lines of ``axes`` labelled with a model's name (an ROC
    label starts with it)."""
    out = {}
    for line in axes.lines:
        label = line.get_label()
        for name in names:
            if label == name or label.startswith(f"{name}: AUC"):
                out[name] = to_hex(line.get_color())
    return out


def _bias_drawn(axes) -> dict[str, str]:
    return {c.get_label(): to_hex(c.lines[0].get_color()) for c in axes.containers}


def test_every_plot_of_the_calibration_tab_draws_each_model_in_its_colour(split, models) -> None:
    train, val = split
    lab = Lab(train, val, models=models)
    state, panel = lab.state, lab.calibration_panel
    assert list(state.colours.values()) == model_colors(4)
    assert len(set(state.colours.values())) == 4
    for chosen in (["glm", "noisy", "flat", "squashed"], ["flat", "squashed"], ["squashed"]):
        state.select(chosen)
        expected = {name: state.colours[name] for name in chosen}
        assert _drawn(panel.axes, chosen) == expected  # not the first colours again
        assert _bias_drawn(panel.bias.axes) == expected
        assert _drawn(panel.roc.axes, chosen) == expected
    state.select(list(models))
    panel.arrangement.value = "small"
    for cell, name in zip(panel.grid, models, strict=True):
        assert _drawn(cell, [name]) == {name: state.colours[name]}
        assert to_hex(cell.title.get_color()) == state.colours[name]


def test_a_colour_follows_its_model_through_renames_and_deletions(split, models) -> None:
    train, val = split
    lab = Lab(train, val, models=models)
    state = lab.state
    before = dict(state.colours)
    state.rename_model("noisy", "jittered")
    assert state.colours["jittered"] == before["noisy"]
    assert "noisy" not in state.colours
    assert _drawn(lab.calibration_panel.axes, ["jittered"]) == {"jittered": before["noisy"]}
    state.remove_model("glm")
    assert {n: state.colours[n] for n in ("flat", "squashed")} == {
        n: before[n] for n in ("flat", "squashed")
    }
    # the freed colour goes to the next model; the others keep theirs
    added = state.add_model("again", models["flat"])
    assert state.colours[added] == before["glm"]
    with pytest.raises(bl.BinomlabError, match="No model named 'glm'"):
        state.colours_of(["glm"])


def test_the_leaderboard_and_the_report_show_each_models_colour(split, models) -> None:
    train, val = split
    lab = Lab(train, val, models=models)
    state = lab.state
    board = lab.compare_panel.board.value
    swatches = dict(
        (name, colour)
        for colour, name in re.findall(
            r'<span class="binomlab-swatch" style="color:(#[0-9a-f]{6})"[^>]*></span>'
            r"([^<]+)</td>",
            board,
        )
    )
    assert swatches == state.colours
    page = report_html(state)
    assert all(f'style="color:{colour}"' in page for colour in state.colours.values())


def test_a_training_curve_and_its_model_share_one_colour(split, models) -> None:
    train, val = split
    lab = Lab(train, val, models={"flat": models["flat"]})
    panel = lab.train_panel
    panel.backend.value = "reference"
    lab.state.remove_model("flat")  # frees the first colour: the run takes it
    panel.train_button.click()
    assert panel.wait(120)
    assert panel.last_error is None, panel.last_error
    name = panel.last_name
    (run,) = panel.curve_runs
    assert run.colour == lab.state.colours[name] == MODEL_COLORS[0]
    assert f'data-run="{name}" fill="none" stroke="{run.colour}"' in panel.curve_view.value
    # a second run while the first model exists takes the next free colour
    panel.train_button.click()
    assert panel.wait(120)
    second = panel.last_name
    assert lab.state.colours[second] == MODEL_COLORS[1]
    assert [r.colour for r in panel.curve_runs] == [MODEL_COLORS[0], MODEL_COLORS[1]]


def test_beyond_eighteen_models_the_colours_repeat_in_turn(split, models) -> None:
    train, val = split
    state = Lab(train, val).state
    names = [state.add_model(f"m{i}", models["flat"]) for i in range(40)]
    colours = state.colours_of(names)
    assert colours == [MODEL_COLORS[i % 18] for i in range(40)]
    state.remove_model("m5")  # the colour held least often now: the next model takes it
    assert state.colours[state.add_model("again", models["flat"])] == MODEL_COLORS[5]


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (5, "a list of colours"),
        (iter(["red", "blue"]), "a list of colours"),
        ({"glm": "red", "flat": "blue"}, "a list of colours"),
        (["red", "notacolour"], r"colors\[1\] to be a matplotlib colour"),
        ([None, None], r"colors\[0\] to be a matplotlib colour"),
        (["red"], r"one colour per model \(2\)"),
    ],
)
def test_bad_colours_are_refused_before_anything_is_drawn(split, models, bad, match) -> None:
    import matplotlib.pyplot as plt

    val = split[1]
    two = {"glm": models["glm"], "flat": models["flat"]}
    try:
        for draw in (
            lambda ax: bl.plot_calibration(val, two, ax=ax, colors=bad),
            lambda ax: bl.plot_roc(val, two, ax=ax, colors=bad),
            lambda ax: bl.plot_bias(val, two, "colour", ax=ax, colors=bad),
        ):
            _, ax = plt.subplots()
            with pytest.raises(bl.BinomlabError, match=match):
                draw(ax)
            assert len(ax.lines) == len(ax.containers) == 0  # the user's axes untouched
    finally:
        plt.close("all")


def test_colours_are_checked_one_per_model() -> None:
    assert checked_colors(None, 3) == list(MODEL_COLORS[:3])
    assert model_colors(20)[18:] == list(MODEL_COLORS[:2])
    assert "#7f7f7f" not in MODEL_COLORS and "#c7c7c7" not in MODEL_COLORS  # never grey
    assert len(set(MODEL_COLORS)) == len(MODEL_COLORS)
    with pytest.raises(bl.BinomlabError, match=r"one colour per model \(2\). Received: 1"):
        checked_colors(["red"], 2)
    with pytest.raises(bl.BinomlabError, match="a list of colours"):
        checked_colors("red", 1)
    assert checked_colors(("red", (0.1, 0.2, 0.5)), 2) == ["red", (0.1, 0.2, 0.5)]


def test_the_plot_functions_take_one_colour_per_model(split, models) -> None:
    import matplotlib.pyplot as plt

    val = split[1]

    two = {"glm": models["glm"], "flat": models["flat"]}
    colours = ["#000000", "#123456"]
    try:
        ax = bl.plot_roc(val, two, colors=colours)
        assert _drawn(ax, two) == dict(zip(two, colours, strict=True))
        ax = bl.plot_bias(val, two, "colour", colors=colours)
        assert _bias_drawn(ax) == dict(zip(two, colours, strict=True))
        with pytest.raises(bl.BinomlabError, match="one colour per model"):
            bl.plot_roc(val, two, colors=colours[:1])
        with pytest.raises(bl.BinomlabError, match="one colour per model"):
            bl.plot_bias(val, two, "colour", colors=colours * 2)
    finally:
        plt.close("all")
