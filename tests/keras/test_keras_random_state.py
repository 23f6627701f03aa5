"""bl.fit(backend="keras") seeds its own run and leaves the caller's random state as it was."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

# the plugin first: it quiets TensorFlow's start-up messages, which must precede its import
pytest.importorskip("binomlab_keras")
keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

import binomlab as bl  # noqa: E402
from binomlab.testing import synthetic_rows  # noqa: E402

USER_SEED = 123


@pytest.fixture(scope="module")
def groups() -> bl.Grouped:
    return bl.group(synthetic_rows(300), ["colour", "size", "flag"], "y")


def fit(groups: bl.Grouped, **config) -> bl.Fitted:
    return bl.fit(groups, model="mlp:4", backend="keras", epochs=2, **config)


def draws() -> list[float]:
    """One unseeded draw from each global generator Keras's set_random_seed seeds."""
    return [
        random.random(),
        float(np.random.rand()),  # noqa: NPY002
        float(keras.random.uniform(())),
        float(tf.random.uniform(())),
    ]


def numpy_state() -> list:
    """NumPy's global state in comparable form."""
    state = np.random.get_state()  # noqa: NPY002
    return [part.tolist() if isinstance(part, np.ndarray) else part for part in state]


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


@pytest.mark.parametrize("model", ["mlp:4", "logistic"])  # Adam, L-BFGS
def test_fit_leaves_the_callers_draws_where_they_were(groups, model: str) -> None:
    keras.utils.set_random_seed(USER_SEED)
    draws()
    python, numpy = random.getstate(), numpy_state()
    bl.fit(groups, model=model, backend="keras", epochs=2, seed=7)
    assert random.getstate() == python
    assert numpy_state() == numpy
    after = draws()
    # the caller's run without the bl.fit in the middle
    keras.utils.set_random_seed(USER_SEED)
    draws()
    assert after == draws()


def test_a_users_keras_fit_still_reshuffles_every_epoch(groups) -> None:
    tf.random.set_seed(None)  # a user who never seeded TensorFlow
    first, second = shuffles()
    assert first != second
    fit(groups)
    first, second = shuffles()
    assert sorted(first) == sorted(second) == list(range(32))
    assert first != second


def test_state_is_restored_when_training_raises(groups) -> None:
    class Boom(RuntimeError):
        pass

    def explode(epoch: int, metrics) -> None:
        raise Boom

    tf.random.set_seed(None)
    python, numpy = random.getstate(), numpy_state()
    with pytest.raises(Boom):
        fit(groups, callbacks=[explode])
    assert random.getstate() == python
    assert numpy_state() == numpy
    first, second = shuffles()
    assert first != second


def test_the_callers_state_does_not_change_the_fit(groups) -> None:
    a = fit(groups, seed=3).predict_proba(groups)
    keras.utils.set_random_seed(99)  # Python, NumPy, TensorFlow and Keras's generator
    b = fit(groups, seed=3).predict_proba(groups)
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_torch_state_is_restored_under_keras_on_torch() -> None:
    """With KERAS_BACKEND=torch, set_random_seed seeds torch too: its generator comes back."""
    pytest.importorskip("torch")
    script = textwrap.dedent(
        """
        import random
        import numpy as np
        import torch
        import keras
        import binomlab as bl
        from binomlab.testing import synthetic_rows

        assert keras.backend.backend() == "torch"
        g = bl.group(synthetic_rows(300), ["colour", "size", "flag"], "y")
        torch.manual_seed(123)
        torch.rand(3)
        before = torch.random.get_rng_state()
        python, numpy = random.getstate(), np.random.get_state()[1].copy()
        bl.fit(g, model="mlp:4", backend="keras", epochs=2, seed=7)
        assert torch.equal(torch.random.get_rng_state(), before)
        assert random.getstate() == python
        assert np.array_equal(np.random.get_state()[1], numpy)
        print("ok")
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
