"""The training rules every installed plugin backend keeps, each test once per plugin: grouped
counts train like their raw rows, L-BFGS reaches the GLM and the penalised optimum in float64,
the seed decides the fit, stopping keeps the best weights, errors propagate, options are
checked, training is quiet, and the plugin is registered and passes ``check_backend``.

What only one plugin has (Keras's ``jit_compile``, Lightning's strategies and Trainer, each
one's batching) is tested in ``tests/keras`` and ``tests/lightning``.
"""

from __future__ import annotations

import importlib
import signal

import numpy as np
import polars as pl
import pytest

import binomlab as bl
from binomlab.backends.protocol import TrainConfig, TrainData
from binomlab.errors import BinomlabError
from binomlab.nll import grouped_nll
from binomlab.specs import MLP, Logistic
from binomlab.testing import Recorder, parametrize_with_checks, rows_as_groups

#: each plugin's backend class, as ``module:class``
CLASSES = {
    "keras": "binomlab_keras:KerasBackend",
    "lightning": "binomlab_lightning:LightningBackend",
}
PLUGINS = [name for name in bl.backends.available(check=True) if name in CLASSES]
pytestmark = pytest.mark.skipif(not PLUGINS, reason="no plugin backend installed")

OPTIONS = {
    "keras": {"jit_compile", "steps_per_execution"},
    "lightning": {
        "strategy",
        "devices",
        "accelerator",
        "precision",
        "default_root_dir",
        "enable_checkpointing",
        "logger",
    },
}


def backend_class(backend: str) -> type:
    module, _, name = CLASSES[backend].partition(":")
    return getattr(importlib.import_module(module), name)


def weight_dtypes(backend: str, network) -> set[str]:
    """The dtypes of the trained network's weights, by name (``"float32"``)."""
    if backend == "keras":
        return {v.dtype for v in network.model.weights}
    return {str(p.dtype).removeprefix("torch.") for p in network.net.parameters()}


def global_settings(backend: str) -> dict[str, object]:
    """The framework-wide settings a fit must leave as it found them."""
    if backend == "keras":
        return {"float": importlib.import_module("keras").config.floatx()}
    torch = importlib.import_module("torch")
    return {
        "float": str(torch.get_default_dtype()).removeprefix("torch."),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
    }


def framework_versions(backend: str) -> dict[str, str]:
    """The versions a fit records: the plugin's frameworks, as installed."""
    if backend == "keras":
        keras = importlib.import_module("keras")
        engine = keras.backend.backend()
        return {
            "keras": keras.__version__,
            "keras_backend": engine,
            engine: importlib.import_module(engine).__version__,
        }
    return {name: importlib.import_module(name).__version__ for name in ("torch", "lightning")}


def train(backend: str, data, val=None, spec=None, *, callback=None, **config):
    return bl.backends.get(backend).fit(
        data, val, spec or MLP(hidden=(8,)), TrainConfig(**config), callback or Recorder()
    )


def nll_of(network, data: TrainData) -> float:
    return grouped_nll(network.predict_logits(data.X), data.k, data.n)


def two_groups() -> bl.Grouped:
    return bl.from_counts(pl.DataFrame({"x": ["a", "b"], "n": [10, 10], "k": [3, 7]}), ["x"])


@pytest.fixture(scope="module", params=PLUGINS)
def backend(request) -> str:
    return request.param


# -- the identity: grouped counts train exactly like their raw rows ---------------------------


@pytest.mark.parametrize("epochs", [1, 2, 3, 4, 6])
def test_lbfgs_on_groups_and_rows_take_the_same_steps(backend, data: TrainData, epochs) -> None:
    rows = rows_as_groups(data)
    on_groups, on_rows = Recorder(), Recorder()
    config = {"optimizer": "lbfgs", "epochs": epochs}
    grouped = train(backend, data, spec=Logistic(), callback=on_groups, **config)
    raw = train(backend, rows, spec=Logistic(), callback=on_rows, **config)
    np.testing.assert_allclose(
        on_groups.column("train_nll"), on_rows.column("train_nll"), rtol=1e-10
    )
    np.testing.assert_allclose(
        grouped.predict_logits(data.X), raw.predict_logits(data.X), rtol=0, atol=1e-8
    )


def test_full_batch_adam_on_groups_and_rows_follow_one_trajectory(backend, data) -> None:
    rows = rows_as_groups(data)
    config = {"optimizer": "adam", "batch_size": 10**9, "epochs": 8, "lr": 0.05, "seed": 4}
    on_groups, on_rows = Recorder(), Recorder()
    grouped = train(backend, data, callback=on_groups, **config)
    raw = train(backend, rows, callback=on_rows, **config)
    np.testing.assert_allclose(
        on_groups.column("train_nll"), on_rows.column("train_nll"), atol=1e-6
    )
    np.testing.assert_allclose(
        grouped.predict_logits(data.X), raw.predict_logits(data.X), rtol=0, atol=1e-5
    )


# -- the GLM: L-BFGS reaches statsmodels' maximum-likelihood fit ---------------------------------


def test_star98_logistic_matches_statsmodels(backend) -> None:
    sm = pytest.importorskip("statsmodels.api")
    from binomlab import datasets

    g = datasets.star98()
    frame = g.frame.to_pandas()
    exog = sm.add_constant(frame[list(g.features)].astype(float))
    endog = np.column_stack([frame["k"], frame["n"] - frame["k"]])
    glm = sm.GLM(endog, exog, family=sm.families.Binomial()).fit()

    fitted = bl.fit(g, model="logistic", backend=backend, optimizer="lbfgs")
    assert fitted.stop_reason == "converged"
    deviance = bl.evaluate(g, fitted)["deviance"]
    assert deviance == pytest.approx(glm.deviance, rel=1e-3)  # the 0.1%
    assert deviance == pytest.approx(glm.deviance, rel=1e-6)  # what it actually reaches
    coefficients = fitted.coefficients()
    assert coefficients["term"].to_list() == ["(intercept)", *g.features]
    np.testing.assert_allclose(
        coefficients["raw_coefficient"].to_numpy(), glm.params.to_numpy(), rtol=1e-3
    )


def test_lbfgs_trains_in_float64_and_reports_exact_nll(backend, data, val) -> None:
    record = Recorder()
    network = train(backend, data, val, Logistic(), callback=record, optimizer="lbfgs")
    assert network.stop_reason == "converged"
    assert weight_dtypes(backend, network) == {"float64"}
    assert global_settings(backend)["float"] == "float32", "the global float type is left alone"
    # full batch: the reported NLLs are the exact ones of the weights at the end of each
    # iteration; validation is recorded, never used to pick one: the optimum is returned
    assert nll_of(network, val) == pytest.approx(record.column("val_nll")[-1], rel=1e-9)
    assert nll_of(network, data) == pytest.approx(record.column("train_nll")[-1], rel=1e-9)
    assert network.best_epoch == len(record.metrics)
    assert len(record.metrics) < 100


def test_lbfgs_respects_the_iteration_cap(backend, data: TrainData) -> None:
    record = Recorder()
    with pytest.warns(bl.ConvergenceWarning, match="cap of 3 iterations"):
        network = train(backend, data, spec=Logistic(), callback=record, optimizer="lbfgs",
                        epochs=3, tolerance=1e-14)  # fmt: skip
    assert (len(record.metrics), network.stop_reason) == (3, "max_iter")


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


def test_lbfgs_weight_decay_reaches_the_penalised_optimum(backend, data: TrainData) -> None:
    decay = 0.05
    record = Recorder()
    ours = train(backend, data, spec=Logistic(), callback=record, optimizer="lbfgs",
                 weight_decay=decay, tolerance=1e-8)  # fmt: skip
    assert ours.stop_reason == "converged"
    expected = _penalised_optimum(data, decay)
    np.testing.assert_allclose(ours.predict_logits(data.X), expected, rtol=0, atol=1e-6)
    # the NLL alone rises on the way to the penalised fit, yet the last weights are kept
    assert record.column("train_nll").argmin() < len(record.metrics) - 1
    assert nll_of(ours, data) == pytest.approx(record.column("train_nll")[-1], rel=1e-12)


# -- determinism -----------------------------------------------------------------------------------


def test_same_seed_same_predictions(backend, data: TrainData, val: TrainData) -> None:
    spec = MLP(hidden=(16, 8), dropout=0.2)
    config = {"epochs": 3, "batch_size": 32, "seed": 5}
    a = train(backend, data, val, spec, **config).predict_logits(val.X)
    b = train(backend, data, val, spec, **config).predict_logits(val.X)
    c = train(backend, data, val, spec, **{**config, "seed": 6}).predict_logits(val.X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_defaults(backend, data: TrainData) -> None:
    record = Recorder()
    network = train(backend, data, callback=record)  # adam, 20 epochs
    assert (len(record.metrics), network.stop_reason) == (20, "completed")
    assert weight_dtypes(backend, network) == {"float32"}
    assert network.n_params == 4 * 8 + 8 + 8 + 1
    assert network.spec == MLP(hidden=(8,))


# -- stopping keeps the best weights --------------------------------------------------------------


def test_callback_returning_false_stops_with_the_best_weights(backend, data, val) -> None:
    record = Recorder(stop_at=2)
    network = train(backend, data, val, callback=record, epochs=10, batch_size=16)
    assert len(record.metrics) == 2
    assert network.stop_reason == "callback"
    assert nll_of(network, val) == pytest.approx(record.column("val_nll").min(), rel=1e-6)


def test_early_stopping_returns_the_best_epoch(backend, data: TrainData) -> None:
    # validation labels flipped: every step on the training data makes them less likely
    flipped = TrainData(data.X, data.n - data.k, data.n)
    record = Recorder()
    network = train(backend, data, flipped, callback=record, epochs=20, early_stopping=2, lr=0.05)
    assert network.stop_reason == "early_stopping"
    assert len(record.metrics) == 3
    val_nll = record.column("val_nll")
    assert val_nll.argmin() == 0
    assert nll_of(network, flipped) == pytest.approx(val_nll[0], rel=1e-6)


@pytest.mark.parametrize(
    ("optimizer", "batch_size"),
    [("adam", None), ("adam", 16), ("lbfgs", None)],
    ids=["adam", "adam-batch16", "lbfgs"],
)
def test_keyboard_interrupt_returns_the_network(backend, data, val, optimizer, batch_size) -> None:
    handler = signal.getsignal(signal.SIGINT)
    record = Recorder(raise_at=(3, KeyboardInterrupt()))
    spec = Logistic() if optimizer == "lbfgs" else None
    network = train(backend, data, val, spec, callback=record, epochs=10, optimizer=optimizer,
                    batch_size=batch_size)  # fmt: skip
    assert network.stop_reason == "interrupted"
    assert len(record.metrics) == 3
    # adam keeps the best epoch; L-BFGS its last accepted iterate
    kept = record.column("val_nll")[-1] if optimizer == "lbfgs" else record.column("val_nll").min()
    assert nll_of(network, val) == pytest.approx(kept, rel=1e-6)
    # the caller's Ctrl-C handler is back (Lightning ignores Ctrl-C after handling one)
    assert signal.getsignal(signal.SIGINT) is handler


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_callback_exceptions_propagate_unchanged(backend, data, optimizer: str) -> None:
    class Boom(RuntimeError):
        pass

    error = Boom("from the callback")
    spec = Logistic() if optimizer == "lbfgs" else None
    with pytest.raises(Boom) as info:
        train(backend, data, spec=spec, callback=Recorder(raise_at=(2, error)), epochs=5,
              optimizer=optimizer)  # fmt: skip
    assert info.value is error


def test_divergence_error_from_the_core_propagates(backend) -> None:
    # steps of 1e30 overflow float32: the core raises on the loss of the first epoch
    with pytest.raises(bl.errors.TrainingDivergedError, match="diverged at epoch 1"):
        bl.fit(two_groups(), model="mlp:4", backend=backend, epochs=5, lr=1e30)


def test_a_learning_rate_far_too_high_is_divergence_on_real_data(backend) -> None:
    from binomlab import datasets

    train, val = datasets.star98().split(test=0.2, seed=0)
    for kwargs in ({}, {"val": val}):
        with pytest.raises(bl.TrainingDivergedError, match=r"epoch \d.*lower the learning|rate"):
            bl.fit(train, model="mlp:8", backend=backend, lr=1e6, epochs=3, **kwargs)


# -- options ---------------------------------------------------------------------------------------


def test_options_are_declared(backend) -> None:
    cls = backend_class(backend)
    assert set(cls.options) == OPTIONS[backend]
    assert cls.name == backend
    assert cls().versions() == framework_versions(backend)


def test_unknown_option_lists_the_accepted_ones(backend, data: TrainData) -> None:
    with pytest.raises(BinomlabError) as info:
        train(backend, data, options={"no_such": 1})
    for option in OPTIONS[backend]:
        info.match(rf"\['no_such'\].*'{option}'")
    with pytest.raises(BinomlabError, match="no_such"):
        bl.fit(two_groups(), backend=backend, no_such=1)


def test_lbfgs_refuses_mini_batches(backend, data: TrainData) -> None:
    with pytest.raises(BinomlabError, match=r"full batch.*batch_size=16"):
        train(backend, data, spec=Logistic(), optimizer="lbfgs", batch_size=16)


def test_quiet_and_writes_nothing(backend, data, tmp_path, monkeypatch, capfd) -> None:
    monkeypatch.chdir(tmp_path)
    settings = global_settings(backend)
    capfd.readouterr()
    train(backend, data, epochs=2)
    train(backend, data, spec=Logistic(), optimizer="lbfgs")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert list(tmp_path.iterdir()) == []
    assert global_settings(backend) == settings


# -- the registry and the conformance suite --------------------------------------------------------


def test_registered(backend) -> None:
    assert backend in bl.backends.available()
    assert isinstance(bl.backends.get(backend), backend_class(backend))


@parametrize_with_checks(PLUGINS)
def test_conformance(backend, check) -> None:
    check()
