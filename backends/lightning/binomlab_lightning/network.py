"""``LightningNetwork``: a :class:`~binomlab_lightning.module.BinomialNet` as binomlab's
:class:`~binomlab.backends.protocol.Network` (predict logits, export), and
:func:`load_native`, which reads one back from its native files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from binomlab.backends.protocol import Network, check_encoded
from binomlab.specs import ModelSpec
from binomlab_lightning.export import export_onnx, read_native, save_native
from binomlab_lightning.loss import BetaBinomialNLLWithLogits
from binomlab_lightning.module import CHUNK

__all__ = ["LightningNetwork", "load_native"]


class LightningNetwork(Network):
    """A :class:`~binomlab_lightning.module.BinomialNet` as a binomlab network.

    Attributes
    ----------
    net
        The ``torch.nn.Module``: ``X [batch, d] -> logits [batch]``, on any device.
    spec, input_dim
        What it was built from.
    phi
        The beta-binomial concentration ``φ`` of the scalar model (read from ``criterion``
        while it trains), None for the binomial loss and for a network with a ``log φ`` head
        (``net.phi_head``). A scalar ``φ`` is not part of ``net``: the network maps features
        to the logit of the mean either way.
    """

    def __init__(
        self,
        net: nn.Module,
        spec: ModelSpec,
        input_dim: int,
        *,
        phi: float | None = None,
        criterion: BetaBinomialNLLWithLogits | None = None,
    ) -> None:
        self.net = net
        self.spec = spec
        self.input_dim = int(input_dim)
        self.stop_reason = "completed"
        self._phi = None if phi is None else float(phi)
        self._criterion = criterion

    @property
    def phi(self) -> float | None:
        return self._criterion.phi if self._criterion is not None else self._phi

    @property
    def phi_output(self) -> bool:
        """True when ``net`` has a ``log φ`` head."""
        return getattr(self.net, "phi_head", None) is not None

    @property
    def n_params(self) -> int:
        """Trainable parameters of the network, plus one for a learned scalar ``φ``."""
        count = sum(p.numel() for p in self.net.parameters() if p.requires_grad)
        return count + (self.phi is not None)

    def predict_logits(self, X: np.ndarray) -> np.ndarray:
        """Logits, float64 ``[rows]``, for ``X [rows, d]`` (inference mode).

        Raises
        ------
        BinomlabError
            ``X`` is not 2-D with ``d`` columns.
        """
        return self._run(X, self.net)

    def predict_log_phi(self, X: np.ndarray) -> np.ndarray | None:
        """``log φ``, float64 ``[rows]``: the network's head, or the scalar ``φ`` repeated;
        None for the binomial loss."""
        if not self.phi_output:
            return super().predict_log_phi(X)
        return self._run(X, lambda x: self.net.forward_with_log_phi(x)[1])

    def _run(self, X: np.ndarray, forward: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
        """``forward`` over ``X [rows, d]`` in chunks, in inference mode, on the network's
        device; float64 ``[rows]``. The network's train/eval mode is put back after."""
        X = check_encoded(X, self.input_dim)
        parameter = next(self.net.parameters())
        was_training = self.net.training
        self.net.eval()
        out = np.empty(X.shape[0], dtype=np.float64)
        try:
            with torch.inference_mode():
                for start in range(0, X.shape[0], CHUNK):
                    x = torch.from_numpy(np.require(X[start : start + CHUNK], None, ["C", "W"]))
                    x = x.to(device=parameter.device, dtype=parameter.dtype)
                    out[start : start + CHUNK] = forward(x).double().cpu().numpy()
        finally:
            self.net.train(was_training)
        return out

    def export_onnx(self, path: Path) -> None:
        export_onnx(self.net, self.input_dim, path)

    def save_native(self, directory: Path) -> list[str]:
        return save_native(self.net, self.spec, self.input_dim, directory, phi=self.phi)

    def __repr__(self) -> str:
        phi = "" if self.phi is None else f", phi={self.phi:.4g}"
        return (
            f"LightningNetwork({self.spec}, input_dim={self.input_dim}, "
            f"stop_reason={self.stop_reason!r}{phi})"
        )


def load_native(directory: str | Path) -> LightningNetwork:
    """Rebuild the network written by :meth:`LightningNetwork.save_native`.

    Raises
    ------
    ModelFileError
        A file is missing, or the description or weights do not match.
    """
    net, spec, input_dim, phi = read_native(directory)
    return LightningNetwork(net, spec, input_dim, phi=phi)
