"""The grouped binomial NLL for Keras: a function, a ``keras.losses.Loss`` and a metric.

For a group with ``n`` trials, ``k`` successes and logit ``z``,

    NLL = n·softplus(z) − k·z = −[k·log σ(z) + (n − k)·log(1 − σ(z))]

which is the binary cross-entropy summed over the group's ``n`` raw rows. Everything here is
written with ``keras.ops`` only, so it runs under every Keras backend (TensorFlow, PyTorch,
JAX). ``y_true`` packs the counts of a group as one row ``[k, n]``: shape ``[batch, 2]``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

__all__ = ["REDUCTIONS", "BinomialNLL", "BinomialNLLMetric", "binomial_nll", "pack_counts"]

REDUCTIONS = ("sum_over_trials", "sum", "none")
"""``"sum_over_trials"`` (the per-trial NLL, the default), ``"sum"`` and ``"none"``."""


def pack_counts(successes: Any, trials: Any) -> Any:
    """``y_true`` for :class:`BinomialNLL`: ``[k, n]`` per row, shape ``[groups, 2]``."""
    return ops.stack([ops.convert_to_tensor(successes), ops.convert_to_tensor(trials)], axis=-1)


def _split(y_true: Any, y_pred: Any) -> tuple[Any, Any, Any]:
    """``(z, k, n)`` of one shape ``y_true.shape[:-1]``: ``y_pred`` ``[batch]`` or
    ``[batch, 1]``, ``y_true`` ``[batch, 2]`` converted to ``y_pred``'s dtype."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    true_shape, pred_shape = tuple(y_true.shape), tuple(y_pred.shape)
    if not true_shape or true_shape[-1] not in (2, None):
        msg = (
            "Expected y_true to pack [successes, trials] per row, shape [batch, 2]. "
            f"Received: y_true.shape={true_shape}"
        )
        raise ValueError(msg)
    if len(pred_shape) == len(true_shape) and pred_shape[-1] == 1:
        y_pred = ops.squeeze(y_pred, axis=-1)
    elif len(pred_shape) != len(true_shape) - 1:
        msg = (
            "Expected y_pred to hold one value per row, shape [batch] or [batch, 1], for "
            f"y_true of shape [batch, 2]. Received: y_pred.shape={pred_shape}, "
            f"y_true.shape={true_shape}"
        )
        raise ValueError(msg)
    return y_pred, y_true[..., 0], y_true[..., 1]


def binomial_nll(y_true: Any, y_pred: Any, from_logits: bool = True) -> Any:
    """The binomial NLL of every group, like ``keras.losses.binary_crossentropy`` per sample.

    Parameters
    ----------
    y_true
        ``[batch, 2]``: successes ``k`` and trials ``n`` of each group. ``n = 1`` gives the
        binary cross-entropy of 0/1 rows.
    y_pred
        ``[batch]`` or ``[batch, 1]``: logits ``z`` (``from_logits=True``), or probabilities
        (e.g. a sigmoid output), clipped to ``[ε, 1 − ε]`` with ``keras.config.epsilon()``
        as Keras's own binary cross-entropy does.
    from_logits
        Whether ``y_pred`` holds logits.

    Returns
    -------
    tensor
        ``[batch]``: ``n·softplus(z) − k·z``, finite for every logit, in ``y_pred``'s dtype.

    Raises
    ------
    ValueError
        ``y_true`` is not ``[batch, 2]`` or ``y_pred`` does not hold one value per row.
    """
    y_pred, k, n = _split(y_true, y_pred)
    if from_logits:
        return n * ops.softplus(y_pred) - k * y_pred
    epsilon = keras.config.epsilon()
    p = ops.clip(y_pred, epsilon, 1.0 - epsilon)
    return -(k * ops.log(p) + (n - k) * ops.log1p(-p))


def _per_trial(total: Any, trials: Any) -> Any:
    """``total / trials``, 0 when there are no trials, in their dtype: Keras's
    ``ops.divide_no_nan`` would compute float64 in float32 on the torch and JAX backends."""
    return total / (trials + ops.cast(trials == 0, trials.dtype))


def _check_reduction(reduction: str | None) -> str:
    reduction = "none" if reduction is None else reduction
    if reduction not in REDUCTIONS:
        msg = f"Expected one of {REDUCTIONS}. Received: reduction={reduction!r}"
        raise ValueError(msg)
    return reduction


@keras.saving.register_keras_serializable(package="binomlab")
class BinomialNLL(keras.losses.Loss):
    """Grouped binomial negative log-likelihood: ``model.compile(loss=BinomialNLL())``.

    ``y_true`` packs ``[k, n]`` per row (see :func:`pack_counts`); ``y_pred`` is the model's
    logit (or its probability with ``from_logits=False``), ``[batch]`` or ``[batch, 1]``.

    Parameters
    ----------
    from_logits
        True (default) for a linear output, False for a sigmoid output.
    reduction
        ``"sum_over_trials"`` (default): ``Σ w·NLL / Σ w·n``, the NLL per trial, equal to
        the mean binary cross-entropy over the expanded 0/1 rows — not Keras's
        ``"sum_over_batch_size"``, which would divide by the groups. ``"sum"``: ``Σ w·NLL``;
        ``"none"`` (or None): ``w·NLL`` per group. ``w`` is the ``sample_weight``, 1 if
        not given; it counts a group ``w`` times (trials included).
    name, dtype
        As for any ``keras.losses.Loss``; ``y_true`` is converted to the loss's dtype.

    Raises
    ------
    ValueError
        An unknown ``reduction``.
    """

    def __init__(
        self,
        from_logits: bool = True,
        reduction: str | None = "sum_over_trials",
        name: str = "binomial_nll",
        dtype: Any = None,
    ) -> None:
        reduction = _check_reduction(reduction)
        super().__init__(name=name, reduction="sum" if reduction == "sum" else "none", dtype=dtype)
        self.reduction = reduction
        self.from_logits = bool(from_logits)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """The NLL of every group, ``[batch]``."""
        return binomial_nll(y_true, y_pred, from_logits=self.from_logits)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        with keras.name_scope(self.name):
            y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
            y_true = ops.convert_to_tensor(y_true, dtype=self.dtype)
            nll = self.call(y_true, y_pred)
            trials = y_true[..., 1]
            if sample_weight is not None:
                weight = ops.reshape(ops.cast(sample_weight, nll.dtype), ops.shape(nll))
                nll, trials = nll * weight, trials * weight
            if self.reduction == "none":
                return nll
            total = ops.sum(nll)
            if self.reduction == "sum":
                return total
            return _scale_for_distribution(_per_trial(total, ops.sum(trials)))

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction, "from_logits": self.from_logits}


def _scale_for_distribution(loss: Any) -> Any:
    """Divide by the replicas of a TensorFlow distribution strategy, as Keras's own mean
    reductions do (gradients are summed over replicas); the identity elsewhere."""
    try:
        from keras.src.losses.loss import scale_loss_for_distribution
    except ImportError:  # a Keras without the private helper
        return loss
    return scale_loss_for_distribution(loss)


@keras.saving.register_keras_serializable(package="binomlab")
class BinomialNLLMetric(keras.metrics.Metric):
    """The NLL per trial over every batch seen since the last reset, ``Σ w·NLL / Σ w·n``.

    Over an epoch of training it is the trial-weighted mean of the mini-batch losses of
    :class:`BinomialNLL`; in ``model.evaluate`` it is the exact NLL per trial of the data.
    It accumulates in float64 by default.
    """

    def __init__(
        self, name: str = "binomial_nll", from_logits: bool = True, dtype: Any = "float64"
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        self.from_logits = bool(from_logits)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype=dtype, name="total")
        self.trials = self.add_variable(shape=(), initializer="zeros", dtype=dtype, name="trials")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_pred = ops.cast(y_pred, self.dtype)
        y_true = ops.cast(y_true, self.dtype)
        nll = binomial_nll(y_true, y_pred, from_logits=self.from_logits)
        trials = y_true[..., 1]
        if sample_weight is not None:
            weight = ops.reshape(ops.cast(sample_weight, self.dtype), ops.shape(nll))
            nll, trials = nll * weight, trials * weight
        self.total.assign_add(ops.sum(nll))
        self.trials.assign_add(ops.sum(trials))

    def result(self) -> Any:
        return _per_trial(ops.convert_to_tensor(self.total), ops.convert_to_tensor(self.trials))

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "from_logits": self.from_logits, "dtype": self.dtype}
