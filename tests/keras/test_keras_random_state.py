"""bl.fit(backend="keras") leaves TensorFlow unseeded for a caller who never seeded it: a plain
Keras fit still reshuffles every epoch afterwards, also after a fit that raised.

The caller's generators coming back are tested for Keras in tests/test_plugin_random_state.py,
and under KERAS_BACKEND=torch in tests/keras/test_keras_backend.py.
"""

from __future__ import annotations

import numpy as np
import pytest

# the plugin first: it quiets TensorFlow's start-up messages, which must precede its import
pytest.importorskip("binomlab_keras")
keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

import binomlab as bl  # noqa: E402
from binomlab.testing import synthetic_rows  # noqa: E402


@pytest.fixture(scope="module")
def groups() -> bl.Grouped:
    return bl.group(synthetic_rows(300), ["colour", "size", "flag"], "y")


def fit(groups: bl.Grouped, **config) -> bl.Fitted:
    return bl.fit(groups, model="mlp:4", backend="keras", epochs=2, **config)


def shuffles(epochs: int = 2) -> list[list[int]]:
    """The order in which a plain Keras ``fit(shuffle=True)`` serves 32 rows, per epoch."""
    served = []

    class Spy(keras.Sequential):
        def train_step(self, data):
            served.append(np.asarray(data[0]).ravel().astype(int).tolist())
            return super().train_step(data)

    x = np.arange(32, dtype="float32").reshape(-1, 1)
    model = Spy([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    model.fit(x, x, batch_size=32, epochs=epochs, shuffle=True, verbose=0)
    return served


def test_a_users_keras_fit_still_reshuffles_every_epoch(groups) -> None:
    tf.random.set_seed(None)  # a user who never seeded TensorFlow
    first, second = shuffles()
    assert first != second
    fit(groups)
    first, second = shuffles()
    assert sorted(first) == sorted(second) == list(range(32))
    assert first != second


def test_a_users_keras_fit_still_reshuffles_after_training_raises(groups) -> None:
    class Boom(RuntimeError):
        pass

    def explode(epoch: int, metrics) -> None:
        raise Boom

    tf.random.set_seed(None)
    with pytest.raises(Boom):
        fit(groups, callbacks=[explode])
    first, second = shuffles()
    assert first != second
