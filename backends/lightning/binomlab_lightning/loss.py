"""The grouped binomial NLL on logits, as a function and as an ``nn.Module``.

For a group with ``n`` trials, ``k`` successes and logit ``z``,

    NLL = n·softplus(z) − k·z = −[k·log σ(z) + (n − k)·log(1 − σ(z))]

which is the binary cross-entropy summed over the group's ``n`` raw rows. The softplus form
never takes ``log(0)``: it is finite for every ``z`` and for ``k = 0`` or ``k = n``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["REDUCTIONS", "BinomialNLLWithLogits", "binomial_nll_with_logits"]

REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        msg = f"Expected one of {REDUCTIONS}. Received: reduction={reduction!r}"
        raise ValueError(msg)


def binomial_nll_with_logits(
    logits: Tensor, successes: Tensor, trials: Tensor, reduction: str = "mean"
) -> Tensor:
    """Binomial negative log-likelihood of grouped counts, from logits.

    Parameters
    ----------
    logits
        ``z``, any shape; ``[groups]`` or ``[groups, 1]`` in a model.
    successes, trials
        ``k`` and ``n``, the same shape as ``logits`` (a trailing dimension of 1 on either
        side is squeezed); converted to ``logits``' dtype and device. ``n = 1`` gives the BCE
        of 0/1 rows.
    reduction
        ``"mean"``: ``Σ[n·softplus(z) − k·z] / Σn``, the per-trial NLL, equal to the mean BCE
        over the expanded rows (not a mean over groups); ``"sum"``: the total NLL;
        ``"none"``: the NLL of every group, shaped like ``logits``.

    Returns
    -------
    Tensor
        A scalar, or the per-group NLL for ``reduction="none"``.

    Raises
    ------
    ValueError
        An unknown ``reduction``, or shapes that do not match.
    """
    _check_reduction(reduction)
    successes = torch.as_tensor(successes, dtype=logits.dtype, device=logits.device)
    trials = torch.as_tensor(trials, dtype=logits.dtype, device=logits.device)
    z = logits
    if z.shape != successes.shape or z.shape != trials.shape:
        z, successes, trials = _align(logits, successes, trials)
    nll = trials * F.softplus(z) - successes * z
    if reduction == "none":
        return nll.reshape(logits.shape)
    total = nll.sum()
    if reduction == "sum":
        return total
    return total / trials.sum()


def _align(logits: Tensor, successes: Tensor, trials: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Squeeze a trailing dimension of 1 (``[groups, 1]`` vs ``[groups]``) or raise."""

    def flat(t: Tensor) -> Tensor:
        return t.squeeze(-1) if t.ndim >= 1 and t.shape[-1] == 1 and t.ndim > 1 else t

    z, k, n = flat(logits), flat(successes), flat(trials)
    if z.shape != k.shape or z.shape != n.shape:
        msg = (
            "logits, successes and trials must have the same shape (one value per group). "
            f"Received: logits {tuple(logits.shape)}, successes {tuple(successes.shape)}, "
            f"trials {tuple(trials.shape)}"
        )
        raise ValueError(msg)
    return z, k, n


class BinomialNLLWithLogits(nn.Module):
    """``nn.Module`` form of :func:`binomial_nll_with_logits`.

    ``loss = BinomialNLLWithLogits(); loss(logits, successes, trials)``.

    Parameters
    ----------
    reduction
        ``"mean"`` (per trial, the default), ``"sum"`` or ``"none"``.

    Raises
    ------
    ValueError
        An unknown ``reduction``.
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        _check_reduction(reduction)
        self.reduction = reduction

    def forward(self, logits: Tensor, successes: Tensor, trials: Tensor) -> Tensor:
        return binomial_nll_with_logits(logits, successes, trials, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
