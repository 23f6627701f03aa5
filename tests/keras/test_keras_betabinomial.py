"""The beta-binomial loss of the Keras plugin: the loss (keras.ops only) against SciPy, its
gradients, the LogPhi layer in a user's own model, φ not weight-decayed by any optimizer,
agreement with the Lightning backend, and the loss and fits (one φ, and φ from the network)
under Keras's torch backend. What every plugin shares in training and export (recovery of a
known ρ, the binomial limit, best weights, the seed, the native files) is in
tests/test_plugin_betabinomial.py."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

# the plugin first: it quiets TensorFlow's start-up messages, which must precede its import
pytest.importorskip("binomlab_keras")
keras = pytest.importorskip("keras")

from helpers import PHIS  # noqa: E402
from helpers import beta_binomial_loss_cases as _groups  # noqa: E402
from keras import ops  # noqa: E402
from scipy import stats  # noqa: E402
from scipy.special import expit, gammaln  # noqa: E402

import binomlab as bl  # noqa: E402
from binomlab.backends.protocol import TrainConfig, TrainData  # noqa: E402
from binomlab.betabinomial import beta_binomial_nll as oracle  # noqa: E402
from binomlab.specs import Logistic  # noqa: E402
from binomlab.testing import (  # noqa: E402
    counts_as_groups,
    overdispersed_counts,
    overdispersed_groups,
)
from binomlab_keras import (  # noqa: E402
    BetaBinomialNLL,
    BetaBinomialNLLMetric,
    KerasBackend,
    LogPhi,
    beta_binomial_nll,
    pack_counts,
)
from binomlab_keras.loss import LOG_PHI_RANGE  # noqa: E402


def _scipy_per_group(z, k, n, phi) -> np.ndarray:
    """SciPy's beta-binomial log-pmf, less the log binomial coefficient, negated."""
    mu = expit(z)
    logpmf = stats.betabinom.logpmf(k, n, mu * phi, (1 - mu) * phi)
    return -(logpmf - (gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)))


def _y(z, k, n, log_phi):
    """``(y_true, y_pred)`` float64: ``[k, n]`` and ``[z, θ]`` per row."""
    return np.column_stack([k, n]), np.column_stack([z, np.broadcast_to(log_phi, z.shape)])


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


# -- the loss --------------------------------------------------------------------------------


@pytest.mark.parametrize("phi", PHIS)
def test_loss_equals_scipy(phi: float) -> None:
    z, k, n = _groups()
    y_true, y_pred = _y(z, k, n, math.log(phi))
    expected = _scipy_per_group(z, k, n, phi)
    per_group = _np(beta_binomial_nll(y_true, y_pred))
    assert per_group.dtype == np.float64
    np.testing.assert_allclose(per_group, expected, rtol=1e-7, atol=1e-7)
    per_trial = float(_np(BetaBinomialNLL(dtype="float64")(y_true, y_pred)))
    assert per_trial == pytest.approx(expected.sum() / n.sum(), rel=1e-6)
    assert per_trial == pytest.approx(oracle(z, k, n, phi), rel=1e-9)
    total = _np(BetaBinomialNLL(reduction="sum", dtype="float64")(y_true, y_pred))
    assert float(total) == pytest.approx(expected.sum(), rel=1e-9)
    none = _np(BetaBinomialNLL(reduction=None, dtype="float64")(y_true, y_pred))
    np.testing.assert_allclose(none, per_group)


def _gradients(z, k, n, log_phi):
    """d(per-trial loss)/dz and d/dθ through the running Keras backend's autodiff."""
    y_true = np.column_stack([k, n])
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        zz, th = tf.Variable(z, dtype=tf.float64), tf.Variable(log_phi, dtype=tf.float64)
        with tf.GradientTape() as tape:
            y_pred = tf.stack([zz, tf.ones_like(zz) * th], axis=-1)
            loss = BetaBinomialNLL(dtype="float64")(y_true, y_pred)
        return [g.numpy() for g in tape.gradient(loss, [zz, th])]
    if backend == "torch":
        import torch

        zz = torch.tensor(z, dtype=torch.float64, requires_grad=True)
        th = torch.tensor(log_phi, dtype=torch.float64, requires_grad=True)
        y_pred = torch.stack([zz, torch.ones_like(zz) * th], dim=-1)
        loss = BetaBinomialNLL(dtype="float64")(y_true, y_pred)
        return [g.numpy() for g in torch.autograd.grad(loss, [zz, th])]
    pytest.skip(f"no gradient helper for the {backend} backend")


@pytest.mark.parametrize("phi", [0.5, 40.0, 3e4])
def test_gradients_equal_finite_differences(phi: float) -> None:
    z, k, n = _groups(seed=1, groups=30)
    grad_z, grad_theta = _gradients(z, k, n, math.log(phi))
    h = 1e-4  # central differences: O(h²) error, and the oracle's rounding stays small
    fd_theta = (oracle(z, k, n, phi * math.exp(h)) - oracle(z, k, n, phi * math.exp(-h))) / (2 * h)
    assert grad_theta == pytest.approx(fd_theta, rel=1e-5, abs=1e-10)
    for i in (0, 4, 5, 8, 17):  # k = 0, k = n, n = 1 and an interior group
        up, down = z.copy(), z.copy()
        up[i] += h
        down[i] -= h
        fd = (oracle(up, k, n, phi) - oracle(down, k, n, phi)) / (2 * h)
        assert grad_z[i] == pytest.approx(fd, rel=1e-5, abs=1e-10)


def test_large_phi_is_the_binomial() -> None:
    z, k, n = _groups(seed=3)
    binomial = float(np.sum(n * np.logaddexp(0, z) - k * z) / n.sum())
    for phi in (1e8, 1e12, 1e30):  # 1e30 is beyond the clamp: the same as 1e12
        y_true, y_pred = _y(z, k, n, math.log(phi))
        value = float(_np(BetaBinomialNLL(dtype="float64")(y_true, y_pred)))
        assert value == pytest.approx(binomial, rel=1e-5)


def test_finite_at_saturated_logits_and_extreme_phi() -> None:
    z = np.array([60.0, -60.0, 800.0, -800.0, 0.0])
    k = np.array([5.0, 0.0, 3.0, 3.0, 2.0])
    n = np.array([5.0, 4.0, 3.0, 3.0, 9.0])
    for log_phi in (-100.0, *LOG_PHI_RANGE, 0.0, 100.0):
        assert np.isfinite(_np(beta_binomial_nll(*_y(z, k, n, log_phi)))).all()
        assert np.isfinite(_gradients(z, k, n, log_phi)[0]).all()


def test_float32_is_computed_in_float64() -> None:
    z, k, n = _groups(seed=4)
    y_true, y_pred = _y(z.astype(np.float32), k, n, math.log(1e6))
    out = BetaBinomialNLL()(y_true.astype(np.float32), y_pred.astype(np.float32))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    exact = oracle(z.astype(np.float32).astype(np.float64), k, n, 1e6)
    assert float(_np(out)) == pytest.approx(exact, rel=1e-6)


def test_shape_errors_point_to_log_phi() -> None:
    z, k, n = _groups(seed=5, groups=10)
    with pytest.raises(ValueError, match=r"LogPhi.*y_pred.shape=\(10, 1\)"):
        BetaBinomialNLL()(np.column_stack([k, n]), z[:, None])
    with pytest.raises(ValueError, match=r"y_true.shape=\(10, 3\)"):
        beta_binomial_nll(np.column_stack([k, n, n]), np.column_stack([z, z]))
    with pytest.raises(ValueError, match=r"Received: reduction='mean'"):
        BetaBinomialNLL(reduction="mean")


# -- the LogPhi layer in anyone's model ------------------------------------------------------


def test_log_phi_layer() -> None:
    layer = LogPhi()
    out = _np(layer(np.array([[0.5], [-1.0]], np.float32)))
    np.testing.assert_allclose(out, [[0.5, math.log(100)], [-1.0, math.log(100)]], rtol=1e-6)
    assert [v.name for v in layer.trainable_variables] == ["log_phi"]
    assert layer.phi == pytest.approx(100.0, rel=1e-6)
    assert _np(layer(np.array([0.5, 1.0], np.float32))).shape == (2, 2)  # [batch] logits too
    assert LogPhi.from_config(LogPhi(initial=2.0).get_config()).phi == pytest.approx(math.e**2)


# Keras 3.15 saves TensorFlow variables with np.array(x), which NumPy 2 flags
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_standalone_model_recovers_rho_and_saves(tmp_path) -> None:
    X, k, n = overdispersed_counts(0.2, groups=2000, seed=7)
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(X.shape[1],))
    outputs = LogPhi()(keras.layers.Dense(1)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(0.1),  # θ starts at log 100: Adam moves it ≈ lr a step
        loss=BetaBinomialNLL(),
        metrics=[BetaBinomialNLLMetric(name="nll")],
    )
    history = model.fit(X, pack_counts(k, n), batch_size=256, epochs=30, verbose=0)
    phi = model.get_layer("log_phi").phi
    assert 1 / (1 + phi) == pytest.approx(0.2, rel=0.1)
    # the metric is the trial-weighted mean of the batch losses, in float64
    assert history.history["nll"][-1] == pytest.approx(history.history["loss"][-1], rel=1e-3)
    exact = BetaBinomialNLLMetric()
    exact.update_state(pack_counts(k, n), model(X))
    z = _np(model(X))[:, 0]
    assert float(_np(exact.result())) == pytest.approx(oracle(z, k, n, phi), rel=1e-6)
    # the layer and the loss are registered: the model saves and loads in safe mode
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert loaded.get_layer("log_phi").phi == pytest.approx(phi)
    assert isinstance(loaded.loss, BetaBinomialNLL)


# -- training through the backend ------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["lbfgs", "adamw", "adam"])
def test_phi_is_not_weight_decayed(optimizer: str) -> None:
    """A decayed θ would be pulled to 0 (φ = 1, ρ = 0.5) by so strong a decay."""
    X, k, n = overdispersed_counts(0.2, groups=2000, seed=1)
    train = TrainData(X.astype(np.float32), k, n)
    options = {} if optimizer == "lbfgs" else {"epochs": 15, "batch_size": 256, "lr": 0.05}
    config = TrainConfig(optimizer=optimizer, weight_decay=1.0, loss="beta-binomial", **options)
    network = KerasBackend().fit(train, None, Logistic(), config, lambda e, m: None)
    assert 1 / (1 + network.phi) < 0.4


# -- the same fits as Lightning --------------------------------------------------------------


def test_lightning_and_keras_agree() -> None:
    pytest.importorskip("binomlab_lightning")
    g = counts_as_groups(*overdispersed_counts(0.1, groups=2000, seed=8))
    train, val = g.split(0.25, seed=0)
    fits = {
        (backend, optimizer): bl.fit(
            train, backend=backend, loss="beta-binomial", val=val, **options
        )
        for backend in ("keras", "lightning")
        for optimizer, options in (
            ("lbfgs", {}),
            ("adam", {"optimizer": "adam", "epochs": 30, "batch_size": 256, "lr": 0.05}),
        )
    }
    for optimizer in ("lbfgs", "adam"):
        keras_fit, lightning_fit = fits["keras", optimizer], fits["lightning", optimizer]
        rho = {name: 1 / (1 + f.phi_) for name, f in (("k", keras_fit), ("l", lightning_fit))}
        assert rho["k"] == pytest.approx(rho["l"], rel=0.03), (optimizer, rho)
        val_nll = [f.history["val_nll"].min() for f in (keras_fit, lightning_fit)]
        assert val_nll[0] == pytest.approx(val_nll[1], rel=0.005), (optimizer, val_nll)
    # L-BFGS reaches the same maximum-likelihood estimate on both (φ is the flattest direction)
    assert fits["keras", "lbfgs"].phi_ == pytest.approx(fits["lightning", "lbfgs"].phi_, rel=1e-3)


# -- under Keras's torch backend -------------------------------------------------------------


def _under_keras_torch(tmp_path, script: str, g: bl.Grouped) -> list[str]:
    """The words ``script`` prints when run by a Python whose Keras runs on torch, with ``g``
    written to a parquet file whose path is ``sys.argv[1]``."""
    path = tmp_path / "g.parquet"
    g.write_parquet(path)
    env = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.slow
def test_loss_and_fit_under_keras_torch_backend(tmp_path) -> None:
    """The loss keeps float64 on Keras's torch backend, whose ops.maximum/ops.clip with a
    Python float would compute in float32, and L-BFGS there reaches the φ found here."""
    pytest.importorskip("torch")
    script = """
        import math
        import sys
        import numpy as np
        import keras
        from scipy import stats
        from scipy.special import expit, gammaln
        from binomlab_keras import beta_binomial_nll

        assert keras.backend.backend() == "torch"
        rng = np.random.default_rng(0)
        n = rng.integers(1, 600, 300).astype(float)
        k = np.floor(rng.random(300) * (n + 1))
        z = rng.normal(0, 2, 300)
        for phi in (1e-3, 4.0, 1e5):
            y_pred = np.column_stack([z, np.full_like(z, math.log(phi))])
            ours = keras.ops.convert_to_numpy(beta_binomial_nll(np.column_stack([k, n]), y_pred))
            mu = expit(z)
            ref = -(stats.betabinom.logpmf(k, n, mu * phi, (1 - mu) * phi)
                    - gammaln(n + 1) + gammaln(k + 1) + gammaln(n - k + 1))
            assert np.allclose(ours, ref, rtol=1e-7, atol=1e-7), np.abs(ours - ref).max()
        import binomlab as bl
        g = bl.read_grouped(sys.argv[1])
        print(bl.fit(g, backend="keras", loss="beta-binomial").phi_)
        print("ok")
        """
    g = counts_as_groups(*overdispersed_counts(0.2, seed=9))
    here = bl.fit(g, backend="keras", loss="beta-binomial").phi_
    *_, phi, ok = _under_keras_torch(tmp_path, script, g)
    assert ok == "ok"
    assert float(phi) == pytest.approx(here, rel=1e-4)


def test_torch_keras_backend_gives_the_same_fit(tmp_path) -> None:
    """``phi="network"``: L-BFGS on Keras's torch backend reaches the NLL reached here."""
    grouped = overdispersed_groups()
    fitted = bl.fit(grouped, backend="keras", loss="beta-binomial", phi="network")
    script = """
        import sys
        import binomlab as bl
        g = bl.read_grouped(sys.argv[1])
        f = bl.fit(g, backend="keras", loss="beta-binomial", phi="network")
        print(f.backend_versions["keras_backend"], f.history["train_nll"][-1])
        """
    backend, nll = _under_keras_torch(tmp_path, script, grouped)[-2:]
    assert backend == "torch"
    assert float(nll) == pytest.approx(fitted.history["train_nll"][-1], rel=1e-7)
