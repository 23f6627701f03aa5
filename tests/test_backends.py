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
