"""``KerasNetwork``: a Keras model of a binomlab spec as binomlab's
:class:`~binomlab.backends.protocol.Network` (predict logits, export), and :func:`load_native`,
which reads one back from ``model.keras``."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from binomlab.backends.protocol import Network, check_encoded
from binomlab.specs import ModelSpec
from binomlab_keras.export import export_onnx, read_native, save_native
from binomlab_keras.loss import LogPhi
from binomlab_keras.model import forward, forward_pair, split_pair
from binomlab_keras.tf_function import per_model_function

__all__ = ["CHUNK", "KerasNetwork", "chunks", "load_native", "logits", "logits_and_log_phi"]

CHUNK = 65_536
"""Groups per forward pass when evaluating or predicting."""


def chunks(model: keras.Model, X: np.ndarray) -> list[Any]:
    """``X [rows, d]`` as tensors of at most :data:`CHUNK` rows in the model's dtype."""
    dtype = model.inputs[0].dtype
    return [
        ops.convert_to_tensor(np.asarray(X[start : start + CHUNK], dtype=dtype))
        for start in range(0, max(X.shape[0], 1), CHUNK)
    ]


def _outputs(model: keras.Model, X: np.ndarray, eager: Any) -> np.ndarray:
    """The model's outputs in inference mode, float64 ``[rows, outputs]``.

    The core evaluates every training and validation group after every epoch, so this is
    compiled, not eager (calling the model eagerly is three to four times slower): on
    TensorFlow one ``tf.function`` per model whose input has any number of rows
    (:func:`_traced`), traced once per fit and fed chunks of at most :data:`CHUNK` rows as
    they are; on JAX Keras's jitted predict step (``predict_on_batch``) on chunks padded (with
    their first row) to a power of two rows, so that a run compiles a few shapes only. A
    float64 model on torch goes through ``eager`` (:func:`~binomlab_keras.model.forward`:
    Keras's torch matmul would compute float64 in float32)."""
    X = np.asarray(X, dtype=model.inputs[0].dtype)
    rows = X.shape[0]
    backend = keras.backend.backend()
    if backend == "torch" and model.inputs[0].dtype == "float64":
        parts = [eager(model, x) for x in chunks(model, X)]
        return np.concatenate([np.asarray(ops.convert_to_numpy(p), np.float64) for p in parts])
    if backend == "tensorflow":
        traced = _traced(model)
        parts = [traced(X[start : start + CHUNK]) for start in range(0, max(rows, 1), CHUNK)]
        return np.concatenate([np.asarray(p, np.float64) for p in parts])
    size = min(CHUNK, 1 << max(rows - 1, 0).bit_length())
    out = []
    for start in range(0, max(rows, 1), size):
        part = X[start : start + size]
        padded = np.zeros((size, X.shape[1]), X.dtype)
        padded[: len(part)] = part
        if len(part):  # padded with a real row: zeros are no valid codes of the index form
            padded[len(part) :] = part[0]
        out.append(np.asarray(model.predict_on_batch(padded), np.float64)[: len(part)])
    return np.concatenate(out)[:rows]


_TRACED: weakref.WeakKeyDictionary[keras.Model, Callable[[np.ndarray], Any]] = (
    weakref.WeakKeyDictionary()
)


def _traced(model: keras.Model) -> Callable[[np.ndarray], Any]:
    """``model(x, training=False)`` as a ``tf.function`` whose input signature is
    ``[None, d]``: one trace serves every number of rows (Keras's ``predict_on_batch``
    retraces for a second shape, the validation groups', and needed padded chunks).
    Cached per model, which the function holds weakly (its graph holds the variables)."""
    traced = _TRACED.get(model)
    if traced is None:
        import tensorflow as tf

        ref = weakref.ref(model)
        spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], model.inputs[0].dtype)
        traced = per_model_function(
            lambda x: ref()(x, training=False), input_signature=[spec], autograph=False
        )
        _TRACED[model] = traced
    return traced


def logits(model: keras.Model, X: np.ndarray) -> np.ndarray:
    """The model's logits in inference mode, float64 ``[rows]``, for ``X [rows, d]``."""
    return _outputs(model, X, forward).reshape(-1)


def logits_and_log_phi(pair: keras.Model, X: np.ndarray) -> np.ndarray:
    """``[z, log φ]`` of a model with a φ head in inference mode, float64 ``[rows, 2]``."""
    return _outputs(pair, X, forward_pair).reshape(-1, 2)


class KerasNetwork(Network):
    """A Keras model of a binomlab spec.

    Attributes
    ----------
    model
        The ``keras.Model``: ``X [batch, d] -> logits [batch, 1]``.
    spec, input_dim
        What it was built from.
    phi
        The beta-binomial concentration ``φ`` of the scalar model (read from its
        :class:`~binomlab_keras.loss.LogPhi` layer while it trains), None for the binomial loss
        and with a φ head; not part of ``model``, which gives the logit of the mean either way.
    pair
        With ``phi="network"``: ``model`` with its :class:`~binomlab_keras.loss.LogPhiDense`
        head, ``X -> [z, log φ]`` ``[batch, 2]`` (sharing ``model``'s layers); else None.
    """

    def __init__(
        self,
        model: keras.Model,
        spec: ModelSpec,
        input_dim: int,
        *,
        phi: float | None = None,
        pair: keras.Model | None = None,
        phi_layer: LogPhi | None = None,
    ) -> None:
        self.model = model
        self.spec = spec
        self.input_dim = int(input_dim)
        self.stop_reason = "completed"
        self._phi = None if phi is None else float(phi)
        self._phi_layer = phi_layer
        self.pair = pair

    @property
    def phi(self) -> float | None:
        return self._phi_layer.phi if self._phi_layer is not None else self._phi

    @property
    def phi_output(self) -> bool:
        """True when the network has a φ head (:attr:`pair`)."""
        return self.pair is not None

    @property
    def n_params(self) -> int:
        """Trainable parameters of the model (and its φ head), plus one for a scalar ``φ``."""
        variables = (self.pair or self.model).trainable_variables
        return sum(math.prod(v.shape) for v in variables) + (self.phi is not None)

    def predict_log_phi(self, X: np.ndarray) -> np.ndarray | None:
        """``log φ``, float64 ``[rows]``: the φ head's, or the scalar ``φ`` repeated; None for
        the binomial loss."""
        if self.pair is None:
            return super().predict_log_phi(X)
        X = check_encoded(X, self.input_dim)
        return logits_and_log_phi(self.pair, X)[:, 1]

    def predict_logits(self, X: np.ndarray) -> np.ndarray:
        """Logits, float64 ``[rows]``, for ``X [rows, d]`` (inference mode: no dropout).

        Raises
        ------
        BinomlabError
            ``X`` is not 2-D with ``d`` columns.
        """
        X = check_encoded(X, self.input_dim)
        return logits(self.model, X)

    def export_onnx(self, path: Path) -> None:
        export_onnx(self.model, path, head=None if self.pair is None else split_pair(self.pair)[1])

    def save_native(self, directory: Path) -> list[str]:
        return save_native(self.pair or self.model, directory, phi=self.phi)

    def __repr__(self) -> str:
        phi = "" if self.phi is None else f", phi={self.phi:.4g}"
        return (
            f"KerasNetwork({self.spec}, input_dim={self.input_dim}, "
            f"stop_reason={self.stop_reason!r}{phi})"
        )


def load_native(directory: str | Path) -> KerasNetwork:
    """Load the network written by :meth:`KerasNetwork.save_native` with ``safe_mode=True``.

    Raises
    ------
    ModelFileError
        ``model.keras`` is missing, unreadable, or not a binomlab network.
    """
    model, spec, phi, pair = read_native(directory)
    return KerasNetwork(model, spec, int(model.inputs[0].shape[-1]), phi=phi, pair=pair)
