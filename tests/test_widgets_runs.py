"""bl.widgets: runs as a comparison workbench — names, rename and delete, the leaderboard's
options, sorting, the best run, downloads, the HTML report and MLflow.

Driven as a user would: set widget values, click buttons, assert on plain state.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

pytest.importorskip("ipywidgets")

import binomlab as bl
from binomlab.testing import synthetic_rows
from binomlab.widgets import ComparePanel, ExportPanel, Lab, LabState
from binomlab.widgets.compare_panel import format_leaderboard, sort_columns
from binomlab.widgets.state import RUN_SCHEMA, run_name, run_options

BACKENDS = bl.backends.available(check=True)


@pytest.fixture(scope="module")
def split() -> tuple[bl.Grouped, bl.Grouped]:
    g = bl.group(synthetic_rows(), ["colour", "size", "flag"], "y")
    return g.split(0.25, seed=0)


@pytest.fixture(scope="module")
def glm(split) -> bl.Fitted:
    return bl.fit(split[0], backend="reference", val=split[1])


@pytest.fixture(scope="module")
def lbfgs(split) -> bl.Fitted:
    return bl.fit(split[0], backend="reference", val=split[1], optimizer="lbfgs")


@pytest.fixture(scope="module")
def colour_only(split) -> bl.Fitted:
    """A worse model: one feature of three."""
    return bl.fit(split[0], backend="reference", val=split[1], features=["colour"])


def _rows(board_html: str) -> list[str]:
    """The first cell (the model's name) of each body row of a board's HTML."""
    body = board_html.split("<tbody>")[1]
    swatch = r"(?:<span[^>]*></span>)?"  # the model's colour square, drawn by CSS
    return [m for m in re.findall(rf"<tr><td[^>]*>{swatch}([^<]*)</td>", body)]


# -- run names ---------------------------------------------------------------------------------


def test_run_names_from_options_name_what_differs_from_the_defaults(split) -> None:
    train, _ = split
    assert run_name({"model": "logistic", "backend": "reference"}) == "logistic · reference"
    # the options the Train tab sends, left at bl.fit's defaults, are not named
    defaults = {"model": bl.Logistic(), "backend": "reference", "epochs": 100, "seed": 0}
    assert run_name(defaults, data=train) == "logistic · reference"
    changed = {**defaults, "optimizer": "lbfgs", "epochs": 50, "seed": 3}
    assert run_name(changed, data=train) == "logistic · reference · lbfgs · epochs=50 · seed=3"
    # lbfgs's own budget (500) is its default: not named
    assert run_name({**defaults, "optimizer": "lbfgs", "epochs": 500}) == (
        "logistic · reference · lbfgs"
    )
    subset = {**defaults, "features": ["colour", "size"]}
    assert run_name(subset, data=train) == "logistic · reference · features=colour,size"
    every = {**defaults, "features": list(train.features)}
    assert run_name(every, data=train) == "logistic · reference"
    # a taken name gets a number
    taken = ["logistic · reference", "logistic · reference #2"]
    assert run_name(defaults, taken, data=train) == "logistic · reference #3"
    # options bl.fit would refuse are named as given
    assert run_name({"model": "logistic", "backend": "reference", "lr": 0.1}) == (
        "logistic · reference · lr=0.1"
    )
    with pytest.raises(bl.BinomlabError, match="'model' and 'backend'"):
        run_name({"model": "logistic"})
    with pytest.raises(bl.BinomlabError, match="names a fitted model"):
        run_name(42)


def test_run_names_from_fitted_models(split, glm, lbfgs, colour_only) -> None:
    train, _ = split
    assert run_name(glm) == "logistic · reference"
    assert run_name(lbfgs) == "logistic · reference · lbfgs"
    assert run_name(colour_only, data=train) == "logistic · reference · features=colour"
    state = LabState(train, models={"glm": glm})
    assert state.run_name(glm) == "logistic · reference"
    state.add_model(state.run_name(glm), glm)
    assert state.run_name(glm) == "logistic · reference #2"


def test_run_names_say_how_a_regrouped_feature_was_encoded(split) -> None:
    train, _ = split
    for edges, text in (([1, 3, 6], "size: 2 bins"), (list(range(1, 8)), "size: levels")):
        regrouped = bl.from_counts(train.frame, train.features, bins={"size": edges})
        model = bl.fit(regrouped, backend="reference")
        assert run_name(model, data=train) == f"logistic · reference · {text}"
        assert run_name(model) == "logistic · reference"  # nothing to compare with
        options = {"model": "logistic", "backend": "reference", "bins": regrouped.bins}
        assert run_name(options, data=train) == f"logistic · reference · {text}"
    model = bl.fit(train, backend="reference", min_frequency=200, unseen="other")
    assert run_name(model, data=train) == (
        "logistic · reference · min_frequency=200 · unseen=other"
    )


@pytest.mark.skipif("lightning" not in BACKENDS, reason="needs the lightning backend")
def test_run_names_tell_apart_two_runs_that_differ_only_in_lr(split) -> None:
    train, val = split
    common = {"model": bl.MLP(hidden=(8, 4)), "backend": "lightning", "epochs": 2, "seed": 3}
    fits = {lr: bl.fit(train, val=val, lr=lr, **common) for lr in (0.01, 0.05)}
    names = {lr: run_name(model, data=train) for lr, model in fits.items()}
    # 0.01 is lightning's default lr for adam: only the other run names it
    assert names == {
        0.01: "mlp:8,4 · lightning · epochs=2 · seed=3",
        0.05: "mlp:8,4 · lightning · lr=0.05 · epochs=2 · seed=3",
    }
    # the name before training (from the options) is the name after
    for lr in fits:
        assert run_name({**common, "lr": lr, "val": val}, data=train) == names[lr]
    lab = Lab(train, val, models={names[lr]: model for lr, model in fits.items()})
    assert list(lab.models) == list(names.values())
    board = lab.leaderboard
    assert dict(zip(board["model"], board["lr"], strict=True)) == {
        names[0.01]: 0.01,
        names[0.05]: 0.05,
    }


def test_models_passed_in_keep_their_names(split, glm) -> None:
    train, val = split
    lab = Lab(train, val, models={"my GLM": glm, "base": np.full(len(val), val.rate)})
    assert list(lab.models) == ["my GLM", "base"]
    assert set(lab.leaderboard["model"]) == {"my GLM", "base"}


# -- rename and delete -------------------------------------------------------------------------


def test_state_rename_and_remove_validate(split, glm, lbfgs) -> None:
    train, val = split
    state = LabState(train, val, models={"glm": glm, "lbfgs": lbfgs})
    state.runs.append({"name": "lbfgs", "backend": "reference"})
    state.select(["lbfgs"])
    seen = []
    state.subscribe(seen.append)
    assert state.rename_model("lbfgs", "  L-BFGS  ") == "L-BFGS"
    assert list(state.models) == ["glm", "L-BFGS"]  # the model keeps its place
    assert state.selected == ["L-BFGS"] and state.runs[0]["name"] == "L-BFGS"
    assert seen == ["models"]
    assert state.rename_model("glm", "glm") == "glm" and seen == ["models"]  # nothing to do
    for new, message in (
        ("", "cannot be empty"),
        ("   ", "cannot be empty"),
        ("glm", "'glm' is taken by another model"),
        (3, "Expected the new name to be a string"),
    ):
        with pytest.raises(bl.BinomlabError, match=message):
            state.rename_model("L-BFGS", new)
    with pytest.raises(bl.BinomlabError, match=r"No model named 'nope'\. Models: \['glm'"):
        state.rename_model("nope", "x")
    with pytest.raises(bl.BinomlabError, match="No model named 'nope'"):
        state.remove_model("nope")
    assert list(state.models) == ["glm", "L-BFGS"] and seen == ["models"]
    state.remove_model("L-BFGS")
    assert list(state.models) == ["glm"] and state.selected == [] and state.runs == []
    assert seen == ["models", "models"]


def test_rename_and_delete_buttons_update_every_tab(split, glm, lbfgs, colour_only) -> None:
    train, val = split
    base = np.full(len(val), val.rate)
    models = {"glm": glm, "lbfgs": lbfgs, "colour": colour_only, "base rate": base}
    lab = Lab(train, val, models=models)
    compare, export = lab.compare_panel, lab.export_panel
    before = lab.leaderboard.drop("model")
    assert list(compare.run.options) == list(models)

    compare.run.value = "lbfgs"
    compare.new_name.value = "L-BFGS fit"
    compare.rename_button.click()
    assert compare.last_error is None, compare.last_error
    assert list(lab.models) == ["glm", "L-BFGS fit", "colour", "base rate"]
    assert "L-BFGS fit" in set(lab.leaderboard["model"]) and "lbfgs" not in lab.leaderboard["model"]
    assert_frame_equal(lab.leaderboard.drop("model"), before)  # the numbers stay
    assert "L-BFGS fit" in _rows(compare.board.value)
    assert list(compare.checklist.checkboxes) == list(lab.models)
    assert list(lab.calibration_panel.checklist.checkboxes) == list(lab.models)
    assert set(lab.calibration_panel.tables) == set(lab.models)
    assert list(export.model.options) == ["glm", "L-BFGS fit", "colour"]
    assert compare.run.value == "L-BFGS fit" and compare.new_name.value == ""
    assert "Renamed" in compare.run_result.value

    # an empty or taken name is refused and shown; nothing changes
    for new, message in (("  ", "cannot be empty"), ("glm", "is taken by another model")):
        compare.new_name.value = new
        compare.rename_button.click()
        assert isinstance(compare.last_error, bl.BinomlabError)
        assert message in compare.error.value and "binomlab-error" in compare.error.value
        assert list(lab.models) == ["glm", "L-BFGS fit", "colour", "base rate"]

    compare.run.value = "colour"
    compare.delete_button.click()
    assert compare.last_error is None, compare.last_error
    assert list(lab.models) == ["glm", "L-BFGS fit", "base rate"]
    assert set(lab.leaderboard["model"]) == {"glm", "L-BFGS fit", "base rate"}
    assert "colour" not in _rows(compare.board.value)
    assert list(lab.calibration_panel.checklist.checkboxes) == list(lab.models)
    assert set(lab.calibration_panel.tables) == set(lab.models)
    assert list(export.model.options) == ["glm", "L-BFGS fit"]
    assert list(compare.run.options) == list(lab.models)
    assert "Deleted" in compare.run_result.value


# -- the leaderboard: options, sorting, the best run --------------------------------------------


def test_leaderboard_shows_the_resolved_options(split, glm, lbfgs) -> None:
    _, val = split
    base = np.full(len(val), val.rate)
    panel = ComparePanel(val, models={"glm": glm, "lbfgs": lbfgs, "base rate": base})
    table = panel.table
    assert table.columns[-len(RUN_SCHEMA) :] == list(RUN_SCHEMA)
    rows = {r["model"]: r for r in table.iter_rows(named=True)}
    for name, model in (("glm", glm), ("lbfgs", lbfgs)):
        row = rows[name]
        assert row["optimizer"] == model.config.optimizer
        assert row["batch_size"] == model.config.batch_size
        assert row["max_epochs"] == model.config.epochs
        assert row["best_epoch"] == model.best_epoch_
        assert row["stop_reason"] == model.stop_reason
        assert row["seed"] == model.config.seed
        assert row["epochs"] == model.epochs_
        assert row["seconds"] == model.seconds_
        assert row["lr"] is None  # newton and lbfgs have none
    assert all(rows["base rate"][c] is None for c in RUN_SCHEMA)
    assert panel.state.best_model() == table["model"][0] == panel.best
    # bl.compare's own frame (no option columns) is shown too, its options empty
    plain = format_leaderboard(bl.compare({"glm": glm}, val))
    assert plain["optimizer"].to_list() == [None] and plain["model"].to_list() == ["glm"]
    assert run_options(base) == dict.fromkeys(RUN_SCHEMA)
    shown = {r["model"]: r for r in panel.shown.iter_rows(named=True)}
    assert shown["lbfgs"]["optimizer"] == "lbfgs"
    assert shown["lbfgs"]["best epoch"] == lbfgs.best_epoch_
    assert shown["lbfgs"]["stop reason"] == lbfgs.stop_reason
    assert shown["lbfgs"]["seed"] == "0"
    assert re.match(r"^[0-9.]+ \[[0-9.]+, [0-9.]+\]$", shown["lbfgs"]["nll [95% CI]"])
    for header in ("optimizer", "batch size", "best epoch", "stop reason", "seconds"):
        assert f"<th>{header}</th>" in panel.board.value
    # options every run leaves at the default get no column
    assert "weight decay" not in panel.shown.columns


def test_sorting_by_a_column_orders_the_board(split, glm, lbfgs, colour_only) -> None:
    _, val = split
    base = np.full(len(val), val.rate)
    models = {"glm": glm, "lbfgs": lbfgs, "colour": colour_only, "base rate": base}
    panel = ComparePanel(val, models=models)
    table = panel.table
    assert panel.sort_by.value == "nll" and panel.sort_order.value is False
    assert panel.shown["model"].to_list() == table["model"].to_list()  # best NLL first
    assert [label for label, _ in sort_columns(panel.shown)] == panel.shown.columns

    panel.sort_by.value = "seconds"
    by_seconds = table.sort("seconds", nulls_last=True, maintain_order=True)["model"]
    assert panel.shown["model"].to_list() == by_seconds.to_list()
    assert _rows(panel.board.value) == by_seconds.to_list()
    assert panel.shown["model"].to_list()[-1] == "base rate"  # no training time: last

    panel.sort_order.value = True  # descending
    down = table.sort("seconds", descending=True, nulls_last=True, maintain_order=True)
    assert panel.shown["model"].to_list() == down["model"].to_list()

    panel.sort_by.value = "model"
    assert panel.shown["model"].to_list() == sorted(models, reverse=True)
    panel.sort_by.value = "auc"  # a metric column sorts by its estimate
    by_auc = table.sort("auc", descending=True, maintain_order=True)["model"].to_list()
    assert panel.shown["model"].to_list() == by_auc
    # the leaderboard frame itself stays best first
    assert panel.table["model"].to_list() == table["model"].to_list()
    assert panel.table["nll"].is_sorted()


def test_the_best_run_is_highlighted_and_preselected_for_export(
    split, glm, colour_only, tmp_path
) -> None:
    train, val = split
    base = np.full(len(val), val.rate)
    lab = Lab(train, val, models={"base rate": base, "colour": colour_only, "glm": glm})
    compare, export = lab.compare_panel, lab.export_panel
    assert lab.leaderboard["model"][0] == compare.best == "glm"
    # the best row's cells carry the class, whatever the order the board is sorted in
    compare.sort_by.value = "model"
    body = compare.board.value.split("<tbody>")[1]
    best_row = next(r for r in body.split("</tr>") if ">glm<" in r)
    assert best_row.count('<td class="binomlab-best">') == len(compare.shown.columns)
    assert body.count("binomlab-best") == len(compare.shown.columns)
    assert "glm" in compare.caption.value and "highlighted" in compare.caption.value
    # the Export tab starts at the best model, not the last one added
    assert export.model.value == export.best == "glm"
    assert "glm" in export.best_note.value
    # a worse model added: the best stays the choice
    worse = lab.state.add_model("colour again", colour_only)
    assert export.model.value == "glm" and worse in export.model.options
    # a model chosen by hand stays chosen through a rename of another one
    export.model.value = "colour"
    lab.state.rename_model("colour again", "colour #2")
    assert export.model.value == "colour"
    lab.state.rename_model("colour", "colour, renamed")
    assert export.model.value == "colour, renamed"  # and through its own rename
    # the best deleted: the next best becomes the choice, and is highlighted
    lab.state.remove_model("glm")
    assert export.model.value == lab.leaderboard["model"][0] == compare.best
    assert compare.best in ("colour, renamed", "colour #2")
    export.folder.value = str(tmp_path)
    export.export_button.click()
    assert export.last_error is None, export.last_error


# -- downloads ----------------------------------------------------------------------------------


def test_download_writes_the_leaderboard(split, glm, lbfgs, tmp_path) -> None:
    train, val = split
    base = np.full(len(val), val.rate)
    lab = Lab(train, val, models={"glm": glm, "lbfgs": lbfgs, "base rate": base})
    panel = lab.compare_panel
    panel.board_file.value = str(tmp_path / "board.csv")
    panel.csv_button.click()
    assert panel.last_error is None, panel.last_error
    path = tmp_path / "board.csv"
    assert panel.last_download == path.resolve()
    back = pl.read_csv(path, schema=lab.leaderboard.schema)
    assert_frame_equal(back, lab.leaderboard)
    assert str(path.resolve()) in panel.download_result.value
    assert 'href="data:text/csv;base64,' in panel.download_result.value

    panel.parquet_button.click()  # the same box: the suffix follows the format
    assert panel.last_error is None, panel.last_error
    assert panel.last_download == (tmp_path / "board.parquet").resolve()
    assert_frame_equal(pl.read_parquet(tmp_path / "board.parquet"), lab.leaderboard)

    # an existing file is refused unless replacing is ticked
    path.write_text("keep me")
    panel.csv_button.click()
    assert isinstance(panel.last_error, bl.BinomlabError)
    assert "exists" in panel.error.value and path.read_text() == "keep me"
    panel.overwrite_file.value = True
    panel.csv_button.click()
    assert panel.last_error is None, panel.last_error
    assert_frame_equal(pl.read_csv(path, schema=lab.leaderboard.schema), lab.leaderboard)

    panel.board_file.value = str(tmp_path / "missing" / "board.csv")
    panel.csv_button.click()
    assert "does not exist" in panel.error.value
    assert sorted(p.name for p in tmp_path.iterdir()) == ["board.csv", "board.parquet"]


# -- the report ---------------------------------------------------------------------------------


def test_report_is_one_self_contained_page(split, glm, lbfgs, tmp_path) -> None:
    train, val = split
    base = np.full(len(val), val.rate)
    lab = Lab(train, val, models={"glm": glm, "lbfgs": lbfgs, "base rate": base})
    path = lab.report(tmp_path / "report.html")
    assert path == (tmp_path / "report.html").resolve()
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert page.count('<img src="data:image/png;base64,') >= 2  # curves, calibration
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched
    # the leaderboard's numbers, intervals and options, as the Compare tab shows them
    for row in format_leaderboard(lab.leaderboard).iter_rows(named=True):
        for column in ("model", "nll [95% CI]", "auc [95% CI]", "stop reason"):
            if row[column] is not None:
                assert str(row[column]) in page, (column, row[column])
    assert "binomlab-best" in page
    # the data summary and the decomposition
    assert f"{train.trials:,}" in page and "MCB" in page and "Brier score per trial" in page
    assert "No training history" in page and "base rate" in page

    with pytest.raises(bl.BinomlabError, match=r"exists: tick 'replace' \(overwrite=True\)"):
        lab.report(path)
    assert path.read_text(encoding="utf-8") == page
    assert lab.report(path, overwrite=True) == path
    with pytest.raises(bl.BinomlabError, match="is a folder"):
        lab.report(tmp_path)

    # the button under the tabs
    button = lab.report_panel
    assert button in lab.children
    button.path.value = str(tmp_path / "from-button.html")
    button.write_button.click()
    assert button.last_error is None, button.last_error
    assert button.last_path == (tmp_path / "from-button.html").resolve()
    assert str(button.last_path) in button.result.value
    button.write_button.click()  # again, without "replace"
    assert isinstance(button.last_error, bl.BinomlabError) and "exists" in button.error.value
    button.overwrite.value = True
    button.write_button.click()
    assert button.last_error is None, button.last_error


def test_report_without_a_model_is_refused(split, tmp_path) -> None:
    lab = Lab(*split)
    with pytest.raises(bl.BinomlabError, match="needs at least one model"):
        lab.report(tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


# -- MLflow -------------------------------------------------------------------------------------


def test_log_to_mlflow_without_mlflow_says_how_to_install_it(split, glm, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    lab = Lab(*split, models={"glm": glm})
    with pytest.raises(bl.BinomlabError, match="pip install mlflow"):
        lab.log_to_mlflow()


def test_log_to_mlflow_logs_every_run(split, glm, lbfgs, tmp_path, monkeypatch) -> None:
    """Into a real MLflow tracking store in a temporary folder, read back with MLflow's
    client: params, leaderboard metrics, tags and the per-epoch NLLs of every run."""
    mlflow = pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    # MLflow's file store (its database store needs alembic); 3.x asks for this opt-in
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    mlflow.set_tracking_uri(uri)
    try:
        train, val = split
        lab = Lab(train, val, models={"glm": glm, "lbfgs": lbfgs, "base": np.full(len(val), 0.3)})
        ids = lab.log_to_mlflow("binomlab-test")
        board = lab.leaderboard
        client = MlflowClient(tracking_uri=uri)
        logged = {client.get_run(i).info.run_name: client.get_run(i) for i in ids}
        assert list(logged) == board["model"].to_list()
        run = logged["lbfgs"]
        row = board.filter(pl.col("model") == "lbfgs").row(0, named=True)
        assert run.data.params["optimizer"] == "lbfgs"
        assert run.data.params["epochs"] == str(lbfgs.config.epochs)
        assert run.data.params["spec"] == "logistic"
        assert run.data.metrics["nll"] == pytest.approx(row["nll"], rel=1e-12)
        assert run.data.metrics["nll_upper"] == pytest.approx(row["nll_upper"], rel=1e-12)
        assert run.data.metrics["best_epoch"] == lbfgs.best_epoch_
        assert run.data.tags["backend"] == "reference" and run.data.tags["spec"] == "logistic"
        steps = sorted(client.get_metric_history(run.info.run_id, "train_nll"),
                       key=lambda m: m.step)  # fmt: skip
        assert [m.step for m in steps] == lbfgs.history["epoch"].to_list()
        np.testing.assert_allclose([m.value for m in steps], lbfgs.history["train_nll"])
        base = logged["base"]
        assert base.data.metrics["nll"] == pytest.approx(
            board.filter(pl.col("model") == "base")["nll"][0], rel=1e-12
        )
    finally:
        mlflow.set_tracking_uri(None)


def test_export_panel_alone_keeps_the_last_added(glm) -> None:
    """Without data there is no leaderboard: the last model added is the choice, as before."""
    panel = ExportPanel({"glm": glm})
    assert panel.best is None and panel.model.value == "glm"
    second = panel.state.add_model("glm again", glm)
    assert panel.model.value == second


def test_log_to_mlflow_without_a_usable_store_says_how_to_set_one(split, glm, tmp_path,
                                                                  monkeypatch) -> None:  # fmt: skip
    """A file store without MLflow 3's opt-in is refused by MLflow: the error says what to do."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    try:
        lab = Lab(*split, models={"glm": glm})
        with pytest.raises(bl.BinomlabError, match="MLFLOW_ALLOW_FILE_STORE=true") as info:
            lab.log_to_mlflow()
        assert "could not open its tracking store" in str(info.value)
    finally:
        mlflow.set_tracking_uri(None)


def test_counts_of_models_and_rows_read_as_words(split, glm, lbfgs, tmp_path) -> None:
    """Counts read as words ("1 model", "2 models", "Wrote 1 row"): no "model(s)" or
    "row(s)" in the caption, the download's message or the report."""
    train, val = split
    lab = Lab(train, val, models={"glm": glm})
    panel = lab.compare_panel
    assert panel.caption.value.startswith("1 model on the validation data")
    panel.board_file.value = str(tmp_path / "board.csv")
    panel.csv_button.click()
    assert panel.last_error is None, panel.last_error
    assert panel.download_result.value.startswith("Wrote 1 row to")
    text = lab.report(tmp_path / "one.html").read_text()
    assert "1 model, evaluated on the validation data" in text
    lab.state.add_model("lbfgs", lbfgs)
    assert panel.caption.value.startswith("2 models on the validation data")
    text = lab.report(tmp_path / "two.html").read_text()
    assert "2 models, evaluated on" in text
    assert "(s)" not in panel.caption.value + panel.download_result.value + text


@pytest.mark.skipif("lightgbm" not in BACKENDS, reason="needs binomlab-lightgbm")
def test_boosted_trees_show_their_learning_rate_and_no_batch_size(split, glm) -> None:
    """Boosting's learning rate is the spec's shrinkage (what the Train form's field sets);
    it has no batches, so the config's batch size (the number of groups) is not shown."""
    train, val = split
    trees = bl.fit(train, model=bl.GBDT(trees=20, leaves=4, learning_rate=0.05),
                   backend="lightgbm", val=val, epochs=4)  # fmt: skip
    assert trees.config.lr is None and trees.config.batch_size == len(train)
    panel = ComparePanel(val, models={"trees": trees, "glm": glm})
    row = panel.table.filter(pl.col("model") == "trees").row(0, named=True)
    assert row["optimizer"] == "boosting"
    assert row["lr"] == 0.05 and row["batch_size"] is None
    shown = panel.shown.filter(pl.col("model") == "trees").row(0, named=True)
    assert shown["lr"] == "0.05" and shown["batch size"] is None
    glm_row = panel.table.filter(pl.col("model") == "glm").row(0, named=True)
    assert glm_row["lr"] is None and glm_row["batch_size"] == glm.config.batch_size
