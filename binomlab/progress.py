"""Progress reporting for the command line: a tqdm bar per training run and per file.

Nothing is drawn before there is progress to show: a training bar appears when the first
epoch ends, a file bar after half a second. :func:`clear` takes every bar off the terminal
(the CLI calls it before it prints an error), and :func:`write` prints a line above them.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

__all__ = ["TrainingBar", "clear", "counter", "iterate", "write"]

T = TypeVar("T")

FILE_BAR_DELAY = 0.5
"""Seconds before a file bar appears: a quick grouping (or one that fails) draws nothing."""

_BARS: weakref.WeakSet[Any] = weakref.WeakSet()
"""The tqdm bars this module opened and has not closed yet."""


def _open_bar(**kwargs: Any) -> Any:
    from tqdm.auto import tqdm

    bar = tqdm(**kwargs)
    _BARS.add(bar)
    return bar


def clear() -> None:
    """Close every open bar, erasing it from the terminal (nothing is left of it)."""
    for bar in list(_BARS):
        bar.leave = False
        bar.close()
        _BARS.discard(bar)


def write(line: str) -> None:
    """Print ``line`` on stderr above the open bars (which are redrawn below it)."""
    if _BARS:
        from tqdm.auto import tqdm

        tqdm.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr)


class TrainingBar:
    """A ``bl.fit`` callback drawing one tqdm bar, with the latest NLLs as its postfix.

    The bar is drawn when the first epoch ends, so an error before it (a bad option, bad
    data) is all the terminal shows; leaving the ``with`` block on an exception erases it.

    Parameters
    ----------
    total
        Expected epochs (None for an open-ended L-BFGS run).
    description
        Shown left of the bar.
    enabled
        False draws nothing (``--quiet``).
    unit
        What the bar counts: ``"epoch"``, or ``"iteration"`` for Newton and L-BFGS.
    """

    def __init__(
        self, total: int | None, description: str, *, enabled: bool = True, unit: str = "epoch"
    ) -> None:
        self.total = total
        self.description = description
        self.enabled = enabled
        self.unit = unit
        self._bar: Any = None

    def __call__(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        shown = {k: f"{v:.5f}" for k, v in metrics.items() if k.endswith("nll")}
        if self._bar is None:  # drawn first here, at the first epoch's end
            self._bar = _open_bar(total=self.total, initial=epoch, postfix=shown,
                                  desc=self.description, unit=self.unit, leave=True,
                                  dynamic_ncols=True, mininterval=0.5)  # fmt: skip
            return
        self._bar.set_postfix(shown, refresh=False)
        self._bar.update(epoch - self._bar.n)

    def close(self, *, erase: bool = False) -> None:
        """End the bar: kept on the terminal, or erased with ``erase=True``."""
        if self._bar is None:
            return
        if erase:
            self._bar.leave = False
        self._bar.close()
        _BARS.discard(self._bar)

    def __enter__(self) -> TrainingBar:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: Any) -> None:
        self.close(erase=exc_type is not None)


def counter(total: int, description: str, *, unit: str, enabled: bool = True) -> Any:
    """A tqdm bar counting ``total`` steps, kept on the terminal when closed (None when
    ``enabled`` is False); :func:`clear` knows it, so the CLI can erase it on an error."""
    if not enabled:
        return None
    return _open_bar(total=total, desc=description, unit=unit, leave=True, dynamic_ncols=True)


def iterate(items: Iterable[T], description: str, *, enabled: bool = True) -> Iterator[T]:
    """Iterate with a tqdm bar that appears after :data:`FILE_BAR_DELAY` seconds and is
    erased at the end (nothing drawn when ``enabled`` is False or for fewer than 2 items)."""
    items = list(items)
    if not enabled or len(items) < 2:
        yield from items
        return
    bar = _open_bar(total=len(items), desc=description, unit="file", leave=False,
                    delay=FILE_BAR_DELAY)  # fmt: skip
    try:
        for item in items:
            yield item
            bar.update()
    finally:
        bar.close()
        _BARS.discard(bar)
