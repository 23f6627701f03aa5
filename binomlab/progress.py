"""Progress reporting for the command line: a tqdm bar per training run and per file."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

__all__ = ["TrainingBar", "iterate"]

T = TypeVar("T")


class TrainingBar:
    """A ``bl.fit`` callback drawing one tqdm bar, with the latest NLLs as its postfix.

    Parameters
    ----------
    total
        Expected epochs (None for an open-ended L-BFGS run).
    description
        Shown left of the bar.
    enabled
        False draws nothing (``--quiet``).
    """

    def __init__(self, total: int | None, description: str, *, enabled: bool = True) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=description, unit="epoch", disable=not enabled,
                         leave=True, dynamic_ncols=True, mininterval=0.5)  # fmt: skip

    def __call__(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._bar.update(epoch - self._bar.n)
        shown = {k: f"{v:.5f}" for k, v in metrics.items() if k.endswith("nll")}
        self._bar.set_postfix(shown, refresh=False)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> TrainingBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def iterate(items: Iterable[T], description: str, *, enabled: bool = True) -> Iterator[T]:
    """Iterate with a tqdm bar (nothing drawn when ``enabled`` is False)."""
    from tqdm.auto import tqdm

    items = list(items)
    yield from tqdm(items, desc=description, unit="file", disable=not enabled or len(items) < 2)
