"""``LightningBackend``: the ``lightning`` entry of the ``binomlab.backends`` registry.

It follows the training rules of :mod:`binomlab.protocol`: a Lightning ``Trainer`` fits a
:class:`~binomlab_lightning.module.BinomialModule`, and :class:`ProgressMonitor` (a Lightning
callback) reports every epoch to binomlab's callback, keeps the best weights and stops
training when asked to.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher
from torch import nn

from binomlab._random_state import keep_random_state
from binomlab.errors import BinomlabError
from binomlab.protocol import (
    LOSSES,
    OPTIMIZERS,
    PHI_MODELS,
    Backend,
    BestEpoch,
    Network,
    ProgressCallback,
    TrainConfig,
    TrainData,
    check_config,
    check_encoded,
)
from binomlab.specs import ModelSpec
from binomlab_lightning.data import GroupTensors
from binomlab_lightning.export import export_onnx, save_native
from binomlab_lightning.module import (
    CHUNK,
    DEFAULT_BATCH_SIZE,
    DEFAULT_LR,
    BinomialModule,
    BinomialNet,
    build_network,
)

__all__ = ["LightningBackend", "LightningNetwork", "ProgressMonitor"]

OPTIONS = (
    "accelerator",
    "default_root_dir",
    "devices",
    "enable_checkpointing",
    "logger",
    "precision",
    "strategy",
)
LBFGS_MAX_ITERATIONS = 500
ADAM_EPOCHS = 20


class LightningNetwork(Network):
    """A trained :class:`~binomlab_lightning.module.BinomialNet` on the CPU.

    Attributes
    ----------
    net
        The ``torch.nn.Module``: ``X [batch, d] -> logits [batch]``.
    spec, input_dim
        What it was built from.
    stop_reason
        One of :data:`binomlab.protocol.STOP_REASONS`.
    phi
        The learned beta-binomial concentration ``φ``, None for the binomial loss and for a
        network with a ``log φ`` head (``net.phi_head``, trained with ``phi="network"``). A
        scalar ``φ`` is not part of ``net``: the network maps features to the logit of the
        mean either way.
    """

    def __init__(
        self,
        net: nn.Module,
        spec: ModelSpec,
        input_dim: int,
        *,
        stop_reason: str = "completed",
        phi: float | None = None,
    ) -> None:
        self.net = net
        self.spec = spec
        self.input_dim = int(input_dim)
        self.stop_reason = stop_reason
        self.phi = None if phi is None else float(phi)

    @property
    def phi_output(self) -> bool:
        """True when ``net`` has a ``log φ`` head."""
        return getattr(self.net, "phi_head", None) is not None

    @property
    def n_params(self) -> int:
        """Trainable parameters of the network, plus one for a learned ``φ``."""
        count = sum(p.numel() for p in self.net.parameters() if p.requires_grad)
        return count + (self.phi is not None)

    def predict_logits(self, X: np.ndarray) -> np.ndarray:
        """Logits, float64 ``[rows]``, for ``X [rows, d]`` (inference mode, on the CPU).

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
        """``forward`` over ``X [rows, d]`` in chunks, in inference mode: float64 ``[rows]``."""
        X = check_encoded(X, self.input_dim)
        dtype = next(self.net.parameters()).dtype
        self.net.eval()
        out = np.empty(X.shape[0], dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, X.shape[0], CHUNK):
                x = torch.from_numpy(np.require(X[start : start + CHUNK], None, ["C", "W"]))
                out[start : start + CHUNK] = forward(x.to(dtype)).double().numpy()
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


class LightningBackend(Backend):
    """Trains binomlab specs with a Lightning ``Trainer`` (CPU or GPU, optionally DDP).

    Options (``bl.fit(..., backend="lightning", **options)``), passed to the ``Trainer``:
    ``accelerator`` (default ``"auto"``), ``devices`` (default 1), ``strategy`` (e.g.
    ``"ddp"`` with ``devices=2``; default ``"auto"``), ``precision`` (default ``"32-true"``,
    ``"64-true"`` for L-BFGS on the logistic spec), ``default_root_dir``,
    ``enable_checkpointing`` and ``logger`` (both off by default, so nothing is written).

    Losses: ``"binomial"`` and ``"beta-binomial"``; the latter trains ``θ = log φ`` (from
    ``log(100)``, not weight-decayed) jointly with the network and returns ``φ`` as
    :attr:`LightningNetwork.phi`, or, with ``phi="network"``, trains a ``log φ`` head on the
    network (:meth:`LightningNetwork.predict_log_phi`, the ONNX model's second output).
    """

    name: ClassVar[str] = "lightning"
    specs: ClassVar[tuple[str, ...]] = ("logistic", "mlp")
    optimizers: ClassVar[tuple[str, ...]] = OPTIMIZERS
    options: ClassVar[tuple[str, ...]] = OPTIONS
    losses: ClassVar[tuple[str, ...]] = LOSSES
    phi_models: ClassVar[tuple[str, ...]] = PHI_MODELS

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__, "lightning": L.__version__}

    def fit(
        self,
        train: TrainData,
        val: TrainData | None,
        spec: ModelSpec,
        config: TrainConfig,
        callback: ProgressCallback,
    ) -> LightningNetwork:
        """Train ``spec`` on ``train`` following :mod:`binomlab.protocol`.

        Raises
        ------
        BinomlabError
            An unknown option, optimiser or spec, or a mini-batch size with ``"lbfgs"``.
        """
        options = check_config(self, train, spec, config)
        lbfgs = config.optimizer == "lbfgs"
        epochs = config.epochs or (LBFGS_MAX_ITERATIONS if lbfgs else ADAM_EPOCHS)
        lr = config.lr if config.lr is not None else DEFAULT_LR[config.optimizer]
        batch_size = len(train) if lbfgs else (config.batch_size or DEFAULT_BATCH_SIZE)
        # float64 takes L-BFGS to the maximum-likelihood estimate's tolerance; Apple's MPS
        # has no float64, so "auto" there stays in float32
        accelerator = options.get("accelerator", "auto")
        mps = accelerator == "mps" or (accelerator == "auto" and torch.backends.mps.is_available())
        float64 = lbfgs and spec.kind == "logistic" and not mps
        trainer_options = {
            "accelerator": "auto",
            "devices": 1,
            "strategy": "auto",
            "precision": "64-true" if float64 else "32-true",
            "logger": False,
            "enable_checkpointing": False,
            **options,
        }
        input_dim = train.X.shape[1]

        with _quiet_lightning(), _keep_torch_flags(), _keep_sigint(), _keep_random_state():
            L.seed_everything(config.seed, workers=True, verbose=False)
            phi_output = config.loss == "beta-binomial" and config.phi == "network"
            net = build_network(spec, input_dim, phi_output=phi_output)
            _start_at_base_rate(net, train)
            module = BinomialModule(
                net,
                spec=spec.to_dict(),
                input_dim=input_dim,
                optimizer=config.optimizer,
                lr=lr,
                weight_decay=config.weight_decay,
                batch_size=batch_size,
                seed=config.seed,
                tolerance=config.tolerance,
                loss=config.loss,
                phi=config.phi,
            )
            # moved and cast once to the module's device and dtype when training starts
            module.attach(GroupTensors.from_train_data(train))
            monitor = ProgressMonitor(
                callback,
                None if val is None else GroupTensors.from_train_data(val),
                patience=config.early_stopping,
            )
            trainer = L.Trainer(
                max_epochs=epochs,
                callbacks=[monitor],
                enable_progress_bar=False,
                enable_model_summary=False,
                deterministic=True,
                num_sanity_val_steps=0,
                limit_val_batches=0,
                log_every_n_steps=max(1, min(50, -(-len(train) // batch_size))),
                **trainer_options,
            )
            _check_launcher(trainer)
            try:
                trainer.fit(module)
            except SystemExit:
                # Lightning turns a KeyboardInterrupt into sys.exit(1) after its own clean-up
                if not monitor.interrupted:
                    raise
        if monitor.best_state is not None:
            module.load_state_dict(monitor.best_state)
        stop_reason = "interrupted" if monitor.interrupted else monitor.stop_reason
        network = module.net.cpu().eval()
        return LightningNetwork(network, spec, input_dim, stop_reason=stop_reason, phi=module.phi)


def _check_launcher(trainer: L.Trainer) -> None:
    """Refuse strategies that train in spawned or forked processes (``ddp_spawn``,
    ``ddp_notebook``, ...): the history, best weights and stop reason would stay in them."""
    launcher = trainer.strategy.launcher
    if launcher is not None and not isinstance(launcher, _SubprocessScriptLauncher):
        strategy = type(trainer.strategy).__name__
        msg = (
            f"The lightning backend trains in the calling process, so it cannot use a "
            f"{strategy} that launches with {type(launcher).__name__} (e.g. 'ddp_spawn', "
            "'ddp_notebook'). Use strategy='ddp' with devices=N from a script instead."
        )
        raise BinomlabError(msg)


def _start_at_base_rate(net: BinomialNet, train: TrainData) -> None:
    """Set the output bias to the logit of the overall success rate, so training starts from
    the intercept-only model rather than from p = 0.5."""
    with torch.no_grad():
        net.output_layer.bias.fill_(train.base_logit)


class ProgressMonitor(Callback):
    """Reports each epoch to binomlab's callback, keeps the best weights, stops training.

    At every train-epoch end: compute ``train_nll`` (and ``val_nll`` on all validation groups
    in evaluation mode), log them as ``train/nll`` and ``val/nll``, snapshot the weights when
    the monitored value improves (``val_nll``; else ``train_nll`` plus the weight-decay
    penalty ``weight_decay/2·Σ‖W‖²``, i.e. ``train_nll`` when there is no decay), call
    ``callback(epoch, metrics)``, and set ``trainer.should_stop`` when it returns False, when
    L-BFGS has converged or when the patience has run out. A KeyboardInterrupt is recorded so
    that the caller keeps the best weights; every other exception goes through untouched.
    """

    def __init__(
        self, callback: ProgressCallback, val: GroupTensors | None, *, patience: int | None
    ) -> None:
        self.callback = callback
        self.val = val
        self.best = BestEpoch(patience)
        self.best_state: dict[str, torch.Tensor] | None = None
        self.stop_reason = "completed"
        self.interrupted = False

    def on_fit_start(self, trainer: L.Trainer, pl_module: BinomialModule) -> None:
        if self.val is not None:
            self.val = self.val.to(pl_module.device, pl_module.dtype)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: BinomialModule) -> None:
        epoch = trainer.current_epoch + 1
        metrics = {"train_nll": pl_module.epoch_train_nll()}
        if self.val is not None:
            metrics["val_nll"] = pl_module.nll(self.val)
        pl_module.log_dict({name.replace("_", "/"): v for name, v in metrics.items()})
        # without validation data, the training objective: with weight decay, the NLL alone
        # would prefer the least regularised epoch over the penalised fit that was asked for
        penalty = 0.0 if "val_nll" in metrics else float(pl_module.penalty().detach())
        if self.best.update(epoch, metrics, penalty):
            self.best_state = {k: t.detach().clone() for k, t in pl_module.state_dict().items()}
        reason = self.best.stop_reason(self.callback(epoch, metrics), converged=pl_module.converged)
        # a process asking to stop stops them all: they must run the same epochs
        if trainer.strategy.reduce_boolean_decision(reason is not None, all=False):
            trainer.should_stop = True
            self.stop_reason = reason or "callback"

    def on_exception(
        self, trainer: L.Trainer, pl_module: BinomialModule, exception: BaseException
    ) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.interrupted = True


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence Lightning's INFO messages (GPU available, seed set, ...) and the warnings about
    its own defaults that do not apply to in-memory batches."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")
            # the logged values are already reduced over processes
            warnings.filterwarnings("ignore", message=".*when logging on epoch level in distrib.*")
            # Lightning 2.6 on torch >= 2.10 builds pytree LeafSpec()s, which torch deprecates
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@contextlib.contextmanager
def _keep_torch_flags() -> Iterator[None]:
    """``Trainer(deterministic=True)`` switches torch's global deterministic mode on: restore
    the caller's setting afterwards."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


@contextlib.contextmanager
def _keep_sigint() -> Iterator[None]:
    """Lightning ignores SIGINT after handling a KeyboardInterrupt: put the handler back."""
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if main else None
    try:
        yield
    finally:
        if main and handler is not None:
            signal.signal(signal.SIGINT, handler)


@contextlib.contextmanager
def _keep_random_state() -> Iterator[None]:
    """``seed_everything`` seeds Python, NumPy and torch (the CPU and every accelerator) and
    sets ``PL_GLOBAL_SEED`` and ``PL_SEED_WORKERS``: give the caller all of them back."""
    variables = {name: os.environ.get(name) for name in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")}
    accelerators = range(torch.accelerator.device_count())
    try:
        with keep_random_state(), torch.random.fork_rng(devices=accelerators):
            yield
    finally:
        for name, value in variables.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
