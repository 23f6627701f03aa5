"""``bl.fit`` through every installed plugin backend seeds its own run and leaves the caller's
random state as it was: Python's and NumPy's global generators and those of the plugin's
framework (torch; TensorFlow and Keras), also when training raises.

What only one plugin touches (a plain Keras fit's shuffling, Lightning's seed variables, Keras
on torch) is tested in tests/keras and tests/lightning.
"""

from __future__ import annotations

import importlib
import os
import random

import numpy as np
import pytest

import binomlab as bl
from binomlab.testing import synthetic_rows

#: the environment variables Lightning's seed_everything sets
LIGHTNING_VARIABLES = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")
PLUGINS = [name for name in bl.backends.available(check=True) if name in ("keras", "lightning")]
pytestmark = pytest.mark.skipif(not PLUGINS, reason="no plugin backend installed")


def seed_everything(backend: str, seed: int) -> None:
    """What a caller seeds: Python, NumPy's global generator and the plugin's framework."""
    if backend == "keras":
        importlib.import_module("keras").utils.set_random_seed(seed)  # also TensorFlow's
        return
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002
    importlib.import_module("torch").manual_seed(seed)


def draws(backend: str) -> list[float]:
    """One unseeded draw from each global generator."""
    common = [random.random(), float(np.random.rand())]  # noqa: NPY002
    if backend == "keras":
        keras, tf = (importlib.import_module(name) for name in ("keras", "tensorflow"))
        return [*common, float(keras.random.uniform(())), float(tf.random.uniform(()))]
    return [*common, float(importlib.import_module("torch").rand(()))]


def state(backend: str) -> dict:
    """The global random state a training run could change, in comparable form."""
    numpy = np.random.get_state()  # noqa: NPY002
    common = {
        "python": random.getstate(),
        "numpy": [part.tolist() if isinstance(part, np.ndarray) else part for part in numpy],
        "environment": {name: os.environ.get(name) for name in LIGHTNING_VARIABLES},
    }
    if backend == "keras":
        return common
    torch = importlib.import_module("torch")
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {
        **common,
        "torch": torch.random.get_rng_state().tolist(),
        "cuda": [s.tolist() for s in cuda],
    }


@pytest.fixture(scope="module", params=PLUGINS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def groups() -> bl.Grouped:
    return bl.group(synthetic_rows(300), ["colour", "size", "flag"], "y")


@pytest.fixture
def no_seed_variables(monkeypatch) -> None:
    for name in LIGHTNING_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def fit(groups: bl.Grouped, backend: str, **config) -> bl.Fitted:
    return bl.fit(groups, model="mlp:4", backend=backend, epochs=2, **config)


@pytest.mark.usefixtures("no_seed_variables")
@pytest.mark.parametrize("model", ["mlp:4", "logistic"])  # Adam, L-BFGS
def test_fit_leaves_the_callers_state_as_it_was(backend, groups, model: str) -> None:
    seed_everything(backend, 123)
    draws(backend)
    before = state(backend)
    bl.fit(groups, model=model, backend=backend, epochs=2, seed=7)
    assert state(backend) == before


@pytest.mark.parametrize("model", ["mlp:4", "logistic"])  # Adam, L-BFGS
def test_the_next_draws_are_those_without_the_fit(backend, groups, model: str) -> None:
    seed_everything(backend, 123)
    draws(backend)
    bl.fit(groups, model=model, backend=backend, epochs=2, seed=7)
    after = draws(backend)
    # the caller's run without the bl.fit in the middle
    seed_everything(backend, 123)
    draws(backend)
    assert after == draws(backend)


@pytest.mark.usefixtures("no_seed_variables")
def test_state_is_restored_when_training_raises(backend, groups) -> None:
    class Boom(RuntimeError):
        pass

    def explode(epoch: int, metrics) -> None:
        raise Boom

    before = state(backend)
    with pytest.raises(Boom):
        fit(groups, backend, callbacks=[explode])
    assert state(backend) == before


def test_the_callers_state_does_not_change_the_fit(backend, groups) -> None:
    a = fit(groups, backend, seed=3).predict_proba(groups)
    seed_everything(backend, 99)
    b = fit(groups, backend, seed=3).predict_proba(groups)
    np.testing.assert_array_equal(a, b)
