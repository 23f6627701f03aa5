"""Adam and AdamW epochs on TensorFlow, run in the graph by the backend rather than by
``model.fit``.

The training groups are held as two tensors, ``x [groups, d]`` and ``y [groups, 2]``. Each
call of one traced function runs an *execution*: up to ``steps_per_execution`` mini-batches,
taken in turn from the epoch's order of the groups (:func:`~binomlab_keras.data.epoch_order`,
the same as :class:`~binomlab_keras.data.GroupBatches` serves on the other Keras backends)
and gathered inside the graph. A step is Keras's own TensorFlow ``train_step`` without its
metrics: the forward pass with ``training=True``, ``model.compute_loss`` (the compiled
:class:`~binomlab_keras.loss.BinomialNLL` or beta-binomial loss and the L2 penalties), the
gradient, ``optimizer.apply_gradients``. An execution never runs past the end of an epoch, as
in ``model.fit``.

Why not ``model.fit`` (benchmarks/README.md, "The first epoch's fixed cost"): around the same
step Keras traces a loop over an iterator of ``tf.experimental.Optional`` batches, with a
``tf.cond`` per step, and feeds it through ``tf.data`` from a Python generator, batch by
batch. On the flights MLP that loop cost as much tracing as the step itself, and its data
path ~0.2 ms per step; here the order is one array per epoch and the step is traced once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from binomlab_keras.data import GroupArrays, epoch_order
from binomlab_keras.tf_function import per_model_function

__all__ = ["run_graph_epochs"]


def run_graph_epochs(
    model: keras.Model,
    data: GroupArrays,
    *,
    batch_size: int,
    seed: int,
    epochs: int,
    end_epoch: Callable[[], bool],
    end_batch: Callable[[int, int], None] | None = None,
) -> None:
    """Train the compiled ``model`` (optimizer built) for up to ``epochs`` epochs.

    Parameters
    ----------
    model
        Compiled on TensorFlow with its loss and optimizer; its ``steps_per_execution`` and
        ``jit_compile`` (as ``compile`` resolved them) set the executions and XLA.
    data
        The training groups; batches of ``batch_size`` groups (the last of an epoch may be
        smaller) in the order :func:`~binomlab_keras.data.epoch_order` draws for each
        0-based epoch from ``seed``.
    end_epoch
        Called after every epoch; True stops training.
    end_batch
        ``end_batch(batch, batches)`` after every execution, with the 1-based index of its
        last step in the epoch's ``batches``.
    """
    import tensorflow as tf

    groups = len(data)
    batch = max(1, min(int(batch_size), groups))
    batches = -(-groups // batch)
    per_call = max(1, int(model.steps_per_execution))
    step = _execution(model, tf.constant(data.x), tf.constant(data.y))
    full = groups // batch  # the batches of `batch` groups; a shorter one may end the epoch
    for epoch in range(epochs):
        order = epoch_order(seed, epoch, groups)
        for first in range(0, batches, per_call):
            last = min(first + per_call, batches)
            whole = min(last, full)
            if whole > first:
                step(order[first * batch : whole * batch].reshape(whole - first, batch))
            if last > full:
                step(order[full * batch :].reshape(1, -1))
            if end_batch is not None:
                end_batch(last, batches)
        if end_epoch():
            return


def _execution(model: keras.Model, x: Any, y: Any) -> Callable[[np.ndarray], Any]:
    """The traced function of (part of) one execution: ``rows [steps, b]`` (int64 indices
    into ``x`` and ``y``) → the optimizer steps on ``rows[0]``, ``rows[1]``, …

    Without XLA it is traced once, for any shape. XLA compiles one program per shape (as
    ``model.fit`` with ``jit_compile`` does, a program for the last, shorter batch): traced
    with a dynamic batch, its dynamic padder fails on a batch of one group inside the loop.
    """
    import tensorflow as tf

    optimizer = model.optimizer
    variables = model.trainable_variables

    def train_step(rows: Any) -> None:
        xb, yb = tf.gather(x, rows), tf.gather(y, rows)
        with tf.GradientTape() as tape:
            y_pred = model(xb, training=True)
            loss = model.compute_loss(xb, yb, y_pred, None, training=True)
            # under a mixed-precision policy the optimizer is a LossScaleOptimizer, which
            # unscales the gradients it applies (Keras's train_step scales here too)
            loss = optimizer.scale_loss(loss)
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))

    def run(rows: Any) -> Any:
        steps = tf.shape(rows, out_type=tf.int64)[0]

        def body(i: Any) -> tuple[Any]:
            train_step(rows[i])
            return (i + 1,)

        tf.while_loop(lambda i: i < steps, body, (tf.constant(0, tf.int64),))
        return steps

    if model.jit_compile:
        return per_model_function(run, autograph=False, jit_compile=True, reduce_retracing=False)
    return per_model_function(
        run, input_signature=[tf.TensorSpec([None, None], tf.int64)], autograph=False
    )
