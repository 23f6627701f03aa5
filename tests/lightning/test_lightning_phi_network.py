"""``phi="network"``: the beta-binomial concentration as a second output of the Lightning
network, so that the overdispersion varies with the features — recovery of known ρ per
level, intervals that cover per level, the head's start and decay, export with two outputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("binomlab_lightning")
pytest.importorskip("onnxruntime")

import binomlab as bl  # noqa: E402
from binomlab.betabinomial import beta_binomial_nll, intra_class_correlation  # noqa: E402
from binomlab.specs import MLP  # noqa: E402
from binomlab.testing import OVERDISPERSION_LOG_PHI as LOG_PHI  # noqa: E402
from binomlab.testing import overdispersed_groups  # noqa: E402
from binomlab_lightning import BinomialModule, load_native  # noqa: E402
from binomlab_lightning.module import build_network  # noqa: E402


@pytest.fixture(scope="module")
def grouped() -> bl.Grouped:
    return overdispersed_groups()


@pytest.fixture(scope="module")
def fitted(grouped: bl.Grouped):
    return bl.fit(grouped, backend="lightning", loss="beta-binomial", phi="network")


def _levels(g: bl.Grouped) -> np.ndarray:
    return g.frame["s"].to_numpy()


def test_logistic_recovers_rho_per_level(grouped: bl.Grouped, fitted) -> None:
    assert fitted.config.optimizer == "lbfgs" and fitted.stop_reason == "converged"
    assert fitted.phi_model == "network" and fitted.phi_ is None
    assert fitted.n_params_ == 4 + 4  # logit: 3 weights and a bias; log φ: the same
    phi, s = fitted.predict_phi(grouped), _levels(grouped)
    for level, log_phi in LOG_PHI.items():
        rho = 1 / (1 + phi[s == level])
        assert np.std(np.log(phi[s == level])) < 0.15  # θ is (nearly) flat in x0, x1
        assert rho.mean() == pytest.approx(intra_class_correlation(math.exp(log_phi)), rel=0.1)
    # the reported NLL is the beta-binomial NLL with every group's own φ
    k, n = (grouped.frame[c].to_numpy().astype(float) for c in ("k", "n"))
    z = fitted.predict_logits(grouped)
    per_group = sum(
        beta_binomial_nll(z[i : i + 1], k[i : i + 1], n[i : i + 1], phi[i]) * n[i]
        for i in range(len(n))
    )
    assert fitted.history["train_nll"][-1] == pytest.approx(per_group / n.sum(), rel=1e-7)


def test_fits_better_than_one_phi_and_its_intervals_cover_each_level(
    grouped: bl.Grouped, fitted
) -> None:
    scalar = bl.fit(grouped, backend="lightning", loss="beta-binomial")
    assert scalar.phi_model == "scalar"
    # 4 extra parameters; twice the log-likelihood gain is far beyond chi2(3) noise
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


def test_mlp_with_adam_recovers_rho_per_level(grouped: bl.Grouped) -> None:
    fitted = bl.fit(
        grouped, model="mlp:16", backend="lightning", loss="beta-binomial", phi="network",
        optimizer="adam", epochs=60, batch_size=256, lr=0.02, seed=1,
    )  # fmt: skip
    phi, s = fitted.predict_phi(grouped), _levels(grouped)
    for level, log_phi in LOG_PHI.items():
        rho = intra_class_correlation(math.exp(log_phi))
        assert (1 / (1 + phi[s == level])).mean() == pytest.approx(rho, rel=0.1)
    again = bl.fit(
        grouped, model="mlp:16", backend="lightning", loss="beta-binomial", phi="network",
        optimizer="adam", epochs=3, batch_size=256, lr=0.02, seed=1,
    )  # fmt: skip
    same = bl.fit(
        grouped, model="mlp:16", backend="lightning", loss="beta-binomial", phi="network",
        optimizer="adam", epochs=3, batch_size=256, lr=0.02, seed=1,
    )  # fmt: skip
    assert np.array_equal(again.predict_phi(grouped), same.predict_phi(grouped))


def test_head_starts_at_phi_100_and_is_not_weight_decayed() -> None:
    net = build_network(MLP(hidden=(8, 4)), 5, phi_output=True)
    assert torch.count_nonzero(net.phi_head.weight) == 0
    assert net.phi_head.bias.item() == pytest.approx(math.log(100.0))
    assert net.phi_head.in_features == 4  # on the last hidden layer
    z, log_phi = net.forward_with_log_phi(torch.randn(7, 5))
    assert z.shape == log_phi.shape == (7,)
    torch.testing.assert_close(log_phi, torch.full((7,), math.log(100.0)))
    module = BinomialModule(
        net, spec=MLP(hidden=(8, 4)).to_dict(), input_dim=5, weight_decay=0.5,
        loss="beta-binomial", phi="network",
    )  # fmt: skip
    assert module.criterion is None
    groups = module.configure_optimizers().param_groups
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert decay[id(net.phi_head.weight)] == decay[id(net.phi_head.bias)] == 0.0
    assert decay[id(net.output_layer.weight)] == 0.5
    before = module.penalty()
    with torch.no_grad():
        net.phi_head.weight.fill_(3.0)
    torch.testing.assert_close(module.penalty(), before)
    with pytest.raises(ValueError, match="phi_output=True"):
        BinomialModule(
            build_network(MLP(hidden=(4,)), 5), spec=MLP(hidden=(4,)).to_dict(), input_dim=5,
            loss="beta-binomial", phi="network",
        )  # fmt: skip


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
    native = load_native(directory)
    assert native.phi_output and native.phi is None
    X = fitted.encoder.transform(grouped)
    assert np.array_equal(native.predict_log_phi(X), fitted.network.predict_log_phi(X))


def test_a_manifest_promising_a_phi_output_the_onnx_lacks(tmp_path, grouped: bl.Grouped) -> None:
    scalar = bl.fit(grouped, backend="lightning", loss="beta-binomial", epochs=3)
    directory = scalar.export(tmp_path / "m", formats=("onnx",))
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["phi_model"] == "scalar"
    assert bl.load(directory).predict_phi(grouped) == pytest.approx(
        np.full(len(grouped), scalar.phi_)
    )
    path.write_text(json.dumps({**manifest, "phi_model": "network"}))
    with pytest.raises(bl.BinomlabError, match=r"second output, but the ONNX model has 1"):
        bl.load(directory).predict_phi(grouped)


def test_predicted_phi_is_clamped_as_the_loss_clamps_it() -> None:
    from binomlab.betabinomial import PHI_RANGE, phi_from_log
    from binomlab_lightning.loss import LOG_PHI_RANGE

    assert np.allclose(np.log(PHI_RANGE), LOG_PHI_RANGE, rtol=1e-15)
    clamped = phi_from_log(np.array([-1e3, 0.0, 1e3]))
    assert clamped.tolist() == pytest.approx([PHI_RANGE[0], 1.0, PHI_RANGE[1]], rel=1e-12)
