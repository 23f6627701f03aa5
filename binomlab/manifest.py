"""The model folder's ``manifest.json``: its JSON schema, and the checks ``bl.load`` makes.

A manifest that does not match :data:`SCHEMA` (a missing or mistyped field) is refused naming
the field; every file of the folder is listed with its sha256, and a file that was replaced,
truncated or removed is refused naming the file; file names are plain names inside the folder.
The manifest carries a ``checksum`` of its own content (every field but that one), so an edit
to it — a changed scale, level or coefficient that still matches the schema — is refused too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from binomlab.errors import ModelFileError

__all__ = ["SCHEMA", "check_checksum", "check_files", "checksum", "sha256", "validate"]

_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9_][A-Za-z0-9._-]*$", "maxLength": 200}
_NUMBER_OR_NULL = {"type": ["number", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_COLUMN = {
    "type": "object",
    "required": ["name", "kind"],
    "properties": {
        "name": {"type": "string"},
        "kind": {"enum": ["string", "bool", "binned", "numeric"]},
        "levels": {"type": "array"},
        "pooled": {"type": "array"},
        "reference": {"type": "integer", "minimum": 0},
        "edges": {"type": "array", "items": {"type": ["number", "string"]}},
        "mean": {"type": "number"},
        "scale": {"type": "number"},
        "null_indicator": {"type": "boolean"},
    },
}

_REQUIRED = [
    "checksum",
    "format",
    "format_version",
    "binomlab_version",
    "backend",
    "framework_versions",
    "spec",
    "loss",
    "n_params",
    "rank",
    "encoder",
    "features",
    "bins",
    "training",
    "in_sample",
    "coefficients",
    "files",
    "sha256",
]

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "binomlab model manifest",
    "type": "object",
    "required": _REQUIRED,
    "properties": {
        "format": {"const": "binomlab-model"},
        "format_version": {"type": "integer"},
        "binomlab_version": {"type": "string"},
        "created": {"type": "string"},
        "backend": {"type": "string", "minLength": 1},
        "framework_versions": {"type": "object", "additionalProperties": {"type": "string"}},
        "spec": {
            "type": "object",
            "required": ["kind"],
            "properties": {"kind": {"enum": ["logistic", "mlp", "gbdt"]}},
        },
        "loss": {"enum": ["binomial", "beta-binomial"]},
        "phi": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "phi_model": {"enum": ["scalar", "network", None]},
        "n_params": {"type": "integer", "minimum": 0},
        "rank": _INT_OR_NULL,
        "encoder": {
            "type": "object",
            "required": ["version", "design", "unseen", "columns"],
            "properties": {
                "version": {"type": "integer"},
                "design": {"enum": ["treatment", "one-hot"]},
                "unseen": {"enum": ["error", "other"]},
                "aliased": {"type": "array", "items": {"type": "string"}},
                "form": {"enum": ["dense", "index"]},
                "columns": {"type": "array", "minItems": 1, "items": _COLUMN},
            },
        },
        "features": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "dtype"],
                "properties": {"name": {"type": "string"}, "dtype": {"type": "string"}},
            },
        },
        "bins": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": ["number", "string"]}},
        },
        "training": {
            "type": "object",
            "required": ["epochs", "best_epoch", "stop_reason", "config"],
            "properties": {
                "epochs": {"type": "integer", "minimum": 0},
                "best_epoch": {"type": "integer", "minimum": 0},
                "stop_reason": {"type": "string"},
                "config": {"type": "object"},
                "train_nll": _NUMBER_OR_NULL,
                "val_nll": _NUMBER_OR_NULL,
            },
        },
        "in_sample": {
            "type": "object",
            "required": ["fingerprint", "groups", "trials", "rank", "df_resid"],
            "properties": {
                "fingerprint": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "groups": {"type": "integer", "minimum": 1},
                "trials": {"type": "integer", "minimum": 1},
                "rank": _INT_OR_NULL,
                "df_resid": _INT_OR_NULL,
                "df_note": {"type": ["string", "null"]},
                "log_likelihood": _NUMBER_OR_NULL,
                "deviance": _NUMBER_OR_NULL,
                "pearson_chi2": _NUMBER_OR_NULL,
                "aic": _NUMBER_OR_NULL,
                "bic": _NUMBER_OR_NULL,
            },
        },
        "coefficients": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "required": ["term", "level", "estimate", "std_error"],
                "properties": {
                    "term": {"type": "string"},
                    "level": {"type": ["string", "null"]},
                    "estimate": {"type": "number"},
                    "std_error": _NUMBER_OR_NULL,
                },
            },
        },
        "summary_note": {"type": ["string", "null"]},
        "encoding": {"type": "object"},
        "onnx": {
            "type": "object",
            "required": ["opset", "input_width"],
            "properties": {
                "opset": {"type": "integer", "minimum": 1},
                "input_width": {"type": "integer", "minimum": 0},
            },
        },
        "files": {
            "type": "object",
            "properties": {"onnx": _NAME, "native": {"type": "array", "items": _NAME}},
            "additionalProperties": False,
        },
        "recalibration": {
            "type": "object",
            "required": ["method", "parameters", "fitted_on", "trials"],
            "properties": {
                "method": {"enum": ["isotonic", "platt", "temperature"]},
                "parameters": {
                    "type": "object",
                    "additionalProperties": {
                        "type": ["number", "array"],
                        "items": {"type": "number"},
                    },
                },
                "fitted_on": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "groups": {"type": "integer", "minimum": 1},
                "trials": {"type": "integer", "minimum": 1},
                "stop_reason": {"type": "string"},
            },
        },
        "checksum": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "sha256": {
            "type": "object",
            "propertyNames": _NAME,
            "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        },
    },
}
"""JSON schema (draft 2020-12) of ``manifest.json``."""


def validate(manifest: Any, path: Path) -> None:
    """Check ``manifest`` against :data:`SCHEMA`.

    Raises
    ------
    ModelFileError
        Naming the first field at fault and what was expected.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(SCHEMA)
    error = jsonschema.exceptions.best_match(validator.iter_errors(manifest))
    if error is None:
        return
    field = ".".join(str(p) for p in error.absolute_path) or "(the top level)"
    if error.validator == "required":
        missing = next((r for r in error.validator_value if r not in error.instance), None)
        where = f"{field}." if error.absolute_path else ""
        msg = f"{str(path)!r} is not a valid manifest: field '{where}{missing}' is missing."
    else:
        msg = f"{str(path)!r} is not a valid manifest: field '{field}': {error.message}."
    raise ModelFileError(msg)


def sha256(path: Path) -> str:
    """sha256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_files(directory: Path, manifest: Mapping[str, Any]) -> None:
    """Every file the manifest lists is in ``directory`` with its recorded sha256.

    Raises
    ------
    ModelFileError
        A listed file without a hash, a missing file, or one whose bytes changed.
    """
    hashes = manifest["sha256"]
    files = manifest["files"]
    listed = ([files["onnx"]] if "onnx" in files else []) + list(files.get("native", []))
    unhashed = [name for name in listed if name not in hashes]
    if unhashed:
        msg = f"{str(directory)!r}: the manifest lists {unhashed[0]!r} without its sha256."
        raise ModelFileError(msg)
    for name, expected in hashes.items():
        path = directory / name
        if not path.is_file():
            msg = f"{str(path)!r} is missing: the model folder is incomplete."
            raise ModelFileError(msg)
        if sha256(path) != expected:
            msg = (
                f"{str(path)!r} is not the file that was exported (its sha256 differs from the "
                "manifest's): it was replaced, truncated or edited. Export the model again."
            )
            raise ModelFileError(msg)


def checksum(manifest: Mapping[str, Any]) -> str:
    """sha256 (hex) of the manifest's content without its ``checksum`` field (canonical JSON:
    sorted keys)."""
    import json

    content = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def check_checksum(manifest: Mapping[str, Any], path: Path) -> None:
    """The manifest is the one that was exported.

    Raises
    ------
    ModelFileError
        Its content does not match its ``checksum``: it was edited after export.
    """
    if checksum(manifest) != manifest["checksum"]:
        msg = (
            f"{str(path)!r} was edited after export (its content does not match its "
            "checksum): the model it describes may not be the one in the folder. Export the "
            "model again."
        )
        raise ModelFileError(msg)
