"""``phi="network"`` in the Keras plugin: the LogPhiDense head (its start, no weight decay, in a
user's own model) and Adam with validation. What every backend shares (recovery of ρ per
level, coverage, ONNX with two outputs, the native files, agreement) is in
tests/test_phi_network.py; the fit on Keras's torch backend is in test_keras_betabinomial.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

# the plugin first: it quiets TensorFlow's start-up messages, which must precede its import
pytest.importorskip("binomlab_keras")
keras = pytest.importorskip("keras")

import binomlab as bl  # noqa: E402
from binomlab.betabinomial import beta_binomial_nll  # noqa: E402
from binomlab.testing import OVERDISPERSION_LOG_PHI as LOG_PHI  # noqa: E402
from binomlab.testing import overdispersed_groups  # noqa: E402
from binomlab_keras import BetaBinomialNLL, LogPhiDense, pack_counts  # noqa: E402
from binomlab_keras.model import build_model, kernels, with_phi_head  # noqa: E402


@pytest.fixture(scope="module")
def grouped() -> bl.Grouped:
    return overdispersed_groups()


def test_adam_with_validation_reports_the_per_group_nll(grouped: bl.Grouped) -> None:
    train, val = grouped.split(test=0.3, seed=0)
    seen: list[float] = []
    fitted = bl.fit(
        train, val=val, model="mlp:8", backend="keras", loss="beta-binomial", phi="network",
        optimizer="adamw", weight_decay=1e-3, epochs=4, batch_size=128, lr=0.02,
        callbacks=[lambda e, m: seen.append(m["val_nll"])],
    )  # fmt: skip
    best = int(np.argmin(seen))
    k, n = (val.frame[c].to_numpy().astype(float) for c in ("k", "n"))
    z, phi = fitted.predict_logits(val), fitted.predict_phi(val)
    assert beta_binomial_nll(z, k, n, phi) == pytest.approx(seen[best], rel=1e-6)
    assert np.ptp(np.log(phi)) > 0  # the head moved away from its constant start


def test_head_starts_at_phi_100_and_is_not_decayed() -> None:
    from binomlab.specs import MLP

    model = build_model(MLP(hidden=(8, 4)), 5, seed=0)
    pair = with_phi_head(model)
    head = next(layer for layer in pair.layers if isinstance(layer, LogPhiDense))
    assert tuple(head.log_phi_kernel.shape) == (4, 1)  # on the last hidden layer
    out = np.asarray(pair(np.random.default_rng(0).normal(size=(6, 5)).astype("float32")))
    assert out.shape == (6, 2)
    np.testing.assert_allclose(out[:, 1], math.log(100.0), rtol=1e-6)
    decayed = {v.path for v in kernels(pair)}
    assert decayed and not any("log_phi" in name for name in decayed)


def test_log_phi_dense_in_a_users_model_learns_a_rho_per_level(grouped: bl.Grouped) -> None:
    X = grouped.frame.select(grouped.features).to_numpy().astype("float32")
    y = pack_counts(*(grouped.frame[c].to_numpy().astype("float32") for c in ("k", "n")))
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    logits = keras.layers.Dense(1)(inputs)
    model = keras.Model(inputs, LogPhiDense()([inputs, logits]))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=BetaBinomialNLL())
    model.fit(X, y, epochs=150, batch_size=250, verbose=0)
    theta = np.asarray(model.predict(X, verbose=0))[:, 1]
    s = grouped.frame["s"].to_numpy()
    for level, log_phi in LOG_PHI.items():
        assert theta[s == level].mean() == pytest.approx(log_phi, abs=0.25)
