"""``bl.recalibrate``: a fitted model with a recalibration map fitted on held-out groups.

The map turns the base model's prediction into a recalibrated one and is fitted on ``val``'s
groups by the grouped binomial likelihood, weighted by trials, so it equals the same fit on
the expanded 0/1 rows:

* ``"isotonic"``: the trial-weighted isotonic regression of the observed rate on the base
  probability (:func:`binomlab.isotonic.fit_isotonic`), interpolated linearly between its
  knots and clipped to its end values beyond them, as scikit-learn's
  ``IsotonicRegression(out_of_bounds="clip")`` fitted on the expanded rows;
* ``"platt"``: ``q = σ(a·z + b)`` on the base logit ``z``, the maximum-likelihood ``(a, b)``
  (a logistic regression of the outcome on ``z`` with an intercept);
* ``"temperature"``: ``q = σ(z / T)``, the maximum-likelihood ``T > 0`` (a logistic regression
  on ``z`` without intercept, ``T`` the inverse of its slope).

The result, :class:`Recalibrated`, predicts like a ``Fitted`` and exports to a model folder
whose ONNX graph computes the recalibrated logit, so :func:`binomlab.load` serves it.
"""

from __future__ import annotations

import copy
import tempfile
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from binomlab.backends.lbfgs import caller_level
from binomlab.errors import (
    BinomlabError,
    ConvergenceWarning,
    EmptyDataError,
    InvalidProbabilityError,
)
from binomlab.export import FORMATS, Predictor, export_model
from binomlab.grouped import Grouped, GroupedSource, require_grouped
from binomlab.isotonic import fit_isotonic
from binomlab.nll import sigmoid
from binomlab.training import Fitted

__all__ = ["METHODS", "Recalibrated", "recalibrate"]

METHODS = ("isotonic", "platt", "temperature")
"""The recalibration maps :func:`recalibrate` fits."""

MAX_ITER = 100
"""Newton iterations of the platt and temperature fits before a ConvergenceWarning."""
DECREMENT_TOLERANCE = 1e-12
"""Convergence of the platt and temperature fits: the Newton decrement ``gᵀH⁻¹g`` (about twice
the NLL above the optimum, in nats over all trials) within this fraction of ``1 + NLL``; the
last full Newton step is then taken."""
_ARMIJO = 1e-4
_MIN_STEP = 2.0**-40


def recalibrate(
    fitted: Fitted | Predictor, val: GroupedSource, *, method: str = "isotonic"
) -> Recalibrated:
    """Fit a recalibration map of ``fitted``'s predictions on the held-out groups ``val``.

    Parameters
    ----------
    fitted : Fitted or Predictor
        The base model: a :class:`~binomlab.Fitted` (from :func:`binomlab.fit`; only this one
        can be exported again) or a :class:`~binomlab.Predictor` (from :func:`binomlab.load`),
        with the binomial loss. It is not changed.
    val : Grouped or path
        The groups the map is fitted on (held-out trials, not the base model's training
        data): a :class:`~binomlab.Grouped` or the path of a grouped parquet file. Their
        predictions are read once; every group counts with its ``n`` trials, so the fit
        equals the same fit on ``val.expand()``.
    method : {"isotonic", "platt", "temperature"}
        The map; see the module's description.

    Returns
    -------
    Recalibrated

    Raises
    ------
    BinomlabError
        ``fitted`` is not a Fitted or a Predictor, or is already recalibrated; ``method`` is
        not one of :data:`METHODS`; the model has the beta-binomial loss; for ``"platt"`` and
        ``"temperature"``: the maximum-likelihood map does not exist on ``val`` (no
        successes or no failures, base logits all equal (platt) or all 0 (temperature), the
        outcomes separated by the base logit, or, for temperature, logits not positively
        related to the outcomes, which would need ``T <= 0``); the message names the fix.
    NotGroupedError
        ``val`` is not grouped data (raw rows: the message says how to group them); also a
        ``TypeError``.
    EmptyDataError
        ``val`` has no groups.
    ColumnNotFoundError, UnseenValueError, BinsMismatchError
        ``val`` does not have the model's features, as ``fitted.predict_proba`` raises them.

    Warns
    -----
    ConvergenceWarning
        The platt or temperature Newton fit stopped before its tolerance
        (:attr:`Recalibrated.stop_reason` says why).
    UserWarning
        ``val`` is the base model's training data (its fingerprint), or the platt map's
        slope is negative (it reverses the model's ranking).
    """
    _check_base(fitted)
    if not isinstance(method, str) or method not in METHODS:
        msg = f"Expected method to be one of {METHODS}. Received: method={method!r}"
        raise BinomlabError(msg)
    if fitted.loss != "binomial":
        msg = (
            f"recalibrate needs a model with the binomial loss; this one has "
            f"loss={fitted.loss!r}, whose φ describes the spread of the counts around the "
            "mean it predicts, and a recalibrated mean would no longer match it. Recalibrate a "
            "model fitted with loss='binomial'."
        )
        raise BinomlabError(msg)
    val = require_grouped(val, name="val")
    if len(val) == 0:
        msg = "val has no groups: recalibrate needs held-out groups to fit the map on."
        raise EmptyDataError(msg)
    in_sample = getattr(fitted, "in_sample_", None)
    if in_sample is not None and in_sample.fingerprint == val.fingerprint:
        warnings.warn(
            "val is the base model's training data (the same groups): a map fitted there "
            "learns the model's in-sample fit, not its calibration on new data. Recalibrate "
            "on held-out trials, e.g. train, val = data.split(0.2) before bl.fit.",
            UserWarning,
            stacklevel=caller_level(),
        )
    start = time.perf_counter()
    base_graph = _BaseGraph.of(fitted)
    z = base_graph.logits(val)
    if not np.all(np.isfinite(z)):
        bad = int(np.flatnonzero(~np.isfinite(z))[0])
        msg = (
            f"{type(fitted).__name__}.predict_logits(val) gave a non-finite logit "
            f"({z[bad]!r} at group {bad}): the base model cannot be recalibrated."
        )
        raise InvalidProbabilityError(msg)
    n = val.frame["n"].to_numpy().astype(np.float64)
    k = val.frame["k"].to_numpy().astype(np.float64)
    if method == "isotonic":
        fit = fit_isotonic(sigmoid(z), n.astype(np.int64), k.astype(np.int64))
        x, y = _knots(fit.x, fit.y)
        parameters: dict[str, Any] = {"x": x, "y": y}
        n_map, stop_reason = int(np.unique(fit.y).size), "exact"
    else:
        theta, stop_reason = _fit_scaling(z, n, k, intercept=method == "platt")
        if method == "platt":
            parameters = {"a": float(theta[0]), "b": float(theta[1])}
            if theta[0] < 0:
                warnings.warn(
                    f"The platt map's slope is negative (a = {theta[0]:.4g}): on val, higher "
                    "base logits go with fewer successes, so the map reverses the model's "
                    "ranking. The base model does not rank these groups usefully; check that "
                    "val is data of the same kind.",
                    UserWarning,
                    stacklevel=caller_level(),
                )
        else:
            parameters = {"temperature": float(1.0 / theta[0])}
        n_map = len(parameters)
    return Recalibrated(
        fitted,
        method,
        parameters,
        base_graph=base_graph,
        fitted_on=val.fingerprint,
        groups=len(val),
        trials=val.trials,
        n_map=n_map,
        stop_reason=stop_reason,
        seconds=time.perf_counter() - start,
    )


def _check_base(fitted: Any) -> None:
    if isinstance(fitted, Recalibrated) or (
        isinstance(fitted, Predictor) and fitted.recalibration is not None
    ):
        msg = (
            "fitted is already recalibrated; recalibrate its base model instead (a map on top "
            "of a map has parameters that no longer describe the base model's logits)."
        )
        raise BinomlabError(msg)
    if not isinstance(fitted, Fitted | Predictor):
        msg = (
            "Expected fitted to be a model from bl.fit (a bl.Fitted) or bl.load (a "
            f"bl.Predictor). Received: {type(fitted).__name__}"
        )
        raise BinomlabError(msg)


def _knots(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The knots the interpolation needs: the ends, and every point where ``y`` changes on one
    side of it (scikit-learn's rule); the others lie inside constant stretches."""
    keep = np.ones(x.size, dtype=bool)
    if x.size > 2:
        keep[1:-1] = (y[1:-1] != y[:-2]) | (y[1:-1] != y[2:])
    return x[keep].copy(), y[keep].copy()


def _fit_scaling(
    z: np.ndarray, n: np.ndarray, k: np.ndarray, *, intercept: bool
) -> tuple[np.ndarray, str]:
    """The maximum-likelihood ``(a, b)`` (``intercept``) or ``(1 / T,)`` of the grouped
    binomial likelihood of ``k`` out of ``n`` at ``σ(a·z + b)``, by Newton with an Armijo line
    search in float64, from the identity map. Refuses the cases where the MLE does not exist."""
    _check_scaling_exists(z, n, k, intercept=intercept)
    X = np.column_stack([z, np.ones_like(z)]) if intercept else z[:, None]
    theta = np.array([1.0, 0.0] if intercept else [1.0])

    def objective(t: np.ndarray) -> float:
        eta = X @ t
        return float(np.sum(n * np.logaddexp(0.0, eta) - k * eta))

    f = objective(theta)
    for _ in range(MAX_ITER):
        mu = sigmoid(X @ theta)
        gradient = X.T @ (n * mu - k)
        hessian = (X * (n * mu * (1.0 - mu))[:, None]).T @ X
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            return theta, _warn_stop("stalled", intercept)
        decrement = float(gradient @ step)  # ≈ 2 (f − f*), computed without cancellation
        if decrement <= DECREMENT_TOLERANCE * (1.0 + abs(f)):
            # within rounding of the optimum: the full Newton step (quadratic convergence)
            return theta - step, "converged"
        alpha = 1.0
        while alpha >= _MIN_STEP:
            candidate = theta - alpha * step
            f_new = objective(candidate)
            if f_new <= f - _ARMIJO * alpha * decrement:
                break
            alpha /= 2.0
        else:
            return theta, _warn_stop("stalled", intercept)
        theta, f = candidate, f_new
    return theta, _warn_stop("max_iter", intercept)


def _warn_stop(reason: str, intercept: bool) -> str:
    method = "platt" if intercept else "temperature"
    warnings.warn(
        f"The {method} recalibration's Newton fit stopped ({reason}) before its tolerance: "
        "its parameters are not the maximum-likelihood estimate.",
        ConvergenceWarning,
        stacklevel=caller_level(),
    )
    return reason


def _check_scaling_exists(z: np.ndarray, n: np.ndarray, k: np.ndarray, *, intercept: bool) -> None:
    """The MLE of the platt (``intercept``) or temperature map exists on these groups."""
    method = "platt" if intercept else "temperature"
    fix = "Use method='isotonic', or recalibrate on more held-out groups."
    if not np.any(k > 0) or not np.any(k < n):
        which = "successes" if not np.any(k > 0) else "failures"
        msg = f"val has no {which}: the {method} map's maximum-likelihood fit does not exist. "
        raise BinomlabError(msg + fix)
    success, failure = k > 0, k < n
    if intercept:
        if np.ptp(z) == 0.0:
            msg = (
                f"The base model predicts one logit ({z[0]!r}) for every group of val: the "
                "platt map's a and b are not identified. "
            )
            raise BinomlabError(msg + fix)
        # (quasi-)complete separation of the rows by a threshold on z: a grows without bound
        separated = z[failure].max() <= z[success].min() or z[success].max() <= z[failure].min()
    else:
        if not np.any(z != 0.0):
            msg = "The base model's logits are all 0 on val: the temperature is not identified. "
            raise BinomlabError(msg + fix)
        # the slope of the NLL in 1/T: at 0 it must be negative (else T <= 0 is the optimum)
        # and as 1/T grows it tends to a limit that must be positive (else T -> 0)
        at_zero = float(np.sum((0.5 * n - k) * z))
        at_infinity = float(np.sum(np.where(z > 0, (n - k) * z, np.where(z < 0, -k * z, 0.0))))
        if at_zero >= 0.0:
            msg = (
                "The base logits are not positively related to the outcomes on val (the "
                "likelihood is largest at 1/T <= 0): no temperature T > 0 recalibrates them. "
            )
            raise BinomlabError(msg + fix)
        separated = at_infinity <= 0.0
    if separated:
        msg = (
            f"The base logit separates val's successes from its failures: the {method} map's "
            "maximum-likelihood fit does not exist (its slope grows without bound). "
        )
        raise BinomlabError(msg + fix)


class _BaseGraph:
    """The base model's logits as its ONNX graph computes them (onnxruntime, float32).

    A recalibrated model predicts from these, fits its map on them and exports this very
    graph with the map appended, so the model in memory and the loaded one compute the same
    numbers: an isotonic map can be steep (a jump between two close predictions), and the
    framework's float32 logits differ from onnxruntime's by about 1e-7, which a slope of 1e4
    would turn into 1e-3. A loaded Predictor is served by onnxruntime already.
    """

    def __init__(self, model: Fitted | Predictor, graph: bytes | None, session: Any) -> None:
        self.model = model
        self.graph = graph
        self._session = session

    @classmethod
    def of(cls, model: Fitted | Predictor) -> _BaseGraph:
        if not isinstance(model, Fitted):
            return cls(model, None, None)
        import onnxruntime as ort

        with tempfile.TemporaryDirectory(prefix="binomlab-recalibrate-") as folder:
            path = Path(folder) / "base.onnx"
            model.network.export_onnx(path)
            graph = path.read_bytes()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        return cls(model, graph, session)

    def logits(self, data: Any) -> np.ndarray:
        """The base logits of ``data`` (what ``predict_proba`` takes), float64 ``[rows]``."""
        if self._session is None:
            return np.asarray(self.model.predict_logits(data), dtype=np.float64).reshape(-1)
        X = self.model.encoder.transform(data)
        name = self._session.get_inputs()[0].name
        logits = self._session.run(None, {name: X})[0]
        return np.asarray(logits, dtype=np.float64).reshape(len(X))


class Recalibrated:
    """A base model followed by a recalibration map fitted on held-out groups.

    Made by :func:`recalibrate`. It predicts from the same inputs as the base model — the
    base logits from the base network's ONNX graph (onnxruntime), the graph its export
    serves, so a loaded copy gives the same probabilities to rounding — and
    :func:`binomlab.compare` and :func:`binomlab.evaluate` describe it as they do a
    ``Fitted``. It is not a GLM result: it has no ``summary()`` and no ``in_sample_``, so
    :func:`binomlab.evaluate` counts the degrees of freedom by its held-out rule (``groups``)
    on every data set, the base model's training data and ``val`` included (on ``val``, where
    the map was fitted, the goodness-of-fit statistics are therefore optimistic).

    Attributes
    ----------
    base : Fitted or Predictor
        The wrapped model.
    method : str
        ``"isotonic"``, ``"platt"`` or ``"temperature"``.
    stop_reason : str
        ``"exact"`` (isotonic), ``"converged"``, or ``"max_iter"`` / ``"stalled"`` (with a
        ConvergenceWarning at fit time).
    fitted_on_ : str
        The :attr:`~binomlab.Grouped.fingerprint` of the groups the map was fitted on.
    groups_, trials_ : int
        Their number of groups and of trials.
    """

    def __init__(
        self,
        base: Fitted | Predictor,
        method: str,
        parameters: dict[str, Any],
        *,
        base_graph: _BaseGraph,
        fitted_on: str,
        groups: int,
        trials: int,
        n_map: int,
        stop_reason: str,
        seconds: float,
    ) -> None:
        self.base = base
        self._base_graph = base_graph
        self.method = method
        self._parameters = parameters
        self.fitted_on_ = fitted_on
        self.groups_ = int(groups)
        self.trials_ = int(trials)
        self.stop_reason = stop_reason
        self._n_map = int(n_map)
        self._seconds = float(seconds)

    @property
    def parameters(self) -> dict[str, Any]:
        """The map's parameters (a copy): ``{"a", "b"}`` (platt), ``{"temperature"}``
        (floats), or ``{"x", "y"}`` (isotonic: float64 ``[knots]`` arrays, the base
        probabilities, increasing, and the recalibrated ones, non-decreasing, in [0, 1])."""
        return {
            k: v.copy() if isinstance(v, np.ndarray) else v for k, v in self._parameters.items()
        }

    @property
    def recalibration(self) -> dict[str, Any]:
        """The record kept in the exported manifest (JSON types): ``method``, ``parameters``,
        ``fitted_on`` (val's fingerprint), ``groups``, ``trials``, ``stop_reason``; a loaded
        model gives it back as :attr:`binomlab.Predictor.recalibration`."""
        parameters = {
            k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in self._parameters.items()
        }
        return {
            "method": self.method,
            "parameters": parameters,
            "fitted_on": self.fitted_on_,
            "groups": self.groups_,
            "trials": self.trials_,
            "stop_reason": self.stop_reason,
        }

    # --- what describes the model (bl.compare) -------------------------------------------

    @property
    def backend(self) -> str:
        """The backend that trained the base model."""
        return self.base.backend

    @property
    def spec(self) -> Any:
        """The base model's spec."""
        return self.base.spec

    @property
    def encoder(self) -> Any:
        """The base model's encoder."""
        return self.base.encoder

    @property
    def features(self) -> tuple[str, ...]:
        """The feature columns :meth:`predict_proba` needs."""
        return self.base.features

    @property
    def bins(self) -> dict[str, tuple[float, ...]]:
        """The base model's bin edges (group new rows with ``bins=model.bins``)."""
        return self.base.bins

    @property
    def loss(self) -> str:
        """``"binomial"`` (a beta-binomial model is not recalibrated)."""
        return "binomial"

    @property
    def n_params_(self) -> int:
        """The base model's parameters plus the map's: 2 (platt), 1 (temperature), or the
        number of distinct recalibrated values, the isotonic fit's blocks."""
        return int(self.base.n_params_) + self._n_map

    @property
    def seconds_(self) -> float | None:
        """The base model's training time plus the map's fit, in seconds (None when the base
        does not say, as a loaded Predictor does not)."""
        base = getattr(self.base, "seconds_", None)
        return None if base is None else float(base) + self._seconds

    @property
    def epochs_(self) -> int | None:
        """The base model's epochs (the map's fit has none)."""
        return getattr(self.base, "epochs_", None)

    # --- predictions ---------------------------------------------------------------------

    def _map(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Recalibrated ``(logits, probabilities)`` from base logits, float64."""
        p = self._parameters
        if self.method == "isotonic":
            q = np.interp(np.clip(sigmoid(z), p["x"][0], p["x"][-1]), p["x"], p["y"])
            with np.errstate(divide="ignore"):
                return np.log(q) - np.log1p(-q), q
        logits = p["a"] * z + p["b"] if self.method == "platt" else z / p["temperature"]
        return logits, sigmoid(logits)

    def predict_logits(self, data: Grouped | pl.DataFrame | Any) -> np.ndarray:
        """Recalibrated logits, float64 ``[rows]``; ``-inf`` / ``+inf`` where an isotonic map's
        probability is exactly 0 / 1 (a block of val with no successes / no failures).

        ``data`` is what :meth:`predict_proba` takes; raises as it does.
        """
        return self._map(self._base_logits(data))[0]

    def predict_proba(self, data: Grouped | pl.DataFrame | Any) -> np.ndarray:
        """Recalibrated success probabilities, float64 ``[rows]``, one per group or row.

        An isotonic map gives exactly 0 or 1 beyond (and inside) a block of val whose trials
        all failed or all succeeded, as scikit-learn's ``IsotonicRegression`` does; such a
        prediction makes the log-likelihood of a contrary outcome ``-inf``.

        Parameters
        ----------
        data
            What the base model's ``predict_proba`` takes: a Grouped, or raw rows with the
            feature columns (a Polars, pandas or Arrow table, a path of files, ...). It is
            never changed.

        Raises
        ------
        ColumnNotFoundError, UnsupportedDataError, UnseenValueError, BinsMismatchError
            As :meth:`binomlab.Fitted.predict_proba`.
        """
        return self._map(self._base_logits(data))[1]

    def _base_logits(self, data: Any) -> np.ndarray:
        return self._base_graph.logits(data)

    def predict_interval(
        self, data: Grouped | pl.DataFrame | Any, n: Any, *, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray]:
        """Binomial predictive interval (int64 lower and upper ``[rows]``) for the successes
        out of ``n`` trials, at the recalibrated probability; see
        :func:`binomlab.betabinomial.predictive_interval`."""
        from binomlab.betabinomial import predictive_interval

        return predictive_interval(self.predict_proba(data), n, phi=None, level=level)

    # --- export --------------------------------------------------------------------------

    def export(
        self,
        path: str | Path,
        *,
        formats: str | Iterable[str] = FORMATS,
        overwrite: bool = False,
    ) -> Path:
        """Write the model to the folder ``path`` (see :func:`binomlab.export.export_model`).

        ``model.onnx`` is the base network followed by the map, computed in float64: its first
        output is the recalibrated logit (float64, the base output's shape), so
        :func:`binomlab.load` serves the recalibrated probabilities. The manifest records the
        map under ``"recalibration"`` (:attr:`recalibration`); the ``"native"`` files are the
        base network's own, without the map. The base model's GLM coefficients are not
        carried: the loaded model refuses ``summary()``.

        Raises
        ------
        BinomlabError
            The base model is a loaded Predictor (export the ``Fitted`` it came from), and as
            :func:`binomlab.export.export_model`.
        """
        if not isinstance(self.base, Fitted):
            msg = (
                "Only a model recalibrated from a bl.Fitted can be exported; this one wraps a "
                "loaded Predictor. Recalibrate the Fitted it was exported from, then export."
            )
            raise BinomlabError(msg)
        return export_model(self, path, formats=formats, overwrite=overwrite)

    def append_to_onnx(self, path: Path) -> None:
        """Write the base network's ONNX graph this model predicts with to ``path`` and append
        the map to it: its first output becomes the recalibrated logit, float64 of the base
        output's shape; other outputs are kept. Called by
        :func:`binomlab.export.export_model`.

        The isotonic map is written with elementwise and broadcast operations, ``y_0 +
        Σ_j s_j · min(max(p − x_j, 0), x_{j+1} − x_j)`` over the rising segments ``j``; it
        costs float64 ``[batch, segments]`` of memory.
        """
        if self._base_graph.graph is not None:  # the graph the map was fitted on
            Path(path).write_bytes(self._base_graph.graph)
        _append_map(Path(path), self.method, self._parameters)

    def __repr__(self) -> str:
        p = self._parameters
        if self.method == "platt":
            shown = f"a={p['a']:.6g}, b={p['b']:.6g}"
        elif self.method == "temperature":
            shown = f"temperature={p['temperature']:.6g}"
        else:
            shown = f"{p['x'].size} knots, {self._n_map} blocks"
        return (
            f"Recalibrated({self.method}: {shown}; fitted on {self.groups_:,} groups, "
            f"{self.trials_:,} trials; base={self.base!r})"
        )


def _append_map(path: Path, method: str, parameters: dict[str, Any]) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        msg = (
            f"{str(path)!r} uses ONNX opset {opset}; the recalibration map needs opset 13 or "
            "later. Export the base model with a newer backend."
        )
        raise BinomlabError(msg)
    base_out = graph.output[0]
    z = base_out.name

    def name(s: str) -> str:
        return f"recalibration_{s}"

    def const(s: str, value: Any) -> str:
        graph.initializer.append(numpy_helper.from_array(np.asarray(value, np.float64), name(s)))
        return name(s)

    nodes = [helper.make_node("Cast", [z], [name("z")], to=TensorProto.DOUBLE)]
    if method == "platt":
        nodes += [
            helper.make_node("Mul", [name("z"), const("a", parameters["a"])], [name("az")]),
            helper.make_node("Add", [name("az"), const("b", parameters["b"])], [name("logit")]),
        ]
    elif method == "temperature":
        T = const("temperature", parameters["temperature"])
        nodes.append(helper.make_node("Div", [name("z"), T], [name("logit")]))
    else:
        x, y = parameters["x"], parameters["y"]
        rising = np.flatnonzero(np.diff(y) != 0.0)
        start, width = x[rising], x[rising + 1] - x[rising]
        slope = (y[rising + 1] - y[rising]) / width
        if rising.size == 0:  # a constant map: one segment of slope 0
            start, width, slope = np.zeros(1), np.zeros(1), np.zeros(1)
        nodes += [
            helper.make_node("Sigmoid", [name("z")], [name("p")]),
            helper.make_node(
                "Reshape", [name("p"), _int64(graph, name("column"), [-1, 1])], [name("p_col")]
            ),
            helper.make_node("Sub", [name("p_col"), const("start", start[None, :])], [name("d")]),
            helper.make_node("Max", [name("d"), const("zero", 0.0)], [name("d_low")]),
            helper.make_node(
                "Min", [name("d_low"), const("width", width[None, :])], [name("d_clip")]
            ),
            helper.make_node(
                "MatMul", [name("d_clip"), const("slope", slope[:, None])], [name("rise")]
            ),
            helper.make_node("Add", [name("rise"), const("y0", y[0])], [name("q_raw")]),
            # rounding in the sum may leave [y_0, y_last] by an ulp: 1 + ε would make log(1 − q)
            # NaN; the bounds are the map's own end values
            helper.make_node("Max", [name("q_raw"), const("y_low", y[0])], [name("q_low")]),
            helper.make_node("Min", [name("q_low"), const("y_high", y[-1])], [name("q_col")]),
            helper.make_node("Log", [name("q_col")], [name("log_q")]),
            helper.make_node("Sub", [const("one", 1.0), name("q_col")], [name("r_col")]),
            helper.make_node("Log", [name("r_col")], [name("log_r")]),
            helper.make_node("Sub", [name("log_q"), name("log_r")], [name("logit_col")]),
            helper.make_node("Shape", [z], [name("shape")]),
            helper.make_node("Reshape", [name("logit_col"), name("shape")], [name("logit")]),
        ]
    for i, node in enumerate(nodes):
        node.name = name(f"node{i}")
    graph.node.extend(nodes)
    dims = [d.dim_param or (d.dim_value if d.HasField("dim_value") else None)
            for d in base_out.type.tensor_type.shape.dim]  # fmt: skip
    output = helper.make_tensor_value_info(name("logit"), TensorProto.DOUBLE, dims)
    others = [copy.deepcopy(o) for o in graph.output[1:]]
    del graph.output[:]
    graph.output.extend([output, *others])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _int64(graph: Any, tensor: str, value: list[int]) -> str:
    from onnx import numpy_helper

    graph.initializer.append(numpy_helper.from_array(np.asarray(value, np.int64), tensor))
    return tensor
