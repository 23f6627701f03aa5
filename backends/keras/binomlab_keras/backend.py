"""``KerasBackend``: the ``keras`` entry of the ``binomlab.backends`` registry.

It follows the training rules of :mod:`binomlab.protocol` on whichever Keras backend is
running (``KERAS_BACKEND``: TensorFlow by default, PyTorch or JAX):

* Adam and AdamW train with ``model.fit`` on shuffled mini-batches of groups, the loss being
  :class:`~binomlab_keras.loss.BinomialNLL` (each batch's NLL over its trials);
  :class:`ProgressMonitor`, a Keras callback, reports every epoch to binomlab's callback,
  keeps the best weights and stops training when asked to.
* L-BFGS, which Keras lacks, is SciPy's L-BFGS-B over the flattened float64 weights, with the
  value and gradient of the full-batch NLL computed by the Keras backend's autodiff; one
  L-BFGS iteration is one epoch.
* ``loss="beta-binomial"`` trains the same network with a :class:`~binomlab_keras.loss.LogPhi`
  layer appended (the trainable ``θ = log φ``, from ``log 100``, never weight-decayed) on
  :class:`~binomlab_keras.loss.BetaBinomialNLL`; the returned network is the logit model
  alone, with ``phi`` set, so its ONNX export still gives the logit of the mean. With
  ``phi="network"`` a :class:`~binomlab_keras.loss.LogPhiDense` on the last hidden layer
  gives a ``θ`` per row instead; the network keeps it (``KerasNetwork.pair``) and its ONNX
  export has the second output ``log_phi``.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops
from keras.src.backend.common import global_state
from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR
from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED

from binomlab._random_state import keep_random_state
from binomlab.betabinomial import beta_binomial_nll as beta_binomial_oracle
from binomlab.betabinomial import phi_from_log
from binomlab.errors import BinomlabError
from binomlab.protocol import (
    LOSSES,
    OPTIMIZERS,
    PHI_MODELS,
    Backend,
    BestEpoch,
    Network,
    ProgressCallback,
    TrainConfig,
    TrainData,
    check_config,
    check_encoded,
)
from binomlab.reference import grouped_nll
from binomlab.specs import ModelSpec
from binomlab_keras.data import GroupArrays, GroupBatches
from binomlab_keras.export import export_onnx, save_native
from binomlab_keras.loss import (
    BetaBinomialNLL,
    BetaBinomialNLLMetric,
    BinomialNLL,
    BinomialNLLMetric,
    LogPhi,
    LogPhiDense,
    beta_binomial_nll,
    binomial_nll,
)
from binomlab_keras.model import (
    build_model,
    forward,
    forward_pair,
    kernels,
    set_output_bias,
    split_pair,
    with_phi_head,
)

__all__ = ["KerasBackend", "KerasNetwork", "ProgressMonitor"]

OPTIONS = ("jit_compile", "steps_per_execution")
ADAM_EPOCHS = 20
LBFGS_MAX_ITERATIONS = 500
LBFGS_HISTORY = 20
DEFAULT_BATCH_SIZE = 1024
DEFAULT_LR = {"adam": 1e-2, "adamw": 1e-2}
ADAM_EPSILON = 1e-8
"""PyTorch's Adam epsilon (Keras's default is 1e-7), so both backends take the same steps."""
CHUNK = 65_536
"""Groups per forward pass when evaluating or predicting."""
STEPS_PER_EXECUTION = 32
"""Adam/AdamW mini-batches per call of the compiled train step, by default, where Keras can
run several (TensorFlow, JAX; its torch backend runs one). binomlab's callbacks run at epoch
ends, so nothing needs Keras's per-batch hooks; a 256-group epoch of the flights MLP takes
0.07 s instead of 0.11 s on two CPU cores. The updates are the same."""
TRAIN_METRIC = "binomial_nll"


def chunks(model: keras.Model, X: np.ndarray) -> list[Any]:
    """``X [rows, d]`` as tensors of at most :data:`CHUNK` rows in the model's dtype."""
    dtype = model.inputs[0].dtype
    return [
        ops.convert_to_tensor(np.asarray(X[start : start + CHUNK], dtype=dtype))
        for start in range(0, max(X.shape[0], 1), CHUNK)
    ]


def logits(model: keras.Model, X: np.ndarray | list[Any]) -> np.ndarray:
    """The model's logits in inference mode, float64 ``[rows]``, for ``X [rows, d]`` or its
    :func:`chunks`."""
    parts = chunks(model, X) if isinstance(X, np.ndarray) else X
    return np.concatenate(
        [np.asarray(ops.convert_to_numpy(forward(model, x)), np.float64).reshape(-1) for x in parts]
    )


def logits_and_log_phi(pair: keras.Model, X: np.ndarray | list[Any]) -> np.ndarray:
    """``[z, log φ]`` of a model with a φ head in inference mode, float64 ``[rows, 2]``."""
    parts = chunks(pair, X) if isinstance(X, np.ndarray) else X
    return np.concatenate(
        [np.asarray(ops.convert_to_numpy(forward_pair(pair, x)), np.float64) for x in parts]
    )


class KerasNetwork(Network):
    """A trained Keras model of a binomlab spec.

    Attributes
    ----------
    model
        The ``keras.Model``: ``X [batch, d] -> logits [batch, 1]``.
    spec, input_dim
        What it was built from.
    stop_reason
        One of :data:`binomlab.protocol.STOP_REASONS`.
    phi
        The learned beta-binomial concentration ``φ``, None for the binomial loss and with a
        φ head; not part of ``model``, which gives the logit of the mean either way.
    pair
        With ``phi="network"``: ``model`` with its :class:`~binomlab_keras.loss.LogPhiDense`
        head, ``X -> [z, log φ]`` ``[batch, 2]`` (sharing ``model``'s layers); else None.
    """

    def __init__(
        self,
        model: keras.Model,
        spec: ModelSpec,
        input_dim: int,
        *,
        stop_reason: str = "completed",
        phi: float | None = None,
        pair: keras.Model | None = None,
    ) -> None:
        self.model = model
        self.spec = spec
        self.input_dim = int(input_dim)
        self.stop_reason = stop_reason
        self.phi = None if phi is None else float(phi)
        self.pair = pair

    @property
    def phi_output(self) -> bool:
        """True when the network has a φ head (:attr:`pair`)."""
        return self.pair is not None

    @property
    def n_params(self) -> int:
        """Trainable parameters of the model (and its φ head), plus one for a scalar ``φ``."""
        variables = (self.pair or self.model).trainable_variables
        return sum(math.prod(v.shape) for v in variables) + (self.phi is not None)

    def predict_log_phi(self, X: np.ndarray) -> np.ndarray | None:
        """``log φ``, float64 ``[rows]``: the φ head's, or the scalar ``φ`` repeated; None for
        the binomial loss."""
        if self.pair is None:
            return super().predict_log_phi(X)
        X = check_encoded(X, self.input_dim)
        return logits_and_log_phi(self.pair, X)[:, 1]

    def predict_logits(self, X: np.ndarray) -> np.ndarray:
        """Logits, float64 ``[rows]``, for ``X [rows, d]`` (inference mode: no dropout).

        Raises
        ------
        BinomlabError
            ``X`` is not 2-D with ``d`` columns.
        """
        X = check_encoded(X, self.input_dim)
        return logits(self.model, X)

    def export_onnx(self, path: Path) -> None:
        export_onnx(self.model, path, head=None if self.pair is None else split_pair(self.pair)[1])

    def save_native(self, directory: Path) -> list[str]:
        return save_native(self.pair or self.model, directory, phi=self.phi)

    def __repr__(self) -> str:
        phi = "" if self.phi is None else f", phi={self.phi:.4g}"
        return (
            f"KerasNetwork({self.spec}, input_dim={self.input_dim}, "
            f"stop_reason={self.stop_reason!r}{phi})"
        )


@contextlib.contextmanager
def _keep_random_state() -> Iterator[None]:
    """``keras.utils.set_random_seed`` seeds Python, NumPy, TensorFlow (whenever it is
    installed), torch (when Keras runs on it) and Keras's global seed and ``SeedGenerator``
    (of ``keras.random`` without a seed): give the caller all of them back on exit."""
    seed = global_state.get_global_attribute(GLOBAL_RANDOM_SEED)
    generator = global_state.get_global_attribute(GLOBAL_SEED_GENERATOR)
    with contextlib.ExitStack() as stack:
        stack.enter_context(keep_random_state())
        stack.enter_context(_keep_tensorflow_seed())
        if keras.backend.backend() == "torch":
            import torch

            accelerators = range(torch.accelerator.device_count())
            stack.enter_context(torch.random.fork_rng(devices=accelerators))
        try:
            yield
        finally:
            global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
            global_state.set_global_attribute(GLOBAL_SEED_GENERATOR, generator)


@contextlib.contextmanager
def _keep_tensorflow_seed() -> Iterator[None]:
    """``tf.random.set_seed`` sets the eager context's global seed and restarts the sequence
    of operation seeds that unseeded ops (``tf.data``'s shuffle among them) draw from it: put
    both back. TensorFlow first imported during the run goes back to no global seed."""
    eager = _tensorflow_eager()
    seed = None if eager is None else eager.global_seed()
    sequence = None if eager is None else getattr(eager.context(), "_rng", None)
    position = None if sequence is None else sequence.getstate()
    try:
        yield
    finally:
        eager = _tensorflow_eager()
        if eager is not None:
            eager.set_global_seed(seed)
            if position is not None:
                eager.context()._rng.setstate(position)


def _tensorflow_eager() -> Any:
    """TensorFlow's ``eager.context`` module, where its global seed lives; None while
    TensorFlow is not imported."""
    if "tensorflow" not in sys.modules:
        return None
    from tensorflow.python.eager import context

    return context


class KerasBackend(Backend):
    """Trains binomlab specs with Keras 3 on its running backend (TensorFlow by default).

    Options (``bl.fit(..., backend="keras", **options)``), passed to ``model.compile`` for
    Adam/AdamW (L-BFGS ignores them): ``jit_compile`` (default False) and
    ``steps_per_execution`` (default :data:`STEPS_PER_EXECUTION` = 32 on TensorFlow and JAX,
    1 on torch, the only value Keras accepts there).

    Adam/AdamW default to 20 epochs of 1,024 groups per batch at ``lr=1e-2``; Adam's
    ``weight_decay`` is an L2 penalty ``weight_decay/2·Σ‖W‖²`` on the weight matrices
    (as PyTorch's Adam), AdamW's is decoupled and spares the biases. L-BFGS trains full batch
    in float64 until the gradient's max-norm is below ``tolerance`` (``lr`` is not used: the
    line search picks the steps; dropout is off, the objective must be deterministic).

    Losses: ``"binomial"`` and ``"beta-binomial"`` (``θ = log φ`` trained jointly with the
    weights by every optimiser, excluded from weight decay; ``φ`` returned as
    :attr:`KerasNetwork.phi`); with ``phi="network"`` a
    :class:`~binomlab_keras.loss.LogPhiDense` head (not decayed either) gives ``θ`` per row.
    """

    name: ClassVar[str] = "keras"
    specs: ClassVar[tuple[str, ...]] = ("logistic", "mlp")
    optimizers: ClassVar[tuple[str, ...]] = OPTIMIZERS
    options: ClassVar[tuple[str, ...]] = OPTIONS
    losses: ClassVar[tuple[str, ...]] = LOSSES
    phi_models: ClassVar[tuple[str, ...]] = PHI_MODELS

    def versions(self) -> dict[str, str]:
        """``keras``, ``keras_backend`` (its name) and the version of that framework."""
        backend = keras.backend.backend()
        versions = {"keras": keras.__version__, "keras_backend": backend}
        framework = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}.get(backend)
        if framework is not None:
            import importlib

            versions[framework] = importlib.import_module(framework).__version__
        return versions

    @_keep_random_state()
    def fit(
        self,
        train: TrainData,
        val: TrainData | None,
        spec: ModelSpec,
        config: TrainConfig,
        callback: ProgressCallback,
    ) -> KerasNetwork:
        """Train ``spec`` on ``train`` following :mod:`binomlab.protocol`.

        The run is seeded with ``config.seed``; the caller's global random state (Python,
        NumPy, TensorFlow, torch, Keras's) is restored on return, on error or interrupt.

        Raises
        ------
        BinomlabError
            An unknown or invalid option, optimiser, spec or loss, a mini-batch size with
            ``"lbfgs"``, or ``"lbfgs"`` on a Keras backend without autodiff.
        """
        options = _check(train, spec, config)
        lbfgs = config.optimizer == "lbfgs"
        input_dim = train.X.shape[1]
        keras.utils.set_random_seed(config.seed)  # undone on exit by @_keep_random_state
        model = build_model(
            spec, input_dim, seed=config.seed, dtype="float64" if lbfgs else "float32"
        )
        # start from the intercept-only model rather than from p = 0.5
        set_output_bias(model, train.base_logit)
        head: LogPhi | keras.Model | None = None
        trained = model  # what the optimiser trains: the logit model, or it and θ
        if config.loss == "beta-binomial" and config.phi == "network":
            head = trained = with_phi_head(model)
        elif config.loss == "beta-binomial":
            head = LogPhi(dtype=model.inputs[0].dtype)
            trained = keras.Model(model.inputs, head(model.outputs[0]), name=model.name + "_bb")
        monitor = ProgressMonitor(
            callback,
            val,
            patience=config.early_stopping,
            weight_decay=config.weight_decay,
            network=model,
            head=head,
        )
        monitor.set_model(trained)
        try:
            if lbfgs:
                _fit_lbfgs(model, head, train, config, monitor)
            else:
                _fit_adam(trained, train, config, monitor, options)
        except KeyboardInterrupt:
            monitor.stop_reason = "interrupted"
        monitor.restore_best()
        phi = head.phi if isinstance(head, LogPhi) else None
        pair = head if isinstance(head, keras.Model) else None
        return KerasNetwork(
            model, spec, input_dim, stop_reason=monitor.stop_reason, phi=phi, pair=pair
        )


def default_steps_per_execution() -> int:
    """:data:`STEPS_PER_EXECUTION`, or 1 under Keras's torch backend (which refuses more)."""
    return 1 if keras.backend.backend() == "torch" else STEPS_PER_EXECUTION


def _check(train: TrainData, spec: ModelSpec, config: TrainConfig) -> dict[str, Any]:
    """:func:`~binomlab.protocol.check_config`, and the Keras options and gradients; returns
    the ``model.compile`` options, defaults filled in."""
    options = check_config(KerasBackend, train, spec, config)
    jit = options.get("jit_compile", False)
    if jit not in (True, False, "auto"):
        msg = f"Expected jit_compile to be True, False or 'auto'. Received: jit_compile={jit!r}"
        raise BinomlabError(msg)
    steps = options.get("steps_per_execution", default_steps_per_execution())
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        msg = (
            "Expected steps_per_execution to be a positive integer. "
            f"Received: steps_per_execution={steps!r}"
        )
        raise BinomlabError(msg)
    if config.optimizer == "lbfgs" and keras.backend.backend() not in _GRADIENTS:
        msg = (
            f"optimizer='lbfgs' needs gradients, which the {keras.backend.backend()!r} "
            f"Keras backend does not give; set KERAS_BACKEND to one of {sorted(_GRADIENTS)}."
        )
        raise BinomlabError(msg)
    return {"jit_compile": jit, "steps_per_execution": steps}


# -- progress, stopping, best weights ---------------------------------------------------------


class ProgressMonitor(keras.callbacks.Callback):
    """Reports each epoch to binomlab's callback, keeps the best weights, stops training.

    At every epoch end (``on_epoch_end`` under ``model.fit``, :meth:`report` for L-BFGS):
    take ``train_nll`` (the ``binomial_nll`` metric of the epoch, beta-binomial for that loss)
    and compute ``val_nll`` on all validation groups in inference mode (from ``network``'s
    logits, and ``head``'s ``φ`` for the beta-binomial, or the ``[z, θ]`` of ``head`` when it
    is the model with a φ head), snapshot the weights (``θ``
    included) when the monitored value
    improves (``val_nll``; else ``train_nll`` plus ``weight_decay/2·Σ‖W‖²``), call
    ``callback(epoch, metrics)``, and stop when it returns False, when L-BFGS has converged
    or when the patience has run out. Exceptions from the callback go through untouched (the
    backend catches a KeyboardInterrupt and keeps the best weights).
    """

    def __init__(
        self,
        callback: ProgressCallback,
        val: TrainData | None,
        *,
        patience: int | None,
        weight_decay: float = 0.0,
        network: keras.Model | None = None,
        head: LogPhi | keras.Model | None = None,
    ) -> None:
        super().__init__()
        self.network = network
        self.head = head
        self.callback = callback
        self.val = val
        self.weight_decay = weight_decay
        self.best = BestEpoch(patience)
        self.best_weights: list[np.ndarray] | None = None
        self.stop_reason = "completed"
        self._val_x: list[Any] | None = None

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        reason = self.report(epoch + 1, float((logs or {})[TRAIN_METRIC]))
        if reason is not None:
            self.model.stop_training = True
            self.stop_reason = reason

    def penalty(self) -> float:
        """``weight_decay/2 · Σ‖W‖²`` over the weight matrices (not the biases)."""
        if not self.weight_decay:
            return 0.0
        squares = sum(
            float(np.sum(np.square(w.numpy(), dtype=np.float64))) for w in kernels(self.model)
        )
        return 0.5 * self.weight_decay * squares

    def report(self, epoch: int, train_nll: float, *, converged: bool = False) -> str | None:
        """Record epoch ``epoch`` (1-based); return why training should stop, or None."""
        metrics = {"train_nll": train_nll}
        if self.val is not None:
            network = self.network if self.network is not None else self.model
            if self._val_x is None:  # converted once, in the model's dtype
                self._val_x = chunks(network, self.val.X)
            k, n = self.val.k, self.val.n
            if self.head is None:
                metrics["val_nll"] = grouped_nll(logits(network, self._val_x), k, n)
            elif isinstance(self.head, LogPhi):
                z = logits(network, self._val_x)
                metrics["val_nll"] = beta_binomial_oracle(z, k, n, self.head.phi)
            else:
                z, theta = logits_and_log_phi(self.head, self._val_x).T
                metrics["val_nll"] = beta_binomial_oracle(z, k, n, phi_from_log(theta))
        # without validation data, the training objective: with weight decay, the NLL alone
        # would prefer the least regularised epoch over the penalised fit that was asked for
        penalty = 0.0 if "val_nll" in metrics else self.penalty()
        if self.best.update(epoch, metrics, penalty):
            self.best_weights = [np.array(w, copy=True) for w in self.model.get_weights()]
        return self.best.stop_reason(self.callback(epoch, metrics), converged=converged)

    def restore_best(self) -> None:
        """Put the weights of the best epoch back (if an epoch was reported)."""
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


# -- Adam and AdamW: model.fit ---------------------------------------------------------------


def _fit_adam(
    model: keras.Model,
    train: TrainData,
    config: TrainConfig,
    monitor: ProgressMonitor,
    options: Mapping[str, Any],
) -> None:
    lr = config.lr if config.lr is not None else DEFAULT_LR[config.optimizer]
    decay = config.weight_decay
    if config.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(
            learning_rate=lr, weight_decay=decay, epsilon=ADAM_EPSILON
        )
        optimizer.exclude_from_weight_decay(var_names=["bias", "log_phi"])
    else:
        optimizer = keras.optimizers.Adam(learning_rate=lr, epsilon=ADAM_EPSILON)
    # Adam's weight decay is an L2 penalty in the loss, weight_decay/2·‖W‖², set on the
    # variables only for training so that the saved model carries no regulariser
    penalised = kernels(model) if config.optimizer == "adam" and decay else []
    for kernel in penalised:
        kernel.regularizer = keras.regularizers.L2(decay / 2)
    beta = any(isinstance(layer, LogPhi | LogPhiDense) for layer in model.layers)
    model.compile(
        optimizer=optimizer,
        loss=BetaBinomialNLL() if beta else BinomialNLL(),
        metrics=[(BetaBinomialNLLMetric if beta else BinomialNLLMetric)(name=TRAIN_METRIC)],
        **options,
    )
    batches = GroupBatches(
        GroupArrays.from_train_data(train, "float32"),
        batch_size=config.batch_size or DEFAULT_BATCH_SIZE,
        seed=config.seed,
    )
    try:
        model.fit(
            batches,
            epochs=config.epochs or ADAM_EPOCHS,
            shuffle=False,
            verbose=0,
            callbacks=[monitor],
        )
    finally:
        for kernel in penalised:
            kernel.regularizer = None


# -- L-BFGS: SciPy over the flattened weights, gradients from the Keras backend -----------------


def _per_trial_nll(model: keras.Model, head: LogPhi | keras.Model | None, x: Any, y: Any) -> Any:
    """The full-batch NLL per trial: binomial, or beta-binomial with ``head``'s ``θ`` (a
    :class:`LogPhi`, or the model with a φ head)."""
    if head is None:
        nll = binomial_nll(y, forward(model, x))
    elif isinstance(head, LogPhi):
        nll = beta_binomial_nll(y, head(forward(model, x)))
    else:
        nll = beta_binomial_nll(y, forward_pair(head, x))
    # the operator, not ops.divide, which computes float64 in float32 on torch
    return ops.sum(nll) / ops.sum(y[:, 1])


def _tensorflow_gradients(
    model: keras.Model, head: LogPhi | keras.Model | None, variables: list[Any], x: Any, y: Any
) -> Callable:
    import tensorflow as tf

    @tf.function
    def step(x: Any, y: Any) -> tuple[Any, list[Any]]:
        with tf.GradientTape() as tape:
            value = _per_trial_nll(model, head, x, y)
        return value, tape.gradient(value, variables)

    return lambda: step(x, y)


def _torch_gradients(
    model: keras.Model, head: LogPhi | keras.Model | None, variables: list[Any], x: Any, y: Any
) -> Callable:
    import torch

    params = [v.value for v in variables]

    def step() -> tuple[Any, list[Any]]:
        value = _per_trial_nll(model, head, x, y)
        return value.detach(), [g.detach() for g in torch.autograd.grad(value, params)]

    return step


_GRADIENTS = {
    "tensorflow": _tensorflow_gradients,
    "torch": _torch_gradients,
}
"""Keras backends whose autodiff L-BFGS uses (JAX would need ``jax_enable_x64`` for float64)."""


def _fit_lbfgs(
    model: keras.Model,
    head: LogPhi | keras.Model | None,
    train: TrainData,
    config: TrainConfig,
    monitor: ProgressMonitor,
) -> None:
    from scipy.optimize import minimize

    # the weights, then the beta-binomial θ (log_phi, log_phi_kernel: not decayed)
    variables = [*model.trainable_variables]
    if head is not None:
        variables += [v for v in head.trainable_variables if all(v is not w for w in variables)]
    sizes = [math.prod(v.shape) for v in variables]
    splits = np.cumsum(sizes)[:-1]
    decayed = np.concatenate(
        [np.full(s, v.name == "kernel") for v, s in zip(variables, sizes, strict=True)]
    )
    decay = config.weight_decay
    x = ops.convert_to_tensor(np.asarray(train.X, np.float64))
    y = ops.convert_to_tensor(np.column_stack([train.k, train.n]))
    gradients = _GRADIENTS[keras.backend.backend()](model, head, variables, x, y)
    last: dict[str, np.ndarray] = {}

    def assign(theta: np.ndarray) -> None:
        for variable, part in zip(variables, np.split(theta, splits), strict=True):
            variable.assign(part.reshape(tuple(variable.shape)))

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        assign(theta)
        nll, grads = gradients()
        grad = np.concatenate([np.ravel(ops.convert_to_numpy(g)) for g in grads])
        grad = grad.astype(np.float64) + decay * theta * decayed
        value = float(ops.convert_to_numpy(nll)) + 0.5 * decay * float(
            np.sum(np.square(theta[decayed]))
        )
        last.update(theta=theta.copy(), grad=grad, nll=float(ops.convert_to_numpy(nll)))
        return value, grad

    epoch = 0

    def on_iteration(intermediate_result: Any) -> None:
        nonlocal epoch
        theta = intermediate_result.x
        epoch += 1
        if not np.array_equal(last.get("theta"), theta):
            objective(theta)  # the exact NLL and gradient where the iteration landed
        assign(theta)
        converged = float(np.max(np.abs(last["grad"]))) <= config.tolerance
        reason = monitor.report(epoch, last["nll"], converged=converged)
        if reason is not None:
            monitor.stop_reason = reason
            raise StopIteration

    theta0 = np.concatenate([np.ravel(v.numpy()) for v in variables])
    result = minimize(
        objective,
        theta0.astype(np.float64),
        jac=True,
        method="L-BFGS-B",
        callback=on_iteration,
        options={
            "maxiter": config.epochs or LBFGS_MAX_ITERATIONS,
            "gtol": config.tolerance,
            "ftol": 0.0,
            "maxcor": LBFGS_HISTORY,
        },
    )
    if monitor.stop_reason == "completed" and result.success:
        # L-BFGS-B stopped by itself: the gradient is below tolerance, or no step can lower
        # the objective any further in float64
        monitor.stop_reason = "converged"
    if epoch == 0:  # optimal at the start: no epoch reported
        assign(result.x)
