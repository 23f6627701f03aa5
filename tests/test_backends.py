"""The backend registry: entry points listed by name, loaded on demand, clear errors."""

from __future__ import annotations

import sys
import warnings

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
    plugin_dir("thirdparty", "binomlab.reference:ReferenceBackend")
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
        ({"optimizer": "adam"}, r"optimizer to be one of \('lbfgs',\)\. Received: optimizer='ad"),
        ({"loss": "beta-binomial"}, r"loss to be one of \('binomial',\)"),
        ({"phi": "network"}, r"phi to be one of \('scalar',\)\. Received: phi='network'"),
        ({"batch_size": 5}, r"full batch of groups.*Received: batch_size=5"),
        ({"options": {"devices": 2}}, r"does not take the option\(s\) \['devices'\]"),
    ],
)
def test_a_backend_used_directly_checks_its_config(config, match) -> None:
    from binomlab.protocol import TrainConfig
    from binomlab.reference import ReferenceBackend
    from binomlab.specs import Logistic
    from binomlab.testing import synthetic_train_data

    train = synthetic_train_data(40)
    with pytest.raises(bl.BinomlabError, match=match):
        config = TrainConfig(**{"optimizer": "lbfgs", **config})
        ReferenceBackend().fit(train, None, Logistic(), config, lambda e, m: None)
    with pytest.raises(bl.BinomlabError, match=r"builds the specs \('logistic',\)"):
        config = TrainConfig(optimizer="lbfgs")
        ReferenceBackend().fit(train, None, bl.MLP(), config, lambda e, m: None)


def test_best_epoch_follows_the_training_rules() -> None:
    from binomlab.protocol import BestEpoch

    best = BestEpoch(patience=2)
    assert best.update(1, {"train_nll": 0.5}, penalty=0.1)  # the objective 0.6
    assert not best.update(2, {"train_nll": 0.45}, penalty=0.2)  # 0.65: worse with the penalty
    assert best.stop_reason(True) is None and best.stale == 1
    assert not best.update(3, {"train_nll": 0.1, "val_nll": 0.7}, penalty=9.0)  # val_nll rules
    assert (best.epoch, best.value) == (1, 0.6)
    assert best.stop_reason(None) == "early_stopping"
    assert best.stop_reason(False) == "callback"
    assert BestEpoch(None).stop_reason(True, converged=True) == "converged"
