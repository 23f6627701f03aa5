"""``KerasNetwork``: a Keras model of a binomlab spec as binomlab's
:class:`~binomlab.backends.protocol.Network` (predict logits, export), and :func:`load_native`,
which reads one back from ``model.keras``."""

from __future__ import annotations

import math
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

    Through Keras's compiled predict step (``predict_on_batch``: a traced ``tf.function`` on
    TensorFlow, jitted on JAX), three to four times faster than calling the model eagerly,
    which matters because the core evaluates every training group after every epoch. Chunks
    are padded to a power of two rows (at most :data:`CHUNK`), so a run traces a few shapes
    only. A float64 model on torch goes through ``eager`` (:func:`~binomlab_keras.model.forward`:
    Keras's torch matmul would compute float64 in float32)."""
    X = np.asarray(X, dtype=model.inputs[0].dtype)
    rows = X.shape[0]
    if keras.backend.backend() == "torch" and model.inputs[0].dtype == "float64":
        parts = [eager(model, x) for x in chunks(model, X)]
        return np.concatenate([np.asarray(ops.convert_to_numpy(p), np.float64) for p in parts])
    size = min(CHUNK, 1 << max(rows - 1, 0).bit_length())
    out = []
    for start in range(0, max(rows, 1), size):
        part = X[start : start + size]
        padded = np.zeros((size, X.shape[1]), X.dtype)
        padded[: len(part)] = part
        out.append(np.asarray(model.predict_on_batch(padded), np.float64)[: len(part)])
    return np.concatenate(out)[:rows]


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
