"""``check_backend``: the conformance suite every backend plugin runs in its tests.

>>> from binomlab.testing import check_backend
>>> check_backend("reference")

It trains small models on synthetic grouped data and checks the promises of
:mod:`binomlab.protocol`: the identity (grouped data and its raw rows train the same model),
agreement with the reference GLM, determinism, stopping with the best weights kept (callback
and Ctrl-C), exceptions passing through, export round trips and argument errors. A failed
check raises ``AssertionError`` naming it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import polars as pl

from binomlab import backends
from binomlab.errors import BinomlabError
from binomlab.export import load
from binomlab.grouped import Grouped
from binomlab.grouping import from_counts, group
from binomlab.metrics import evaluate
from binomlab.protocol import Backend, TrainData
from binomlab.training import fit

__all__ = [
    "OVERDISPERSION_LOG_PHI",
    "Recorder",
    "check_backend",
    "counts_as_groups",
    "overdispersed_counts",
    "overdispersed_groups",
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


def check_backend(backend: str | Backend | type[Backend]) -> None:
    """Run the conformance checks against ``backend``; raise AssertionError on the first failure.

    Takes about a minute or less for a CPU backend.
    """
    engine = backends.get(backend)
    g = group(synthetic_rows(), ["colour", "size", "flag"], "y")
    train, val = g.split(0.25, seed=0)
    optimizer = "lbfgs" if "lbfgs" in engine.optimizers else engine.optimizers[0]
    spec = "mlp:8" if "mlp" in engine.specs else "logistic"

    # The identity: full-batch training on the groups and on their raw rows is the same fit.
    full = {"optimizer": optimizer, "batch_size": 10**9, "seed": 3}
    if optimizer != "lbfgs":
        full |= {"epochs": 30, "lr": 0.05}
    grouped_fit = fit(train, model="logistic", backend=engine, **full)
    rows_fit = fit(_rows_as_groups(train), model="logistic", backend=engine, **full)
    gap = np.max(np.abs(grouped_fit.predict_proba(val) - rows_fit.predict_proba(val)))
    _check(gap < 1e-4, "identity (groups vs raw rows)", f"max |Δp| = {gap:.2e}")

    # Agreement with the reference GLM (maximum likelihood) when the backend has L-BFGS.
    if optimizer == "lbfgs":
        glm = fit(train, model="logistic", backend="reference")
        ours, ref = evaluate(train, grouped_fit)["nll"], evaluate(train, glm)["nll"]
        _check(abs(ours - ref) <= 1e-5 * ref, "MLE vs reference", f"nll {ours} vs {ref}")

    # Determinism under the seed.
    opts = {"model": spec, "val": val, "epochs": 3, "seed": 1}
    if optimizer != "lbfgs":
        opts["optimizer"] = optimizer
    if spec != "logistic" or optimizer != "lbfgs":  # mini-batches (L-BFGS takes the full batch)
        opts["batch_size"] = 16
    a = fit(train, backend=engine, **opts).predict_proba(val)
    b = fit(train, backend=engine, **opts).predict_proba(val)
    _check(np.array_equal(a, b), "determinism", f"max |Δp| = {np.max(np.abs(a - b)):.2e}")

    # Stopping from the callback keeps the best weights seen.
    def stop_at_2(epoch: int, metrics: Mapping[str, float]) -> bool:
        return epoch < 2

    stopped = fit(train, backend=engine, callbacks=[stop_at_2], **opts)
    _check(stopped.history.height == 2, "callback stop", f"{stopped.history.height} epochs run")
    _check(stopped.stop_reason == "callback", "callback stop", f"reason {stopped.stop_reason!r}")
    _best_weights(stopped, val, "callback stop")

    # Ctrl-C during training returns the best weights instead of raising.
    def interrupt_at_3(epoch: int, metrics: Mapping[str, float]) -> None:
        if epoch == 3:
            raise KeyboardInterrupt

    interrupted = fit(train, backend=engine, callbacks=[interrupt_at_3], **opts)
    reason = interrupted.stop_reason
    _check(reason == "interrupted", "KeyboardInterrupt", f"stop_reason {reason!r}")
    _best_weights(interrupted, val, "KeyboardInterrupt")

    # Any other exception from a callback reaches the caller unchanged.
    class Boom(RuntimeError):
        pass

    def explode(epoch: int, metrics: Mapping[str, float]) -> None:
        raise Boom("from the callback")

    try:
        fit(train, backend=engine, callbacks=[explode], **opts)
    except Boom:
        pass
    else:
        _check(False, "callback exception", "the exception did not propagate")

    # Export: ONNX served by onnxruntime equals the framework's own predictions.
    rows = synthetic_rows(50, seed=9).drop("y")
    with tempfile.TemporaryDirectory() as tmp:
        path = stopped.export(Path(tmp) / "model")
        served = load(path)
        diff = np.max(np.abs(served.predict_proba(rows) - stopped.predict_proba(rows)))
        _check(diff < 1e-5, "ONNX export", f"max |Δp| = {diff:.2e}")
        for name in served.manifest["files"].get("native", []):
            _check((path / name).is_file(), "native export", f"{name} missing")

    if "beta-binomial" in engine.losses and "network" in engine.phi_models:
        _phi_output(engine, optimizer)

    # Errors name the bad value.
    for kwargs, fragment in (
        ({"optimizer": "sgd-with-vibes"}, "optimizer='sgd-with-vibes'"),
        ({"no_such_option": 1}, "no_such_option"),
        ({"epochs": 0}, "epochs=0"),
    ):
        try:
            fit(train, backend=engine, **kwargs)
        except BinomlabError as err:
            _check(fragment in str(err), "errors", f"{fragment!r} not in {str(err)!r}")
        else:
            _check(False, "errors", f"{kwargs} was accepted")


def _phi_output(engine: Backend, optimizer: str) -> None:
    """``phi="network"``: a φ per group that follows the data, and the ONNX model's second
    output equal to it."""
    g = overdispersed_groups(600, seed=1)
    opts: dict = {"optimizer": optimizer}
    if optimizer != "lbfgs":
        opts |= {"epochs": 100, "lr": 0.05, "batch_size": 10**9}
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


def _best_weights(fitted, val: Grouped, name: str) -> None:
    best = float(fitted.history["val_nll"].min())
    now = evaluate(val, fitted)["nll"]
    _check(abs(now - best) <= 1e-5 * best, name, f"val nll {now} but best epoch had {best}")
