"""The network built from a binomlab spec, and the LightningModule that trains it.

:class:`BinomialNet` maps float ``X [batch, d]`` to logits ``[batch]``: one ``Linear(d, 1)``
for the logistic spec, a ``Linear``/activation/``Dropout`` stack ending in ``Linear(·, 1)`` for
the MLP spec. On the index form (integer codes, :mod:`binomlab.layout`) the MLP's first layer,
and the logistic's one layer, is an :class:`IndexLinear`: a lookup of weight rows.
:class:`BinomialModule` trains it on the grouped binomial NLL — or on the
beta-binomial NLL, with a learned concentration ``φ`` held by the module, not the network, so
that the network (and its ONNX export) still maps features to the logit of the mean; or, with
``phi="network"``, with ``log φ`` a second head of the network (``BinomialNet.phi_head``) —
with Adam or AdamW on mini-batches of groups. (L-BFGS is the core's SciPy driver: the module
then only gives the full-batch loss, :meth:`BinomialModule.summed_nll`.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from binomlab.backends.protocol import DEFAULT_BATCH_SIZE, LOSSES, OPTIMIZERS, PHI_MODELS
from binomlab.layout import NO_ROW, IndexLayout, check_network_inputs, embedding_dims
from binomlab.specs import ModelSpec, spec_from_dict
from binomlab_lightning.data import Batch, GroupBatches, GroupTensors
from binomlab_lightning.loss import (
    INITIAL_LOG_PHI,
    BetaBinomialNLLWithLogits,
    beta_binomial_nll_with_logits,
    binomial_nll_with_logits,
)

__all__ = [
    "ACTIVATIONS",
    "BinomialModule",
    "BinomialNet",
    "Embeddings",
    "IndexLinear",
    "build_network",
]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
}
CHUNK = 65_536
"""Groups per forward pass when evaluating or predicting without gradients."""
FUSED_ADAM_DEVICES = ("cpu", "cuda")  # where torch.optim.Adam(fused=True) runs


class BinomialNet(nn.Module):
    """``X [batch, d] -> logits [batch]`` through ``self.layers`` (an ``nn.Sequential``).

    With a ``phi_head`` (``Linear(width, 1)`` on the input of the output layer: the last
    hidden activations, or the features for the logistic spec, an :class:`IndexLinear` on
    the index form), :meth:`forward_with_log_phi`
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


class _LookupSum(torch.autograd.Function):
    """``Σ_j weight[:, codes[:, j]]ᵀ`` → ``[batch, out]``: ``embedding_bag``'s sum forward
    (one fused gather-and-add over the features), one ``index_add_`` per feature backward
    (deterministic on the CPU). On two CPU cores, at the flights' shapes, a step forward and
    backward costs about 1.8× less than ``embedding_bag``'s own backward (which sorts the
    codes) and 1.3-2× less than a row gather per feature forward."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor, codes: Tensor) -> Tensor:
        ctx.save_for_backward(codes)
        ctx.width = weight.shape[1]
        table = weight.t().contiguous()  # [width, out]: one row per level
        return nn.functional.embedding_bag(codes, table, mode="sum")

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (codes,) = ctx.saved_tensors
        table_grad = grad.new_zeros(ctx.width, grad.shape[1])
        for j in range(codes.shape[1]):
            table_grad.index_add_(0, codes[:, j], grad)
        return table_grad.t(), None


class IndexLinear(nn.Linear):
    """``nn.Linear(layout.width, out)`` fed by the index form (:mod:`binomlab.layout`):
    ``x [batch, layout.n_inputs]`` → ``Σ_f W[:, code_f] + numbers @ W[:, number_rows]ᵀ + b``,
    exactly the one-hot matrix times the weight, without the matrix. The parameters (their
    names, shapes and initialisation) are those of the ``nn.Linear``, so a seed draws the
    same network as on the one-hot path.

    With ``layout.holes`` (the logistic spec's treatment design) a code ``NO_ROW`` (``-1``:
    a reference or aliased level) adds nothing: it selects a zero row appended to the weight
    in ``forward``, which is not a parameter. ``layout.width`` may then be 0 (every level a
    reference: the output is the bias)."""

    def __init__(self, layout: IndexLayout, out_features: int) -> None:
        super().__init__(layout.width, out_features)
        self.layout = layout
        # index tensors as non-persistent buffers: they follow .to(device), not the state_dict
        self.register_buffer("codes", torch.tensor(layout.codes, dtype=torch.long), False)
        self.register_buffer("numbers", torch.tensor(layout.numbers, dtype=torch.long), False)
        rows = torch.tensor(layout.number_rows, dtype=torch.long)
        self.register_buffer("number_rows", rows, False)

    def forward(self, x: Tensor) -> Tensor:
        table = self.weight.t()  # [width, out]: one row per level
        out = self.bias
        if self.codes.numel():
            codes = x.index_select(1, self.codes).long()
            weight = self.weight
            if self.layout.holes:
                # NO_ROW (-1) selects a zero row appended to the table: not a parameter, so
                # the gradient reaches the real rows only (through the concatenation)
                weight = torch.cat([weight, weight.new_zeros(weight.shape[0], 1)], dim=1)
                codes = torch.where(codes == NO_ROW, self.layout.width, codes)
            if torch.onnx.is_in_onnx_export():  # Gather + ReduceSum in the graph
                out = out + weight.t()[codes].sum(dim=1)
            elif x.device.type == "cpu":  # measured fastest on CPU (benchmarks/README.md)
                out = out + _LookupSum.apply(weight, codes)
            else:
                out = out + nn.functional.embedding_bag(codes, weight.t(), mode="sum")
        if self.numbers.numel():
            out = out + x.index_select(1, self.numbers) @ table.index_select(0, self.number_rows)
        return out

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, inputs={self.layout.n_inputs} (index form)"


class Embeddings(nn.Module):
    """The index form's codes → one learned embedding per feature with levels
    (``nn.Embedding(levels, d)``, initialised N(0, 0.01²) truncated at ±2σ as fastai's
    tabular models), concatenated with the numeric columns: ``x [batch, n_inputs]`` →
    ``[batch, Σd + numbers]``."""

    def __init__(self, layout: IndexLayout, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.layout = layout
        sizes = zip(layout.levels, dims, strict=True)
        self.tables = nn.ModuleList(nn.Embedding(n, d) for n, d in sizes)
        for table in self.tables:
            nn.init.trunc_normal_(table.weight, std=0.01, a=-0.02, b=0.02)
        self.register_buffer("codes", torch.tensor(layout.codes, dtype=torch.long), False)
        self.register_buffer("firsts", torch.tensor(layout.firsts, dtype=torch.long), False)
        self.register_buffer("numbers", torch.tensor(layout.numbers, dtype=torch.long), False)
        self.width = sum(dims) + len(layout.numbers)

    def forward(self, x: Tensor) -> Tensor:
        local = x.index_select(1, self.codes).long() - self.firsts  # each feature's level
        parts = [table(local[:, i]) for i, table in enumerate(self.tables)]
        if self.numbers.numel():
            parts.append(x.index_select(1, self.numbers))
        return torch.cat(parts, dim=1)


def build_network(
    spec: ModelSpec,
    input_dim: int,
    *,
    phi_output: bool = False,
    layout: IndexLayout | None = None,
) -> BinomialNet:
    """The untrained network of ``spec`` for ``input_dim`` encoded features (PyTorch's default
    initialisation, drawn from the global torch generator).

    ``phi_output=True`` adds the ``log φ`` head, starting at the constant ``log(100)``
    (weights 0, bias :data:`~binomlab_lightning.loss.INITIAL_LOG_PHI`). With a ``layout``
    (the index form) the network takes ``input_dim == layout.n_inputs`` columns: an MLP's
    first layer is an :class:`IndexLinear` of ``layout.width`` weight rows; the logistic
    spec's single output layer is that lookup (``IndexLinear(layout, 1)``, the layout may
    have holes), and so is its ``log φ`` head.

    Raises
    ------
    ValueError
        A layout of another input width, an MLP's layout with holes, or embeddings without
        a layout (:func:`~binomlab.layout.check_network_inputs`).
    """
    layers: list[nn.Module] = []
    width = int(input_dim)
    embed = getattr(spec, "embed", None)
    linear = layout if spec.kind == "logistic" else None  # the output layer looks up codes
    check_network_inputs(spec.kind, embed, width, layout)
    if embed is not None:
        embeddings = Embeddings(layout, embedding_dims(spec.embeddings, layout))
        layers.append(embeddings)
        width, layout = embeddings.width, None  # the hidden layers take the embeddings
    if spec.kind == "mlp":
        for i, hidden in enumerate(spec.hidden):
            first = IndexLinear(layout, hidden) if i == 0 and layout is not None else None
            layers += [first or nn.Linear(width, hidden), ACTIVATIONS[spec.activation]()]
            if spec.dropout > 0:
                layers.append(nn.Dropout(spec.dropout))
            width = hidden
    layers.append(nn.Linear(width, 1) if linear is None else IndexLinear(linear, 1))
    head = None
    if phi_output:  # on the output layer's input: the codes, for the logistic's lookup
        head = nn.Linear(width, 1) if linear is None else IndexLinear(linear, 1)
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
    """Trains a :class:`BinomialNet` on the grouped binomial (or beta-binomial) NLL per trial
    with Adam or AdamW.

    Parameters
    ----------
    net
        The network; None builds it from ``spec`` and ``input_dim`` (what
        ``load_from_checkpoint`` does, since ``net`` is not a saved hyperparameter).
    spec, input_dim
        The spec as a dict (``spec.to_dict()``) and the number of encoded features.
    optimizer
        ``"adam"`` or ``"adamw"`` for :meth:`configure_optimizers`; ``"lbfgs"`` builds a module
        that only evaluates the loss (the core's L-BFGS driver steps it).
    lr, weight_decay, batch_size, seed
        As in :class:`binomlab.backends.protocol.TrainConfig`, resolved.
    loss
        ``"binomial"``, or ``"beta-binomial"``: the module then holds ``criterion``, a
        :class:`~binomlab_lightning.loss.BetaBinomialNLLWithLogits` whose ``log_phi`` (``θ``,
        starting at ``log(100)``) is trained with the network (no weight decay) and is part
        of the module's ``state_dict``.
    phi
        ``"scalar"`` (that ``criterion``) or ``"network"``: ``θ`` is the network's
        ``phi_head`` output (not weight-decayed either).
    layout
        The index form's layout as a dict (:meth:`IndexLayout.to_dict`), or None for one-hot
        inputs.

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
        lr: float | None = 1e-2,
        weight_decay: float = 0.0,
        batch_size: int = DEFAULT_BATCH_SIZE,
        seed: int = 0,
        loss: str = "binomial",
        phi: str = "scalar",
        layout: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if loss not in LOSSES or phi not in PHI_MODELS or optimizer not in OPTIMIZERS:
            msg = (
                f"Expected one of {LOSSES}, {PHI_MODELS} and {OPTIMIZERS}. "
                f"Received: {loss=}, {phi=}, {optimizer=}"
            )
            raise ValueError(msg)
        self.save_hyperparameters(ignore=["net"], logger=False)
        phi_output = loss == "beta-binomial" and phi == "network"
        if net is None:
            index = None if layout is None else IndexLayout.from_dict(layout)
            net = build_network(
                spec_from_dict(spec), input_dim, phi_output=phi_output, layout=index
            )
        if phi_output != (net.phi_head is not None):
            msg = f"loss={loss!r} with phi={phi!r} needs a network with phi_output={phi_output}."
            raise ValueError(msg)
        self.net = net
        scalar = loss == "beta-binomial" and not phi_output
        self.criterion = BetaBinomialNLLWithLogits("sum") if scalar else None
        # the optimiser steps in training_step: with one process, a Lightning "step" is a
        # whole epoch of mini-batches, so Lightning's per-step machinery runs once per epoch
        self.automatic_optimization = False
        self._train: GroupTensors | None = None
        self.end_batch: Callable[[int, int], None] | None = None
        """Called as ``end_batch(batch, batches)`` after every optimizer step when set (by
        the session, for progress by batch)."""

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
        batches = GroupBatches(
            self._train.to(self.device, self.dtype),
            batch_size=self.hparams.batch_size,
            shuffle=True,
            seed=self.hparams.seed,
            rank=self.trainer.global_rank,
            world_size=self.trainer.world_size,
        )
        return batches if self.trainer.world_size > 1 else _WholeEpoch(batches)

    # -- the model ---------------------------------------------------------------------------

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def summed_nll(self, X: Tensor, k: Tensor, n: Tensor) -> Tensor:
        """The training loss (binomial or beta-binomial) of the groups ``X, k, n``, summed."""
        if self.net.phi_head is not None:
            z, log_phi = self.net.forward_with_log_phi(X)
            return beta_binomial_nll_with_logits(z, k, n, log_phi, reduction="sum")
        if self.criterion is None:
            return binomial_nll_with_logits(self(X), k, n, reduction="sum")
        return self.criterion(self(X), k, n)

    def decayed(self) -> list[nn.Parameter]:
        """The weight matrices of the network, not its biases nor the ``log φ`` head: what
        ``weight_decay`` penalises."""
        return [
            p
            for name, p in self.net.named_parameters()
            if name.endswith("weight") and not name.startswith("phi_head.")
        ]

    def training_step(self, batch: Batch | GroupBatches, batch_idx: int) -> None:
        end_batch = self.end_batch
        if not isinstance(batch, GroupBatches):  # data parallel: one mini-batch per step
            self._gradient_step(batch)
            if end_batch is not None:
                end_batch(batch_idx + 1, int(self.trainer.num_training_batches))
            return
        steps = len(batch)
        for step, minibatch in enumerate(batch, start=1):
            self._gradient_step(minibatch)
            if end_batch is not None:
                end_batch(step, steps)

    def _gradient_step(self, batch: Batch) -> None:
        """One Adam/AdamW update on the per-trial NLL of ``batch``."""
        optimizer = self.optimizers()
        X, k, n, trials = batch
        optimizer.zero_grad()
        # Each process holds a shard of the batch and DDP averages gradients over processes:
        # scaling by world_size makes the update that of the whole batch's per-trial NLL.
        self.manual_backward(self.summed_nll(X, k, n) * (self.trainer.world_size / trials))
        optimizer.step()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        name, lr = self.hparams.optimizer, self.hparams.lr
        if name not in ("adam", "adamw"):
            msg = f"optimizer={name!r} is stepped by binomlab's core, not by a Trainer."
            raise ValueError(msg)
        decayed = self.decayed()
        # biases and the beta-binomial θ (scalar, or the head) are not decayed
        plain = [p for p in self.parameters() if all(p is not q for q in decayed)]
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
