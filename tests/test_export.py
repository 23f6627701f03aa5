"""Export to model.onnx + manifest.json, and bl.load served by onnxruntime."""

from __future__ import annotations

import json
import shutil

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
    original = (path / "model.onnx").read_bytes()
    (path / "model.onnx").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(bl.ModelFileError, match=r"model.onnx' is not the file that was exported"):
        bl.load(path)
    (path / "model.onnx").write_bytes(original[: len(original) // 2])  # truncated
    with pytest.raises(bl.ModelFileError, match=r"model.onnx' is not the file that was exported"):
        bl.load(path)
    (path / "model.onnx").unlink()
    with pytest.raises(bl.ModelFileError, match=r"model.onnx' is missing"):
        bl.load(path)
    no_onnx = {**manifest, "files": {"native": ["weights.json"]}}
    _seal(path, no_onnx)
    with pytest.raises(bl.ModelFileError, match=r"holds no ONNX model"):
        bl.load(path)


def _seal(path, manifest) -> None:
    """Write ``manifest`` with its checksum recomputed (as a deliberate edit would)."""
    from binomlab.manifest import checksum

    (path / "manifest.json").write_text(json.dumps({**manifest, "checksum": checksum(manifest)}))


def test_an_edited_manifest_is_refused(fitted, tmp_path) -> None:
    """A change that still matches the schema (another scale for a numeric feature) would
    change every prediction: the manifest's checksum catches it."""
    path = fitted.export(tmp_path / "model")
    manifest = json.loads((path / "manifest.json").read_text())
    column = next(c for c in manifest["encoder"]["columns"] if c["kind"] == "numeric")
    column["scale"] *= 2
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(bl.ModelFileError, match=r"was edited after export"):
        bl.load(path)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.pop("encoder"), r"field 'encoder' is missing"),
        (lambda m: m.update(encoder="one-hot"), r"'encoder': 'one-hot' is not of type 'object'"),
        (lambda m: m["encoder"].pop("columns"), r"field 'encoder.columns' is missing"),
        (lambda m: m["encoder"]["columns"][0].update(kind="x"), r"'encoder.columns.0.kind'"),
        (lambda m: m.update(n_params="12"), r"field 'n_params': '12' is not of type 'integer'"),
        (lambda m: m["files"].update(onnx="../../etc/passwd"), r"field 'files.onnx'"),
        (lambda m: m["sha256"].update({"../x": "0" * 64}), r"field 'sha256'"),
        (lambda m: m["in_sample"].update(fingerprint="abc"), r"'in_sample.fingerprint'"),
    ],
)
def test_a_manifest_that_does_not_match_its_schema_names_the_field(
    fitted, tmp_path, edit, match
) -> None:
    path = fitted.export(tmp_path / "model")
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(bl.ModelFileError, match=match):
        bl.load(path)


def test_the_onnx_file_of_another_model_is_refused(fitted, tmp_path) -> None:
    """A model.onnx copied in from another model: caught by its hash, and (with the hash
    updated to match) by its input width against the encoder."""
    from binomlab.manifest import sha256

    narrow = bl.fit(
        bl.group(synthetic_rows(400, seed=3), ["colour"], "y"), backend="reference"
    ).export(tmp_path / "narrow")
    path = fitted.export(tmp_path / "model")
    shutil.copyfile(narrow / "model.onnx", path / "model.onnx")
    with pytest.raises(bl.ModelFileError, match=r"not the file that was exported"):
        bl.load(path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["sha256"]["model.onnx"] = sha256(path / "model.onnx")
    _seal(path, manifest)  # a forger who also recomputes the checksums
    with pytest.raises(bl.ModelFileError, match=r"input width .* the file is not this model's"):
        bl.load(path)
    manifest.pop("onnx")
    _seal(path, manifest)
    with pytest.raises(bl.ModelFileError, match=r"takes \d+ input columns, but the encoder"):
        bl.load(path)


def test_export_refuses_a_non_empty_folder_and_replaces_it_whole(fitted, tmp_path) -> None:
    path = fitted.export(tmp_path / "model")
    (path / "stale.txt").write_text("from an earlier export")
    with pytest.raises(bl.BinomlabError, match=r"the folder is not empty. Pass overwrite=True"):
        fitted.export(path)
    assert (path / "stale.txt").exists()  # refused: nothing touched
    fitted.export(path, formats="onnx", overwrite=True)
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "model.onnx"]
    raw = synthetic_rows(5).with_columns(dist=pl.lit(333.0))
    assert bl.load(path).predict_proba(raw).shape == (5,)
    file = tmp_path / "a-file"
    file.write_text("x")
    with pytest.raises(bl.BinomlabError, match=r"it is a file"):
        fitted.export(file)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left
    modes = {p.stat().st_mode & 0o777 for p in path.iterdir()}
    assert len(modes) == 1


def test_a_resealed_manifest_that_contradicts_itself_is_refused(fitted, tmp_path) -> None:
    """Edits with the checksum recomputed: fields that must agree are cross-checked."""
    path = fitted.export(tmp_path / "model")
    manifest = json.loads((path / "manifest.json").read_text())
    for edit, match in (
        ({"phi": 5.0}, r"'phi'/'phi_model' do not match 'loss'"),
        ({"phi": -1.0}, r"field 'phi'"),
        ({"rank": manifest["n_params"] + 3}, r"'rank' exceeds 'n_params'"),
        ({"coefficients": []}, r"'coefficients' do not have one row per parameter"),
    ):
        _seal(path, {**manifest, **edit})
        with pytest.raises(bl.ModelFileError, match=match):
            bl.load(path)


def test_load_and_export_check_their_arguments(fitted, tmp_path) -> None:
    for bad in (None, 42):
        with pytest.raises(bl.BinomlabError, match=r"Expected path to be a model folder"):
            bl.load(bad)
        with pytest.raises(bl.BinomlabError, match=r"Expected path to be a folder"):
            fitted.export(bad)
    with pytest.raises(bl.BinomlabError, match=r"Expected formats to be a name or a selection"):
        fitted.export(tmp_path / "m", formats=None)
    path = fitted.export(tmp_path / "ok")
    assert bl.load(path / "manifest.json").features == bl.load(path).features
