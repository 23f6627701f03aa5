"""bl.fit(backend="lightning") keeps the caller's own Lightning seed variables.

The caller's generators and environment coming back are tested for Lightning in
tests/test_plugin_random_state.py.
"""

from __future__ import annotations

import os

import pytest

import binomlab as bl
from binomlab.testing import synthetic_rows

pytest.importorskip("torch")
pytest.importorskip("binomlab_lightning")


@pytest.fixture(scope="module")
def groups() -> bl.Grouped:
    return bl.group(synthetic_rows(300), ["colour", "size", "flag"], "y")


def test_the_callers_lightning_seed_variables_are_kept(groups, monkeypatch) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "42")
    monkeypatch.setenv("PL_SEED_WORKERS", "0")
    bl.fit(groups, model="mlp:4", backend="lightning", epochs=2, seed=7)
    assert os.environ["PL_GLOBAL_SEED"] == "42"
    assert os.environ["PL_SEED_WORKERS"] == "0"
