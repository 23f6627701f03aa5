"""``LabState``: everything the Lab knows, as plain Python objects the panels share.

The widgets only display this state and edit it; tests (and notebooks) can read it directly:
the models, the selection, the current training run and its per-epoch history.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import polars as pl

from binomlab.compare import INTERVAL_SCHEMA, LEADERBOARD_SCHEMA, compare
from binomlab.errors import BinomlabError
from binomlab.grouped import Grouped

__all__ = ["BAND_RESAMPLES", "COMPARE_RESAMPLES", "LEVEL", "SEED", "LabState"]

LEVEL = 0.95
"""The level of every interval and band the Lab shows."""
COMPARE_RESAMPLES = 1000
"""Bootstrap replicates of the leaderboard's ECE interval (``bl.compare``'s default)."""
BAND_RESAMPLES = 300
"""Replicates of a CORP band by default in the Lab (``bl.reliability`` takes 1,000): each
costs an isotonic fit over the distinct predictions, and the tab redraws on every change."""
SEED = 0
"""The seed of every resampling the Lab does, so a redraw shows the same numbers."""

Listener = Callable[[str], None]
"""``listener(event)``, with event ``"models"`` or ``"selected"``."""


class LabState:
    """The data, the models and the training run shared by the panels of a Lab.

    Parameters
    ----------
    train
        The training groups (None for a panel that needs no data, such as export alone).
    val
        Held-out groups: models are trained with them as validation data and compared and
        calibrated on them. Without them, ``train`` is used for evaluation.
    models
        Models to start with, ``{name: model}``: ``Fitted``, loaded ``Predictor`` or an array
        of probabilities, one per group of the evaluation data.

    Attributes
    ----------
    models
        ``{name: model}`` in insertion order.
    selected
        Names of the models selected for the calibration diagram (and the leaderboard's
        checkboxes), in model order.
    history
        Rows ``{"epoch", "train_nll", "val_nll"}`` of the current (or last) training run.
    runs
        One dict per finished training run: ``name`` (None when it failed), ``backend``,
        ``spec``, ``epochs``, ``stop_reason``, ``seconds``, ``error``.
    thread
        The training thread of the current (or last) run, or None.
    """

    def __init__(
        self,
        train: Grouped | None = None,
        val: Grouped | None = None,
        *,
        models: Mapping[str, Any] | None = None,
    ) -> None:
        for name, value in (("train", train), ("val", val)):
            if value is not None and not isinstance(value, Grouped):
                msg = (
                    f"{name} must be a Grouped (from bl.group or g.split()). "
                    f"Received: {type(value).__name__}"
                )
                raise TypeError(msg)
        self.train = train
        self.val = val
        self.models: dict[str, Any] = {}
        self.selected: list[str] = []
        self.history: list[dict[str, Any]] = []
        self.runs: list[dict[str, Any]] = []
        self.thread: threading.Thread | None = None
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        for name, model in (models or {}).items():
            self.add_model(name, model)

    @property
    def eval_data(self) -> Grouped:
        """What models are compared and calibrated on: ``val``, else ``train``.

        Raises
        ------
        BinomlabError
            The state holds no data.
        """
        data = self.val if self.val is not None else self.train
        if data is None:
            msg = "This panel needs grouped data: pass train (and val) when building it."
            raise BinomlabError(msg)
        return data

    @property
    def training(self) -> bool:
        """True while a training thread runs."""
        return self.thread is not None and self.thread.is_alive()

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(event)`` after every change of the models or the selection."""
        self._listeners.append(listener)

    def _notify(self, event: str) -> None:
        for listener in list(self._listeners):
            listener(event)

    def unique_name(self, base: str) -> str:
        """``base``, or ``base #2``, ``base #3``... when that name is taken."""
        with self._lock:
            name, i = base, 1
            while name in self.models:
                i += 1
                name = f"{base} #{i}"
            return name

    def add_model(self, name: str, model: Any, *, select: bool = True) -> str:
        """Add ``model`` under ``name`` (made unique) and return the name it got."""
        with self._lock:
            name = self.unique_name(str(name))
            self.models[name] = model
            if select:
                self.selected.append(name)
        self._notify("models")
        return name

    def remove_model(self, name: str) -> None:
        """Forget a model (and unselect it)."""
        with self._lock:
            del self.models[name]
            self.selected = [n for n in self.selected if n != name]
        self._notify("models")

    def select(self, names: Iterable[str]) -> None:
        """Set the selected models; unknown names are ignored, model order is kept."""
        wanted = set(names)
        with self._lock:
            selected = [n for n in self.models if n in wanted]
            changed = selected != self.selected
            self.selected = selected
        if changed:
            self._notify("selected")

    def leaderboard(self) -> pl.DataFrame:
        """``bl.compare`` of every model on :attr:`eval_data` with its intervals (at
        :data:`LEVEL`, the ECE's from :data:`COMPARE_RESAMPLES` replicates with :data:`SEED`);
        an empty frame of that schema with no model."""
        with self._lock:
            models = dict(self.models)
        if not models:
            return pl.DataFrame(schema=LEADERBOARD_SCHEMA | INTERVAL_SCHEMA)
        return compare(models, self.eval_data, level=LEVEL, resamples=COMPARE_RESAMPLES, seed=SEED)
