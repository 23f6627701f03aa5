"""Exporting fitted models and serving them with onnxruntime, whatever trained them.

A model directory holds

* ``model.onnx`` — the network: one input, float32 ``[batch, d]`` (the encoded features),
  whose first output holds the logits (``[batch]`` or ``[batch, 1]``); a beta-binomial model
  trained with ``phi="network"`` has a second output, ``log φ`` of the same shape;
* ``manifest.json`` — format version, binomlab and framework versions, backend, model spec,
  encoder, feature names and dtypes, bin edges, training summary and the files present;
* the backend's native artefact(s) (``.keras``, safetensors, JSON weights, ...).

A model recalibrated with :func:`binomlab.recalibrate` is exported with the map appended to
the ONNX graph (its first output is then the recalibrated logit, float64) and recorded in the
manifest's ``recalibration``; the native artefacts are the base network's.

:func:`load` reads the manifest and the ONNX file only; it never unpickles anything.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from importlib import metadata as _metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from binomlab import glm
from binomlab.encoding import Encoder
from binomlab.errors import BinomlabError, ModelFileError
from binomlab.grouped import Grouped
from binomlab.manifest import check_checksum, check_files, checksum, sha256, validate
from binomlab.nll import sigmoid
from binomlab.specs import spec_from_dict

if TYPE_CHECKING:
    from binomlab.training import Fitted

__all__ = ["FORMAT_VERSION", "Predictor", "export_model", "load"]

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
FORMATS = ("onnx", "native")


def _version() -> str:
    try:
        return _metadata.version("binomlab")
    except _metadata.PackageNotFoundError:  # a source tree that is not installed
        return "0+unknown"


def export_model(
    fitted: Fitted,
    path: str | Path,
    *,
    formats: str | Iterable[str] = FORMATS,
    overwrite: bool = False,
) -> Path:
    """Write ``fitted`` into the directory ``path`` and return it.

    ``fitted`` is a :class:`~binomlab.Fitted`, or a :class:`~binomlab.Recalibrated` of one
    (from :func:`binomlab.recalibrate`): its map is appended to the ONNX graph and recorded in
    the manifest; everything else is its base model's, but for the GLM coefficients, which
    are not kept (the loaded model refuses ``summary()``).

    The files are written into a temporary folder beside ``path`` and renamed into place, so
    a failed export leaves nothing half-written and a replaced folder keeps no stale file.
    The manifest records the sha256 of every file (:func:`load` checks them), the ONNX
    model's opset and input width. Files get the permissions of the process's umask.

    Parameters
    ----------
    formats
        Any of ``"onnx"`` (``model.onnx``, what :func:`load` serves) and ``"native"`` (the
        backend's own format); one name or several.
    overwrite
        Replace ``path`` when it is a non-empty folder (the whole folder: nothing of it is
        kept). Without it, a non-empty folder is an error.

    Raises
    ------
    BinomlabError
        An unknown format or an empty selection; ``path`` is a file, or a non-empty folder
        without ``overwrite=True``.
    """
    if not isinstance(path, str | os.PathLike):
        msg = f"Expected path to be a folder (a str or Path). Received: path={path!r}"
        raise BinomlabError(msg)
    if not isinstance(formats, str) and not isinstance(formats, Iterable):
        msg = f"Expected formats to be a name or a selection of {FORMATS}. Received: {formats!r}"
        raise BinomlabError(msg)
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        msg = f"Expected formats to be a non-empty selection of {FORMATS}. Received: {formats!r}"
        raise BinomlabError(msg)
    if not isinstance(overwrite, bool):
        msg = f"Expected overwrite to be True or False. Received: overwrite={overwrite!r}"
        raise BinomlabError(msg)
    target = Path(path)
    _check_target(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _write_model(fitted, staging, formats)
        _apply_umask(staging)
        _replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _check_target(target: Path, overwrite: bool) -> None:
    if target.exists() and not target.is_dir():
        msg = f"Cannot export to {str(target)!r}: it is a file. Pass a folder path."
        raise BinomlabError(msg)
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        msg = (
            f"Cannot export to {str(target)!r}: the folder is not empty. Pass overwrite=True to "
            "replace it (its files are all removed), or pick a new folder."
        )
        raise BinomlabError(msg)


def _write_model(model: Fitted, directory: Path, formats: tuple[str, ...]) -> None:
    # A recalibrated model (binomlab.recalibration) wraps its base Fitted: the network, encoder
    # and training record are the base's; the map is appended to the ONNX graph and recorded
    # in the manifest, and the base's GLM coefficients, which do not describe it, are not kept.
    recalibration = getattr(model, "recalibration", None)
    fitted = model if recalibration is None else model.base
    files: dict[str, Any] = {}
    onnx_info = None
    if "onnx" in formats:
        fitted.network.export_onnx(directory / ONNX_FILE)
        if recalibration is not None:
            model.append_to_onnx(directory / ONNX_FILE)
        files["onnx"] = ONNX_FILE
        onnx_info = _onnx_facts(directory / ONNX_FILE)
    if "native" in formats:
        files["native"] = fitted.network.save_native(directory)
    kept = fitted.kept_epoch()
    manifest = {
        "format": "binomlab-model",
        "format_version": FORMAT_VERSION,
        "binomlab_version": _version(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "backend": fitted.backend,
        "framework_versions": fitted.backend_versions,
        "spec": fitted.spec.to_dict(),
        "loss": fitted.loss,
        "phi": fitted.phi_,
        "phi_model": fitted.phi_model,
        "n_params": model.n_params_,
        "rank": fitted.rank_,
        "in_sample": fitted.in_sample_.to_dict(),
        "coefficients": None
        if fitted.coefficient_table_ is None or recalibration is not None
        else fitted.coefficient_table_.to_dicts(),
        "summary_note": fitted.summary_note_
        if recalibration is None
        else _recalibrated_note(recalibration["method"]),
        "encoding": fitted.encoding,
        "encoder": fitted.encoder.to_dict(),
        "features": [{"name": f, "dtype": str(fitted.feature_dtypes[f])} for f in fitted.features],
        "bins": {c: [e if np.isfinite(e) else str(e) for e in v] for c, v in fitted.bins.items()},
        "training": {
            "epochs": fitted.epochs_,
            "best_epoch": fitted.best_epoch_,
            "stop_reason": fitted.stop_reason,
            "seconds": fitted.seconds_,
            "config": fitted.config.to_dict(),
            "optimizer": fitted.config.optimizer,
            "seed": fitted.config.seed,
            "train_nll": kept["train_nll"] if kept else None,
            "val_nll": kept["val_nll"] if kept else None,
        },
        "files": files,
        "sha256": {p.name: sha256(p) for p in sorted(directory.iterdir()) if p.is_file()},
    }
    if onnx_info is not None:
        manifest["onnx"] = onnx_info
    if recalibration is not None:
        manifest["recalibration"] = recalibration
    manifest["checksum"] = checksum(manifest)
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))


def _recalibrated_note(method: str) -> str:
    return (
        f"the model is recalibrated (method={method!r}) on held-out groups after fitting, so "
        "its predictions are not the GLM's; the coefficients and fit statistics describe the "
        "base model: call summary() on the Fitted it was recalibrated from"
    )


def _onnx_facts(path: Path) -> dict[str, int]:
    """The default-domain opset and the input width (``-1`` when not fixed) of an ONNX file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    width = dims[1].dim_value if len(dims) == 2 and dims[1].HasField("dim_value") else -1
    return {"opset": int(opset), "input_width": int(width)}


def _apply_umask(directory: Path) -> None:
    """The same permissions for the folder and every file, as the umask gives new ones."""
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for file in directory.iterdir():
        file.chmod(0o666 & ~umask)


def _replace(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``, moving an existing ``target`` away first."""
    if not target.exists():
        staging.rename(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    old.rmdir()
    target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


class Predictor(glm.GLMResults):
    """An exported model served by onnxruntime: raw feature columns in, probabilities out.

    Attributes
    ----------
    manifest
        The parsed ``manifest.json``.
    encoder
        The encoder that turns feature columns into the network's input.
    in_sample_, rank_, df_resid_, log_likelihood_, aic_, bic_
        The fit on the training groups, as the ``Fitted`` had them; :meth:`summary` gives
        the ``Fitted``'s coefficient table.
    recalibration
        None, or for a model exported from :func:`binomlab.recalibrate`'s result the map's
        record (``method``, ``parameters``, ``fitted_on``: the fingerprint of the groups it
        was fitted on, ``groups``, ``trials``, ``stop_reason``). The ONNX graph computes the
        recalibrated logit, so :meth:`predict_logits`, :meth:`predict_proba` and
        :meth:`predict_interval` (binomial, at the recalibrated probability) are the
        recalibrated model's. Such a model is not a GLM fit: :meth:`summary` is refused, and
        it has no ``in_sample_`` (nor ``rank_``, ``aic_``, ...: an AttributeError says why),
        so :func:`binomlab.evaluate` counts degrees of freedom by its held-out rule, as for
        the in-memory ``Recalibrated``.
    """

    def __init__(self, directory: Path, manifest: dict[str, Any], session: Any) -> None:
        self.directory = directory
        self.manifest = manifest
        self.encoder = Encoder.from_dict(manifest["encoder"])
        self.spec = spec_from_dict(manifest["spec"])
        self._session = session
        self._input = session.get_inputs()[0].name
        self.recalibration: dict[str, Any] | None = manifest.get("recalibration")
        if self.recalibration is None:  # a recalibrated model has no GLM fit of its own
            self.in_sample_ = glm.InSample.from_dict(manifest["in_sample"])
        rows = manifest.get("coefficients")
        self.coefficient_table_ = (
            None
            if rows is None
            else pl.DataFrame(rows, schema={k: glm.SUMMARY_SCHEMA[k] for k in
                                            ("term", "level", "estimate", "std_error")})
        )  # fmt: skip
        self.summary_note_ = manifest.get("summary_note")

    def __getattr__(self, name: str) -> Any:
        # Reached only when the normal lookup fails (a property raising AttributeError
        # included): a recalibrated model's GLM statistics, read from its absent in_sample_.
        if name in _GLM_STATISTICS and self.__dict__.get("recalibration") is not None:
            msg = f"{name} is not available: {self.__dict__.get('summary_note_')}."
            raise AttributeError(msg)
        msg = f"{type(self).__name__!r} object has no attribute {name!r}"
        raise AttributeError(msg)

    def _summary_info(self) -> dict[str, Any]:
        training = self.manifest.get("training", {})
        return {
            "backend": self.backend,
            "optimizer": training.get("optimizer"),
            "iterations": training.get("epochs"),
        }

    @property
    def n_params_(self) -> int:
        """Trainable parameters of the network (the degrees of freedom are ``rank_``'s)."""
        return int(self.manifest["n_params"])

    @property
    def bins(self) -> dict[str, tuple[float, ...]]:
        """The bin edges of the binned features, to group new rows with:
        ``bl.group(rows, ..., bins=predictor.bins)``."""
        return self.encoder.bins

    @property
    def backend(self) -> str:
        """The backend that trained the model."""
        return self.manifest["backend"]

    @property
    def features(self) -> tuple[str, ...]:
        """The feature columns :meth:`predict_proba` needs."""
        return self.encoder.features

    @property
    def loss(self) -> str:
        """The training loss, ``"binomial"`` or ``"beta-binomial"``."""
        return self.manifest.get("loss", "binomial")

    @property
    def phi(self) -> float | None:
        """The beta-binomial concentration φ from the manifest: None for the binomial, and
        for ``phi_model == "network"`` (see :meth:`predict_phi`)."""
        return self.manifest.get("phi")

    @property
    def phi_model(self) -> str | None:
        """``"scalar"`` or ``"network"`` for a beta-binomial model, None for the binomial."""
        if self.loss != "beta-binomial":
            return None
        return self.manifest.get("phi_model") or "scalar"

    def predict_phi(self, data: Grouped | pl.DataFrame | pl.LazyFrame) -> np.ndarray | None:
        """φ, float64 ``[rows]`` (the ONNX model's second output, exponentiated, for
        ``phi_model == "network"``; the manifest's φ repeated for ``"scalar"``); None for the
        binomial."""
        from binomlab.betabinomial import phi_from_log

        if self.phi_model == "network":
            return phi_from_log(self._run(data)[1])
        if self.phi is None:
            return None
        return np.full(self.encoder.transform(data).shape[0], float(self.phi))

    def predict_interval(
        self, data: Grouped | pl.DataFrame | pl.LazyFrame, n: Any, *, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictive interval (int64 lower and upper ``[rows]``) for the successes out of
        ``n`` trials; beta-binomial with the model's φ (each row's own for a φ output) when
        it has one."""
        from binomlab.betabinomial import phi_from_log, predictive_interval

        if self.phi_model == "network":
            z, log_phi = self._run(data)
            mu, phi = sigmoid(z), phi_from_log(log_phi)
        else:
            mu, phi = self.predict_proba(data), self.phi
        return predictive_interval(mu, n, phi=phi, level=level)

    def _run(self, data: Grouped | pl.DataFrame | pl.LazyFrame) -> list[np.ndarray]:
        """The ONNX model's outputs as float64 ``[rows]`` arrays: logits, then ``log φ``
        for a model with a φ output."""
        X = self.encoder.transform(data)
        outputs = self._session.run(None, {self._input: X})
        wanted = 2 if self.phi_model == "network" else 1
        if len(outputs) < wanted:
            msg = (
                f"{str(self.directory)!r}: the manifest says log φ is the network's second "
                f"output, but the ONNX model has {len(outputs)} output(s)."
            )
            raise ModelFileError(msg)
        return [np.asarray(o, dtype=np.float64).reshape(len(X)) for o in outputs[:wanted]]

    def predict_logits(self, data: Grouped | pl.DataFrame | pl.LazyFrame) -> np.ndarray:
        """Logits, float64 ``[rows]``."""
        return self._run(data)[0]

    def predict_proba(self, data: Grouped | pl.DataFrame | pl.LazyFrame) -> np.ndarray:
        """Success probabilities, float64 ``[rows]``, from raw feature columns (or a Grouped).

        Raises
        ------
        ColumnNotFoundError
            A feature column is missing.
        """

        return sigmoid(self.predict_logits(data))

    def __repr__(self) -> str:
        recalibrated = (
            "" if self.recalibration is None else f", recalibrated={self.recalibration['method']!r}"
        )
        return (
            f"Predictor({self.spec}, backend={self.backend!r}, features={list(self.features)}"
            f"{recalibrated})"
        )


_GLM_STATISTICS = frozenset(
    ("in_sample_", "rank_", "df_model_", "df_resid_", "log_likelihood_", "aic_", "bic_")
)


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        msg = f"{str(directory)!r} is not a binomlab model directory: {MANIFEST} is missing."
        raise ModelFileError(msg)
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        msg = f"{str(path)!r} is corrupted (not valid JSON: {err})."
        raise ModelFileError(msg) from None
    if not isinstance(manifest, dict) or manifest.get("format") != "binomlab-model":
        msg = f"{str(path)!r} is not a binomlab manifest (no 'format': 'binomlab-model')."
        raise ModelFileError(msg)
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        msg = (
            f"{str(path)!r} has format version {version!r}, but this binomlab "
            f"({_version()}) reads version {FORMAT_VERSION}. Upgrade binomlab to load it."
        )
        raise ModelFileError(msg)
    validate(manifest, path)
    check_checksum(manifest, path)
    _check_consistent(manifest, path)
    return manifest


def _check_consistent(manifest: dict[str, Any], path: Path) -> None:
    """Fields that must agree with each other (a manifest edited with its checksum redone)."""
    problems = []
    if (manifest["loss"] == "binomial") != (manifest.get("phi") is None and
                                             manifest.get("phi_model") is None):  # fmt: skip
        problems.append("'phi'/'phi_model' do not match 'loss'")
    rank = manifest["rank"]
    if rank is not None and rank > manifest["n_params"]:
        problems.append("'rank' exceeds 'n_params'")
    coefficients = manifest["coefficients"]
    if coefficients is not None and (rank is None or len(coefficients) != rank):
        problems.append("'coefficients' do not have one row per parameter of 'rank'")
    if "recalibration" in manifest and (coefficients is not None or manifest["loss"] != "binomial"):
        problems.append("a recalibrated model has GLM 'coefficients' or a beta-binomial 'loss'")
    if problems:
        msg = f"{str(path)!r} contradicts itself: {'; '.join(problems)}."
        raise ModelFileError(msg)


def load(path: str | Path) -> Predictor:
    """Load an exported model directory for prediction with onnxruntime.

    The manifest is validated against its schema, every file against its sha256, and the
    ONNX model's input width and opset against the manifest and the encoder; nothing is
    unpickled.

    Raises
    ------
    ModelFileError
        A missing manifest or ONNX file, an unknown format version, a manifest field missing
        or of the wrong type (named), a file that was replaced or truncated (named), or an
        ONNX model that does not fit the encoder.
    """
    import onnxruntime as ort

    if not isinstance(path, str | os.PathLike):
        msg = f"Expected path to be a model folder (a str or Path). Received: path={path!r}"
        raise BinomlabError(msg)
    directory = Path(path)
    if directory.is_file() and directory.name == MANIFEST:
        directory = directory.parent  # the manifest's path names its folder
    manifest = _read_manifest(directory)
    onnx_name = manifest["files"].get("onnx")
    if onnx_name is None:
        msg = (
            f"{str(directory)!r} holds no ONNX model ({ONNX_FILE}); export it with "
            "formats=('onnx', ...) to serve it with bl.load."
        )
        raise ModelFileError(msg)
    check_files(directory, manifest)
    try:
        encoder = Encoder.from_dict(manifest["encoder"])
    except (BinomlabError, KeyError, TypeError, ValueError) as err:
        msg = f"{str(directory / MANIFEST)!r}: its encoder cannot be read: {err}"
        raise ModelFileError(msg) from None
    _check_onnx(directory / onnx_name, manifest, encoder)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            str(directory / onnx_name), options, providers=["CPUExecutionProvider"]
        )
    except Exception as err:  # onnxruntime raises its own exception types
        msg = f"{str(directory / onnx_name)!r} is corrupted or not an ONNX model: {err}"
        raise ModelFileError(msg) from None
    return Predictor(directory, manifest, session)


def _check_onnx(path: Path, manifest: dict[str, Any], encoder: Encoder) -> None:
    try:
        facts = _onnx_facts(path)
    except Exception as err:  # onnx's protobuf errors
        msg = f"{str(path)!r} is corrupted or not an ONNX model: {err}"
        raise ModelFileError(msg) from None
    recorded = manifest.get("onnx", {})
    if recorded and facts != recorded:
        msg = (
            f"{str(path)!r} has opset {facts['opset']} and input width {facts['input_width']}, "
            f"but the manifest records {recorded}: the file is not this model's."
        )
        raise ModelFileError(msg)
    if facts["input_width"] not in (-1, encoder.n_inputs):
        msg = (
            f"{str(path)!r} takes {facts['input_width']} input columns, but the encoder makes "
            f"{encoder.n_inputs}: the file is not this model's."
        )
        raise ModelFileError(msg)
