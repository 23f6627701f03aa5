"""The beta-binomial loss of the Lightning plugin: the loss against SciPy, its gradients, the
learned concentration φ in training (recovery of a known ρ, the binomial limit, best weights,
no weight decay) and in export."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("binomlab_lightning")
pytest.importorskip("onnxruntime")

from scipy import stats  # noqa: E402
from scipy.special import expit, gammaln  # noqa: E402

import binomlab as bl  # noqa: E402
from binomlab.betabinomial import beta_binomial_nll  # noqa: E402
from binomlab.protocol import TrainConfig, TrainData  # noqa: E402
from binomlab.specs import MLP, Logistic  # noqa: E402
from binomlab_lightning import (  # noqa: E402
    BetaBinomialNLLWithLogits,
    BinomialModule,
    LightningBackend,
    beta_binomial_nll_with_logits,
    binomial_nll_with_logits,
    load_native,
)
from binomlab_lightning.loss import LOG_PHI_RANGE  # noqa: E402

PHIS = [1e-3, 0.3, 4.0, 25.0, 250.0, 1e5]
"""Concentrations on both sides of the Stirling threshold (α, β, φ below and above 10)."""


def _groups(seed: int = 0, groups: int = 120):
    """float64 logits and counts with k = 0 and k = n groups, n up to a few hundred."""
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 400, groups).astype(np.float64)
    k = np.floor(rng.random(groups) * (n + 1))
    k[:4], k[4:8] = 0, n[4:8]
    n[8], k[8] = 1, 1  # a single raw row
    z = rng.normal(0.0, 2.0, groups)
    return z, k, n


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


def _simulate(rho: float, *, groups: int = 300, seed: int = 0, d: int = 3):
    """Counts from a beta-binomial with mean σ(Xw + b) and intra-group correlation ρ."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(groups, d))
    z = X @ np.linspace(0.8, -0.4, d) - 0.5
    n = rng.integers(50, 501, groups)
    if rho == 0:
        k = rng.binomial(n, expit(z))
    else:
        phi = 1 / rho - 1
        k = rng.binomial(n, rng.beta(expit(z) * phi, (1 - expit(z)) * phi))
    return X, k.astype(np.float64), n.astype(np.float64)


def test_module_form_in_a_plain_torch_loop_recovers_rho() -> None:
    X, k, n = _simulate(0.1, seed=7)
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
    fitted = bl.fit(_grouped(X, k, n), backend="lightning", loss="beta-binomial")
    assert criterion.phi == pytest.approx(fitted.phi_, rel=1e-4)


# -- training through the backend ------------------------------------------------------------


def _grouped(X, k, n) -> bl.Grouped:
    frame = pl.DataFrame({f"x{j}": X[:, j] for j in range(X.shape[1])})
    frame = frame.with_columns(n=pl.Series(n.astype(np.int64)), k=pl.Series(k.astype(np.int64)))
    return bl.from_counts(frame, list(frame.columns[:-2]))


@pytest.mark.parametrize("rho", [0.05, 0.2])
def test_lbfgs_recovers_a_known_rho(rho: float) -> None:
    # 2,000 groups: the sampling error of the estimate is then a few % (about 10% at 300)
    g = _grouped(*_simulate(rho, groups=2000))
    fitted = bl.fit(g, backend="lightning", loss="beta-binomial")
    assert fitted.config.optimizer == "lbfgs"
    assert fitted.stop_reason == "converged"
    assert fitted.loss == "beta-binomial"
    assert 1 / (1 + fitted.phi_) == pytest.approx(rho, rel=0.1)
    # the reported train_nll is the beta-binomial NLL per trial at the returned weights
    k, n = (g.frame[c].to_numpy().astype(float) for c in ("k", "n"))
    exact = beta_binomial_nll(fitted.predict_logits(g), k, n, fitted.phi_)
    assert fitted.history["train_nll"][-1] == pytest.approx(exact, rel=1e-9)
    assert fitted.n_params_ == 4 + 1  # three weights, the bias and φ


def test_adam_recovers_a_known_rho() -> None:
    g = _grouped(*_simulate(0.2, groups=2000, seed=1))
    fitted = bl.fit(
        g, backend="lightning", loss="beta-binomial", optimizer="adam", epochs=30,
        batch_size=256, lr=0.05,
    )  # fmt: skip
    assert 1 / (1 + fitted.phi_) == pytest.approx(0.2, rel=0.1)


def test_binomial_data_sends_phi_to_the_binomial_limit() -> None:
    g = _grouped(*_simulate(0.0, seed=2))
    beta = bl.fit(g, backend="lightning", loss="beta-binomial")
    binomial = bl.fit(g, backend="lightning")
    assert beta.phi_ > 200 and 1 / (1 + beta.phi_) < 0.005
    assert binomial.phi_ is None
    assert beta.history["train_nll"][-1] == pytest.approx(
        binomial.history["train_nll"][-1], rel=1e-3
    )
    assert np.allclose(beta.predict_proba(g), binomial.predict_proba(g), atol=1e-3)


def test_best_weights_include_phi() -> None:
    X, k, n = _simulate(0.1, seed=3, groups=260)
    train, val = (
        TrainData(X[s].astype(np.float32), k[s], n[s]) for s in (slice(60), slice(60, None))
    )
    seen: list[float] = []
    config = TrainConfig(epochs=30, batch_size=16, lr=0.1, loss="beta-binomial", seed=1)
    network = LightningBackend().fit(
        train, val, MLP(hidden=(32,)), config, lambda e, m: seen.append(m["val_nll"])
    )
    best = int(np.argmin(seen))
    assert best < len(seen) - 1, "the test needs a best epoch before the last"
    z = network.predict_logits(val.X)
    # the val_nll of the best epoch is reproduced only with that epoch's φ as well
    assert beta_binomial_nll(z, val.k, val.n, network.phi) == pytest.approx(seen[best], rel=1e-6)


def test_phi_is_not_weight_decayed() -> None:
    module = BinomialModule(
        spec=MLP(hidden=(4,)).to_dict(), input_dim=3, weight_decay=0.5, loss="beta-binomial"
    )
    groups = module.configure_optimizers().param_groups
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert decay[id(module.criterion.log_phi)] == 0.0
    assert sum(decay.values()) > 0  # the weights are decayed
    before = module.penalty()
    with torch.no_grad():
        module.criterion.log_phi.fill_(12.0)
    torch.testing.assert_close(module.penalty(), before)
    assert "criterion.log_phi" in module.state_dict()
    with pytest.raises(ValueError, match=r"Received: loss='poisson'"):
        BinomialModule(spec=Logistic().to_dict(), input_dim=3, loss="poisson")


def test_lbfgs_with_weight_decay_trains_phi() -> None:
    X, k, n = _simulate(0.2, seed=4)
    train = TrainData(X.astype(np.float32), k, n)
    config = TrainConfig(optimizer="lbfgs", weight_decay=1e-3, loss="beta-binomial")
    network = LightningBackend().fit(train, None, Logistic(), config, lambda e, m: None)
    assert 1 / (1 + network.phi) == pytest.approx(0.2, rel=0.1)


def test_same_seed_same_phi() -> None:
    X, k, n = _simulate(0.1, seed=5)
    train = TrainData(X.astype(np.float32), k, n)
    config = TrainConfig(epochs=5, batch_size=50, loss="beta-binomial", seed=3)
    a, b = (
        LightningBackend().fit(train, None, MLP(hidden=(4,)), config, lambda e, m: None)
        for _ in range(2)
    )
    assert a.phi == b.phi
    assert np.array_equal(a.predict_logits(train.X), b.predict_logits(train.X))


def test_backend_declares_both_losses() -> None:
    assert LightningBackend.losses == ("binomial", "beta-binomial")
    g = _grouped(*_simulate(0.1, groups=30))
    with pytest.raises(bl.BinomlabError, match=r"Received: loss='quasi'"):
        bl.fit(g, backend="lightning", loss="quasi")


# -- export ----------------------------------------------------------------------------------


def test_export_round_trip_keeps_phi(tmp_path) -> None:
    g = _grouped(*_simulate(0.05, seed=6))
    fitted = bl.fit(g, backend="lightning", loss="beta-binomial")
    served = bl.load(fitted.export(tmp_path / "m"))
    assert served.loss == "beta-binomial"
    assert served.phi == fitted.phi_
    rows = g.frame.select(g.features)
    assert np.allclose(served.predict_proba(rows), fitted.predict_proba(rows), atol=1e-5)
    # the ONNX graph outputs the logits of the mean only; φ lives in the manifest
    assert [o.name for o in served._session.get_outputs()] == ["logit"]
    lower, upper = served.predict_interval(rows, g.frame["n"].to_numpy())
    f_lower, f_upper = fitted.predict_interval(rows, g.frame["n"].to_numpy())
    assert np.abs(lower - f_lower).max() <= 1 and np.abs(upper - f_upper).max() <= 1
    k = g.frame["k"].to_numpy()
    assert np.mean((lower <= k) & (k <= upper)) > 0.9
    native = load_native(tmp_path / "m")
    assert native.phi == fitted.phi_
    X = fitted.encoder.transform(g)
    assert np.array_equal(native.predict_logits(X), fitted.network.predict_logits(X))
