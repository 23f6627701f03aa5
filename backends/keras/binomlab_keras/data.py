"""Encoded groups as the arrays Keras trains on, ``x`` and ``y_true = [k, n]`` per group, and
the mini-batches of groups ``model.fit`` draws from them.

:class:`~binomlab_keras.loss.BinomialNLL` divides each batch's NLL by that batch's trials.
:class:`GroupBatches` reshuffles the groups at every epoch from the training seed: Keras's own
``fit(x, y, shuffle=True)`` on TensorFlow replays one permutation in every epoch once a global
seed is set (tf.data re-seeds each new iterator; tensorflow/tensorflow#29558), which trains
measurably worse than a new order per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from binomlab.backends.protocol import TrainData

__all__ = ["GroupArrays", "GroupBatches"]


@dataclass(frozen=True)
class GroupArrays:
    """``x [groups, d]`` and ``y [groups, 2]`` (successes, trials) in one float dtype."""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def from_train_data(cls, data: TrainData, dtype: str = "float32") -> GroupArrays:
        """Arrays in ``dtype`` (counts up to 2**24 are exact in float32)."""
        x = np.require(data.X, dtype, ["C"])
        y = np.column_stack([data.k, data.n]).astype(dtype)
        return cls(x, y)

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def k(self) -> np.ndarray:
        return self.y[:, 0]

    @property
    def n(self) -> np.ndarray:
        return self.y[:, 1]


class GroupBatches(keras.utils.PyDataset):
    """Mini-batches ``(x, y)`` of groups in a new random order at every epoch.

    Parameters
    ----------
    data
        The groups.
    batch_size
        Groups per batch; the last batch may be smaller.
    seed
        The order of epoch ``e`` is the permutation drawn by ``np.random.default_rng([seed,
        e])``: it depends on the seed and the epoch only, whoever calls ``__getitem__``.
    """

    def __init__(self, data: GroupArrays, *, batch_size: int, seed: int = 0) -> None:
        super().__init__()
        self.data = data
        self.batch_size = max(1, min(int(batch_size), len(data)))
        self.seed = int(seed)
        self.epoch = 0
        self._order = self.permutation(0)

    def permutation(self, epoch: int) -> np.ndarray:
        """The order of the groups in epoch ``epoch`` (0-based)."""
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.data))

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return self.data.x[rows], self.data.y[rows]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self.permutation(self.epoch)
