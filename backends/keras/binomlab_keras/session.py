"""``KerasSession``: one training run of the Keras backend, the framework glue under the
core's rules (:mod:`binomlab.backends.loop`, :mod:`binomlab.backends.lbfgs`), on whichever Keras
backend is running (``KERAS_BACKEND``: TensorFlow by default, PyTorch or JAX).

* Adam and AdamW train on mini-batches of groups in a new order every epoch, the loss being
  :class:`~binomlab_keras.loss.BinomialNLL` (each batch's NLL over its trials): on TensorFlow
  in the graph, one traced call per ``steps_per_execution`` batches
  (:mod:`binomlab_keras.graph_epochs`); on torch and JAX with ``model.fit`` on
  :class:`~binomlab_keras.data.GroupBatches`, a Keras callback handing every epoch's end to
  the core.
* L-BFGS: the core's SciPy driver, with the full-batch NLL and its gradient from the Keras
  backend's autodiff in float64 (TensorFlow, torch: a float64 model; JAX: a float64 forward
  pass under ``jax.enable_x64`` over the float32 model's layers, since JAX keeps float32
  unless x64 is on).
* ``loss="beta-binomial"`` trains the network with a :class:`~binomlab_keras.loss.LogPhi`
  layer appended (``θ = log φ``, from ``log 100``, never weight-decayed) on
  :class:`~binomlab_keras.loss.BetaBinomialNLL`; with ``phi="network"`` a
  :class:`~binomlab_keras.loss.LogPhiDense` on the last hidden layer gives a ``θ`` per row.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
from keras import ops
from keras.src.backend.common import global_state
from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR
from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED

from binomlab._random_state import keep_random_state
from binomlab.backends.protocol import Session, TrainConfig, TrainData
from binomlab.specs import ModelSpec
from binomlab_keras.data import GroupArrays, GroupBatches
from binomlab_keras.graph_epochs import run_graph_epochs
from binomlab_keras.loss import (
    BetaBinomialNLL,
    BinomialNLL,
    LogPhi,
    LogPhiDense,
    beta_binomial_nll,
    binomial_nll,
)
from binomlab_keras.model import (
    IndexDense,
    LevelEmbeddings,
    build_model,
    forward,
    forward_pair,
    kernels,
    set_output_bias,
    stack_layers,
    with_phi_head,
)
from binomlab_keras.network import KerasNetwork

__all__ = ["ADAM_EPSILON", "KerasSession", "fit_epochs"]

ADAM_EPSILON = 1e-8
"""PyTorch's Adam epsilon (Keras's default is 1e-7), so both backends take the same steps."""


class KerasSession(Session):
    """The Keras model of ``spec`` (and its φ layer), seeded with ``config.seed`` on entry;
    the caller's global random state (Python, NumPy, TensorFlow, torch, Keras's) is put back
    on exit."""

    def __init__(self, train: TrainData, spec: ModelSpec, config: TrainConfig) -> None:
        self.train, self.spec, self.config = train, spec, config
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> KerasSession:
        config = self.config
        self._stack.enter_context(_keep_random_state())
        keras.utils.set_random_seed(config.seed)
        backend = keras.backend.backend()
        float64 = config.deterministic and backend != "jax"
        input_dim = self.train.X.shape[1]
        model = build_model(
            self.spec,
            input_dim,
            seed=config.seed,
            dtype="float64" if float64 else "float32",
            layout=self.train.layout,
        )
        set_output_bias(model, self.train.base_logit)  # the intercept-only model, not p = 0.5
        self.head: LogPhi | keras.Model | None = None
        self.trained = model  # what the optimiser trains: the logit model, or it and θ
        if config.loss == "beta-binomial" and config.phi == "network":
            self.head = self.trained = with_phi_head(model)
        elif config.loss == "beta-binomial":
            self.head = LogPhi(dtype=model.inputs[0].dtype)
            self.trained = keras.Model(
                model.inputs, self.head(model.outputs[0]), name=model.name + "_bb"
            )
        self.model = model
        self.variables = list(self.trained.trainable_variables)
        decayed = {id(v) for v in kernels(model)}
        self.decayed = tuple(id(v) in decayed for v in self.variables)
        self.network = KerasNetwork(
            model,
            self.spec,
            input_dim,
            pair=self.head if isinstance(self.head, keras.Model) else None,
            phi_layer=self.head if isinstance(self.head, LogPhi) else None,
        )
        if config.deterministic:
            self._gradients = _GRADIENTS[backend](self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def get_weights(self) -> list[np.ndarray]:
        return [np.array(ops.convert_to_numpy(v), np.float64) for v in self.variables]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        for variable, w in zip(self.variables, weights, strict=True):
            variable.assign(np.asarray(w).reshape(tuple(variable.shape)).astype(variable.dtype))

    def loss_and_grad(self, weights: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        return self._gradients(weights)

    def run_epochs(
        self,
        epochs: int,
        end_epoch: Callable[[], bool],
        end_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        config, model = self.config, self.trained
        decay = config.weight_decay
        if config.optimizer == "adamw":
            optimizer = keras.optimizers.AdamW(
                learning_rate=config.lr, weight_decay=decay, epsilon=ADAM_EPSILON
            )
            optimizer.exclude_from_weight_decay(var_names=["bias", "log_phi"])
        else:
            optimizer = keras.optimizers.Adam(learning_rate=config.lr, epsilon=ADAM_EPSILON)
        # Adam's weight decay is an L2 penalty in the loss, weight_decay/2·‖W‖², set on the
        # variables only for training so that the saved model carries no regulariser
        penalised = kernels(self.model) if config.optimizer == "adam" and decay else []
        for kernel in penalised:
            kernel.regularizer = keras.regularizers.L2(decay / 2)
        beta = self.head is not None
        model.compile(
            optimizer=optimizer, loss=BetaBinomialNLL() if beta else BinomialNLL(), **config.options
        )
        # Adam's moments built now, not inside the first trace of the train step: a
        # tf.function that creates variables is traced twice (once to lift them out), so
        # this saves one trace of the step per fit; the updates are the same
        optimizer.build(model.trainable_variables)
        # TensorFlow trains in the graph; torch and JAX through model.fit
        run = run_graph_epochs if keras.backend.backend() == "tensorflow" else fit_epochs
        try:
            run(
                model,
                GroupArrays.from_train_data(self.train, "float32"),
                batch_size=config.batch_size,
                seed=config.seed,
                epochs=epochs,
                end_epoch=end_epoch,
                end_batch=end_batch,
            )
        finally:
            for kernel in penalised:
                kernel.regularizer = None


def fit_epochs(
    model: keras.Model,
    data: GroupArrays,
    *,
    batch_size: int,
    seed: int,
    epochs: int,
    end_epoch: Callable[[], bool],
    end_batch: Callable[[int, int], None] | None = None,
) -> None:
    """:func:`~binomlab_keras.graph_epochs.run_graph_epochs`'s epochs through ``model.fit``
    on :class:`~binomlab_keras.data.GroupBatches` (the same batches in the same order), the
    epoch ends and steps handed to the core by callbacks: the path of Keras's torch and JAX
    backends."""
    batches = GroupBatches(data, batch_size=batch_size, seed=seed)
    # a batch-level callback makes Keras hand every step's logs back to Python, so it is
    # added only when the core asks for progress by batch
    callbacks: list[keras.callbacks.Callback] = [EpochEnd(end_epoch)]
    if end_batch is not None:
        callbacks.append(BatchEnd(end_batch, len(batches)))
    model.fit(batches, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)


class EpochEnd(keras.callbacks.Callback):
    """Hands the end of every epoch of ``model.fit`` to the core (``end_epoch() -> stop?``)."""

    def __init__(self, end_epoch: Callable[[], bool]) -> None:
        super().__init__()
        self.end_epoch = end_epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.end_epoch():
            self.model.stop_training = True


class BatchEnd(keras.callbacks.Callback):
    """Hands the optimizer steps of ``model.fit`` to the core: ``end_batch(batch, batches)``
    with the 1-based index of the last step run. With ``steps_per_execution`` Keras calls
    back once per execution, with the index its execution would end at had the epoch not
    ended first, hence the cap at ``batches``."""

    def __init__(self, end_batch: Callable[[int, int], None], batches: int) -> None:
        super().__init__()
        self.end_batch, self.batches = end_batch, batches

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.end_batch(min(batch + 1, self.batches), self.batches)


# -- the full-batch NLL and its gradient, per Keras backend ---------------------------------------


def _per_trial_nll(session: KerasSession, x: Any, y: Any) -> Any:
    """The full-batch NLL per trial: binomial, or beta-binomial with the session's ``θ``."""
    model, head = session.model, session.head
    if head is None:
        nll = binomial_nll(y, forward(model, x))
    elif isinstance(head, LogPhi):
        nll = beta_binomial_nll(y, head(forward(model, x)))
    else:
        nll = beta_binomial_nll(y, forward_pair(head, x))
    # the operator, not ops.divide, which computes float64 in float32 on torch
    return ops.sum(nll) / ops.sum(y[:, 1])


def _full_batch(session: KerasSession) -> tuple[Any, Any]:
    train = session.train
    x = ops.convert_to_tensor(np.asarray(train.X, np.float64))
    y = ops.convert_to_tensor(np.column_stack([train.k, train.n]))
    return x, y


def _tensorflow_gradients(session: KerasSession) -> Callable:
    import tensorflow as tf

    x, y = _full_batch(session)

    @tf.function
    def step(x: Any, y: Any) -> tuple[Any, list[Any]]:
        with tf.GradientTape() as tape:
            value = _per_trial_nll(session, x, y)
        grads = tape.gradient(value, session.variables)
        # a lookup's gradient (index form, embeddings) comes as IndexedSlices: made dense
        return value, [tf.convert_to_tensor(g) for g in grads]

    def value_and_grad(weights: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        session.set_weights(weights)
        value, grads = step(x, y)
        return float(value), [np.asarray(g, np.float64) for g in grads]

    return value_and_grad


def _torch_gradients(session: KerasSession) -> Callable:
    import torch

    x, y = _full_batch(session)
    params = [v.value for v in session.variables]

    def value_and_grad(weights: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        session.set_weights(weights)
        value = _per_trial_nll(session, x, y)
        grads = torch.autograd.grad(value, params)
        return float(value.detach()), [g.detach().double().cpu().numpy() for g in grads]

    return value_and_grad


def _jax_gradients(session: KerasSession) -> Callable:
    """A float64 forward pass over the model's layers (embeddings, ``Dense``, and the φ
    layer) written on the weights themselves, differentiated by ``jax.value_and_grad`` under
    ``jax.enable_x64``. The index form's codes are cut from the data once, as integers."""
    import jax
    import jax.numpy as jnp

    position = {id(v): i for i, v in enumerate(session.variables)}
    *hidden, last = stack_layers(session.model)
    head = session.head
    if isinstance(head, LogPhi):
        theta_at: tuple[int, ...] = (position[id(head.log_phi)],)
    elif head is not None:
        phi_dense = next(layer for layer in head.layers if isinstance(layer, LogPhiDense))
        theta_at = (position[id(phi_dense.log_phi_kernel)], position[id(phi_dense.log_phi)])
    else:
        theta_at = ()
    layout = session.train.layout

    def first(values: list[Any], x: Any, codes: Any) -> Any:
        """The first layer of the index form: embeddings, or an index ``Dense``'s sum."""
        layer, numbers = hidden[0], x[:, np.asarray(layout.numbers, np.int64)]
        if isinstance(layer, LevelEmbeddings):
            local = codes - jnp.asarray(layout.firsts, jnp.int32)
            tables = [values[position[id(t)]] for t in layer.tables]
            return jnp.concatenate([t[local[:, j]] for j, t in enumerate(tables)] + [numbers], -1)
        z = values[position[id(layer.bias)]] + lookup(values[position[id(layer.kernel)]], x, codes)
        return layer.activation(z)

    def lookup(kernel: Any, x: Any, codes: Any) -> Any:
        """``Σ_f kernel[code_f] + numbers @ kernel[number_rows]``; with holes the code -1
        takes a zero row appended to the kernel."""
        table = kernel
        if layout.holes:
            table = jnp.concatenate([kernel, jnp.zeros((1, kernel.shape[1]), kernel.dtype)])
        z = table[codes].sum(axis=1)  # -1 indexes the last row: the zero row
        if layout.numbers:
            z = z + x[:, np.asarray(layout.numbers, np.int64)] @ kernel[rows]
        return z

    rows = np.asarray(() if layout is None else layout.number_rows, np.int64)
    linear = isinstance(last, IndexDense)  # the logistic's logit layer on codes

    def objective(values: list[Any], x: Any, codes: Any, y: Any) -> Any:
        if layout is None or linear:
            h, rest = x, hidden
        else:
            h, rest = first(values, x, codes), hidden[1:]
        for layer in rest:
            h = layer.activation(
                h @ values[position[id(layer.kernel)]] + values[position[id(layer.bias)]]
            )
        if linear:
            z = lookup(values[position[id(last.kernel)]], x, codes)
        else:
            z = h @ values[position[id(last.kernel)]]
        z = z + values[position[id(last.bias)]]
        if not theta_at:
            nll = binomial_nll(y, z)
        elif len(theta_at) == 1:
            nll = beta_binomial_nll(
                y, jnp.concatenate([z, jnp.broadcast_to(values[theta_at[0]], z.shape)], axis=-1)
            )
        else:
            v = values[theta_at[0]]
            theta = (lookup(v, x, codes) if linear else h @ v) + values[theta_at[1]]
            nll = beta_binomial_nll(y, jnp.concatenate([z, theta], axis=-1))
        return jnp.sum(nll) / jnp.sum(y[:, 1])

    X = np.asarray(session.train.X, np.float64)
    codes_np = np.zeros((len(X), 0), np.int32)
    if layout is not None:
        codes_np = X[:, list(layout.codes)].astype(np.int32)
    with jax.enable_x64(True):
        x = jnp.asarray(X, jnp.float64)
        codes = jnp.asarray(codes_np)
        y = jnp.asarray(np.column_stack([session.train.k, session.train.n]), jnp.float64)
        step = jax.jit(jax.value_and_grad(objective))

    def value_and_grad(weights: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        session.set_weights(weights)
        with jax.enable_x64(True):
            values = [jnp.asarray(w, jnp.float64) for w in weights]
            value, grads = step(values, x, codes, y)
            return float(value), [np.asarray(g, np.float64) for g in grads]

    return value_and_grad


_GRADIENTS = {
    "tensorflow": _tensorflow_gradients,
    "torch": _torch_gradients,
    "jax": _jax_gradients,
}
"""Keras backends whose autodiff L-BFGS uses."""


# -- the caller's random state -------------------------------------------------------------------


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
