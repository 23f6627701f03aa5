"""Export through every installed plugin backend: the ONNX file served by onnxruntime equals the
plugin's network and its framework's own forward pass, the native files round-trip and a spoilt
one is refused, and ``Fitted.export`` and ``binomlab.export.load`` serve the same probabilities.

What only Keras refuses (code in a ``.keras`` file, foreign models) is tested in
tests/keras/test_keras_export.py.
"""

from __future__ import annotations

import importlib
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import binomlab as bl
from binomlab.backends.protocol import TrainConfig, TrainData
from binomlab.errors import BinomlabError, ModelFileError
from binomlab.export import load
from binomlab.specs import MLP, Logistic

ort = pytest.importorskip("onnxruntime")

#: the files each plugin's ``save_native`` writes, in the order it lists them
NATIVE_FILES = {"keras": ["model.keras"], "lightning": ["weights.safetensors", "network.json"]}
PLUGINS = [name for name in bl.backends.available(check=True) if name in NATIVE_FILES]
pytestmark = pytest.mark.skipif(not PLUGINS, reason="no plugin backend installed")

CASES = {
    "logistic-lbfgs": (Logistic(), "lbfgs"),
    "mlp-lbfgs-float64": (MLP(hidden=(5,), activation="silu"), "lbfgs"),
    "mlp-adam-tanh-dropout": (MLP(hidden=(8, 4), activation="tanh", dropout=0.3), "adam"),
    "mlp-adamw-gelu": (MLP(hidden=(6,), activation="gelu"), "adamw"),
    "mlp-adam-relu": (MLP(hidden=(6, 6)), "adam"),
    "mlp-adam-sigmoid": (MLP(hidden=(4,), activation="sigmoid"), "adam"),
}


def synthetic(groups: int = 150, d: int = 3, *, seed: int = 0) -> TrainData:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(groups, d)).astype(np.float32)
    n = rng.integers(1, 20, groups).astype(np.float64)
    k = rng.binomial(n.astype(int), 1 / (1 + np.exp(-(X[:, 0] - X[:, 1])))).astype(np.float64)
    return TrainData(X, k, n)


def load_native(backend: str, directory: Path):
    return importlib.import_module(f"binomlab_{backend}").load_native(directory)


def framework_logits(backend: str, network, X: np.ndarray) -> np.ndarray:
    """The logits of the framework's own forward pass, in inference mode (dropout off)."""
    if backend == "keras":
        return network.model.predict(X, verbose=0).reshape(-1)
    torch = importlib.import_module("torch")
    net = network.net.eval()
    with torch.no_grad():
        return net(torch.from_numpy(X).to(next(net.parameters()).dtype)).double().numpy()


def check_native_files(backend: str, network, directory: Path) -> None:
    """What the plugin's own files hold."""
    if backend == "keras":
        with zipfile.ZipFile(directory / "model.keras") as archive:
            assert {"config.json", "model.weights.h5"} <= set(archive.namelist())
        return
    description = json.loads((directory / "network.json").read_text())
    assert description["spec"] == network.spec.to_dict() and description["input_dim"] == 3
    load_file = importlib.import_module("safetensors.torch").load_file
    assert set(load_file(str(directory / "weights.safetensors"))) == set(network.net.state_dict())


def spoil(backend: str, directory: Path) -> str:
    """Spoil the saved files the way the plugin must notice; the error message expected."""
    if backend == "keras":
        (directory / "model.keras").write_bytes(b"not a zip")
        return "Unreadable"
    description = json.loads((directory / "network.json").read_text())
    description["input_dim"] = 5
    (directory / "network.json").write_text(json.dumps(description))
    return "do not fit"


@pytest.fixture(scope="module", params=PLUGINS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module", params=list(CASES))
def network(request, backend: str):
    spec, optimizer = CASES[request.param]
    lbfgs = optimizer == "lbfgs"  # to its optimum; adam: 3 epochs at lr 0.05
    config = TrainConfig(
        optimizer=optimizer, epochs=None if lbfgs else 3, lr=None if lbfgs else 0.05
    )
    engine = bl.backends.get(backend)
    return engine.fit(synthetic(), None, spec, config, lambda epoch, metrics: None)


def test_onnx_equals_the_network(backend, network, tmp_path) -> None:
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
    # and equal to the framework's own forward pass
    own = framework_logits(backend, network, X)
    np.testing.assert_allclose(session.run(None, {inp.name: X})[0], own, atol=1e-5)


def test_native_round_trip(backend, network, tmp_path) -> None:
    files = network.save_native(tmp_path)
    assert files == NATIVE_FILES[backend]
    assert sorted(files) == sorted(p.name for p in tmp_path.iterdir())
    check_native_files(backend, network, tmp_path)
    again = load_native(backend, tmp_path)
    X = synthetic(100, seed=8).X
    np.testing.assert_array_equal(again.predict_logits(X), network.predict_logits(X))
    assert again.spec == network.spec and again.n_params == network.n_params
    assert again.input_dim == 3


def test_load_native_errors(backend, network, tmp_path) -> None:
    with pytest.raises(ModelFileError, match="not found") as info:
        load_native(backend, tmp_path)
    for name in NATIVE_FILES[backend]:
        info.match(rf"{re.escape(name)}.* not found")
    network.save_native(tmp_path)
    with pytest.raises(ModelFileError, match=spoil(backend, tmp_path)):
        load_native(backend, tmp_path)


def test_predict_checks_the_width(network) -> None:
    with pytest.raises(BinomlabError, match=r"shape \[rows, 3\].*\(4, 2\)"):
        network.predict_logits(np.zeros((4, 2), np.float32))


def test_export_and_load_through_the_core(backend, tmp_path) -> None:
    rng = np.random.default_rng(0)
    frame = pl.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue"], 60),
            "size": rng.integers(1, 6, 60),
            "n": rng.integers(1, 40, 60),
        }
    ).with_columns(k=(pl.col("n") * 0.3).floor().cast(pl.Int64))
    g = bl.from_counts(frame, ["colour", "size"])
    fitted = bl.fit(g, model="mlp:8", backend=backend, epochs=3)
    path = fitted.export(tmp_path / "model")
    served = load(path)
    # the versions are checked against the installed frameworks in test_plugin_backends.py
    assert served.manifest["framework_versions"] == bl.backends.get(backend).versions()
    assert served.manifest["files"]["native"] == NATIVE_FILES[backend]
    assert served.backend == backend
    np.testing.assert_allclose(served.predict_proba(g), fitted.predict_proba(g), rtol=0, atol=1e-6)
    native = load_native(backend, path)
    np.testing.assert_array_equal(
        native.predict_logits(fitted.encoder.transform(g)), fitted.predict_logits(g)
    )
