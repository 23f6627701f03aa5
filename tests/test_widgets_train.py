"""The Train tab as a model-comparison workbench: overlaid curves, the features and their
encoding, and every training option, driven by setting widget values and clicking.

Every assertion is on plain state (the panel's curve data, the fitted models, the SVG the
panel shows) and compared with what ``bl.fit`` and ``bl.group`` give directly.
"""

from __future__ import annotations

import html
import re
import threading

import numpy as np
import polars as pl
import pytest

pytest.importorskip("ipywidgets")

import binomlab as bl
from binomlab.binning import bin_labels
from binomlab.testing import synthetic_rows
from binomlab.widgets import Lab, TrainPanel, train_panel
from binomlab.widgets.curves import nll_text, plural
from binomlab.widgets.train_panel import MAX_CATEGORY_VALUES

BACKENDS = bl.backends.available(check=True)
LIGHTNING = pytest.mark.skipif("lightning" not in BACKENDS, reason="needs binomlab-lightning")
FEATURES = ["colour", "size", "flag"]  # a string, an integer (1 to 5) and a bool


@pytest.fixture(scope="module")
def split() -> tuple[bl.Grouped, bl.Grouped]:
    g = bl.group(synthetic_rows(), FEATURES, "y")
    return g.split(0.25, seed=0)


def _train(panel: TrainPanel, *, timeout: float = 120) -> str | None:
    """Click Train, wait for the run to end and return the name of the model it added.

    Fails with the run's exception when the run failed.
    """
    panel.train_button.click()
    assert panel.wait(timeout)
    assert panel.last_error is None, panel.last_error
    return panel.last_name


def _reference(split, **kwargs) -> tuple[Lab, TrainPanel]:
    lab = Lab(*split, **kwargs)
    panel = lab.train_panel
    panel.backend.value = "reference"
    return lab, panel


def _drawn(panel: TrainPanel, element: str, css: str) -> dict[str, list[str]]:
    """``{run name: [the element's tag]}`` of the SVG's ``<element class="css" ...>``."""
    out: dict[str, list[str]] = {}
    for tag in re.findall(rf'<{element} class="{css}"[^>]*>', panel.curve_view.value):
        out.setdefault(re.search(r'data-run="([^"]*)"', tag).group(1), []).append(tag)
    return out


def _best_dots(panel: TrainPanel) -> dict[str, int]:
    return {
        name: int(re.search(r'data-epoch="(\d+)"', tags[0]).group(1))
        for name, tags in _drawn(panel, "circle", "best").items()
    }


def _hold_at_batch(panel, epoch: int, batch: int) -> tuple[threading.Event, threading.Event]:
    """Add a batch callback that holds ``panel``'s run at ``(epoch, batch)``: the first event
    is set when it is reached, the run goes on when the second is set (30 s at most)."""
    reached, release = threading.Event(), threading.Event()

    def hold(e: int, b: int, batches: int) -> None:
        if (e, b) == (epoch, batch):
            reached.set()
            release.wait(30)

    panel.batch_callbacks.append(hold)
    return reached, release


# -- the curves --------------------------------------------------------------------------------


def test_two_runs_overlay_with_their_best_epochs_marked(split) -> None:
    lab, panel = _reference(split)
    first = _train(panel)  # newton
    panel.optimizer.value = "lbfgs"
    second = _train(panel)
    assert (first, second) == ("logistic · reference", "logistic · reference · lbfgs")
    models = [lab.models[first], lab.models[second]]
    # both runs' rows stay, each equal to its model's history
    assert list(panel.curves) == [first, second]
    for name, model in zip((first, second), models, strict=True):
        rows = panel.curves[name]
        assert [r["epoch"] for r in rows] == model.history["epoch"].to_list()
        assert [r["train_nll"] for r in rows] == model.history["train_nll"].to_list()
        assert [r["val_nll"] for r in rows] == model.history["val_nll"].to_list()
    assert panel.curve == panel.curves[second]  # the current run, as before
    # one solid train and one dashed val line per run, and a dot on each best epoch
    assert panel.curve_view.value.count("<polyline") == 4
    assert set(_drawn(panel, "polyline", "train")) == {first, second}
    assert all('stroke-dasharray="' in t[0] for t in _drawn(panel, "polyline", "val").values())
    assert not any("stroke-dasharray" in t[0] for t in _drawn(panel, "polyline", "train").values())
    best = {first: models[0].best_epoch_, second: models[1].best_epoch_}
    assert panel.best_epochs == best == _best_dots(panel)
    colours = {re.search(r'stroke="(#\w+)"', t[0]).group(1)
               for t in _drawn(panel, "polyline", "train").values()}  # fmt: skip
    assert len(colours) == 2  # each run its own colour
    # the caption names each run with its best epoch and the NLLs there (4 significant digits)
    legend = panel.curve_view.value.split("binomlab-curve-legend", 1)[1]
    for name, model in zip((first, second), models, strict=True):
        kept = model.kept_epoch()
        assert name in legend
        assert f"iteration {kept['epoch']} of {model.epochs_}" in legend
        assert nll_text(kept["val_nll"]) in legend
    assert "NLL per trial" in panel.curve_view.value
    # the models' toggles, ticked
    assert list(panel.run_toggles) == [first, second]
    assert all(box.value for box in panel.run_toggles.values())


def test_x_axis_follows_the_longest_run_not_the_budget(split) -> None:
    lab, panel = _reference(split)
    newton = _train(panel)  # a budget of 100 iterations, converged in a few
    budget = panel.progress.max
    assert budget == 100
    runs = {newton: lab.models[newton].epochs_}
    x_lo, x_hi = panel.curve_limits["x"]
    assert x_lo == 0 and runs[newton] < x_hi <= runs[newton] + 1 < budget
    panel.optimizer.value = "lbfgs"  # 500
    lbfgs = _train(panel)
    runs[lbfgs] = lab.models[lbfgs].epochs_
    longest = max(runs.values())
    x_hi = panel.curve_limits["x"][1]
    assert longest < x_hi <= longest * 1.05 + 1
    assert x_hi < panel.progress.max == 500
    assert f'data-xmax="{x_hi:g}"' in panel.curve_view.value
    # the y-axis spans every NLL shown
    y_lo, y_hi = panel.curve_limits["y"]
    values = [v for rows in panel.curves.values() for r in rows
              for v in (r["train_nll"], r["val_nll"])]  # fmt: skip
    assert y_lo < min(values) and max(values) < y_hi
    # integer epoch ticks, inside the axis
    ticks = [int(t) for t in re.findall(r'text-anchor="middle" style="[^"]*">(\d+)</text>',
                                        panel.curve_view.value)]  # fmt: skip
    assert len(ticks) >= 3 and all(0 <= t <= x_hi for t in ticks)
    # hiding the longer run fits the axis to the other
    shorter = min(runs, key=runs.get)
    panel.run_toggles[max(runs, key=runs.get)].value = False
    assert panel.curve_limits["x"][1] <= runs[shorter] + 1


def test_the_x_axis_grows_with_a_run(split) -> None:
    train, val = split
    panel = TrainPanel(train, val, backend_names=["reference"])
    panel.optimizer.value = "lbfgs"
    panel.epochs.value = 400
    reached, release = threading.Event(), threading.Event()

    def hold_at_iteration_2(epoch, metrics):
        if epoch == 2:
            reached.set()
            release.wait(30)

    panel.callbacks.append(hold_at_iteration_2)
    panel.train_button.click()
    assert reached.wait(60)
    try:
        assert panel.running
        assert panel.curve_limits["x"] == (0.0, 3.0)  # two iterations and one of headroom
        (name,) = panel.best_epochs
        assert panel.best_epochs[name] == 2  # the last iteration, so far
        assert len(panel.curve) == 2
        panel.stop_button.click()
    finally:
        release.set()
    assert panel.wait(60)
    assert panel.last_model.stop_reason == "callback"
    assert panel.curve_limits["x"][1] < 10 < panel.progress.max


@LIGHTNING
def test_progress_moves_inside_an_epoch_and_stop_stops_there(split, monkeypatch) -> None:
    monkeypatch.setattr(train_panel, "REDRAW_SECONDS", 0.0)  # draw every step
    train, val = split
    panel = TrainPanel(train, val, backend_names=["lightning"])
    panel.model.value = "mlp"
    panel.hidden.value = "4"
    panel.optimizer.value = "adam"
    panel.batch_size.value = 1  # one group per step
    panel.epochs.value = 3
    steps = len(train)
    reached, release = threading.Event(), threading.Event()
    seen = []

    def hold_at(epoch, batch, batches):
        seen.append((epoch, batch, batches))
        if (epoch, batch) == (2, 5):
            reached.set()
            release.wait(30)

    panel.batch_callbacks.append(hold_at)
    panel.train_button.click()
    assert reached.wait(120)
    try:
        assert panel.progress.max == 3 * steps  # epochs × optimizer steps
        # the bar stands inside epoch 2: past epoch 1's steps, short of epoch 2's end
        assert panel.progress.value == steps + 5
        assert panel.progress.description == "epoch 1"  # the epochs finished
        match = re.search(r"epoch 2, batch ([\d,]+) of ([\d,]+)", panel.status.value)
        assert match and int(match[2].replace(",", "")) == steps
        assert int(match[1].replace(",", "")) == 5
        panel.stop_button.click()
    finally:
        release.set()
    assert panel.wait(60)
    model = panel.last_model
    assert model.stop_reason == "callback"
    assert seen[-1] == (2, 6, steps)  # stopped at the next step, not at the end of epoch 2
    assert model.epochs_ == 1 and model.best_epoch_ == 1
    assert bl.evaluate(val, model)["nll"] == pytest.approx(model.history["val_nll"][0], rel=1e-5)


def test_toggling_a_run_hides_its_curves(split) -> None:
    lab, panel = _reference(split)
    first = _train(panel)
    panel.optimizer.value = "lbfgs"
    second = _train(panel)
    panel.run_toggles[first].value = False
    assert set(_drawn(panel, "polyline", "train")) == {second}
    assert set(_drawn(panel, "polyline", "val")) == {second}
    assert set(_best_dots(panel)) == {second}
    assert "1 run hidden" in panel.curve_view.value
    assert first in panel.curves  # hidden, not forgotten
    panel.run_toggles[first].value = True
    assert set(_drawn(panel, "polyline", "train")) == {first, second}
    # a model removed from the Lab takes its curve with it
    lab.state.remove_model(first)
    assert list(panel.curves) == [second] and list(panel.run_toggles) == [second]
    assert set(_drawn(panel, "polyline", "train")) == {second}


def test_a_failed_run_keeps_its_curve(split) -> None:
    _, panel = _reference(split)

    def broken(epoch, metrics):
        if epoch == 2:
            raise RuntimeError("broke at iteration 2")

    panel.callbacks.append(broken)
    panel.train_button.click()
    assert panel.wait(60)
    assert isinstance(panel.last_error, RuntimeError)
    assert "binomlab-error" in panel.error.value and "broke at iteration 2" in panel.error.value
    assert list(panel.curves) == ["logistic · reference (failed)"]
    assert len(panel.curves["logistic · reference (failed)"]) == 2
    assert "failed" in panel.curve_view.value


def test_numbers_and_plurals_read_well() -> None:
    assert [plural(n, "epoch") for n in (0, 1, 2, 1000)] == [
        "0 epochs",
        "1 epoch",
        "2 epochs",
        "1,000 epochs",
    ]
    assert [nll_text(v) for v in (0.6123456, 1.234567, 0.0123456, None, float("nan"))] == [
        "0.6123",
        "1.235",
        "0.01235",
        "—",
        "n/a",
    ]


def test_status_line_numbers(split) -> None:
    _, panel = _reference(split)
    _train(panel)
    model = panel.last_model
    kept = model.kept_epoch()
    assert f"{plural(model.epochs_, 'iteration')}, stopped: converged" in panel.status.value
    assert f"val NLL {nll_text(kept['val_nll'])} " in panel.status.value
    assert not re.search(r"\d\.\d{5}", panel.status.value)  # no 5-decimal numbers


# -- the features and their encoding -----------------------------------------------------------


def test_the_features_chooser_passes_features(split) -> None:
    train, val = split
    lab, panel = _reference(split)
    assert list(panel.feature_boxes) == FEATURES
    assert "features" not in panel.fit_options()  # all of them: bl.fit's default
    panel.feature_boxes["flag"].value = False
    assert panel.fit_options()["features"] == ["colour", "size"]
    name = _train(panel)
    model = lab.models[name]
    assert model.features == ("colour", "size")
    direct = bl.fit(train, backend="reference", val=val, features=["colour", "size"])
    np.testing.assert_allclose(model.predict_proba(val), direct.predict_proba(val), rtol=1e-10)
    # no feature at all: refused beside the features, and on a click
    for box in panel.feature_boxes.values():
        box.value = False
    assert set(panel.problems()) == {"features"}
    assert "Tick at least one feature" in panel.field_errors["features"].value
    assert panel.train_button.disabled
    panel.train_button.click()
    assert not panel.running and isinstance(panel.last_error, bl.BinomlabError)
    assert "features: Tick at least one feature" in panel.error.value
    assert len(lab.models) == 1
    panel.feature_boxes["colour"].value = True
    assert panel.error.value == "" and not panel.train_button.disabled


def test_each_feature_shows_its_dtype_and_encodings(split) -> None:
    _, panel = _reference(split)
    values = {n: [v for _, v in d.options] for n, d in panel.encodings.items()}
    assert values == {
        "colour": ["levels"],
        "size": ["number", "category", "bins"],
        "flag": ["levels"],
    }
    # a feature with levels has nothing to choose; bins' count only for bins
    assert panel.encodings["colour"].disabled and panel.encodings["flag"].disabled
    assert not panel.encodings["size"].disabled
    assert panel.bin_counts["size"].disabled
    panel.encodings["size"].value = "bins"
    assert not panel.bin_counts["size"].disabled
    panel.feature_boxes["size"].value = False  # not trained on: nothing applies
    assert panel.encodings["size"].disabled and panel.bin_counts["size"].disabled
    panel.feature_boxes["size"].value = True
    panel.encodings["size"].value = "number"
    # the integer feature's reading is said, not silent
    assert "Read as numbers (standardised" in panel.encoding_note.value
    assert "<b>size</b>" in panel.encoding_note.value
    labels = {n: panel.feature_boxes[n].description for n in FEATURES}
    assert labels == {n: n for n in FEATURES}
    shown = {n: re.sub("<[^>]+>", "", w.value) for n, w in panel.feature_labels.items()}
    assert shown == {
        "colour": "String · 4 values",
        "size": "Int64 · 5 values",
        "flag": "Boolean · 2 values",
    }


def test_an_integer_feature_as_category_is_trained_as_levels(split) -> None:
    train, val = split
    lab, panel = _reference(split)
    panel.encodings["size"].value = "category"
    assert panel.problems() == {}
    assert "regrouped copies" in panel.encoding_note.value
    assert "unchanged" in panel.encoding_note.value
    name = _train(panel)
    model = lab.models[name]
    # the encoder has a level per value (the reference, 1, has no column)
    levels = [f"[{v}, {v + 1})" for v in range(1, 6)]
    assert model.encoder.levels()["size"] == levels
    size_terms = [t for t in model.encoder.terms() if t[0] == "size"]
    assert size_terms == [("size", label) for label in levels[1:]]
    assert [t for t in model.coefficients()["term"] if t.startswith("size")] == [
        f"size={label}" for label in levels[1:]
    ]
    # it is the fit on size as a string, predicting from the integer column
    as_text = [bl.from_counts(g.frame.with_columns(pl.col("size").cast(pl.String)), FEATURES)
               for g in split]  # fmt: skip
    direct = bl.fit(as_text[0], backend="reference", val=as_text[1])
    np.testing.assert_allclose(
        model.predict_proba(val), direct.predict_proba(as_text[1]), rtol=1e-8
    )
    assert model.n_params_ == direct.n_params_ == 1 + 3 + 4 + 1
    # the user's data is untouched, and the model joins the leaderboard on it
    assert lab.state.train is train and lab.state.val is val
    assert train.frame.schema["size"] == pl.Int64 and train.bins == {}
    row = lab.leaderboard.filter(pl.col("model") == name).row(0, named=True)
    assert row["nll"] == pytest.approx(bl.evaluate(val, model)["nll"], rel=1e-12)
    assert row["nll"] == pytest.approx(bl.evaluate(as_text[1], direct)["nll"], rel=1e-8)


def test_quantile_bins_are_those_bl_group_makes_from_the_raw_rows(split) -> None:
    train, val = split
    lab, panel = _reference(split)
    panel.encodings["size"].value = "bins"
    panel.bin_counts["size"].value = 3
    raw = bl.group(train.expand(), FEATURES, "y", bins={"size": 3})
    new_train, new_val = panel.training_data()
    assert new_train.bins == raw.bins
    assert new_train.equals(raw)  # the same groups as grouping the raw rows so
    assert new_val.trials == val.trials and len(new_val) < len(val)
    name = _train(panel)
    model = lab.models[name]
    assert model.bins == raw.bins
    assert model.encoder.levels()["size"] == bin_labels(raw.bins["size"])
    assert "3 quantile bins" in panel.encoding_note.value
    assert f"{len(train):,} → {plural(len(raw), 'group')}" in panel.encoding_note.value
    assert lab.leaderboard.filter(pl.col("model") == name).height == 1


# -- the training options ----------------------------------------------------------------------


def test_weight_decay_reaches_the_fitted_config(split) -> None:
    lab, panel = _reference(split)
    assert "weight_decay" not in panel.fit_options()  # 0: the maximum-likelihood fit
    panel.weight_decay.value = 0.01
    assert panel.fit_options()["weight_decay"] == 0.01
    name = _train(panel)
    assert lab.models[name].config.weight_decay == 0.01


def test_options_that_do_not_apply_are_disabled(split) -> None:
    _, panel = _reference(split)
    assert panel.model.value == "logistic"
    assert panel.hidden.disabled and panel.activation.disabled and panel.dropout.disabled
    assert panel.effective_optimizer() == "newton"
    assert panel.early_stopping.disabled and panel.patience.disabled
    assert panel.lr.disabled and panel.batch_size.disabled
    assert not panel.weight_decay.disabled
    # the combination choices: without the beta-binomial there is no φ to choose
    assert list(panel.loss.options) == ["binomial"]
    assert panel.phi.disabled and [v for _, v in panel.phi.options] == ["scalar"]
    # a hidden option's value is not passed on
    panel.early_stopping.value = True
    assert "early_stopping" not in panel.fit_options()
    panel.dropout.value = 0.5
    assert panel.fit_options()["model"] == bl.Logistic()


@LIGHTNING
def test_mlp_options_reach_the_fitted_model(split) -> None:
    lab = Lab(*split)
    panel = lab.train_panel
    panel.backend.value = "lightning"
    panel.model.value = "mlp"
    assert not (panel.hidden.disabled or panel.activation.disabled or panel.dropout.disabled)
    panel.hidden.value = "6"
    panel.activation.value = "tanh"
    panel.dropout.value = 0.1
    panel.optimizer.value = "adam"
    assert not panel.early_stopping.disabled and panel.patience.disabled
    panel.early_stopping.value = True
    assert not panel.patience.disabled
    panel.patience.value = 2
    panel.epochs.value = 5
    panel.lr.value = 0.05
    panel.batch_size.value = 32
    panel.weight_decay.value = 1e-4
    panel.seed.value = 1
    assert panel.problems() == {}
    name = _train(panel, timeout=300)
    model = lab.models[name]
    assert model.spec == bl.MLP(hidden=(6,), activation="tanh", dropout=0.1)
    assert (model.config.early_stopping, model.config.weight_decay) == (2, 1e-4)
    assert (model.config.lr, model.config.batch_size, model.config.seed) == (0.05, 32, 1)
    assert model.epochs_ <= 5
    # the dot is on the epoch whose weights the model kept (the lowest val NLL)
    assert panel.best_epochs[name] == model.best_epoch_ == _best_dots(panel)[name]
    best = model.history.filter(pl.col("epoch") == model.best_epoch_)["val_nll"].item()
    assert best == model.history["val_nll"].min()
    assert f"epoch {model.best_epoch_} of {model.epochs_}" in panel.curve_view.value


BAD_VALUES = [
    pytest.param("dropout", 1.5, "Expected dropout in [0, 1)", "mlp", id="dropout"),
    pytest.param("dropout", -0.1, "Expected dropout in [0, 1)", "mlp", id="dropout-negative"),
    pytest.param("weight_decay", -1.0, "weight_decay", "logistic", id="weight-decay"),
    pytest.param("patience", 0, "Expected early_stopping to be a positive integer", "mlp",
                 id="patience"),
]  # fmt: skip
NEEDS_MLP = [n for n in BACKENDS if "mlp" in bl.backends.get(n).specs]


@pytest.mark.parametrize(("field", "bad", "message", "model"), BAD_VALUES)
def test_bad_values_show_an_error_not_a_traceback(split, field, bad, message, model) -> None:
    if model == "mlp" and not NEEDS_MLP:
        pytest.skip("the MLP needs a plugin backend")
    lab = Lab(*split)
    panel = lab.train_panel
    panel.backend.value = NEEDS_MLP[0] if model == "mlp" else "reference"
    panel.model.value = model
    if field == "patience":
        panel.optimizer.value = "adam"
        panel.early_stopping.value = True
    widget = getattr(panel, field)
    good = widget.value
    widget.value = bad
    assert widget.value == bad  # kept as typed, not clamped
    key = "early_stopping" if field == "patience" else field
    assert set(panel.problems()) == {key}
    assert message in panel.field_errors[key].value
    assert panel.train_button.disabled
    panel.train_button.click()
    assert not panel.running
    assert isinstance(panel.last_error, bl.BinomlabError)
    assert "binomlab-error" in panel.error.value and message in panel.error.value
    assert lab.models == {} and lab.state.runs == [] and panel.curves == {}
    widget.value = good
    assert panel.problems() == {} and panel.error.value == ""
    assert not panel.train_button.disabled


def test_bad_encodings_show_an_error_not_a_traceback(split) -> None:
    lab, panel = _reference(split)
    panel.encodings["size"].value = "bins"
    panel.bin_counts["size"].value = 0
    assert panel.bin_counts["size"].value == 0
    assert set(panel.problems()) == {"features"}
    message = "Expected a number of bins >= 2 for 'size' (one bin is a constant"
    assert panel.problems()["features"].startswith(message)
    assert html.escape(message) in panel.field_errors["features"].value
    panel.train_button.click()
    assert isinstance(panel.last_error, bl.BinomlabError) and lab.models == {}
    panel.bin_counts["size"].value = 1
    assert panel.problems()["features"].startswith(message)
    distinct = split[0].frame["size"].n_unique()
    panel.bin_counts["size"].value = distinct + 1  # more bins than values
    assert panel.problems()["features"] == (
        f"'size' has {distinct} distinct values, fewer than the {distinct + 1} bins asked for. "
        "Ask for at most that many, or encode it as a category."
    )
    panel.bin_counts["size"].value = 2
    assert panel.problems() == {} and panel.last_error is None
    # an integer feature too wide for a level per value
    rng = np.random.default_rng(0)
    wide = pl.DataFrame(
        {"id": rng.integers(0, 5 * MAX_CATEGORY_VALUES, 300), "y": rng.random(300) < 0.5}
    )
    panel = TrainPanel(bl.group(wide, ["id"], "y"), backend_names=["reference"])
    panel.encodings["id"].value = "category"
    assert "too many for a level each" in panel.problems()["features"]
    assert panel.train_button.disabled
    panel.encodings["id"].value = "bins"
    assert panel.problems() == {}


@LIGHTNING
def test_a_run_stopped_inside_its_first_epoch_adds_no_model(split) -> None:
    train, val = split
    lab = Lab(train, val)
    panel = lab.train_panel
    panel.backend.value = "lightning"
    panel.model.value = "mlp"
    panel.hidden.value = "4"
    panel.batch_size.value = 1
    reached, release = _hold_at_batch(panel, 1, 3)
    panel.train_button.click()
    assert reached.wait(120)
    panel.stop_button.click()
    release.set()
    assert panel.wait(60)
    assert lab.models == {} and panel.curves == {}
    assert "stopped before its first epoch ended, so no model was added" in panel.status.value
    assert panel.state.runs[-1]["error"].startswith("stopped before its first epoch ended")


def test_warnings_of_a_run_reach_the_status_line() -> None:
    # a level whose every trial succeeds: the logistic MLE does not exist
    frame = pl.DataFrame(
        {"g": ["a", "a", "b", "b", "c", "c"], "n": [10, 12, 9, 11, 8, 7], "k": [10, 12, 3, 4, 2, 5]}
    )
    data = bl.from_counts(frame, ["g"])
    panel = TrainPanel(data, backend_names=["reference"])
    with pytest.warns(bl.PerfectSeparationWarning):
        _train(panel)
    assert "binomlab-warning" in panel.status.value
    assert "PerfectSeparationWarning" in panel.status.value


@LIGHTNING
def test_embeddings_from_the_train_form(split) -> None:
    lab = Lab(*split)
    panel = lab.train_panel
    panel.backend.value = "reference"
    assert panel.embed.disabled  # logistic only, no codes
    panel.backend.value = "lightning"
    panel.model.value = "logistic"
    assert panel.embed.disabled
    panel.model.value = "mlp"
    assert not panel.embed.disabled
    panel.hidden.value = "4"
    panel.embed.value = "wide"
    assert "Expected embeddings to be empty (none), auto" in panel.problems()["embed"]
    assert panel.train_button.disabled
    panel.embed.value = "0"
    assert "embed" in panel.problems()
    panel.embed.value = "auto"
    assert panel.problems() == {}
    assert panel.fit_options()["model"] == bl.MLP(hidden=(4,), embed="auto")
    panel.epochs.value = 2
    name = _train(panel, timeout=300)
    assert lab.models[name].spec.embed == "auto" and "embed=auto" in name


@pytest.mark.skipif("lightgbm" not in bl.backends.available(), reason="binomlab-lightgbm")
def test_boosting_disables_weight_decay_which_it_does_not_take(split) -> None:
    """bl.fit's boosting takes no weight decay (the trees' L2 is the spec's): the field is
    disabled for boosted trees, not left open to a value the run would silently drop, and
    enabled again for a network."""
    train, val = split
    panel = TrainPanel(train, val)
    panel.backend.value = "lightgbm"
    panel.model.value = "gbdt"
    assert panel.effective_optimizer() == "boosting"
    assert panel.weight_decay.disabled
    assert "weight_decay" not in panel.fit_options()
    panel.backend.value = "reference"
    panel.model.value = "logistic"
    assert not panel.weight_decay.disabled


@pytest.mark.skipif("lightgbm" not in bl.backends.available(), reason="binomlab-lightgbm")
def test_boosting_progress_counts_rounds_not_batches(split, monkeypatch) -> None:
    """Boosted trees grow ⌈trees / epochs⌉ rounds an epoch: the bar moves by rounds and the
    status line counts boosting rounds (it has no batches)."""
    monkeypatch.setattr(train_panel, "REDRAW_SECONDS", 0.0)  # draw every step
    train, val = split
    panel = TrainPanel(train, val, backend_names=["lightgbm"])
    panel.model.value = "gbdt"
    panel.trees.value, panel.leaves.value = 40, 4
    panel.epochs.value = 4  # 10 rounds an epoch
    reached, release = _hold_at_batch(panel, 2, 3)
    panel.train_button.click()
    assert reached.wait(120)
    try:
        assert panel.progress.max == 40
        assert panel.progress.value == 13  # epoch 1's 10 rounds and 3 of epoch 2's
        assert "epoch 2, boosting round 3 of 10" in panel.status.value
        assert "batch" not in panel.status.value
    finally:
        release.set()
    assert panel.wait(60)
    assert panel.last_error is None, panel.last_error
    assert panel.last_model.epochs_ == 4
