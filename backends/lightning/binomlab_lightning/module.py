"""The network built from a binomlab spec, and the LightningModule that trains it.

:class:`BinomialNet` maps float ``X [batch, d]`` to logits ``[batch]``: one ``Linear(d, 1)``
for the logistic spec, a ``Linear``/activation/``Dropout`` stack ending in ``Linear(·, 1)`` for
the MLP spec. :class:`BinomialModule` trains it on the grouped binomial NLL — or on the
beta-binomial NLL, with a learned concentration ``φ`` held by the module, not the network, so
that the network (and its ONNX export) still maps features to the logit of the mean; or, with
``phi="network"``, with ``log φ`` a second head of the network (``BinomialNet.phi_head``) —
with Adam, AdamW (mini-batches of groups) or L-BFGS (full batch, one L-BFGS iteration per
epoch).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from binomlab.protocol import LOSSES, PHI_MODELS
from binomlab.specs import ModelSpec, spec_from_dict
from binomlab_lightning.data import Batch, GroupBatches, GroupTensors
from binomlab_lightning.loss import (
    INITIAL_LOG_PHI,
    BetaBinomialNLLWithLogits,
    beta_binomial_nll_with_logits,
    binomial_nll_with_logits,
)

__all__ = ["ACTIVATIONS", "BinomialModule", "BinomialNet", "build_network"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
}
DEFAULT_LR = {"adam": 1e-2, "adamw": 1e-2, "lbfgs": 1.0}
DEFAULT_BATCH_SIZE = 1024
LINE_SEARCH_EVALUATIONS = 25
CHUNK = 65_536
"""Groups per forward pass when evaluating or predicting without gradients."""
FUSED_ADAM_DEVICES = ("cpu", "cuda")  # where torch.optim.Adam(fused=True) runs


class BinomialNet(nn.Module):
    """``X [batch, d] -> logits [batch]`` through ``self.layers`` (an ``nn.Sequential``).

    With a ``phi_head`` (``Linear(width, 1)`` on the input of the output layer: the last
    hidden activations, or the features for the logistic spec), :meth:`forward_with_log_phi`
    also gives ``θ = log φ [batch]``; :meth:`forward` still gives the logits alone.
    """

    def __init__(self, layers: nn.Sequential, phi_head: nn.Linear | None = None) -> None:
        super().__init__()
        self.layers = layers
        self.phi_head = phi_head

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x).squeeze(-1)

    def forward_with_log_phi(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits [batch], log φ [batch])``; needs a ``phi_head``."""
        if self.phi_head is None:
            msg = "This network has no φ output: build it with phi_output=True."
            raise RuntimeError(msg)
        h = x
        for layer in self.layers[:-1]:
            h = layer(h)
        return self.output_layer(h).squeeze(-1), self.phi_head(h).squeeze(-1)

    @property
    def output_layer(self) -> nn.Linear:
        return self.layers[-1]


def build_network(spec: ModelSpec, input_dim: int, *, phi_output: bool = False) -> BinomialNet:
    """The untrained network of ``spec`` for ``input_dim`` encoded features (PyTorch's default
    initialisation, drawn from the global torch generator).

    ``phi_output=True`` adds the ``log φ`` head, starting at the constant ``log(100)``
    (weights 0, bias :data:`~binomlab_lightning.loss.INITIAL_LOG_PHI`)."""
    layers: list[nn.Module] = []
    width = int(input_dim)
    if spec.kind == "mlp":
        for hidden in spec.hidden:
            layers += [nn.Linear(width, hidden), ACTIVATIONS[spec.activation]()]
            if spec.dropout > 0:
                layers.append(nn.Dropout(spec.dropout))
            width = hidden
    layers.append(nn.Linear(width, 1))
    head = None
    if phi_output:
        head = nn.Linear(width, 1)
        with torch.no_grad():
            head.weight.zero_()
            head.bias.fill_(INITIAL_LOG_PHI)
    return BinomialNet(nn.Sequential(*layers), head)


class _WholeEpoch:
    """A loader of one item per epoch: the epoch's :class:`GroupBatches` (reshuffled by
    iterating it), which :meth:`BinomialModule.training_step` steps through."""

    def __init__(self, batches: GroupBatches) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[GroupBatches]:
        yield self.batches


class BinomialModule(L.LightningModule):
    """Trains a :class:`BinomialNet` on the grouped binomial (or beta-binomial) NLL per trial.

    Parameters
    ----------
    net
        The network; None builds it from ``spec`` and ``input_dim`` (what
        ``load_from_checkpoint`` does, since ``net`` is not a saved hyperparameter).
    spec, input_dim
        The spec as a dict (``spec.to_dict()``) and the number of encoded features.
    optimizer
        ``"adam"``, ``"adamw"`` or ``"lbfgs"``.
    lr, weight_decay, batch_size, seed, tolerance
        As in :class:`binomlab.protocol.TrainConfig`, defaults resolved.
    loss
        ``"binomial"``, or ``"beta-binomial"``: the module then holds ``criterion``, a
        :class:`~binomlab_lightning.loss.BetaBinomialNLLWithLogits` whose ``log_phi`` (``θ``,
        starting at ``log(100)``) is trained with the network (every optimiser, no weight
        decay) and is part of the module's ``state_dict``.
    phi
        ``"scalar"`` (that ``criterion``) or ``"network"``: ``θ`` is the network's
        ``phi_head`` output (not weight-decayed either).

    Training data is attached with :meth:`attach` before ``Trainer.fit``; the batches are cut
    from tensors moved once to the training device.
    """

    def __init__(
        self,
        net: BinomialNet | None = None,
        *,
        spec: dict[str, Any],
        input_dim: int,
        optimizer: str = "adam",
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        batch_size: int = DEFAULT_BATCH_SIZE,
        seed: int = 0,
        tolerance: float = 1e-6,
        loss: str = "binomial",
        phi: str = "scalar",
    ) -> None:
        super().__init__()
        if loss not in LOSSES or phi not in PHI_MODELS:
            msg = f"Expected one of {LOSSES} and {PHI_MODELS}. Received: {loss=}, {phi=}"
            raise ValueError(msg)
        self.save_hyperparameters(ignore=["net"], logger=False)
        phi_output = loss == "beta-binomial" and phi == "network"
        if net is None:
            net = build_network(spec_from_dict(spec), input_dim, phi_output=phi_output)
        if phi_output != (net.phi_head is not None):
            msg = f"loss={loss!r} with phi={phi!r} needs a network with phi_output={phi_output}."
            raise ValueError(msg)
        self.net = net
        scalar = loss == "beta-binomial" and not phi_output
        self.criterion = BetaBinomialNLLWithLogits("sum") if scalar else None
        # every optimiser steps in training_step: with one process, a Lightning "step" is a
        # whole epoch of mini-batches, so Lightning's per-step machinery runs once per epoch
        self.automatic_optimization = False
        self.converged = False
        self._train: GroupTensors | None = None
        self._nll_sum: Tensor | None = None
        self._trials: Tensor | None = None

    # -- data ------------------------------------------------------------------------------------

    def attach(self, train: GroupTensors) -> None:
        """The training groups (any device, any float dtype)."""
        self._train = train

    def train_dataloader(self) -> GroupBatches | _WholeEpoch:
        """The mini-batches: under data parallelism one per training step (DDP synchronises
        one backward pass per step); in one process the whole epoch as a single step."""
        if self._train is None:
            msg = "No training data: call module.attach(GroupTensors) before Trainer.fit."
            raise RuntimeError(msg)
        full_batch = self.hparams.optimizer == "lbfgs"
        batches = GroupBatches(
            self._train.to(self.device, self.dtype),
            batch_size=len(self._train) if full_batch else self.hparams.batch_size,
            shuffle=not full_batch,
            seed=self.hparams.seed,
            rank=self.trainer.global_rank,
            world_size=self.trainer.world_size,
        )
        return batches if full_batch or self.trainer.world_size > 1 else _WholeEpoch(batches)

    # -- the model ---------------------------------------------------------------------------

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    @property
    def phi(self) -> float | None:
        """The current beta-binomial concentration ``φ`` (None for the binomial loss)."""
        return None if self.criterion is None else self.criterion.phi

    def summed_nll(self, X: Tensor, k: Tensor, n: Tensor) -> Tensor:
        """The training loss (binomial or beta-binomial) of the groups ``X, k, n``, summed."""
        if self.net.phi_head is not None:
            z, log_phi = self.net.forward_with_log_phi(X)
            return beta_binomial_nll_with_logits(z, k, n, log_phi, reduction="sum")
        if self.criterion is None:
            return binomial_nll_with_logits(self(X), k, n, reduction="sum")
        return self.criterion(self(X), k, n)

    def model_step(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """The NLL summed over this process's groups of ``batch``, and their trials."""
        X, k, n, _ = batch
        return self.summed_nll(X, k, n), n.sum()

    def penalty(self) -> Tensor:
        """``weight_decay/2 · Σ‖W‖²`` over the weight matrices (not the biases).

        L-BFGS adds it to the loss (Adam and AdamW apply ``weight_decay`` in the optimiser);
        without validation data, the best epoch is the one of least NLL plus penalty."""
        decay = self.hparams.weight_decay
        if not decay:
            return torch.zeros((), dtype=self.dtype, device=self.device)
        return 0.5 * decay * sum(w.square().sum() for w in self._decayed())

    def _decayed(self) -> list[nn.Parameter]:
        """The weight matrices of the network, not its biases nor the ``log φ`` head."""
        return [
            p
            for name, p in self.net.named_parameters()
            if name.endswith("weight") and not name.startswith("phi_head.")
        ]

    def on_train_epoch_start(self) -> None:
        self._nll_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self._trials = torch.zeros((), dtype=torch.float64, device=self.device)

    def training_step(self, batch: Batch | GroupBatches, batch_idx: int) -> None:
        if self.hparams.optimizer == "lbfgs":
            return self._lbfgs_step(batch)
        for minibatch in batch if isinstance(batch, GroupBatches) else (batch,):
            self._gradient_step(minibatch)
        return None

    def _gradient_step(self, batch: Batch) -> None:
        """One Adam/AdamW update on the per-trial NLL of ``batch``."""
        optimizer = self.optimizers()
        nll_sum, trials = self.model_step(batch)
        self._nll_sum += nll_sum.detach().double()
        self._trials += trials.double()
        optimizer.zero_grad()
        # Each process holds a shard of the batch and DDP averages gradients over processes:
        # scaling by world_size makes the update that of the whole batch's per-trial NLL.
        self.manual_backward(nll_sum * (self.trainer.world_size / batch[3]))
        optimizer.step()

    def _lbfgs_step(self, batch: Batch) -> None:
        optimizer = self.optimizers()
        _, _, n, batch_trials = batch
        scale = self.trainer.world_size

        def objective() -> Tensor:
            optimizer.zero_grad()
            nll = self.model_step(batch)[0] / batch_trials
            penalty = self.penalty()
            self.manual_backward(nll * scale + penalty)
            # the line search must see the same (global) value in every process
            total = self.trainer.strategy.reduce(nll.detach().clone(), reduce_op="sum")
            return total + penalty.detach()

        optimizer.step(closure=objective)
        # Where the step landed: the exact full-data NLL and its gradient's max-norm.
        optimizer.zero_grad()
        nll_sum = self.model_step(batch)[0]
        self.manual_backward((nll_sum / batch_trials) * scale + self.penalty())
        self._nll_sum = nll_sum.detach().double()
        self._trials = n.sum().double()
        grad_max = max(p.grad.abs().max() for p in self.parameters() if p.grad is not None)
        self.converged = bool(grad_max <= self.hparams.tolerance)
        optimizer.zero_grad()

    def epoch_train_nll(self) -> float:
        """The epoch's NLL per trial over all processes (the trial-weighted mean of its
        mini-batch losses; exact at the new weights for L-BFGS)."""
        both = torch.stack([self._nll_sum, self._trials])
        both = self.trainer.strategy.reduce(both, reduce_op="sum")
        return float(both[0] / both[1])

    @torch.no_grad()
    def nll(self, data: GroupTensors) -> float:
        """Exact per-trial NLL of ``data`` in evaluation mode (``data`` on this device)."""
        was_training = self.training
        self.eval()
        try:
            total = torch.zeros((), dtype=torch.float64, device=self.device)
            for start in range(0, len(data), CHUNK):
                part = slice(start, start + CHUNK)
                total += self.summed_nll(data.X[part], data.k[part], data.n[part]).double()
            return float(total / data.n.double().sum())
        finally:
            self.train(was_training)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        name, lr = self.hparams.optimizer, self.hparams.lr
        if name == "lbfgs":
            return torch.optim.LBFGS(
                self.parameters(),
                lr=lr,
                max_iter=1,
                # torch derives the line search's budget from max_eval (max_iter·5/4 = 1 would
                # leave it none): allow the usual 25 evaluations per iteration
                max_eval=1 + LINE_SEARCH_EVALUATIONS,
                tolerance_grad=self.hparams.tolerance,
                tolerance_change=0.0,
                line_search_fn="strong_wolfe",
            )
        decayed = self._decayed()
        # biases and the beta-binomial θ (scalar, or the head) are not decayed
        plain = [p for p in self.net.parameters() if all(p is not q for q in decayed)]
        plain += [] if self.criterion is None else list(self.criterion.parameters())
        if self.hparams.weight_decay:
            groups = [
                {"params": decayed, "weight_decay": self.hparams.weight_decay},
                {"params": plain, "weight_decay": 0.0},
            ]
        else:  # one group: one pass of the update per step
            groups = [{"params": decayed + plain, "weight_decay": 0.0}]
        optimizer = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
        # torch's fused kernel: one pass over all tensors per step (CPU and CUDA), the same
        # update as the default per-tensor loops; 0.1-0.2 ms less per step on the MLP
        fused = self.device.type in FUSED_ADAM_DEVICES
        return optimizer(groups, lr=lr, fused=fused or None)
