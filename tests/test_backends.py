"""The backend registry: entry points listed by name, loaded on demand, clear errors."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

import binomlab as bl
from binomlab.testing import synthetic_rows


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """Install real entry points the way pip does: a dist-info folder on sys.path."""

    def install(name: str, target: str) -> None:
        dist = tmp_path / f"binomlab_fake_{name}-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: binomlab-fake-{name}\n"
                                       "Version: 1.0\n")  # fmt: skip
        (dist / "entry_points.txt").write_text(f"[binomlab.backends]\n{name} = {target}\n")
        bl.backends.refresh()

    monkeypatch.syspath_prepend(str(tmp_path))
    yield install
    monkeypatch.undo()
    bl.backends.refresh()


def test_reference_is_always_available() -> None:
    assert "reference" in bl.backends.available()
    assert bl.backends.get("reference").name == "reference"


def test_a_third_party_entry_point_trains(plugin_dir) -> None:
    plugin_dir("thirdparty", "binomlab.backends.reference:ReferenceBackend")
    assert "thirdparty" in bl.backends.available()
    g = bl.group(synthetic_rows(500), ["colour"], "y")
    fitted = bl.fit(g, backend="thirdparty")
    assert fitted.stop_reason == "converged"


def test_a_broken_plugin_is_a_warning_when_listing_and_an_error_when_asked_for(plugin_dir) -> None:
    plugin_dir("broken", "binomlab_no_such_module:Backend")
    assert "broken" in bl.backends.available()  # names only: nothing imported
    with pytest.warns(RuntimeWarning, match=r"Backend 'broken' is installed but failed to load"):
        names = bl.backends.available(check=True)
    assert "broken" not in names
    assert "reference" in names
    with pytest.raises(bl.BackendNotFoundError, match=r"ModuleNotFoundError"):
        bl.backends.get("broken")


def test_unknown_backend_lists_the_installed_ones() -> None:
    with pytest.raises(bl.BackendNotFoundError, match=r"No backend 'nope'\. Installed: \["):
        bl.backends.get("nope")


def test_listing_imports_no_plugin(plugin_dir) -> None:
    plugin_dir("lazy", "binomlab_lazy_probe:Backend")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bl.backends.available()
    assert "binomlab_lazy_probe" not in sys.modules


@pytest.mark.parametrize(
    ("config", "match"),
    [
        (
            {"optimizer": "adam"},
            r"optimizer to be one of \('newton', 'lbfgs'\)\. Received: optimizer='ad",
        ),
        ({"loss": "beta-binomial"}, r"loss to be one of \('binomial',\)"),
        ({"phi": "network"}, r"phi='network' describes the beta-binomial's .* needs loss="),
        ({"batch_size": 5}, r"full batch of groups \(40\).*Received: batch_size=5"),
        ({"options": {"devices": 2}}, r"does not take the option\(s\) \['devices'\]"),
    ],
)
def test_a_backend_used_directly_checks_its_config(config, match) -> None:
    from binomlab.backends.protocol import TrainConfig
    from binomlab.backends.reference import ReferenceBackend
    from binomlab.specs import Logistic
    from binomlab.testing import synthetic_train_data

    train = synthetic_train_data(40)
    with pytest.raises(bl.BinomlabError, match=match):
        config = TrainConfig(**{"optimizer": "lbfgs", **config})
        ReferenceBackend().fit(train, None, Logistic(), config, lambda e, m: None)
    with pytest.raises(bl.BinomlabError, match=r"builds the specs \('logistic',\)"):
        config = TrainConfig(optimizer="lbfgs")
        ReferenceBackend().fit(train, None, bl.MLP(), config, lambda e, m: None)


class _ScriptedSession:
    """A session whose epochs set the weights ``(coef, intercept)`` from a script."""

    decayed = (True, False)

    def __init__(self, script) -> None:
        from binomlab.backends.reference import LinearNetwork

        self.script = script
        self.network = LinearNetwork(np.zeros(1), 0.0)

    def get_weights(self):
        return [self.network.coef.copy(), np.array(self.network.intercept)]

    def set_weights(self, weights) -> None:
        self.network.coef, self.network.intercept = np.array(weights[0]), float(weights[1])

    def run_epochs(self, epochs, end_epoch) -> None:
        for coef, intercept in self.script[:epochs]:
            if isinstance(intercept, type) and issubclass(intercept, BaseException):
                raise intercept
            self.set_weights([np.array([coef]), intercept])
            if end_epoch():
                return


@pytest.fixture
def scripted_data():
    from binomlab.testing import synthetic_train_data

    data = synthetic_train_data(200, 1)
    rate = data.k.sum() / data.n.sum()
    return data, float(np.log(rate / (1 - rate)))


def test_the_loop_keeps_the_epoch_of_least_objective(scripted_data) -> None:
    from binomlab.backends import loop
    from binomlab.backends.protocol import TrainConfig
    from binomlab.nll import grouped_nll

    data, base = scripted_data
    # epoch 2 has the least NLL, but with weight_decay its large coefficient costs more
    script = [(0.5, base), (3.0, base), (0.6, base), (0.7, base)]
    seen = []
    config = TrainConfig(optimizer="adam", weight_decay=0.2, early_stopping=2, epochs=10)
    network = loop.run(_ScriptedSession(script), data, None, config, lambda e, m: seen.append(m))
    x = data.X[:, 0].astype(np.float64)
    nll = [grouped_nll(x * c + b, data.k, data.n) for c, b in script]
    assert [m["train_nll"] for m in seen] == pytest.approx(nll[:3], rel=1e-12)  # exact, at the end
    objective = [v + 0.1 * c**2 for v, (c, _) in zip(nll, script, strict=False)]
    best = int(np.argmin(objective[:3]))
    assert network.best_epoch == best + 1 and network.coef[0] == script[best][0]
    assert network.stop_reason == "early_stopping" and len(seen) == 3


def test_the_loop_stops_on_callbacks_and_interrupts(scripted_data) -> None:
    from binomlab.backends import loop
    from binomlab.backends.protocol import TrainConfig

    data, base = scripted_data
    config = TrainConfig(optimizer="adam", epochs=10)
    script = [(0.5, base), (0.1, base), (0.2, base)]
    stopped = loop.run(_ScriptedSession(script), data, None, config, lambda e, m: e < 2)
    assert stopped.stop_reason == "callback" and stopped.coef[0] == 0.1
    script = [(0.5, base), (0.1, base), (0.2, KeyboardInterrupt)]
    interrupted = loop.run(_ScriptedSession(script), data, None, config, lambda e, m: None)
    assert interrupted.stop_reason == "interrupted" and interrupted.best_epoch == 2
    assert interrupted.coef[0] == 0.1


def test_the_loop_calls_far_above_the_base_rate_divergence(scripted_data) -> None:
    from binomlab.backends import loop
    from binomlab.backends.protocol import TrainConfig
    from binomlab.nll import base_rate_nll

    data, base = scripted_data
    limit = 10 * base_rate_nll(data.k, data.n) + 1
    script = [(0.0, base), (0.0, base + 40.0)]  # p ≈ 1 everywhere: about 40 nats per failure
    with pytest.raises(bl.TrainingDivergedError, match=rf"epoch 2: train_nll=.*above {limit:.4g}"):
        config = TrainConfig(optimizer="adam", epochs=5)
        loop.run(_ScriptedSession(script), data, None, config, lambda e, m: None)
