"""The Keras model built from a binomlab spec, and the spec read back from a model.

:func:`build_model` maps ``X [batch, d]`` to logits ``[batch, 1]``: one ``Dense(1)`` for the
logistic spec, a ``Dense``/``Dropout`` stack ending in ``Dense(1)`` for the MLP spec (the
activation inside each hidden ``Dense``). Layers are initialised as PyTorch initialises a
``Linear`` layer — weights and biases uniform in ``±1/√fan_in`` — from seeds derived from the
training seed, so a spec starts from the same distribution whichever backend trains it.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from binomlab.errors import ModelFileError
from binomlab.specs import MLP, Logistic, ModelSpec
from binomlab_keras.loss import LogPhiDense

__all__ = [
    "ACTIVATIONS",
    "build_model",
    "forward",
    "forward_pair",
    "kernels",
    "set_output_bias",
    "spec_from_model",
    "split_pair",
    "with_phi_head",
]

ACTIVATIONS = ("relu", "tanh", "gelu", "silu", "sigmoid")
OUTPUT = "logit"


def _dense(
    units: int, fan_in: int, *, activation: str | None, name: str, seed: int, dtype: str
) -> keras.layers.Dense:
    bound = 1.0 / math.sqrt(fan_in)
    return keras.layers.Dense(
        units,
        activation=activation,
        name=name,
        dtype=dtype,
        # U(±1/√fan_in) for both, as torch.nn.Linear
        kernel_initializer=keras.initializers.VarianceScaling(
            scale=1.0 / 3.0, mode="fan_in", distribution="uniform", seed=seed
        ),
        bias_initializer=keras.initializers.RandomUniform(-bound, bound, seed=seed + 1),
    )


def build_model(
    spec: ModelSpec, input_dim: int, *, seed: int = 0, dtype: str = "float32"
) -> keras.Model:
    """The untrained functional model of ``spec`` for ``input_dim`` encoded features.

    Parameters
    ----------
    spec
        :class:`~binomlab.Logistic` or :class:`~binomlab.MLP`.
    input_dim
        Width ``d`` of the encoded features.
    seed
        Seeds the initialisers and the dropout layers (each layer its own seed).
    dtype
        ``"float32"`` or ``"float64"`` for every layer and the input.

    Returns
    -------
    keras.Model
        ``X [batch, d] -> logits [batch, 1]``; hidden layers are named ``hidden_1``, ...,
        dropout layers ``dropout_1``, ..., the last layer ``logit``.
    """
    seed = int(seed) * 1_000
    inputs = keras.Input(shape=(int(input_dim),), dtype=dtype, name="x")
    x, width = inputs, int(input_dim)
    if isinstance(spec, MLP):
        for i, units in enumerate(spec.hidden, start=1):
            x = _dense(
                units,
                width,
                activation=spec.activation,
                name=f"hidden_{i}",
                seed=seed + 10 * i,
                dtype=dtype,
            )(x)
            if spec.dropout > 0:
                x = keras.layers.Dropout(
                    spec.dropout, seed=seed + 10 * i + 5, name=f"dropout_{i}", dtype=dtype
                )(x)
            width = units
    outputs = _dense(1, width, activation=None, name=OUTPUT, seed=seed + 1, dtype=dtype)(x)
    return keras.Model(inputs, outputs, name=f"binomlab_{spec.kind}")


def forward(model: keras.Model, x: Any) -> Any:
    """``model(x, training=False)``, the logits ``[batch, 1]`` as a backend tensor.

    On the torch backend Keras's ``ops.matmul`` computes float64 products in float32 (it
    follows JAX's default type promotion); a float64 model there runs its ``Dense`` layers
    with ``torch.matmul`` instead, so that its logits and gradients keep float64 precision.
    """
    if keras.backend.backend() != "torch" or model.inputs[0].dtype != "float64":
        return model(x, training=False)
    import torch

    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    z = keras.ops.convert_to_tensor(x, dtype="float64")
    for i, layer in enumerate(dense):
        z = torch.matmul(z, layer.kernel.value) + layer.bias.value
        if i < len(dense) - 1:
            z = layer.activation(z)
    return z


def with_phi_head(model: keras.Model) -> keras.Model:
    """``model`` with a :class:`~binomlab_keras.loss.LogPhiDense` on the input of its logit
    layer (the last hidden layer, or the features for the logistic spec): ``X [batch, d] ->
    [z, log φ] [batch, 2]``, sharing ``model``'s layers."""
    logit = model.get_layer(OUTPUT)
    head = LogPhiDense(dtype=model.inputs[0].dtype)
    return keras.Model(model.input, head([logit.input, logit.output]), name=model.name + "_phi")


def split_pair(pair: keras.Model) -> tuple[keras.Model, LogPhiDense]:
    """The logit model and the head of a model made by :func:`with_phi_head`."""
    head = next(layer for layer in pair.layers if isinstance(layer, LogPhiDense))
    return keras.Model(pair.input, pair.get_layer(OUTPUT).output, name=pair.name), head


def forward_pair(pair: keras.Model, x: Any) -> Any:
    """``pair(x, training=False)``: ``[z, log φ]``, ``[batch, 2]`` (see :func:`forward` for
    float64 on the torch backend)."""
    if keras.backend.backend() != "torch" or pair.inputs[0].dtype != "float64":
        return pair(x, training=False)
    import torch

    dense = [layer for layer in pair.layers if isinstance(layer, keras.layers.Dense)]
    head = next(layer for layer in pair.layers if isinstance(layer, LogPhiDense))
    h = keras.ops.convert_to_tensor(x, dtype="float64")
    for layer in dense[:-1]:
        h = layer.activation(torch.matmul(h, layer.kernel.value) + layer.bias.value)
    z = torch.matmul(h, dense[-1].kernel.value) + dense[-1].bias.value
    theta = torch.matmul(h, head.log_phi_kernel.value) + head.log_phi.value
    return torch.cat([z, theta], dim=-1)


def set_output_bias(model: keras.Model, value: float) -> None:
    """Set the output bias, e.g. to the logit of the overall success rate."""
    bias = model.get_layer(OUTPUT).bias
    bias.assign(np.full(tuple(bias.shape), value, dtype=bias.dtype))


def kernels(model: keras.Model) -> list[keras.Variable]:
    """The weight matrices (not the biases): what weight decay applies to."""
    return [v for v in model.trainable_variables if v.name == "kernel"]


def spec_from_model(model: keras.Model) -> ModelSpec:
    """The spec a model of :func:`build_model` was built from, read from its layers.

    Raises
    ------
    ModelFileError
        The model is not one :func:`build_model` makes.
    """
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    dropout = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    others = [
        layer
        for layer in model.layers
        if not isinstance(
            layer,
            keras.layers.Dense | keras.layers.Dropout | keras.layers.InputLayer | LogPhiDense,
        )
    ]
    if not dense or dense[-1].name != OUTPUT or dense[-1].units != 1 or others:
        msg = (
            f"The Keras model {model.name!r} is not a binomlab network: expected Dense layers "
            f"ending in one named {OUTPUT!r} with 1 unit, and Dropout layers only."
        )
        raise ModelFileError(msg)
    if len(dense) == 1:
        return Logistic()
    activations = {keras.activations.serialize(layer.activation) for layer in dense[:-1]}
    if len(activations) != 1 or next(iter(activations)) not in ACTIVATIONS:
        msg = f"The hidden layers of {model.name!r} use activations {sorted(activations)}."
        raise ModelFileError(msg)
    return MLP(
        hidden=tuple(layer.units for layer in dense[:-1]),
        activation=next(iter(activations)),
        dropout=dropout[0].rate if dropout else 0.0,
    )
