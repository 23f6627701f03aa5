"""The Keras backend: the protocol's training rules, the GLM fit, options and quietness."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import polars as pl
import pytest

# the plugin first: it quiets TensorFlow's start-up messages, which must precede its import
pytest.importorskip("binomlab_keras")
keras = pytest.importorskip("keras")

import binomlab as bl  # noqa: E402
from binomlab import backends  # noqa: E402
from binomlab.errors import BinomlabError  # noqa: E402
from binomlab.protocol import TrainConfig, TrainData  # noqa: E402
from binomlab.reference import grouped_nll  # noqa: E402
from binomlab.specs import MLP, Logistic  # noqa: E402
from binomlab.testing import Recorder, rows_as_groups, synthetic_train_data  # noqa: E402
from binomlab_keras import KerasBackend, build_model  # noqa: E402
from binomlab_keras.data import GroupArrays, GroupBatches  # noqa: E402
from binomlab_keras.model import spec_from_model  # noqa: E402

synthetic = synthetic_train_data
as_rows = rows_as_groups


def train(data, val=None, spec=None, *, callback=None, **config):
    return KerasBackend().fit(
        data, val, spec or MLP(hidden=(8,)), TrainConfig(**config), callback or Recorder()
    )


def nll_of(network, data: TrainData) -> float:
    return grouped_nll(network.predict_logits(data.X), data.k, data.n)


@pytest.fixture(scope="module")
def data() -> TrainData:
    return synthetic()


@pytest.fixture(scope="module")
def val() -> TrainData:
    return synthetic(80, seed=1)


# -- the identity: grouped counts train exactly like their raw rows ---------------------------


@pytest.mark.parametrize("epochs", [1, 3, 6])
def test_lbfgs_on_groups_and_rows_take_the_same_steps(data: TrainData, epochs: int) -> None:
    rows = as_rows(data)
    on_groups, on_rows = Recorder(), Recorder()
    grouped = train(data, spec=Logistic(), callback=on_groups, optimizer="lbfgs", epochs=epochs)
    raw = train(rows, spec=Logistic(), callback=on_rows, optimizer="lbfgs", epochs=epochs)
    np.testing.assert_allclose(
        on_groups.column("train_nll"), on_rows.column("train_nll"), rtol=1e-10
    )
    np.testing.assert_allclose(
        grouped.predict_logits(data.X), raw.predict_logits(data.X), rtol=0, atol=1e-8
    )


def test_full_batch_adam_on_groups_and_rows_follow_one_trajectory(data: TrainData) -> None:
    rows = as_rows(data)
    config = {"optimizer": "adam", "batch_size": 10**9, "epochs": 8, "lr": 0.05, "seed": 4}
    on_groups, on_rows = Recorder(), Recorder()
    grouped = train(data, callback=on_groups, **config)
    raw = train(rows, callback=on_rows, **config)
    np.testing.assert_allclose(
        on_groups.column("train_nll"), on_rows.column("train_nll"), atol=1e-6
    )
    np.testing.assert_allclose(
        grouped.predict_logits(data.X), raw.predict_logits(data.X), rtol=0, atol=1e-5
    )


# -- the GLM: L-BFGS reaches statsmodels' maximum-likelihood fit ---------------------------------


def test_star98_logistic_matches_statsmodels() -> None:
    sm = pytest.importorskip("statsmodels.api")
    from binomlab import datasets

    g = datasets.star98()
    frame = g.frame.to_pandas()
    exog = sm.add_constant(frame[list(g.features)].astype(float))
    endog = np.column_stack([frame["k"], frame["n"] - frame["k"]])
    glm = sm.GLM(endog, exog, family=sm.families.Binomial()).fit()

    fitted = bl.fit(g, model="logistic", backend="keras", optimizer="lbfgs")
    assert fitted.stop_reason == "converged"
    deviance = bl.evaluate(g, fitted)["deviance"]
    assert deviance == pytest.approx(glm.deviance, rel=1e-3)  # the 0.1%
    assert deviance == pytest.approx(glm.deviance, rel=1e-6)  # what it actually reaches
    coefficients = fitted.coefficients()
    assert coefficients["term"].to_list() == ["(intercept)", *g.features]
    np.testing.assert_allclose(
        coefficients["raw_coefficient"].to_numpy(), glm.params.to_numpy(), rtol=1e-3
    )


def test_lbfgs_trains_in_float64_and_reports_exact_nll(data: TrainData, val: TrainData) -> None:
    record = Recorder()
    network = train(data, val, Logistic(), callback=record, optimizer="lbfgs")
    assert network.stop_reason == "converged"
    assert {v.dtype for v in network.model.weights} == {"float64"}
    assert keras.config.floatx() == "float32", "the global float type is left alone"
    # full batch: the reported NLLs are the exact ones of the weights at the end of each
    # iteration; those of the best validation epoch are returned
    best = record.column("val_nll").argmin()
    assert nll_of(network, val) == pytest.approx(record.column("val_nll")[best], rel=1e-9)
    assert nll_of(network, data) == pytest.approx(record.column("train_nll")[best], rel=1e-9)
    assert len(record.metrics) < 100


def test_lbfgs_mlp_converges_to_a_stationary_point(data: TrainData) -> None:
    record = Recorder()
    network = train(data, spec=MLP(hidden=(3,), activation="tanh"), callback=record,
                    optimizer="lbfgs", tolerance=1e-6)  # fmt: skip
    assert network.stop_reason == "converged"
    nll = record.column("train_nll")
    assert nll[-1] <= nll.min() and nll[-1] < nll[0]


def test_lbfgs_respects_the_iteration_cap(data: TrainData) -> None:
    record = Recorder()
    network = train(
        data, spec=Logistic(), callback=record, optimizer="lbfgs", epochs=3, tolerance=1e-14
    )
    assert (len(record.metrics), network.stop_reason) == (3, "completed")


def _penalised_optimum(data: TrainData, decay: float) -> np.ndarray:
    from scipy.optimize import minimize
    from scipy.special import expit

    # penalty weight_decay/2·‖W‖² on the weights, not the intercept (as the reference backend)
    X = data.X.astype(np.float64)

    def objective(theta):
        z = X @ theta[:-1] + theta[-1]
        g = (data.n * expit(z) - data.k) / data.n.sum()
        value = grouped_nll(z, data.k, data.n) + 0.5 * decay * theta[:-1] @ theta[:-1]
        return value, np.append(X.T @ g + decay * theta[:-1], g.sum())

    optimum = minimize(objective, np.zeros(5), jac=True, method="BFGS", options={"gtol": 1e-12})
    return X @ optimum.x[:-1] + optimum.x[-1]


def test_lbfgs_weight_decay_reaches_the_penalised_optimum(data: TrainData) -> None:
    decay = 0.05
    record = Recorder()
    config = TrainConfig(optimizer="lbfgs", weight_decay=decay, tolerance=1e-8)
    ours = KerasBackend().fit(data, None, Logistic(), config, record)
    assert ours.stop_reason == "converged"
    expected = _penalised_optimum(data, decay)
    np.testing.assert_allclose(ours.predict_logits(data.X), expected, rtol=0, atol=1e-6)
    # the NLL alone rises on the way to the penalised fit, yet the last weights are kept
    assert record.column("train_nll").argmin() < len(record.metrics) - 1
    assert nll_of(ours, data) == pytest.approx(record.column("train_nll")[-1], rel=1e-12)


def test_adam_weight_decay_is_the_l2_penalty(data: TrainData) -> None:
    """Adam's weight_decay is PyTorch's: ``weight_decay·W`` added to the gradient of the
    weights (not the bias) — the same steps as Adam on the NLL plus weight_decay/2·‖W‖²,
    replayed here in NumPy from the same initial weights. The model keeps no regulariser."""
    from scipy.special import expit

    from binomlab_keras.model import set_output_bias

    decay, lr, steps, seed = 0.3, 0.05, 6, 7
    network = train(
        data, spec=Logistic(), optimizer="adam", weight_decay=decay, lr=lr,
        batch_size=10**9, epochs=steps, seed=seed,
    )  # fmt: skip
    start = build_model(Logistic(), 4, seed=seed)
    rate = data.k.sum() / data.n.sum()
    set_output_bias(start, np.log(rate / (1 - rate)))
    theta = np.append(
        start.get_layer("logit").kernel.numpy()[:, 0], start.get_layer("logit").bias.numpy()
    )
    X = data.X.astype(np.float64)
    m, v = np.zeros(5), np.zeros(5)
    for t in range(1, steps + 1):
        g = (data.n * expit(X @ theta[:4] + theta[4]) - data.k) / data.n.sum()
        grad = np.append(X.T @ g + decay * theta[:4], g.sum())
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        theta -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    expected = X @ theta[:4] + theta[4]
    np.testing.assert_allclose(network.predict_logits(data.X), expected, rtol=0, atol=1e-4)
    assert all(v.regularizer is None for v in network.model.trainable_variables)
    assert network.model.get_layer("logit").kernel_regularizer is None


def test_adamw_decay_spares_the_biases(data: TrainData) -> None:
    plain = train(data, spec=Logistic(), optimizer="adamw", epochs=30, seed=2)
    decayed = train(data, spec=Logistic(), optimizer="adamw", epochs=30, seed=2, weight_decay=5.0)
    norm = lambda net: float(np.abs(net.model.get_layer("logit").kernel.numpy()).sum())  # noqa: E731
    assert norm(decayed) < 0.5 * norm(plain)
    # decoupled decay multiplies the kernel by (1 - lr·decay) each step; the bias still fits
    # the base rate
    rate = data.k.sum() / data.n.sum()
    bias = float(decayed.model.get_layer("logit").bias.numpy()[0])
    assert bias == pytest.approx(np.log(rate / (1 - rate)), abs=0.1)


# -- determinism -----------------------------------------------------------------------------------


def test_same_seed_same_predictions(data: TrainData, val: TrainData) -> None:
    spec = MLP(hidden=(16, 8), dropout=0.2)
    config = {"epochs": 3, "batch_size": 32, "seed": 5}
    a = train(data, val, spec, **config).predict_logits(val.X)
    b = train(data, val, spec, **config).predict_logits(val.X)
    c = train(data, val, spec, **{**config, "seed": 6}).predict_logits(val.X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_defaults(data: TrainData) -> None:
    record = Recorder()
    network = train(data, callback=record)  # adam, 20 epochs
    assert (len(record.metrics), network.stop_reason) == (20, "completed")
    assert {v.dtype for v in network.model.weights} == {"float32"}
    assert network.n_params == 4 * 8 + 8 + 8 + 1
    assert spec_from_model(network.model) == MLP(hidden=(8,))


def test_initialisation_is_pytorchs(data: TrainData) -> None:
    """Weights and biases uniform in ±1/√fan_in (torch.nn.Linear's default), the output bias
    at the logit of the base rate."""
    model = build_model(MLP(hidden=(256,)), 64, seed=0)
    kernel = model.get_layer("hidden_1").kernel.numpy()
    bias = model.get_layer("hidden_1").bias.numpy()
    bound = 1 / np.sqrt(64)
    assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.95 * bound
    assert np.abs(bias).max() <= bound and np.abs(bias).max() > 0.9 * bound
    assert abs(kernel.std() - bound / np.sqrt(3)) < 0.01


# -- stopping keeps the best weights --------------------------------------------------------------


def test_callback_returning_false_stops_with_the_best_weights(data, val) -> None:
    record = Recorder(stop_at=2)
    network = train(data, val, callback=record, epochs=10, batch_size=16)
    assert len(record.metrics) == 2
    assert network.stop_reason == "callback"
    assert nll_of(network, val) == pytest.approx(record.column("val_nll").min(), rel=1e-6)


def test_early_stopping_returns_the_best_epoch(data: TrainData) -> None:
    # validation labels flipped: every step on the training data makes them less likely
    flipped = TrainData(data.X, data.n - data.k, data.n)
    record = Recorder()
    network = train(data, flipped, callback=record, epochs=20, early_stopping=2, lr=0.05)
    assert network.stop_reason == "early_stopping"
    assert len(record.metrics) == 3
    val_nll = record.column("val_nll")
    assert val_nll.argmin() == 0
    assert nll_of(network, flipped) == pytest.approx(val_nll[0], rel=1e-6)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_keyboard_interrupt_returns_the_network(data, val, optimizer) -> None:
    record = Recorder(raise_at=(3, KeyboardInterrupt()))
    spec = Logistic() if optimizer == "lbfgs" else None
    network = train(data, val, spec, callback=record, epochs=10, optimizer=optimizer)
    assert network.stop_reason == "interrupted"
    assert len(record.metrics) == 3
    assert nll_of(network, val) == pytest.approx(record.column("val_nll").min(), rel=1e-6)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_callback_exceptions_propagate_unchanged(data: TrainData, optimizer: str) -> None:
    class Boom(RuntimeError):
        pass

    error = Boom("from the callback")
    spec = Logistic() if optimizer == "lbfgs" else None
    with pytest.raises(Boom) as info:
        train(
            data, spec=spec, callback=Recorder(raise_at=(2, error)), epochs=5, optimizer=optimizer
        )
    assert info.value is error


def test_divergence_error_from_the_core_propagates() -> None:
    g = bl.from_counts(pl.DataFrame({"x": ["a", "b"], "n": [10, 10], "k": [3, 7]}), ["x"])
    # steps of 1e30 overflow float32: the core's callback raises on the non-finite loss
    with pytest.raises(bl.errors.TrainingDivergedError, match="diverged at epoch 2"):
        bl.fit(g, model="mlp:4", backend="keras", epochs=5, lr=1e30)


# -- options ---------------------------------------------------------------------------------------


def test_options_are_declared() -> None:
    assert set(KerasBackend.options) == {"jit_compile", "steps_per_execution"}
    assert KerasBackend.name == "keras"
    versions = KerasBackend().versions()
    assert versions["keras"] == keras.__version__
    assert versions["keras_backend"] == keras.backend.backend()
    assert keras.backend.backend() in versions


def test_unknown_option_lists_the_accepted_ones(data: TrainData) -> None:
    with pytest.raises(BinomlabError, match=r"\['no_such'\].*'jit_compile'"):
        train(data, options={"no_such": 1})
    g = bl.from_counts(pl.DataFrame({"x": ["a", "b"], "n": [10, 10], "k": [3, 7]}), ["x"])
    with pytest.raises(BinomlabError, match="no_such"):
        bl.fit(g, backend="keras", no_such=1)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"jit_compile": "yes"}, "jit_compile='yes'"),
        ({"steps_per_execution": 0}, "steps_per_execution=0"),
        ({"steps_per_execution": True}, "steps_per_execution=True"),
    ],
)
def test_bad_option_values(data: TrainData, options, match: str) -> None:
    with pytest.raises(BinomlabError, match=match):
        train(data, options=options)


def test_options_reach_keras(data: TrainData) -> None:
    base = {"epochs": 2, "batch_size": 32, "seed": 1}
    plain = train(data, **base).predict_logits(data.X)
    grouped_steps = train(data, options={"steps_per_execution": 3}, **base)
    assert grouped_steps.model.steps_per_execution == 3
    np.testing.assert_allclose(grouped_steps.predict_logits(data.X), plain, atol=1e-5)
    jitted = train(data, options={"jit_compile": True}, **base)
    assert jitted.model.jit_compile is True or keras.backend.backend() != "tensorflow"
    np.testing.assert_allclose(jitted.predict_logits(data.X), plain, atol=1e-4)


def test_unknown_loss(data: TrainData) -> None:
    # the beta-binomial is tested in tests/keras/test_keras_betabinomial.py
    assert KerasBackend.losses == ("binomial", "beta-binomial")
    with pytest.raises(BinomlabError, match="loss='poisson'"):
        train(data, loss="poisson")
    g = bl.from_counts(pl.DataFrame({"x": ["a", "b"], "n": [10, 10], "k": [3, 7]}), ["x"])
    with pytest.raises(BinomlabError, match="loss='poisson'"):
        bl.fit(g, backend="keras", loss="poisson")


def test_lbfgs_refuses_mini_batches(data: TrainData) -> None:
    with pytest.raises(BinomlabError, match=r"full batch.*batch_size=16"):
        train(data, spec=Logistic(), optimizer="lbfgs", batch_size=16)


def test_quiet_and_writes_nothing(data, tmp_path, monkeypatch, capfd) -> None:
    monkeypatch.chdir(tmp_path)
    capfd.readouterr()
    train(data, epochs=2)
    train(data, spec=Logistic(), optimizer="lbfgs", epochs=2)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert list(tmp_path.iterdir()) == []


def test_import_is_quiet() -> None:
    """Importing the plugin (and with it TensorFlow) prints nothing."""
    result = subprocess.run(
        [sys.executable, "-c", "import binomlab_keras"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")


# -- the pieces ------------------------------------------------------------------------------------


def test_batches_cover_every_group_once_per_epoch(data: TrainData) -> None:
    arrays = GroupArrays.from_train_data(data)
    batches = GroupBatches(arrays, batch_size=64, seed=3)
    assert len(batches) == 4

    def epoch() -> np.ndarray:
        x = np.concatenate([batches[i][0] for i in range(len(batches))])
        batches.on_epoch_end()
        return x

    first, second = epoch(), epoch()
    key = lambda X: np.sort(X[:, 0])  # noqa: E731
    np.testing.assert_array_equal(key(first), key(arrays.x))
    np.testing.assert_array_equal(key(second), key(arrays.x))
    assert not np.array_equal(first, second), "a new order every epoch"
    # the order of an epoch depends on the seed and the epoch only
    again = GroupBatches(arrays, batch_size=64, seed=3)
    np.testing.assert_array_equal(again.permutation(1), batches.permutation(1))
    assert not np.array_equal(GroupBatches(arrays, batch_size=64, seed=4).permutation(1),
                              batches.permutation(1))  # fmt: skip
    x, y = batches[3]
    assert x.shape == (200 - 3 * 64, 4) and y.shape == (200 - 3 * 64, 2)


def test_fit_reshuffles_every_epoch(data: TrainData, monkeypatch) -> None:
    """model.fit draws every batch of every epoch, each epoch in its own order."""
    served = []
    original = GroupBatches.__getitem__

    def spy(self, index: int):
        served.append((self.epoch, index))
        return original(self, index)

    monkeypatch.setattr(GroupBatches, "__getitem__", spy)
    train(data, epochs=4, batch_size=64)
    by_epoch: dict[int, list[int]] = {}
    for epoch, index in served:
        by_epoch.setdefault(epoch, []).append(index)
    # (before training, Keras peeks at the first batches to learn the shapes)
    complete = [epoch for epoch, indices in by_epoch.items() if indices == [0, 1, 2, 3]]
    assert len(complete) == 4, by_epoch


# -- the registry and the conformance suite --------------------------------------------------------


def test_registered() -> None:
    assert "keras" in backends.available()
    assert isinstance(backends.get("keras"), KerasBackend)


def test_check_backend() -> None:
    testing = pytest.importorskip("binomlab.testing")
    testing.check_backend("keras")


@pytest.mark.slow
def test_check_backend_under_torch() -> None:
    """The conformance suite and the float64 GLM also pass with KERAS_BACKEND=torch."""
    pytest.importorskip("torch")
    script = textwrap.dedent(
        """
        import keras
        from binomlab.testing import check_backend
        from binomlab import datasets
        import binomlab as bl

        assert keras.backend.backend() == "torch"
        check_backend("keras")
        g = datasets.star98()
        fitted = bl.fit(g, model="logistic", backend="keras")
        ref = bl.fit(g, model="logistic", backend="reference")
        ours, theirs = bl.evaluate(g, fitted)["deviance"], bl.evaluate(g, ref)["deviance"]
        assert fitted.stop_reason == "converged", fitted.stop_reason
        assert abs(ours - theirs) <= 1e-6 * theirs, (ours, theirs)
        print("ok")
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
