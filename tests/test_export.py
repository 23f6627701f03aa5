"""Export to model.onnx + manifest.json, and bl.load served by onnxruntime."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

import binomlab as bl
from binomlab.testing import synthetic_rows


@pytest.fixture(scope="module")
def fitted() -> bl.Fitted:
    df = synthetic_rows().with_columns(dist=pl.Series(np.linspace(0, 999, 4000)))
    g = bl.group(df, ["colour", "size", "flag", "dist"], "y", bins={"dist": [0, 250, 1000]})
    return bl.fit(g, backend="reference")


def test_round_trip_predicts_from_raw_columns(fitted, tmp_path) -> None:
    path = fitted.export(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "model.onnx", "weights.json"]
    served = bl.load(path)
    raw = synthetic_rows(300, seed=5).drop("y").with_columns(dist=pl.lit(333.0))
    assert np.allclose(served.predict_proba(raw), fitted.predict_proba(raw), atol=1e-6, rtol=0)
    assert served.features == ("colour", "size", "flag", "dist")
    assert served.backend == "reference"
    assert "Predictor(logistic, backend='reference'" in repr(served)


def test_manifest_contents(fitted, tmp_path) -> None:
    path = fitted.export(tmp_path / "model")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == "binomlab-model"
    assert manifest["format_version"] == 2
    assert manifest["binomlab_version"] == bl.__version__
    assert manifest["backend"] == "reference"
    assert set(manifest["framework_versions"]) == {"numpy", "scipy"}
    assert manifest["spec"] == {"kind": "logistic"}
    assert manifest["features"][0] == {"name": "colour", "dtype": "String"}
    assert manifest["bins"] == {"dist": [0.0, 250.0, 1000.0]}
    assert manifest["training"]["stop_reason"] == "converged"
    assert manifest["training"]["train_nll"] == pytest.approx(fitted.history["train_nll"][-1])
    assert manifest["files"] == {"onnx": "model.onnx", "native": ["weights.json"]}
    assert manifest["rank"] == fitted.rank_ == 1 + fitted.encoder.n_outputs
    assert manifest["in_sample"]["fingerprint"] == fitted.in_sample_.fingerprint
    assert manifest["in_sample"]["df_resid"] == fitted.df_resid_
    assert len(manifest["coefficients"]) == fitted.rank_


def test_onnx_only_export(fitted, tmp_path) -> None:
    path = fitted.export(tmp_path / "m", formats=["onnx"])
    assert not (path / "weights.json").exists()
    with pytest.raises(bl.BinomlabError, match=r"Received: \('pickle',\)"):
        fitted.export(tmp_path / "x", formats=["pickle"])


def test_load_errors(fitted, tmp_path) -> None:
    with pytest.raises(bl.ModelFileError, match=r"manifest\.json is missing"):
        bl.load(tmp_path)
    path = fitted.export(tmp_path / "model")
    served = bl.load(path)
    with pytest.raises(bl.ColumnNotFoundError, match=r"Feature 'flag' not found.*Available"):
        served.predict_proba(synthetic_rows(5).drop("flag").with_columns(dist=pl.lit(1.0)))

    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(bl.ModelFileError, match=r"format version 99.*reads version 2"):
        bl.load(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(bl.ModelFileError, match=r"is corrupted \(not valid JSON"):
        bl.load(path)
    (path / "manifest.json").write_text(json.dumps(manifest))
    (path / "model.onnx").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(bl.ModelFileError, match=r"model.onnx' is corrupted or not an ONNX model"):
        bl.load(path)
    (path / "model.onnx").unlink()
    with pytest.raises(bl.ModelFileError, match=r"holds no ONNX model"):
        bl.load(path)
