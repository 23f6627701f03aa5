"""Keras and Lightning train the same specs to the same fits on the real flights data, and
their exported models are served alike by ``bl.load``."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("binomlab_keras")  # first: it quiets TensorFlow's start-up messages
pytest.importorskip("keras")
pytest.importorskip("binomlab_lightning")
sm = pytest.importorskip("statsmodels.api")

import binomlab as bl  # noqa: E402
from binomlab import datasets  # noqa: E402
from binomlab.nll import grouped_nll  # noqa: E402
from binomlab.training import train_data  # noqa: E402

MLP_SPEC = "mlp:32,16"


@pytest.fixture(scope="module")
def flights() -> bl.Grouped:
    return bl.group(
        datasets.flights(), list(datasets.FLIGHT_FEATURES), "delayed", drop_null_labels=True
    )


@pytest.fixture(scope="module")
def split(flights: bl.Grouped) -> tuple[bl.Grouped, bl.Grouped]:
    return flights.split(0.2, seed=0)


@pytest.fixture(scope="module")
def mlps(split) -> dict[str, bl.Fitted]:
    """The same MLP spec, data, seed, optimiser, epochs, batch size and lr on both backends."""
    train, val = split
    options = {"model": MLP_SPEC, "val": val, "seed": 0, "optimizer": "adam", "epochs": 20,
               "batch_size": 1024, "lr": 1e-2}  # fmt: skip
    return {name: bl.fit(train, backend=name, **options) for name in ("keras", "lightning")}


@pytest.mark.slow
def test_mlp_validation_nll_agrees_across_backends(mlps, split) -> None:
    _, val = split
    nll = {name: bl.evaluate(val, fitted)["nll"] for name, fitted in mlps.items()}
    # each returns its best epoch's weights; the NLLs are those of the history
    for name, fitted in mlps.items():
        assert nll[name] == pytest.approx(fitted.history["val_nll"].min(), rel=1e-6)
        assert fitted.history.height == 20
    assert abs(nll["keras"] - nll["lightning"]) / nll["lightning"] < 0.005, nll
    # both learn well beyond the base rate (0.548 per trial on these validation flights)
    base = bl.evaluate(val, np.full(len(val), split[0].rate))["nll"]
    assert max(nll.values()) < base - 0.03


@pytest.mark.slow
def test_models_from_both_backends_load_and_predict_alike(mlps, split, tmp_path) -> None:
    rows = datasets.flights().head(500).select(*datasets.FLIGHT_FEATURES)
    served = {}
    for name, fitted in mlps.items():
        served[name] = bl.load(fitted.export(tmp_path / name))
        assert served[name].backend == name
        np.testing.assert_allclose(
            served[name].predict_proba(rows), fitted.predict_proba(rows), rtol=0, atol=1e-5
        )
    assert served["keras"].features == served["lightning"].features
    # two networks trained apart: close, not equal
    gap = np.abs(served["keras"].predict_proba(rows) - served["lightning"].predict_proba(rows))
    assert np.median(gap) < 0.05


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The design matrix is rank-deficient")  # one-hot + intercept
def test_logistic_agrees_across_backends_and_statsmodels(flights) -> None:
    """The GLM by L-BFGS on both backends and by statsmodels' IRLS on the same design.

    Without ``dest``: 105 destinations include small ones whose flights were all on time (or
    all late), where the maximum-likelihood coefficient is infinite and no method converges.
    """
    g = bl.group(
        datasets.flights(), ["carrier", "origin", "month", "hour"], "delayed",
        drop_null_labels=True,
    )  # fmt: skip
    fits = {name: bl.fit(g, model="logistic", backend=name) for name in ("keras", "lightning")}
    for fitted in fits.values():
        assert fitted.stop_reason == "converged"
    data = train_data(fits["keras"].encoder.with_form("dense"), g)  # the fits read codes
    design = sm.add_constant(data.X.astype(np.float64), has_constant="add")
    glm = sm.GLM(
        np.column_stack([data.k, data.n - data.k]), design, family=sm.families.Binomial()
    ).fit()
    assert glm.converged
    z = design @ glm.params
    expected_nll = grouped_nll(z, data.k, data.n)
    expected_p = 1 / (1 + np.exp(-z))
    for name, fitted in fits.items():
        assert bl.evaluate(g, fitted)["nll"] == pytest.approx(expected_nll, rel=1e-4), name
        np.testing.assert_allclose(fitted.predict_proba(g), expected_p, rtol=0, atol=1e-4)
    np.testing.assert_allclose(
        fits["keras"].predict_proba(g), fits["lightning"].predict_proba(g), rtol=0, atol=1e-4
    )
