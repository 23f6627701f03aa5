"""The contract between binomlab's core and a training backend (a plugin).

The core does everything that is the same whatever the framework — grouping, encoding features
into a float32 matrix, validation of arguments, the history, metrics, export manifests and
loading — and hands a backend plain arrays. A backend implements :class:`Backend` (train) and
returns a :class:`Network` (predict logits, export itself). It is registered under the entry
point group ``binomlab.backends`` and checked by :func:`binomlab.testing.check_backend`.

Training rules every backend follows
-------------------------------------
* Loss (``config.loss``): ``"binomial"``, the grouped binomial NLL per trial,
  ``Σ[n·softplus(z) − k·z] / Σn`` over the data (a mini-batch loss divides by the batch's
  trials); or ``"beta-binomial"`` (backends that list it in :attr:`Backend.losses`): with
  ``μ = sigmoid(z)``, a learned scalar concentration ``φ = exp(θ)``, ``α = μφ``,
  ``β = (1 − μ)φ``, the NLL per trial ``−Σ[lgamma(k+α) + lgamma(n−k+β) − lgamma(n+φ)
  − lgamma(α) − lgamma(β) + lgamma(φ)] / Σn`` (binomial coefficient dropped), reported as
  ``train_nll``/``val_nll``; the trained network sets :attr:`Network.phi`. ``θ`` starts at
  ``log(100)`` unless the backend documents otherwise, and weight decay does not apply to it.
  With ``config.phi = "network"`` (backends that list it in :attr:`Backend.phi_models`),
  ``θ`` is instead a second output of the network, ``θ(x) = h(x)·v + c`` on the last hidden
  layer ``h`` (on the features for the logistic spec), ``v`` starting at 0 and ``c`` at
  ``log(100)``, not weight-decayed; the network then reports :attr:`Network.phi_output` and
  answers :meth:`Network.predict_log_phi` row by row.
* After every epoch call ``callback(epoch, metrics)`` with the 1-based epoch and a dict holding
  ``"train_nll"`` (the trial-weighted mean of the epoch's mini-batch losses, or the exact
  full-data NLL for full-batch optimisers) and, when validation data is given, ``"val_nll"``
  (exact, on all validation groups, in evaluation mode). A return value of ``False`` stops
  training. Exceptions raised by the callback propagate to the caller unchanged.
* Keep the weights of the best epoch by the monitored value — ``val_nll`` if given, else the
  training objective (``train_nll`` plus the weight-decay penalty, which is ``train_nll``
  itself when ``weight_decay=0``) — and return them: after the last epoch, after an early
  stop, after the callback stops training, and after a ``KeyboardInterrupt`` (caught, not
  re-raised); set :attr:`Network.stop_reason` accordingly.
* ``config.early_stopping = p`` stops after ``p`` epochs without improvement of the monitored
  value. ``optimizer="lbfgs"`` trains full batch until ``config.tolerance`` is met on the
  gradient's max-norm (or ``config.epochs`` iterations, default 500).
* Same data, spec, config and seed give identical predictions.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from binomlab.errors import BinomlabError
from binomlab.specs import ModelSpec

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "PHI_MODELS",
    "STOP_REASONS",
    "Backend",
    "BestEpoch",
    "Network",
    "ProgressCallback",
    "TrainConfig",
    "TrainData",
    "check_config",
    "check_encoded",
]

OPTIMIZERS = ("adam", "adamw", "lbfgs")
LOSSES = ("binomial", "beta-binomial")
PHI_MODELS = ("scalar", "network")
"""How the beta-binomial learns ``θ = log φ``: one scalar, or a second output of the network."""
STOP_REASONS = ("completed", "converged", "early_stopping", "callback", "interrupted")

ProgressCallback = Callable[[int, Mapping[str, float]], bool | None]
"""``callback(epoch, metrics) -> continue?``: epoch is 1-based; return False to stop."""


@dataclass(frozen=True)
class TrainData:
    """Encoded grouped data.

    Attributes
    ----------
    X
        float32 ``[groups, d]`` encoded features.
    k, n
        float64 ``[groups]`` successes and trials (whole numbers, ``0 <= k <= n``, ``n >= 1``).
    """

    X: np.ndarray
    k: np.ndarray
    n: np.ndarray

    @property
    def trials(self) -> float:
        return float(self.n.sum())

    @property
    def base_logit(self) -> float:
        """Logit of the overall success rate Σk/Σn (clipped to ±27.6): where a backend starts
        the output bias, so training begins at the intercept-only model, not at p = 0.5."""
        rate = float(np.clip(self.k.sum() / self.n.sum(), 1e-12, 1 - 1e-12))
        return math.log(rate) - math.log1p(-rate)

    def __len__(self) -> int:
        return self.X.shape[0]


@dataclass(frozen=True)
class TrainConfig:
    """How to train; validated by the core before a backend sees it.

    Attributes
    ----------
    epochs
        Passes over the data (iterations for L-BFGS); None means the backend's default
        (20 for adam/adamw, run-to-tolerance with at most 500 iterations for lbfgs).
    batch_size
        Groups per mini-batch; None means the backend's default (full batch for lbfgs).
    lr
        Learning rate; None means the optimiser's default (1e-2 for adam/adamw, 1.0 for lbfgs).
    weight_decay
        L2 penalty (decoupled for adamw); 0 leaves the maximum-likelihood fit.
    optimizer
        One of :data:`OPTIMIZERS`.
    seed
        Seeds weight initialisation, shuffling and dropout.
    early_stopping
        Patience in epochs, or None for no early stopping.
    tolerance
        L-BFGS stops when the max-norm of the gradient of the per-trial NLL falls below it.
        The default, 1e-8, takes ill-conditioned GLMs (statsmodels' star98) to their
        coefficients within 1e-4; it needs float64 arithmetic.
    options
        Backend-specific keyword options (e.g. ``strategy="ddp"``), passed through unchanged;
        a backend raises on options it does not know.
    loss
        One of :data:`LOSSES` that the backend lists in :attr:`Backend.losses`.
    phi
        For the beta-binomial loss, one of :data:`PHI_MODELS` that the backend lists in
        :attr:`Backend.phi_models`: ``"scalar"`` (one ``φ`` for every group) or ``"network"``
        (``log φ`` a second output of the network, so the overdispersion varies with the
        features). Always ``"scalar"`` for the binomial loss.
    """

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 0.0
    optimizer: str = "adam"
    seed: int = 0
    early_stopping: int | None = None
    tolerance: float = 1e-8
    options: Mapping[str, Any] = field(default_factory=dict)
    loss: str = "binomial"
    phi: str = "scalar"


class BestEpoch:
    """The best epoch by the monitored value, and why training should stop, as the training
    rules above define them: what every backend's progress monitor keeps.

    Parameters
    ----------
    patience
        ``config.early_stopping``: epochs without improvement before stopping, or None.
    """

    def __init__(self, patience: int | None) -> None:
        self.patience = patience
        self.value = math.inf
        self.epoch = 0
        self.stale = 0

    def update(self, epoch: int, metrics: Mapping[str, float], penalty: float = 0.0) -> bool:
        """Record epoch ``epoch`` (1-based); return True when it is the best so far.

        The monitored value is ``val_nll`` if ``metrics`` has it, else ``train_nll`` plus the
        weight-decay ``penalty`` (the training objective)."""
        monitored = metrics["val_nll"] if "val_nll" in metrics else metrics["train_nll"] + penalty
        if monitored < self.value:
            self.value, self.epoch, self.stale = monitored, epoch, 0
            return True
        self.stale += 1
        return False

    def stop_reason(self, keep_going: bool | None, *, converged: bool = False) -> str | None:
        """Why training stops after this epoch — ``"callback"`` (``keep_going`` is False),
        ``"converged"`` or ``"early_stopping"`` — or None to go on."""
        if keep_going is False:
            return "callback"
        if converged:
            return "converged"
        if self.patience is not None and self.stale >= self.patience:
            return "early_stopping"
        return None


def check_config(
    backend: type[Backend] | Backend, train: TrainData, spec: ModelSpec, config: TrainConfig
) -> dict[str, Any]:
    """Check ``config`` and ``spec`` against what ``backend`` declares; return its options.

    ``bl.fit`` checks the same before it calls a backend; a backend calls this too, since it
    can be used on its own with a :class:`TrainConfig`.

    Raises
    ------
    BinomlabError
        An option, optimiser, spec kind, loss or φ model the backend does not list, or a
        mini-batch size with ``"lbfgs"`` (which trains on the full batch).
    """
    name = backend.name
    unknown = sorted(set(config.options) - set(backend.options))
    if unknown:
        msg = (
            f"The {name} backend does not take the option(s) {unknown}. "
            f"Expected any of {list(backend.options)}."
        )
        raise BinomlabError(msg)
    for field_name, value, allowed in (
        ("optimizer", config.optimizer, backend.optimizers),
        ("loss", config.loss, backend.losses),
        ("phi", config.phi, backend.phi_models),
    ):
        if value not in allowed:
            msg = (
                f"The {name} backend expects {field_name} to be one of {allowed}. "
                f"Received: {field_name}={value!r}"
            )
            raise BinomlabError(msg)
    if spec.kind not in backend.specs:
        msg = f"The {name} backend builds the specs {backend.specs}. Received: {spec!r}"
        raise BinomlabError(msg)
    if config.optimizer == "lbfgs" and (config.batch_size or len(train)) < len(train):
        msg = (
            "optimizer='lbfgs' trains on the full batch of groups; leave batch_size=None or "
            f"use optimizer='adam'. Received: batch_size={config.batch_size!r}"
        )
        raise BinomlabError(msg)
    return dict(config.options)


def check_encoded(X: np.ndarray, input_dim: int) -> np.ndarray:
    """``X`` as an array of shape ``[rows, input_dim]``, for ``Network.predict_logits``.

    Raises
    ------
    BinomlabError
        ``X`` is not 2-D with ``input_dim`` columns.
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != input_dim:
        msg = (
            f"Expected X of shape [rows, {input_dim}] (the encoded features). "
            f"Received: shape {X.shape}"
        )
        raise BinomlabError(msg)
    return X


class Network(ABC):
    """A trained network: predicts logits from encoded features and exports itself."""

    stop_reason: str = "completed"
    """One of :data:`STOP_REASONS`."""

    phi: float | None = None
    """The learned beta-binomial concentration ``φ``: None for the binomial loss, and for a
    beta-binomial whose ``φ`` is an output of the network (see :attr:`phi_output`)."""

    phi_output: bool = False
    """True when ``log φ`` is a second output of the network (``TrainConfig.phi="network"``)."""

    @property
    @abstractmethod
    def n_params(self) -> int:
        """Number of trainable parameters."""

    @abstractmethod
    def predict_logits(self, X: np.ndarray) -> np.ndarray:
        """Logits ``z`` for float32 ``X [rows, d]``, as float64 ``[rows]`` (inference mode)."""

    def predict_log_phi(self, X: np.ndarray) -> np.ndarray | None:
        """``θ = log φ``, float64 ``[rows]``, for float32 ``X [rows, d]``; None for the binomial.

        This default broadcasts the scalar :attr:`phi`; a network with a φ output
        (:attr:`phi_output`) overrides it."""
        if self.phi is None:
            return None
        return np.full(np.shape(X)[0], math.log(self.phi))

    @abstractmethod
    def export_onnx(self, path: Path) -> None:
        """Write an ONNX model: one input float32 ``[batch, d]`` (dynamic batch), whose first
        output holds the logits, shape ``[batch]`` or ``[batch, 1]``; a network with a φ output
        has a second output holding ``log φ``, of the same shape."""

    @abstractmethod
    def save_native(self, directory: Path) -> list[str]:
        """Write the framework's own artefact(s) into ``directory``; return their file names.

        The files must load without unpickling arbitrary objects (``weights_only=True``,
        safetensors, ``.keras`` with ``safe_mode``)."""


class Backend(ABC):
    """A training backend. Subclasses import their framework in ``__init__``, never at the
    top of the module, so listing backends stays cheap."""

    name: ClassVar[str]
    """The registry name, equal to the entry point name."""

    specs: ClassVar[tuple[str, ...]] = ("logistic", "mlp")
    """Spec kinds this backend can build."""

    optimizers: ClassVar[tuple[str, ...]] = OPTIMIZERS
    """Optimisers this backend supports."""

    options: ClassVar[tuple[str, ...]] = ()
    """Names of the backend-specific options it accepts in ``TrainConfig.options``."""

    losses: ClassVar[tuple[str, ...]] = ("binomial",)
    """Losses it can train (see :data:`LOSSES`)."""

    phi_models: ClassVar[tuple[str, ...]] = ("scalar",)
    """How it can learn the beta-binomial ``φ`` (see :data:`PHI_MODELS`)."""

    @abstractmethod
    def versions(self) -> dict[str, str]:
        """Versions of the framework packages, recorded in export manifests."""

    @abstractmethod
    def fit(
        self,
        train: TrainData,
        val: TrainData | None,
        spec: ModelSpec,
        config: TrainConfig,
        callback: ProgressCallback,
    ) -> Network:
        """Train a network on the grouped NLL following the rules in this module's docstring."""
