"""``bl.recalibrate`` on real data (statsmodels' star98 school districts): every map equals an
independent fit on the expanded 0/1 rows (scikit-learn, statsmodels), it exports to an ONNX
graph that ``bl.load`` serves with the same probabilities, and it fixes a miscalibrated model.

The base model is deliberately miscalibrated: a logistic model on four covariates shrunk by a
strong ``weight_decay``, so its probabilities are too close to the overall rate.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import polars as pl
import pytest
from scipy.special import expit

import binomlab as bl
from binomlab import recalibration
from binomlab.manifest import checksum

pytest.importorskip("statsmodels")
sm = pytest.importorskip("statsmodels.api")
isotonic = pytest.importorskip("sklearn.isotonic")
linear_model = pytest.importorskip("sklearn.linear_model")

FEATURES = ["LOWINC", "PERASIAN", "PERBLACK", "PERHISP"]
METHODS = ("isotonic", "platt", "temperature")


@pytest.fixture(scope="module")
def splits() -> tuple[bl.Grouped, bl.Grouped, bl.Grouped]:
    """star98's 267,611 students, split at the row level: train 60%, val 20%, test 20%."""
    from binomlab import datasets

    train, rest = datasets.star98().split(test=0.4, seed=0)
    val, test = rest.split(test=0.5, seed=1)
    return train, val, test


@pytest.fixture(scope="module")
def base(splits) -> bl.Fitted:
    train, _, _ = splits
    return bl.fit(train, backend="reference", features=FEATURES, weight_decay=0.5)


@pytest.fixture(scope="module")
def served_base(base, tmp_path_factory) -> bl.Predictor:
    """The base model exported and loaded: its ONNX graph's logits are the ones a recalibrated
    model predicts from (and serves), so the oracles take theirs."""
    return bl.load(base.export(tmp_path_factory.mktemp("recalibration-base") / "base"))


@pytest.fixture(scope="module")
def val_rows(splits, served_base) -> tuple[np.ndarray, np.ndarray]:
    """The base logit and the 0/1 outcome of every expanded validation row (the logits are
    predicted from the raw rows, not from the groups)."""
    _, val, _ = splits
    rows = val.expand()
    return served_base.predict_logits(rows.drop("y")), rows["y"].to_numpy()


@pytest.fixture(scope="module")
def recalibrated(splits, base) -> dict[str, bl.Recalibrated]:
    _, val, _ = splits
    return {m: bl.recalibrate(base, val, method=m) for m in METHODS}


def new_rows(splits) -> pl.DataFrame:
    """Raw feature rows, some beyond the range of the data (predictions outside val's)."""
    _, _, test = splits
    frame = test.frame.select(FEATURES).head(60)
    extreme = frame.head(5).with_columns(pl.col("LOWINC") * 3.0, pl.col("PERHISP") * 0.0)
    return pl.concat([frame, extreme])


# --- each map equals an independent fit on the expanded rows ------------------------------


def test_isotonic_equals_sklearn_on_the_expanded_rows(splits, served_base, val_rows, recalibrated):
    _, val, test = splits
    z, y = val_rows
    oracle = isotonic.IsotonicRegression(out_of_bounds="clip").fit(expit(z), y)
    model = recalibrated["isotonic"]
    for data in (val, test, new_rows(splits)):
        want = oracle.predict(served_base.predict_proba(data))
        np.testing.assert_allclose(model.predict_proba(data), want, rtol=0, atol=1e-12)
    x, fitted_y = model.parameters["x"], model.parameters["y"]
    assert np.all(np.diff(x) > 0) and np.all(np.diff(fitted_y) >= 0)
    assert x[0] == expit(z).min() and x[-1] == expit(z).max()
    np.testing.assert_allclose(
        model.predict_logits(data), np.log(want) - np.log1p(-want), rtol=1e-9, atol=0
    )


def test_isotonic_gives_exact_zero_and_one_as_sklearn_does(tmp_path):
    """Blocks of val with no successes (no failures) are recalibrated to exactly 0 (1): the
    logits are then -inf (+inf)."""
    x = np.linspace(-3.0, 3.0, 12)
    n = np.full(12, 30)
    k = np.array([0, 0, 0, 4, 9, 12, 14, 20, 25, 30, 30, 30])
    g = bl.from_counts(pl.DataFrame({"x": x, "n": n, "k": k}), ["x"])
    base = bl.fit(g, backend="reference")
    with pytest.warns(UserWarning, match="val is the base model's training data"):
        model = bl.recalibrate(base, g, method="isotonic")
    rows = g.expand()
    served = bl.load(base.export(tmp_path / "base"))  # the base logits the model predicts from
    oracle = isotonic.IsotonicRegression(out_of_bounds="clip")
    oracle.fit(served.predict_proba(rows), rows["y"].to_numpy())
    probe = pl.DataFrame({"x": np.linspace(-5.0, 5.0, 41)})
    want = oracle.predict(served.predict_proba(probe))
    got = model.predict_proba(probe)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert (got == 0.0).any() and (got == 1.0).any()
    logits = model.predict_logits(probe)
    assert np.array_equal(logits == -np.inf, got == 0.0)
    assert np.array_equal(logits == np.inf, got == 1.0)


def test_platt_equals_a_statsmodels_glm_on_the_base_logit(
    splits, served_base, val_rows, recalibrated
):
    z, y = val_rows
    glm = sm.GLM(y, sm.add_constant(z), family=sm.families.Binomial()).fit(tol=1e-13)
    b, a = glm.params
    model = recalibrated["platt"]
    assert model.parameters == pytest.approx({"a": a, "b": b}, rel=1e-7, abs=1e-9)
    assert model.stop_reason == "converged"
    for data in (splits[2], new_rows(splits)):
        want = expit(a * served_base.predict_logits(data) + b)
        np.testing.assert_allclose(model.predict_proba(data), want, rtol=0, atol=1e-6)


def test_temperature_equals_an_sklearn_logistic_fit_without_intercept(
    splits, served_base, val_rows, recalibrated
):
    z, y = val_rows
    oracle = linear_model.LogisticRegression(
        C=np.inf, fit_intercept=False, solver="newton-cholesky", tol=1e-12, max_iter=200
    ).fit(z[:, None], y)
    temperature = 1.0 / oracle.coef_[0, 0]
    model = recalibrated["temperature"]
    assert model.parameters["temperature"] == pytest.approx(temperature, rel=1e-7)
    assert 0.0 < temperature < 1.0  # the shrunk model is underconfident: sharpened
    for data in (splits[2], new_rows(splits)):
        want = expit(served_base.predict_logits(data) / temperature)
        np.testing.assert_allclose(model.predict_proba(data), want, rtol=0, atol=1e-6)


# --- it fixes a miscalibrated model ---------------------------------------------------------


def rows_ece_and_nll(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """ECE on 10 uniform bins and the mean log-loss, computed on the expanded rows."""
    bins = np.minimum(np.floor(p * 10).astype(int), 9)
    ece = sum(abs(p[bins == b].sum() - y[bins == b].sum()) for b in range(10)) / y.size
    with np.errstate(divide="ignore"):
        nll = -np.mean(np.where(y == 1, np.log(p), np.log1p(-p)))
    return float(ece), float(nll)


def test_recalibration_improves_calibration_on_test_data(splits, base, recalibrated):
    _, _, test = splits
    rows = test.expand()
    y = rows["y"].to_numpy()
    base_ece, base_nll = rows_ece_and_nll(y, base.predict_proba(rows))
    assert bl.evaluate(test, base)["ece"] == pytest.approx(base_ece, abs=1e-12)
    assert base_ece > 0.05  # the base is visibly miscalibrated
    for method, model in recalibrated.items():
        ece, nll = rows_ece_and_nll(y, model.predict_proba(rows))
        scores = bl.evaluate(test, model)
        assert scores["ece"] == pytest.approx(ece, abs=1e-12)
        assert scores["nll"] == pytest.approx(nll, rel=1e-12)
        assert ece < base_ece and nll < base_nll, method
    assert bl.evaluate(test, recalibrated["isotonic"])["ece"] < base_ece / 5
    assert bl.evaluate(test, recalibrated["platt"])["ece"] < base_ece / 2


def test_compare_and_evaluate_describe_it(splits, base, recalibrated):
    train, val, test = splits
    board = bl.compare({"base": base, **recalibrated}, test)
    rows = {r["model"]: r for r in board.to_dicts()}
    assert rows["platt"]["params"] == base.n_params_ + 2
    assert rows["temperature"]["params"] == base.n_params_ + 1
    assert rows["isotonic"]["params"] > base.n_params_
    for method in METHODS:
        assert rows[method]["backend"] == "reference"
        assert rows[method]["spec"] == "logistic"
        assert rows[method]["epochs"] == base.epochs_
        assert rows[method]["seconds"] >= base.seconds_
    # no in_sample_: the held-out rule on every data set, the base's training data included
    assert bl.evaluate(train, base)["df_rule"] == "in-sample"
    for model in recalibrated.values():
        assert not hasattr(model, "in_sample_") and not hasattr(model, "summary")
        assert bl.evaluate(train, model)["df_rule"] == "held-out"
        assert bl.evaluate(val, model)["df_resid"] == len(val)
    assert "Recalibrated(platt: a=" in repr(recalibrated["platt"])
    assert "fitted on 303 groups" in repr(recalibrated["platt"])


def test_the_inputs_are_not_changed(splits, base):
    _, val, _ = splits
    before = val.frame.clone()
    model = bl.recalibrate(base, val, method="platt")
    assert val.frame.equals(before)
    params = model.parameters
    params["a"] = 0.0
    assert model.parameters["a"] != 0.0


def test_a_loaded_predictor_can_be_recalibrated_but_not_exported_again(
    splits, base, recalibrated, tmp_path
):
    _, val, test = splits
    served = bl.load(base.export(tmp_path / "plain"))
    model = bl.recalibrate(served, val, method="platt")
    want = recalibrated["platt"]
    assert model.parameters == pytest.approx(want.parameters, rel=1e-5)
    np.testing.assert_allclose(model.predict_proba(test), want.predict_proba(test), atol=1e-6)
    with pytest.raises(bl.BinomlabError, match="wraps a loaded Predictor"):
        model.export(tmp_path / "again")


# --- export ----------------------------------------------------------------------------------


def assert_served_like(served, model, plain, data) -> None:
    """``served`` (the loaded recalibrated model) computes the map exactly on its own base
    logits (``plain``, the loaded base model), and equals the in-memory ``model`` to rounding:
    both predict from the same ONNX base graph, so even a steep isotonic map agrees."""
    got = served.predict_proba(data)
    z = plain.predict_logits(data)
    p = model.parameters
    if model.method == "isotonic":
        exact = np.interp(np.clip(expit(z), p["x"][0], p["x"][-1]), p["x"], p["y"])
    else:
        exact = expit(p["a"] * z + p["b"] if model.method == "platt" else z / p["temperature"])
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got, model.predict_proba(data), rtol=0, atol=1e-9)


def test_export_round_trip_serves_the_recalibrated_model(splits, base, recalibrated, tmp_path):
    train, val, test = splits
    plain = bl.load(base.export(tmp_path / "plain"))
    assert plain.recalibration is None
    for method, model in recalibrated.items():
        path = model.export(tmp_path / method)
        served = bl.load(path)
        for data in (test, new_rows(splits), test.expand()):
            assert_served_like(served, model, plain, data)
        manifest = json.loads((path / "manifest.json").read_text())
        record = manifest["recalibration"]
        assert record["method"] == method
        assert record["fitted_on"] == val.fingerprint
        assert (record["trials"], record["groups"]) == (val.trials, len(val))
        assert served.recalibration == record == model.recalibration
        assert manifest["n_params"] == model.n_params_ == served.n_params_
        assert manifest["coefficients"] is None
        assert f"recalibrated={method!r}" in repr(served)
        # not a GLM fit: no summary, no in-sample statistics, the held-out df rule
        with pytest.raises(bl.BinomlabError, match=r"summary.*not available.*recalibrated"):
            served.summary()
        with pytest.raises(AttributeError, match=r"rank_ is not available.*recalibrated"):
            served.rank_  # noqa: B018
        assert bl.evaluate(train, served)["df_rule"] == "held-out"
        assert served.phi is None and served.predict_phi(test) is None
        lower, upper = served.predict_interval(test, 200)
        want = model.predict_interval(test, 200)
        assert np.array_equal(lower, want[0]) and np.array_equal(upper, want[1])
    assert plain.rank_ == base.rank_  # a plain model keeps its GLM statistics


def test_a_tampered_recalibration_is_refused(recalibrated, tmp_path):
    path = recalibrated["platt"].export(tmp_path / "m")
    manifest = json.loads((path / "manifest.json").read_text())
    edited = json.loads(json.dumps(manifest))
    edited["recalibration"]["parameters"]["a"] = 1.0
    (path / "manifest.json").write_text(json.dumps(edited))
    with pytest.raises(bl.ModelFileError, match="edited after export"):
        bl.load(path)
    resealed = json.loads(json.dumps(manifest))
    resealed["recalibration"]["method"] = "sharpen"
    resealed["checksum"] = checksum(resealed)
    (path / "manifest.json").write_text(json.dumps(resealed))
    with pytest.raises(bl.ModelFileError, match=r"field 'recalibration.method'"):
        bl.load(path)
    resealed = json.loads(json.dumps(manifest))
    resealed["coefficients"] = [
        {"term": "(intercept)", "level": None, "estimate": 0.0, "std_error": 1.0}
    ] * manifest["rank"]
    resealed["checksum"] = checksum(resealed)
    (path / "manifest.json").write_text(json.dumps(resealed))
    with pytest.raises(bl.ModelFileError, match=r"contradicts itself.*recalibrated"):
        bl.load(path)


def test_export_through_a_plugin_backend(splits, tmp_path):
    """A lightning MLP (float32 network, float32 ONNX) recalibrated by each map: the ONNX graph
    carries the map and bl.load serves the in-memory model's probabilities."""
    pytest.importorskip("binomlab_lightning")
    train, val, test = splits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's notes about workers and loggers
        mlp = bl.fit(
            train, model=bl.MLP(hidden=(8,)), backend="lightning", epochs=3, features=FEATURES
        )
    plain = bl.load(mlp.export(tmp_path / "plain", formats="onnx"))
    for method in METHODS:
        model = bl.recalibrate(mlp, val, method=method)
        path = model.export(tmp_path / method)
        assert (path / "weights.safetensors").is_file()  # the base network's native files
        served = bl.load(path)
        for data in (test, new_rows(splits)):
            assert_served_like(served, model, plain, data)
        assert served.backend == "lightning" and served.recalibration["method"] == method


# --- bad input --------------------------------------------------------------------------------


def test_bad_arguments_are_refused(splits, base, recalibrated, tmp_path):
    _, val, _ = splits
    with pytest.raises(bl.BinomlabError, match=r"method to be one of \('isotonic', 'platt'"):
        bl.recalibrate(base, val, method="beta")
    with pytest.raises(bl.BinomlabError, match=r"Received: method=None"):
        bl.recalibrate(base, val, method=None)
    with pytest.raises(bl.BinomlabError, match=r"bl.Fitted.*bl.Predictor.*Received: ndarray"):
        bl.recalibrate(np.zeros(3), val)
    with pytest.raises(bl.BinomlabError, match="already recalibrated"):
        bl.recalibrate(recalibrated["platt"], val)
    served = bl.load(recalibrated["platt"].export(tmp_path / "m"))
    with pytest.raises(bl.BinomlabError, match="already recalibrated"):
        bl.recalibrate(served, val)
    with pytest.raises(bl.NotGroupedError, match=r"val must be a Grouped.*bl.from_counts"):
        bl.recalibrate(base, val.frame)
    with pytest.raises(bl.NotGroupedError, match=r"Received: DataFrame"):
        bl.recalibrate(base, val.expand())
    with pytest.raises(bl.ColumnNotFoundError, match="'PERHISP'"):
        bl.recalibrate(base, bl.from_counts(val.frame.drop("PERHISP"), FEATURES[:3]))
    with pytest.raises(bl.EmptyDataError):  # an empty val cannot even be made
        bl.recalibrate(base, bl.from_counts(val.frame.head(0), FEATURES))
    # the path of a grouped parquet file is read
    val.write_parquet(tmp_path / "val.parquet")
    model = bl.recalibrate(base, tmp_path / "val.parquet", method="platt")
    assert model.parameters == recalibrated["platt"].parameters


def test_a_beta_binomial_model_is_refused(splits):
    pytest.importorskip("binomlab_lightning")
    train, val, _ = splits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = bl.fit(
            train, model="logistic", backend="lightning", loss="beta-binomial", epochs=1,
            features=FEATURES,
        )  # fmt: skip
    with pytest.raises(bl.BinomlabError, match=r"binomial loss.*loss='beta-binomial'"):
        bl.recalibrate(model, val, method="isotonic")


def small(k: list[int], z: list[float] | None = None) -> tuple[bl.Fitted, bl.Grouped]:
    """A logistic base on one numeric feature and val groups with ``k`` successes of 10."""
    x = np.asarray(z if z is not None else np.linspace(-1.0, 1.0, len(k)))
    train = bl.from_counts(
        pl.DataFrame({"x": np.linspace(-1, 1, 8), "n": [10] * 8, "k": [1, 2, 3, 4, 6, 7, 8, 9]}),
        ["x"],
    )
    val = bl.from_counts(pl.DataFrame({"x": x, "n": [10] * len(k), "k": k}), ["x"])
    return bl.fit(train, backend="reference"), val


@pytest.mark.parametrize("method", ["platt", "temperature"])
def test_a_map_whose_mle_does_not_exist_is_refused(method):
    base, val = small([0, 0, 0, 0])
    with pytest.raises(bl.BinomlabError, match=r"val has no successes.*method='isotonic'"):
        bl.recalibrate(base, val, method=method)
    base, val = small([0, 0, 10, 10])  # all failures below logit 0, all successes above
    with pytest.raises(bl.BinomlabError, match="separates val's successes from its failures"):
        bl.recalibrate(base, val, method=method)
    assert bl.recalibrate(base, val, method="isotonic").predict_proba(val)[0] == 0.0
    if method == "platt":  # a threshold between two groups of mixed outcomes separates too
        base, val = small([0, 0, 3, 10, 10], z=[-1.0, -0.8, -0.6, 0.7, 0.9])
        with pytest.raises(bl.BinomlabError, match="separates"):
            bl.recalibrate(base, val, method=method)


def test_platt_needs_distinct_logits_and_temperature_a_positive_slope():
    base, val = small([2, 5, 7], z=[0.3, 0.3, 0.3])
    with pytest.raises(bl.BinomlabError, match=r"one logit.*not identified"):
        bl.recalibrate(base, val, method="platt")
    base, val = small([8, 6, 5, 3, 2])  # successes fall as the logit rises
    with pytest.raises(bl.BinomlabError, match="no temperature T > 0"):
        bl.recalibrate(base, val, method="temperature")
    with pytest.warns(UserWarning, match="slope is negative .* reverses the model's ranking"):
        assert bl.recalibrate(base, val, method="platt").parameters["a"] < 0


def test_a_fit_that_does_not_converge_warns(splits, base, monkeypatch):
    _, val, _ = splits
    monkeypatch.setattr(recalibration, "MAX_ITER", 1)
    with pytest.warns(bl.ConvergenceWarning, match=r"platt.*stopped \(max_iter\)"):
        model = bl.recalibrate(base, val, method="platt")
    assert model.stop_reason == "max_iter"
    assert model.recalibration["stop_reason"] == "max_iter"
