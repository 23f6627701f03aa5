"""``phi="network"`` in the Lightning plugin: the ``log φ`` head (its start, no weight decay)
and an MLP trained by Adam. What every backend shares (recovery of ρ per level, coverage, ONNX
with two outputs, the native files) is in tests/test_phi_network.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("binomlab_lightning")

import binomlab as bl  # noqa: E402
from binomlab.betabinomial import intra_class_correlation  # noqa: E402
from binomlab.specs import MLP  # noqa: E402
from binomlab.testing import OVERDISPERSION_LOG_PHI as LOG_PHI  # noqa: E402
from binomlab.testing import overdispersed_groups  # noqa: E402
from binomlab_lightning import BinomialModule  # noqa: E402
from binomlab_lightning.module import build_network  # noqa: E402


@pytest.fixture(scope="module")
def grouped() -> bl.Grouped:
    return overdispersed_groups()


def _levels(g: bl.Grouped) -> np.ndarray:
    return g.frame["s"].to_numpy()


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
    # the penalty the core adds (L-BFGS) and ranks epochs by is over module.decayed()
    assert {id(p) for p in module.decayed()} == {id(net.layers[i].weight) for i in (0, 2, 4)}
    with pytest.raises(ValueError, match="phi_output=True"):
        BinomialModule(
            build_network(MLP(hidden=(4,)), 5), spec=MLP(hidden=(4,)).to_dict(), input_dim=5,
            loss="beta-binomial", phi="network",
        )  # fmt: skip
