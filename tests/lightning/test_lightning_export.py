"""Export: ONNX served by onnxruntime equals torch, and the native files round-trip."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("binomlab_lightning")
ort = pytest.importorskip("onnxruntime")

import binomlab as bl  # noqa: E402
from binomlab.errors import BinomlabError, ModelFileError  # noqa: E402
from binomlab.export import load  # noqa: E402
from binomlab.protocol import TrainConfig, TrainData  # noqa: E402
from binomlab.specs import MLP, Logistic  # noqa: E402
from binomlab_lightning import LightningBackend, load_native  # noqa: E402


def synthetic(groups: int = 150, d: int = 3, *, seed: int = 0) -> TrainData:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(groups, d)).astype(np.float32)
    n = rng.integers(1, 20, groups).astype(np.float64)
    k = rng.binomial(n.astype(int), 1 / (1 + np.exp(-(X[:, 0] - X[:, 1])))).astype(np.float64)
    return TrainData(X, k, n)


CASES = {
    "logistic-lbfgs": (Logistic(), "lbfgs"),
    "mlp-adam": (MLP(hidden=(8, 4), activation="tanh", dropout=0.3), "adam"),
    "mlp-adamw-gelu": (MLP(hidden=(6,), activation="gelu"), "adamw"),
}


@pytest.fixture(scope="module", params=list(CASES))
def network(request):
    spec, optimizer = CASES[request.param]
    config = TrainConfig(optimizer=optimizer, epochs=None if optimizer == "lbfgs" else 3)
    return LightningBackend().fit(synthetic(), None, spec, config, lambda epoch, metrics: None)


def test_onnx_equals_torch(network, tmp_path) -> None:
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


def test_native_round_trip(network, tmp_path) -> None:
    files = network.save_native(tmp_path)
    assert sorted(files) == sorted(p.name for p in tmp_path.iterdir())
    description = json.loads((tmp_path / "network.json").read_text())
    assert description["spec"] == network.spec.to_dict() and description["input_dim"] == 3
    from safetensors.torch import load_file

    assert set(load_file(str(tmp_path / "weights.safetensors"))) == set(network.net.state_dict())
    again = load_native(tmp_path)
    X = synthetic(100, seed=8).X
    np.testing.assert_array_equal(again.predict_logits(X), network.predict_logits(X))
    assert again.spec == network.spec and again.n_params == network.n_params


def test_load_native_errors(network, tmp_path) -> None:
    with pytest.raises(ModelFileError, match="not found"):
        load_native(tmp_path)
    network.save_native(tmp_path)
    description = json.loads((tmp_path / "network.json").read_text())
    description["input_dim"] = 5
    (tmp_path / "network.json").write_text(json.dumps(description))
    with pytest.raises(ModelFileError, match="do not fit"):
        load_native(tmp_path)


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
    fitted = bl.fit(g, model="mlp:8", backend="lightning", epochs=3)
    path = fitted.export(tmp_path / "model")
    served = load(path)
    assert served.manifest["framework_versions"].keys() == {"torch", "lightning"}
    assert served.manifest["files"]["native"] == ["weights.safetensors", "network.json"]
    np.testing.assert_allclose(served.predict_proba(g), fitted.predict_proba(g), rtol=0, atol=1e-6)
