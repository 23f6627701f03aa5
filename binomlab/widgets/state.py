"""``LabState``: everything the Lab knows, as plain Python objects the panels share.

The widgets only display this state and edit it; tests (and notebooks) can read it directly:
the models, the selection, the current training run and its per-epoch history.

:func:`run_name` names a run by what distinguishes it from ``bl.fit``'s defaults, and
:func:`run_options` gives the resolved training options the leaderboard shows.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from typing import Any

import polars as pl

from binomlab import backends
from binomlab._colors import MODEL_COLORS
from binomlab.backends.protocol import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    TREE_OPTIMIZERS,
    TrainConfig,
    default_optimizer,
)
from binomlab.compare import INTERVAL_SCHEMA, LEADERBOARD_SCHEMA, compare
from binomlab.errors import BinomlabError
from binomlab.grouped import Grouped
from binomlab.specs import parse_spec

__all__ = [
    "BAND_RESAMPLES",
    "COMPARE_RESAMPLES",
    "LEVEL",
    "MAX_OVERLAID",
    "NAME_SEPARATOR",
    "RUN_SCHEMA",
    "SEED",
    "LabState",
    "run_name",
    "run_options",
]

LEVEL = 0.95
"""The level of every interval and band the Lab shows."""
COMPARE_RESAMPLES = 1000
"""Bootstrap replicates of the leaderboard's ECE interval (``bl.compare``'s default)."""
BAND_RESAMPLES = 300
"""Replicates of a CORP band by default in the Lab (``bl.reliability`` takes 1,000): each
costs an isotonic fit over the distinct predictions, and the tab redraws on every change."""
SEED = 0
"""The seed of every resampling the Lab does, so a redraw shows the same numbers."""
MAX_OVERLAID = 4
"""Up to this many models share one CORP diagram (the Lab's default, and the report); more
get one each (small multiples)."""
NAME_SEPARATOR = " · "
"""Between the parts of a run's name: ``mlp:64,32 · lightning · lr=0.001``."""

RUN_SCHEMA = {
    "optimizer": pl.String,
    "lr": pl.Float64,
    "batch_size": pl.Int64,
    "max_epochs": pl.Int64,
    "best_epoch": pl.Int64,
    "stop_reason": pl.String,
    "seed": pl.Int64,
    "weight_decay": pl.Float64,
    "early_stopping": pl.Int64,
    "loss": pl.String,
}
"""The columns :meth:`LabState.leaderboard` adds after ``bl.compare``'s: each run's resolved
training options (``max_epochs``: the epoch or iteration budget; ``bl.compare``'s ``epochs``
are the epochs run), its best epoch and why it stopped; null for a model that cannot say (an
array of probabilities)."""

Listener = Callable[[str], None]
"""``listener(event)``, with event ``"models"`` or ``"selected"``."""

# bl.fit's keywords that are neither TrainConfig fields nor backend options (and "bins": the
# edges a run's data was regrouped with, which run_name takes beside bl.fit's options)
_FIT_KEYWORDS = ("model", "backend", "val", "callbacks", "features", "bins")
_ENCODING_DEFAULTS = {"reference": None, "min_frequency": None, "unseen": "error"}
_CONFIG_FIELDS = tuple(f.name for f in dataclass_fields(TrainConfig) if f.name != "options")
# the TrainConfig fields a name shows when they differ from the defaults, in this order
# (the optimizer, loss and phi are shown on their own: see run_name)
_NAMED_FIELDS = (
    "lr",
    "batch_size",
    "epochs",
    "weight_decay",
    "early_stopping",
    "seed",
    "tolerance",
)


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ",".join(_value_text(v) for v in value)
    return str(value)


def _config_of(model: Any) -> TrainConfig | None:
    """The resolved config of a ``Fitted`` (``.config``) or a loaded ``Predictor`` (its
    manifest's), or None."""
    config = getattr(model, "config", None)
    if isinstance(config, TrainConfig):
        return config
    manifest = getattr(model, "manifest", None)
    if isinstance(manifest, Mapping):
        saved = manifest.get("training", {}).get("config")
        if isinstance(saved, Mapping):
            known = {k: v for k, v in saved.items() if k in _CONFIG_FIELDS}
            return TrainConfig(**known, options=dict(saved.get("options") or {}))
    return None


def _from_options(
    options: Mapping[str, Any], data: Grouped | None
) -> tuple[Any, str, TrainConfig | None, dict[str, Any]]:
    """The spec (as given when it cannot be parsed), backend name, resolved config (None
    when it cannot be resolved) and the data options (features, encoding) of ``bl.fit``
    keyword arguments."""
    if "model" not in options or "backend" not in options:
        msg = (
            "run_name needs the bl.fit options with 'model' and 'backend'. "
            f"Received: {sorted(options)}"
        )
        raise BinomlabError(msg)
    backend = options["backend"]
    backend_name = backend if isinstance(backend, str) else getattr(backend, "name", str(backend))
    extra = {
        "features": options.get("features"),
        "bins": options.get("bins"),
        **{k: options.get(k, v) for k, v in _ENCODING_DEFAULTS.items()},
    }
    try:
        spec = parse_spec(options["model"])
    except BinomlabError:
        return options["model"], backend_name, None, extra
    config_fields = {k: options[k] for k in _CONFIG_FIELDS if k in options}
    rest = {
        k: v
        for k, v in options.items()
        if k not in _CONFIG_FIELDS and k not in _FIT_KEYWORDS and k not in _ENCODING_DEFAULTS
    }
    groups = len(data) if data is not None else 1
    try:
        engine = backends.get(backend)
        config = TrainConfig(**config_fields, options=rest).resolve(engine, spec, groups)
    except BinomlabError:
        config = None
    return spec, backend_name, config, extra


def _defaults(backend: str, spec: Any, config: TrainConfig) -> tuple[TrainConfig, str | None]:
    """What ``bl.fit(train, model=spec, backend=backend, loss=..., phi=...)`` resolves, with
    ``config``'s optimizer, and the optimizer it picks when none is given (None when the
    backend cannot be loaded: the defaults are then the core's)."""
    full_batch = config.deterministic or config.optimizer in TREE_OPTIMIZERS
    groups = config.batch_size if full_batch and config.batch_size else 1
    try:
        engine = backends.get(backend)
        chosen = default_optimizer(engine, spec, config.loss)
        base = TrainConfig(optimizer=config.optimizer, loss=config.loss, phi=config.phi)
        return base.resolve(engine, spec, groups), chosen
    except BinomlabError:
        optimizer = config.optimizer or ""
        core = replace(
            TrainConfig(optimizer=config.optimizer, loss=config.loss, phi=config.phi),
            epochs=DEFAULT_EPOCHS.get(optimizer),
            batch_size=config.batch_size if config.deterministic else DEFAULT_BATCH_SIZE,
            lr=DEFAULT_LR.get(optimizer),
            options=dict(config.options),
        )
        return core, None


def run_name(
    source: Any,
    taken: Iterable[str] = (),
    *,
    data: Grouped | None = None,
) -> str:
    """The name of a run: its spec and backend, then what differs from ``bl.fit``'s defaults.

    ``mlp:64,32 · lightning · lr=0.001 · seed=3``: the spec (with its architecture options),
    the backend, the loss and φ model when not binomial, the optimizer when it is not the one
    ``bl.fit`` picks for that spec and backend, then every resolved option that differs from
    the default for that optimizer (``lr``, ``batch_size``, ``epochs``, ``weight_decay``,
    ``early_stopping``, ``seed``, ``tolerance``, backend options), the features when a subset
    of ``data``'s is used, binned features whose bins differ from ``data``'s (``hour: 4
    bins``; ``hour: levels`` for a bin per integer), and the
    encoding options (``reference``, ``min_frequency``, ``unseen``) that were set. Options
    are named as ``bl.fit`` takes them. A name in ``taken`` gets `` #2``, `` #3``... (two
    runs with the same options).

    Parameters
    ----------
    source
        A ``Fitted`` (its ``spec``, ``backend``, resolved ``config``, ``features``, ``bins``
        and ``encoding``), or the keyword arguments of ``bl.fit`` (``model`` and ``backend``
        required; the rest resolved as ``bl.fit`` would, before training), plus, optionally,
        ``bins``: ``{feature: edges}`` of the run's training data when it was regrouped.
    taken
        Names already in use (e.g. the Lab's models).
    data
        The training data the run uses, for the features and bins it is compared with (and
        the full batch of an L-BFGS run's options).

    Raises
    ------
    BinomlabError
        ``source`` is a mapping without ``model`` or ``backend``, or neither a mapping nor a
        fitted model.
    """
    if isinstance(source, Mapping):
        spec, backend, config, extra = _from_options(source, data)
        given = {k: v for k, v in source.items() if k in _CONFIG_FIELDS}
    elif hasattr(source, "spec") and hasattr(source, "backend"):
        spec, backend = source.spec, str(source.backend)
        config, given = _config_of(source), {}
        encoding = getattr(source, "encoding", None) or {}
        extra = {
            "features": list(getattr(source, "features", ()) or ()) or None,
            "bins": dict(getattr(source, "bins", None) or {}),
            **{k: encoding.get(k, v) for k, v in _ENCODING_DEFAULTS.items()},
        }
    else:
        msg = (
            "run_name names a fitted model or the bl.fit options of a run. "
            f"Received: {type(source).__name__}"
        )
        raise BinomlabError(msg)
    parts = [str(spec), backend]
    if config is None:  # options that cannot be resolved: the ones given, as given
        parts += [f"{k}={_value_text(v)}" for k, v in given.items() if v is not None]
    else:
        default, chosen = _defaults(backend, spec, config)
        if config.loss != "binomial":
            parts.append(config.loss)
        if config.phi != "scalar":
            parts.append(f"phi={config.phi}")
        if config.optimizer != chosen:
            parts.append(str(config.optimizer))
        for key in _NAMED_FIELDS:
            value = getattr(config, key)
            if value != getattr(default, key):
                parts.append(f"{key}={_value_text(value)}")
        defaults = dict(default.options)
        for key, value in config.options.items():
            if key not in defaults or defaults[key] != value:
                parts.append(f"{key}={_value_text(value)}")
    parts += _data_parts(extra, data, fitted=not isinstance(source, Mapping))
    base = NAME_SEPARATOR.join(parts)
    names = set(taken)
    name, i = base, 1
    while name in names:
        i += 1
        name = f"{base} #{i}"
    return name


def _data_parts(extra: Mapping[str, Any], data: Grouped | None, *, fitted: bool) -> list[str]:
    """The name's parts for the features, bins and encoding options of a run. Without
    ``data``, a fitted model's features and bins cannot be told from the data's (not shown),
    while ``features`` and ``bins`` given with the options are a choice (shown)."""
    parts = []
    features = extra.get("features")
    if isinstance(features, str):
        features = [features]
    if features is not None:
        differs = set(features) != set(data.features) if data is not None else not fitted
        if differs:
            parts.append(f"features={','.join(map(str, features))}")
    if data is not None or not fitted:
        theirs = data.bins if data is not None else {}
        for feature, edges in (extra.get("bins") or {}).items():
            if tuple(edges) != tuple(theirs.get(feature, ())):
                parts.append(f"{feature}: {_bins_text(edges)}")
    for key, default in _ENCODING_DEFAULTS.items():
        value = extra.get(key, default)
        if value != default and value is not None:
            if isinstance(value, Mapping):
                value = ",".join(f"{k}:{_value_text(v)}" for k, v in value.items())
            parts.append(f"{key}={_value_text(value)}")
    return parts


def _bins_text(edges: Any) -> str:
    """``levels`` for edges one apart (a bin per integer: the Train tab's "category"), else
    ``<n> bins``."""
    edges = [float(e) for e in edges]
    steps = {b - a for a, b in itertools.pairwise(edges)}
    if len(edges) > 2 and all(math.isfinite(e) for e in edges) and steps == {1.0}:
        return "levels"
    return f"{len(edges) - 1} bins"


def _shrinkage(model: Any) -> float | None:
    """The learning rate of a boosted-trees model's spec, or None."""
    spec = getattr(model, "spec", None)
    if isinstance(spec, str):
        try:
            spec = parse_spec(spec)
        except BinomlabError:
            return None
    rate = getattr(spec, "learning_rate", None)
    return float(rate) if isinstance(rate, int | float) else None


def run_options(model: Any) -> dict[str, Any]:
    """The :data:`RUN_SCHEMA` columns of one model: its resolved config (``Fitted.config``,
    or a loaded model's manifest), best epoch and stop reason; None where it cannot say. For
    boosting, ``lr`` is the spec's ``learning_rate`` and ``batch_size`` None (no batches)."""
    row: dict[str, Any] = dict.fromkeys(RUN_SCHEMA)
    config = _config_of(model)
    if config is not None:
        row |= {
            "optimizer": config.optimizer,
            "lr": config.lr,
            "batch_size": config.batch_size,
            "max_epochs": config.epochs,
            "seed": config.seed,
            "weight_decay": config.weight_decay,
            "early_stopping": config.early_stopping,
            "loss": config.loss,
        }
        if config.optimizer in TREE_OPTIMIZERS:
            # boosting: the learning rate is the trees' shrinkage (the Train form's field),
            # and there are no batches (the config's batch size is the groups' count)
            row["lr"], row["batch_size"] = _shrinkage(model), None
    training = getattr(model, "manifest", None)
    training = training.get("training", {}) if isinstance(training, Mapping) else {}
    best = getattr(model, "best_epoch_", training.get("best_epoch"))
    reason = getattr(model, "stop_reason", training.get("stop_reason"))
    row["best_epoch"] = best if isinstance(best, int) and not isinstance(best, bool) else None
    row["stop_reason"] = reason if isinstance(reason, str) else None
    return row


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
        of probabilities, one per group of the evaluation data. They keep their names.

    Attributes
    ----------
    models
        ``{name: model}`` in insertion order.
    selected
        Names of the models selected for the calibration diagram (and the leaderboard's
        checkboxes), in model order.
    colours
        ``{name: colour}``: each model's colour, the same in every panel, plot and the
        report. A model gets the first of :data:`binomlab._colors.MODEL_COLORS` no other
        model holds (or its training curve's, see :meth:`reserve_colour`) and keeps it
        through renames and whatever else is selected or deleted.
    history
        Rows ``{"epoch", "train_nll", "val_nll"}`` of the current (or last) training run.
    runs
        One dict per finished training run: ``name`` (None when it failed; follows
        :meth:`rename_model`, and the run goes with :meth:`remove_model`), ``backend``,
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
        self.colours: dict[str, str] = {}
        self._reserved: list[str] = []  # the colours of training runs not yet models
        self.history: list[dict[str, Any]] = []
        self.runs: list[dict[str, Any]] = []
        self.thread: threading.Thread | None = None
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        # (eval data, models in insertion order) -> leaderboard and each row's model position
        self._board: tuple[tuple[Any, ...], pl.DataFrame, list[int]] | None = None
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

    def run_name(self, source: Any, *, data: Grouped | None = None) -> str:
        """:func:`run_name` of ``source`` (a ``Fitted`` or ``bl.fit``'s options), unique
        among the models, compared with ``data`` (default: :attr:`train`)."""
        with self._lock:
            taken = list(self.models)
        return run_name(source, taken, data=self.train if data is None else data)

    def add_model(
        self, name: str, model: Any, *, select: bool = True, colour: str | None = None
    ) -> str:
        """Add ``model`` under ``name`` (made unique) and return the name it got.

        ``colour`` is the one its training curve was drawn in (from :meth:`reserve_colour`);
        without it the model gets the first free one."""
        with self._lock:
            name = self.unique_name(str(name))
            self.models[name] = model
            if colour is not None and colour in self._reserved:
                self._reserved.remove(colour)
            self.colours[name] = colour if colour is not None else self._free_colour()
            if select:
                self.selected.append(name)
        self._notify("models")
        return name

    def _free_colour(self) -> str:
        """The first colour no model or run holds; with all of them held (more than 18), the
        first of those held least often, so that colours repeat in turn."""
        held = Counter([*self.colours.values(), *self._reserved])
        return min(MODEL_COLORS, key=lambda colour: held[colour])  # first of the least held

    def reserve_colour(self) -> str:
        """The colour a training run's curve is drawn in: the first free one, held until
        the run becomes a model (``add_model(..., colour=)``) or :meth:`release_colour` (a
        failed run's curve keeps it, so the next run's curve is told apart from it)."""
        with self._lock:
            colour = self._free_colour()
            self._reserved.append(colour)
            return colour

    def release_colour(self, colour: str) -> None:
        """Give back a colour from :meth:`reserve_colour` whose run added no model."""
        with self._lock:
            if colour in self._reserved:
                self._reserved.remove(colour)

    def colours_of(self, names: Iterable[str]) -> list[str]:
        """The colour of each named model, in the order given.

        Raises
        ------
        BinomlabError
            A name is not a model's.
        """
        with self._lock:
            return [self.colours[self._known(name)] for name in names]

    def _known(self, name: Any) -> str:
        if not isinstance(name, str) or name not in self.models:
            msg = f"No model named {name!r}. Models: {list(self.models)}"
            raise BinomlabError(msg)
        return name

    def rename_model(self, old: str, new: str) -> str:
        """Rename model ``old`` to ``new`` (surrounding spaces dropped) and return the name.

        The model keeps its place, its selection and its training run; the panels follow.

        Raises
        ------
        BinomlabError
            No model is named ``old``; ``new`` is not a string, is empty, or is the name of
            another model.
        """
        with self._lock:
            self._known(old)
            if not isinstance(new, str):
                msg = f"Expected the new name to be a string. Received: {new!r}"
                raise BinomlabError(msg)
            name = new.strip()
            if not name:
                msg = f"A model's name cannot be empty: type a name for {old!r}. Received: {new!r}"
                raise BinomlabError(msg)
            if name == old:
                return name
            if name in self.models:
                msg = (
                    f"The name {name!r} is taken by another model: pick another one, or "
                    f"delete that model first. Models: {list(self.models)}"
                )
                raise BinomlabError(msg)
            self.models = {(name if n == old else n): m for n, m in self.models.items()}
            self.colours[name] = self.colours.pop(old)
            self.selected = [name if n == old else n for n in self.selected]
            for run in self.runs:
                if run.get("name") == old:
                    run["name"] = name
        self._notify("models")
        return name

    def remove_model(self, name: str) -> None:
        """Forget a model: unselect it and drop its training run.

        Raises
        ------
        BinomlabError
            No model is named ``name``.
        """
        with self._lock:
            self._known(name)
            del self.models[name]
            del self.colours[name]  # free for the next model
            self.selected = [n for n in self.selected if n != name]
            self.runs = [run for run in self.runs if run.get("name") != name]
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
        :data:`LEVEL`, the ECE's from :data:`COMPARE_RESAMPLES` replicates with :data:`SEED`),
        then each run's options (:data:`RUN_SCHEMA`, :func:`run_options`); best NLL first; an
        empty frame of that schema with no model.

        It is computed once for the same data and models: a rename only renames its rows.
        """
        with self._lock:
            models = dict(self.models)
        if not models:
            return pl.DataFrame(schema=LEADERBOARD_SCHEMA | INTERVAL_SCHEMA | RUN_SCHEMA)
        data = self.eval_data
        key = (data, *models.values())
        names = list(models)
        with self._lock:
            cached = self._board
        if _same(cached[0] if cached else (), key):
            _, frame, order = cached
            return frame.with_columns(model=pl.Series([names[i] for i in order], dtype=pl.String))
        table = compare(models, data, level=LEVEL, resamples=COMPARE_RESAMPLES, seed=SEED)
        order = [names.index(name) for name in table["model"]]
        options = pl.DataFrame(
            [run_options(models[name]) for name in table["model"]], schema=RUN_SCHEMA
        )
        table = pl.concat([table, options], how="horizontal")
        with self._lock:
            self._board = (key, table, order)
        return table

    def best_model(self) -> str | None:
        """The name of the best model (lowest NLL on :attr:`eval_data`: the leaderboard's
        first row), or None without models or data."""
        if not self.models or (self.val is None and self.train is None):
            return None
        table = self.leaderboard()
        return None if table.is_empty() else table["model"][0]


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """The same objects, in the same order (``is``: models need not be comparable)."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))
