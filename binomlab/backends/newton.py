"""The core's Newton driver: the binomial GLM's maximum-likelihood fit, for every backend.

For the logistic spec with the binomial loss the Hessian of the per-trial NLL is known in
closed form, ``H = X̃ᵀ diag(n·p(1−p)) X̃ / Σn`` with ``X̃ = [X, 1]`` (plus ``weight_decay`` on
the coefficients): on groups it costs one pass over ``groups × d²``, far less than the raw
rows. Each iteration takes the backend's full-batch loss and gradient in float64
(:meth:`Session.loss_and_grad`), computes ``H`` in the core, and steps ``θ ← θ − α H⁻¹g``
with ``α`` halved until the objective decreases (Armijo), which is iteratively reweighted
least squares (statsmodels' ``GLM.fit``) with a line search. One iteration is one epoch of the
history; ``val_nll`` is recorded, never used.

The session's weights must be the coefficients (``d`` values, weight-decayed) and the intercept
(one value, not decayed), in that order, as :meth:`Backend.session` builds the logistic spec.

Stop reasons:

* ``converged``: the gradient's max-norm is within ``config.tolerance`` and the last Newton
  step moved no coefficient by more than :data:`STEP_TOLERANCE` (so the estimate is the MLE to
  about that precision, not only to the gradient's), or a group is perfectly predicted
  (separation: the MLE does not exist, and a
  :class:`~binomlab.errors.PerfectSeparationWarning` says so);
* ``max_iter`` (the cap, ``config.epochs``, default 100) and ``stalled`` (no step decreases the
  objective while the gradient is above the tolerance): both with a
  :class:`~binomlab.errors.ConvergenceWarning`;
* ``callback`` and ``interrupted`` keep the last accepted iterate.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from binomlab.backends.lbfgs import _Flat, caller_level, perfectly_predicted, warn_separation
from binomlab.backends.loop import DIVERGENCE_FACTOR, check_finite_and_bounded, exact_nll
from binomlab.errors import BinomlabError, ConvergenceWarning
from binomlab.nll import base_rate_nll, sigmoid

if TYPE_CHECKING:
    from binomlab.backends.protocol import Network, Session, TrainConfig, TrainData
    from binomlab.layout import IndexLayout
    from binomlab.specs import ModelSpec

__all__ = ["STEP_TOLERANCE", "Design", "hessian", "minimize"]

STEP_TOLERANCE = 1e-7
"""Largest coefficient change of the last Newton step at convergence (in logit units)."""
ARMIJO = 1e-4
"""Sufficient decrease of the line search: ``f(θ − αs) ≤ f(θ) − ARMIJO·α·gᵀs``."""
MIN_STEP = 2.0**-30
CHUNK = 1 << 15
"""Rows per block when accumulating a dense ``X̃ᵀ W X̃`` (bounds the float64 copy of X)."""
SPARSE_DENSITY = 0.25
"""Below this fraction of non-zero entries the design is kept sparse."""


class Design:
    """The encoded design ``X`` ``[groups, d]`` and the products Newton needs.

    One-hot designs are mostly zeros, so a sparse copy (CSR, float64) is kept when fewer than
    :data:`SPARSE_DENSITY` of the entries are non-zero: ``X̃ᵀWX̃`` then costs about
    ``groups × (non-zeros per row)²`` instead of ``groups × d²``. In the index form
    (``layout`` given, ``X [groups, layout.n_inputs]`` holding codes) the sparse matrix is
    built from the codes (:meth:`IndexLayout.sparse`), never as a dense ``[groups × d]``
    matrix: ``d = layout.width`` (unless the one-hot matrix would be dense anyway, at least
    :data:`SPARSE_DENSITY` non-zero: few levels, or numbers only).
    """

    def __init__(self, X: np.ndarray, layout: IndexLayout | None = None) -> None:
        self.sparse = None
        if layout is not None and layout.n_inputs >= SPARSE_DENSITY * layout.width:
            X, layout = layout.dense(np.asarray(X, np.float64)), None  # few levels: BLAS wins
        self.X = X
        if layout is not None:
            self.d = layout.width
            self.sparse = layout.sparse(X)
            return
        self.d = X.shape[1]
        if X.size and np.count_nonzero(X) < SPARSE_DENSITY * X.size:
            from scipy import sparse

            self.sparse = sparse.csr_matrix(X, dtype=np.float64)

    def rmatvec(self, g: np.ndarray) -> np.ndarray:
        """``Xᵀg`` in float64, ``[d]``, for ``g [groups]``."""
        if self.sparse is not None:
            return np.asarray(self.sparse.T @ g, np.float64)
        return np.asarray(self.X, np.float64).T @ g

    def logits(self, theta: np.ndarray) -> np.ndarray:
        """``X·θ[:d] + θ[d]`` in float64, ``[groups]``."""
        if self.sparse is not None:
            return self.sparse @ theta[:-1] + theta[-1]
        out = np.empty(self.X.shape[0], np.float64)
        for start in range(0, self.X.shape[0], CHUNK):
            block = np.asarray(self.X[start : start + CHUNK], np.float64)
            out[start : start + CHUNK] = block @ theta[:-1] + theta[-1]
        return out

    def hessian(self, weights: np.ndarray) -> np.ndarray:
        """``X̃ᵀ diag(weights) X̃`` with ``X̃ = [X, 1]``, float64 ``[d + 1, d + 1]``."""
        d = self.d
        out = np.zeros((d + 1, d + 1), np.float64)
        if self.sparse is not None:
            weighted = self.sparse.multiply(weights[:, None]).tocsr()
            out[:d, :d] = (self.sparse.T @ weighted).toarray()
            out[:d, d] = np.asarray(weighted.sum(axis=0)).ravel()
        else:
            for start in range(0, self.X.shape[0], CHUNK):
                block = np.asarray(self.X[start : start + CHUNK], np.float64)
                weighted = block * weights[start : start + CHUNK, None]
                out[:d, :d] += weighted.T @ block
                out[:d, d] += weighted.sum(axis=0)
        out[d, d] = float(np.sum(weights))
        out[d, :d] = out[:d, d]
        return out


def hessian(X: np.ndarray, weights: np.ndarray, layout: IndexLayout | None = None) -> np.ndarray:
    """``X̃ᵀ diag(weights) X̃`` with ``X̃ = [X, 1]``, float64 ``[d + 1, d + 1]`` (``X`` in the
    index form of ``layout`` when given)."""
    return Design(X, layout).hessian(weights)


def _solve(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``H⁻¹g`` by Cholesky; a near-singular ``H`` (separation) gets a tiny ridge."""
    from scipy.linalg import LinAlgError, cho_factor, cho_solve

    ridge = 0.0
    scale = float(np.mean(np.diag(H))) or 1.0
    for _ in range(12):
        try:
            return cho_solve(cho_factor(H + ridge * np.eye(len(H))), g)
        except LinAlgError:
            ridge = scale * 1e-12 if ridge == 0.0 else ridge * 100.0
    return np.linalg.lstsq(H, g, rcond=None)[0]


def minimize(
    session: Session,
    train: TrainData,
    val: TrainData | None,
    spec: ModelSpec,
    config: TrainConfig,
    callback: Callable[[int, Mapping[str, float]], bool | None],
) -> Network:
    """Run Newton's method on ``session`` by the rules of this module's docstring; return the
    session's network at the result, with ``stop_reason`` set.

    Raises
    ------
    BinomlabError
        The session's weights are not ``[coefficients, intercept]`` of ``train.X``'s width.
    """
    flat = _Flat(session.get_weights(), session.decayed)
    design = Design(train.X, train.layout)
    d = design.d
    layout = np.r_[np.ones(d, bool), False]
    if flat.decayed.shape != layout.shape or not np.array_equal(flat.decayed, layout):
        msg = (
            f"optimizer='newton' needs the logistic session's weights as [coefficients ({d}), "
            f"intercept (1)]; this backend's session gives {flat.shapes}."
        )
        raise BinomlabError(msg)
    decay = config.weight_decay
    total = train.trials
    limit = DIVERGENCE_FACTOR * base_rate_nll(train.k, train.n) + 1.0

    def objective(theta: np.ndarray) -> tuple[float, float, np.ndarray]:
        nll, grads = session.loss_and_grad(flat.unflatten(theta))
        grad = flat.flatten(grads) + decay * theta * layout
        value = float(nll) + 0.5 * decay * float(np.sum(np.square(theta[:d])))
        return value, float(nll), grad

    theta = flat.flatten(session.get_weights())
    value, nll, grad = objective(theta)
    z = design.logits(theta)
    reason, epoch, step_size, step_max = None, 0, 1.0, np.inf
    try:
        while reason is None:
            p = sigmoid(z)
            H = design.hessian(train.n * p * (1.0 - p) / total)
            H[:d, :d] += decay * np.eye(d)
            direction = _solve(H, grad)
            slope = float(grad @ direction)
            step_size = 1.0
            while True:
                candidate = theta - step_size * direction
                new_value, new_nll, new_grad = objective(candidate)
                if np.isfinite(new_value) and new_value <= value - ARMIJO * step_size * slope:
                    break
                step_size /= 2.0
                if step_size < MIN_STEP:
                    break
            if step_size < MIN_STEP:  # no decrease: float64's floor, or a bad direction
                session.set_weights(flat.unflatten(theta))
                reason = "stalled"
                break
            step_max = float(np.max(np.abs(step_size * direction)))
            theta, value, nll, grad = candidate, new_value, new_nll, new_grad
            z = design.logits(theta)
            epoch += 1
            metrics = {"train_nll": nll}
            if val is not None:
                metrics["val_nll"] = exact_nll(session.network, val, config.loss)
            check_finite_and_bounded(epoch, metrics, limit, what="iteration")
            if callback(epoch, metrics) is False:
                reason = "callback"
            elif _converged(grad, step_max, train, z, config):
                reason = "converged"
            elif epoch >= config.epochs:
                reason = "max_iter"
    except KeyboardInterrupt:
        reason = "interrupted"
    session.set_weights(flat.unflatten(theta))
    grad_max = float(np.max(np.abs(grad)))
    if reason == "stalled" and grad_max <= config.tolerance:
        reason = "converged"
    if reason in ("max_iter", "stalled"):
        _warn(reason, grad_max, step_max, config)
    network = session.network
    network.stop_reason = reason
    network.best_epoch = epoch
    if not decay and reason != "interrupted":
        warn_separation(network, train)
    return network


def _converged(
    grad: np.ndarray, step_max: float, train: TrainData, z: np.ndarray, config: TrainConfig
) -> bool:
    if float(np.max(np.abs(grad))) > config.tolerance:
        return False
    if step_max <= STEP_TOLERANCE:
        return True
    # separated: the MLE does not exist, stop here (warned after)
    return bool(np.any(perfectly_predicted(z, train)))


def _warn(reason: str, grad_max: float, step_max: float, config: TrainConfig) -> None:
    iterations = f"{config.epochs} iteration{'s' if config.epochs != 1 else ''}"
    state = (
        f"the gradient's max-norm is {grad_max:.3g} (tolerance={config.tolerance:g}) and the "
        f"last step moved a coefficient by {step_max:.3g}"
    )
    if reason == "max_iter":
        msg = (
            f"Newton stopped at its cap of {iterations} before converging: {state}. The result "
            "is not the maximum-likelihood estimate. Raise epochs=..., or merge levels with "
            "very few trials (a level whose every trial fails or succeeds has no finite "
            "coefficient)."
        )
    else:
        msg = (
            f"Newton could not decrease the objective any more while {state}: the result may "
            "not be the optimum. Loosen tolerance=... if it is below what float64 reaches on "
            "this data."
        )
    warnings.warn(msg, ConvergenceWarning, stacklevel=caller_level())
