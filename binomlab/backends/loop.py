"""The core's epoch loop for mini-batch optimisers (adam, adamw): every training rule that is
the same whatever the framework, written once.

After every epoch of a backend's optimizer steps (:meth:`Session.run_epochs` calls back
:meth:`EpochRules.end_epoch`):

* ``train_nll`` is the exact per-trial NLL of all training groups at the weights the epoch
  ended with (cheap on groups), and ``val_nll`` the same on the validation groups, both in
  inference mode (no dropout) from the NumPy oracle;
* a non-finite value, or a ``train_nll`` above :data:`DIVERGENCE_FACTOR` times the constant
  base-rate model's NLL plus one nat (:data:`DIVERGENCE_RULE`), raises
  :class:`~binomlab.errors.TrainingDivergedError`;
* the monitored value — ``val_nll`` if there is validation data, else the training objective
  ``train_nll + weight_decay/2·Σ‖W‖²`` — picks the best epoch, whose weights are kept;
* ``callback(epoch, metrics)`` is called; False stops training (``"callback"``), as does the
  patience of ``config.early_stopping`` running out (``"early_stopping"``);
* a KeyboardInterrupt stops it too (``"interrupted"``), not re-raised;
* with a ``batch_callback``, ``batch_callback(epoch, batch, batches)`` is called after every
  optimizer step (``epoch`` the 1-based epoch in progress, ``batch`` 1 … ``batches``), for
  progress inside long epochs; False stops training at once (``"callback"``), mid-epoch.
  Backends whose :meth:`Session.run_epochs` takes no ``end_batch`` are trained without it.

The best epoch's weights are put back in every case, so the network returned is the one whose
numbers the history reports; its ``train_logits`` are that epoch's logits on the training
groups, which :func:`binomlab.fit` takes for the in-sample statistics instead of predicting
every group once more.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from binomlab.betabinomial import beta_binomial_nll, phi_from_log
from binomlab.errors import TrainingDivergedError
from binomlab.nll import base_rate_nll, grouped_nll

if TYPE_CHECKING:
    from binomlab.backends.protocol import Network, Session, TrainConfig, TrainData

__all__ = [
    "DIVERGENCE_FACTOR",
    "DIVERGENCE_RULE",
    "BatchCallback",
    "EpochRules",
    "exact_nll",
    "penalty",
    "run",
    "takes_end_batch",
]

BatchCallback = Callable[[int, int, int], bool | None]
"""``batch_callback(epoch, batch, batches) -> continue?`` after every optimizer step: the
1-based epoch in progress and the 1-based batch of its ``batches``; False stops training."""

DIVERGENCE_FACTOR = 10.0
DIVERGENCE_RULE = (
    "training diverges when an epoch's train_nll or val_nll is not finite, or when train_nll "
    f"exceeds {DIVERGENCE_FACTOR:g} × the base-rate model's NLL + 1 (nats per trial)"
)
"""The rule, in words. The constant model at the overall rate Σk/Σn — where every backend
starts its output bias — has NLL ``H`` per trial (0.69 at most); an epoch ending above
``10·H + 1`` predicts far worse than knowing nothing about the features, which no learning
rate that trains does."""


def exact_nll(
    network: Network, data: TrainData, loss: str, logits: np.ndarray | None = None
) -> float:
    """Per-trial NLL of ``data`` under ``network`` as it stands (inference mode), float64:
    binomial, or beta-binomial with the network's φ (scalar or per row). ``logits`` are
    ``network.predict_logits(data.X)`` when the caller has them already."""
    z = network.predict_logits(data.X) if logits is None else logits
    if loss == "binomial":
        return grouped_nll(z, data.k, data.n)
    return beta_binomial_nll(z, data.k, data.n, phi_from_log(network.predict_log_phi(data.X)))


def penalty(weights: list[np.ndarray], decayed: tuple[bool, ...], weight_decay: float) -> float:
    """``weight_decay/2 · Σ‖W‖²`` over the arrays flagged in ``decayed``."""
    if not weight_decay:
        return 0.0
    squares = sum(float(np.sum(np.square(w))) for w, d in zip(weights, decayed, strict=True) if d)
    return 0.5 * weight_decay * squares


def check_finite_and_bounded(
    epoch: int, metrics: Mapping[str, float], limit: float, *, what: str = "epoch"
) -> None:
    """Raise :class:`~binomlab.errors.TrainingDivergedError` by :data:`DIVERGENCE_RULE`."""
    for name, value in metrics.items():
        if not math.isfinite(value):
            msg = (
                f"Training diverged at {what} {epoch}: {name}={value}. Lower the learning "
                "rate (lr=...), standardise the features, or use optimizer='lbfgs'."
            )
            raise TrainingDivergedError(msg)
    if metrics["train_nll"] > limit:
        msg = (
            f"Training diverged at {what} {epoch}: train_nll={metrics['train_nll']:.6g} per "
            f"trial, above {limit:.4g} ({DIVERGENCE_FACTOR:g} × the base-rate model's NLL + 1). "
            "Lower the learning rate (lr=...)."
        )
        raise TrainingDivergedError(msg)


class EpochRules:
    """The bookkeeping of one mini-batch run: metrics, divergence, best epoch, stopping.

    Parameters
    ----------
    session
        The backend's session (its live network and weights).
    train, val
        The encoded training and validation groups (val may be None).
    config
        The resolved config (``loss``, ``weight_decay``, ``early_stopping``).
    callback
        ``callback(epoch, metrics) -> continue?``.
    """

    def __init__(
        self,
        session: Session,
        train: TrainData,
        val: TrainData | None,
        config: TrainConfig,
        callback: Callable[[int, Mapping[str, float]], bool | None],
    ) -> None:
        self.session = session
        self.train, self.val, self.config, self.callback = train, val, config, callback
        self.limit = DIVERGENCE_FACTOR * base_rate_nll(train.k, train.n) + 1.0
        self.epoch = 0
        self.best_value = math.inf
        self.best_epoch = 0
        self.best_weights: list[np.ndarray] | None = None
        self.stale = 0
        self.stop_reason = "completed"
        self.batch_callback: BatchCallback | None = None
        self.logits: np.ndarray | None = None  # the training groups', at the last epoch's end
        self.best_logits: np.ndarray | None = None  # the same at the best epoch's

    def end_batch(self, batch: int, batches: int) -> None:
        """Report an optimizer step to ``batch_callback``; raise :class:`_StopNow` when it
        returns False (the core catches it: training stops mid-epoch)."""
        if self.batch_callback is not None and (
            self.batch_callback(self.epoch + 1, batch, batches) is False
        ):
            raise _StopNow

    def metrics(self) -> dict[str, float]:
        """``train_nll`` (and ``val_nll``) of the weights as they stand."""
        network, loss = self.session.network, self.config.loss
        self.logits = network.predict_logits(self.train.X)
        metrics = {"train_nll": exact_nll(network, self.train, loss, self.logits)}
        if self.val is not None:
            metrics["val_nll"] = exact_nll(network, self.val, loss)
        return metrics

    def end_epoch(self) -> bool:
        """Record the epoch that just ended; return True when training should stop."""
        self.epoch += 1
        metrics = self.metrics()
        check_finite_and_bounded(self.epoch, metrics, self.limit)
        log_epoch = getattr(self.session, "log_epoch", None)
        if log_epoch is not None:  # a session not derived from Session may predate it
            log_epoch(self.epoch, metrics)
        weights = None
        if "val_nll" in metrics:
            monitored = metrics["val_nll"]
        else:
            monitored = metrics["train_nll"]
            if self.config.weight_decay:
                weights = self.session.get_weights()
                decay = self.config.weight_decay
                monitored += penalty(weights, self.session.decayed, decay)
        if monitored < self.best_value:
            self.best_value, self.best_epoch, self.stale = monitored, self.epoch, 0
            self.best_weights = weights if weights is not None else self.session.get_weights()
            self.best_logits = self.logits
        else:
            self.stale += 1
        if self.callback(self.epoch, metrics) is False:
            self.stop_reason = "callback"
            return True
        patience = self.config.early_stopping
        if patience is not None and self.stale >= patience:
            self.stop_reason = "early_stopping"
            return True
        return False


class _StopNow(Exception):
    """Raised inside a backend's step loop to stop training mid-epoch; never escapes
    :func:`run`."""


def takes_end_batch(session: Session) -> bool:
    """Whether ``session.run_epochs`` accepts ``end_batch`` (older plugins do not)."""
    try:
        parameters = inspect.signature(session.run_epochs).parameters
    except (TypeError, ValueError):
        return False
    return "end_batch" in parameters


def run(
    session: Session,
    train: TrainData,
    val: TrainData | None,
    config: TrainConfig,
    callback: Callable[[int, Mapping[str, float]], bool | None],
    batch_callback: BatchCallback | None = None,
) -> Network:
    """Train with a mini-batch optimiser by the rules in this module's docstring; return the
    session's network with the best epoch's weights and its ``stop_reason``."""
    rules = EpochRules(session, train, val, config, callback)
    rules.batch_callback = batch_callback
    try:
        if batch_callback is not None and takes_end_batch(session):
            session.run_epochs(int(config.epochs), rules.end_epoch, end_batch=rules.end_batch)
        else:
            session.run_epochs(int(config.epochs), rules.end_epoch)
    except KeyboardInterrupt:
        rules.stop_reason = "interrupted"
    except _StopNow:
        rules.stop_reason = "callback"
    if rules.best_weights is not None:
        session.set_weights(rules.best_weights)
    network = session.network
    if rules.best_weights is not None:
        # the kept weights' logits on the training groups, for the fit's in-sample statistics
        # (binomlab.training takes them off the network: predicting them again would cost as
        # much as an epoch's exact train_nll)
        network.train_logits = rules.best_logits
    network.stop_reason = rules.stop_reason
    network.best_epoch = rules.best_epoch
    return network
