"""The registry of training backends: built-in ``reference``, plugins by entry point.

Listing reads entry point *names* only (cheap, cached); a plugin is imported when it is asked
for. A third party adds a backend by publishing a package with an entry point in the group
``binomlab.backends`` pointing at a :class:`binomlab.backends.protocol.Backend` subclass.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from functools import cache, lru_cache
from importlib.metadata import EntryPoint, entry_points

from binomlab._checks import check_bool
from binomlab.backends.protocol import Backend
from binomlab.errors import BackendNotFoundError

__all__ = ["ENTRY_POINT_GROUP", "available", "get", "lazy_names", "refresh"]

ENTRY_POINT_GROUP = "binomlab.backends"
_BUILTIN = {"reference": "binomlab.backends.reference:ReferenceBackend"}
_INSTALL_HINTS = {
    "lightning": "pip install binomlab-lightning",
    "keras": "pip install binomlab-keras",
    "lightgbm": "pip install binomlab-lightgbm",
}


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


@cache
def _load_class(name: str) -> type[Backend]:
    if name in _BUILTIN:
        module, _, attr = _BUILTIN[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    try:
        cls = _entry_points()[name].load()
    except Exception as err:
        msg = (
            f"Backend {name!r} is installed but failed to load: {type(err).__name__}: {err}. "
            f"Reinstall it, e.g. {_INSTALL_HINTS.get(name, 'pip install --force-reinstall ...')}."
        )
        raise BackendNotFoundError(msg) from err
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        msg = f"Entry point {name!r} of {ENTRY_POINT_GROUP!r} is not a binomlab Backend: {cls!r}."
        raise BackendNotFoundError(msg)
    return cls


def available(*, check: bool = False) -> list[str]:
    """Names of the installed backends, sorted; ``"reference"`` is always there.

    With ``check=True`` every plugin is imported, and one that fails to load is left out with
    a :class:`RuntimeWarning` instead of an error.

    Raises
    ------
    BinomlabError
        ``check`` is not True or False.
    """
    names = sorted({*_BUILTIN, *_entry_points()})
    if not check_bool(check, name="check"):
        return names
    ok = []
    for name in names:
        try:
            _load_class(name)
        except BackendNotFoundError as err:
            warnings.warn(str(err), RuntimeWarning, stacklevel=2)
        else:
            ok.append(name)
    return ok


def get(backend: str | Backend | type[Backend]) -> Backend:
    """A backend instance from a registry name, a Backend subclass or an instance.

    Raises
    ------
    BackendNotFoundError
        No backend of that name is installed (the message lists the installed ones and how
        to install the one asked for), or it failed to load.
    """
    if isinstance(backend, Backend):
        return backend
    if isinstance(backend, type) and issubclass(backend, Backend):
        return backend()
    if not isinstance(backend, str) or backend not in {*_BUILTIN, *_entry_points()}:
        hint = _INSTALL_HINTS.get(backend) if isinstance(backend, str) else None
        how = f" Install it with: {hint}" if hint else ""
        msg = f"No backend {backend!r}. Installed: {available()}.{how}"
        raise BackendNotFoundError(msg)
    return _load_class(backend)()


def refresh() -> None:
    """Forget the cached entry points, e.g. after ``pip install`` of a plugin in a session."""
    _entry_points.cache_clear()
    _load_class.cache_clear()


def lazy_names(package: str, names: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for a plugin package: each name of ``names`` (name → module)
    is imported from its module on first use, so that importing the package — what loading
    its entry point does — imports no framework.

    >>> __getattr__ = lazy_names(__name__, {"BinomialNet": "my_plugin.network"})
    """

    def __getattr__(name: str) -> object:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        msg = f"module {package!r} has no attribute {name!r}"
        raise AttributeError(msg)

    return __getattr__
