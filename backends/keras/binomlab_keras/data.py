"""Encoded groups as the arrays Keras trains on, ``x`` and ``y_true = [k, n]`` per group; the
order of the groups in each epoch; and the mini-batches of groups ``model.fit`` draws from them
on Keras's torch and JAX backends (TensorFlow trains in the graph:
:mod:`binomlab_keras.graph_epochs`).

:class:`~binomlab_keras.loss.BinomialNLL` divides each batch's NLL by that batch's trials.
Every epoch takes the groups in a new order drawn from the training seed
(:func:`epoch_order`): Keras's own ``fit(x, y, shuffle=True)`` on TensorFlow replays one
permutation in every epoch once a global seed is set (tf.data re-seeds each new iterator;
tensorflow/tensorflow#29558), which trains measurably worse than a new order per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from binomlab.backends.protocol import TrainData

__all__ = ["GroupArrays", "GroupBatches", "epoch_order"]


def epoch_order(seed: int, epoch: int, groups: int) -> np.ndarray:
    """The order of ``groups`` groups in the 0-based ``epoch`` of a fit seeded ``seed``:
    the permutation drawn by ``np.random.default_rng([seed, epoch])``, int64 ``[groups]``."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(int(groups))


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
        The order of epoch ``e`` (0-based) is :func:`epoch_order` ``(seed, e, groups)``: it
        depends on the seed and the epoch only, whoever calls ``__getitem__``.

    Notes
    -----
    The epoch advances in :meth:`on_epoch_begin`, which ``model.fit`` calls before every
    epoch; ``fit`` also calls :meth:`on_epoch_end` once before the first epoch (and looks at
    the first batches to learn their shapes), so counting ends would start training at
    epoch 1's order.
    """

    def __init__(self, data: GroupArrays, *, batch_size: int, seed: int = 0) -> None:
        super().__init__()
        self.data = data
        self.batch_size = max(1, min(int(batch_size), len(data)))
        self.seed = int(seed)
        self.epoch = 0  # the epoch whose order __getitem__ serves
        self._begun = 0  # epochs begun
        self._order = self.permutation(0)

    def permutation(self, epoch: int) -> np.ndarray:
        """The order of the groups in epoch ``epoch`` (0-based)."""
        return epoch_order(self.seed, epoch, len(self.data))

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return self.data.x[rows], self.data.y[rows]

    def on_epoch_begin(self) -> None:
        self.epoch, self._begun = self._begun, self._begun + 1
        self._order = self.permutation(self.epoch)
