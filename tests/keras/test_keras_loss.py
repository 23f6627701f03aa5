"""BinomialNLL equals Keras's binary cross-entropy over the expanded 0/1 rows, values and
gradients, under the running Keras backend; the module re-runs itself under the others.

Keras picks its backend at import, so the torch (and, when installed, JAX) runs happen in a
subprocess with ``KERAS_BACKEND`` set.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import skip_or_fail

pytest.importorskip("binomlab_keras")  # first: it quiets TensorFlow's start-up messages
keras = pytest.importorskip("keras")

from helpers import binomial_loss_cases as _groups  # noqa: E402
from keras import ops  # noqa: E402

from binomlab.nll import grouped_nll  # noqa: E402
from binomlab_keras import BinomialNLL, BinomialNLLMetric, binomial_nll, pack_counts  # noqa: E402

BACKEND = keras.backend.backend()


def _expanded(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The raw rows: for each row its group's index and its 0/1 label."""
    group = np.repeat(np.arange(len(n)), n)
    label = np.concatenate(
        [np.r_[np.ones(ki), np.zeros(ni - ki)] for ki, ni in zip(k, n, strict=True)]
    )
    return group, label


def value_and_grad(fn, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``fn(z)`` and the gradient of its sum with respect to ``z`` (float64), by the running
    backend's autodiff."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        zt = tf.constant(z)
        with tf.GradientTape() as tape:
            tape.watch(zt)
            value = fn(zt)
            total = tf.reduce_sum(value)
        return value.numpy(), tf.convert_to_tensor(tape.gradient(total, zt)).numpy()
    if BACKEND == "torch":
        import torch

        zt = torch.tensor(z, requires_grad=True)
        value = fn(zt)
        (grad,) = torch.autograd.grad(value.sum(), zt)
        return value.detach().cpu().numpy(), grad.cpu().numpy()
    if BACKEND == "jax":
        import jax

        value = fn(z)
        grad = jax.grad(lambda v: fn(v).sum())(z)
        return np.asarray(value), np.asarray(grad)
    pytest.skip(f"no autodiff helper for the {BACKEND} backend")


def _bce_rows(reduction: str):
    """Keras's BinaryCrossentropy on the expanded rows of ``_groups()``, as a function of the
    group logits (rows take their group's logit)."""
    _, k, n = _groups()
    group, label = _expanded(k, n)
    bce = keras.losses.BinaryCrossentropy(
        from_logits=True, reduction="none" if reduction == "none" else reduction, dtype="float64"
    )
    labels = ops.convert_to_tensor(label[:, None])

    def fn(z):
        rows = ops.take(z, ops.convert_to_tensor(group), axis=0)[:, None]
        out = bce(labels, rows)
        if reduction == "none":  # back to one value per group
            out = ops.segment_sum(out, ops.convert_to_tensor(group), num_segments=len(n))
        return out

    return fn


@pytest.mark.parametrize(
    ("ours", "keras_reduction"),
    [("sum_over_trials", "sum_over_batch_size"), ("sum", "sum"), ("none", "none")],
)
def test_equals_binary_crossentropy_over_expanded_rows(ours: str, keras_reduction: str) -> None:
    z, k, n = _groups()
    y = np.column_stack([k, n]).astype(np.float64)
    loss = BinomialNLL(reduction=ours, dtype="float64")
    value, grad = value_and_grad(lambda zt: loss(y, zt), z)
    ref_value, ref_grad = value_and_grad(_bce_rows(keras_reduction), z)
    assert value.shape == ref_value.shape
    np.testing.assert_allclose(value, ref_value, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-6)
    if ours == "sum_over_trials":
        assert float(value) == pytest.approx(grouped_nll(z, k.astype(float), n), rel=1e-12)


def test_probability_mode_equals_binary_crossentropy() -> None:
    """``from_logits=False`` for a sigmoid output: probabilities in, the same NLL out."""
    z, k, n = _groups(seed=1)
    z = np.clip(z, -8, 8)  # away from the ε-clipping both losses apply
    p = 1 / (1 + np.exp(-z))
    group, label = _expanded(k, n)
    y = np.column_stack([k, n]).astype(np.float64)
    ours = BinomialNLL(from_logits=False, dtype="float64")(y, p[:, None])
    ref = keras.losses.BinaryCrossentropy(from_logits=False, dtype="float64")(
        label[:, None], p[group][:, None]
    )
    # (Keras's own float64 losses compute in float32 on the torch backend)
    assert float(ours) == pytest.approx(float(ref), rel=1e-6)
    assert float(ours) == pytest.approx(grouped_nll(z, k.astype(float), n), rel=1e-9)


def test_divides_by_trials_not_rows() -> None:
    z = np.array([0.3, -1.2, 2.0])
    k, n = np.array([2.0, 0.0, 7.0]), np.array([5.0, 1.0, 7.0])
    y = pack_counts(k, n)
    total = float(BinomialNLL(reduction="sum", dtype="float64")(y, z))
    assert float(BinomialNLL(dtype="float64")(y, z)) == pytest.approx(total / 13)
    # Keras's weighted mean (BCE with target k/n and weight n) divides by the 3 groups instead
    trap = keras.losses.BinaryCrossentropy(from_logits=True, dtype="float64")(
        (k / n)[:, None], z[:, None], sample_weight=n
    )
    assert float(trap) == pytest.approx(total / 3)


def test_sample_weight_counts_a_group_that_many_times() -> None:
    z, k, n = _groups(groups=10)
    y = np.column_stack([k, n]).astype(np.float64)
    weight = np.arange(1, 11)
    repeated = np.repeat(np.arange(10), weight)
    for reduction in ("sum_over_trials", "sum"):
        loss = BinomialNLL(reduction=reduction, dtype="float64")
        weighted = float(loss(y, z, sample_weight=weight))
        assert weighted == pytest.approx(float(loss(y[repeated], z[repeated])), rel=1e-12)


def test_finite_at_saturated_logits() -> None:
    z = np.array([1000.0, -1000.0, 1000.0, -1000.0], np.float32)
    y = np.array([[3, 3], [0, 3], [0, 3], [3, 3]], np.float32)
    value, grad = value_and_grad(lambda zt: BinomialNLL(reduction="none")(y, zt), z)
    assert np.isfinite(value).all() and np.isfinite(grad).all()
    np.testing.assert_allclose(value, [0.0, 0.0, 3000.0, 3000.0])
    np.testing.assert_allclose(grad, [0.0, 0.0, 3.0, -3.0])


def test_shapes_and_dtypes() -> None:
    z, k, n = _groups(groups=8)
    y = pack_counts(k, n)  # integer counts are converted to the loss's dtype
    assert tuple(y.shape) == (8, 2)
    per_group = BinomialNLL(reduction=None)(y, z[:, None].astype(np.float32))
    assert tuple(per_group.shape) == (8,)
    assert keras.backend.standardize_dtype(per_group.dtype) == "float32"
    np.testing.assert_allclose(
        ops.convert_to_numpy(per_group),
        ops.convert_to_numpy(binomial_nll(y, z.astype(np.float32))),
        rtol=1e-6,
    )


@pytest.mark.parametrize("reduction", ["mean", "sum_over_batch_size", "x"])
def test_bad_reduction(reduction: str) -> None:
    match = (
        r"Expected one of \('sum_over_trials', 'sum', 'none'\)\. "
        rf"Received: reduction={reduction!r}"
    )
    with pytest.raises(ValueError, match=match):
        BinomialNLL(reduction=reduction)


def test_bad_shapes() -> None:
    z = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"shape \[batch, 2\]\. Received: y_true.shape=\(4, 3\)"):
        binomial_nll(np.zeros((4, 3), np.float32), z)
    with pytest.raises(ValueError, match=r"one value per row.*y_pred.shape=\(4, 2\)"):
        binomial_nll(np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float32))


def test_config_round_trip() -> None:
    loss = BinomialNLL(from_logits=False, reduction="sum", name="nll")
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, BinomialNLL)
    assert (again.from_logits, again.reduction, again.name) == (False, "sum", "nll")
    metric = keras.metrics.deserialize(keras.metrics.serialize(BinomialNLLMetric(name="m")))
    assert isinstance(metric, BinomialNLLMetric) and metric.name == "m"


def test_metric_is_the_per_trial_nll_over_batches() -> None:
    z, k, n = _groups(groups=30)
    y = np.column_stack([k, n]).astype(np.float64)
    metric = BinomialNLLMetric()
    for part in (slice(0, 7), slice(7, 30)):  # batches of different sizes and trials
        metric.update_state(y[part], z[part])
    assert float(metric.result()) == pytest.approx(grouped_nll(z, k.astype(float), n), rel=1e-12)
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_users_functional_model_with_two_inputs_trains() -> None:
    """Anyone's model: two inputs (a numeric block and a one-hot block), sigmoid-free logit
    output, compiled with BinomialNLL; it learns the generating model from grouped counts."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    groups = 600
    numeric = rng.normal(size=(groups, 3)).astype(np.float32)
    colour = rng.integers(0, 4, groups)
    onehot = np.eye(4, dtype=np.float32)[colour]
    n = rng.integers(5, 60, groups).astype(np.float32)
    true_z = numeric @ np.array([0.8, -0.5, 0.3]) + np.array([-1.0, 0.0, 0.5, 1.0])[colour]
    k = rng.binomial(n.astype(int), 1 / (1 + np.exp(-true_z))).astype(np.float32)

    a = keras.Input(shape=(3,), name="numeric")
    b = keras.Input(shape=(4,), name="colour")
    hidden = keras.layers.Dense(8, activation="tanh")(keras.layers.Concatenate()([a, b]))
    model = keras.Model([a, b], keras.layers.Dense(1)(hidden))
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=BinomialNLL(),
        metrics=[BinomialNLLMetric(name="nll")],
    )
    inputs = {"numeric": numeric, "colour": onehot}
    y = pack_counts(k, n)
    before = model.evaluate(inputs, y, batch_size=128, verbose=0, return_dict=True)["nll"]
    history = model.fit(inputs, y, batch_size=64, epochs=40, verbose=0)
    after = model.evaluate(inputs, y, batch_size=128, verbose=0, return_dict=True)
    z = ops.convert_to_numpy(model.predict(inputs, verbose=0)).reshape(-1).astype(np.float64)
    # the metric is the exact per-trial NLL over all batches
    assert after["nll"] == pytest.approx(grouped_nll(z, k, n), rel=1e-5)
    assert history.history["loss"][-1] < history.history["loss"][0]
    optimum = grouped_nll(true_z, k, n)
    assert after["nll"] < before - 0.05
    assert after["nll"] < optimum * 1.01, (after["nll"], optimum)


@pytest.mark.slow
@pytest.mark.parametrize("other", ["torch", "jax"])
def test_under_other_keras_backends(other: str) -> None:
    """This module's tests pass with KERAS_BACKEND=torch and jax (both installed by make)."""
    if other == BACKEND:
        pytest.skip(f"this process already runs {other}")
    if importlib.util.find_spec(other) is None:
        skip_or_fail(f"{other} is not installed (make installs it from the constraints)")
    env = {**os.environ, "KERAS_BACKEND": other, "OMP_NUM_THREADS": "1"}
    if other == "jax":  # JAX computes float32 unless x64 is on; these tests check float64
        env["JAX_ENABLE_X64"] = "1"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            __file__,
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "not slow",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2000:]
