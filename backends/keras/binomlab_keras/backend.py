"""``KerasBackend``: the ``keras`` entry of the ``binomlab.backends`` registry.

This module imports no Keras (nor TensorFlow, torch or JAX), so listing backends (and opening
the Lab) stays cheap; Keras is imported when options are resolved, a session is opened or
versions are asked for. The training rules are the core's
(:meth:`binomlab.backends.protocol.Backend.fit`);
:class:`~binomlab_keras.session.KerasSession` is the framework glue.
"""

from __future__ import annotations

import importlib
import sys
from numbers import Integral
from typing import Any, ClassVar

import numpy as np

from binomlab._random_state import keep_random_state
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

__all__ = [
    "OPTIONS",
    "STEPS_PER_EXECUTION",
    "KerasBackend",
    "default_steps_per_execution",
    "import_keras",
]

OPTIONS = ("jit_compile", "steps_per_execution")
STEPS_PER_EXECUTION = 32
"""Adam/AdamW mini-batches per call of the compiled train step, by default, where Keras can
run several (TensorFlow, JAX; its torch backend runs one). binomlab's rules run at epoch
ends, so nothing needs Keras's per-batch hooks; a 256-group epoch of the flights MLP takes
0.07 s instead of 0.11 s on two CPU cores. The updates are the same."""


def import_keras() -> Any:
    """``keras``, its first import done without touching the caller's global random state
    (importing Keras draws from NumPy's global generator)."""
    if "keras" not in sys.modules:
        with keep_random_state():
            importlib.import_module("keras")
    return sys.modules["keras"]


def default_steps_per_execution() -> int:
    """:data:`STEPS_PER_EXECUTION`, or 1 under Keras's torch backend (which refuses more)."""
    return 1 if import_keras().backend.backend() == "torch" else STEPS_PER_EXECUTION


class KerasBackend(Backend):
    """Trains binomlab specs with Keras 3 on its running backend (TensorFlow by default).

    Options (``bl.fit(..., backend="keras", **options)``), passed to ``model.compile`` for
    Adam/AdamW: ``jit_compile`` (default False) and ``steps_per_execution`` (default
    :data:`STEPS_PER_EXECUTION` = 32 on TensorFlow and JAX, 1 on torch, the only value Keras
    accepts there); L-BFGS, the core's driver, does not compile a train step, so they do not
    apply to it.

    Adam's ``weight_decay`` is an L2 penalty ``weight_decay/2·Σ‖W‖²`` on the weight matrices
    (as PyTorch's Adam), AdamW's is decoupled and spares the biases. L-BFGS computes the
    full-batch objective in float64 (dropout off: the objective must be deterministic).

    Losses: ``"binomial"`` and ``"beta-binomial"`` (``θ = log φ`` trained jointly with the
    weights, excluded from weight decay); with ``phi="network"`` a
    :class:`~binomlab_keras.loss.LogPhiDense` head (not decayed either) gives ``θ`` per row.

    MLPs take the index form (``index_inputs``): codes looked up by the first layer
    (:class:`~binomlab_keras.model.IndexDense`), or learned embeddings with ``MLP(embed=...)``
    (:class:`~binomlab_keras.model.LevelEmbeddings`, whose tables are weight-decayed like
    the kernels).
    """

    name: ClassVar[str] = "keras"
    specs: ClassVar[tuple[str, ...]] = ("logistic", "mlp")
    optimizers: ClassVar[tuple[str, ...]] = OPTIMIZERS
    options: ClassVar[tuple[str, ...]] = OPTIONS
    losses: ClassVar[tuple[str, ...]] = LOSSES
    phi_models: ClassVar[tuple[str, ...]] = PHI_MODELS
    index_inputs: ClassVar[tuple[str, ...]] = ("mlp", "logistic")

    def versions(self) -> dict[str, str]:
        """``keras``, ``keras_backend`` (its name) and the version of that framework."""
        keras = import_keras()
        backend = keras.backend.backend()
        versions = {"keras": keras.__version__, "keras_backend": backend}
        if backend in ("tensorflow", "torch", "jax"):
            versions[backend] = importlib.import_module(backend).__version__
        return versions

    def resolve_options(self, config: TrainConfig) -> dict[str, Any]:
        """``jit_compile`` and ``steps_per_execution``, checked, defaults filled.

        Raises
        ------
        BinomlabError
            An unknown option, or a value of the wrong kind.
        """
        options = super().resolve_options(config)
        jit = options.get("jit_compile", False)
        if not (isinstance(jit, bool | np.bool_) or (isinstance(jit, str) and jit == "auto")):
            msg = f"Expected jit_compile to be True, False or 'auto'. Received: jit_compile={jit!r}"
            raise BinomlabError(msg)
        if jit != "auto":
            jit = bool(jit)  # np.bool_ too
        steps = options.get("steps_per_execution")
        steps = default_steps_per_execution() if steps is None else steps
        if isinstance(steps, bool | np.bool_) or not isinstance(steps, Integral) or steps < 1:
            msg = (
                "Expected steps_per_execution to be a positive integer. "
                f"Received: steps_per_execution={steps!r}"
            )
            raise BinomlabError(msg)
        return {"jit_compile": jit, "steps_per_execution": int(steps)}

    def session(self, train: TrainData, spec: ModelSpec, config: TrainConfig) -> Session:
        import_keras()
        from binomlab_keras.session import KerasSession

        return KerasSession(train, spec, config)
