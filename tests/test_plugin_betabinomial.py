"""``loss="beta-binomial"`` with one learned φ through every installed plugin backend: recovery
of a known ρ by L-BFGS and by Adam, the binomial limit, φ kept with the best weights and fixed
by the seed, the declared losses, and export with φ in the manifest and the native files. Each
plugin's own loss functions are tested in its tests/<plugin>/test_<plugin>_betabinomial.py."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import binomlab as bl
from binomlab.backends.protocol import TrainConfig, TrainData
from binomlab.betabinomial import beta_binomial_nll
from binomlab.specs import MLP
from binomlab.testing import counts_as_groups, overdispersed_counts

BACKENDS = [
    name
    for name in bl.backends.available(check=True)
    if "beta-binomial" in bl.backends.get(name).losses
]
pytestmark = pytest.mark.skipif(not BACKENDS, reason="no backend learns loss='beta-binomial'")


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.mark.parametrize("rho", [0.05, 0.2])
def test_lbfgs_recovers_a_known_rho(backend: str, rho: float) -> None:
    # 2,000 groups: the sampling error of the estimate is then a few % (about 10% at 300)
    g = counts_as_groups(*overdispersed_counts(rho, groups=2000))
    fitted = bl.fit(g, backend=backend, loss="beta-binomial")
    assert fitted.config.optimizer == "lbfgs"
    assert fitted.stop_reason == "converged"
    assert fitted.loss == "beta-binomial"
    assert 1 / (1 + fitted.phi_) == pytest.approx(rho, rel=0.1)
    # the reported train_nll is the beta-binomial NLL per trial at the returned weights
    k, n = (g.frame[c].to_numpy().astype(float) for c in ("k", "n"))
    exact = beta_binomial_nll(fitted.predict_logits(g), k, n, fitted.phi_)
    assert fitted.history["train_nll"][-1] == pytest.approx(exact, rel=1e-9)
    assert fitted.n_params_ == 4 + 1  # three weights, the bias and φ
    assert f", loss='beta-binomial', phi={fitted.phi_:.4g}, epochs=" in repr(fitted)


def test_adam_recovers_a_known_rho(backend: str) -> None:
    g = counts_as_groups(*overdispersed_counts(0.2, groups=2000, seed=1))
    fitted = bl.fit(
        g, backend=backend, loss="beta-binomial", optimizer="adam", epochs=30,
        batch_size=256, lr=0.05,
    )  # fmt: skip
    assert 1 / (1 + fitted.phi_) == pytest.approx(0.2, rel=0.1)


def test_binomial_data_sends_phi_to_the_binomial_limit(backend: str) -> None:
    g = counts_as_groups(*overdispersed_counts(0.0, seed=2))
    beta = bl.fit(g, backend=backend, loss="beta-binomial")
    binomial = bl.fit(g, backend=backend)
    assert beta.phi_ > 200 and 1 / (1 + beta.phi_) < 0.005
    assert binomial.phi_ is None
    assert beta.history["train_nll"][-1] == pytest.approx(
        binomial.history["train_nll"][-1], rel=1e-3
    )
    assert np.allclose(beta.predict_proba(g), binomial.predict_proba(g), atol=1e-3)


def test_best_weights_include_phi(backend: str) -> None:
    X, k, n = overdispersed_counts(0.1, seed=3, groups=260)
    train, val = (
        TrainData(X[s].astype(np.float32), k[s], n[s]) for s in (slice(60), slice(60, None))
    )
    seen: list[float] = []
    config = TrainConfig(epochs=30, batch_size=16, lr=0.1, loss="beta-binomial", seed=1)
    network = bl.backends.get(backend).fit(
        train, val, MLP(hidden=(32,)), config, lambda e, m: seen.append(m["val_nll"])
    )
    best = int(np.argmin(seen))
    assert best < len(seen) - 1, "the test needs a best epoch before the last"
    z = network.predict_logits(val.X)
    # the val_nll of the best epoch is reproduced only with that epoch's φ as well
    assert beta_binomial_nll(z, val.k, val.n, network.phi) == pytest.approx(seen[best], rel=1e-6)


def test_same_seed_same_phi(backend: str) -> None:
    X, k, n = overdispersed_counts(0.1, seed=5)
    train = TrainData(X.astype(np.float32), k, n)
    config = TrainConfig(epochs=5, batch_size=50, loss="beta-binomial", seed=3)
    a, b = (
        bl.backends.get(backend).fit(train, None, MLP(hidden=(4,)), config, lambda e, m: None)
        for _ in range(2)
    )
    assert a.phi == b.phi
    assert np.array_equal(a.predict_logits(train.X), b.predict_logits(train.X))


def test_backend_declares_both_losses(backend: str) -> None:
    assert type(bl.backends.get(backend)).losses == ("binomial", "beta-binomial")
    g = counts_as_groups(*overdispersed_counts(0.1, groups=30))
    with pytest.raises(bl.BinomlabError, match=r"Received: loss='quasi'"):
        bl.fit(g, backend=backend, loss="quasi")


def test_export_round_trip_keeps_phi(tmp_path, backend: str) -> None:
    load_native = importlib.import_module(f"binomlab_{backend}").load_native
    g = counts_as_groups(*overdispersed_counts(0.05, seed=6))
    fitted = bl.fit(g, backend=backend, loss="beta-binomial")
    served = bl.load(fitted.export(tmp_path / "m"))
    assert served.loss == "beta-binomial"
    assert served.phi == fitted.phi_
    rows = g.frame.select(g.features)
    assert np.allclose(served.predict_proba(rows), fitted.predict_proba(rows), atol=1e-5)
    # the ONNX graph outputs the logits of the mean only; φ lives in the manifest
    assert [o.name for o in served._session.get_outputs()] == ["logit"]
    trials = g.frame["n"].to_numpy()
    lower, upper = served.predict_interval(rows, trials)
    f_lower, f_upper = fitted.predict_interval(rows, trials)
    assert np.abs(lower - f_lower).max() <= 1 and np.abs(upper - f_upper).max() <= 1
    k = g.frame["k"].to_numpy()
    assert np.mean((lower <= k) & (k <= upper)) > 0.9
    native = load_native(tmp_path / "m")
    assert native.phi == fitted.phi_
    X = fitted.encoder.transform(g)
    assert np.array_equal(native.predict_logits(X), fitted.network.predict_logits(X))
    assert load_native(bl.fit(g, backend=backend).export(tmp_path / "b")).phi is None
