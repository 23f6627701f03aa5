"""The Keras model built from a binomlab spec, and the spec read back from a model.

:func:`build_model` maps ``X [batch, d]`` to logits ``[batch, 1]``: one ``Dense(1)`` for the
logistic spec, a ``Dense``/``Dropout`` stack ending in ``Dense(1)`` for the MLP spec (the
activation inside each hidden ``Dense``). Layers are initialised as PyTorch initialises a
``Linear`` layer — weights and biases uniform in ``±1/√fan_in`` — from seeds derived from the
training seed, so a spec starts from the same distribution whichever backend trains it.

With an :class:`~binomlab.layout.IndexLayout` the model takes the index form (codes, not
one-hot columns): its first hidden layer is an :class:`IndexDense`, the ``Dense`` of
``layout.width`` inputs fed by a lookup; or, for ``MLP(embed=...)``, a
:class:`LevelEmbeddings` layer (one learned table per feature with levels) feeds ``Dense``
hidden layers. The logistic spec's one layer (``logit``) is then an :class:`IndexDense` too,
on the treatment design's layout (a reference level's code ``-1`` has no kernel row), and its
``log φ`` head (``phi="network"``) an :class:`IndexLogPhiDense`.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from binomlab.errors import ModelFileError
from binomlab.layout import NO_ROW, IndexLayout, check_network_inputs, embedding_dims
from binomlab.specs import MLP, Logistic, ModelSpec
from binomlab_keras.loss import LogPhiDense

__all__ = [
    "ACTIVATIONS",
    "IndexDense",
    "IndexLogPhiDense",
    "LevelEmbeddings",
    "build_model",
    "forward",
    "forward_pair",
    "kernels",
    "set_output_bias",
    "spec_from_model",
    "split_pair",
    "stack_layers",
    "with_phi_head",
]

ACTIVATIONS = ("relu", "tanh", "gelu", "silu", "sigmoid")
OUTPUT = "logit"
EMBEDDINGS = "embeddings"


def _dense_gradient(variable: Any, dtype: Any) -> Any:
    """``variable`` in ``dtype``, its gradient made dense on TensorFlow.

    TensorFlow differentiates a lookup into ``tf.IndexedSlices``, which Keras's optimizers
    apply as sparse updates (only the rows looked up move, Adam's moments of the others do
    not decay): not the update of the one-hot path. A dense gradient gives that update."""
    value = ops.cast(variable, dtype)
    if keras.backend.backend() != "tensorflow":
        return value
    import tensorflow as tf

    @tf.custom_gradient
    def identity(x: Any) -> Any:
        return tf.identity(x), lambda grad: tf.convert_to_tensor(grad)

    return identity(value)


def _lookup(inputs: Any, kernel: Any, layout: IndexLayout) -> Any:
    """``Σ_f kernel[code_f] + numbers @ kernel[number_rows]`` → ``[batch, units]`` (no bias)
    for ``inputs [batch, layout.n_inputs]`` and ``kernel [layout.width, units]`` in
    ``inputs``' dtype. With ``layout.holes`` a code ``NO_ROW`` selects a zero row appended
    to the kernel (not a weight: no gradient goes to it). A kernel of no rows (every feature
    at its reference level, e.g. a single group) adds zeros by a product XLA can compile: its
    gradient through the lookup is a scatter into no rows, which XLA refuses."""
    if kernel.shape[0] == 0:
        return ops.matmul(ops.zeros((ops.shape(inputs)[0], 0), inputs.dtype), kernel)
    parts = []
    if layout.codes:
        codes = ops.cast(ops.take(inputs, list(layout.codes), axis=1), "int32")
        table = kernel
        if layout.holes:
            table = ops.concatenate([kernel, ops.zeros((1, kernel.shape[1]), inputs.dtype)], 0)
            codes = ops.cast(ops.where(codes == NO_ROW, layout.width, codes), "int32")
        parts.append(ops.sum(ops.take(table, codes, axis=0), axis=1))
    if layout.numbers:
        numbers = ops.take(inputs, list(layout.numbers), axis=1)
        parts.append(ops.matmul(numbers, ops.take(kernel, list(layout.number_rows), axis=0)))
    return sum(parts[1:], parts[0])


def _torch_lookup(h: Any, kernel: Any, layout: IndexLayout) -> Any:
    """:func:`_lookup` on a float64 torch tensor ``h``, products by ``torch.matmul``."""
    import torch

    parts = []
    if layout.codes:
        codes = h[:, list(layout.codes)].long()
        table = kernel
        if layout.holes:
            table = torch.cat([kernel, kernel.new_zeros((1, kernel.shape[1]))], dim=0)
            codes = torch.where(codes == NO_ROW, layout.width, codes)
        parts.append(table[codes].sum(dim=1))
    if layout.numbers:
        parts.append(torch.matmul(h[:, list(layout.numbers)], kernel[list(layout.number_rows)]))
    return sum(parts[1:], parts[0])


@keras.saving.register_keras_serializable(package="binomlab")
class IndexDense(keras.layers.Dense):
    """A ``Dense`` of ``layout.width`` inputs fed by the index form (:mod:`binomlab.layout`):
    ``x [batch, layout.n_inputs]`` → ``activation(Σ_f kernel[code_f] + numbers @
    kernel[number_rows] + bias)``, exactly the one-hot matrix times the kernel, without the
    matrix. Its weights (names, shapes, initialisation) are those of the ``Dense``, so a seed
    draws the same network as on the one-hot path. With ``layout.holes`` (the logistic's
    treatment design) a code ``-1`` adds nothing and ``layout.width`` may be 0.

    Parameters
    ----------
    units
        Output width.
    layout
        The :class:`~binomlab.layout.IndexLayout`, or its :meth:`~IndexLayout.to_dict` (what
        the config stores).
    **kwargs
        As for ``keras.layers.Dense``.
    """

    def __init__(self, units: int, *, layout: IndexLayout | dict[str, Any], **kwargs: Any):
        super().__init__(units, **kwargs)
        self.layout = layout if isinstance(layout, IndexLayout) else IndexLayout.from_dict(layout)

    def build(self, input_shape: tuple) -> None:
        super().build((*tuple(input_shape)[:-1], self.layout.width))
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: self.layout.n_inputs})

    def call(self, inputs: Any, training: Any = None) -> Any:
        kernel = _dense_gradient(self.kernel, inputs.dtype)
        out = _lookup(inputs, kernel, self.layout) + ops.cast(self.bias, inputs.dtype)
        return out if self.activation is None else self.activation(out)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*tuple(input_shape)[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "layout": self.layout.to_dict()}


@keras.saving.register_keras_serializable(package="binomlab")
class IndexLogPhiDense(LogPhiDense):
    """The :class:`~binomlab_keras.loss.LogPhiDense` head on index-form features (the
    logistic spec's codes): ``θ = Σ_f v[code_f] + numbers @ v[number_rows] + c``, exactly
    ``one_hot @ v + c``; ``v`` is ``[layout.width, 1]``.

    Parameters
    ----------
    layout
        The :class:`~binomlab.layout.IndexLayout` (or its dict) of the ``[h, logits]``
        input's ``h``, the codes.
    **kwargs
        As for :class:`~binomlab_keras.loss.LogPhiDense`.
    """

    def __init__(self, *, layout: IndexLayout | dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.layout = layout if isinstance(layout, IndexLayout) else IndexLayout.from_dict(layout)

    def build(self, input_shape: list[tuple]) -> None:
        super().build([(*tuple(input_shape[0])[:-1], self.layout.width), input_shape[1]])

    def call(self, inputs: list[Any]) -> Any:
        codes, logits = inputs
        z = ops.reshape(logits, (-1, 1))
        kernel = _dense_gradient(self.log_phi_kernel, codes.dtype)
        theta = _lookup(codes, kernel, self.layout) + ops.cast(self.log_phi, codes.dtype)
        return ops.concatenate([z, ops.cast(theta, z.dtype)], axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "layout": self.layout.to_dict()}


@keras.saving.register_keras_serializable(package="binomlab")
class LevelEmbeddings(keras.layers.Layer):
    """The index form's codes → one learned embedding per feature with levels (tables
    ``[levels_f, d_f]`` named ``table_0``, ..., initialised N(0, 0.01²) truncated at ±2σ, as
    fastai's tabular models), concatenated with the numeric columns: ``x [batch, n_inputs]``
    → ``[batch, Σd + numbers]``.

    Parameters
    ----------
    layout
        The :class:`~binomlab.layout.IndexLayout` (or its dict).
    embed
        ``MLP.embeddings``: ``"auto"``, an int or ``{feature: d}`` (kept, so that the spec
        reads back).
    seed
        Seeds the tables' initialiser (table ``j`` with ``seed + j``).
    """

    def __init__(
        self,
        *,
        layout: IndexLayout | dict[str, Any],
        embed: int | str | dict[str, int],
        seed: int = 0,
        name: str = EMBEDDINGS,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.layout = layout if isinstance(layout, IndexLayout) else IndexLayout.from_dict(layout)
        self.embed = dict(embed) if isinstance(embed, dict) else embed
        self.seed = int(seed)
        self.dims = embedding_dims(self.embed, self.layout)
        self.width = sum(self.dims) + len(self.layout.numbers)
        self.tables = [
            self.add_weight(
                shape=(levels, d),
                initializer=keras.initializers.TruncatedNormal(stddev=0.01, seed=self.seed + j),
                trainable=True,
                name=f"table_{j}",
            )
            for j, (levels, d) in enumerate(zip(self.layout.levels, self.dims, strict=True))
        ]

    def call(self, inputs: Any) -> Any:
        layout = self.layout
        parts = []
        if layout.codes:
            codes = ops.cast(ops.take(inputs, list(layout.codes), axis=1), "int32")
            local = codes - ops.convert_to_tensor(np.asarray(layout.firsts, np.int32))
            parts = [
                ops.take(_dense_gradient(table, inputs.dtype), local[:, j], axis=0)
                for j, table in enumerate(self.tables)
            ]
        if layout.numbers:
            parts.append(ops.take(inputs, list(layout.numbers), axis=1))
        return ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*tuple(input_shape)[:-1], self.width)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "layout": self.layout.to_dict(),
            "embed": self.embed,
            "seed": self.seed,
        }


def _dense(
    units: int,
    fan_in: int,
    *,
    activation: str | None,
    name: str,
    seed: int,
    dtype: str,
    layout: IndexLayout | None = None,
) -> keras.layers.Dense:
    bound = 1.0 / math.sqrt(max(fan_in, 1))  # fan_in 0: a logistic of reference levels only
    extra: dict[str, Any] = {} if layout is None else {"layout": layout}
    return (keras.layers.Dense if layout is None else IndexDense)(
        units,
        activation=activation,
        name=name,
        dtype=dtype,
        **extra,
        # U(±1/√fan_in) for both, as torch.nn.Linear
        kernel_initializer=keras.initializers.VarianceScaling(
            scale=1.0 / 3.0, mode="fan_in", distribution="uniform", seed=seed
        ),
        bias_initializer=keras.initializers.RandomUniform(-bound, bound, seed=seed + 1),
    )


def build_model(
    spec: ModelSpec,
    input_dim: int,
    *,
    seed: int = 0,
    dtype: str = "float32",
    layout: IndexLayout | None = None,
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
    layout
        The index form's layout (``input_dim == layout.n_inputs``): an MLP's first hidden
        layer is an :class:`IndexDense` of ``layout.width`` weight rows, or with
        ``spec.embed`` a :class:`LevelEmbeddings` layer comes first; the logistic spec's
        ``logit`` layer is the :class:`IndexDense` (its layout may have holes). None:
        one-hot inputs.

    Returns
    -------
    keras.Model
        ``X [batch, d] -> logits [batch, 1]``; hidden layers are named ``hidden_1``, ...,
        dropout layers ``dropout_1``, ..., the last layer ``logit``, the embeddings
        ``embeddings``.

    Raises
    ------
    ValueError
        A layout of another input width, an MLP's layout with holes; an embedding spec
        without a layout.
    """
    seed = int(seed) * 1_000
    inputs = keras.Input(shape=(int(input_dim),), dtype=dtype, name="x")
    x, width = inputs, int(input_dim)
    embed = getattr(spec, "embed", None)
    linear = layout if spec.kind == "logistic" else None  # the logit layer looks up codes
    check_network_inputs(spec.kind, embed, width, layout)
    if embed is not None:
        embeddings = LevelEmbeddings(
            layout=layout, embed=spec.embeddings, seed=seed + 500, dtype=dtype
        )
        x, width, layout = embeddings(x), embeddings.width, None  # Dense layers follow
    if isinstance(spec, MLP):
        for i, units in enumerate(spec.hidden, start=1):
            first = layout if i == 1 else None
            x = _dense(
                units,
                width if first is None else first.width,
                activation=spec.activation,
                name=f"hidden_{i}",
                seed=seed + 10 * i,
                dtype=dtype,
                layout=first,
            )(x)
            if spec.dropout > 0:
                x = keras.layers.Dropout(
                    spec.dropout, seed=seed + 10 * i + 5, name=f"dropout_{i}", dtype=dtype
                )(x)
            width = units
    fan_in = width if linear is None else linear.width
    outputs = _dense(
        1, fan_in, activation=None, name=OUTPUT, seed=seed + 1, dtype=dtype, layout=linear
    )(x)
    return keras.Model(inputs, outputs, name=f"binomlab_{spec.kind}")


def forward(model: keras.Model, x: Any) -> Any:
    """``model(x, training=False)``, the logits ``[batch, 1]`` as a backend tensor.

    On the torch backend Keras's ``ops.matmul`` computes float64 products in float32 (it
    follows JAX's default type promotion); a float64 model there runs its ``Dense`` layers
    with ``torch.matmul`` instead, so that its logits and gradients keep float64 precision.
    """
    if keras.backend.backend() != "torch" or model.inputs[0].dtype != "float64":
        return model(x, training=False)
    *hidden, last = stack_layers(model)
    h = _torch_hidden(hidden, keras.ops.convert_to_tensor(x, dtype="float64"))
    return _torch_dense(last, h)


def _torch_dense(layer: keras.layers.Dense, h: Any) -> Any:
    """A ``Dense`` (or :class:`IndexDense`: a lookup) without its activation, on a float64
    torch tensor."""
    import torch

    kernel = layer.kernel.value
    if isinstance(layer, IndexDense):
        return _torch_lookup(h, kernel, layer.layout) + layer.bias.value
    return torch.matmul(h, kernel) + layer.bias.value


def stack_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers that compute (embeddings, ``Dense``), in order: dropout is the identity
    at inference."""
    return [
        layer for layer in model.layers if isinstance(layer, keras.layers.Dense | LevelEmbeddings)
    ]


def _torch_hidden(layers: list[keras.layers.Layer], h: Any) -> Any:
    """The hidden layers on a float64 torch tensor, products by ``torch.matmul``."""
    for layer in layers:
        if isinstance(layer, LevelEmbeddings):
            h = layer.call(h)  # lookups and a concatenation: no product
            continue
        h = layer.activation(_torch_dense(layer, h))
    return h


def with_phi_head(model: keras.Model) -> keras.Model:
    """``model`` with a :class:`~binomlab_keras.loss.LogPhiDense` on the input of its logit
    layer (the last hidden layer, or the features for the logistic spec; an
    :class:`IndexLogPhiDense` when those are the index form's codes): ``X [batch, d] ->
    [z, log φ] [batch, 2]``, sharing ``model``'s layers."""
    logit = model.get_layer(OUTPUT)
    dtype = model.inputs[0].dtype
    if isinstance(logit, IndexDense):
        head: LogPhiDense = IndexLogPhiDense(layout=logit.layout, dtype=dtype)
    else:
        head = LogPhiDense(dtype=dtype)
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

    *hidden, last = stack_layers(pair)
    head = next(layer for layer in pair.layers if isinstance(layer, LogPhiDense))
    h = _torch_hidden(hidden, keras.ops.convert_to_tensor(x, dtype="float64"))
    z = _torch_dense(last, h)
    if isinstance(head, IndexLogPhiDense):
        theta = _torch_lookup(h, head.log_phi_kernel.value, head.layout)
    else:
        theta = torch.matmul(h, head.log_phi_kernel.value)
    theta = theta + head.log_phi.value
    return torch.cat([z, theta], dim=-1)


def set_output_bias(model: keras.Model, value: float) -> None:
    """Set the output bias, e.g. to the logit of the overall success rate."""
    bias = model.get_layer(OUTPUT).bias
    bias.assign(np.full(tuple(bias.shape), value, dtype=bias.dtype))


def kernels(model: keras.Model) -> list[keras.Variable]:
    """The weight matrices and embedding tables (not the biases): what weight decay applies
    to."""
    out: list[keras.Variable] = []
    for layer in stack_layers(model):
        out += layer.tables if isinstance(layer, LevelEmbeddings) else [layer.kernel]
    return out


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
            keras.layers.Dense
            | keras.layers.Dropout
            | keras.layers.InputLayer
            | LogPhiDense
            | LevelEmbeddings,
        )
    ]
    embeddings = [layer for layer in model.layers if isinstance(layer, LevelEmbeddings)]
    if not dense or dense[-1].name != OUTPUT or dense[-1].units != 1 or others:
        msg = (
            f"The Keras model {model.name!r} is not a binomlab network: expected Dense layers "
            f"ending in one named {OUTPUT!r} with 1 unit, and Dropout layers only."
        )
        raise ModelFileError(msg)
    if len(dense) == 1 and not embeddings:
        return Logistic()
    activations = {keras.activations.serialize(layer.activation) for layer in dense[:-1]}
    if len(activations) != 1 or next(iter(activations)) not in ACTIVATIONS:
        msg = f"The hidden layers of {model.name!r} use activations {sorted(activations)}."
        raise ModelFileError(msg)
    return MLP(
        hidden=tuple(layer.units for layer in dense[:-1]),
        activation=next(iter(activations)),
        dropout=dropout[0].rate if dropout else 0.0,
        embed=embeddings[0].embed if embeddings else None,
    )
