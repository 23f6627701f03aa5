"""Mini-batches of groups sliced from tensors held whole in memory (on the training device).

A per-row ``Dataset.__getitem__`` is slow for small tabular rows (Lightning #7932), so a
batch is a fancy index into whole tensors. Batches are of *groups*; every batch also carries
its global trial count, so that a loss normalised by it is the per-trial NLL of the batch even
when the batch is sharded across processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from binomlab.backends.protocol import TrainData

__all__ = ["Batch", "GroupBatches", "GroupTensors"]

Batch = tuple[Tensor, Tensor, Tensor, Tensor]
"""``(X [b, d], k [b], n [b], trials [])``: this process's share of a batch of groups and the
trials of the whole batch (all processes)."""


@dataclass(frozen=True)
class GroupTensors:
    """Encoded groups as tensors: ``X [groups, d]``, ``k`` and ``n`` ``[groups]``."""

    X: Tensor
    k: Tensor
    n: Tensor

    @classmethod
    def from_train_data(cls, data: TrainData) -> GroupTensors:
        """Tensors sharing the arrays' memory where possible: ``X`` float32 (float64 when the
        core encoded it so), ``k``, ``n`` float64 (exact counts); :meth:`to` casts them to the
        training dtype on its device."""
        dtype = np.float64 if data.X.dtype == np.float64 else np.float32
        return cls(
            X=torch.from_numpy(np.require(data.X, dtype, ["C", "W"])),
            k=torch.from_numpy(np.require(data.k, np.float64, ["C", "W"])),
            n=torch.from_numpy(np.require(data.n, np.float64, ["C", "W"])),
        )

    def __len__(self) -> int:
        return self.X.shape[0]

    @property
    def device(self) -> torch.device:
        return self.X.device

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> GroupTensors:
        """A copy on ``device`` (a no-op when it is already there)."""
        return GroupTensors(*(t.to(device=device, dtype=dtype) for t in (self.X, self.k, self.n)))


class GroupBatches:
    """An iterable of :data:`Batch` over groups, reshuffled at every pass.

    Parameters
    ----------
    data
        The groups, already on the training device.
    batch_size
        Groups per (global) batch; the last batch may be smaller.
    shuffle
        Draw a new permutation of the groups at every ``iter()``, from a generator seeded
        with ``seed``, so the order of epoch ``e`` depends only on the seed.
    rank, world_size
        Under data parallelism each process takes the groups ``rank::world_size`` of every
        batch; the batch's trials are those of the whole batch.
    """

    def __init__(
        self,
        data: GroupTensors,
        *,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.data = data
        self.batch_size = max(1, min(int(batch_size), len(data)))
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self._generator = torch.Generator(device="cpu").manual_seed(int(seed))

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        groups = len(self.data)
        X, k, n = self.data.X, self.data.k, self.data.n
        if self.batch_size >= groups and not self.shuffle and self.world_size == 1:
            yield X, k, n, n.sum()
            return
        if self.shuffle:
            order = torch.randperm(groups, generator=self._generator).to(self.data.device)
        else:
            order = torch.arange(groups, device=self.data.device)
        for start in range(0, groups, self.batch_size):
            batch = order[start : start + self.batch_size]
            trials = n[batch].sum()
            mine = batch[self.rank :: self.world_size]
            # index_select gathers rows several times faster than advanced indexing
            yield X.index_select(0, mine), k.index_select(0, mine), n.index_select(0, mine), trials
