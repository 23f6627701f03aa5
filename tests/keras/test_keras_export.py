"""Export: ONNX served by onnxruntime equals Keras, and model.keras round-trips in safe mode."""

from __future__ import annotations

import zipfile

import numpy as np
import polars as pl
import pytest

pytest.importorskip("binomlab_keras")  # first: it quiets TensorFlow's start-up messages
keras = pytest.importorskip("keras")
ort = pytest.importorskip("onnxruntime")

import binomlab as bl  # noqa: E402
from binomlab.errors import BinomlabError, ModelFileError  # noqa: E402
from binomlab.export import load  # noqa: E402
from binomlab.protocol import TrainConfig, TrainData  # noqa: E402
from binomlab.specs import MLP, Logistic  # noqa: E402
from binomlab_keras import KerasBackend, load_native  # noqa: E402
from binomlab_keras.export import export_onnx  # noqa: E402


def synthetic(groups: int = 150, d: int = 3, *, seed: int = 0) -> TrainData:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(groups, d)).astype(np.float32)
    n = rng.integers(1, 20, groups).astype(np.float64)
    k = rng.binomial(n.astype(int), 1 / (1 + np.exp(-(X[:, 0] - X[:, 1])))).astype(np.float64)
    return TrainData(X, k, n)


CASES = {
    "logistic-lbfgs": (Logistic(), "lbfgs"),
    "mlp-lbfgs-float64": (MLP(hidden=(5,), activation="silu"), "lbfgs"),
    "mlp-adam-tanh-dropout": (MLP(hidden=(8, 4), activation="tanh", dropout=0.3), "adam"),
    "mlp-adamw-gelu": (MLP(hidden=(6,), activation="gelu"), "adamw"),
    "mlp-adam-relu": (MLP(hidden=(6, 6)), "adam"),
    "mlp-adam-sigmoid": (MLP(hidden=(4,), activation="sigmoid"), "adam"),
}


@pytest.fixture(scope="module", params=list(CASES))
def network(request):
    spec, optimizer = CASES[request.param]
    config = TrainConfig(optimizer=optimizer, epochs=30 if optimizer == "lbfgs" else 3, lr=0.05)
    return KerasBackend().fit(synthetic(), None, spec, config, lambda epoch, metrics: None)


def test_onnx_equals_keras(network, tmp_path) -> None:
    path = tmp_path / "model.onnx"
    network.export_onnx(path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"], "one file, no external data"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.type, out.type) == ("tensor(float)", "tensor(float)")
    assert inp.shape[1] == 3 and isinstance(inp.shape[0], str), "dynamic batch dimension"
    X = synthetic(1000, seed=7).X * 3
    for rows in (X[:1], X[:2], X):
        logits = session.run(None, {inp.name: rows})[0]
        assert logits.shape == (len(rows),)
        np.testing.assert_allclose(logits, network.predict_logits(rows), rtol=0, atol=1e-5)
    # and equal to Keras's own predict (inference mode: dropout off)
    keras_logits = network.model.predict(X, verbose=0).reshape(-1)
    np.testing.assert_allclose(session.run(None, {inp.name: X})[0], keras_logits, atol=1e-5)


def test_native_round_trip(network, tmp_path) -> None:
    files = network.save_native(tmp_path)
    assert files == ["model.keras"] == [p.name for p in tmp_path.iterdir()]
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        assert {"config.json", "model.weights.h5"} <= set(archive.namelist())
    again = load_native(tmp_path)
    X = synthetic(100, seed=8).X
    np.testing.assert_array_equal(again.predict_logits(X), network.predict_logits(X))
    assert again.spec == network.spec and again.n_params == network.n_params
    assert again.input_dim == 3


def test_load_native_errors(tmp_path) -> None:
    with pytest.raises(ModelFileError, match=r"model\.keras not found"):
        load_native(tmp_path)
    (tmp_path / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="Unreadable"):
        load_native(tmp_path)


@pytest.mark.filterwarnings("ignore:.*__array__ implementation:DeprecationWarning")  # Keras saving
def test_load_native_refuses_code_in_safe_mode(tmp_path) -> None:
    """A .keras file holding a Lambda (arbitrary Python) is refused, not executed."""
    inputs = keras.Input(shape=(3,))
    outputs = keras.layers.Dense(1, name="logit")(keras.layers.Lambda(lambda x: x * 2)(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "model.keras")
    with pytest.raises(ModelFileError, match="safe_mode"):
        load_native(tmp_path)


@pytest.mark.filterwarnings("ignore:.*__array__ implementation:DeprecationWarning")  # Keras saving
def test_load_native_refuses_foreign_models(tmp_path) -> None:
    inputs = keras.Input(shape=(3,))
    outputs = keras.layers.Dense(2)(keras.layers.BatchNormalization()(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "model.keras")
    with pytest.raises(ModelFileError, match="not a binomlab network"):
        load_native(tmp_path)
    with pytest.raises(ModelFileError, match="not a binomlab network"):
        export_onnx(keras.saving.load_model(tmp_path / "model.keras"), tmp_path / "m.onnx")


def test_predict_checks_the_width(network) -> None:
    with pytest.raises(BinomlabError, match=r"shape \[rows, 3\].*\(4, 2\)"):
        network.predict_logits(np.zeros((4, 2), np.float32))


def test_export_and_load_through_the_core(tmp_path) -> None:
    rng = np.random.default_rng(0)
    frame = pl.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue"], 60),
            "size": rng.integers(1, 6, 60),
            "n": rng.integers(1, 40, 60),
        }
    ).with_columns(k=(pl.col("n") * 0.3).floor().cast(pl.Int64))
    g = bl.from_counts(frame, ["colour", "size"])
    fitted = bl.fit(g, model="mlp:8", backend="keras", epochs=3)
    path = fitted.export(tmp_path / "model")
    served = load(path)
    versions = served.manifest["framework_versions"]
    assert versions["keras"] == keras.__version__
    assert versions["keras_backend"] == keras.backend.backend()
    assert served.manifest["files"]["native"] == ["model.keras"]
    assert served.backend == "keras"
    np.testing.assert_allclose(served.predict_proba(g), fitted.predict_proba(g), rtol=0, atol=1e-6)
    native = load_native(path)
    np.testing.assert_array_equal(
        native.predict_logits(fitted.encoder.transform(g)), fitted.predict_logits(g)
    )
