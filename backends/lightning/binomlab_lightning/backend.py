"""``LightningBackend``: the ``lightning`` entry of the ``binomlab.backends`` registry.

This module imports neither torch nor Lightning, so listing backends (and opening the Lab)
stays cheap; the framework is imported when a session is opened or versions are asked for.
The training rules are the core's (:meth:`binomlab.backends.protocol.Backend.fit`);
:class:`~binomlab_lightning.session.LightningSession` is the framework glue.
"""

from __future__ import annotations

from typing import Any, ClassVar

from binomlab.backends.protocol import (
    LOSSES,
    OPTIMIZERS,
    PHI_MODELS,
    Backend,
    Session,
    TrainConfig,
    TrainData,
)
from binomlab.errors import BinomlabError
from binomlab.specs import ModelSpec

__all__ = ["OPTIONS", "LightningBackend"]

OPTIONS = (
    "accelerator",
    "default_root_dir",
    "devices",
    "enable_checkpointing",
    "logger",
    "precision",
    "strategy",
)
LBFGS_ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
"""Accelerators L-BFGS accepts; ``"mps"`` computes on the CPU (Apple's MPS has no float64)."""
_DEFAULTS = {
    "accelerator": "auto",
    "devices": 1,
    "strategy": "auto",
    "precision": "32-true",
    "logger": False,
    "enable_checkpointing": False,
}


class LightningBackend(Backend):
    """Trains binomlab specs with PyTorch Lightning (CPU or GPU, optionally DDP).

    Options (``bl.fit(..., backend="lightning", **options)``), passed to the ``Trainer`` that
    runs Adam/AdamW: ``accelerator`` (default ``"auto"``), ``devices`` (default 1),
    ``strategy`` (e.g. ``"ddp"`` with ``devices=2``; default ``"auto"``), ``precision``
    (default ``"32-true"``), ``default_root_dir``, ``enable_checkpointing`` and ``logger``
    (both off by default, so nothing is written). L-BFGS runs in this process in float64 on
    the accelerator's device (a CUDA GPU when there is one and ``accelerator`` is ``"auto"``,
    ``"gpu"`` or ``"cuda"``; else the CPU); the Trainer options do not apply to it.

    Losses: ``"binomial"`` and ``"beta-binomial"``; the latter trains ``θ = log φ`` (from
    ``log(100)``, not weight-decayed) jointly with the network, or, with ``phi="network"``, a
    ``log φ`` head on the network (the ONNX model's second output).
    """

    name: ClassVar[str] = "lightning"
    specs: ClassVar[tuple[str, ...]] = ("logistic", "mlp")
    optimizers: ClassVar[tuple[str, ...]] = OPTIMIZERS
    options: ClassVar[tuple[str, ...]] = OPTIONS
    losses: ClassVar[tuple[str, ...]] = LOSSES
    phi_models: ClassVar[tuple[str, ...]] = PHI_MODELS
    index_inputs: ClassVar[tuple[str, ...]] = ("mlp", "logistic")

    def versions(self) -> dict[str, str]:
        import lightning
        import torch

        return {"torch": torch.__version__, "lightning": lightning.__version__}

    def resolve_options(self, config: TrainConfig) -> dict[str, Any]:
        """The Trainer options with their defaults. L-BFGS reads ``accelerator`` only: any
        other Trainer option set for it is an error, not silently dropped.

        Raises
        ------
        BinomlabError
            An unknown option, or a Trainer option given with ``optimizer="lbfgs"``.
        """
        given = super().resolve_options(config)
        if not config.deterministic:
            return {**_DEFAULTS, **given}
        accelerator = given.get("accelerator", "auto")
        if accelerator not in LBFGS_ACCELERATORS:
            msg = (
                f"optimizer={config.optimizer!r} runs on the CPU or a CUDA GPU: expected "
                f"accelerator to be one of {LBFGS_ACCELERATORS}. Received: {accelerator=}"
            )
            raise BinomlabError(msg)
        unused = sorted(k for k, v in given.items() if k != "accelerator" and v != _DEFAULTS[k])
        if unused:
            msg = (
                f"optimizer={config.optimizer!r} runs in this process without a Lightning "
                f"Trainer, so the Trainer option(s) {unused} do not apply to it (only "
                "accelerator does). Leave them out, or use optimizer='adam'."
            )
            raise BinomlabError(msg)
        return {**_DEFAULTS, **given}

    def session(self, train: TrainData, spec: ModelSpec, config: TrainConfig) -> Session:
        from binomlab_lightning.session import LightningSession

        return LightningSession(train, spec, config)
