"""The Keras model of the index form: ``IndexDense`` (the one-hot ``Dense`` as a lookup) and
``LevelEmbeddings``, against the one-hot model of the same seed, through ``model.keras`` and
ONNX."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("binomlab_keras")  # first: it quiets TensorFlow's start-up messages
pytest.importorskip("keras")

from binomlab.layout import IndexLayout
from binomlab.specs import MLP
from binomlab_keras.export import export_onnx, read_native, save_native
from binomlab_keras.model import (
    IndexDense,
    LevelEmbeddings,
    build_model,
    kernels,
    spec_from_model,
)
from binomlab_keras.network import logits

LAYOUT = IndexLayout(
    width=8,
    codes=(0, 2),
    numbers=(1,),
    number_rows=(7,),
    names=("colour", "size"),
    levels=(3, 4),
    firsts=(0, 3),
)


def _codes(rows: int = 50) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.column_stack(
        [rng.integers(0, 3, rows), rng.normal(size=rows), 3 + rng.integers(0, 4, rows)]
    ).astype(np.float32)


def test_the_index_model_is_the_one_hot_model_of_its_seed() -> None:
    spec = MLP(hidden=(5, 3), activation="tanh")
    index = build_model(spec, LAYOUT.n_inputs, seed=4, layout=LAYOUT)
    dense = build_model(spec, LAYOUT.width, seed=4)
    assert isinstance(index.get_layer("hidden_1"), IndexDense)
    for a, b in zip(index.get_weights(), dense.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    X = _codes()
    np.testing.assert_allclose(logits(index, X), logits(dense, LAYOUT.dense(X)), atol=1e-6)
    assert spec_from_model(index) == spec
    assert [v.shape for v in kernels(index)] == [v.shape for v in kernels(dense)]


@pytest.mark.parametrize("spec", [MLP(hidden=(4,)), MLP(hidden=(4,), embed={"size": 2})])
@pytest.mark.filterwarnings("ignore:.*__array__ implementation:DeprecationWarning")  # Keras saving
def test_index_models_round_trip_through_model_keras_and_onnx(spec, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    model = build_model(spec, LAYOUT.n_inputs, seed=1, layout=LAYOUT)
    X = _codes()
    save_native(model, tmp_path)
    loaded, read_spec, _, _ = read_native(tmp_path)  # safe_mode: registered layers only
    assert read_spec == spec
    np.testing.assert_allclose(logits(loaded, X), logits(model, X), atol=1e-7)
    export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(None, {"x": X})
    np.testing.assert_allclose(onnx_logits, logits(model, X), atol=1e-6)


def test_embeddings_are_decayed_and_sized_by_the_spec() -> None:
    spec = MLP(hidden=(4,), embed={"size": 2})
    model = build_model(spec, LAYOUT.n_inputs, layout=LAYOUT)
    embeddings = model.get_layer("embeddings")
    assert isinstance(embeddings, LevelEmbeddings)
    assert [tuple(t.shape) for t in embeddings.tables] == [(3, 3), (4, 2)]  # 3 levels → 3
    assert embeddings.width == 3 + 2 + 1
    assert {id(t) for t in embeddings.tables} <= {id(v) for v in kernels(model)}
    table = np.asarray(embeddings.tables[1].numpy())
    assert np.abs(table).max() <= 0.02  # N(0, 0.01²) truncated at 2σ


def test_an_embedding_spec_needs_a_layout() -> None:
    with pytest.raises(ValueError, match="needs the index form's layout"):
        build_model(MLP(hidden=(4,), embed=2), 8)
    with pytest.raises(ValueError, match="feeds the first layer of an MLP or a logistic"):
        build_model(MLP(hidden=(4,)), 8, layout=LAYOUT)
