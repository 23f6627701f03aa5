"""The Keras backend's own training: an L-BFGS MLP, Adam's and AdamW's weight decay, PyTorch's
initialisation, its options and batches, a quiet import, and the conformance suite and random
state under KERAS_BACKEND=torch.

The rules every plugin keeps are tested for Keras in tests/test_plugin_backends.py.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import polars as pl
import pytest
from conftest import skip_or_fail

# the plugin first: it quiets TensorFlow's start-up messages, which must precede its import
pytest.importorskip("binomlab_keras")
keras = pytest.importorskip("keras")

import binomlab as bl  # noqa: E402
from binomlab.backends.protocol import TrainConfig, TrainData  # noqa: E402
from binomlab.errors import BinomlabError  # noqa: E402
from binomlab.specs import MLP, Logistic  # noqa: E402
from binomlab.testing import Recorder  # noqa: E402
from binomlab_keras import KerasBackend, build_model  # noqa: E402
from binomlab_keras import session as keras_session  # noqa: E402
from binomlab_keras.backend import STEPS_PER_EXECUTION  # noqa: E402
from binomlab_keras.data import GroupArrays, GroupBatches, epoch_order  # noqa: E402
from binomlab_keras.model import spec_from_model  # noqa: E402
from binomlab_keras.session import fit_epochs  # noqa: E402


def train(data, val=None, spec=None, *, callback=None, **config):
    return KerasBackend().fit(
        data, val, spec or MLP(hidden=(8,)), TrainConfig(**config), callback or Recorder()
    )


def test_lbfgs_mlp_converges_to_a_stationary_point(data: TrainData) -> None:
    record = Recorder()
    network = train(data, spec=MLP(hidden=(3,), activation="tanh"), callback=record,
                    optimizer="lbfgs", tolerance=1e-6)  # fmt: skip
    assert network.stop_reason == "converged"
    nll = record.column("train_nll")
    assert nll[-1] <= nll.min() and nll[-1] < nll[0]


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


def test_the_default_model_reads_back_as_its_spec(data: TrainData) -> None:
    network = train(data)  # adam, 20 epochs
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


# -- options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"jit_compile": "yes"}, "jit_compile='yes'"),
        ({"steps_per_execution": 0}, "steps_per_execution=0"),
        ({"steps_per_execution": True}, "steps_per_execution=True"),
        ({"steps_per_execution": np.True_}, "steps_per_execution=np.True_"),
        ({"steps_per_execution": 2.0}, "steps_per_execution=2.0"),
        ({"jit_compile": 1}, "jit_compile=1"),
        ({"jit_compile": 1.0}, "jit_compile=1.0"),
        ({"jit_compile": "True"}, "jit_compile='True'"),
    ],
)
def test_bad_option_values(data: TrainData, options, match: str) -> None:
    with pytest.raises(BinomlabError, match=match):
        train(data, options=options)


def test_options_reach_keras(data: TrainData) -> None:
    base = {"epochs": 2, "batch_size": 32, "seed": 1}
    default = train(data, **base)
    expected = 1 if keras.backend.backend() == "torch" else STEPS_PER_EXECUTION
    assert default.model.steps_per_execution == expected
    plain = default.predict_logits(data.X)
    # 200 groups: 7 batches per epoch, in calls of 1, 3 (3, 3, 1) or 32; NumPy's ints as ints
    for steps in (1, np.int64(3)):
        grouped_steps = train(data, options={"steps_per_execution": steps}, **base)
        assert grouped_steps.model.steps_per_execution == steps
        assert type(grouped_steps.model.steps_per_execution) is int
        np.testing.assert_allclose(grouped_steps.predict_logits(data.X), plain, atol=1e-5)
    jitted = train(data, options={"jit_compile": np.True_}, **base)
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
        batches.on_epoch_begin()
        return np.concatenate([batches[i][0] for i in range(len(batches))])

    first, second = epoch(), epoch()
    key = lambda X: np.sort(X[:, 0])  # noqa: E731
    np.testing.assert_array_equal(key(first), key(arrays.x))
    np.testing.assert_array_equal(key(second), key(arrays.x))
    assert not np.array_equal(first, second), "a new order every epoch"
    # epoch e serves epoch_order(seed, e): the seed and the epoch only
    np.testing.assert_array_equal(first, arrays.x[epoch_order(3, 0, 200)])
    np.testing.assert_array_equal(second, arrays.x[epoch_order(3, 1, 200)])
    again = GroupBatches(arrays, batch_size=64, seed=3)
    np.testing.assert_array_equal(again.permutation(1), batches.permutation(1))
    assert not np.array_equal(GroupBatches(arrays, batch_size=64, seed=4).permutation(1),
                              batches.permutation(1))  # fmt: skip
    x, y = batches[3]
    assert x.shape == (200 - 3 * 64, 4) and y.shape == (200 - 3 * 64, 2)


def test_model_fit_serves_each_epoch_its_order(data: TrainData, monkeypatch) -> None:
    """On torch and JAX, model.fit draws every batch of epoch e from epoch_order(seed, e),
    as the TensorFlow graph loop does (fit's own on_epoch_end before the first epoch and its
    peek at the first batches do not shift the epochs)."""
    served = []
    original = GroupBatches.__getitem__

    def spy(self, index: int):
        served.append((self.epoch, index))
        return original(self, index)

    monkeypatch.setattr(GroupBatches, "__getitem__", spy)
    monkeypatch.setattr(keras_session, "run_graph_epochs", fit_epochs)  # the model.fit path
    train(data, epochs=4, batch_size=64)
    by_epoch: dict[int, list[int]] = {}
    for epoch, index in served:
        by_epoch.setdefault(epoch, []).append(index)
    # before training, Keras peeks at the first batches (epoch 0's) to learn the shapes
    assert [by_epoch[e][-4:] for e in range(4)] == [[0, 1, 2, 3]] * 4, by_epoch
    assert sorted(by_epoch) == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def index_data() -> tuple[TrainData, TrainData]:
    """Train and validation groups of synthetic rows in the index form (codes), as bl.fit
    encodes them for an MLP."""
    from binomlab.encoding import Encoder
    from binomlab.testing import synthetic_rows
    from binomlab.training import train_data

    features = ["colour", "size", "flag"]
    train_groups = bl.group(synthetic_rows(3_000, seed=0), features, "y")
    val_groups = bl.group(synthetic_rows(1_000, seed=1), features, "y")
    encoder = Encoder.fit(train_groups, design="one-hot", form="index")
    return train_data(encoder, train_groups), train_data(encoder, val_groups)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's graph loop")
@pytest.mark.parametrize(
    ("spec", "config", "steps"),
    [
        (MLP(hidden=(8,)), {}, 1),
        (MLP(hidden=(8,)), {}, 3),
        (MLP(hidden=(8,)), {}, 32),
        (MLP(hidden=(8, 4)), {"weight_decay": 0.1}, 3),  # Adam's L2 in the loss
        (MLP(hidden=(8,), embed=2), {"optimizer": "adamw", "weight_decay": 0.5}, 3),
        (Logistic(), {"loss": "beta-binomial"}, 3),
        (MLP(hidden=(6,)), {"loss": "beta-binomial", "phi": "network"}, 3),
        (MLP(hidden=(8, 4), dropout=0.3), {}, 3),  # the dropout masks: the same draws
    ],
    ids=[
        "mlp-1",
        "mlp-3",
        "mlp-32",
        "adam-l2",
        "adamw-embed",
        "logistic-bb",
        "phi-network",
        "dropout",
    ],
)
def test_graph_loop_takes_model_fits_steps(
    data: TrainData, val: TrainData, index_data, monkeypatch, spec, config, steps: int
) -> None:
    """The TensorFlow graph loop trains exactly as Keras's own model.fit on the same batches
    (the torch and JAX path): the same history, logits and φ, and the same progress by
    batch, for every steps_per_execution (in batches of a quarter of the groups, plus a
    smaller last one: executions of 1, 3 or 4 steps)."""
    if isinstance(spec, MLP) and spec.embed is not None:
        data, val = index_data
    batch = -(-len(data.k) // 4) + 1  # 4 batches, the last smaller
    progress = _graph_against_model_fit(
        data, val, spec, {"optimizer": "adam", **config}, monkeypatch,
        batch_size=batch, options={"steps_per_execution": steps},
    )  # fmt: skip
    assert progress[-1] == (3, 4, 4) and len(progress) == 3 * -(-4 // steps)


def _graph_against_model_fit(
    data: TrainData, val: TrainData, spec, config: dict, monkeypatch, **base
) -> list[tuple[int, int, int]]:
    """Train ``spec`` 3 epochs from seed 5 in the graph loop and in model.fit (the torch and
    JAX path), assert the same history, logits (and φ) and progress; return the progress."""
    base = {"epochs": 3, "seed": 5, **base}

    def run() -> tuple[Recorder, list, object]:
        record, progress = Recorder(), []
        network = KerasBackend().fit(
            data, val, spec, TrainConfig(**base, **config), record,
            batch_callback=lambda e, b, n: progress.append((e, b, n)),
        )  # fmt: skip
        return record, progress, network

    graph_record, graph_progress, graph = run()
    with monkeypatch.context() as patch:
        patch.setattr(keras_session, "run_graph_epochs", fit_epochs)
        fit_record, fit_progress, fitted = run()
    assert graph_progress == fit_progress
    for column in ("train_nll", "val_nll"):
        np.testing.assert_allclose(
            graph_record.column(column), fit_record.column(column), rtol=1e-6
        )
    np.testing.assert_allclose(
        graph.predict_logits(val.X), fitted.predict_logits(val.X), rtol=1e-5, atol=1e-6
    )
    if config.get("loss") == "beta-binomial":
        np.testing.assert_allclose(
            graph.predict_log_phi(val.X), fitted.predict_log_phi(val.X), rtol=1e-5, atol=1e-6
        )
    return graph_progress


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's graph loop")
@pytest.mark.parametrize("spec", [MLP(hidden=(8,)), MLP(hidden=(4,), embed=2), Logistic()])
@pytest.mark.parametrize(
    ("batch", "steps"),
    [(39, 1), (39, 2), (13, 3), (3, 4)],
    ids=["alone", "after-one", "after-an-execution", "after-one-of-four"],
)
def test_graph_loop_under_xla_with_a_batch_of_one_group(
    index_data, monkeypatch, spec, batch: int, steps: int
) -> None:
    """With jit_compile, XLA compiles a program per batch shape, as model.fit does: an
    execution ending in a batch of one group (groups = k·batch + 1) trains as model.fit's
    does, on codes (the MLP's, its embeddings', Adam's logistic's), whether that batch is
    alone in its execution or follows others — traced with a dynamic batch, XLA's dynamic
    padder failed on it."""
    data, val = index_data
    assert len(data.k) % batch == 1  # 40 groups
    config = {"optimizer": "adam", "lr": 0.05}
    options = {"steps_per_execution": steps, "jit_compile": True}
    _graph_against_model_fit(
        data, val, spec, config, monkeypatch, batch_size=batch, options=options
    )


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's graph loop")
@pytest.mark.parametrize("spec", ["logistic", "mlp:4", MLP(hidden=(4,), embed=2)])
def test_xla_trains_a_single_group(spec) -> None:
    """One group: the logistic's codes select no kernel row (its one level is the reference),
    whose gradient XLA could not compile (a scatter into no rows); the network trains under
    jit_compile as without it, and the logistic stays at the group's rate, the optimum."""
    g = bl.from_counts(pl.DataFrame({"colour": ["red"], "n": [10], "k": [3]}), ["colour"])
    base = {"backend": "keras", "model": spec, "optimizer": "adam", "epochs": 3}
    jitted = bl.fit(g, **base, jit_compile=True).history["train_nll"].to_numpy()
    plain = bl.fit(g, **base, jit_compile=False).history["train_nll"].to_numpy()
    np.testing.assert_allclose(jitted, plain, rtol=1e-5)
    if spec == "logistic":  # the base-rate bias: the entropy of 3 in 10
        np.testing.assert_allclose(jitted, -(0.3 * np.log(0.3) + 0.7 * np.log(0.7)), rtol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's graph loop")
@pytest.mark.parametrize("spec", [MLP(hidden=(8,)), Logistic()])
def test_graph_loop_under_a_mixed_precision_policy(
    data: TrainData, val: TrainData, monkeypatch, spec
) -> None:
    """Under the global mixed_float16 policy Keras wraps Adam in a LossScaleOptimizer: the
    graph loop scales the loss as Keras's train_step does, so its gradients are not 2¹⁵×
    too small, and it trains as model.fit does."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        _graph_against_model_fit(
            data, val, spec, {"optimizer": "adam", "lr": 0.05}, monkeypatch,
            batch_size=48, options={"steps_per_execution": 2},
        )  # fmt: skip
    finally:
        keras.mixed_precision.set_global_policy(policy)


# -- the fixed cost of a fit (benchmarks/README.md, "Keras training") ------------------------------


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's tracing")
def test_a_fit_traces_its_train_step_once(data: TrainData, val: TrainData, monkeypatch) -> None:
    """Adam's variables exist before the first step, so the execution's tf.function is
    traced once, not twice (a traced function that creates variables is traced again without
    them), whatever the length of an execution; the epochs' exact NLL goes through one traced
    forward pass for every number of rows."""
    from binomlab_keras import graph_epochs
    from binomlab_keras.network import _traced

    executions = []
    original = graph_epochs._execution

    def spy(*args, **kwargs):
        executions.append(original(*args, **kwargs))
        return executions[-1]

    monkeypatch.setattr(graph_epochs, "_execution", spy)
    # 200 groups, batches of 64, 3 per call: executions of 192 and 8 groups
    network = train(data, val, epochs=3, batch_size=64, options={"steps_per_execution": 3})
    assert [f.experimental_get_tracing_count() for f in executions] == [1]
    forward = _traced(network.model)
    assert forward.experimental_get_tracing_count() == 1  # train (200 rows) and val (80 rows)
    for rows in (0, 1, 7, 200):
        expected = network.model(data.X[:rows].astype(np.float32), training=False)
        got = network.predict_logits(data.X[:rows])
        np.testing.assert_allclose(got, np.ravel(expected), rtol=1e-6, atol=1e-6)
    assert forward.experimental_get_tracing_count() == 1


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's tracing")
def test_fits_in_one_process_do_not_warn_of_retracing(data: TrainData, val: TrainData) -> None:
    """A fit traces its new model's step and forward pass once each; TensorFlow counts the
    traces of every tf.function made from the same code, so the fifth fit in a notebook used
    to warn of 'excessive retracing', though nothing retraced."""
    import logging

    import tensorflow as tf

    seen: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    catch, logger = Catch(level=logging.WARNING), tf.get_logger()
    logger.addHandler(catch)
    try:
        for seed in range(7):
            train(
                data,
                val,
                epochs=1,
                batch_size=64,
                seed=seed,
                options={"jit_compile": seed % 2 == 1},
            )
    finally:
        logger.removeHandler(catch)
    assert not [m for m in seen if "retracing" in m], seen


# -- under KERAS_BACKEND=torch and jax -------------------------------------------------------------


def run_on_torch(script: str, engine: str = "torch") -> None:
    """Run ``script`` in a fresh interpreter with KERAS_BACKEND=engine; it must end printing
    ok. A missing framework skips, except under CI, where .ci/run installs it: it fails."""
    if importlib.util.find_spec(engine) is None:
        skip_or_fail(f"{engine} is not installed (make installs it from the constraints)")
    env = {**os.environ, "KERAS_BACKEND": engine, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["torch", "jax"])
def test_conformance_under_torch_and_jax(engine: str) -> None:
    """Every conformance check and the float64 GLM also pass with KERAS_BACKEND=torch and
    KERAS_BACKEND=jax (the check that fails is named in the assertion)."""
    run_on_torch(
        f"""
        import keras
        from binomlab.testing import backend_checks
        from binomlab import datasets
        import binomlab as bl

        assert keras.backend.backend() == {engine!r}
        names = []
        for name, check in backend_checks("keras"):
            check()
            names.append(name)
        assert "lbfgs_optimum" in names and "divergence" in names, names
        print("ok")""",
        engine,
    )
    run_on_torch(
        f"""
        import keras
        from binomlab import datasets
        import binomlab as bl

        assert keras.backend.backend() == {engine!r}
        g = datasets.star98()
        fitted = bl.fit(g, model="logistic", backend="keras")
        ref = bl.fit(g, model="logistic", backend="reference")
        ours, theirs = bl.evaluate(g, fitted)["deviance"], bl.evaluate(g, ref)["deviance"]
        assert fitted.stop_reason == "converged", fitted.stop_reason
        assert abs(ours - theirs) <= 1e-6 * theirs, (ours, theirs)
        print("ok")
        """,
        engine,
    )


@pytest.mark.slow
def test_torch_state_is_restored_under_keras_on_torch() -> None:
    """With KERAS_BACKEND=torch, set_random_seed seeds torch too: its generator comes back."""
    run_on_torch(
        """
        import random
        import numpy as np
        import torch
        import keras
        import binomlab as bl
        from binomlab.testing import synthetic_rows

        assert keras.backend.backend() == "torch"
        g = bl.group(synthetic_rows(300), ["colour", "size", "flag"], "y")
        torch.manual_seed(123)
        torch.rand(3)
        before = torch.random.get_rng_state()
        python, numpy = random.getstate(), np.random.get_state()[1].copy()
        bl.fit(g, model="mlp:4", backend="keras", epochs=2, seed=7)
        assert torch.equal(torch.random.get_rng_state(), before)
        assert random.getstate() == python
        assert np.array_equal(np.random.get_state()[1], numpy)
        print("ok")
        """
    )
