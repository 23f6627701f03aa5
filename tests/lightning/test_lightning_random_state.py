"""bl.fit(backend="lightning") seeds its own run and leaves the caller's random state as it was."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("binomlab_lightning")

import binomlab as bl  # noqa: E402
from binomlab.testing import synthetic_rows  # noqa: E402

LIGHTNING_VARIABLES = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")


@pytest.fixture(scope="module")
def groups() -> bl.Grouped:
    return bl.group(synthetic_rows(300), ["colour", "size", "flag"], "y")


def fit(groups: bl.Grouped, **config) -> bl.Fitted:
    return bl.fit(groups, model="mlp:4", backend="lightning", epochs=2, **config)


def seed_everything(seed: int) -> None:
    """What a caller seeds: Python, NumPy's global generator and torch."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002
    torch.manual_seed(seed)


def draws() -> list[float]:
    """One unseeded draw from each global generator."""
    return [random.random(), float(np.random.rand()), float(torch.rand(()))]  # noqa: NPY002


def state() -> dict:
    """The global random state a training run could change, in comparable form."""
    numpy = np.random.get_state()  # noqa: NPY002
    return {
        "python": random.getstate(),
        "numpy": [part.tolist() if isinstance(part, np.ndarray) else part for part in numpy],
        "torch": torch.random.get_rng_state().tolist(),
        "cuda": [s.tolist() for s in torch.cuda.get_rng_state_all()]
        if torch.cuda.is_available()
        else [],
        "environment": {name: os.environ.get(name) for name in LIGHTNING_VARIABLES},
    }


@pytest.mark.parametrize("model", ["mlp:4", "logistic"])  # Adam, L-BFGS
def test_fit_leaves_the_callers_state_as_it_was(groups, model: str, monkeypatch) -> None:
    for name in LIGHTNING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    seed_everything(123)
    before = state()
    bl.fit(groups, model=model, backend="lightning", epochs=2, seed=7)
    assert state() == before


def test_the_callers_lightning_seed_variables_are_kept(groups, monkeypatch) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "42")
    monkeypatch.setenv("PL_SEED_WORKERS", "0")
    fit(groups, seed=7)
    assert os.environ["PL_GLOBAL_SEED"] == "42"
    assert os.environ["PL_SEED_WORKERS"] == "0"


def test_the_next_draws_are_those_without_the_fit(groups) -> None:
    seed_everything(123)
    draws()
    fit(groups, seed=7)
    after = draws()
    seed_everything(123)
    draws()
    assert after == draws()


def test_state_is_restored_when_training_raises(groups, monkeypatch) -> None:
    class Boom(RuntimeError):
        pass

    def explode(epoch: int, metrics) -> None:
        raise Boom

    for name in LIGHTNING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    before = state()
    with pytest.raises(Boom):
        fit(groups, callbacks=[explode])
    assert state() == before


def test_the_callers_state_does_not_change_the_fit(groups) -> None:
    a = fit(groups, seed=3).predict_proba(groups)
    seed_everything(99)
    b = fit(groups, seed=3).predict_proba(groups)
    np.testing.assert_array_equal(a, b)
