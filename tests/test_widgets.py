"""bl.widgets: the Lab driven as a user would, by setting widget values and clicking.

Every assertion is on plain state — models, the leaderboard frame, the progress bar, the
curve data, the matplotlib axes — and compared with the pure functions the panels wire up.
"""

from __future__ import annotations

import json
import math
import re
import threading

import numpy as np
import polars as pl
import pytest

pytest.importorskip("ipywidgets")

from helpers import imported_modules

import binomlab as bl
from binomlab.compare import INTERVAL_SCHEMA
from binomlab.testing import synthetic_rows
from binomlab.widgets import (
    CalibrationPanel,
    ComparePanel,
    DataPanel,
    ExportPanel,
    Lab,
    LabState,
    TrainPanel,
)

BACKENDS = bl.backends.available(check=True)
PLUGINS = [name for name in BACKENDS if name != "reference"]


@pytest.fixture(scope="module")
def split() -> tuple[bl.Grouped, bl.Grouped]:
    g = bl.group(synthetic_rows(), ["colour", "size", "flag"], "y")
    return g.split(0.25, seed=0)


@pytest.fixture(scope="module")
def glm(split) -> bl.Fitted:
    return bl.fit(split[0], backend="reference", val=split[1])


def _choose(panel: TrainPanel, backend: str, *, epochs: int) -> str:
    """Pick the backend and the model a user would: MLP with Adam where the backend has it,
    boosted trees where it only grows trees."""
    panel.backend.value = backend
    if "gbdt" in bl.backends.get(backend).specs and "mlp" not in bl.backends.get(backend).specs:
        panel.model.value = "gbdt"
        panel.trees.value, panel.leaves.value = 2 * epochs, 4
        spec = f"gbdt:{2 * epochs},4"
    elif "mlp" in bl.backends.get(backend).specs:
        panel.model.value = "mlp"
        panel.hidden.value = "8, 4"
        panel.optimizer.value = "adam"
        panel.lr.value = 0.05
        panel.batch_size.value = 16
        spec = "mlp:8,4"
    else:
        panel.model.value = "logistic"
        spec = "logistic"
    panel.epochs.value = epochs
    panel.seed.value = 3
    return spec


def _train(panel: TrainPanel, *, timeout: float = 120) -> str | None:
    """Click Train, wait for the run to end and return the name of the model it added.

    Fails with the run's exception when the run failed.
    """
    panel.train_button.click()
    assert panel.wait(timeout)
    assert panel.last_error is None, panel.last_error
    return panel.last_name


def test_import_binomlab_does_not_import_widgets() -> None:
    assert imported_modules("import binomlab", ("ipywidgets", "matplotlib")) == []
    statement = (
        "import binomlab as bl, binomlab.widgets; assert bl.widgets.Lab is bl.widgets.lab.Lab"
    )
    assert imported_modules(statement, ("ipywidgets",)) == ["ipywidgets"]


def test_data_panel_numbers(split) -> None:
    train, val = split
    panel = DataPanel(train, val)
    rows = {r["part"]: r for r in panel.summary.iter_rows(named=True)}
    assert rows["train"] == {
        "part": "train",
        "groups": len(train),
        "trials": 3000,
        "successes": train.successes,
        "rate": pytest.approx(train.successes / 3000),
        "compression": pytest.approx(3000 / len(train)),
    }
    assert rows["val"]["trials"] == 1000
    assert dict(panel.features.select("feature", "cardinality").iter_rows()) == {
        "colour": 4,
        "size": 5,
        "flag": 2,
    }
    assert "3,000</b> raw rows" in panel.headline.value
    assert "<td>colour</td><td>String</td><td>4</td>" in panel.features_view.value
    binned = bl.group(synthetic_rows(), ["colour", "size"], "y", bins={"size": [1, 3, 6]})
    row = DataPanel(binned).features.row(1, named=True)
    assert row == {"feature": "size", "dtype": "Enum", "cardinality": 2, "binned": "2 bins"}


def test_train_panel_lists_installed_backends(split) -> None:
    panel = TrainPanel(*split)
    assert list(panel.backend.options) == BACKENDS
    assert panel.backend.value == ("lightning" if "lightning" in BACKENDS else PLUGINS[0]
                                   if PLUGINS else "reference")  # fmt: skip
    # logistic defaults to Newton: epochs become the iteration budget, lr and batch size unused
    panel.backend.value = "reference"
    assert panel.effective_optimizer() == "newton"
    assert (panel.epochs.description, panel.epochs.value) == ("max iterations", 100)
    assert panel.lr.disabled and panel.batch_size.disabled
    assert list(panel.optimizer.options) == ["auto", "newton", "lbfgs"]
    panel.optimizer.value = "lbfgs"
    assert (panel.epochs.description, panel.epochs.value) == ("max iterations", 500)
    panel.optimizer.value = "auto"
    assert "lr" not in panel.fit_options()
    for name in BACKENDS:
        panel.backend.value = name
        engine = bl.backends.get(name)
        assert list(panel.optimizer.options) == ["auto", *engine.optimizers]
        assert list(panel.loss.options) == list(engine.losses)
        assert [value for _, value in panel.phi.options] == list(engine.phi_models)
        assert panel.phi.disabled  # the binomial loss has no φ


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_click_adds_a_model_and_a_leaderboard_row(split, glm, backend) -> None:
    train, val = split
    lab = Lab(train, val, models={"glm": glm})
    panel = lab.train_panel
    spec = _choose(panel, backend, epochs=6)
    assert lab.leaderboard.height == 1

    name = _train(panel)
    # named by spec, backend and the options set off bl.fit's defaults (epochs=6 here)
    assert name.startswith(f"{spec} · {backend}") and "epochs=6" in name
    model = lab.models[name]
    assert model.backend == backend
    assert str(model.spec) == spec
    assert model.config.seed == 3
    history = model.history
    # the progress bar and the curve followed every epoch (and the bar every optimizer step)
    if isinstance(model.spec, bl.GBDT):  # boosting: the bar moves by rounds
        steps = -(-model.spec.trees // 6)
    elif model.config.deterministic:
        steps = 1
    else:
        steps = -(-len(train) // model.config.batch_size)
    assert panel.progress.max == 6 * steps
    unit = "iteration" if model.config.deterministic else "epoch"
    assert panel.progress.description == f"{unit} {model.epochs_}"
    assert panel.progress.value == panel.progress.max
    assert panel.progress.bar_style == "success"
    assert len(panel.curve) == history.height == model.epochs_
    if spec != "logistic":
        assert model.epochs_ == 6
    if spec.startswith("mlp"):
        assert model.config.lr == 0.05 and model.config.batch_size == 16
    assert [r["train_nll"] for r in panel.curve] == history["train_nll"].to_list()
    assert [r["val_nll"] for r in panel.curve] == history["val_nll"].to_list()
    assert panel.curve_view.value.count("<polyline") == 2
    # the leaderboard gained the row, with the NLL bl.evaluate gives on the validation data
    board = lab.leaderboard
    assert board.height == 2
    assert set(board["model"]) == {"glm", name}
    row = board.filter(pl.col("model") == name).row(0, named=True)
    assert row["nll"] == pytest.approx(bl.evaluate(val, model)["nll"], rel=1e-12)
    assert row["backend"] == backend and row["epochs"] == model.epochs_
    assert name in lab.compare_panel.board.value
    assert board["nll"].is_sorted()
    # the new model is selected, drawn in Calibration and offered in Export
    assert lab.state.selected == ["glm", name]
    assert set(lab.calibration_panel.tables) == {"glm", name}
    # the Export tab preselects the best model on the leaderboard, not the last one
    assert lab.export_panel.model.value == lab.leaderboard["model"][0]
    assert lab.state.runs[-1]["stop_reason"] == model.stop_reason
    assert not panel.train_button.disabled and panel.stop_button.disabled


BETA_BINOMIAL = [n for n in BACKENDS if "beta-binomial" in bl.backends.get(n).losses]


@pytest.mark.parametrize("backend", BETA_BINOMIAL)
def test_train_with_the_beta_binomial_loss(split, glm, backend) -> None:
    from binomlab.betabinomial import beta_binomial_nll

    train, val = split
    lab = Lab(train, val, models={"glm": glm})
    panel = lab.train_panel
    panel.backend.value = backend
    panel.model.value = "logistic"
    panel.loss.value = "beta-binomial"
    assert panel.fit_options()["loss"] == "beta-binomial"

    name = _train(panel)
    assert name == f"logistic · {backend} · beta-binomial"
    model = lab.models[name]
    assert model.loss == "beta-binomial"
    assert model.phi_ is not None and model.phi_ > 0
    assert f"φ = {model.phi_:.4g}" in panel.status.value
    # the curve shows the beta-binomial NLL per trial, the one bl.fit reports; L-BFGS ends
    # at its optimum, the last point of the curve
    k, n = (val.frame[c].to_numpy().astype(float) for c in ("k", "n"))
    now = beta_binomial_nll(model.predict_logits(val), k, n, model.phi_)
    assert panel.curve[-1]["val_nll"] == pytest.approx(now, rel=1e-6)
    # the leaderboard row, with its dispersion and the parameter φ counted
    row = lab.leaderboard.filter(pl.col("model") == name).row(0, named=True)
    assert row["dispersion"] == pytest.approx(bl.evaluate(val, model)["dispersion"])
    assert row["params"] == model.n_params_ == glm.n_params_ + 1
    assert "dispersion" in lab.compare_panel.board.value
    # switching to a backend without the loss falls back to the binomial
    panel.backend.value = "reference"
    assert list(panel.loss.options) == ["binomial"] and panel.phi.disabled
    assert "loss" not in panel.fit_options()


PHI_NETWORK = [n for n in BETA_BINOMIAL if "network" in bl.backends.get(n).phi_models]


@pytest.mark.parametrize("backend", PHI_NETWORK)
def test_train_with_phi_from_the_network(split, backend) -> None:
    train, val = split
    lab = Lab(train, val)
    panel = lab.train_panel
    panel.backend.value = backend
    panel.model.value = "logistic"
    assert panel.phi.disabled
    panel.loss.value = "beta-binomial"
    assert not panel.phi.disabled and panel.phi.value == "scalar"
    assert "phi" not in panel.fit_options()  # the default
    panel.phi.value = "network"
    assert panel.phi.label == "φ per group (network)"
    options = panel.fit_options()
    assert (options["loss"], options["phi"]) == ("beta-binomial", "network")

    name = _train(panel)
    assert name == f"logistic · {backend} · beta-binomial · phi=network"
    model = lab.models[name]
    assert model.phi_model == "network" and model.phi_ is None
    rho = 1 / (1 + model.predict_phi(train))
    assert f"ρ from {rho.min():.4f} to {rho.max():.4f}" in panel.status.value


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_button_ends_training_and_keeps_the_best_weights(split, backend) -> None:
    train, val = split
    panel = TrainPanel(train, val)
    panel.backend.value = backend
    if "logistic" in bl.backends.get(backend).specs:
        panel.model.value = "logistic"
        if backend != "reference":
            panel.optimizer.value = "adam"
    else:  # a backend that only grows trees: 2 boosting rounds per epoch
        panel.model.value = "gbdt"
        panel.trees.value = 400
    panel.epochs.value = 200  # far more than it will run
    reached, clicked = threading.Event(), threading.Event()

    def hold_at_epoch_2(epoch, metrics):
        if epoch == 2:
            reached.set()
            clicked.wait(30)

    panel.callbacks.append(hold_at_epoch_2)
    panel.train_button.click()
    assert reached.wait(120)
    assert panel.running and not panel.stop_button.disabled
    panel.stop_button.click()  # from this thread, as the browser's click would be
    clicked.set()
    assert panel.wait(120)

    model = panel.last_model
    assert model is not None, panel.last_error
    assert model.stop_reason == "callback"
    if panel.model.value == "gbdt":
        # 2 rounds an epoch: Stop takes effect at epoch 3's first round, which is not kept
        assert model.epochs_ == 2 and len(panel.curve) == 2
        assert panel.progress.max == 400 and panel.progress.value < 6
    else:  # one step an epoch: epoch 2 had already answered "continue"; epoch 3 stopped
        assert model.epochs_ == 3 and len(panel.curve) == 3
        assert panel.progress.value == 3 < panel.progress.max == 200
    assert panel.progress.bar_style == "warning"
    best = model.history["val_nll"].min()
    assert bl.evaluate(val, model)["nll"] == pytest.approx(best, rel=1e-5)
    assert panel.state.runs[-1]["stop_reason"] == "callback"
    assert "stopped: Stop pressed (or a callback)" in panel.status.value


def test_a_failing_fit_is_shown_in_the_app(split) -> None:
    train, val = split
    lab = Lab(train, val)
    panel = lab.train_panel
    panel.backend.value = "reference"

    def broken(epoch, metrics):
        raise RuntimeError("the callback broke")

    panel.callbacks.append(broken)
    panel.train_button.click()
    assert panel.wait(60)
    assert isinstance(panel.last_error, RuntimeError)
    assert "RuntimeError: the callback broke" in panel.error.value
    assert "binomlab-error" in panel.error.value
    # the failed curve stays on the plot, and keeps its colour from the next run's
    colour = lab.state.reserve_colour()
    assert colour != panel.curve_runs[0].colour
    lab.state.release_colour(colour)
    assert panel.progress.bar_style == "danger"
    assert lab.models == {}
    assert lab.state.runs[-1]["error"] == "RuntimeError: the callback broke"
    assert not panel.train_button.disabled  # the inputs are valid: Train again
    # a correct run clears the error
    panel.callbacks.clear()
    panel.train_button.click()
    assert panel.wait(60)
    assert panel.error.value == "" and panel.last_error is None
    assert list(lab.models) == ["logistic · reference"]


ADAM = [n for n in BACKENDS if "adam" in bl.backends.get(n).optimizers]
NO_ADAM = pytest.mark.skipif(not ADAM, reason="no installed backend has adam")
BAD_NUMBERS = [
    pytest.param("reference", "epochs", 0, "Expected epochs to be a positive integer", id="epochs"),
    pytest.param("reference", "seed", -1, "Expected seed to be", id="seed"),
    pytest.param("adam", "lr", -1.0, "Expected lr to be a positive finite number", id="lr",
                 marks=NO_ADAM),
    pytest.param("adam", "batch_size", 0, "Expected batch_size to be a positive integer",
                 id="batch_size", marks=NO_ADAM),
]  # fmt: skip


@pytest.mark.parametrize(("backend", "field", "bad", "message"), BAD_NUMBERS)
def test_bad_numbers_are_refused_not_clamped(split, backend, field, bad, message) -> None:
    train, val = split
    lab = Lab(train, val)
    panel = lab.train_panel
    panel.backend.value = ADAM[0] if backend == "adam" else backend
    if backend == "adam":
        panel.optimizer.value = "adam"
    widget = getattr(panel, field)
    good = widget.value
    widget.value = bad
    assert widget.value == bad  # kept as typed, not clamped to a valid value
    assert message in panel.field_errors[field].value
    assert set(panel.problems()) == {field}
    assert panel.train_button.disabled
    panel.train_button.click()  # a click from code is refused as well
    assert not panel.running
    assert isinstance(panel.last_error, bl.BinomlabError)
    assert message in panel.error.value
    assert lab.models == {} and lab.state.runs == []
    # fixed: the errors beside the field and in the box go, Train comes back
    widget.value = good
    assert panel.field_errors[field].value == ""
    assert panel.error.value == "" and panel.last_error is None
    assert not panel.train_button.disabled
    if backend == "reference":
        name = _train(panel, timeout=60)
        assert list(lab.models) == [name]


def test_only_what_the_backend_can_train_is_offered(split) -> None:
    train, val = split
    panel = TrainPanel(train, val)
    panel.backend.value = "reference"
    assert list(panel.model.options) == [("logistic regression", "logistic")]
    with pytest.raises(Exception, match="Invalid selection"):
        panel.model.value = "mlp"
    assert list(panel.optimizer.options) == ["auto", "newton", "lbfgs"]
    for name in PLUGINS:
        engine = bl.backends.get(name)
        panel.backend.value = name
        assert [kind for _, kind in panel.model.options] == list(engine.specs)
        if "logistic" not in engine.specs:  # a backend that only grows trees
            assert list(panel.optimizer.options) == ["auto", *engine.optimizers]
            continue
        panel.model.value = "logistic"
        if {"newton", "beta-binomial"} <= {*engine.optimizers, *engine.losses}:
            panel.optimizer.value = "newton"
            panel.loss.value = "beta-binomial"  # newton fits the binomial GLM only
            assert "newton" not in panel.optimizer.options
            assert panel.optimizer.value == "auto" and panel.problems() == {}
            panel.loss.value = "binomial"
        panel.model.value = "mlp"
        assert list(panel.optimizer.options) == [
            "auto",
            *(o for o in engine.optimizers if o != "newton"),
        ]
        # a backend without the MLP falls back to the logistic spec
        panel.backend.value = "reference"
        assert panel.model.value == "logistic" and panel.problems() == {}


@pytest.mark.skipif(not PLUGINS, reason="the MLP needs a plugin backend")
def test_bad_hidden_layers_are_refused_until_fixed(split) -> None:
    train, val = split
    lab = Lab(train, val)
    panel = lab.train_panel
    panel.backend.value = PLUGINS[0]
    panel.model.value = "mlp"
    panel.hidden.value = "8,wide"
    assert "layer widths after &#x27;mlp:&#x27;" in panel.field_errors["hidden"].value
    assert panel.train_button.disabled
    panel.train_button.click()
    assert "hidden layers: Expected layer widths" in panel.error.value
    assert lab.state.runs == [] and lab.models == {}
    panel.hidden.value = "  "  # empty: an error, not the default layers
    assert "Expected hidden layer widths, e.g. 64,32" in panel.field_errors["hidden"].value
    panel.hidden.value = "8"
    assert panel.field_errors["hidden"].value == "" and panel.error.value == ""
    assert panel.fit_options()["model"] == bl.MLP(hidden=(8,))
    # the logistic spec has no hidden layers: their text no longer matters
    panel.hidden.value = "nonsense"
    panel.model.value = "logistic"
    assert panel.problems() == {} and not panel.train_button.disabled


def test_names_stay_unique(split) -> None:
    train, val = split
    panel = TrainPanel(train, val)
    panel.backend.value = "reference"
    for _ in range(2):
        _train(panel, timeout=60)
    assert list(panel.state.models) == ["logistic · reference", "logistic · reference #2"]


def test_compare_panel_alone_with_checkboxes(split, glm) -> None:
    _, val = split
    base = np.full(len(val), val.rate)
    panel = ComparePanel(val, models={"base rate": base, "glm": glm})
    expected = bl.compare({"base rate": base, "glm": glm}, val)
    # bl.compare's columns, then the runs' resolved options
    assert panel.table.select(expected.columns).equals(expected)
    assert panel.table["model"].to_list() == ["glm", "base rate"]
    assert panel.board.value.count("<tr>") == 3  # header and two models
    assert list(panel.checklist.checkboxes) == ["base rate", "glm"]
    panel.checklist.checkboxes["base rate"].value = False
    assert panel.state.selected == ["glm"]
    panel.state.select(["base rate"])
    assert panel.checklist.checkboxes["glm"].value is False
    assert panel.checklist.checkboxes["base rate"].value is True


def test_compare_panel_shows_a_bad_model(split) -> None:
    _, val = split
    panel = ComparePanel(val, models={"short": np.full(3, 0.5)})
    assert isinstance(panel.last_error, bl.InvalidProbabilityError)
    assert "binomlab-error" in panel.error.value


_INTERVAL = re.compile(r"^(-?[0-9.]+) \[(-?[0-9.]+), (-?[0-9.]+)\]$")


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def test_compare_panel_shows_intervals_and_the_paired_test(split, glm) -> None:
    _, val = split
    base = np.full(len(val), val.rate)
    models = {"base rate": base, "glm": glm}
    panel = ComparePanel(val, models=models)
    expected = bl.compare(models, val, level=0.95, resamples=1000, seed=0)
    for column in INTERVAL_SCHEMA:
        assert panel.table[column].equals(expected[column]), column
    shown = panel.shown.to_dicts()
    assert [r["model"] for r in shown] == ["glm", "base rate"]
    for metric in ("nll", "brier", "auc", "ece"):
        # one precision per column: two significant digits of its smallest standard error
        se = expected[f"{metric}_se"].filter(expected[f"{metric}_se"] > 0).min()
        decimals = min(6, max(3, math.ceil(-math.log10(se)) + 1))
        cells = panel.shown[f"{metric} [95% CI]"]
        for cell, row in zip(cells, expected.iter_rows(named=True), strict=True):
            match = _INTERVAL.match(cell)
            assert match, cell
            assert {_decimals(part) for part in match.groups()} == {decimals}
            values = [float(part) for part in match.groups()]
            wanted = [row[metric], row[f"{metric}_lower"], row[f"{metric}_upper"]]
            assert values == pytest.approx(wanted, abs=0.5 * 10**-decimals)
    # the paired comparison with the best model: its difference, SE and p-value
    assert (shown[0]["Δ nll vs best (SE)"], shown[0]["p"]) == ("best", "—")
    row = expected.row(1, named=True)
    test = bl.paired_test(val, base, glm)
    assert row["nll_vs_best"] == pytest.approx(test["difference"])
    match = re.match(r"^\+([0-9.]+) \(SE ([0-9.e-]+)\)$", shown[1]["Δ nll vs best (SE)"])
    assert match, shown[1]
    assert float(match[1]) == pytest.approx(row["nll_vs_best"], abs=5e-5)
    assert float(match[2]) == pytest.approx(row["nll_vs_best_se"], rel=0.05)
    assert row["nll_vs_best_p"] < 0.001 and shown[1]["p"] == "< 0.001"
    notes = panel.notes.value
    assert "mean per-trial log-loss difference to the best model" in notes
    assert "1,000 resamples" in notes
    assert not re.search(r"\d\.\d{7,}", panel.board.value)  # no long floats anywhere
    # the dispersion column still says why where it is not defined
    assert shown[0]["dispersion"] == f"{expected['dispersion'][0]:.4f}"

    # the score decomposition, in the leaderboard's order
    ordered = {"glm": glm, "base rate": base}
    assert panel.scoring.value == "log_loss"
    assert panel.decomposition.equals(bl.decompose(val, ordered, scoring="log_loss"))
    d = panel.decomposition
    identity = d["miscalibration"] - d["discrimination"] + d["uncertainty"] - d["score"]
    assert identity.abs().max() < 1e-12
    assert "MCB" in panel.decomposition_view.value
    assert panel.decomposition_view.value.count("<tr>") == 3
    panel.scoring.value = "brier"
    assert panel.decomposition.equals(bl.decompose(val, ordered, scoring="brier"))
    assert "Brier score per trial" in panel.decomposition_view.value

    # a model with the best one's predictions: no difference, and no test to report
    same = ComparePanel(val, models={"glm": glm, "copy": glm.predict_proba(val)})
    assert same.table["nll_vs_best_se"][1] == 0.0
    assert (same.shown["Δ nll vs best (SE)"][1], same.shown["p"][1]) == (
        "0 (same predictions)", "n/a"
    )  # fmt: skip


def test_compare_panel_says_why_a_dispersion_is_missing() -> None:
    saturated_data = bl.group(synthetic_rows(), ["colour"], "y")  # 4 groups, rank 4: df 0
    model = bl.fit(saturated_data, backend="reference")
    panel = ComparePanel(saturated_data, models={"saturated": model})
    cell = panel.shown["dispersion"][0]
    assert cell.startswith("n/a: ") and "no residual degrees of freedom" in cell
    assert panel.decomposition.equals(bl.decompose(saturated_data, {"saturated": model},
                                                   scoring="log_loss"))  # fmt: skip


def _drawn_points(axes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """x, y of each model's series on a plot_calibration axes, by label."""
    points = {}
    for container in axes.containers:  # errorbar series (bins)
        if not container.get_label().startswith("_"):
            line = container.lines[0]
            points[container.get_label()] = (line.get_xdata(), line.get_ydata())
    for collection in axes.collections:  # scatter series (groups)
        label = collection.get_label()
        if not label.startswith("_") and hasattr(collection, "get_offsets"):
            offsets = np.asarray(collection.get_offsets())
            if offsets.ndim == 2 and offsets.shape[1] == 2:
                points[label] = (offsets[:, 0], offsets[:, 1])
    return points


def test_calibration_panel_draws_what_bl_calibration_computes(split, glm) -> None:
    train, val = split
    base = np.full(len(val), val.rate)
    lab = Lab(train, val, models={"glm": glm, "base rate": base})
    panel = lab.calibration_panel
    assert panel.strategy.value == "corp"  # the tab opens on CORP; the bins are one choice away
    assert panel.bins.disabled
    panel.strategy.value = "quantile"
    assert not panel.bins.disabled
    panel.bins.value = 5
    assert set(panel.tables) == {"glm", "base rate"}
    drawn = _drawn_points(panel.axes)
    for name, model in {"glm": glm, "base rate": base}.items():
        table = bl.calibration(val, model, 5)
        assert panel.tables[name].equals(table)
        x, y = drawn[name]
        np.testing.assert_array_equal(x, table["mean_predicted"].to_numpy())
        np.testing.assert_array_equal(y, table["observed"].to_numpy())
    assert panel.plot.outputs[0]["data"]["image/png"]  # the figure is shown as a PNG
    assert panel.group_table is None

    # deselect in Compare: only the GLM is drawn
    lab.compare_panel.checklist.checkboxes["base rate"].value = False
    assert set(panel.tables) == {"glm"}
    assert panel.checklist.checkboxes["base rate"].value is False
    assert set(_drawn_points(panel.axes)) == {"glm"}

    panel.strategy.value = "uniform"
    table = bl.calibration(val, glm, 5, strategy="uniform")
    assert panel.tables["glm"].equals(table)
    assert not panel.overdispersed.disabled
    panel.overdispersed.value = True
    widened = bl.calibration(val, glm, 5, strategy="uniform", overdispersed=True)
    assert panel.tables["glm"].equals(widened)
    assert (widened["upper"] - widened["lower"] >= table["upper"] - table["lower"]).all()
    # the GLM's dispersion on val is below 1: nothing was widened, and no title says it was
    assert bl.evaluate(val, glm)["dispersion"] < 1
    assert panel.dispersions == {"glm": 1.0}
    assert "widened" not in panel.axes.get_title()
    assert "glm φ = 1 (dispersion ≤ 1: not widened)" in panel.message.value
    lab.state.select(["glm", "base rate"])  # the base rate is overdispersed: it is widened
    phi = bl.evaluate(val, base)["dispersion"]
    assert panel.dispersions == {"glm": 1.0, "base rate": pytest.approx(phi)}
    assert panel.axes.get_title().endswith("widened for overdispersion")
    lab.state.select(["glm"])
    panel.overdispersed.value = False
    assert panel.dispersions == {}

    # the per-group view: one point per group, and the worst-fitted groups
    panel.strategy.value = "groups"
    assert panel.bins.disabled
    table = bl.calibration(val, glm, strategy="groups")
    assert panel.tables["glm"].equals(table)
    assert panel.tables["glm"].height == len(val)
    x, y = _drawn_points(panel.axes)["glm"]
    np.testing.assert_array_equal(x, table["mean_predicted"].to_numpy())
    np.testing.assert_array_equal(y, table["observed"].to_numpy())
    worst = panel.group_table
    assert worst.columns[:4] == ["model", "colour", "size", "flag"]
    assert worst.height == 10
    residual = (table["successes"] - table["trials"] * table["mean_predicted"]) / (
        table["trials"] * table["mean_predicted"] * (1 - table["mean_predicted"])
    ).sqrt()
    assert worst["residual"].abs().max() == pytest.approx(residual.abs().max())
    assert "Per group" in panel.groups_view.value

    lab.state.select([])
    assert panel.figure is None and panel.tables == {}
    assert "Select one or more models" in panel.message.value


def test_calibration_panel_alone(split, glm) -> None:
    _, val = split
    panel = CalibrationPanel(val, models={"glm": glm})
    corp = bl.reliability(val, glm, bands="consistency", resamples=300, seed=0)
    assert panel.tables["glm"].equals(corp)
    assert panel.axes.get_xlabel() == "predicted probability"
    panel.strategy.value = "quantile"
    assert panel.tables["glm"].equals(bl.calibration(val, glm))
    assert panel.axes.get_xlabel() == "mean predicted probability"


def test_export_panel_writes_a_model_bl_load_serves(split, glm, tmp_path) -> None:
    _, val = split
    panel = ExportPanel({"glm": glm, "base rate": np.full(len(val), 0.3)})
    assert list(panel.model.options) == ["glm"]  # probabilities cannot be exported
    panel.folder.value = str(tmp_path / "exported")
    panel.formats.value = ("onnx",)
    panel.export_button.click()
    assert panel.last_error is None, panel.last_error
    assert panel.last_path == (tmp_path / "exported" / "glm").resolve()
    assert sorted(p.name for p in panel.last_path.iterdir()) == ["manifest.json", "model.onnx"]
    assert str(panel.last_path) in panel.result.value
    manifest = json.loads((panel.last_path / "manifest.json").read_text())
    assert manifest["backend"] == "reference"
    served = bl.load(panel.last_path)
    raw = val.frame.select(val.features)
    np.testing.assert_allclose(served.predict_proba(raw), glm.predict_proba(val), atol=1e-6)

    (tmp_path / "a-file").write_text("not a folder")
    panel.folder.value = str(tmp_path / "a-file")
    panel.export_button.click()
    assert panel.last_error is not None
    assert "binomlab-error" in panel.error.value
    panel.folder.value = "  "  # not the working directory by accident
    panel.export_button.click()
    assert "Expected a folder to export into" in str(panel.last_error)


def test_a_native_only_export_does_not_say_bl_load_serves_it(glm, tmp_path) -> None:
    """bl.load serves model.onnx: after a "native only" export the message must not tell
    the user to serve it with bl.load (which refuses that folder)."""
    panel = ExportPanel({"glm": glm})
    panel.folder.value = str(tmp_path)
    panel.formats.value = ("native",)
    panel.export_button.click()
    assert panel.last_error is None, panel.last_error
    assert "model.onnx" not in {p.name for p in panel.last_path.iterdir()}
    with pytest.raises(bl.BinomlabError, match="holds no ONNX model"):
        bl.load(panel.last_path)
    assert "bl.load(" not in panel.result.value
    assert "export with ONNX to serve it" in panel.result.value


@pytest.mark.skipif(not PLUGINS, reason="needs a backend plugin with a native format")
def test_lab_export_tab_after_training(split, tmp_path) -> None:
    train, val = split
    lab = Lab(train, val, export_folder=str(tmp_path))
    _choose(lab.train_panel, PLUGINS[0], epochs=2)
    _train(lab.train_panel)
    export = lab.export_panel
    assert export.model.value == lab.train_panel.last_name
    export.export_button.click()
    assert export.last_error is None, export.last_error
    names = {p.name for p in export.last_path.iterdir()}
    assert {"manifest.json", "model.onnx"} < names and len(names) >= 3  # plus the native file
    model = lab.models[export.model.value]
    np.testing.assert_allclose(
        bl.load(export.last_path).predict_proba(val), model.predict_proba(val), atol=1e-5
    )


def test_state_is_plain_python(split, glm) -> None:
    train, val = split
    state = LabState(train, val, models={"glm": glm})
    seen = []
    state.subscribe(seen.append)
    assert state.add_model("glm", glm) == "glm #2"
    state.select(["glm #2", "missing"])
    assert state.selected == ["glm #2"]
    state.remove_model("glm #2")
    assert seen == ["models", "selected", "models"]
    assert state.leaderboard()["model"].to_list() == ["glm"]
    assert state.eval_data is val
    with pytest.raises(TypeError, match="train must be a Grouped"):
        LabState(pl.DataFrame({"a": [1]}))
    with pytest.raises(bl.BinomlabError, match="needs grouped data"):
        LabState().eval_data  # noqa: B018


def test_lab_without_validation_data_compares_on_train(split) -> None:
    train, _ = split
    lab = Lab(train)
    panel = lab.train_panel
    panel.backend.value = "reference"
    _train(panel, timeout=60)
    model = lab.models["logistic · reference"]
    assert model.history["val_nll"].null_count() == model.epochs_
    assert panel.curve_view.value.count("<polyline") == 1  # train NLL only
    assert lab.leaderboard["nll"][0] == pytest.approx(bl.evaluate(train, model)["nll"])
    assert "on the given data (3,000 trials" in lab.compare_panel.caption.value
    assert lab.data_panel.summary["part"].to_list() == ["train"]


def _corp_drawn(axes) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[np.ndarray]]:
    """The CORP curves (x, y by label) and the vertices of the shaded bands, in order."""
    curves = {
        line.get_label(): (line.get_xdata(), line.get_ydata())
        for line in axes.lines
        if not line.get_label().startswith("_") and line.get_label() != "perfectly calibrated"
    }
    bands = [c.get_paths()[0].vertices for c in axes.collections if c.get_paths()]
    return curves, bands


def test_calibration_panel_corp_draws_bl_reliability(split, glm) -> None:
    train, val = split
    base = np.full(len(val), val.rate)
    lab = Lab(train, val, models={"glm": glm, "base rate": base})
    panel = lab.calibration_panel
    assert (panel.strategy.value, panel.band.value, panel.resamples.value) == (
        "corp", "consistency", 300
    )  # fmt: skip
    assert panel.last_error is None, panel.last_error
    curves, bands = _corp_drawn(panel.axes)
    assert set(curves) == {"glm", "base rate"} and len(bands) == 2
    for (name, model), vertices in zip({"glm": glm, "base rate": base}.items(), bands, strict=True):
        table = bl.reliability(val, model, bands="consistency", resamples=300, seed=0)
        assert panel.tables[name].equals(table)
        x, y = curves[name]
        np.testing.assert_array_equal(x, table["predicted"].to_numpy())
        np.testing.assert_array_equal(y, table["recalibrated"].to_numpy())
        m = table.height
        if m == 1:  # a constant model: one point, its band an error bar
            np.testing.assert_allclose(
                vertices, [[x[0], table["consistency_lower"][0]],
                           [x[0], table["consistency_upper"][0]]]
            )  # fmt: skip
            continue
        # fill_between's outline: the lower edge left to right, then the upper edge back
        np.testing.assert_array_equal(vertices[1 : m + 1, 0], table["predicted"].to_numpy())
        np.testing.assert_array_equal(vertices[1 : m + 1, 1], table["consistency_lower"])
        np.testing.assert_array_equal(vertices[m + 2 : 2 * m + 2, 1][::-1],
                                      table["consistency_upper"])  # fmt: skip
    assert panel.axes.get_title() == "reliability, CORP, 95% consistency band"
    assert "300 resamples" in panel.message.value
    assert "glm: inside the band everywhere" in panel.message.value
    assert len(panel.figure.axes) == 2  # the diagram and the trial histogram's axis

    # the widen option does not apply to CORP: hidden, disabled, and ignored if set
    assert panel.overdispersed.disabled and panel.overdispersed.layout.display == "none"
    assert panel.bins.disabled
    before = panel.tables["glm"]
    panel.overdispersed.value = True
    assert panel.tables["glm"].equals(before) and panel.dispersions == {}
    assert "widened" not in panel.axes.get_title()
    panel.overdispersed.value = False

    # one model at a time, through the shared selection
    panel.only.value = "glm"
    assert lab.state.selected == ["glm"] and set(panel.tables) == {"glm"}
    assert lab.compare_panel.checklist.checkboxes["base rate"].value is False
    p = glm.predict_proba(val)
    low, high = panel.axes.get_xlim()
    assert low <= p.min() and high >= p.max() and (low, high) != (0.0, 1.0)
    panel.limits.value = "unit"
    assert panel.axes.get_xlim() == (0.0, 1.0) and panel.axes.get_ylim() == (0.0, 1.0)
    panel.histogram.value = False
    assert len(panel.figure.axes) == 1

    # the other band, and none
    panel.band.value = "confidence"
    confidence = bl.reliability(val, glm, bands="confidence", resamples=300, seed=0)
    assert panel.tables["glm"].equals(confidence)
    _, bands = _corp_drawn(panel.axes)
    np.testing.assert_array_equal(bands[0][1 : confidence.height + 1, 1],
                                  confidence["confidence_lower"])  # fmt: skip
    panel.band.value = "none"
    assert panel.resamples.disabled
    assert panel.tables["glm"].equals(bl.reliability(val, glm, bands=None))
    assert _corp_drawn(panel.axes)[1] == []
    assert panel.axes.get_title() == "reliability, CORP"
    panel.all_button.click()
    assert lab.state.selected == ["glm", "base rate"] and panel.only.value == ""

    # a bin strategy brings back what applies to it
    panel.strategy.value = "uniform"
    assert not panel.overdispersed.disabled and panel.overdispersed.layout.display is None
    assert panel.band.layout.display == "none"


def test_widen_is_unavailable_where_no_dispersion_is_defined(split, glm) -> None:
    saturated_data = bl.group(synthetic_rows(), ["colour"], "y")  # 4 groups, rank 4: df 0
    model = bl.fit(saturated_data, backend="reference")
    assert math.isnan(bl.evaluate(saturated_data, model)["dispersion"])
    panel = CalibrationPanel(saturated_data, models={"saturated": model})
    panel.strategy.value = "quantile"
    assert panel.overdispersed.disabled
    assert "no residual degrees of freedom" in panel.widen_note.value
    panel.overdispersed.value = True  # set from code: refused, not an error
    assert panel.overdispersed.value is False
    assert panel.last_error is None, panel.last_error
    assert panel.tables["saturated"].equals(bl.calibration(saturated_data, model))
    assert "widened" not in panel.axes.get_title()


def test_bias_view_draws_bl_bias(split, glm) -> None:
    train, val = split
    base = np.full(len(val), val.rate)
    lab = Lab(train, val, models={"glm": glm, "base rate": base})
    view = lab.calibration_panel.bias
    assert list(view.feature.options) == ["colour", "size", "flag"]
    for feature in ("colour", "size"):
        view.feature.value = feature
        table = bl.bias(val, {"glm": glm, "base rate": base}, feature)
        assert view.table.equals(table)
        drawn = [c.lines[0].get_ydata() for c in view.axes.containers]
        for name, y in zip(["glm", "base rate"], drawn, strict=True):
            np.testing.assert_array_equal(
                y, table.filter(pl.col("model") == name)["bias_mean"].to_numpy()
            )
        assert view.axes.get_xlabel().startswith(feature)
        assert view.view.value.count("<tr>") == table.height + 1
        assert "bias [95% CI]" in view.view.value
    assert view.plot.outputs[0]["data"]["image/png"]
    lab.state.select(["glm"])
    assert view.table.equals(bl.bias(val, glm, "size").with_columns(model=pl.lit("glm")))
    lab.state.select([])
    assert view.figure is None and "Select one or more models" in view.view.value


def test_bad_calibration_settings_show_an_error(split, glm) -> None:
    train, val = split
    lab = Lab(train, val, models={"glm": glm})
    panel = lab.calibration_panel
    for bad in (5, 50_000):
        panel.resamples.value = bad
        assert isinstance(panel.last_error, bl.BinomlabError)
        assert "binomlab-error" in panel.error.value
        assert "Expected resamples to be an integer in [100, 5,000]" in panel.error.value
        # nothing drawn with other settings stays on screen
        assert panel.figure is None and panel.tables == {} and panel.plot.outputs == ()
    panel.resamples.value = 200
    assert panel.last_error is None and panel.error.value == ""
    assert panel.tables["glm"].equals(
        bl.reliability(val, glm, bands="consistency", resamples=200, seed=0)
    )
    # a model that cannot be evaluated: an error in the tab and in the bias view, no raise
    lab.state.add_model("short", np.full(3, 0.5))
    assert isinstance(panel.last_error, bl.InvalidProbabilityError)
    assert isinstance(panel.bias.last_error, bl.InvalidProbabilityError)
    assert "binomlab-error" in panel.bias.error.value
    assert panel.figure is None and panel.bias.figure is None
    lab.state.select(["glm"])
    assert panel.last_error is None and panel.bias.last_error is None
    assert panel.figure is not None and panel.bias.figure is not None
