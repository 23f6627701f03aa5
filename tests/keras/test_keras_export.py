"""Export: what only Keras refuses. A ``.keras`` file holding code is not executed (safe mode),
and a Keras model that binomlab did not build is neither loaded nor exported to ONNX.

ONNX, the native round trip and the core's export are tested for Keras in
tests/test_plugin_export.py.
"""

from __future__ import annotations

import pytest

pytest.importorskip("binomlab_keras")  # first: it quiets TensorFlow's start-up messages
keras = pytest.importorskip("keras")
pytest.importorskip("onnx")

from binomlab.errors import ModelFileError  # noqa: E402
from binomlab_keras import load_native  # noqa: E402
from binomlab_keras.export import export_onnx  # noqa: E402


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
