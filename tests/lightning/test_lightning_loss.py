"""binomial_nll_with_logits equals BCE over the expanded 0/1 rows, values and gradients."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("binomlab_lightning")

from helpers import binomial_loss_cases  # noqa: E402

from binomlab_lightning import BinomialNLLWithLogits, binomial_nll_with_logits  # noqa: E402


def _groups(seed: int = 0, groups: int = 40):
    """:func:`helpers.binomial_loss_cases` as tensors; the logits require grad."""
    z, k, n = binomial_loss_cases(seed, groups)
    return (
        torch.tensor(z, dtype=torch.float64, requires_grad=True),
        torch.tensor(k),
        torch.tensor(n),
    )


def _expanded_bce(z, k, n, reduction):
    """BCEWithLogitsLoss over the raw rows: group i repeated n_i times, k_i of them ones."""
    rows_z = z.repeat_interleave(n)
    targets = torch.cat(
        [
            torch.cat([torch.ones(int(ki)), torch.zeros(int(ni - ki))])
            for ki, ni in zip(k, n, strict=True)
        ]
    ).to(torch.float64)
    loss = torch.nn.BCEWithLogitsLoss(reduction="none" if reduction == "none" else reduction)
    out = loss(rows_z, targets)
    if reduction == "none":  # back to one value per group
        group = torch.arange(len(n)).repeat_interleave(n)
        out = torch.zeros(len(n), dtype=torch.float64).index_add(0, group, out)
    return out


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_equals_bce_over_expanded_rows(reduction: str) -> None:
    z, k, n = _groups()
    ours = binomial_nll_with_logits(z, k, n, reduction=reduction)
    (grad_ours,) = torch.autograd.grad(ours.sum(), z)
    ref = _expanded_bce(z, k, n, reduction)
    (grad_ref,) = torch.autograd.grad(ref.sum(), z)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad_ours, grad_ref, rtol=1e-6, atol=1e-6)


def test_mean_divides_by_trials_not_rows() -> None:
    z = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    k = torch.tensor([2.0, 0.0, 7.0], dtype=torch.float64)
    n = torch.tensor([5.0, 1.0, 7.0], dtype=torch.float64)
    total = binomial_nll_with_logits(z, k, n, reduction="sum")
    assert binomial_nll_with_logits(z, k, n) == pytest.approx(float(total / 13))
    # torch's weighted mean (BCE with target k/n and weight n) divides by the 3 groups instead
    trap = torch.nn.functional.binary_cross_entropy_with_logits(z, k / n, weight=n)
    assert float(trap) == pytest.approx(float(total / 3))


def test_finite_at_saturated_logits() -> None:
    z = torch.tensor([1000.0, -1000.0, 1000.0, -1000.0], requires_grad=True)
    k = torch.tensor([3.0, 0.0, 0.0, 3.0])
    n = torch.tensor([3.0, 3.0, 3.0, 3.0])
    loss = binomial_nll_with_logits(z, k, n, reduction="none")
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(z.grad).all()
    torch.testing.assert_close(loss, torch.tensor([0.0, 0.0, 3000.0, 3000.0]))


def test_module_form_and_count_dtypes() -> None:
    z, k, n = _groups(seed=1)
    loss = BinomialNLLWithLogits(reduction="sum")
    assert "reduction='sum'" in repr(loss)
    # integer counts are converted to the logits' dtype; [groups, 1] logits are accepted
    value = loss(z.detach().float().unsqueeze(-1), k, n)
    assert value.dtype == torch.float32
    expected = binomial_nll_with_logits(z.detach(), k.double(), n.double(), reduction="sum")
    assert float(value) == pytest.approx(float(expected), rel=1e-5)


def test_none_keeps_the_logits_shape() -> None:
    z, k, n = _groups(groups=8)
    out = binomial_nll_with_logits(z.detach().unsqueeze(-1), k, n, reduction="none")
    assert out.shape == (8, 1)


@pytest.mark.parametrize("reduction", ["x", "batch", None])
def test_bad_reduction(reduction) -> None:
    z, k, n = _groups(groups=8)
    match = rf"Expected one of \('mean', 'sum', 'none'\)\. Received: reduction={reduction!r}"
    with pytest.raises(ValueError, match=match):
        binomial_nll_with_logits(z, k, n, reduction=reduction)
    with pytest.raises(ValueError, match=match):
        BinomialNLLWithLogits(reduction=reduction)


def test_shape_mismatch() -> None:
    z, k, n = _groups(groups=8)
    with pytest.raises(ValueError, match=r"same shape.*logits \(8,\), successes \(7,\)"):
        binomial_nll_with_logits(z, k[:7], n)
    with pytest.raises(ValueError, match="same shape"):
        binomial_nll_with_logits(z.detach().reshape(8, 1).expand(8, 2), k, n)
