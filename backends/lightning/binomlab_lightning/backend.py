"""``LightningBackend``: the ``lightning`` entry of the ``binomlab.backends`` registry.

This module imports neither torch nor Lightning, so listing backends (and opening the Lab)
stays cheap; the framework is imported when a session is opened or versions are asked for.
The training rules are the core's (:meth:`binomlab.backends.protocol.Backend.fit`);
:class:`~binomlab_lightning.session.LightningSession` is the framework glue.
"""

from __future__ import annotations

import os
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
            An unknown option, an option of a type the Trainer does not take (e.g. a
            ``logger`` that is neither a bool nor Lightning loggers, an
            ``enable_checkpointing`` that is not a bool), or a Trainer option given with
            ``optimizer="lbfgs"``.
        """
        given = super().resolve_options(config)
        for name, value in given.items():
            _check_type(name, value)
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


def _check_type(name: str, value: Any) -> None:
    """Refuse an option of a type the ``Trainer`` does not take, which it would accept
    without a word (a string ``enable_checkpointing`` read as true) or fail on deep inside
    ``fit`` (a ``logger`` that is a dict). Lightning checks the values of the right types.
    Its classes are imported only for a value that is not a plain one."""
    plain = isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    if name == "enable_checkpointing":
        ok, expected = isinstance(value, bool), "True or False"
    elif name == "default_root_dir":
        ok, expected = value is None or isinstance(value, str | os.PathLike), "a path or None"
    elif name == "logger":
        expected = "True, False, a Lightning Logger or a list of them"
        ok = isinstance(value, bool) or _all_instances(value, "lightning.pytorch.loggers", "Logger")
    elif name == "devices":
        expected = "an int, a str (e.g. 'auto', '0,1') or a list of device indices"
        ok = plain or (
            isinstance(value, list | tuple)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        )
    elif name == "precision":
        ok = plain or value is None
        expected = "a str (e.g. '32-true', 'bf16-mixed'), an int (e.g. 64) or None"
    else:  # accelerator, strategy: a name or Lightning's object
        cls = {"accelerator": "Accelerator", "strategy": "Strategy"}[name]
        module = "lightning.pytorch." + ("accelerators" if cls == "Accelerator" else "strategies")
        expected = f"a str or a Lightning {cls}"
        ok = isinstance(value, str) or _all_instances([value], module, cls)
    if not ok:
        msg = (
            f"The lightning backend's option {name} must be {expected}. "
            f"Received: {name}={value!r} ({type(value).__name__})"
        )
        raise BinomlabError(msg)


def _all_instances(values: Any, module: str, cls: str) -> bool:
    """Whether ``values`` is one instance of ``module.cls`` or a list or tuple of them
    (imported here: the backend module itself imports no framework)."""
    import importlib

    base = getattr(importlib.import_module(module), cls)
    if isinstance(values, base):
        return True
    return isinstance(values, list | tuple) and all(isinstance(v, base) for v in values)
