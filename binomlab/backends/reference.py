"""The built-in ``reference`` backend: logistic regression on grouped counts with NumPy/SciPy.

It needs no deep-learning framework, so the core works and is tested without plugins, and it
is the GLM baseline plugins are checked against. Its session gives the full-batch per-trial
NLL and its gradient in float64 to the core's Newton and L-BFGS drivers
(:mod:`binomlab.backends.newton`, :mod:`binomlab.backends.lbfgs`).

It takes the index form (``TrainData.layout``: a code per feature with levels, see
:mod:`binomlab.layout`): the logits are a lookup of the coefficients, the gradient a sum of
per-level terms (a sparse ``Xᵀg``), so the encoded data and every product take groups ×
features numbers, never groups × levels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy

from binomlab.backends.newton import Design
from binomlab.backends.protocol import Backend, Network, Session, TrainConfig, TrainData
from binomlab.layout import IndexLayout
from binomlab.nll import grouped_nll, grouped_nll_grad
from binomlab.specs import ModelSpec

__all__ = ["LinearNetwork", "ReferenceBackend", "ReferenceSession"]


class LinearNetwork(Network):
    """``z = X·coef + intercept`` in float64; with a ``layout``, ``X`` in its index form and
    ``z = Σ_f coef[code_f] + numbers·coef[number_rows] + intercept`` (a code of -1 adds 0)."""

    def __init__(
        self, coef: np.ndarray, intercept: float, layout: IndexLayout | None = None
    ) -> None:
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = float(intercept)
        self.layout = layout
        self.stop_reason = "completed"

    @property
    def n_params(self) -> int:
        return self.coef.size + 1

    def predict_logits(self, X: np.ndarray) -> np.ndarray:
        if self.layout is not None:
            return self.layout.first_layer(X, self.coef[:, None], [self.intercept])[:, 0]
        return np.asarray(X, dtype=np.float64) @ self.coef + self.intercept

    def export_onnx(self, path: Path) -> None:
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        # float32 throughout, as the input: the logits differ from the float64 ones by
        # float32 rounding (~1e-7 relative), and a float64 cast would double the traffic
        coef = self.coef.astype(np.float32)
        initializer = [numpy_helper.from_array(np.array(self.intercept, np.float32), "intercept")]
        if self.layout is None:
            d = coef.size
            nodes = [
                helper.make_node("MatMul", ["x", "coef"], ["xw"]),
                helper.make_node("Add", ["xw", "intercept"], ["logit"]),
            ]
            initializer.append(numpy_helper.from_array(coef, "coef"))
        else:
            d = self.layout.n_inputs
            nodes, more = _index_nodes(self.layout, coef)
            initializer += more
        graph = helper.make_graph(
            nodes=nodes,
            name="binomlab_logistic",
            inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", d])],
            outputs=[helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["batch"])],
            initializer=initializer,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, str(path))

    def save_native(self, directory: Path) -> list[str]:
        payload = {"coef": self.coef.tolist(), "intercept": self.intercept}
        if self.layout is not None:
            payload["layout"] = self.layout.to_dict()
        (directory / "weights.json").write_text(json.dumps(payload))
        return ["weights.json"]


class ReferenceSession(Session):
    """The weights ``[coef, intercept]`` of a :class:`LinearNetwork`, starting at zero
    coefficients and the intercept of the overall rate."""

    decayed = (True, False)

    def __init__(self, train: TrainData) -> None:
        self.design = Design(np.asarray(train.X, np.float64), train.layout)
        self.k, self.n = train.k, train.n
        self.network = LinearNetwork(np.zeros(self.design.d), train.base_logit, train.layout)

    def get_weights(self) -> list[np.ndarray]:
        return [self.network.coef.copy(), np.array(self.network.intercept)]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.network.coef = np.array(weights[0], np.float64)
        self.network.intercept = float(weights[1])

    def loss_and_grad(self, weights: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        self.set_weights(weights)
        z = self.design.logits(np.r_[self.network.coef, self.network.intercept])
        g = grouped_nll_grad(z, self.k, self.n)
        return grouped_nll(z, self.k, self.n), [self.design.rmatvec(g), np.array(g.sum())]


class ReferenceBackend(Backend):
    """Logistic regression by the core's Newton or L-BFGS-B driver in float64 (NumPy/SciPy
    only)."""

    name = "reference"
    specs = ("logistic",)
    optimizers = ("newton", "lbfgs")
    options = ()
    index_inputs = ("logistic",)

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__, "scipy": scipy.__version__}

    def session(self, train: TrainData, spec: ModelSpec, config: TrainConfig) -> Session:
        return ReferenceSession(train)


def _index_nodes(layout: IndexLayout, coef: np.ndarray) -> tuple[list, list]:
    """ONNX nodes computing ``xw`` → ``logit`` from the index form ``x`` of ``layout``:
    ``Σ_f coef[code_f]`` by Gather on the coefficients padded with one 0 (a code of -1 picks
    it, as ONNX's Gather counts negative indices from the end), plus the numbers' MatMul."""
    from onnx import helper, numpy_helper

    nodes, initializer, terms = [], [], []
    if layout.codes:
        padded = np.r_[coef, np.float32(0.0)].astype(np.float32)
        initializer += [
            numpy_helper.from_array(padded, "coef_padded"),
            numpy_helper.from_array(np.array(layout.codes, np.int64), "code_columns"),
        ]
        nodes += [
            helper.make_node("Gather", ["x", "code_columns"], ["code_values"], axis=1),
            helper.make_node("Cast", ["code_values"], ["codes"], to=7),  # int64
            helper.make_node("Gather", ["coef_padded", "codes"], ["looked_up"], axis=0),
            helper.make_node("ReduceSum", ["looked_up", "sum_axes"], ["xw_codes"], keepdims=0),
        ]
        initializer.append(numpy_helper.from_array(np.array([1], np.int64), "sum_axes"))
        terms.append("xw_codes")
    if layout.numbers:
        initializer += [
            numpy_helper.from_array(np.array(layout.numbers, np.int64), "number_columns"),
            numpy_helper.from_array(coef[list(layout.number_rows)], "coef_numbers"),
        ]
        nodes += [
            helper.make_node("Gather", ["x", "number_columns"], ["numbers"], axis=1),
            helper.make_node("MatMul", ["numbers", "coef_numbers"], ["xw_numbers"]),
        ]
        terms.append("xw_numbers")
    if not terms:  # no input columns (every one aliased): x is [batch, 0], the intercept alone
        initializer.append(numpy_helper.from_array(np.zeros(0, np.float32), "coef_none"))
        nodes.append(helper.make_node("MatMul", ["x", "coef_none"], ["xw_none"]))
        terms.append("xw_none")
    total = terms[0]
    if len(terms) == 2:
        nodes.append(helper.make_node("Add", terms, ["xw"]))
        total = "xw"
    nodes.append(helper.make_node("Add", [total, "intercept"], ["logit"]))
    return nodes, initializer
