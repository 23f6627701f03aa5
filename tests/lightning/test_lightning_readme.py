"""The README's Training section runs as written, on the real flights data."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("binomlab_lightning")

import binomlab as bl
from binomlab import datasets

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.slow
def test_readme_training_section_runs(tmp_path, monkeypatch) -> None:
    code = re.search(r"## Training\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    rows = datasets.flights()
    g = bl.group(rows, ["carrier", "origin", "hour"], "delayed", drop_null_labels=True)
    train, test = g.split(0.2, seed=0)
    new_rows = rows.head(100).select("carrier", "origin", "hour")
    monkeypatch.chdir(tmp_path)
    scope = {"bl": bl, "train": train, "test": test, "new_rows": new_rows}
    exec(compile(code, str(README), "exec"), scope)
    fitted, glm = scope["fitted"], scope["glm"]
    assert fitted.history.height == 20
    assert glm.stop_reason == "converged"
    served = bl.load(tmp_path / "models" / "mlp")
    assert np.allclose(served.predict_proba(new_rows), fitted.predict_proba(new_rows), atol=1e-5)
    # the MLP learns something beyond the base rate on held-out trials
    base = bl.evaluate(test, np.full(len(test), train.rate))["nll"]
    assert bl.evaluate(test, fitted)["nll"] < base
