"""``bl.fit``: train a model spec on grouped data through any backend, and ``Fitted``."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from binomlab import backends as _backends
from binomlab import glm
from binomlab._checks import check_callables, check_names
from binomlab.backends.lbfgs import caller_level
from binomlab.backends.loop import BatchCallback
from binomlab.backends.protocol import (
    Backend,
    Network,
    ProgressCallback,
    TrainConfig,
    TrainData,
    takes_codes,
)
from binomlab.encoding import Encoder
from binomlab.errors import AliasedColumnsWarning, BinomlabError, ColumnNotFoundError
from binomlab.grouped import Grouped, require_grouped
from binomlab.layout import IndexLayout, embedding_dims
from binomlab.nll import sigmoid
from binomlab.specs import Logistic, ModelSpec, parse_spec

__all__ = ["Fitted", "fit", "resolve"]

HISTORY_SCHEMA = {
    "epoch": pl.Int64,
    "train_nll": pl.Float64,
    "val_nll": pl.Float64,
    "seconds": pl.Float64,
}


def train_data(encoder: Encoder, data: Grouped, dtype: type = np.float32) -> TrainData:
    """Encode a Grouped into the arrays a backend trains on (``X`` of ``dtype``)."""
    return TrainData(
        X=encoder.transform(data, dtype=dtype),
        k=data.frame["k"].to_numpy().astype(np.float64),
        n=data.frame["n"].to_numpy().astype(np.float64),
        layout=encoder.layout,
    )


class Fitted(glm.GLMResults):
    """A trained model: the spec, the encoder, the backend's network and the history.

    Attributes
    ----------
    spec
        The model spec that was trained.
    backend
        Name of the backend that trained it.
    encoder
        The :class:`~binomlab.encoding.Encoder` fitted on the training groups.
    network
        The backend's :class:`~binomlab.backends.protocol.Network`.
    config
        The resolved :class:`~binomlab.backends.protocol.TrainConfig` (every default filled).
    history
        Polars frame, one row per epoch: ``epoch``, ``train_nll``, ``val_nll`` (null without
        validation data), ``seconds`` (wall time of the epoch).
    stop_reason
        Why training ended (:data:`~binomlab.backends.protocol.STOP_REASONS`): ``completed``,
        ``early_stopping``, ``callback`` or ``interrupted`` (Ctrl-C) keep the best epoch's
        weights; lbfgs ends ``converged`` at the optimum, or ``max_iter`` / ``stalled`` (with a
        warning).
    seconds_
        Total wall time of the fit.
    n_params_
        Number of trainable parameters (every weight of the network; the degrees of freedom
        are ``rank_``'s).
    in_sample_
        The fit on the training groups (:class:`~binomlab.glm.InSample`): the training data's
        fingerprint, rank and residual degrees of freedom, log-likelihood, AIC, BIC.
    rank_, df_model_, df_resid_, log_likelihood_, aic_, bic_
        From ``in_sample_``; ``rank_`` is None for an MLP.
    encoding
        The encoding options of the fit: ``reference``, ``min_frequency``, ``unseen``.
    """

    def __init__(
        self,
        *,
        spec: ModelSpec,
        backend: str,
        encoder: Encoder,
        network: Network,
        history: pl.DataFrame,
        config: TrainConfig,
        bins: Mapping[str, tuple[float, ...]],
        feature_dtypes: Mapping[str, pl.DataType],
        seconds: float,
        backend_versions: Mapping[str, str],
        in_sample: glm.InSample,
        coefficient_table: pl.DataFrame | None,
        summary_note: str | None,
        encoding: Mapping[str, Any],
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.encoder = encoder
        self.network = network
        self.history = history
        self.config = config
        self.bins = dict(bins)
        self.feature_dtypes = dict(feature_dtypes)
        self.seconds_ = seconds
        self.backend_versions = dict(backend_versions)
        self.in_sample_ = in_sample
        self.coefficient_table_ = coefficient_table
        self.summary_note_ = summary_note
        self.encoding = dict(encoding)

    def _summary_info(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "optimizer": self.config.optimizer,
            "iterations": self.epochs_,
        }

    @property
    def features(self) -> tuple[str, ...]:
        """The feature columns the model reads."""
        return self.encoder.features

    @property
    def n_params_(self) -> int:
        return self.network.n_params

    @property
    def stop_reason(self) -> str:
        return self.network.stop_reason

    @property
    def loss(self) -> str:
        """``"binomial"`` or ``"beta-binomial"``."""
        return self.config.loss

    @property
    def phi_(self) -> float | None:
        """The learned beta-binomial concentration φ: None for the binomial loss, and with
        ``phi="network"`` (φ varies by row: see :meth:`predict_phi`)."""
        return self.network.phi

    @property
    def phi_model(self) -> str | None:
        """How φ was learned, ``"scalar"`` or ``"network"``; None for the binomial loss."""
        return self.config.phi if self.loss == "beta-binomial" else None

    def predict_phi(self, data: Any) -> np.ndarray | None:
        """The beta-binomial concentration φ, float64 ``[rows]``, one per group or row of
        ``data`` (the same value everywhere for ``phi="scalar"``); None for the binomial.

        ``data`` is what :meth:`predict_proba` takes. The intra-group correlation is
        ``ρ = 1 / (1 + φ)``.
        """
        from binomlab.betabinomial import phi_from_log

        log_phi = self.network.predict_log_phi(self.encoder.transform(data))
        return None if log_phi is None else phi_from_log(log_phi)

    def predict_interval(
        self, data: Any, n: Any, *, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictive interval for the successes out of ``n`` trials in each row of ``data``.

        Beta-binomial with the learned φ (each row's own with ``phi="network"``) for that
        loss, binomial otherwise; see :func:`binomlab.betabinomial.predictive_interval`.
        ``data`` is what :meth:`predict_proba` takes, read once.

        Returns
        -------
        (lower, upper)
            int64 ``[rows]``.

        Raises
        ------
        BinomlabError
            ``level`` is not a fraction in (0, 1), ``n`` not whole numbers >= 0, and as
            :meth:`predict_proba`.
        """
        from binomlab.betabinomial import phi_from_log, predictive_interval

        X = self.encoder.transform(data)
        proba = sigmoid(np.asarray(self.network.predict_logits(X), np.float64))
        log_phi = self.network.predict_log_phi(X)
        phi = None if log_phi is None else phi_from_log(log_phi)
        return predictive_interval(proba, n, phi=phi, level=level)

    @property
    def best_epoch_(self) -> int:
        """The epoch whose weights the model has (1-based; for lbfgs the last iteration; 0
        when no epoch ran)."""
        return self.network.best_epoch

    def kept_epoch(self) -> dict[str, Any] | None:
        """The history's row of :attr:`best_epoch_` as a dict, or None."""
        rows = self.history.filter(pl.col("epoch") == self.best_epoch_).to_dicts()
        return rows[0] if rows else None

    @property
    def epochs_(self) -> int:
        """Epochs (or L-BFGS iterations) run."""
        return self.history.height

    def predict_logits(self, data: Any) -> np.ndarray:
        """Logits, float64 ``[rows]``, for what :meth:`predict_proba` takes."""
        return np.asarray(self.network.predict_logits(self.encoder.transform(data)), np.float64)

    def predict_proba(self, data: Any) -> np.ndarray:
        """Success probabilities, float64 ``[rows]``, one per group or row of ``data``.

        Parameters
        ----------
        data
            A :class:`~binomlab.Grouped`, or raw rows holding the feature columns in any
            source :func:`binomlab.group` reads: a Polars DataFrame or LazyFrame, a pandas
            DataFrame, a pyarrow Table, an object with ``__arrow_c_stream__``, a dict of
            columns, or a path, glob or list of parquet / CSV / NDJSON files (see
            :meth:`binomlab.Encoder.transform`). It is never changed.

        Raises
        ------
        ColumnNotFoundError
            A feature column is missing from ``data``.
        UnsupportedDataError
            ``data`` is no table binomlab reads, e.g. a numpy array (pass named columns).
        UnseenValueError, BinsMismatchError, BinomlabError
            As :meth:`binomlab.Encoder.transform`.
        """
        return sigmoid(self.predict_logits(data))

    def coefficients(self) -> pl.DataFrame:
        """Intercept and coefficients of a logistic model, per encoded column.

        ``coefficient`` applies to the encoded column; for standardised numeric features
        ``raw_coefficient`` applies to the feature in its own units (the intercept adjusted to
        match), as a GLM on the raw features would report them.

        Raises
        ------
        BinomlabError
            The spec is not logistic.
        """
        if not isinstance(self.spec, Logistic):
            msg = f"coefficients() needs the logistic spec; this model is {self.spec}."
            raise BinomlabError(msg)
        intercept, coef = _linear_weights(self.network, self.encoder.n_outputs, self.encoder.layout)
        theta = np.r_[intercept, coef]
        return pl.DataFrame(
            {
                "term": ["(intercept)", *self.encoder.output_names],
                "coefficient": theta,
                "raw_coefficient": glm.to_raw_scale(self.encoder) @ theta,
            }
        )

    def export(
        self,
        path: str | Path,
        *,
        formats: str | Iterable[str] = ("onnx", "native"),
        overwrite: bool = False,
    ) -> Path:
        """Write the model to the directory ``path`` (``overwrite=True`` replaces a non-empty
        one); see :func:`binomlab.export.export_model`."""
        from binomlab.export import export_model

        return export_model(self, path, formats=formats, overwrite=overwrite)

    def __repr__(self) -> str:
        row = self.kept_epoch()
        nll = ""
        if row:
            nll = f", best_epoch={row['epoch']}, train_nll={row['train_nll']:.5f}"
            if row["val_nll"] is not None:
                nll += f", val_nll={row['val_nll']:.5f}"
        loss = ""
        if self.loss != "binomial":  # the NLL shown is the beta-binomial's
            loss = f", loss={self.loss!r}, " + (
                f"phi={self.phi_:.4g}" if self.phi_ is not None else f"phi={self.phi_model!r}"
            )
        return (
            f"Fitted({self.spec}, backend={self.backend!r}{loss}, epochs={self.epochs_}{nll}, "
            f"stop_reason={self.stop_reason!r}, {self.seconds_:.2f}s)"
        )


def _linear_weights(
    network: Network, d: int, layout: IndexLayout | None = None
) -> tuple[float, np.ndarray]:
    """Intercept and ``[d]`` coefficients of a linear network, read from its logits on the
    zero row and the unit rows (exact for any backend's layout; in the index form of
    ``layout`` when the network takes it)."""
    if layout is not None:
        basis = layout.unit_rows()
    else:
        basis = np.vstack([np.zeros((1, d), np.float32), np.eye(d, dtype=np.float32)])
    z = np.asarray(network.predict_logits(basis), np.float64).reshape(d + 1)
    return float(z[0]), z[1:] - z[0]


class _Progress:
    """The one callback the core's loop calls: records the history, fans out to the user's
    callbacks (all of them are called; any False stops training)."""

    def __init__(self, callbacks: Iterable[ProgressCallback] | ProgressCallback) -> None:
        self.callbacks = check_callables(callbacks, name="callbacks")
        self.rows: list[dict[str, Any]] = []
        self.last = time.perf_counter()

    def __call__(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        row = {
            "epoch": int(epoch),
            "train_nll": float(metrics["train_nll"]),
            "val_nll": float(metrics["val_nll"]) if "val_nll" in metrics else None,
            "seconds": seconds,
        }
        self.rows.append(row)
        keep_going = True
        for callback in self.callbacks:
            metrics_out = {k: v for k, v in row.items() if k != "epoch" and v is not None}
            if callback(epoch, metrics_out) is False:
                keep_going = False
        return keep_going

    def history(self) -> pl.DataFrame:
        return pl.DataFrame(self.rows, schema=HISTORY_SCHEMA)


INPUTS = ("auto", "index", "one-hot")
"""``bl.fit(inputs=...)``: how an MLP's features reach its first layer."""


def _code_backends(kind: str = "mlp") -> str:
    """The installed backends whose networks of spec kind ``kind`` take integer codes, for
    messages."""
    names = []
    for name in _backends.available(check=True):
        try:
            if takes_codes(_backends.get(name), kind):
                names.append(name)
        except Exception:  # a broken plugin is not this message's subject
            continue
    return ", ".join(names) if names else "none installed"


def _spec_backends(kind: str) -> str:
    """The installed backends that build spec kind ``kind``, for messages."""
    names = []
    for name in _backends.available(check=True):
        try:
            if kind in _backends.get(name).specs:
                names.append(name)
        except Exception:  # a broken plugin is not this message's subject
            continue
    hint = {"gbdt": "pip install binomlab-lightgbm"}.get(kind, "pip install binomlab-lightning")
    return ", ".join(names) if names else f"none (install one: {hint})"


def _input_form(inputs: Any, kind: str, engine: Backend) -> str:
    """The encoder's form (``"dense"`` or ``"index"``) for ``bl.fit(inputs=...)`` and a spec
    of kind ``kind``."""
    if not isinstance(inputs, str) or inputs not in INPUTS:
        msg = f"Expected inputs to be one of {INPUTS}. Received: inputs={inputs!r}"
        raise BinomlabError(msg)
    takes_index = takes_codes(engine, kind)
    if inputs == "index" and not takes_index:
        msg = (
            f"The {engine.name} backend takes one-hot inputs only for the {kind} spec "
            f"(Backend.index_inputs is {getattr(engine, 'index_inputs', ())!r}). Use "
            f"inputs='auto' or 'one-hot', or a backend that takes codes for it "
            f"({_code_backends(kind)})."
        )
        raise BinomlabError(msg)
    if inputs == "one-hot" or not takes_index:
        return "dense"
    return "index"


def _batch_progress(
    callbacks: Iterable[BatchCallback] | BatchCallback,
) -> BatchCallback | None:
    """The user's batch callbacks as one (all are called; any False stops), or None."""
    checked = check_callables(callbacks, name="batch_callbacks")
    if not checked:
        return None

    def on_batch(epoch: int, batch: int, batches: int) -> bool:
        results = [callback(epoch, batch, batches) for callback in checked]
        return all(result is not False for result in results)

    return on_batch


def _check_val(train: Grouped, val: Grouped | None) -> None:
    if val is None:
        return
    require_grouped(val, name="val", files=False)
    missing = [f for f in train.features if f not in val.frame.columns]
    if missing:
        raise ColumnNotFoundError.from_missing_and_available(
            missing, val.frame.columns, role="validation feature"
        )


def resolve(
    train: Grouped,
    *,
    model: str | ModelSpec = "logistic",
    backend: str | Backend | type[Backend] = "lightning",
    **config: Any,
) -> tuple[ModelSpec, Backend, TrainConfig]:
    """The spec, backend and resolved :class:`~binomlab.backends.protocol.TrainConfig` that
    ``bl.fit(train, model=..., backend=..., **config)`` trains with: every option checked and
    every default filled, before anything is trained (the CLI draws its progress bar from it).

    ``config`` takes :class:`~binomlab.backends.protocol.TrainConfig`'s fields by name; any
    other name is a backend option.

    Raises
    ------
    NotGroupedError
        ``train`` is not a Grouped (raw rows: the message says how to group them); also a
        ``TypeError``.
    BackendNotFoundError, BinomlabError
        As :func:`fit`.
    """
    require_grouped(train, name="train", files=False)
    spec = parse_spec(model)
    engine = _backends.get(backend)
    if spec.kind not in engine.specs:
        msg = (
            f"The {engine.name} backend builds the specs {engine.specs}. Received: "
            f"model={str(spec)!r}. Backends installed that build {spec.kind!r}: "
            f"{_spec_backends(spec.kind)}."
        )
        raise BinomlabError(msg)
    fields = {name: config.pop(name) for name in _CONFIG_FIELDS if name in config}
    resolved = TrainConfig(**fields, options=config).resolve(engine, spec, len(train))
    return spec, engine, resolved


_CONFIG_FIELDS = tuple(f for f in TrainConfig.__dataclass_fields__ if f != "options")


def fit(
    train: Grouped,
    *,
    model: str | ModelSpec = "logistic",
    backend: str | Backend | type[Backend] = "lightning",
    val: Grouped | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    weight_decay: float = 0.0,
    optimizer: str | None = None,
    seed: int = 0,
    early_stopping: int | None = None,
    tolerance: float = 1e-8,
    loss: str = "binomial",
    phi: str = "scalar",
    callbacks: Iterable[ProgressCallback] | ProgressCallback = (),
    batch_callbacks: Iterable[BatchCallback] | BatchCallback = (),
    reference: Mapping[str, Any] | None = None,
    min_frequency: int | Mapping[str, int] | None = None,
    unseen: str = "error",
    features: Iterable[str] | None = None,
    inputs: str = "auto",
    **options: Any,
) -> Fitted:
    """Train ``model`` on the grouped binomial NLL of ``train``.

    Parameters
    ----------
    train
        The training groups, a :class:`~binomlab.Grouped` (raw rows are refused with the
        ``bl.group`` call that groups them).
    model
        ``"logistic"``, ``"mlp"``, ``"mlp:64,32"``, ``"gbdt"``, ``"gbdt:200,31"``,
        :class:`~binomlab.Logistic`, :class:`~binomlab.MLP` or :class:`~binomlab.GBDT`
        (gradient-boosted trees: ``backend="lightgbm"``, optimizer ``"boosting"``, whose
        epochs are blocks of boosting rounds).
    backend
        A registry name (see :func:`binomlab.backends.available`), a Backend class or instance.
    val
        Validation groups (a Grouped); their per-trial NLL is reported each epoch. With
        adam/adamw it picks the best epoch (and drives ``early_stopping``); newton and
        lbfgs only record it and run to the maximum-likelihood optimum.
    epochs, batch_size, lr
        None means the defaults: 20 epochs of 1,024 groups at lr 1e-2 for adam/adamw; for
        newton at most 100 and for lbfgs at most 500 iterations on the full batch, no
        learning rate (see
        :class:`~binomlab.backends.protocol.TrainConfig`; ``fitted.config`` holds the resolved
        values).
    weight_decay
        L2 penalty; 0 (default) gives the maximum-likelihood fit.
    optimizer
        ``"newton"``, ``"lbfgs"``, ``"adam"``, ``"adamw"`` or ``"boosting"``; None picks
        ``"newton"`` for the logistic spec with the binomial loss (the GLM's
        maximum-likelihood fit), ``"lbfgs"`` for it with the beta-binomial, ``"boosting"``
        for the gbdt spec and ``"adam"`` otherwise.
    seed
        An integer in [0, 2**32) (a NumPy integer too). Same data, spec, backend and seed
        give identical predictions.
    early_stopping
        adam/adamw: stop after this many epochs without improvement of the monitored NLL
        (``val_nll``, else the training objective).
    tolerance
        L-BFGS gradient tolerance on the per-trial NLL.
    loss
        ``"binomial"``, or ``"beta-binomial"`` for groups that vary more than a binomial
        allows: it learns a concentration φ next to the network (``fitted.phi_``;
        intra-group correlation ρ = 1/(1 + φ)), and ``train_nll``/``val_nll`` are then
        beta-binomial NLLs per trial. See :mod:`binomlab.backends.protocol`.
    phi
        With ``loss="beta-binomial"``: ``"scalar"`` (default) learns one φ for all groups;
        ``"network"`` makes ``log φ`` a second output of the network, so the overdispersion
        varies with the features (``fitted.predict_phi(data)``; the ONNX export gets a
        second output ``log_phi``).
    callbacks
        One callable or a list of them, ``callback(epoch, metrics) -> continue?``, called
        after every epoch with ``train_nll``, ``val_nll`` (if any) and ``seconds``; returning
        False stops training, keeping the best weights so far.
    batch_callbacks
        Progress inside long epochs (adam/adamw): one callable or a list,
        ``callback(epoch, batch, batches) -> continue?``, called after every optimizer step
        with the 1-based epoch in progress, the step's 1-based index in it and the epoch's
        number of steps. False stops training at once, mid-epoch (``stop_reason
        "callback"``), keeping the best finished epoch's weights (those as they stand when
        no epoch has finished). newton and lbfgs take one full-batch step per epoch and do
        not call them. Default: none, and no per-step cost.
    reference
        ``{feature: level}``: the reference level of a feature in the logistic spec's
        treatment coding (default: its first level in sort order; a null sorts first).
    min_frequency
        Pool the levels with fewer training trials than this (an int, or ``{feature: int}``)
        into one trained level, ``<other>``.
    features
        A name or a list of names: train on these features of ``train`` only (default: all
        of them). The groups stay
        ``train``'s, so nested models fitted on the same data can be compared
        (:func:`binomlab.lrt`) and their degrees of freedom are ``groups − rank`` of
        ``train``.
    inputs
        How the features reach the model's first layer: ``"index"`` (a code per feature with
        levels, looked up in the first layer's weight: the encoded data take groups ×
        features numbers), ``"one-hot"`` (a 0/1 column per level), or ``"auto"`` (default:
        index where the backend takes it for the spec, see ``Backend.index_inputs``:
        Lightning's and Keras's MLPs, the reference backend's GLM, whose Newton Hessian is
        then built from the codes as a sparse matrix). Both give the same model to float
        tolerance.
    unseen
        ``"error"`` (default): predicting, evaluating or calibrating on a value the model
        never saw raises :class:`~binomlab.UnseenValueError`. ``"other"``: such values go to
        the feature's ``<other>`` level (it needs ``min_frequency`` to have pooled one).
    **options
        Backend-specific options (e.g. ``strategy="ddp"`` for Lightning).

    Returns
    -------
    Fitted

    Raises
    ------
    BackendNotFoundError
        The backend is not installed.
    TrainingDivergedError
        A loss became NaN or infinite, or the training NLL rose far above the base-rate
        model's (:data:`~binomlab.backends.loop.DIVERGENCE_RULE`; the message names the epoch).
    NotGroupedError
        ``train`` or ``val`` is not a Grouped (also a ``TypeError``).
    BinomlabError
        Invalid arguments (a seed, a callback that is not callable, features that are not
        names of ``train``'s features, ...), each named with the value received.

    Warns
    -----
    ConvergenceWarning
        lbfgs stopped at its iteration cap (``stop_reason="max_iter"``) or stalled before
        its tolerance.
    PerfectSeparationWarning
        The logistic fit separates some groups perfectly: the MLE does not exist.
    """
    spec, engine, config = resolve(
        train,
        model=model,
        backend=backend,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        optimizer=optimizer,
        seed=seed,
        early_stopping=early_stopping,
        tolerance=tolerance,
        loss=loss,
        phi=phi,
        **options,
    )
    progress = _Progress(callbacks)  # checked at the door, before any work
    on_batch = _batch_progress(batch_callbacks)
    used = _feature_subset(train, features)
    _check_val(used, val)
    encoding = {"reference": reference, "min_frequency": min_frequency, "unseen": unseen}
    design = "treatment" if isinstance(spec, Logistic) else "one-hot"
    form = _input_form(inputs, spec.kind, engine)
    embed = getattr(spec, "embed", None)
    if embed is not None and form != "index":
        why = (
            f"inputs={inputs!r} asks for one-hot columns"
            if inputs == "one-hot"
            else f"the {engine.name} backend takes one-hot inputs only"
        )
        msg = (
            f"{spec} learns embeddings of level codes, but {why}. Use inputs='auto' with a "
            f"backend that takes codes ({_code_backends()}), or embed=None."
        )
        raise BinomlabError(msg)
    encoder = Encoder.fit(used, design=design, form=form, **encoding)
    if embed is not None:
        embedding_dims(spec.embeddings, encoder.layout)  # names checked before any training
    # the binomial GLM's drivers get exact (float64) standardised numbers, as statsmodels does;
    # networks, and the beta-binomial (whose NLL near φ's cap amplifies any rounding), the
    # float32 inputs they predict from
    glm_fit = config.deterministic and config.loss == "binomial"
    dtype = np.float64 if glm_fit else np.float32
    train_arrays = train_data(encoder, used, dtype)
    if design == "treatment":
        encoder, train_arrays = _drop_aliased(encoder, train_arrays, used)
    val_arrays = None if val is None else train_data(encoder, val, dtype)
    start = time.perf_counter()
    progress.last = start
    network = engine.fit(train_arrays, val_arrays, spec, config, progress, on_batch)
    seconds = time.perf_counter() - start
    in_sample, table, note = _in_sample(spec, config, encoder, network, train, train_arrays)
    return Fitted(
        spec=spec,
        backend=engine.name,
        encoder=encoder,
        network=network,
        history=progress.history(),
        config=config,
        bins=used.bins,
        feature_dtypes={f: train.frame.schema[f] for f in used.features},
        seconds=seconds,
        backend_versions=engine.versions(),
        in_sample=in_sample,
        coefficient_table=table,
        summary_note=note,
        encoding={k: v for k, v in encoding.items() if v is not None},
    )


def _feature_subset(train: Grouped, features: Iterable[str] | None) -> Grouped:
    """``train`` seen through a subset of its features (its groups unmerged)."""
    if features is None:
        return train
    names = check_names(features, name="features")
    unknown = [f for f in names if f not in train.features]
    if unknown or not names or len(set(names)) != len(names):
        msg = (
            "Expected features to be a non-empty subset (each named once) of the training "
            f"features {list(train.features)}. Received: features={list(names)!r}"
        )
        raise BinomlabError(msg)
    bins = {f: e for f, e in train.bins.items() if f in names}
    return Grouped(train.frame.select(*names, "n", "k"), names, bins=bins)


def _drop_aliased(encoder: Encoder, data: TrainData, used: Grouped) -> tuple[Encoder, TrainData]:
    """The encoder and data (of the groups ``used``) without the design's aliased columns
    (warned, as R reports them)."""
    aliased = glm.aliased_columns(data.X, encoder.output_names, data.layout)
    if not aliased:
        return encoder, data
    keep = [name not in set(aliased) for name in encoder.output_names]
    shown = ", ".join(repr(a) for a in aliased[:8]) + (" ..." if len(aliased) > 8 else "")
    msg = (
        f"{len(aliased)} column(s) of the logistic design are linear combinations of the "
        f"intercept and the columns before them (aliased): {shown}. Their coefficients are not "
        "identified, so they are dropped (as R reports 'not defined because of "
        "singularities'): a level whose column was dropped is predicted as the reference. "
        "Features that determine each other usually cause this; remove one of them."
    )
    warnings.warn(msg, AliasedColumnsWarning, stacklevel=caller_level())
    reduced = encoder.without(aliased)
    if reduced.layout is not None:  # the codes of the dropped levels become NO_ROW
        return reduced, train_data(reduced, used, data.X.dtype)
    X = np.ascontiguousarray(data.X[:, np.array(keep)])
    return reduced, TrainData(X=X, k=data.k, n=data.n)


def _in_sample(
    spec: ModelSpec,
    config: TrainConfig,
    encoder: Encoder,
    network: Network,
    train: Grouped,
    data: TrainData,
) -> tuple[glm.InSample, pl.DataFrame | None, str | None]:
    """The fit's statistics on its training groups, and the GLM coefficient table (or why
    there is none). The training groups' logits are the core's loop's of the kept epoch
    (``network.train_logits``, taken off the network here) where it left them."""
    logits = getattr(network, "train_logits", None)
    if logits is not None:
        del network.train_logits  # not kept alive by the Fitted: [groups] floats
    if logits is None or np.size(logits) != len(data):
        logits = network.predict_logits(data.X)
    proba = sigmoid(np.asarray(logits, np.float64).reshape(len(data)))
    rank = None
    if isinstance(spec, Logistic):  # the design has full rank once aliased columns are gone
        rank = 1 + encoder.n_outputs + (config.loss == "beta-binomial" and config.phi == "scalar")
        if config.phi == "network" and config.loss == "beta-binomial":
            rank = None
    stats = glm.in_sample(train, proba, rank)
    if config.loss != "binomial":  # the binomial likelihood of the means is not this model's
        nan = float("nan")
        stats = dataclasses.replace(stats, log_likelihood=nan, aic=nan, bic=nan)
    note = glm.summary_refusal(
        spec.kind, config.loss, config.optimizer, config.weight_decay, network.stop_reason
    )
    if note is not None:
        return stats, None, note
    intercept, coef = _linear_weights(network, encoder.n_outputs, encoder.layout)
    return stats, glm.coefficient_table(encoder, data.X, data.n, intercept, coef), None
