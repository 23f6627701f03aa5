"""The grouped binomial and beta-binomial NLLs for Keras: functions, ``keras.losses.Loss``
classes and metrics.

For a group with ``n`` trials, ``k`` successes and logit ``z``,

    NLL = n·softplus(z) − k·z = −[k·log σ(z) + (n − k)·log(1 − σ(z))]

which is the binary cross-entropy summed over the group's ``n`` raw rows. Everything here is
written with ``keras.ops`` only, so it runs under every Keras backend (TensorFlow, PyTorch,
JAX). ``y_true`` packs the counts of a group as one row ``[k, n]``: shape ``[batch, 2]``.

The beta-binomial lets each group's success probability vary around ``μ = σ(z)`` as
Beta(μφ, (1 − μ)φ), with a concentration ``φ = exp(θ)`` learned with the model:

    NLL = −[lgamma(k+α) + lgamma(n−k+β) − lgamma(n+φ) − lgamma(α) − lgamma(β) + lgamma(φ)]

with ``α = μφ``, ``β = (1 − μ)φ`` (the binomial coefficient dropped). A Keras loss cannot own
a trainable weight, so ``θ`` lives in the model: the layer :class:`LogPhi` holds it and appends
it to the logits (or :class:`LogPhiDense` computes a ``θ`` per row from the last hidden layer),
and :class:`BetaBinomialNLL` reads ``y_pred = [z, θ]`` per row, shape ``[batch, 2]``.
``keras.ops`` has no ``lgamma``: the differences ``lgamma(x + m) − lgamma(x)`` are computed
from Stirling's series (shifted by the recurrence below 10), accurate to about 1e-12 in float64
and free of the cancellation of two huge lgammas when ``φ`` is large.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

__all__ = [
    "INITIAL_LOG_PHI",
    "LOG_PHI_RANGE",
    "REDUCTIONS",
    "BetaBinomialNLL",
    "BetaBinomialNLLMetric",
    "BinomialNLL",
    "BinomialNLLMetric",
    "LogPhi",
    "LogPhiDense",
    "beta_binomial_nll",
    "binomial_nll",
    "pack_counts",
]

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
    It accumulates in float64 by default (on JAX only with ``jax_enable_x64``: JAX computes
    float32 otherwise).
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


# -- the beta-binomial -------------------------------------------------------------------------

INITIAL_LOG_PHI = math.log(100.0)
"""``θ = log φ`` at the start of training: φ = 100, a mild overdispersion."""
LOG_PHI_RANGE = (math.log(1e-8), math.log(1e12))
"""Where the loss clamps ``θ``: ``φ`` from 1e-8 (ρ ≈ 1) to 1e12 (ρ = 1e-12, the binomial)."""
_STIRLING_FROM = 10.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_TINY = 1e-300
"""Floor of ``α`` and ``β`` (in float64): a saturated logit gives a large finite loss."""


def _full(x: Any, value: float) -> Any:
    """``value`` in ``x``'s shape and dtype. (Keras's ``ops.maximum``/``ops.clip`` with a Python
    float compute float64 tensors in float32 on the torch backend.)"""
    return ops.full_like(x, value)


def _binet(x: Any) -> Any:
    """``ω(x) = lgamma(x) − (x − ½)·log x + x − ½·log 2π`` for ``x >= 10`` (error < 1e-12)."""
    inv = 1.0 / x
    inv2 = inv * inv
    return inv * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 / 1680)))


def _lgamma(x: Any) -> Any:
    """``lgamma(x)`` for ``x > 0``: Stirling's series, ``x < 10`` shifted up by 10 with
    ``lgamma(x) = lgamma(x + 10) − Σ_{j<10} log(x + j)``."""
    small = x < _STIRLING_FROM
    y = ops.where(small, x + _STIRLING_FROM, x)
    value = (y - 0.5) * ops.log(y) - y + _HALF_LOG_2PI + _binet(y)
    safe = ops.where(small, x, ops.ones_like(x))
    shift = ops.zeros_like(x)
    for j in range(int(_STIRLING_FROM)):
        shift = shift + ops.log(safe + float(j))
    return value - ops.where(small, shift, ops.zeros_like(x))


def _lgamma_ratio(log_x: Any, m: Any) -> Any:
    """``lgamma(x + m) − lgamma(x)`` for ``x = exp(log_x) > 0`` and counts ``m >= 0``.

    Above 10 from ``(x − ½)·log1p(m/x) + m·(log x + log1p(m/x)) − m + ω(x + m) − ω(x)``,
    which does not subtract two huge lgammas; below, as the difference of :func:`_lgamma`.
    Each branch only sees inputs valid for it, so neither puts a NaN into the gradient.
    """
    x = ops.exp(log_x)
    large = x >= _STIRLING_FROM
    small_x = ops.where(large, ops.ones_like(x), ops.where(x > _TINY, x, _full(x, _TINY)))
    direct = _lgamma(small_x + m) - _lgamma(small_x)
    big_x = ops.where(large, x, _full(x, _STIRLING_FROM))
    log_big_x = ops.where(large, log_x, _full(x, math.log(_STIRLING_FROM)))
    log1p = ops.log1p(m / big_x)
    stirling = (
        (big_x - 0.5) * log1p + m * (log_big_x + log1p) - m + _binet(big_x + m) - _binet(big_x)
    )
    return ops.where(large, stirling, direct)


def _split_beta(y_true: Any, y_pred: Any) -> tuple[Any, Any, Any, Any]:
    """``(z, θ, k, n)``, each ``[batch]``, in float64 (see :func:`beta_binomial_nll`)."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.convert_to_tensor(y_true)
    true_shape, pred_shape = tuple(y_true.shape), tuple(y_pred.shape)
    if not true_shape or true_shape[-1] not in (2, None):
        msg = (
            "Expected y_true to pack [successes, trials] per row, shape [batch, 2]. "
            f"Received: y_true.shape={true_shape}"
        )
        raise ValueError(msg)
    if len(pred_shape) != len(true_shape) or pred_shape[-1] not in (2, None):
        msg = (
            "Expected y_pred to hold [logit, log_phi] per row, shape [batch, 2]: end the model "
            "with binomlab_keras.LogPhi() to append the trainable θ = log φ to its logits. "
            f"Received: y_pred.shape={pred_shape}, y_true.shape={true_shape}"
        )
        raise ValueError(msg)
    # float64 throughout: the lgamma differences lose digits in float32 once φ is large
    # (on JAX this needs jax_enable_x64, without which it stays float32)
    y_pred = ops.cast(y_pred, "float64")
    y_true = ops.cast(y_true, "float64")
    theta = y_pred[..., 1]
    theta = ops.where(theta < LOG_PHI_RANGE[0], _full(theta, LOG_PHI_RANGE[0]), theta)
    theta = ops.where(theta > LOG_PHI_RANGE[1], _full(theta, LOG_PHI_RANGE[1]), theta)
    return y_pred[..., 0], theta, y_true[..., 0], y_true[..., 1]


def beta_binomial_nll(y_true: Any, y_pred: Any) -> Any:
    """The beta-binomial NLL of every group (without the binomial coefficient).

    Parameters
    ----------
    y_true
        ``[batch, 2]``: successes ``k`` and trials ``n`` of each group (:func:`pack_counts`).
    y_pred
        ``[batch, 2]``: the logit ``z`` of the mean and ``θ = log φ`` of each row, as
        :class:`LogPhi` (one shared ``θ`` broadcast to every row) or :class:`LogPhiDense`
        (a ``θ`` per row) output them. ``θ`` is clamped to :data:`LOG_PHI_RANGE`.

    Returns
    -------
    tensor
        ``[batch]``, in ``y_pred``'s dtype; computed in float64.

    Raises
    ------
    ValueError
        ``y_true`` or ``y_pred`` is not ``[batch, 2]``.
    """
    dtype = ops.convert_to_tensor(y_pred).dtype
    z, theta, k, n = _split_beta(y_true, y_pred)
    # log α = log σ(z) + θ and log β = log σ(−z) + θ: exact in both tails of z
    nll = -(
        _lgamma_ratio(ops.log_sigmoid(z) + theta, k)
        + _lgamma_ratio(ops.log_sigmoid(-z) + theta, n - k)
        - _lgamma_ratio(theta, n)
    )
    return ops.cast(nll, dtype)


@keras.saving.register_keras_serializable(package="binomlab")
class LogPhi(keras.layers.Layer):
    """Holds the trainable ``θ = log φ`` of the beta-binomial and appends it to the logits.

    ``[batch, 1]`` (or ``[batch]``) logits in, ``[batch, 2]`` out: ``[z, θ]`` per row, what
    :class:`BetaBinomialNLL` reads. End any model with it::

        logits = keras.layers.Dense(1)(hidden)
        model = keras.Model(inputs, binomlab_keras.LogPhi()(logits))
        model.compile(optimizer="adam", loss=binomlab_keras.BetaBinomialNLL())
        model.fit(x, pack_counts(successes, trials))
        model.get_layer("log_phi").phi  # the fitted φ; predictions: model(x)[:, 0] are logits

    Parameters
    ----------
    initial
        The starting ``θ``, ``log(100)`` by default.
    name, dtype, **kwargs
        As for any Keras layer; the weight is named ``log_phi`` (no weight decay applies to
        it in binomlab's training).
    """

    def __init__(
        self, initial: float = INITIAL_LOG_PHI, name: str = "log_phi", **kwargs: Any
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.initial = float(initial)
        self.log_phi = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.initial),
            trainable=True,
            name="log_phi",
        )

    @property
    def phi(self) -> float:
        """The concentration ``φ = exp(θ)``, ``θ`` clamped to :data:`LOG_PHI_RANGE`."""
        theta = float(self.log_phi.numpy())
        return math.exp(min(max(theta, LOG_PHI_RANGE[0]), LOG_PHI_RANGE[1]))

    def call(self, logits: Any) -> Any:
        z = ops.reshape(logits, (-1, 1))
        theta = ops.ones_like(z) * ops.cast(self.log_phi, z.dtype)
        return ops.concatenate([z, theta], axis=-1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], 2)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "initial": self.initial}


@keras.saving.register_keras_serializable(package="binomlab")
class LogPhiDense(keras.layers.Layer):
    """A ``θ = log φ`` per row, ``θ = h·v + c``, appended to the logits: the beta-binomial's
    overdispersion as a second output of the network.

    ``[h, logits]`` in — the features ``h [batch, width]`` that ``θ`` depends on (usually the
    last hidden layer, the input of the logit layer) and the logits ``[batch, 1]`` — and
    ``[batch, 2]`` out: ``[z, θ]`` per row, what :class:`BetaBinomialNLL` reads::

        logits = keras.layers.Dense(1)(hidden)
        model = keras.Model(inputs, binomlab_keras.LogPhiDense()([hidden, logits]))
        model.compile(optimizer="adam", loss=binomlab_keras.BetaBinomialNLL())

    Parameters
    ----------
    initial
        The starting ``θ``: ``v`` starts at 0 and ``c`` at ``initial`` (``log(100)``), so
        training starts from one ``φ`` for every row.
    name, dtype, **kwargs
        As for any Keras layer; the weights are named ``log_phi_kernel`` (``v``) and
        ``log_phi`` (``c``): binomlab's training decays neither.
    """

    def __init__(
        self, initial: float = INITIAL_LOG_PHI, name: str = "log_phi", **kwargs: Any
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.initial = float(initial)

    def build(self, input_shape: list[tuple]) -> None:
        width = int(input_shape[0][-1])
        self.log_phi_kernel = self.add_weight(
            shape=(width, 1), initializer="zeros", trainable=True, name="log_phi_kernel"
        )
        self.log_phi = self.add_weight(
            shape=(1,),
            initializer=keras.initializers.Constant(self.initial),
            trainable=True,
            name="log_phi",
        )

    def call(self, inputs: list[Any]) -> Any:
        hidden, logits = inputs
        z = ops.reshape(logits, (-1, 1))
        theta = ops.matmul(hidden, ops.cast(self.log_phi_kernel, hidden.dtype))
        theta = theta + ops.cast(self.log_phi, hidden.dtype)
        return ops.concatenate([z, ops.cast(theta, z.dtype)], axis=-1)

    def compute_output_shape(self, input_shape: list[tuple]) -> tuple:
        return (input_shape[0][0], 2)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "initial": self.initial}


@keras.saving.register_keras_serializable(package="binomlab")
class BetaBinomialNLL(BinomialNLL):
    """Grouped beta-binomial NLL: ``model.compile(loss=BetaBinomialNLL())``.

    ``y_true`` packs ``[k, n]`` per row (see :func:`pack_counts`); ``y_pred`` is
    ``[logit, θ]`` per row, ``[batch, 2]`` — end the model with :class:`LogPhi`, which holds
    the trainable ``θ = log φ`` (a Keras loss cannot own weights). Computed in float64.

    Parameters
    ----------
    reduction
        ``"sum_over_trials"`` (default): ``Σ w·NLL / Σ w·n``, the NLL per trial; ``"sum"``;
        ``"none"`` (or None): per group. ``w`` is the ``sample_weight``, 1 if not given.
    name, dtype
        As for any ``keras.losses.Loss``.

    Raises
    ------
    ValueError
        An unknown ``reduction``.
    """

    def __init__(
        self,
        reduction: str | None = "sum_over_trials",
        name: str = "beta_binomial_nll",
        dtype: Any = None,
    ) -> None:
        super().__init__(from_logits=True, reduction=reduction, name=name, dtype=dtype)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """The NLL of every group, ``[batch]``."""
        return beta_binomial_nll(y_true, y_pred)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction}


@keras.saving.register_keras_serializable(package="binomlab")
class BetaBinomialNLLMetric(BinomialNLLMetric):
    """The beta-binomial NLL per trial over every batch seen since the last reset, for models
    ending in :class:`LogPhi` (``y_pred = [z, θ]``); accumulates in float64 by default."""

    def __init__(self, name: str = "beta_binomial_nll", dtype: Any = "float64") -> None:
        super().__init__(name=name, from_logits=True, dtype=dtype)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        nll = ops.cast(beta_binomial_nll(y_true, ops.cast(y_pred, self.dtype)), self.dtype)
        trials = ops.cast(y_true, self.dtype)[..., 1]
        if sample_weight is not None:
            weight = ops.reshape(ops.cast(sample_weight, self.dtype), ops.shape(nll))
            nll, trials = nll * weight, trials * weight
        self.total.assign_add(ops.sum(nll))
        self.trials.assign_add(ops.sum(trials))

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}
