"""The built-in ``reference`` backend: logistic regression on grouped counts with NumPy/SciPy.

It needs no deep-learning framework, so the core works and is tested without plugins, and it
is the GLM baseline plugins are checked against. It minimises the per-trial NLL (plus
``weight_decay/2·‖w‖²`` on the weights, not the intercept) with SciPy's L-BFGS-B, one
"epoch" per iteration, until the max-norm of the gradient is below ``config.tolerance``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy
from scipy.optimize import minimize
from scipy.special import expit

from binomlab.protocol import (
    Backend,
    BestEpoch,
    Network,
    ProgressCallback,
    TrainConfig,
    TrainData,
    check_config,
)
from binomlab.specs import ModelSpec

__all__ = ["LinearNetwork", "ReferenceBackend", "grouped_nll", "grouped_nll_grad"]

MAX_ITERATIONS = 500


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


def grouped_nll(z: np.ndarray, k: np.ndarray, n: np.ndarray) -> float:
    """Per-trial binomial NLL ``Σ[n·softplus(z) − k·z] / Σn``, the oracle plugins are tested
    against (``z``, ``k``, ``n``: float64 ``[groups]``)."""
    return float(np.sum(n * _softplus(z) - k * z) / np.sum(n))


def grouped_nll_grad(z: np.ndarray, k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Gradient of :func:`grouped_nll` with respect to ``z``: ``(n·sigmoid(z) − k) / Σn``."""
    return (n * expit(z) - k) / np.sum(n)


class LinearNetwork(Network):
    """``z = X·coef + intercept`` in float64."""

    def __init__(self, coef: np.ndarray, intercept: float) -> None:
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = float(intercept)
        self.stop_reason = "completed"

    @property
    def n_params(self) -> int:
        return self.coef.size + 1

    def predict_logits(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.coef + self.intercept

    def export_onnx(self, path: Path) -> None:
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        d = self.coef.size
        graph = helper.make_graph(
            # float32 throughout, as the input: the logits differ from the float64 ones by
            # float32 rounding (~1e-7 relative), and a float64 cast would double the traffic
            nodes=[
                helper.make_node("MatMul", ["x", "coef"], ["xw"]),
                helper.make_node("Add", ["xw", "intercept"], ["logit"]),
            ],
            name="binomlab_logistic",
            inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", d])],
            outputs=[helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["batch"])],
            initializer=[
                numpy_helper.from_array(self.coef.astype(np.float32), "coef"),
                numpy_helper.from_array(np.array(self.intercept, np.float32), "intercept"),
            ],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, str(path))

    def save_native(self, directory: Path) -> list[str]:
        payload = {"coef": self.coef.tolist(), "intercept": self.intercept}
        (directory / "weights.json").write_text(json.dumps(payload))
        return ["weights.json"]


class ReferenceBackend(Backend):
    """Logistic regression by full-batch L-BFGS-B in float64 (NumPy/SciPy only)."""

    name = "reference"
    specs = ("logistic",)
    optimizers = ("lbfgs",)
    options = ()

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__, "scipy": scipy.__version__}

    def fit(
        self,
        train: TrainData,
        val: TrainData | None,
        spec: ModelSpec,
        config: TrainConfig,
        callback: ProgressCallback,
    ) -> Network:
        check_config(self, train, spec, config)
        X = train.X.astype(np.float64)
        k, n = train.k, train.n
        d = X.shape[1]
        decay = config.weight_decay
        Xv = None if val is None else val.X.astype(np.float64)

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            z = X @ theta[:d] + theta[d]
            g = grouped_nll_grad(z, k, n)
            value = grouped_nll(z, k, n) + 0.5 * decay * float(theta[:d] @ theta[:d])
            grad = np.append(X.T @ g + decay * theta[:d], g.sum())
            return value, grad

        # Start from the intercept of the overall rate: the first iterations then refine the
        # features' effects rather than the base rate.
        theta0 = np.zeros(d + 1)
        theta0[d] = train.base_logit
        best = {"theta": theta0.copy(), "reason": "completed"}
        tracker = BestEpoch(config.early_stopping)
        state = {"epoch": 0}

        def on_iteration(intermediate_result) -> None:
            theta = intermediate_result.x
            state["epoch"] += 1
            metrics = {"train_nll": grouped_nll(X @ theta[:d] + theta[d], k, n)}
            if Xv is not None:
                metrics["val_nll"] = grouped_nll(Xv @ theta[:d] + theta[d], val.k, val.n)
            penalty = 0.5 * decay * float(theta[:d] @ theta[:d])
            if tracker.update(state["epoch"], metrics, penalty):
                best["theta"] = theta.copy()
            reason = tracker.stop_reason(callback(state["epoch"], metrics))
            if reason is not None:
                best["reason"] = reason
                raise StopIteration

        try:
            result = minimize(
                objective,
                theta0,
                jac=True,
                method="L-BFGS-B",
                callback=on_iteration,
                options={
                    "maxiter": config.epochs or MAX_ITERATIONS,
                    "gtol": config.tolerance,
                    "ftol": 0.0,
                    "maxcor": 20,
                },
            )
        except KeyboardInterrupt:
            best["reason"] = "interrupted"
        else:
            if best["reason"] == "completed" and result.success:
                best["reason"] = "converged"
        if state["epoch"] == 0 and best["reason"] == "converged":  # optimal at the start
            best["theta"] = result.x
        network = LinearNetwork(best["theta"][:d], best["theta"][d])
        network.stop_reason = best["reason"]
        return network
