"""The conformance checks every backend runs, and the synthetic data the tests share.

Each check is small and named, as scikit-learn's ``check_estimator`` checks are:
:func:`backend_checks` yields ``(name, check)`` pairs, :func:`parametrize_with_checks` gives
pytest one test id per check and backend, and :func:`check_backend` runs them all:

>>> from binomlab.testing import check_backend
>>> check_backend("reference")

They train small models on synthetic grouped data and check the promises of
:mod:`binomlab.backends.protocol`: the identity (grouped data and its raw rows train the same
model), the maximum-likelihood optimum of L-BFGS (with or without validation data, and the
warning at its iteration cap), determinism, divergence, the best epoch kept (without
validation data, after a callback stop and after Ctrl-C), exceptions passing through, export
round trips and argument errors. A failed check raises ``AssertionError`` naming it.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from binomlab import backends
from binomlab.backends.protocol import (
    DEFAULT_LR,
    DETERMINISTIC,
    TREE_OPTIMIZERS,
    Backend,
    TrainData,
)
from binomlab.errors import BinomlabError, ConvergenceWarning, TrainingDivergedError
from binomlab.export import load
from binomlab.grouped import Grouped
from binomlab.grouping import from_counts, group
from binomlab.metrics import evaluate
from binomlab.specs import parse_spec
from binomlab.training import fit

__all__ = [
    "OVERDISPERSION_LOG_PHI",
    "Recorder",
    "backend_checks",
    "check_backend",
    "counts_as_groups",
    "overdispersed_counts",
    "overdispersed_groups",
    "parametrize_with_checks",
    "rows_as_groups",
    "synthetic_rows",
    "synthetic_train_data",
]

OVERDISPERSION_LOG_PHI = {0: 2.0, 1: 3.5}
"""True ``log φ`` by level of :func:`overdispersed_groups`' feature ``s``: ρ = 0.119 at
``s = 0``, ρ = 0.029 at ``s = 1``."""


def synthetic_rows(rows: int = 4000, *, seed: int = 0) -> pl.DataFrame:
    """Raw 0/1 rows from a known logistic model over a string, an integer and a bool feature."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue", "grey"], rows, p=[0.4, 0.3, 0.2, 0.1])
    size = rng.integers(1, 6, rows)
    flag = rng.random(rows) < 0.4
    effect = {"red": 0.8, "green": 0.0, "blue": -0.5, "grey": 0.3}
    z = -0.7 + np.vectorize(effect.get)(colour) + 0.25 * (size - 3) - 0.6 * flag
    y = rng.random(rows) < 1 / (1 + np.exp(-z))
    return pl.DataFrame({"colour": colour, "size": size, "flag": flag, "y": y})


def overdispersed_groups(groups: int = 2000, *, seed: int = 0) -> Grouped:
    """Beta-binomial counts whose overdispersion depends on a feature, for ``phi="network"``.

    Features ``x0``, ``x1`` (standard normal) and ``s`` (0 or 1); the mean is
    ``σ(0.8·x0 − 0.4·x1 − 0.5)`` and ``log φ`` is :data:`OVERDISPERSION_LOG_PHI` ``[s]``;
    ``n`` from 50 to 500 per group. Every group has its own feature values.
    """
    from scipy.special import expit

    rng = np.random.default_rng(seed)
    x0, x1 = rng.normal(size=groups), rng.normal(size=groups)
    s = rng.integers(0, 2, groups)
    mu = expit(0.8 * x0 - 0.4 * x1 - 0.5)
    phi = np.exp(np.where(s == 1, OVERDISPERSION_LOG_PHI[1], OVERDISPERSION_LOG_PHI[0]))
    n = rng.integers(50, 501, groups)
    k = rng.binomial(n, rng.beta(mu * phi, (1 - mu) * phi))
    frame = pl.DataFrame({"x0": x0, "x1": x1, "s": s, "n": n, "k": k})
    return from_counts(frame, ["x0", "x1", "s"])


def overdispersed_counts(
    rho: float, *, groups: int = 300, d: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Beta-binomial counts with one known intra-group correlation ``rho``, for one learned φ.

    The mean is ``σ(X·w − 0.5)`` with ``w`` evenly spaced from 0.8 to −0.4, ``φ = 1/ρ − 1``
    and ``n`` from 50 to 500 per group; ``rho=0`` draws plain binomial counts.

    Returns
    -------
    X, k, n
        Standard-normal features float64 ``[groups, d]``, and successes and trials float64
        ``[groups]``; :func:`counts_as_groups` makes them a :class:`~binomlab.Grouped`.
    """
    from scipy.special import expit

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(groups, d))
    mu = expit(X @ np.linspace(0.8, -0.4, d) - 0.5)
    n = rng.integers(50, 501, groups)
    if rho == 0:
        k = rng.binomial(n, mu)
    else:
        phi = 1 / rho - 1
        k = rng.binomial(n, rng.beta(mu * phi, (1 - mu) * phi))
    return X, k.astype(np.float64), n.astype(np.float64)


def counts_as_groups(X: np.ndarray, k: np.ndarray, n: np.ndarray) -> Grouped:
    """Features ``X`` ``[groups, d]`` and counts ``k``, ``n`` ``[groups]`` as a
    :class:`~binomlab.Grouped` with features ``x0`` … ``x{d-1}`` (in
    :func:`~binomlab.from_counts`'s order, not the arrays')."""
    frame = pl.DataFrame({f"x{j}": X[:, j] for j in range(X.shape[1])})
    frame = frame.with_columns(n=pl.Series(n.astype(np.int64)), k=pl.Series(k.astype(np.int64)))
    return from_counts(frame, frame.columns[:-2])


def synthetic_train_data(groups: int = 200, d: int = 4, *, seed: int = 0) -> TrainData:
    """Encoded groups a backend trains on directly: standard-normal ``X`` float32
    ``[groups, d]``, ``n`` in 1..29 and ``k`` drawn from a known logistic model."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(groups, d)).astype(np.float32)
    n = rng.integers(1, 30, groups).astype(np.float64)
    z = X @ np.linspace(-1.0, 1.0, d) - 0.4
    k = rng.binomial(n.astype(int), 1 / (1 + np.exp(-z))).astype(np.float64)
    return TrainData(X, k, n)


def rows_as_groups(data: TrainData) -> TrainData:
    """Every trial of ``data`` as its own group of ``n = 1``: the raw rows, for the identity."""
    reps = data.n.astype(int)
    X = np.repeat(data.X, reps, axis=0)
    k = np.concatenate(
        [
            np.r_[np.ones(int(ki)), np.zeros(int(ni - ki))]
            for ki, ni in zip(data.k, reps, strict=True)
        ]
    )
    return TrainData(X, k, np.ones_like(k))


class Recorder:
    """A progress callback that records the metrics, and stops or raises at a given epoch.

    Parameters
    ----------
    stop_at
        Return False (stop) at this epoch.
    raise_at
        ``(epoch, exception)``: raise the exception at that epoch.
    """

    def __init__(
        self, *, stop_at: int | None = None, raise_at: tuple[int, BaseException] | None = None
    ) -> None:
        self.metrics: list[dict[str, float]] = []
        self.stop_at = stop_at
        self.raise_at = raise_at

    def __call__(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        assert epoch == len(self.metrics) + 1, f"epoch {epoch} after {len(self.metrics)} calls"
        self.metrics.append(dict(metrics))
        if self.raise_at is not None and epoch == self.raise_at[0]:
            raise self.raise_at[1]
        return self.stop_at is None or epoch < self.stop_at

    def column(self, name: str) -> np.ndarray:
        """One metric over the epochs, float64 ``[epochs]``."""
        return np.array([m[name] for m in self.metrics])


def _rows_as_groups(g: Grouped) -> Grouped:
    """The same data with every raw row as its own group of one trial (duplicates kept)."""
    rows = g.expand(label="k").with_columns(n=pl.lit(1, pl.Int64))
    return Grouped(rows.select(*g.features, "n", "k"), g.features, bins=g.bins)


def _check(condition: bool, name: str, detail: str) -> None:
    if not condition:
        msg = f"check_backend: {name} failed: {detail}"
        raise AssertionError(msg)


@cache
def _split() -> tuple[Grouped, Grouped]:
    """The checks' training and validation groups (of :func:`synthetic_rows`)."""
    g = group(synthetic_rows(), ["colour", "size", "flag"], "y")
    return g.split(0.25, seed=0)


_TREES = "gbdt:12,4"
"""The boosted-trees spec of the checks: 12 trees of at most 4 leaves."""


def _trees_only(engine: Backend) -> bool:
    """A backend that grows trees and builds no network (its optimisers are all
    :data:`~binomlab.backends.protocol.TREE_OPTIMIZERS`)."""
    return all(o in TREE_OPTIMIZERS for o in engine.optimizers)


def _mini_batch(engine: Backend) -> dict[str, Any]:
    """Options of a short epoch-by-epoch run: mini-batches (or L-BFGS, for a backend that
    has only it; blocks of boosting rounds for a backend that only grows trees)."""
    _, val = _split()
    if _trees_only(engine):
        optimizer = engine.optimizers[0]
        return {"model": _TREES, "val": val, "seed": 1, "optimizer": optimizer, "epochs": 3}
    spec = "mlp:8" if "mlp" in engine.specs else "logistic"
    opts: dict[str, Any] = {"model": spec, "val": val, "seed": 1}
    stochastic = [
        o for o in engine.optimizers if o not in DETERMINISTIC and o not in TREE_OPTIMIZERS
    ]
    if stochastic:
        opts |= {"optimizer": stochastic[0], "batch_size": 16, "epochs": 3}
    return opts


def check_identity(engine: Backend) -> None:
    """Full-batch training on the groups and on their raw rows is the same fit (boosted
    trees: the same trees, for a backend that only grows them)."""
    train, val = _split()
    full: dict[str, Any] = {"seed": 3, "model": "logistic"}
    if _trees_only(engine):
        full |= {"model": _TREES, "optimizer": engine.optimizers[0], "epochs": 2}
    elif not set(DETERMINISTIC) & set(engine.optimizers):
        full |= {"optimizer": engine.optimizers[0], "batch_size": 10**9, "epochs": 30, "lr": 0.05}
    grouped_fit = fit(train, backend=engine, **full)
    rows_fit = fit(_rows_as_groups(train), backend=engine, **full)
    gap = np.max(np.abs(grouped_fit.predict_proba(val) - rows_fit.predict_proba(val)))
    _check(gap < 1e-4, "identity (groups vs raw rows)", f"max |Δp| = {gap:.2e}")


def check_lbfgs_optimum(engine: Backend) -> None:
    """L-BFGS on the logistic spec reaches the reference GLM's maximum-likelihood estimate,
    with validation data too (recorded, never used to pick an iterate), and converges."""
    train, val = _split()
    glm = fit(train, model="logistic", backend="reference")
    for kwargs in ({}, {"val": val}):
        ours = fit(train, model="logistic", backend=engine, optimizer="lbfgs", **kwargs)
        gap = np.max(np.abs(ours.predict_proba(val) - glm.predict_proba(val)))
        _check(gap <= 1e-6, f"L-BFGS optimum {list(kwargs)}", f"max |Δp| = {gap:.2e}")
        _check(ours.stop_reason == "converged", "L-BFGS optimum", f"{ours.stop_reason!r}")
        last = ours.history.tail(1)
        now = evaluate(train, ours)["nll"]
        _check(
            abs(last["train_nll"][0] - now) <= 1e-9 * now,
            "L-BFGS optimum",
            f"history's last train_nll {last['train_nll'][0]} but the model has {now}",
        )
        if "val" in kwargs:
            _check(last["val_nll"].null_count() == 0, "L-BFGS optimum", "val_nll not recorded")


def _check_iteration_cap(engine: Backend, optimizer: str, cap: int, name: str) -> None:
    """``optimizer`` stopped by an iteration cap of ``cap`` says so: ``max_iter``, ``cap``
    rows of history and a ConvergenceWarning."""
    train, _ = _split()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        capped = fit(train, model="logistic", backend=engine, optimizer=optimizer, epochs=cap)
    _check(capped.stop_reason == "max_iter", name, f"stop_reason {capped.stop_reason!r}")
    _check(capped.history.height == cap, name, f"{capped.history.height} iterations")
    kinds = [w.category for w in caught]
    _check(ConvergenceWarning in kinds, name, f"warnings {kinds}")


def check_lbfgs_iteration_cap(engine: Backend) -> None:
    """L-BFGS stopped by its iteration cap says so: ``max_iter`` and a ConvergenceWarning."""
    _check_iteration_cap(engine, "lbfgs", 2, "L-BFGS cap")


def check_newton_optimum(engine: Backend) -> None:
    """Newton on the logistic spec reaches the maximum-likelihood estimate (that of the
    reference backend's L-BFGS), with its standard errors, in a few iterations, and says it
    converged."""
    train, val = _split()
    glm = fit(train, model="logistic", backend="reference", optimizer="lbfgs", tolerance=1e-10)
    ours = fit(train, model="logistic", backend=engine, optimizer="newton", val=val)
    gap = np.max(np.abs(ours.predict_proba(val) - glm.predict_proba(val)))
    _check(gap <= 1e-6, "Newton optimum", f"max |Δp| = {gap:.2e}")
    _check(ours.stop_reason == "converged", "Newton optimum", f"{ours.stop_reason!r}")
    _check(ours.epochs_ <= 15, "Newton optimum", f"{ours.epochs_} iterations")
    _check(ours.history["val_nll"].null_count() == 0, "Newton optimum", "val_nll not recorded")
    ours_se = ours.summary()["std_error"].to_numpy()
    glm_se = glm.summary()["std_error"].to_numpy()
    worst = float(np.max(np.abs(ours_se / glm_se - 1.0)))
    _check(worst <= 1e-4, "Newton standard errors", f"max relative gap {worst:.2e}")


def check_newton_iteration_cap(engine: Backend) -> None:
    """Newton stopped by its iteration cap says so: ``max_iter`` and a ConvergenceWarning."""
    _check_iteration_cap(engine, "newton", 1, "Newton cap")


def check_determinism(engine: Backend) -> None:
    """Same data, spec, config and seed give identical predictions."""
    train, val = _split()
    opts = _mini_batch(engine)
    a = fit(train, backend=engine, **opts).predict_proba(val)
    b = fit(train, backend=engine, **opts).predict_proba(val)
    _check(np.array_equal(a, b), "determinism", f"max |Δp| = {np.max(np.abs(a - b)):.2e}")


def check_divergence(engine: Backend) -> None:
    """A learning rate that blows the loss up raises TrainingDivergedError naming the epoch
    (for optimisers that take a learning rate: :data:`~binomlab.backends.protocol.DEFAULT_LR`)."""
    train, _ = _split()
    opts = _mini_batch(engine)
    if opts.get("optimizer") not in DEFAULT_LR:
        return  # L-BFGS's line search takes no learning rate, nor boosting (the spec's)
    opts |= {"lr": 1e6, "val": None}
    try:
        fit(train, backend=engine, **opts)
    except TrainingDivergedError as err:
        _check("epoch" in str(err), "divergence", f"the message names no epoch: {err}")
    else:
        _check(False, "divergence", "lr=1e6 trained without TrainingDivergedError")


def check_best_epoch_without_val(engine: Backend) -> None:
    """Without validation data the kept weights are those of the epoch of least training NLL,
    and that is the number the history reports."""
    train, _ = _split()
    opts = _mini_batch(engine) | {"val": None}
    if "epochs" in opts:
        opts["epochs"] = 4
    fitted = fit(train, backend=engine, **opts)
    best, now = float(fitted.history["train_nll"].min()), evaluate(train, fitted)["nll"]
    _check(abs(now - best) <= 1e-5 * best, "best epoch", f"train nll {now}, best epoch {best}")


def check_callback_stop(engine: Backend) -> None:
    """A callback returning False stops training after that epoch, keeping the best weights."""
    train, val = _split()

    def stop_at_2(epoch: int, metrics: Mapping[str, float]) -> bool:
        return epoch < 2

    stopped = fit(train, backend=engine, callbacks=[stop_at_2], **_mini_batch(engine))
    _check(stopped.history.height == 2, "callback stop", f"{stopped.history.height} epochs run")
    _check(stopped.stop_reason == "callback", "callback stop", f"reason {stopped.stop_reason!r}")
    _best_weights(stopped, val, "callback stop")


def check_batch_progress(engine: Backend) -> None:
    """``batch_callbacks`` follow the optimizer steps of adam/adamw: ``(epoch, batch,
    batches)`` with ``batches = ⌈groups / batch_size⌉``, batch rising to it in every epoch (a
    backend may report every few steps, e.g. Keras's ``steps_per_execution``); for boosted
    trees the rounds of each epoch's block, all the spec's trees over the epochs. False stops
    training mid-epoch, keeping the best finished epoch's weights."""
    train, val = _split()
    opts = _mini_batch(engine)
    if _trees_only(engine):
        _check_round_progress(engine, opts)
        return
    if "batch_size" not in opts:  # full-batch optimisers only: nothing to report
        calls: list[tuple[int, int, int]] = []
        fit(train, backend=engine, batch_callbacks=lambda *c: calls.append(c), **opts)
        _check(not calls, "batch progress", f"{len(calls)} calls for a full-batch optimiser")
        return
    opts["batch_size"] = max(1, len(train) // 5)
    steps = -(-len(train) // opts["batch_size"])
    calls = []
    fit(train, backend=engine, batch_callbacks=lambda *c: calls.append(c), **opts)
    for epoch in range(1, opts["epochs"] + 1):
        seen = [(batch, batches) for e, batch, batches in calls if e == epoch]
        _check(bool(seen), "batch progress", f"no call in epoch {epoch}: {calls}")
        batch_numbers = [batch for batch, _ in seen]
        rising = batch_numbers == sorted(set(batch_numbers))
        _check(rising, "batch progress", f"epoch {epoch}: batches {batch_numbers}")
        _check(seen[-1] == (steps, steps), "batch progress", f"epoch {epoch} ends at {seen[-1]}")

    def stop_in_epoch_2(epoch: int, batch: int, batches: int) -> bool:
        return epoch < 2

    stopped = fit(train, backend=engine, batch_callbacks=[stop_in_epoch_2], **opts)
    name = "batch progress stop"
    _check(stopped.history.height == 1, name, f"{stopped.history.height} epochs recorded")
    _check(stopped.stop_reason == "callback", name, f"reason {stopped.stop_reason!r}")
    _best_weights(stopped, val, name)


def _check_round_progress(engine: Backend, opts: dict[str, Any]) -> None:
    """:func:`check_batch_progress` for boosted trees: a call per round, ``batch`` rising to
    ``batches`` in every epoch, as many rounds as the spec's trees."""
    train, val = _split()
    calls: list[tuple[int, int, int]] = []
    fitted = fit(train, backend=engine, batch_callbacks=lambda *c: calls.append(c), **opts)
    rounds = 0
    for epoch in range(1, fitted.epochs_ + 1):
        seen = [(batch, batches) for e, batch, batches in calls if e == epoch]
        _check(bool(seen), "batch progress", f"no call in epoch {epoch}: {calls}")
        numbers = [batch for batch, _ in seen]
        rising = numbers == list(range(1, len(seen) + 1))
        _check(rising, "batch progress", f"epoch {epoch}: rounds {numbers}")
        _check(seen[-1][0] == seen[-1][1], "batch progress", f"epoch {epoch} ends at {seen[-1]}")
        rounds += len(seen)
    trees = parse_spec(opts["model"]).trees
    _check(rounds == trees, "batch progress", f"{rounds} rounds reported for {trees} trees")

    def stop_in_epoch_2(epoch: int, batch: int, batches: int) -> bool:
        return epoch < 2

    stopped = fit(train, backend=engine, batch_callbacks=[stop_in_epoch_2], **opts)
    name = "batch progress stop"
    _check(stopped.history.height == 1, name, f"{stopped.history.height} epochs recorded")
    _check(stopped.stop_reason == "callback", name, f"reason {stopped.stop_reason!r}")
    _best_weights(stopped, val, name)


def check_interrupt(engine: Backend) -> None:
    """Ctrl-C during training returns the best weights instead of raising."""
    train, val = _split()

    def interrupt_at_3(epoch: int, metrics: Mapping[str, float]) -> None:
        if epoch == 3:
            raise KeyboardInterrupt

    opts = _mini_batch(engine)
    if "epochs" in opts:
        opts["epochs"] = 5
    interrupted = fit(train, backend=engine, callbacks=[interrupt_at_3], **opts)
    reason = interrupted.stop_reason
    _check(reason == "interrupted", "KeyboardInterrupt", f"stop_reason {reason!r}")
    _best_weights(interrupted, val, "KeyboardInterrupt")


def check_callback_exception(engine: Backend) -> None:
    """Any other exception from a callback reaches the caller unchanged."""
    train, _ = _split()

    class Boom(RuntimeError):
        pass

    def explode(epoch: int, metrics: Mapping[str, float]) -> None:
        raise Boom("from the callback")

    try:
        fit(train, backend=engine, callbacks=[explode], **_mini_batch(engine))
    except Boom:
        pass
    else:
        _check(False, "callback exception", "the exception did not propagate")


def check_export(engine: Backend) -> None:
    """ONNX served by onnxruntime equals the framework's own predictions; the manifest holds
    the resolved training config."""
    train, _ = _split()
    fitted = fit(train, backend=engine, **_mini_batch(engine))
    rows = synthetic_rows(50, seed=9).drop("y")
    with tempfile.TemporaryDirectory() as tmp:
        path = fitted.export(Path(tmp) / "model")
        served = load(path)
        diff = np.max(np.abs(served.predict_proba(rows) - fitted.predict_proba(rows)))
        _check(diff < 1e-5, "ONNX export", f"max |Δp| = {diff:.2e}")
        for name in served.manifest["files"].get("native", []):
            _check((path / name).is_file(), "native export", f"{name} missing")
        config = served.manifest["training"]["config"]
        _check(config == fitted.config.to_dict(), "manifest config", f"{config}")
        _check(config["epochs"] is not None, "manifest config", "epochs not resolved")


def check_phi_output(engine: Backend) -> None:
    """``phi="network"``: a φ per group that follows the data, and the ONNX model's second
    output equal to it (for backends that list it)."""
    if "beta-binomial" not in engine.losses or "network" not in engine.phi_models:
        return
    g = overdispersed_groups(600, seed=1)
    opts: dict = {"optimizer": "lbfgs"} if "lbfgs" in engine.optimizers else {}
    if not opts:
        opts = {"epochs": 100, "lr": 0.05, "batch_size": 10**9}
    fitted = fit(g, backend=engine, loss="beta-binomial", phi="network", **opts)
    phi = fitted.predict_phi(g)
    _check(fitted.phi_ is None, "φ output", f"phi_ = {fitted.phi_!r}, expected None")
    _check(phi.shape == (len(g),), "φ output", f"predict_phi shape {phi.shape}")
    s = g.frame["s"].to_numpy()
    low, high = np.median(phi[s == 0]), np.median(phi[s == 1])
    # the true φ is 7.4 at s = 0 and 33 at s = 1
    _check(low < high / 2, "φ output", f"median φ {low:.3g} at s = 0, {high:.3g} at s = 1")
    rows = g.frame.select(g.features)
    with tempfile.TemporaryDirectory() as tmp:
        served = load(fitted.export(Path(tmp) / "model"))
        gap = np.max(np.abs(served.predict_phi(rows) / fitted.predict_phi(rows) - 1))
        _check(gap < 1e-5, "φ output, ONNX export", f"max relative |Δφ| = {gap:.2e}")


def check_errors(engine: Backend) -> None:
    """Bad options are refused with errors naming the value; so is a spec kind the backend
    does not build, naming it."""
    train, _ = _split()
    model = _mini_batch(engine)["model"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"optimizer": "sgd-with-vibes"}, "optimizer='sgd-with-vibes'"),
        ({"no_such_option": 1}, "no_such_option"),
        ({"epochs": 0}, "epochs=0"),
    ]
    if "lbfgs" in engine.optimizers:
        cases.append(({"optimizer": "lbfgs", "early_stopping": 3}, "early_stopping=3"))
    if TREE_OPTIMIZERS[0] in engine.optimizers:
        cases.append(({"lr": 0.5}, "lr=0.5"))
    other = next((k for k in ("gbdt", "mlp", "logistic") if k not in engine.specs), None)
    if other is not None:
        cases.append(({"model": other}, f"builds the specs {engine.specs}"))
    for kwargs, fragment in cases:
        try:
            fit(train, backend=engine, **({"model": model} | kwargs))
        except BinomlabError as err:
            _check(fragment in str(err), "errors", f"{fragment!r} not in {str(err)!r}")
        else:
            _check(False, "errors", f"{kwargs} was accepted")


CHECKS: tuple[Callable[[Backend], None], ...] = (
    check_identity,
    check_lbfgs_optimum,
    check_lbfgs_iteration_cap,
    check_newton_optimum,
    check_newton_iteration_cap,
    check_determinism,
    check_divergence,
    check_best_epoch_without_val,
    check_callback_stop,
    check_batch_progress,
    check_interrupt,
    check_callback_exception,
    check_export,
    check_phi_output,
    check_errors,
)
"""Every conformance check, in the order :func:`check_backend` runs them."""


def backend_checks(
    backend: str | Backend | type[Backend],
) -> Iterator[tuple[str, Callable[[], None]]]:
    """``(name, check)`` for every check that applies to ``backend``; ``check()`` raises
    AssertionError naming what failed. Which apply follows from what the backend lists: the
    L-BFGS and Newton checks are left out for a backend without that optimiser, the
    divergence check for one whose optimisers take no learning rate (L-BFGS only, boosting),
    the φ-output check for one without ``phi="network"``."""
    engine = backends.get(backend)
    for check in CHECKS:
        if not _applies(check, engine):
            continue
        name = check.__name__.removeprefix("check_")
        yield name, (lambda check=check: check(engine))


def _applies(check: Callable[[Backend], None], engine: Backend) -> bool:
    """Whether ``check`` tests something ``engine`` declares it does."""
    optimizer = check.__name__.removeprefix("check_").partition("_")[0]
    if optimizer in DETERMINISTIC:
        return optimizer in engine.optimizers
    if check is check_divergence:
        return any(o in DEFAULT_LR for o in engine.optimizers)
    if check is check_phi_output:
        return "beta-binomial" in engine.losses and "network" in engine.phi_models
    return True


def parametrize_with_checks(names: Iterable[str]) -> Any:
    """A ``pytest.mark.parametrize`` of ``(backend, check)`` with one test id per check and
    backend (``lightning-identity``, ...), as scikit-learn's ``parametrize_with_checks``.

    >>> @parametrize_with_checks(["reference"])
    ... def test_conformance(backend, check):
    ...     check()
    """
    import pytest

    cases = [
        pytest.param(name, check, id=f"{name}-{check_name}")
        for name in names
        for check_name, check in backend_checks(name)
    ]
    return pytest.mark.parametrize(("backend", "check"), cases)


def check_backend(backend: str | Backend | type[Backend]) -> None:
    """Run every conformance check against ``backend``; raise AssertionError on the first
    failure. Takes about a minute or less for a CPU backend."""
    for _name, check in backend_checks(backend):
        check()


def _best_weights(fitted: Any, val: Grouped, name: str) -> None:
    """The model's validation NLL is the kept epoch's, and (mini-batch optimisers) the
    least of the history's; L-BFGS keeps its last accepted iterate."""
    kept, now = fitted.kept_epoch(), evaluate(val, fitted)["nll"]
    _check(kept is not None, name, "no epoch kept")
    _check(abs(now - kept["val_nll"]) <= 1e-5 * now, name, f"val nll {now}, kept epoch {kept}")
    if not fitted.config.deterministic:
        best = float(fitted.history["val_nll"].min())
        _check(kept["val_nll"] == best, name, f"kept {kept['val_nll']}, best epoch had {best}")
