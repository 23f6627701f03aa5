"""Export a trained model: ONNX for serving, and the native ``model.keras`` (read back by
:func:`read_native`; :func:`binomlab_keras.network.load_native` makes it a network).

The ONNX graph is written directly from the weights of the ``Dense`` layers with
``onnx.helper`` — ``MatMul``/``Add`` and the activation (``Relu``, ``Tanh``, ``Sigmoid``,
``x·Sigmoid(x)`` for silu, ``x/2·(1 + Erf(x/√2))`` for the exact gelu), dropout being the
identity at inference. It is exact, needs no converter and does not depend on which Keras
backend trained the model. A model of the index form (:class:`~binomlab_keras.model.IndexDense`,
also the logistic's ``logit`` layer and its φ head :class:`~binomlab_keras.model.IndexLogPhiDense`;
:class:`~binomlab_keras.model.LevelEmbeddings`) looks its codes up with ``Gather``, summed by
``ReduceSum``; a code ``-1`` of the treatment design takes a zero row appended to the kernel.
(Keras's own ``model.export(format="onnx")`` goes through tf2onnx on TensorFlow, which cannot
convert the ``Erfc`` of Keras's exact gelu.)

The native format is Keras's ``model.keras`` zip (JSON config plus weights), loaded with
``safe_mode=True``: nothing is unpickled. A model trained on the beta-binomial loss also
writes ``beta_binomial.json`` with its concentration ``φ``; one with a φ head
(``phi="network"``) saves the model with its :class:`~binomlab_keras.loss.LogPhiDense` layer,
and its ONNX graph has a second output ``log_phi``.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np

from binomlab.errors import ModelFileError
from binomlab.specs import ModelSpec
from binomlab_keras.loss import LogPhiDense
from binomlab_keras.model import (
    IndexDense,
    IndexLogPhiDense,
    LevelEmbeddings,
    spec_from_model,
    split_pair,
    stack_layers,
)

__all__ = ["NATIVE_FILE", "PHI_FILE", "export_onnx", "read_native", "save_native"]

NATIVE_FILE = "model.keras"
PHI_FILE = "beta_binomial.json"
OPSET = 17


class _Graph:
    """Nodes and initialisers of an ONNX graph computing in one float dtype."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        self.nodes: list = []
        self.initializers: list = []

    def constant(self, name: str, value, dtype=None) -> str:
        from onnx import numpy_helper

        array = np.asarray(value, dtype or self.dtype)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attributes) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def activation(self, name: str, z: str, prefix: str) -> str:
        if name in _ELEMENTWISE:
            return self.node(_ELEMENTWISE[name], [z], f"{prefix}_a")
        if name == "silu":
            return self.node("Mul", [z, self.node("Sigmoid", [z], f"{prefix}_sig")], f"{prefix}_a")
        if name == "gelu":  # exact: x/2·(1 + erf(x/√2)), Keras's default gelu
            scaled = self.node(
                "Mul", [z, self.constant(f"{prefix}_rsqrt2", _RSQRT2)], f"{prefix}_s"
            )
            erf = self.node("Erf", [scaled], f"{prefix}_erf")
            one_plus = self.node("Add", [erf, self.constant(f"{prefix}_one", 1.0)], f"{prefix}_1p")
            half_x = self.node("Mul", [z, self.constant(f"{prefix}_half", 0.5)], f"{prefix}_hx")
            return self.node("Mul", [half_x, one_plus], f"{prefix}_a")
        msg = f"Cannot export the activation {name!r} of layer {prefix!r} to ONNX."
        raise ModelFileError(msg)

    def columns(self, x: str, columns: tuple[int, ...], prefix: str) -> str:
        """``x[:, columns]``."""
        at = self.constant(f"{prefix}_at", list(columns), np.int64)
        return self.node("Gather", [x, at], f"{prefix}_cols", axis=1)

    def codes(self, x: str, layout: Any, prefix: str) -> str:
        """The code columns of ``x`` as int64 ``[batch, codes]``."""
        from onnx import TensorProto

        codes = self.columns(x, layout.codes, f"{prefix}_codes")
        return self.node("Cast", [codes], f"{prefix}_idx", to=TensorProto.INT64)

    def index_dense(self, x: str, layer: IndexDense) -> str:
        """``Σ_f kernel[code_f] + numbers @ kernel[number_rows] + bias``."""
        return self.lookup(x, layer.kernel.numpy(), layer.bias.numpy(), layer.layout, layer.name)

    def lookup(self, x: str, kernel: Any, bias: Any, layout: Any, name: str) -> str:
        """``Σ_f kernel[code_f] + numbers @ kernel[number_rows] + bias``; with
        ``layout.holes`` the kernel gets a zero row last, which ``Gather`` takes for the
        code ``-1`` (ONNX counts negative indices from the end)."""
        kernel = np.asarray(kernel)
        z = self.constant(f"{name}_b", bias)
        if layout.codes:
            table = kernel
            if layout.holes:
                table = np.vstack([kernel, np.zeros((1, kernel.shape[1]), kernel.dtype)])
            rows = self.node(
                "Gather",
                [self.constant(f"{name}_w", table), self.codes(x, layout, name)],
                f"{name}_rows",
                axis=0,
            )
            axis = self.constant(f"{name}_sum_axes", [1], np.int64)
            summed = self.node("ReduceSum", [rows, axis], f"{name}_sum", keepdims=0)
            z = self.node("Add", [summed, z], f"{name}_zc")
        if layout.numbers:
            w = self.constant(f"{name}_wn", kernel[list(layout.number_rows)])
            xw = self.node("MatMul", [self.columns(x, layout.numbers, name), w], f"{name}_xw")
            z = self.node("Add", [xw, z], f"{name}_zn")
        return z

    def embeddings(self, x: str, layer: LevelEmbeddings) -> str:
        """Each feature's table row, concatenated with the numbers."""
        layout, name = layer.layout, layer.name
        parts = []
        if layout.codes:
            firsts = self.constant(f"{name}_firsts", list(layout.firsts), np.int64)
            from onnx import helper

            local = self.node("Sub", [self.codes(x, layout, name), firsts], f"{name}_local")
            # one Split, not a Gather per column: onnxruntime's fusion of sibling Gathers into
            # a Split fails to initialise the session ("Attempt to replace the existing tensor")
            levels = [f"{name}_{j}_level" for j in range(len(layer.tables))]
            sizes = self.constant(f"{name}_sizes", [1] * len(levels), np.int64)
            self.nodes.append(helper.make_node("Split", [local, sizes], levels, axis=1))
            axes = self.constant(f"{name}_axes", [1], np.int64)
            for j, (table, level) in enumerate(zip(layer.tables, levels, strict=True)):
                table = self.constant(f"{name}_table_{j}", np.asarray(table.numpy()))
                rows = self.node("Gather", [table, level], f"{name}_{j}_rows", axis=0)
                parts.append(self.node("Squeeze", [rows, axes], f"{name}_{j}"))
        if layout.numbers:
            parts.append(self.columns(x, layout.numbers, name))
        return self.node("Concat", parts, f"{name}_out", axis=1)


_ELEMENTWISE = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}
_RSQRT2 = 1.0 / math.sqrt(2.0)


def export_onnx(model: keras.Model, path: str | Path, *, head: LogPhiDense | None = None) -> None:
    """Write ``model`` (from :func:`~binomlab_keras.model.build_model`) as an ONNX file.

    The graph has one input ``x``: float32 ``[batch, d]`` (the model's input width: codes
    and numbers for the index form) with a dynamic batch dimension, and
    one output ``logit``: float32 ``[batch]``, followed by ``log_phi`` (float32 ``[batch]``)
    when the φ ``head`` of the model is given. A float64 model casts ``x`` and computes in
    float64 inside the graph.

    Raises
    ------
    ModelFileError
        The model is not a binomlab network (layers other than ``Dense`` and ``Dropout``).
    """
    import onnx
    from onnx import TensorProto, helper

    spec_from_model(model)  # checks that the layers are ours
    layers = stack_layers(model)
    dtype = np.dtype(layers[-1].kernel.dtype)
    graph = _Graph(dtype)
    x = "x" if dtype == np.float32 else graph.node("Cast", ["x"], "x64", to=TensorProto.DOUBLE)
    hidden = x
    for i, layer in enumerate(layers):
        hidden = x
        if isinstance(layer, LevelEmbeddings):
            x = graph.embeddings(x, layer)
            continue
        if isinstance(layer, IndexDense):
            x = graph.index_dense(x, layer)
        else:
            kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
            xw = graph.node(
                "MatMul", [x, graph.constant(f"{layer.name}_w", kernel)], f"{layer.name}_xw"
            )
            x = graph.node("Add", [xw, graph.constant(f"{layer.name}_b", bias)], f"{layer.name}_z")
        if i < len(layers) - 1:
            x = graph.activation(keras.activations.serialize(layer.activation), x, layer.name)
    axes = graph.constant("squeeze_axes", [1], np.int64)
    columns = {"logit": x}
    if isinstance(head, IndexLogPhiDense):  # θ = Σ_f v[code_f] + c on the codes
        theta = graph.lookup(
            hidden, head.log_phi_kernel.numpy(), head.log_phi.numpy(), head.layout, "log_phi"
        )
        columns["log_phi"] = theta
    elif head is not None:  # θ = h·v + c on the input of the logit layer
        hv = graph.node(
            "MatMul", [hidden, graph.constant("log_phi_v", head.log_phi_kernel.numpy())], "hv"
        )
        columns["log_phi"] = graph.node(
            "Add", [hv, graph.constant("log_phi_c", head.log_phi.numpy())], "theta"
        )
    for name, column in columns.items():
        if dtype == np.float32:
            graph.node("Squeeze", [column, axes], name)
        else:
            squeezed = graph.node("Squeeze", [column, axes], f"{name}64")
            graph.node("Cast", [squeezed], name, to=TensorProto.FLOAT)
    d = int(model.inputs[0].shape[-1])
    onnx_graph = helper.make_graph(
        graph.nodes,
        name=model.name,
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", d])],
        outputs=[
            helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch"]) for name in columns
        ],
        initializer=graph.initializers,
    )
    onnx_model = helper.make_model(
        onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="binomlab-keras"
    )
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model, full_check=True)
    onnx.save(onnx_model, str(path))


def save_native(
    model: keras.Model, directory: str | Path, *, phi: float | None = None
) -> list[str]:
    """Write ``model.keras`` into ``directory`` (created if needed), and ``beta_binomial.json``
    holding ``phi`` when it is given; return the names of the files written. A model with a φ
    head is saved with it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # Keras 3.15 converts TensorFlow variables with np.array(x), which NumPy 2 flags
        warnings.filterwarnings(
            "ignore", message=".*__array__ implementation doesn't accept a copy keyword.*"
        )
        model.save(directory / NATIVE_FILE)
    if phi is None:
        return [NATIVE_FILE]
    (directory / PHI_FILE).write_text(json.dumps({"phi": float(phi)}))
    return [NATIVE_FILE, PHI_FILE]


def read_native(directory: str | Path) -> tuple[keras.Model, ModelSpec, float | None, Any]:
    """Load the model written by :func:`save_native` with ``safe_mode=True``.

    Returns
    -------
    (model, spec, phi, pair)
        The logit model, its spec, the scalar ``φ`` (or None) and the model with its φ head
        (or None).

    Raises
    ------
    ModelFileError
        ``model.keras`` is missing, unreadable, or not a binomlab network.
    """
    path = Path(directory) / NATIVE_FILE
    if not path.is_file():
        msg = f"{Path(directory)} is not a binomlab-keras model: {NATIVE_FILE} not found."
        raise ModelFileError(msg)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises ValueError, OSError, zipfile errors, ...
        msg = f"Unreadable {path}: {type(err).__name__}: {err}"
        raise ModelFileError(msg) from err
    spec = spec_from_model(model)
    pair = None
    if any(isinstance(layer, LogPhiDense) for layer in model.layers):
        pair = model
        model = split_pair(pair)[0]
    phi = None
    if (path.parent / PHI_FILE).is_file():
        try:
            phi = float(json.loads((path.parent / PHI_FILE).read_text())["phi"])
        except (ValueError, KeyError, TypeError) as err:
            msg = f"Unreadable {path.parent / PHI_FILE}: {type(err).__name__}: {err}"
            raise ModelFileError(msg) from err
    return model, spec, phi, pair
