"""The beta-binomial loss of the Lightning plugin: the loss against SciPy, its gradients, the
module form in a plain torch loop, and the learned concentration φ in the LightningModule (no
weight decay, trained by L-BFGS with weight decay). What every plugin shares in training and
export (recovery of a known ρ, the binomial limit, best weights, the seed, the native files)
is in tests/test_plugin_betabinomial.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("binomlab_lightning")

from helpers import PHIS  # noqa: E402
from helpers import beta_binomial_loss_cases as _groups  # noqa: E402
from scipy import stats  # noqa: E402
from scipy.special import expit, gammaln  # noqa: E402

import binomlab as bl  # noqa: E402
from binomlab.backends.protocol import TrainConfig, TrainData  # noqa: E402
from binomlab.betabinomial import beta_binomial_nll  # noqa: E402
from binomlab.specs import MLP, Logistic  # noqa: E402
from binomlab.testing import counts_as_groups, overdispersed_counts  # noqa: E402
from binomlab_lightning import (  # noqa: E402
    BetaBinomialNLLWithLogits,
    BinomialModule,
    LightningBackend,
    beta_binomial_nll_with_logits,
    binomial_nll_with_logits,
)
from binomlab_lightning.loss import LOG_PHI_RANGE  # noqa: E402


def _scipy_nll(z, k, n, phi) -> float:
    """SciPy's beta-binomial log-pmf, less the log binomial coefficient, per trial."""
    mu = expit(z)
    logpmf = stats.betabinom.logpmf(k, n, mu * phi, (1 - mu) * phi)
    log_coefficient = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    return float(-np.sum(logpmf - log_coefficient) / n.sum())


def _direct(z, k, n, log_phi):
    """The protocol's formula written with torch.lgamma, term by term."""
    phi = torch.exp(log_phi)
    mu = torch.sigmoid(z)
    a, b = mu * phi, (1 - mu) * phi
    ll = (
        torch.lgamma(k + a) + torch.lgamma(n - k + b) - torch.lgamma(n + phi)
        - torch.lgamma(a) - torch.lgamma(b) + torch.lgamma(phi)
    )  # fmt: skip
    return -ll


# -- the loss --------------------------------------------------------------------------------


@pytest.mark.parametrize("phi", PHIS)
def test_loss_equals_scipy_per_trial(phi: float) -> None:
    z, k, n = _groups()
    t = [torch.tensor(a) for a in (z, k, n)]
    log_phi = torch.tensor(math.log(phi), dtype=torch.float64)
    mean = beta_binomial_nll_with_logits(*t, log_phi)
    assert mean.dtype == torch.float64
    assert mean.item() == pytest.approx(_scipy_nll(z, k, n, phi), rel=1e-6)
    assert mean.item() == pytest.approx(beta_binomial_nll(z, k, n, phi), rel=1e-9)
    per_group = beta_binomial_nll_with_logits(*t, log_phi, reduction="none")
    assert per_group.shape == (len(z),)
    torch.testing.assert_close(per_group.sum() / t[2].sum(), mean)
    total = beta_binomial_nll_with_logits(*t, log_phi, reduction="sum")
    torch.testing.assert_close(total, per_group.sum())
    torch.testing.assert_close(per_group, _direct(*t, log_phi), rtol=1e-9, atol=1e-7)


@pytest.mark.parametrize("phi", PHIS)
def test_gradients_equal_autograd_of_the_direct_formula(phi: float) -> None:
    z, k, n = _groups(seed=1)
    k_t, n_t = torch.tensor(k), torch.tensor(n)
    grads = []
    for loss in (
        lambda zz, th: beta_binomial_nll_with_logits(zz, k_t, n_t, th),
        lambda zz, th: _direct(zz, k_t, n_t, th).sum() / n_t.sum(),
    ):
        zz = torch.tensor(z, requires_grad=True)
        th = torch.tensor(math.log(phi), dtype=torch.float64, requires_grad=True)
        grads.append(torch.autograd.grad(loss(zz, th), (zz, th)))
    (gz, gth), (rz, rth) = grads
    torch.testing.assert_close(gz, rz, rtol=1e-7, atol=1e-12)
    torch.testing.assert_close(gth, rth, rtol=1e-7, atol=1e-12)


def test_gradients_equal_finite_differences() -> None:
    z, k, n = _groups(seed=2, groups=30)
    k_t, n_t = torch.tensor(k), torch.tensor(n)
    for phi in (0.5, 40.0, 3e4):
        inputs = (
            torch.tensor(z, requires_grad=True),
            torch.tensor(math.log(phi), dtype=torch.float64, requires_grad=True),
        )
        assert torch.autograd.gradcheck(
            lambda zz, th: beta_binomial_nll_with_logits(zz, k_t, n_t, th),
            inputs,
            eps=1e-6,
            atol=1e-7,
            rtol=1e-5,
        )


def test_large_phi_is_the_binomial_and_stays_accurate() -> None:
    z, k, n = _groups(seed=3)
    t = [torch.tensor(a) for a in (z, k, n)]
    binomial = binomial_nll_with_logits(*t).item()
    for phi in (1e8, 1e10, 1e12, 1e30):  # 1e30 is beyond the clamp: the same as 1e12
        bb = beta_binomial_nll_with_logits(*t, torch.tensor(math.log(phi))).item()
        assert bb == pytest.approx(binomial, rel=1e-5)
    z_t = torch.tensor(z, requires_grad=True)
    (g_bb,) = torch.autograd.grad(beta_binomial_nll_with_logits(z_t, *t[1:], 25.0), z_t)
    (g_bin,) = torch.autograd.grad(binomial_nll_with_logits(z_t, *t[1:]), z_t)
    torch.testing.assert_close(g_bb, g_bin, rtol=1e-4, atol=1e-12)


def test_finite_at_saturated_logits_and_extreme_phi() -> None:
    z = torch.tensor([60.0, -60.0, 800.0, -800.0, 0.0], dtype=torch.float64, requires_grad=True)
    k = torch.tensor([5.0, 0.0, 3.0, 3.0, 2.0], dtype=torch.float64)
    n = torch.tensor([5.0, 4.0, 3.0, 3.0, 9.0], dtype=torch.float64)
    for log_phi in (-100.0, *LOG_PHI_RANGE, 0.0, 100.0):
        loss = beta_binomial_nll_with_logits(z, k, n, log_phi, reduction="none")
        assert torch.isfinite(loss).all()
        (grad,) = torch.autograd.grad(loss.sum(), z)
        assert torch.isfinite(grad).all()


def test_float32_is_computed_in_float64_and_returned_in_float32() -> None:
    z, k, n = _groups(seed=4)
    z32 = torch.tensor(z, dtype=torch.float32)
    out = beta_binomial_nll_with_logits(z32, torch.tensor(k), torch.tensor(n), math.log(1e6))
    assert out.dtype == torch.float32
    exact = beta_binomial_nll(z32.double().numpy(), k, n, 1e6)
    assert out.item() == pytest.approx(exact, rel=1e-6)


def test_shapes_and_errors() -> None:
    z, k, n = _groups(seed=5, groups=10)
    col = [torch.tensor(a).unsqueeze(-1) for a in (z, k, n)]
    flat = [torch.tensor(a) for a in (z, k, n)]
    assert beta_binomial_nll_with_logits(*col, 1.0, reduction="none").shape == (10, 1)
    torch.testing.assert_close(
        beta_binomial_nll_with_logits(col[0], *flat[1:], 1.0),
        beta_binomial_nll_with_logits(*flat, 1.0),
    )
    per_group_phi = torch.full((10,), 1.0, dtype=torch.float64)
    torch.testing.assert_close(
        beta_binomial_nll_with_logits(*flat, per_group_phi),
        beta_binomial_nll_with_logits(*flat, 1.0),
    )
    with pytest.raises(ValueError, match=r"Received: reduction='avg'"):
        beta_binomial_nll_with_logits(*flat, 1.0, reduction="avg")
    with pytest.raises(ValueError, match="same shape"):
        beta_binomial_nll_with_logits(flat[0], flat[1][:5], flat[2], 1.0)


def test_module_form_owns_a_trainable_log_phi() -> None:
    criterion = BetaBinomialNLLWithLogits()
    assert [name for name, _ in criterion.named_parameters()] == ["log_phi"]
    assert criterion.phi == pytest.approx(100.0)
    assert "phi=100" in repr(criterion)
    z, k, n = _groups(seed=6)
    t = [torch.tensor(a) for a in (z, k, n)]
    torch.testing.assert_close(
        criterion(*t), beta_binomial_nll_with_logits(*t, math.log(100.0)), check_dtype=False
    )
    criterion(*t).backward()
    assert criterion.log_phi.grad is not None
    with pytest.raises(ValueError, match="reduction"):
        BetaBinomialNLLWithLogits("avg")


def test_module_form_in_a_plain_torch_loop_recovers_rho() -> None:
    X, k, n = overdispersed_counts(0.1, seed=7)
    torch.manual_seed(0)
    model = torch.nn.Linear(X.shape[1], 1).double()
    criterion = BetaBinomialNLLWithLogits()
    params = [*model.parameters(), *criterion.parameters()]
    optimizer = torch.optim.LBFGS(
        params, max_iter=500, tolerance_grad=1e-9, tolerance_change=0, line_search_fn="strong_wolfe"
    )
    X_t, k_t, n_t = torch.tensor(X), torch.tensor(k), torch.tensor(n)

    def closure():
        optimizer.zero_grad()
        loss = criterion(model(X_t), k_t, n_t)  # [groups, 1] logits against [groups] counts
        loss.backward()
        return loss

    optimizer.step(closure)
    # the maximum-likelihood ρ of this sample (0.114), which the backend finds too
    assert 1 / (1 + criterion.phi) == pytest.approx(0.1, rel=0.2)
    fitted = bl.fit(counts_as_groups(X, k, n), backend="lightning", loss="beta-binomial")
    assert criterion.phi == pytest.approx(fitted.phi_, rel=1e-4)


# -- training through the backend ------------------------------------------------------------


def test_phi_is_not_weight_decayed() -> None:
    module = BinomialModule(
        spec=MLP(hidden=(4,)).to_dict(), input_dim=3, weight_decay=0.5, loss="beta-binomial"
    )
    groups = module.configure_optimizers().param_groups
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert decay[id(module.criterion.log_phi)] == 0.0
    assert sum(decay.values()) > 0  # the weights are decayed
    # the penalty the core adds (L-BFGS) and ranks epochs by is over module.decayed()
    assert all(p is not module.criterion.log_phi for p in module.decayed())
    assert "criterion.log_phi" in module.state_dict()
    with pytest.raises(ValueError, match=r"Received: loss='poisson'"):
        BinomialModule(spec=Logistic().to_dict(), input_dim=3, loss="poisson")


def test_lbfgs_with_weight_decay_trains_phi() -> None:
    X, k, n = overdispersed_counts(0.2, seed=4)
    train = TrainData(X.astype(np.float32), k, n)
    config = TrainConfig(optimizer="lbfgs", weight_decay=1e-3, loss="beta-binomial")
    network = LightningBackend().fit(train, None, Logistic(), config, lambda e, m: None)
    assert 1 / (1 + network.phi) == pytest.approx(0.2, rel=0.1)
