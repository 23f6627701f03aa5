"""The built-in ``reference`` backend: logistic regression on grouped counts with NumPy/SciPy.

It needs no deep-learning framework, so the core works and is tested without plugins, and it
is the GLM baseline plugins are checked against. Its session gives the full-batch per-trial
NLL and its gradient in float64 to the core's L-BFGS driver (:mod:`binomlab.backends.lbfgs`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy

from binomlab.backends.protocol import Backend, Network, Session, TrainConfig, TrainData
from binomlab.nll import grouped_nll, grouped_nll_grad
from binomlab.specs import ModelSpec

__all__ = ["LinearNetwork", "ReferenceBackend", "ReferenceSession"]


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


class ReferenceSession(Session):
    """The weights ``[coef, intercept]`` of a :class:`LinearNetwork`, starting at zero
    coefficients and the intercept of the overall rate."""

    decayed = (True, False)

    def __init__(self, train: TrainData) -> None:
        self.X = train.X.astype(np.float64)
        self.k, self.n = train.k, train.n
        self.network = LinearNetwork(np.zeros(self.X.shape[1]), train.base_logit)

    def get_weights(self) -> list[np.ndarray]:
        return [self.network.coef.copy(), np.array(self.network.intercept)]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.network.coef = np.array(weights[0], np.float64)
        self.network.intercept = float(weights[1])

    def loss_and_grad(self, weights: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        self.set_weights(weights)
        z = self.network.predict_logits(self.X)
        g = grouped_nll_grad(z, self.k, self.n)
        return grouped_nll(z, self.k, self.n), [self.X.T @ g, np.array(g.sum())]


class ReferenceBackend(Backend):
    """Logistic regression by the core's Newton or L-BFGS-B driver in float64 (NumPy/SciPy
    only)."""

    name = "reference"
    specs = ("logistic",)
    optimizers = ("newton", "lbfgs")
    options = ()

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__, "scipy": scipy.__version__}

    def session(self, train: TrainData, spec: ModelSpec, config: TrainConfig) -> Session:
        return ReferenceSession(train)
