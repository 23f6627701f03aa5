"""Export a trained :class:`~binomlab_lightning.module.BinomialNet`: ONNX for serving, and
safetensors weights plus a JSON description (read back by
:func:`~binomlab_lightning.network.load_native`).

Nothing here unpickles: the native format is ``weights.safetensors`` (tensors only) and
``network.json`` (the spec, the input width, the index layout of the first layer if it has
one, and the dtype).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from binomlab.errors import BinomlabError, ModelFileError
from binomlab.layout import IndexLayout
from binomlab.specs import ModelSpec, spec_from_dict
from binomlab_lightning.module import BinomialNet, Embeddings, IndexLinear, build_network

__all__ = ["NATIVE_FILES", "export_onnx", "read_native", "save_native"]

FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
DESCRIPTION = "network.json"
NATIVE_FILES = (WEIGHTS, DESCRIPTION)
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class _Float32Logits(nn.Module):
    """float32 ``x [batch, d]`` → float32 logits ``[batch]``, whatever the net's dtype."""

    def __init__(self, net: BinomialNet, dtype: torch.dtype) -> None:
        super().__init__()
        self.net = net
        self.dtype = dtype

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.to(self.dtype)).to(torch.float32)


class _Float32LogitsAndLogPhi(_Float32Logits):
    """float32 ``x [batch, d]`` → float32 ``(logits [batch], log φ [batch])``."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        z, log_phi = self.net.forward_with_log_phi(x.to(self.dtype))
        return z.to(torch.float32), log_phi.to(torch.float32)


def export_onnx(net: BinomialNet, input_dim: int, path: str | Path) -> None:
    """Write ``net`` as a single-file ONNX model with ``torch.onnx.export(dynamo=True)``.

    The graph has one input ``x``: float32 ``[batch, input_dim]`` with a dynamic batch
    dimension, and one output ``logit``: float32 ``[batch]``, followed by ``log_phi``
    (float32 ``[batch]``) for a net with a ``log φ`` head. A float64 net casts inside the
    graph.
    """
    dtype = next(net.parameters()).dtype
    phi_output = getattr(net, "phi_head", None) is not None
    wrapper = (_Float32LogitsAndLogPhi if phi_output else _Float32Logits)(net, dtype).eval()
    example = (torch.zeros(2, int(input_dim), dtype=torch.float32),)
    was_training = net.training
    net.eval()
    try:
        with _quiet_exporter():
            torch.onnx.export(
                wrapper,
                example,
                str(path),
                dynamo=True,
                input_names=["x"],
                output_names=["logit", "log_phi"] if phi_output else ["logit"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                external_data=False,
                verbose=False,
            )
    finally:
        net.train(was_training)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter prints its progress, logs that torchvision is missing and trips torch's
    own pytree deprecation warning: keep the caller's output clean."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def save_native(
    net: BinomialNet,
    spec: ModelSpec,
    input_dim: int,
    directory: str | Path,
    *,
    phi: float | None = None,
) -> list[str]:
    """Write ``weights.safetensors`` and ``network.json`` into ``directory``; return their names.

    ``phi``, the beta-binomial concentration of a model trained with that loss, is kept in
    ``network.json``."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: t.detach().cpu().contiguous() for name, t in net.state_dict().items()}
    dtype = next(net.parameters()).dtype
    save_file(state, str(directory / WEIGHTS), metadata={"format": "pt"})
    first = net.layers[0]
    layout = first.layout.to_dict() if isinstance(first, IndexLinear | Embeddings) else None
    description = {
        "format_version": FORMAT_VERSION,
        "spec": spec.to_dict(),
        "input_dim": int(input_dim),
        "layout": layout,
        "dtype": str(dtype).removeprefix("torch."),
        "phi": None if phi is None else float(phi),
        "phi_output": net.phi_head is not None,
        "torch": torch.__version__,
    }
    (directory / DESCRIPTION).write_text(json.dumps(description, indent=2))
    return list(NATIVE_FILES)


def read_native(directory: str | Path) -> tuple[BinomialNet, ModelSpec, int, float | None]:
    """Read the files written by :func:`save_native`.

    Returns
    -------
    (net, spec, input_dim, phi)
        The network in evaluation mode, its spec, input width and scalar ``φ`` (or None).

    Raises
    ------
    ModelFileError
        A file is missing, or the description or weights do not match.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    missing = [name for name in NATIVE_FILES if not (directory / name).is_file()]
    if missing:
        msg = f"{directory} is not a binomlab-lightning model: {missing} not found."
        raise ModelFileError(msg)
    try:
        description = json.loads((directory / DESCRIPTION).read_text())
        spec = spec_from_dict(description["spec"])
        input_dim = int(description["input_dim"])
        dtype = _DTYPES[description.get("dtype", "float32")]
        phi = description.get("phi")
        phi = None if phi is None else float(phi)
        phi_output = bool(description.get("phi_output", False))
        layout = description.get("layout")
        layout = None if layout is None else IndexLayout.from_dict(layout)
    except (KeyError, ValueError, TypeError, BinomlabError) as err:
        msg = f"Unreadable {directory / DESCRIPTION}: {type(err).__name__}: {err}"
        raise ModelFileError(msg) from err
    try:
        net = build_network(spec, input_dim, phi_output=phi_output, layout=layout).to(dtype)
    except ValueError as err:
        msg = f"Unreadable {directory / DESCRIPTION}: {err}"
        raise ModelFileError(msg) from err
    try:
        net.load_state_dict(load_file(str(directory / WEIGHTS)), strict=True)
    except RuntimeError as err:
        msg = f"The weights in {directory / WEIGHTS} do not fit the {spec} spec: {err}"
        raise ModelFileError(msg) from err
    return net.eval(), spec, input_dim, phi
