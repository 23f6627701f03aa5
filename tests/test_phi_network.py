"""``loss="beta-binomial", phi="network"`` through every installed backend that learns it:
the concentration φ as a second output of the network, so that the overdispersion varies with
the features — recovery of a known ρ per level, intervals that cover per level, export with
two ONNX outputs, the head kept in the native files, the backends agreeing, and the clamp on
predicted φ."""

from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest

import binomlab as bl
from binomlab.betabinomial import (
    PHI_RANGE,
    beta_binomial_nll,
    intra_class_correlation,
    phi_from_log,
)
from binomlab.testing import OVERDISPERSION_LOG_PHI as LOG_PHI
from binomlab.testing import overdispersed_groups

BACKENDS = [
    name
    for name in bl.backends.available(check=True)
    if "network" in bl.backends.get(name).phi_models
]
pytestmark = pytest.mark.skipif(not BACKENDS, reason="no backend learns phi='network'")

NATIVE_LOG_PHI_RTOL = {"keras": 1e-12}
"""How far the log φ from a plugin's reloaded native files may stray from the fitted network's
(relative); a plugin not named here must reproduce it to the last bit."""


@pytest.fixture(scope="module")
def grouped() -> bl.Grouped:
    return overdispersed_groups()


@pytest.fixture(scope="module", params=BACKENDS)
def fitted(request, grouped: bl.Grouped):
    return bl.fit(grouped, backend=request.param, loss="beta-binomial", phi="network")


def _levels(g: bl.Grouped) -> np.ndarray:
    return g.frame["s"].to_numpy()


def test_reference_backend_refuses_it(grouped: bl.Grouped) -> None:
    assert bl.backends.get("reference").phi_models == ("scalar",)
    with pytest.raises(
        bl.BinomlabError, match=r"reference backend expects loss to be one of \('binomial',\)"
    ):
        bl.fit(grouped, backend="reference", loss="beta-binomial", phi="network")


def test_logistic_recovers_rho_per_level(grouped: bl.Grouped, fitted) -> None:
    assert fitted.config.optimizer == "lbfgs" and fitted.stop_reason == "converged"
    assert fitted.phi_model == "network" and fitted.phi_ is None
    assert fitted.n_params_ == 4 + 4  # logit: 3 weights and a bias; log φ: the same
    assert ", loss='beta-binomial', phi='network', epochs=" in repr(fitted)
    phi, s = fitted.predict_phi(grouped), _levels(grouped)
    for level, log_phi in LOG_PHI.items():
        assert np.std(np.log(phi[s == level])) < 0.15  # θ is (nearly) flat in x0, x1
        rho = intra_class_correlation(math.exp(log_phi))
        assert (1 / (1 + phi[s == level])).mean() == pytest.approx(rho, rel=0.1)
    # the reported NLL is the beta-binomial NLL with every group's own φ
    k, n = (grouped.frame[c].to_numpy().astype(float) for c in ("k", "n"))
    exact = beta_binomial_nll(fitted.predict_logits(grouped), k, n, phi)
    assert fitted.history["train_nll"][-1] == pytest.approx(exact, rel=1e-7)


def test_fits_better_than_one_phi_and_its_intervals_cover_each_level(
    grouped: bl.Grouped, fitted
) -> None:
    scalar = bl.fit(grouped, backend=fitted.backend, loss="beta-binomial")
    assert scalar.phi_model == "scalar"
    # 3 more parameters: twice the log-likelihood gain is far beyond chi2(3) noise
    gain = 2 * grouped.trials * (scalar.history["train_nll"][-1] - fitted.history["train_nll"][-1])
    assert gain > 100
    n, k, s = grouped.frame["n"].to_numpy(), grouped.frame["k"].to_numpy(), _levels(grouped)
    cover = {}
    for name, model in (("network", fitted), ("scalar", scalar)):
        lower, upper = model.predict_interval(grouped, n)
        inside = (lower <= k) & (k <= upper)
        cover[name] = [inside[s == level].mean() for level in (0, 1)]
    assert all(0.93 <= c <= 0.975 for c in cover["network"])
    # one φ for both levels: too narrow where ρ is large, too wide where it is small
    assert cover["scalar"][0] < 0.93 and cover["scalar"][1] > 0.975


def test_export_has_two_outputs_and_round_trips(tmp_path, grouped: bl.Grouped, fitted) -> None:
    directory = fitted.export(tmp_path / "m")
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["phi_model"] == "network" and manifest["phi"] is None
    served = bl.load(directory)
    assert [o.name for o in served._session.get_outputs()] == ["logit", "log_phi"]
    assert served.phi_model == "network" and served.phi is None
    rows = grouped.frame.select(grouped.features)
    np.testing.assert_allclose(served.predict_phi(rows), fitted.predict_phi(rows), rtol=1e-5)
    np.testing.assert_allclose(served.predict_proba(rows), fitted.predict_proba(rows), atol=1e-5)
    n = grouped.frame["n"].to_numpy()
    for served_bound, fitted_bound in zip(
        served.predict_interval(rows, n), fitted.predict_interval(rows, n), strict=True
    ):
        assert np.abs(served_bound - fitted_bound).max() <= 1


def test_native_files_keep_the_head(tmp_path, grouped: bl.Grouped, fitted) -> None:
    load_native = importlib.import_module(f"binomlab_{fitted.backend}").load_native
    native = load_native(fitted.export(tmp_path / "m", formats=("native",)))
    assert native.phi_output and native.phi is None and str(native.spec) == "logistic"
    X = fitted.encoder.transform(grouped)
    rtol = NATIVE_LOG_PHI_RTOL.get(fitted.backend, 0.0)  # 0: equal to the last bit
    np.testing.assert_allclose(
        native.predict_log_phi(X), fitted.network.predict_log_phi(X), rtol=rtol, equal_nan=False
    )
    np.testing.assert_allclose(native.predict_logits(X), fitted.predict_logits(grouped))


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs two backends that learn phi='network'")
def test_backends_agree(grouped: bl.Grouped) -> None:
    fits = [bl.fit(grouped, backend=name, loss="beta-binomial", phi="network") for name in BACKENDS]
    first, *others = fits
    for other in others:
        assert other.history["train_nll"][-1] == pytest.approx(
            first.history["train_nll"][-1], rel=1e-7
        )
        np.testing.assert_allclose(other.predict_phi(grouped), first.predict_phi(grouped), 1e-3)
        np.testing.assert_allclose(
            other.predict_proba(grouped), first.predict_proba(grouped), atol=1e-5
        )


def test_a_manifest_promising_a_phi_output_the_onnx_lacks(tmp_path, grouped: bl.Grouped) -> None:
    scalar = bl.fit(grouped, backend=BACKENDS[0], loss="beta-binomial", epochs=3)
    directory = scalar.export(tmp_path / "m", formats=("onnx",))
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["phi_model"] == "scalar"
    assert bl.load(directory).predict_phi(grouped) == pytest.approx(
        np.full(len(grouped), scalar.phi_)
    )
    edited = {**manifest, "phi_model": "network"}
    path.write_text(json.dumps(edited))
    with pytest.raises(bl.ModelFileError, match=r"was edited after export"):
        bl.load(directory)
    from binomlab.manifest import checksum

    # a deliberate edit, its checksum recomputed: the ONNX model itself still gives it away
    path.write_text(json.dumps({**edited, "checksum": checksum(edited)}))
    with pytest.raises(bl.BinomlabError, match=r"second output, but the ONNX model has 1"):
        bl.load(directory).predict_phi(grouped)


@pytest.mark.parametrize("backend", BACKENDS)
def test_predicted_phi_is_clamped_as_the_loss_clamps_it(backend: str) -> None:
    loss = importlib.import_module(f"binomlab_{backend}.loss")
    assert np.allclose(np.log(PHI_RANGE), loss.LOG_PHI_RANGE, rtol=1e-15)
    clamped = phi_from_log(np.array([-1e3, 0.0, 1e3]))
    assert clamped.tolist() == pytest.approx([PHI_RANGE[0], 1.0, PHI_RANGE[1]], rel=1e-12)
