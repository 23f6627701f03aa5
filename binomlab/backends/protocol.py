"""The contract between binomlab's core and a training backend (a plugin).

The core owns every rule that is the same whatever the framework: the options and their
defaults (:class:`TrainConfig`, validated and resolved once by :meth:`TrainConfig.resolve`),
the epoch loop and its bookkeeping (best epoch, early stopping, callbacks and stopping,
KeyboardInterrupt, divergence, the stop reason: :mod:`binomlab.backends.loop`) and the L-BFGS
driver for the deterministic optimiser (:mod:`binomlab.backends.lbfgs`). A backend supplies the
framework parts only, through a :class:`Session` (one per fit): build the network from the
spec, run epochs of mini-batch optimizer steps, give the full-batch loss and its gradient in
float64, get and set the weights, and the :class:`Network` that predicts logits and exports
itself. :meth:`Backend.fit` runs the core's loop over a backend's session; ``bl.fit`` calls it.

A backend is registered under the entry point group ``binomlab.backends``. Its entry-point
module must import no framework (torch, tensorflow, jax, ...) at module top, so that listing
backends stays cheap: the framework is imported by :meth:`Backend.session` and
:meth:`Backend.versions`.

Losses (``config.loss``)
------------------------
``"binomial"``: the grouped binomial NLL per trial, ``Σ[n·softplus(z) − k·z] / Σn`` over the
data (a mini-batch loss divides by the batch's trials). ``"beta-binomial"`` (backends that list
it in :attr:`Backend.losses`): with ``μ = sigmoid(z)``, a learned concentration ``φ = exp(θ)``,
``α = μφ``, ``β = (1 − μ)φ``, the NLL per trial ``−Σ[lgamma(k+α) + lgamma(n−k+β) − lgamma(n+φ)
− lgamma(α) − lgamma(β) + lgamma(φ)] / Σn`` (binomial coefficient dropped). ``θ`` starts at
``log(100)`` and weight decay does not apply to it. With ``config.phi = "network"``
(backends that list it in :attr:`Backend.phi_models`), ``θ`` is a second output of the network,
``θ(x) = h(x)·v + c`` on the last hidden layer ``h`` (on the features for the logistic spec),
``v`` starting at 0 and ``c`` at ``log(100)``, not weight-decayed.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from binomlab._checks import check_seed
from binomlab.backends import lbfgs, loop, newton
from binomlab.errors import BinomlabError
from binomlab.layout import IndexLayout
from binomlab.specs import ModelSpec

__all__ = [
    "ALL_OPTIMIZERS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EPOCHS",
    "DEFAULT_LR",
    "DETERMINISTIC",
    "LOSSES",
    "OPTIMIZERS",
    "PHI_MODELS",
    "STOP_REASONS",
    "TREE_OPTIMIZERS",
    "Backend",
    "Network",
    "ProgressCallback",
    "Session",
    "TrainConfig",
    "TrainData",
    "check_encoded",
    "default_optimizer",
    "takes_codes",
]

OPTIMIZERS = ("adam", "adamw", "lbfgs", "newton")
"""The optimisers that train a network's weights (what a network backend lists)."""
DETERMINISTIC = ("lbfgs", "newton")
"""Optimisers that run full batch to the optimum: never stopped early nor selected by ``val``."""
TREE_OPTIMIZERS = ("boosting",)
"""Optimisers that grow trees (the ``"gbdt"`` spec) instead of stepping weights: an epoch is
a block of boosting rounds on the full batch; the learning rate is the spec's, and
``lr``, ``batch_size`` and ``weight_decay`` do not apply."""
ALL_OPTIMIZERS = OPTIMIZERS + TREE_OPTIMIZERS
"""Every optimiser name a config may hold."""
LOSSES = ("binomial", "beta-binomial")
PHI_MODELS = ("scalar", "network")
"""How the beta-binomial learns ``θ = log φ``: one scalar, or a second output of the network."""
STOP_REASONS = (
    "completed",
    "converged",
    "max_iter",
    "stalled",
    "early_stopping",
    "callback",
    "interrupted",
)
"""Why training ended. ``completed``: the epochs ran out (mini-batch optimisers);
``converged``: L-BFGS met its gradient tolerance; ``max_iter``: L-BFGS hit its iteration cap
(with a :class:`~binomlab.errors.ConvergenceWarning`); ``stalled``: L-BFGS's line search could
make no more progress above the tolerance (also warned); ``early_stopping``, ``callback`` (a
callback returned False), ``interrupted`` (Ctrl-C)."""
DEFAULT_EPOCHS = {"adam": 20, "adamw": 20, "lbfgs": 500, "newton": 100, "boosting": 20}
"""Epochs for adam/adamw; the iteration cap for lbfgs and newton; for boosting the blocks the
spec's trees are grown in (fewer when the spec has fewer trees)."""
DEFAULT_BATCH_SIZE = 1024
"""Groups per mini-batch for adam/adamw (lbfgs takes the full batch)."""
DEFAULT_LR = {"adam": 1e-2, "adamw": 1e-2}
"""lbfgs has no learning rate: its line search picks every step."""

ProgressCallback = Callable[[int, Mapping[str, float]], bool | None]
"""``callback(epoch, metrics) -> continue?``: epoch is 1-based; return False to stop."""


@dataclass(frozen=True)
class TrainData:
    """Encoded grouped data.

    Attributes
    ----------
    X
        ``[groups, d]`` encoded features: float32, or float64 for the deterministic optimisers
        (a standardised number is exact only in float64, one-hot columns in both). In the
        index form (``layout`` set, backends with :attr:`Backend.index_inputs`) a column per
        feature instead: codes (first-layer weight rows) and numbers, see
        :mod:`binomlab.layout`.
    k, n
        float64 ``[groups]`` successes and trials (whole numbers, ``0 <= k <= n``, ``n >= 1``).
    layout
        The :class:`~binomlab.layout.IndexLayout` of an index-form ``X``; None for one-hot.
        A network built for it has a first layer of ``layout.width`` weight rows, fed by
        lookup: ``Σ_f W[code_f] + numbers @ W[number_rows] + b``, equal to the one-hot
        ``layout.dense(X) @ W + b``.
    """

    X: np.ndarray
    k: np.ndarray
    n: np.ndarray
    layout: IndexLayout | None = None

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
    """How to train. Build it with any fields left at None, then :meth:`resolve` it: every
    option is checked and every default filled in one place, the same for ``bl.fit``, the CLI,
    the Lab and a backend used on its own. ``Fitted.config`` and the export manifest hold the
    resolved config.

    Attributes
    ----------
    epochs
        Passes over the data for adam/adamw (default 20); for lbfgs the cap on its iterations
        (default 500); for boosting the blocks of rounds the spec's ``trees`` are grown in,
        each followed by the epoch's bookkeeping (default 20, at most ``trees``).
    batch_size
        Groups per mini-batch (default 1,024); lbfgs trains on the full batch, so it resolves
        to the number of groups (a smaller value is an error).
    lr
        Learning rate of adam/adamw (default 1e-2); None for lbfgs, whose line search picks
        the steps (passing one is an error).
    weight_decay
        L2 penalty ``weight_decay/2·Σ‖W‖²`` on the weight matrices (decoupled for adamw); 0
        leaves the maximum-likelihood fit.
    optimizer
        One of :data:`ALL_OPTIMIZERS`; None picks, for the logistic spec, ``"newton"`` with the
        binomial loss and ``"lbfgs"`` with the beta-binomial (where the backend has them:
        full batch, to the maximum-likelihood estimate), else the backend's first optimiser
        other than newton; ``"boosting"`` for the gbdt spec (see :func:`default_optimizer`).
    seed
        Seeds weight initialisation, shuffling and dropout.
    early_stopping
        Patience in epochs for adam/adamw, or None. lbfgs runs to its optimum: setting it
        there is an error.
    tolerance
        lbfgs stops when the max-norm of the gradient of the per-trial objective falls below
        it. The default, 1e-8, takes ill-conditioned GLMs (statsmodels' star98) to their
        coefficients within 1e-4; it needs float64 arithmetic.
    options
        Backend-specific keyword options (e.g. ``strategy="ddp"``), resolved by
        :meth:`Backend.resolve_options` (defaults filled, unknown names refused).
    loss
        One of :data:`LOSSES` that the backend lists in :attr:`Backend.losses`.
    phi
        For the beta-binomial loss, one of :data:`PHI_MODELS` that the backend lists in
        :attr:`Backend.phi_models`: ``"scalar"`` (one ``φ`` for every group) or ``"network"``
        (``log φ`` a second output of the network). Always ``"scalar"`` for the binomial loss.
    """

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 0.0
    optimizer: str | None = None
    seed: int = 0
    early_stopping: int | None = None
    tolerance: float = 1e-8
    options: Mapping[str, Any] = field(default_factory=dict)
    loss: str = "binomial"
    phi: str = "scalar"

    @property
    def deterministic(self) -> bool:
        """True for a full-batch optimiser that runs to the optimum (:data:`DETERMINISTIC`)."""
        return self.optimizer in DETERMINISTIC

    def resolve(
        self, backend: Backend | type[Backend], spec: ModelSpec, groups: int
    ) -> TrainConfig:
        """This config checked against ``backend`` and ``spec``, every default filled.

        Resolving a resolved config gives it back unchanged.

        Parameters
        ----------
        backend
            The backend that will train.
        spec
            The model spec.
        groups
            Number of training groups (the full batch of lbfgs).

        Raises
        ------
        BinomlabError
            A value of the wrong type or out of range (the message names the option and the
            value), an optimiser, spec kind, loss, φ model or option the backend does not
            list, or an option that does not apply to the optimiser (``lr``,
            ``early_stopping`` or a mini-batch size with lbfgs; ``lr``, ``batch_size`` or
            ``weight_decay`` with boosting, or more epochs than the spec's trees).
        """
        name = backend.name
        if spec.kind not in backend.specs:
            msg = (
                f"The {name} backend builds the specs {backend.specs}. Received: {spec!r}. "
                f"Pick a backend that builds {spec.kind!r}, e.g. "
                f"backend={_EXAMPLE_BACKEND.get(spec.kind, 'lightning')!r}."
            )
            raise BinomlabError(msg)
        optimizer = (
            default_optimizer(backend, spec, self.loss)
            if self.optimizer is None
            else self.optimizer
        )
        _one_of("optimizer", optimizer, ALL_OPTIMIZERS)
        _one_of("loss", self.loss, LOSSES)
        _one_of("phi", self.phi, PHI_MODELS)
        if self.phi != "scalar" and self.loss != "beta-binomial":
            msg = (
                f"phi={self.phi!r} describes the beta-binomial's concentration; it needs "
                f"loss='beta-binomial'. Received: loss={self.loss!r}"
            )
            raise BinomlabError(msg)
        for option, value, allowed in (
            ("optimizer", optimizer, backend.optimizers),
            ("loss", self.loss, backend.losses),
            ("phi", self.phi, backend.phi_models),
        ):
            if value not in allowed:
                msg = (
                    f"The {name} backend expects {option} to be one of {allowed}. "
                    f"Received: {option}={value!r}. Pick another backend, e.g. "
                    "backend='lightning'."
                )
                raise BinomlabError(msg)
        if (optimizer in TREE_OPTIMIZERS) != (spec.kind == "gbdt"):
            msg = (
                f"optimizer={optimizer!r} does not train {spec}: boosting grows the trees of "
                "bl.GBDT, the other optimisers step the weights of a network. Leave "
                "optimizer=None to get the spec's own."
            )
            raise BinomlabError(msg)
        if optimizer == "newton" and (spec.kind != "logistic" or self.loss != "binomial"):
            msg = (
                "optimizer='newton' fits the logistic spec with the binomial loss (the GLM); "
                f"use optimizer='lbfgs' or 'adam' here. Received: model={str(spec)!r}, "
                f"loss={self.loss!r}"
            )
            raise BinomlabError(msg)
        epochs = _positive_int("epochs", self.epochs)
        batch_size = _positive_int("batch_size", self.batch_size)
        early_stopping = _positive_int("early_stopping", self.early_stopping)
        lr = _positive_real("lr", self.lr) if self.lr is not None else None
        weight_decay = _positive_real("weight_decay", self.weight_decay, zero=True)
        tolerance = _positive_real("tolerance", self.tolerance)
        seed = check_seed(self.seed, name="seed", bits=32)
        if not isinstance(self.options, Mapping):
            msg = f"Expected options to be a mapping. Received: options={self.options!r}"
            raise BinomlabError(msg)
        if optimizer in TREE_OPTIMIZERS:
            for option, value, why in (
                ("lr", lr, "the learning rate is the spec's: bl.GBDT(learning_rate=...)"),
                (
                    "batch_size",
                    None if batch_size is None or batch_size >= groups else batch_size,
                    f"every round fits the full batch of groups ({groups})",
                ),
                ("weight_decay", weight_decay or None, "use bl.GBDT(l2=...) on the leaves"),
            ):
                if value is not None:
                    msg = (
                        f"{option} does not apply to optimizer={optimizer!r}: {why}. Leave "
                        f"{option} unset. Received: {option}={value!r}"
                    )
                    raise BinomlabError(msg)
            trees = int(spec.trees)
            if epochs is not None and epochs > trees:
                msg = (
                    f"Boosting grows {spec} in epochs of at least one tree, so epochs must be "
                    f"at most trees={trees}. Received: epochs={epochs!r}"
                )
                raise BinomlabError(msg)
            epochs = min(DEFAULT_EPOCHS[optimizer], trees) if epochs is None else epochs
            batch_size = int(groups)
        elif optimizer in DETERMINISTIC:
            for option, value, why in (
                ("lr", lr, "its line search picks every step"),
                ("early_stopping", early_stopping, "it runs to the optimum"),
            ):
                if value is not None:
                    msg = (
                        f"{option} does not apply to optimizer={optimizer!r}: {why}. Leave "
                        f"{option}=None or use optimizer='adam'. Received: {option}={value!r}"
                    )
                    raise BinomlabError(msg)
            if batch_size is not None and batch_size < groups:
                msg = (
                    f"optimizer={optimizer!r} trains on the full batch of groups ({groups}); "
                    "leave batch_size=None or use optimizer='adam'. "
                    f"Received: batch_size={batch_size!r}"
                )
                raise BinomlabError(msg)
            batch_size = int(groups)
        else:
            lr = DEFAULT_LR[optimizer] if lr is None else lr
            batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
        partial = replace(
            self,
            epochs=DEFAULT_EPOCHS[optimizer] if epochs is None else epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            optimizer=optimizer,
            seed=seed,
            early_stopping=early_stopping,
            tolerance=tolerance,
            options=dict(self.options),
        )
        return replace(partial, options=backend.resolve_options(partial))

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready values (an option that is not a JSON scalar as its repr)."""
        out = asdict(self)
        out["options"] = {k: _json_scalar(v) for k, v in self.options.items()}
        return out


def default_optimizer(
    backend: Backend | type[Backend], spec: ModelSpec, loss: str = "binomial"
) -> str:
    """The optimiser ``optimizer=None`` means, for the logistic spec where the backend has it:
    ``"newton"`` for the binomial loss (the GLM's maximum-likelihood fit), ``"lbfgs"`` for the
    beta-binomial (full batch, to the optimum); for the gbdt spec ``"boosting"``; else the
    backend's first that steps a network's weights."""
    if spec.kind == "gbdt":
        return TREE_OPTIMIZERS[0]
    if spec.kind == "logistic":
        for optimizer in ("newton",) * (loss == "binomial") + ("lbfgs",):
            if optimizer in backend.optimizers:
                return optimizer
    # newton fits the GLM only; boosting grows trees
    others = [o for o in backend.optimizers if o != "newton" and o not in TREE_OPTIMIZERS]
    return others[0] if others else backend.optimizers[0]


def takes_codes(backend: Backend | type[Backend], kind: str) -> bool:
    """Whether ``backend``'s networks of spec kind ``kind`` take the index form (its
    :attr:`Backend.index_inputs`; True there means ``("mlp",)``)."""
    listed = getattr(backend, "index_inputs", ())
    if listed is True:
        listed = ("mlp",)
    return isinstance(listed, tuple | list | frozenset | set) and kind in listed


_EXAMPLE_BACKEND = {"gbdt": "lightgbm"}
"""A backend to name in the message refusing a spec kind (the installed ones are named by
``bl.fit``)."""


def _json_scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, int | str) for v in value):
        return list(value)
    return repr(value)


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        msg = f"Expected {name} to be one of {allowed}. Received: {name}={value!r}"
        raise BinomlabError(msg)


def _positive_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        msg = f"Expected {name} to be a positive integer. Received: {name}={value!r}"
        raise BinomlabError(msg)
    return int(value)


def _positive_real(name: str, value: Any, *, zero: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or not (value > 0 or (zero and value == 0))
    ):
        kind = "a non-negative" if zero else "a positive"
        msg = f"Expected {name} to be {kind} finite number. Received: {name}={value!r}"
        raise BinomlabError(msg)
    return float(value)


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
    """A network: predicts logits from encoded features and exports itself.

    During training it is the session's live network (predictions follow the weights as they
    change); :meth:`Backend.fit` returns it with the kept weights and :attr:`stop_reason`.
    """

    stop_reason: str = "completed"
    """One of :data:`STOP_REASONS`, set by the core's loop."""

    best_epoch: int = 0
    """The epoch (1-based) whose weights the network holds, set by the core's loop (for
    lbfgs, the last iteration); 0 when no epoch ran."""

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


class Session(ABC):
    """One training run on a backend: the network built from the spec and what trains it.

    The core's loop uses a session as a context manager: ``__enter__`` seeds the framework
    with ``config.seed``, ``__exit__`` gives the caller back its global random state (and any
    other global the framework changed), on success, error or interrupt alike.

    Attributes
    ----------
    network
        The live :class:`Network` being trained.
    decayed
        One flag per array of :meth:`get_weights`: True for the weight matrices that
        ``weight_decay`` penalises (not the biases, not the beta-binomial ``θ``).
    """

    network: Network
    decayed: tuple[bool, ...]

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @abstractmethod
    def get_weights(self) -> list[np.ndarray]:
        """Copies of every trained array (``θ`` included), float64, in a fixed order."""

    @abstractmethod
    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Put arrays from :meth:`get_weights` (same order and shapes) back."""

    def run_epochs(
        self,
        epochs: int,
        end_epoch: Callable[[], bool],
        end_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        """(boosting: ``epochs`` blocks of boosting rounds on the full batch, ``end_epoch()``
        after each; :meth:`get_weights` is then the number of trees, and :meth:`set_weights`
        cuts the model back to it.)

        adam/adamw: run up to ``epochs`` epochs of mini-batch optimizer steps (batches of
        ``config.batch_size`` groups in a new order every epoch, each step on the batch's
        per-trial NLL), calling ``end_epoch()`` after each and returning as soon as it returns
        True. Exceptions, KeyboardInterrupt included, propagate to the core.

        ``end_batch(batch, batches)``, when given, is called after every optimizer step with
        the step's 1-based index in the epoch and the epoch's number of steps (per process
        under data parallelism); it may raise to stop training mid-epoch. The core passes
        it only when a user asks for progress by batch, so a backend adds no per-step cost
        without it. (A backend whose ``run_epochs`` has no ``end_batch`` parameter trains
        without progress by batch.)"""
        msg = f"{type(self).__name__} trains no mini-batch optimiser."
        raise NotImplementedError(msg)

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Hand an adam/adamw or boosting epoch's ``metrics`` (``train_nll``, ``val_nll``:
        the core's exact per-trial NLLs) to the framework's own loggers, if a user gave it
        any: the core calls it at each epoch's end, once the epoch passed the divergence
        check. This default logs nothing, as does a session without the method (one
        written, duck-typed, before it existed)."""
        return None

    def loss_and_grad(self, weights: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        """Deterministic optimisers: set ``weights`` and return the full-batch training loss
        per trial (no penalty: the core adds it) and its gradient, both float64."""
        msg = f"{type(self).__name__} gives no full-batch gradient."
        raise NotImplementedError(msg)


class Backend(ABC):
    """A training backend: what it can train (the class attributes), its framework's
    versions, and a :class:`Session` per fit. The entry-point module of a backend must not
    import its framework at module top; :meth:`session` and :meth:`versions` import it."""

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

    index_inputs: ClassVar[tuple[str, ...]] = ()
    """The spec kinds whose networks take the index form (``TrainData.layout``), e.g.
    ``("mlp",)``: for those the core encodes the features as codes, not one-hot columns (see
    :func:`takes_codes`). A plugin written before this was a tuple may set True, meaning
    ``("mlp",)``."""

    @abstractmethod
    def versions(self) -> dict[str, str]:
        """Versions of the framework packages, recorded in export manifests."""

    def resolve_options(self, config: TrainConfig) -> dict[str, Any]:
        """``config.options`` checked, with this backend's defaults filled in.

        This default refuses names not in :attr:`options`; a backend that checks values or
        has defaults extends it.

        Raises
        ------
        BinomlabError
            An option the backend does not take.
        """
        unknown = sorted(set(config.options) - set(self.options))
        if unknown:
            msg = (
                f"The {self.name} backend does not take the option(s) {unknown}. "
                f"Expected any of {sorted(self.options)}."
            )
            raise BinomlabError(msg)
        return dict(config.options)

    @abstractmethod
    def session(self, train: TrainData, spec: ModelSpec, config: TrainConfig) -> Session:
        """A :class:`Session` for a resolved ``config``: the network of ``spec`` for
        ``train.X.shape[1]`` encoded features, its output bias at ``train.base_logit``, in
        float64 for a deterministic optimiser."""

    def fit(
        self,
        train: TrainData,
        val: TrainData | None,
        spec: ModelSpec,
        config: TrainConfig,
        callback: ProgressCallback | None = None,
        batch_callback: loop.BatchCallback | None = None,
    ) -> Network:
        """Train ``spec`` on ``train`` by the core's rules (:mod:`binomlab.backends.loop` for
        adam/adamw and for boosting, whose epochs are blocks of rounds;
        :mod:`binomlab.backends.lbfgs` for lbfgs); ``config`` is resolved first.
        ``batch_callback(epoch, batch, batches)`` follows the optimizer steps of adam/adamw
        (newton and lbfgs take full-batch steps: each is an epoch).

        Returns
        -------
        Network
            With the kept weights and ``stop_reason`` set.

        Raises
        ------
        BinomlabError
            A bad option (see :meth:`TrainConfig.resolve`).
        TrainingDivergedError
            See :data:`binomlab.backends.loop.DIVERGENCE_RULE`.
        """
        config = config.resolve(self, spec, len(train))
        callback = callback or (lambda epoch, metrics: None)
        with self.session(train, spec, config) as session:
            if config.optimizer == "newton":
                return newton.minimize(session, train, val, spec, config, callback)
            if config.deterministic:
                return lbfgs.minimize(session, train, val, spec, config, callback)
            return loop.run(session, train, val, config, callback, batch_callback)
