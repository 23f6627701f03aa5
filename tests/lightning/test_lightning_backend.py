"""The Lightning backend: the protocol's training rules, the GLM fit, options and quietness."""

from __future__ import annotations

import signal

import numpy as np
import polars as pl
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("binomlab_lightning")

import lightning as L  # noqa: E402

import binomlab as bl  # noqa: E402
from binomlab import backends  # noqa: E402
from binomlab.errors import BinomlabError  # noqa: E402
from binomlab.protocol import TrainConfig, TrainData  # noqa: E402
from binomlab.reference import grouped_nll  # noqa: E402
from binomlab.specs import MLP, Logistic  # noqa: E402
from binomlab.testing import Recorder, rows_as_groups, synthetic_train_data  # noqa: E402
from binomlab_lightning import BinomialModule, LightningBackend  # noqa: E402
from binomlab_lightning.backend import ProgressMonitor  # noqa: E402
from binomlab_lightning.data import GroupBatches, GroupTensors  # noqa: E402

synthetic = synthetic_train_data
as_rows = rows_as_groups


def train(data, val=None, spec=None, *, callback=None, **config):
    return LightningBackend().fit(
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


@pytest.mark.parametrize("epochs", [1, 2, 4, 6])
def test_lbfgs_on_groups_and_rows_take_the_same_steps(data: TrainData, epochs: int) -> None:
    rows = as_rows(data)
    grouped = train(data, spec=Logistic(), optimizer="lbfgs", epochs=epochs)
    raw = train(rows, spec=Logistic(), optimizer="lbfgs", epochs=epochs)
    np.testing.assert_allclose(
        grouped.predict_logits(data.X), raw.predict_logits(data.X), rtol=0, atol=1e-5
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

    fitted = bl.fit(g, model="logistic", backend="lightning", optimizer="lbfgs")
    assert fitted.stop_reason == "converged"
    deviance = bl.evaluate(g, fitted)["deviance"]
    assert deviance == pytest.approx(glm.deviance, rel=1e-3)
    coefficients = fitted.coefficients()
    assert coefficients["term"].to_list() == ["(intercept)", *g.features]
    np.testing.assert_allclose(
        coefficients["raw_coefficient"].to_numpy(), glm.params.to_numpy(), rtol=1e-3
    )


def test_lbfgs_trains_in_float64_and_reports_exact_nll(data: TrainData, val: TrainData) -> None:
    record = Recorder()
    network = train(data, val, Logistic(), callback=record, optimizer="lbfgs")
    assert network.stop_reason == "converged"
    assert next(network.net.parameters()).dtype == torch.float64
    # full batch: the reported NLLs are the exact ones of the weights at the end of each
    # iteration; those of the best validation epoch are returned
    best = record.column("val_nll").argmin()
    assert nll_of(network, val) == pytest.approx(record.column("val_nll")[best], rel=1e-9)
    assert nll_of(network, data) == pytest.approx(record.column("train_nll")[best], rel=1e-9)
    assert len(record.metrics) < 100


def test_lbfgs_respects_the_iteration_cap(data: TrainData) -> None:
    record = Recorder()
    network = train(
        data, spec=Logistic(), callback=record, optimizer="lbfgs", epochs=3, tolerance=1e-14
    )
    assert (len(record.metrics), network.stop_reason) == (3, "completed")


def test_lbfgs_weight_decay_reaches_the_penalised_optimum(data: TrainData) -> None:
    from scipy.optimize import minimize
    from scipy.special import expit

    # penalty weight_decay/2·‖W‖² on the weights, not the intercept (as the reference backend)
    decay, X = 0.05, data.X.astype(np.float64)

    def objective(theta):
        z = X @ theta[:-1] + theta[-1]
        g = (data.n * expit(z) - data.k) / data.n.sum()
        value = grouped_nll(z, data.k, data.n) + 0.5 * decay * theta[:-1] @ theta[:-1]
        return value, np.append(X.T @ g + decay * theta[:-1], g.sum())

    optimum = minimize(objective, np.zeros(5), jac=True, method="BFGS", options={"gtol": 1e-12})
    expected = X @ optimum.x[:-1] + optimum.x[-1]
    record = Recorder()
    config = TrainConfig(optimizer="lbfgs", weight_decay=decay, tolerance=1e-8)
    ours = LightningBackend().fit(data, None, Logistic(), config, record)
    assert ours.stop_reason == "converged"
    np.testing.assert_allclose(ours.predict_logits(data.X), expected, rtol=0, atol=1e-6)
    # the NLL alone rises on the way to the penalised fit, yet the last weights are kept
    assert record.column("train_nll").argmin() < len(record.metrics) - 1
    assert nll_of(ours, data) == pytest.approx(record.column("train_nll")[-1], rel=1e-12)


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
    assert next(network.net.parameters()).dtype == torch.float32
    assert network.n_params == 4 * 8 + 8 + 8 + 1


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


def test_keyboard_interrupt_returns_the_network(data, val) -> None:
    handler = signal.getsignal(signal.SIGINT)
    record = Recorder(raise_at=(3, KeyboardInterrupt()))
    network = train(data, val, callback=record, epochs=10, batch_size=16)
    assert network.stop_reason == "interrupted"
    assert len(record.metrics) == 3
    assert nll_of(network, val) == pytest.approx(record.column("val_nll").min(), rel=1e-6)
    # Lightning ignores Ctrl-C after handling one; the caller's handler is back
    assert signal.getsignal(signal.SIGINT) is handler


def test_callback_exceptions_propagate_unchanged(data: TrainData) -> None:
    class Boom(RuntimeError):
        pass

    error = Boom("from the callback")
    with pytest.raises(Boom) as info:
        train(data, callback=Recorder(raise_at=(2, error)), epochs=5)
    assert info.value is error


def test_divergence_error_from_the_core_propagates() -> None:
    g = bl.from_counts(pl.DataFrame({"x": ["a", "b"], "n": [10, 10], "k": [3, 7]}), ["x"])
    # steps of 1e30 overflow float32: the core's callback raises on the non-finite loss
    with pytest.raises(bl.errors.TrainingDivergedError, match="diverged at epoch 2"):
        bl.fit(g, model="mlp:4", backend="lightning", epochs=5, lr=1e30)


# -- options ---------------------------------------------------------------------------------------


def test_options_are_declared() -> None:
    assert set(LightningBackend.options) == {
        "strategy",
        "devices",
        "accelerator",
        "precision",
        "default_root_dir",
        "enable_checkpointing",
        "logger",
    }
    assert LightningBackend.name == "lightning"
    assert set(LightningBackend().versions()) == {"torch", "lightning"}


def test_unknown_option_lists_the_accepted_ones(data: TrainData) -> None:
    with pytest.raises(BinomlabError, match=r"\['no_such'\].*'strategy'"):
        train(data, options={"no_such": 1})
    g = bl.from_counts(pl.DataFrame({"x": ["a", "b"], "n": [10, 10], "k": [3, 7]}), ["x"])
    with pytest.raises(BinomlabError, match="no_such"):
        bl.fit(g, backend="lightning", no_such=1)


@pytest.mark.parametrize("strategy", ["ddp_spawn", "ddp_notebook"])
def test_strategies_that_train_in_other_processes_are_refused(data, strategy) -> None:
    with pytest.raises(BinomlabError, match="strategy='ddp'"):
        train(data, options={"strategy": strategy, "devices": 2, "accelerator": "cpu"})


def test_lbfgs_refuses_mini_batches(data: TrainData) -> None:
    with pytest.raises(BinomlabError, match=r"full batch.*batch_size=16"):
        train(data, spec=Logistic(), optimizer="lbfgs", batch_size=16)


def test_quiet_and_writes_nothing(data, tmp_path, monkeypatch, capfd) -> None:
    monkeypatch.chdir(tmp_path)
    deterministic = torch.are_deterministic_algorithms_enabled()
    train(data, epochs=2)
    train(data, spec=Logistic(), optimizer="lbfgs", epochs=2)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert list(tmp_path.iterdir()) == []
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_options_reach_the_trainer(data, tmp_path) -> None:
    train(
        data,
        epochs=2,
        options={
            "accelerator": "cpu",
            "devices": 1,
            "precision": "64-true",
            "default_root_dir": str(tmp_path),
            "enable_checkpointing": True,
            "logger": False,
        },
    )
    (checkpoint,) = tmp_path.rglob("*.ckpt")  # enable_checkpointing=True writes one
    # the hyperparameters rebuild the network: no pickled module needed
    module = BinomialModule.load_from_checkpoint(checkpoint, weights_only=True)
    assert module.hparams.input_dim == 4 and module.hparams.optimizer == "adam"


# -- the pieces, as a Lightning user would use them ----------------------------------------------


@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")
def test_module_in_a_plain_trainer(data: TrainData, val: TrainData) -> None:
    module = BinomialModule(spec=MLP(hidden=(4,)).to_dict(), input_dim=4, lr=0.01, batch_size=64)
    assert module.hparams.spec["hidden"] == [4]
    module.attach(GroupTensors.from_train_data(data))
    record = Recorder()
    monitor = ProgressMonitor(record, GroupTensors.from_train_data(val), patience=None)
    trainer = L.Trainer(
        max_epochs=2,
        callbacks=[monitor],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module)
    assert {"train/nll", "val/nll"} <= set(trainer.callback_metrics)
    assert float(trainer.callback_metrics["val/nll"]) == pytest.approx(
        record.metrics[-1]["val_nll"]
    )


def test_batches_cover_every_group_once_per_epoch(data: TrainData) -> None:
    tensors = GroupTensors.from_train_data(data).to("cpu", torch.float64)
    batches = GroupBatches(tensors, batch_size=64, shuffle=True, seed=3)
    assert len(batches) == 4
    first = torch.cat([X for X, *_ in batches])
    second = torch.cat([X for X, *_ in batches])
    key = lambda X: X[:, 0].sort().values  # noqa: E731
    torch.testing.assert_close(key(first), key(tensors.X))
    assert not torch.equal(first, second), "a new order every epoch"
    # two processes split every batch; each knows the whole batch's trials
    shards = [
        GroupBatches(tensors, batch_size=64, shuffle=True, seed=3, rank=r, world_size=2)
        for r in (0, 1)
    ]
    for (X0, _, n0, t0), (X1, _, n1, t1) in zip(*shards, strict=True):
        assert t0 == t1 == n0.sum() + n1.sum()
        assert abs(len(X0) - len(X1)) <= 1


# -- the registry and the conformance suite --------------------------------------------------------


def test_registered() -> None:
    assert "lightning" in backends.available()
    assert isinstance(backends.get("lightning"), LightningBackend)


def test_check_backend() -> None:
    testing = pytest.importorskip("binomlab.testing")
    testing.check_backend("lightning")
