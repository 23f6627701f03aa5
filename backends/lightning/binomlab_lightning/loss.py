"""The grouped binomial and beta-binomial NLLs on logits: functions and nn.Module forms.

For a group with ``n`` trials, ``k`` successes and logit ``z``,

    NLL = n·softplus(z) − k·z = −[k·log σ(z) + (n − k)·log(1 − σ(z))]

which is the binary cross-entropy summed over the group's ``n`` raw rows. The softplus form
never takes ``log(0)``: it is finite for every ``z`` and for ``k = 0`` or ``k = n``.

The beta-binomial lets the success probability of each group vary around ``μ = σ(z)`` as
Beta(μφ, (1 − μ)φ), with a concentration ``φ = exp(θ)``:

    NLL = −[lgamma(k+α) + lgamma(n−k+β) − lgamma(n+φ) − lgamma(α) − lgamma(β) + lgamma(φ)]

with ``α = μφ``, ``β = (1 − μ)φ`` (the binomial coefficient, constant, is dropped). It tends to
the binomial NLL as ``φ → ∞``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "INITIAL_LOG_PHI",
    "LOG_PHI_RANGE",
    "REDUCTIONS",
    "BetaBinomialNLLWithLogits",
    "BinomialNLLWithLogits",
    "beta_binomial_nll_with_logits",
    "binomial_nll_with_logits",
]

REDUCTIONS = ("mean", "sum", "none")
INITIAL_LOG_PHI = math.log(100.0)
"""``θ = log φ`` at the start of training: φ = 100, a mild overdispersion."""
LOG_PHI_RANGE = (math.log(1e-8), math.log(1e12))
"""Where the loss clamps ``θ``: ``φ`` from 1e-8 (ρ ≈ 1) to 1e12 (ρ = 1e-12, the binomial)."""
_STIRLING_FROM = 10.0


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
    if reduction != "none" and not (successes.requires_grad or trials.requires_grad):
        scale = 1.0 if reduction == "sum" else trials.sum()
        return _FusedBinomialNLL.apply(z.reshape(-1), successes.reshape(-1), trials.reshape(-1),
                                       scale)  # fmt: skip
    nll = trials * F.softplus(z) - successes * z
    if reduction == "none":
        return nll.reshape(logits.shape)
    total = nll.sum()
    if reduction == "sum":
        return total
    return total / trials.sum()


class _FusedBinomialNLL(torch.autograd.Function):
    """``Σ[n·softplus(z) − k·z] / scale`` as one autograd node.

    The forward takes the sums as dot products; the backward computes the gradient
    ``(n·σ(z) − k) / scale`` in place, instead of autograd replaying the softplus, the
    products and the sum (about 1.5× BCE's cost on long inputs otherwise). Used for the
    ``"mean"`` and ``"sum"`` reductions when the counts need no gradient.
    """

    @staticmethod
    def forward(ctx, z: Tensor, k: Tensor, n: Tensor, scale: Tensor | float) -> Tensor:
        scale = torch.as_tensor(scale, dtype=z.dtype, device=z.device)
        ctx.save_for_backward(z, k, n, scale)
        return (torch.dot(n, F.softplus(z)) - torch.dot(k, z)) / scale

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        z, k, n, scale = ctx.saved_tensors
        return torch.sigmoid(z).mul_(n).sub_(k).mul_(grad / scale), None, None, None


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


def beta_binomial_nll_with_logits(
    logits: Tensor,
    successes: Tensor,
    trials: Tensor,
    log_phi: Tensor | float,
    reduction: str = "mean",
) -> Tensor:
    """Beta-binomial negative log-likelihood of grouped counts, from logits and ``log φ``.

    Parameters
    ----------
    logits
        ``z``, the logit of the mean success probability ``μ``; ``[groups]`` or
        ``[groups, 1]``.
    successes, trials
        ``k`` and ``n``, the same shape as ``logits`` (a trailing dimension of 1 on either
        side is squeezed); converted to ``logits``' dtype and device.
    log_phi
        ``θ = log φ``: a scalar tensor (one concentration, usually a trainable parameter) or
        one value per group; gradients flow to it. It is clamped to :data:`LOG_PHI_RANGE`
        (``φ`` from 1e-8 to 1e12), beyond which the likelihood is flat in double precision.
    reduction
        ``"mean"``: the NLL per trial, ``Σ NLL / Σn``; ``"sum"``: the total NLL;
        ``"none"``: the NLL of every group, shaped like ``logits``.

    Returns
    -------
    Tensor
        A scalar, or the per-group NLL for ``reduction="none"``, in ``logits``' dtype.
        float32 and half inputs are computed in float64 (except on Apple's MPS, which has
        none), and every ``lgamma(x + m) − lgamma(x)`` with ``x >= 10`` in Stirling's form, so
        that the value and its gradients stay accurate as ``φ`` grows and the loss tends to
        the binomial NLL.

    Raises
    ------
    ValueError
        An unknown ``reduction``, or shapes that do not match.
    """
    _check_reduction(reduction)
    dtype = logits.dtype
    work = dtype
    if dtype in (torch.float16, torch.bfloat16, torch.float32) and logits.device.type != "mps":
        work = torch.float64
    z = logits.to(work)
    k = torch.as_tensor(successes, device=logits.device).to(work)
    n = torch.as_tensor(trials, device=logits.device).to(work)
    if z.shape != k.shape or z.shape != n.shape:
        z, k, n = _align(z, k, n)
    theta = torch.as_tensor(log_phi, device=logits.device).to(work).clamp(*LOG_PHI_RANGE)
    if theta.ndim > 0 and theta.shape != z.shape:
        theta = theta.reshape(z.shape)
    # log α = log σ(z) + θ and log β = log σ(−z) + θ: exact in both tails of z
    log_alpha = F.logsigmoid(z) + theta
    log_beta = F.logsigmoid(-z) + theta
    nll = -(
        _lgamma_ratio(log_alpha, k)
        + _lgamma_ratio(log_beta, n - k)
        - _lgamma_ratio(theta.expand_as(z), n)
    )
    if reduction == "none":
        return nll.reshape(logits.shape).to(dtype)
    total = nll.sum()
    if reduction == "sum":
        return total.to(dtype)
    return (total / n.sum()).to(dtype)


def _lgamma_ratio(log_x: Tensor, m: Tensor) -> Tensor:
    """``lgamma(x + m) − lgamma(x)`` for ``x = exp(log_x) > 0`` and counts ``m >= 0``.

    Below :data:`_STIRLING_FROM` directly (``x`` kept above the smallest normal number, so a
    saturated logit gives a large finite loss and ``m = 0`` gives exactly 0); above, from
    Stirling's series ``lgamma(x) = (x − ½)·log x − x + ½·log 2π + ω(x)``:
    ``(x − ½)·log1p(m/x) + m·(log x + log1p(m/x)) − m + ω(x + m) − ω(x)``, which does not
    subtract two huge lgammas. Each branch only sees inputs valid for it, so that neither
    puts a NaN into the other's gradient.
    """
    x = torch.exp(log_x)
    large = x >= _STIRLING_FROM
    small_x = torch.where(large, torch.ones_like(x), x.clamp_min(torch.finfo(x.dtype).tiny))
    direct = torch.lgamma(small_x + m) - torch.lgamma(small_x)
    big_x = torch.where(large, x, torch.full_like(x, _STIRLING_FROM))
    log_big_x = torch.where(large, log_x, torch.full_like(x, math.log(_STIRLING_FROM)))
    log1p = torch.log1p(m / big_x)
    stirling = (
        (big_x - 0.5) * log1p + m * (log_big_x + log1p) - m + _binet(big_x + m) - _binet(big_x)
    )
    return torch.where(large, stirling, direct)


def _binet(x: Tensor) -> Tensor:
    """``ω(x) = lgamma(x) − (x − ½)·log x + x − ½·log 2π`` for ``x >= 10`` (error < 1e-12)."""
    inv = 1.0 / x
    inv2 = inv * inv
    return inv * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 / 1680)))


class BetaBinomialNLLWithLogits(nn.Module):
    """``nn.Module`` form of :func:`beta_binomial_nll_with_logits` that owns ``θ = log φ``.

    ``criterion = BetaBinomialNLLWithLogits(); loss = criterion(logits, successes, trials)``;
    give the optimiser ``criterion.parameters()`` next to the model's (and no weight decay on
    them), and read the fitted concentration from ``criterion.phi``.

    Parameters
    ----------
    reduction
        ``"mean"`` (per trial, the default), ``"sum"`` or ``"none"``.
    log_phi
        The initial ``θ``; ``log(100)`` by default.

    Attributes
    ----------
    log_phi
        The trainable scalar ``θ`` (an ``nn.Parameter``).

    Raises
    ------
    ValueError
        An unknown ``reduction``.
    """

    def __init__(self, reduction: str = "mean", *, log_phi: float = INITIAL_LOG_PHI) -> None:
        super().__init__()
        _check_reduction(reduction)
        self.reduction = reduction
        self.log_phi = nn.Parameter(torch.tensor(float(log_phi)))

    @property
    def phi(self) -> float:
        """The concentration ``φ = exp(θ)``, ``θ`` clamped to :data:`LOG_PHI_RANGE`."""
        return float(self.log_phi.detach().double().clamp(*LOG_PHI_RANGE).exp())

    def forward(self, logits: Tensor, successes: Tensor, trials: Tensor) -> Tensor:
        return beta_binomial_nll_with_logits(
            logits, successes, trials, self.log_phi, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, phi={self.phi:.4g}"
