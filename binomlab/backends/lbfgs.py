"""The core's L-BFGS driver: SciPy's L-BFGS-B over a session's weights, for every backend.

A backend gives the full-batch loss per trial and its gradient in float64
(:meth:`Session.loss_and_grad`); the core adds the weight-decay penalty
``weight_decay/2·Σ‖W‖²`` and runs SciPy until the max-norm of the gradient is below
``config.tolerance`` or ``config.epochs`` iterations have run. One iteration is one epoch of the
history: ``train_nll`` is the exact NLL of the iterate, ``val_nll`` (with validation data) is
recorded but never stops the run nor picks the result. The result is the last iterate, the
optimum:

* ``stop_reason="converged"`` when the tolerance is met;
* ``"max_iter"`` at the iteration cap, and ``"stalled"`` when the line search can make no more
  progress above the tolerance: both with a :class:`~binomlab.errors.ConvergenceWarning`;
* ``"callback"`` (a callback returned False) and ``"interrupted"`` (Ctrl-C) keep the last
  accepted iterate.

For the logistic spec without weight decay, groups predicted perfectly (``k = 0`` with a logit
below ``−SEPARATION_LOGIT``, or ``k = n`` above it) mean quasi-complete separation: the
maximum-likelihood estimate does not exist, and a
:class:`~binomlab.errors.PerfectSeparationWarning` says so, as statsmodels does.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from binomlab.backends.loop import DIVERGENCE_FACTOR, check_finite_and_bounded, exact_nll
from binomlab.errors import ConvergenceWarning, PerfectSeparationWarning
from binomlab.nll import base_rate_nll

if TYPE_CHECKING:
    from binomlab.backends.protocol import Network, Session, TrainConfig, TrainData
    from binomlab.specs import ModelSpec

__all__ = ["HISTORY", "SEPARATION_LOGIT", "minimize"]

HISTORY = 20
"""Correction pairs L-BFGS keeps (SciPy's ``maxcor``)."""
SEPARATION_LOGIT = 15.0
"""|logit| beyond which a group with ``k = 0`` or ``k = n`` counts as perfectly predicted
(p within 3e-7 of 0 or 1)."""


class _Flat:
    """A session's list of weight arrays as one float64 vector, and back."""

    def __init__(self, weights: list[np.ndarray], decayed: tuple[bool, ...]) -> None:
        self.shapes = [np.shape(w) for w in weights]
        sizes = [int(np.prod(s)) for s in self.shapes]
        self.splits = np.cumsum(sizes)[:-1]
        self.decayed = np.concatenate(
            [np.full(size, flag) for size, flag in zip(sizes, decayed, strict=True)]
        )

    def flatten(self, arrays: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([np.ravel(np.asarray(a, np.float64)) for a in arrays])

    def unflatten(self, theta: np.ndarray) -> list[np.ndarray]:
        parts = np.split(theta, self.splits)
        return [p.reshape(s) for p, s in zip(parts, self.shapes, strict=True)]


def minimize(
    session: Session,
    train: TrainData,
    val: TrainData | None,
    spec: ModelSpec,
    config: TrainConfig,
    callback: Callable[[int, Mapping[str, float]], bool | None],
) -> Network:
    """Run L-BFGS-B on ``session`` by the rules of this module's docstring; return the
    session's network at the result, with ``stop_reason`` set."""
    from scipy.optimize import minimize as scipy_minimize  # 0.8 s to import: on first use

    flat = _Flat(session.get_weights(), session.decayed)
    decay = config.weight_decay
    limit = DIVERGENCE_FACTOR * base_rate_nll(train.k, train.n) + 1.0
    last: dict[str, Any] = {}

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        nll, grads = session.loss_and_grad(flat.unflatten(theta))
        grad = flat.flatten(grads) + decay * theta * flat.decayed
        value = float(nll) + 0.5 * decay * float(np.sum(np.square(theta[flat.decayed])))
        last.update(theta=theta.copy(), nll=float(nll), grad=grad)
        return value, grad

    state = {"epoch": 0, "reason": None, "accepted": None}

    def on_iteration(intermediate_result: Any) -> None:
        theta = np.asarray(intermediate_result.x, np.float64)
        state["epoch"] += 1
        if not np.array_equal(last.get("theta"), theta):
            objective(theta)  # the exact NLL where the iteration landed
        session.set_weights(flat.unflatten(theta))
        metrics = {"train_nll": last["nll"]}
        if val is not None:
            metrics["val_nll"] = exact_nll(session.network, val, config.loss)
        check_finite_and_bounded(state["epoch"], metrics, limit, what="iteration")
        state["accepted"] = theta.copy()
        if callback(state["epoch"], metrics) is False:
            state["reason"] = "callback"
            raise StopIteration

    theta0 = flat.flatten(session.get_weights())
    result = None
    try:
        result = scipy_minimize(
            objective,
            theta0,
            jac=True,
            method="L-BFGS-B",
            callback=on_iteration,
            options={
                "maxiter": int(config.epochs),
                "gtol": config.tolerance,
                "ftol": 0.0,
                "maxcor": HISTORY,
            },
        )
    except KeyboardInterrupt:
        state["reason"] = "interrupted"
    if state["reason"] is not None:
        theta = state["accepted"] if state["accepted"] is not None else theta0
    else:
        theta = np.asarray(result.x, np.float64)
        state["reason"] = _outcome(result, objective, theta, config)
    session.set_weights(flat.unflatten(theta))
    network = session.network
    network.stop_reason = state["reason"]
    network.best_epoch = state["epoch"]
    if spec.kind == "logistic" and not decay and state["reason"] != "interrupted":
        warn_separation(network, train)
    return network


def _outcome(result: Any, objective: Callable, theta: np.ndarray, config: TrainConfig) -> str:
    """``converged`` when the gradient's max-norm is below the tolerance; else ``max_iter``
    (the cap) or ``stalled`` (SciPy stopped for another reason: no more decrease of the
    objective in float64, or a failed line search), both warned."""
    grad_max = float(np.max(np.abs(objective(theta)[1]))) if theta.size else 0.0
    if grad_max <= config.tolerance:
        return "converged"
    iterations = f"{config.epochs} iteration{'s' if config.epochs != 1 else ''}"
    hint = (
        "Raise epochs=..., standardise the features, or merge levels with very few trials "
        "(a level whose every trial fails or succeeds has no finite coefficient)"
    )
    if config.loss == "beta-binomial":
        hint += "; a beta-binomial φ grows without bound where groups vary no more than a binomial"
    if result.status == 1:
        msg = (
            f"L-BFGS stopped at its cap of {iterations} before the gradient's max-norm "
            f"({grad_max:.3g}) fell below tolerance={config.tolerance:g}: the result is not the "
            f"optimum. {hint}."
        )
        reason = "max_iter"
    else:
        msg = (
            f"L-BFGS could make no more progress ({result.message}) with the gradient's "
            f"max-norm at {grad_max:.3g}, above tolerance={config.tolerance:g}: the result may "
            f"not be the optimum. Loosen tolerance=... if it is below what float64 reaches on "
            f"this data; else: {hint}."
        )
        reason = "stalled"
    warnings.warn(msg, ConvergenceWarning, stacklevel=caller_level())
    return reason


def perfectly_predicted(z: np.ndarray, train: TrainData) -> np.ndarray:
    """bool ``[groups]``: every trial a failure with a logit below ``−SEPARATION_LOGIT``, or
    every one a success with a logit above it."""
    return ((train.k == 0) & (z < -SEPARATION_LOGIT)) | (
        (train.k == train.n) & (z > SEPARATION_LOGIT)
    )


def warn_separation(network: Network, train: TrainData) -> None:
    perfect = perfectly_predicted(network.predict_logits(train.X), train)
    if perfect.any():
        count, trials = int(perfect.sum()), int(train.n[perfect].sum())
        msg = (
            f"Perfect separation or prediction detected: {count} group(s) ({trials} trials) "
            "with every trial a failure (or every one a success) are predicted with p within "
            "3e-7 of 0 (or 1). The maximum-likelihood estimate does not exist and their "
            "coefficients are not identified. Merge or drop the levels that never vary, or fit "
            "with weight_decay > 0."
        )
        warnings.warn(msg, PerfectSeparationWarning, stacklevel=caller_level())


def caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside binomlab."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("binomlab"):
        frame, level = frame.f_back, level + 1
    return level
