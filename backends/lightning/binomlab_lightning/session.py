"""``LightningSession``: one training run of the Lightning backend, the framework glue under
the core's rules (:mod:`binomlab.backends.loop`, :mod:`binomlab.backends.lbfgs`).

Adam and AdamW run in a Lightning ``Trainer`` (so ``accelerator``, ``devices``, ``strategy``
and ``precision`` apply), whose callback hands every epoch's end to the core. L-BFGS gives the
core's SciPy driver the full-batch loss and its gradient from torch's autograd in float64.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

from binomlab._random_state import keep_random_state
from binomlab.backends.protocol import Session, TrainConfig, TrainData
from binomlab.errors import BinomlabError
from binomlab.specs import ModelSpec
from binomlab_lightning.data import GroupTensors
from binomlab_lightning.module import BinomialModule, build_network
from binomlab_lightning.network import LightningNetwork

__all__ = ["EpochEnd", "LightningSession"]


class LightningSession(Session):
    """The network of ``spec`` in a :class:`~binomlab_lightning.module.BinomialModule`,
    seeded with ``config.seed`` on entry; the caller's random state, torch's deterministic
    flags, the SIGINT handler and Lightning's loggers are put back on exit."""

    def __init__(self, train: TrainData, spec: ModelSpec, config: TrainConfig) -> None:
        self.train, self.spec, self.config = train, spec, config
        self._stack = contextlib.ExitStack()
        self._trainer: L.Trainer | None = None  # while run_epochs runs

    def __enter__(self) -> LightningSession:
        stack, config = self._stack, self.config
        for manager in (_quiet_lightning(), _keep_torch_flags(), _keep_sigint(), _keep_seeds()):
            stack.enter_context(manager)
        L.seed_everything(config.seed, workers=True, verbose=False)
        input_dim = self.train.X.shape[1]
        phi_output = config.loss == "beta-binomial" and config.phi == "network"
        layout = self.train.layout
        net = build_network(self.spec, input_dim, phi_output=phi_output, layout=layout)
        with torch.no_grad():  # start from the intercept-only model rather than p = 0.5
            net.output_layer.bias.fill_(self.train.base_logit)
        self.module = BinomialModule(
            net,
            spec=self.spec.to_dict(),
            input_dim=input_dim,
            optimizer=config.optimizer,
            lr=config.lr,
            weight_decay=config.weight_decay,
            batch_size=config.batch_size,
            seed=config.seed,
            loss=config.loss,
            phi=config.phi,
            layout=None if layout is None else layout.to_dict(),
        )
        self.params = [p for p in self.module.parameters() if p.requires_grad]
        decayed = {id(p) for p in self.module.decayed()}
        self.decayed = tuple(id(p) in decayed for p in self.params)
        self.network = LightningNetwork(
            self.module.net, self.spec, input_dim, criterion=self.module.criterion
        )
        if config.deterministic:
            self.module.to(device=_lbfgs_device(config.options), dtype=torch.float64)
            self._full = GroupTensors.from_train_data(self.train).to(
                self.module.device, torch.float64
            )
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.module.cpu().eval()
        finally:
            self._stack.close()

    def get_weights(self) -> list[np.ndarray]:
        return [p.detach().double().cpu().numpy().copy() for p in self.params]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        with torch.no_grad():
            for p, w in zip(self.params, weights, strict=True):
                p.copy_(torch.from_numpy(np.asarray(w)).reshape(p.shape))

    def loss_and_grad(self, weights: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        self.set_weights(weights)
        for p in self.params:
            p.grad = None
        data = self._full
        self.module.train(False)  # deterministic: no dropout in the objective
        loss = self.module.summed_nll(data.X, data.k, data.n) / data.n.sum()
        grads = torch.autograd.grad(loss, self.params)
        return float(loss.detach()), [g.double().cpu().numpy() for g in grads]

    def run_epochs(
        self,
        epochs: int,
        end_epoch: Callable[[], bool],
        end_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        options = self.config.options
        self.module.attach(GroupTensors.from_train_data(self.train))
        self.module.end_batch = end_batch
        hook = EpochEnd(end_epoch)
        batches = -(-len(self.train) // self.config.batch_size)
        try:
            trainer = L.Trainer(
                max_epochs=epochs,
                callbacks=[hook],
                enable_progress_bar=False,
                enable_model_summary=False,
                deterministic=True,
                num_sanity_val_steps=0,
                limit_val_batches=0,
                log_every_n_steps=max(1, min(50, batches)),
                **options,
            )
        except (ValueError, TypeError, MisconfigurationException) as err:
            msg = f"Lightning refused the Trainer options {dict(options)}: {err}"
            raise BinomlabError(msg) from err
        _check_launcher(trainer)
        self._trainer = trainer
        try:
            trainer.fit(self.module)
        except SystemExit:
            # Lightning turns a KeyboardInterrupt into sys.exit(1) after its own clean-up
            if hook.interrupted:
                raise KeyboardInterrupt from None
            raise
        finally:
            self.module.end_batch = None
            self._trainer = None

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """The core's epoch metrics to the Trainer's loggers (``logger=...``; none by
        default), at step ``epoch``: Lightning's loggers write on rank zero only."""
        trainer = self._trainer
        if trainer is None:
            return
        for logger in trainer.loggers:
            logger.log_metrics(dict(metrics), step=epoch)


class EpochEnd(Callback):
    """Hands the end of every training epoch to the core (``end_epoch() -> stop?``) and
    stops the Trainer when it says so; under data parallelism one process asking to stop
    stops them all, since they must run the same epochs. A KeyboardInterrupt is recorded
    (Lightning exits after it)."""

    def __init__(self, end_epoch: Callable[[], bool]) -> None:
        self.end_epoch = end_epoch
        self.interrupted = False

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: BinomialModule) -> None:
        stop = self.end_epoch()
        if trainer.strategy.reduce_boolean_decision(stop, all=False):
            trainer.should_stop = True

    def on_exception(
        self, trainer: L.Trainer, pl_module: BinomialModule, exception: BaseException
    ) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.interrupted = True


def _lbfgs_device(options: dict[str, Any]) -> torch.device:
    """Where L-BFGS computes: a CUDA device when the accelerator asks for one (or is "auto"
    and one is there), else the CPU (Apple's MPS has no float64)."""
    accelerator = options.get("accelerator", "auto")
    cuda = accelerator in ("cuda", "gpu") or (accelerator == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if cuda else "cpu")


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
def _keep_seeds() -> Iterator[None]:
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
