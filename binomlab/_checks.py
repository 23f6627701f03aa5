"""The argument checks every public function runs at its door, each rule written once.

Each checker takes the value and the argument's name, returns the value normalised (a Python
``int``, ``float``, ``bool``, tuple or list) and raises :class:`~binomlab.BinomlabError`
naming the argument, the value received and what is expected, in Keras's words:
"Expected seed to be .... Received: seed='x'". NumPy scalars are accepted wherever the Python
type is (``np.int64`` for an int, ``np.float32`` for a fraction, ``np.bool_`` for a bool); a
bool is never taken for a number.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from binomlab.errors import BinomlabError

__all__ = [
    "check_bool",
    "check_callables",
    "check_fraction",
    "check_int",
    "check_names",
    "check_seed",
    "is_bool",
]


def is_bool(value: Any) -> bool:
    """True for ``True``/``False`` and NumPy's ``np.bool_``."""
    return isinstance(value, bool | np.bool_)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not is_bool(value)


def check_bool(value: Any, *, name: str) -> bool:
    """``value`` as a Python bool.

    Raises
    ------
    BinomlabError
        ``value`` is not ``True``, ``False`` or a ``np.bool_`` (a string such as ``"no"`` or a
        number is refused, not judged by its truth).
    """
    if not is_bool(value):
        msg = f"Expected {name} to be True or False. Received: {name}={value!r}"
        raise BinomlabError(msg)
    return bool(value)


def check_seed(
    value: Any, *, name: str = "seed", generator: bool = False, bits: int | None = None
) -> Any:
    """A random seed: a non-negative integer (a Python or NumPy int) as a Python int.

    Parameters
    ----------
    generator
        Also accept None (fresh entropy) and a :class:`numpy.random.Generator`, returned as
        they are.
    bits
        The seed must be below ``2**bits`` (what a framework's global seed takes).

    Raises
    ------
    BinomlabError
        Anything else: a string, a float, a bool, a negative or too large integer.
    """
    if generator and (value is None or isinstance(value, np.random.Generator)):
        return value
    if _is_int(value) and value >= 0 and (bits is None or value < 2**bits):
        return int(value)
    expected = f"an integer in [0, 2**{bits})" if bits is not None else "a non-negative integer"
    if generator:
        expected += ", None or a numpy.random.Generator"
    msg = f"Expected {name} to be {expected}. Received: {name}={value!r}"
    raise BinomlabError(msg)


def check_fraction(value: Any, *, name: str) -> float:
    """A number strictly between 0 and 1 (a Python or NumPy real), as a Python float.

    Raises
    ------
    BinomlabError
        Not a real number (bools included), NaN, or outside the open interval (0, 1).
    """
    if not (isinstance(value, numbers.Real) and not is_bool(value) and 0 < value < 1):
        msg = (
            f"{name} must be a fraction strictly between 0 and 1: expected {name} to be in "
            f"(0, 1). Received: {name}={value!r}"
        )
        raise BinomlabError(msg)
    return float(value)


def check_int(value: Any, *, name: str, minimum: int, maximum: int | None = None) -> int:
    """An integer (a Python or NumPy int, never a bool) in ``[minimum, maximum]``, as an int.

    Raises
    ------
    BinomlabError
        Not an integer, or outside the range.
    """
    if _is_int(value) and value >= minimum and (maximum is None or value <= maximum):
        return int(value)
    expected = (
        f"an integer >= {minimum:,}"
        if maximum is None
        else f"an integer in [{minimum:,}, {maximum:,}]"
    )
    msg = f"Expected {name} to be {expected}. Received: {name}={value!r}"
    raise BinomlabError(msg)


def check_names(value: Any, *, name: str) -> tuple[str, ...]:
    """A column name or a sequence (any non-mapping iterable) of names, as a tuple.

    Raises
    ------
    BinomlabError
        ``value`` is neither a string nor an iterable of strings (an int, a dict, a list
        holding a non-string).
    """
    if isinstance(value, str):
        return (value,)
    names = None
    if isinstance(value, Iterable) and not isinstance(value, Mapping | bytes):
        names = tuple(value)
    if names is None or not all(isinstance(v, str) for v in names):
        msg = (
            f"Expected {name} to be a column name or a list of column names (strings). "
            f"Received: {name}={value!r}"
        )
        raise BinomlabError(msg)
    return tuple(str(v) for v in names)  # np.str_ and other str subclasses as plain str


def check_callables(value: Any, *, name: str = "callbacks") -> list[Callable[..., Any]]:
    """One callable, or an iterable of them, as a list (None gives an empty list).

    Raises
    ------
    BinomlabError
        Naming the first element that is not callable (or ``value`` itself when it is neither
        callable nor iterable).
    """
    if value is None:
        return []
    if callable(value):
        return [value]
    items = list(value) if isinstance(value, Iterable) and not isinstance(value, str) else [value]
    bad = [item for item in items if not callable(item)]
    if bad:
        msg = (
            f"Expected {name} to be a list of callables callback(epoch, metrics) -> continue? "
            f"(or one callable on its own). Received: {bad[0]!r} in {name}"
        )
        raise BinomlabError(msg)
    return items
