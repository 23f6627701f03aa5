"""The Train tab: pick a backend, a model, its training options and the features (and how each
is encoded); train in the background, every run's NLL curve overlaid on one plot."""

from __future__ import annotations

import html
import math
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import polars as pl

from binomlab import backends
from binomlab.backends.protocol import (
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    DETERMINISTIC,
    TREE_OPTIMIZERS,
    TrainConfig,
    default_optimizer,
    takes_codes,
)
from binomlab.binning import BinEdges, bin_labels
from binomlab.errors import AliasedColumnsWarning, BinomlabError, ConvergenceWarning
from binomlab.grouped import Grouped
from binomlab.grouping import from_counts
from binomlab.specs import ACTIVATIONS, GBDT, MLP, Logistic, ModelSpec, parse_spec
from binomlab.training import Fitted, fit, resolve
from binomlab.widgets.curves import CurveRun, curve_axes, curves_html, nll_text, plural
from binomlab.widgets.panel import Panel
from binomlab.widgets.state import LabState

__all__ = [
    "ENCODINGS",
    "TrainPanel",
    "category_edges",
    "encoding_choices",
    "feature_kind",
    "quantile_edges",
    "regroup",
]

REDRAW_SECONDS = 0.25  # the curve is redrawn at most this often (and after the last epoch)
STOP_TEXT = {"callback": "Stop pressed (or a callback)", "interrupted": "interrupted"}
"""How the status line words a ``stop_reason`` that is not self-explanatory."""
FINISHED = ("completed", "converged", "early_stopping", "max_iter", "stalled")
PHI_LABELS = {"scalar": "one φ for all groups", "network": "φ per group (network)"}
"""The φ model dropdown's label of each of :data:`~binomlab.backends.protocol.PHI_MODELS`."""
MODEL_LABELS = {"logistic": "logistic regression", "mlp": "MLP", "gbdt": "boosted trees"}
"""The model dropdown's label of each spec kind a backend can list."""
FIELDS = {
    "hidden": "hidden layers",
    "dropout": "dropout",
    "embed": "embeddings",
    "trees": "trees",
    "leaves": "leaves",
    "epochs": "epochs",
    "lr": "learning rate",
    "batch_size": "batch size",
    "weight_decay": "weight decay",
    "early_stopping": "patience",
    "seed": "seed",
    "features": "features",
}
"""The inputs checked one by one, and their names in messages."""
OPTIONS = "options"
"""The key of :meth:`TrainPanel.problems` for a combination of choices that cannot train."""
DEFAULT_PATIENCE = 5
DEFAULT_BINS = 10
MAX_CATEGORY_VALUES = 1000
"""An integer feature read as a category gets a level per integer of its range, at most this
many (a wider one is refused: bin it)."""
ENCODINGS = {
    "number": "number (standardised)",
    "category": "category (a level per value)",
    "bins": "quantile bins",
    "binned": "bins (as grouped)",
    "levels": "category (its levels)",
    "unsupported": "cannot be encoded",
}
"""The encoding dropdowns' values and labels."""
_CHOICES = {
    "binned": ("binned",),
    "levels": ("levels",),
    "integer": ("number", "category", "bins"),
    "float": ("number", "bins"),
    "unsupported": ("unsupported",),
}


def loss_choices(engine: Any) -> list[str]:
    """The loss dropdown's values: the losses the backend trains."""
    return list(getattr(engine, "losses", ("binomial",)))


def phi_choices(engine: Any) -> list[tuple[str, str]]:
    """``(label, value)`` pairs for the φ model dropdown: how the backend can learn the
    beta-binomial's φ."""
    return [(PHI_LABELS.get(m, m), m) for m in getattr(engine, "phi_models", ("scalar",))]


def model_choices(engine: Any) -> list[tuple[str, str]]:
    """``(label, kind)`` pairs for the model dropdown: the spec kinds the backend builds."""
    return [(MODEL_LABELS.get(kind, kind), kind) for kind in engine.specs]


def optimizer_choices(engine: Any, spec: ModelSpec, loss: str, phi: str) -> list[str]:
    """The backend's optimizers that can train ``spec`` with ``loss`` and ``phi``, as the
    core judges it (:meth:`TrainConfig.resolve`): ``"newton"`` only for the logistic spec with
    the binomial loss."""
    usable = []
    for optimizer in engine.optimizers:
        try:
            TrainConfig(optimizer=optimizer, loss=loss, phi=phi).resolve(engine, spec, 1)
        except BinomlabError:
            continue
        usable.append(optimizer)
    return usable


def _reissue(caught: Sequence[warnings.WarningMessage]) -> None:
    """Show the warnings a run recorded, as they would have been shown."""
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)


def _warnings_text(caught: Sequence[warnings.WarningMessage]) -> str:
    """binomlab's warnings of a run (convergence, separation, aliased columns), for the
    status line: a number with them is not the plain result it looks like."""
    ours = [w for w in caught if issubclass(w.category, ConvergenceWarning | AliasedColumnsWarning)]
    seen: dict[str, str] = {}
    for w in ours:
        seen.setdefault(str(w.message), w.category.__name__)
    return "".join(
        f'<div class="binomlab-warning">⚠ <b>{html.escape(category)}</b>: '
        f"{html.escape(message)}</div>"
        for message, category in seen.items()
    )


# -- features and their encoding ---------------------------------------------------------------


def feature_kind(data: Grouped, name: str) -> str:
    """How binomlab's encoder can read feature ``name`` of ``data``: ``"binned"`` (bins made by
    ``bl.group(..., bins=)``), ``"levels"`` (string, categorical, enum, bool), ``"integer"``
    or ``"float"`` (numbers, standardised unless regrouped) or ``"unsupported"`` (dates...)."""
    if name in data.bins:
        return "binned"
    dtype = data.frame.schema[name]
    if dtype in (pl.Boolean, pl.String) or isinstance(dtype, pl.Enum | pl.Categorical):
        return "levels"
    if dtype.is_integer():
        return "integer"
    if dtype.is_numeric():
        return "float"
    return "unsupported"


def encoding_choices(kind: str) -> list[tuple[str, str]]:
    """``(label, value)`` pairs of the encodings a feature of ``kind`` can take; the first is
    what ``bl.fit`` does with it as it is."""
    return [(ENCODINGS[value], value) for value in _CHOICES[kind]]


def category_edges(name: str, parts: Sequence[Grouped]) -> BinEdges:
    """Bin edges that give integer feature ``name`` one bin per integer, ``[v, v + 1)``, over
    the range it takes in ``parts`` (train and val), and one empty bin above: a value the
    training data never had is then an unseen level, not merged into a neighbour.

    Raises
    ------
    BinomlabError
        The feature is null in every group, or spans more than :data:`MAX_CATEGORY_VALUES`
        integers.
    """
    lows = [p.frame[name].min() for p in parts]
    highs = [p.frame[name].max() for p in parts]
    lows, highs = [v for v in lows if v is not None], [v for v in highs if v is not None]
    if not lows:
        msg = f"{name!r} is null in every group: there are no values to make levels of."
        raise BinomlabError(msg)
    lo, hi = int(min(lows)), int(max(highs))
    span = hi - lo + 1
    if span > MAX_CATEGORY_VALUES:
        msg = (
            f"{name!r} takes integers from {lo:,} to {hi:,} ({span:,} values): too many for "
            f"a level each (at most {MAX_CATEGORY_VALUES:,}). Choose quantile bins instead."
        )
        raise BinomlabError(msg)
    return tuple(float(v) for v in range(lo, hi + 3))


def quantile_edges(data: Grouped, name: str, count: int) -> BinEdges:
    """The edges ``bl.group(rows, ..., bins={name: count})`` computes on the raw rows of
    ``data``: the trial-weighted quantiles ``j / count`` (linear interpolation, as Polars on
    the expanded rows), duplicates merged, with open outer ends.

    Raises
    ------
    BinomlabError
        ``count`` is not a whole number >= 2, the feature has no finite value, or fewer
        distinct values than ``count`` (each bin would not get one: use the category).
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 2:
        msg = (
            f"Expected a number of bins >= 2 for {name!r} (one bin is a constant: untick the "
            f"feature instead). Received: {count!r}"
        )
        raise BinomlabError(msg)
    value = pl.col(name).cast(pl.Float64)
    present = (
        data.frame.select(value, "n")
        .filter(value.is_not_null() & value.is_not_nan())
        .group_by(name)
        .agg(pl.col("n").sum())
        .sort(name)
    )
    if present.height == 0:
        msg = f"{name!r} has no number in any group: there is nothing to bin."
        raise BinomlabError(msg)
    if count > present.height:
        msg = (
            f"{name!r} has {present.height:,} distinct values, fewer than the {count:,} bins "
            "asked for. Ask for at most that many, or encode it as a category."
        )
        raise BinomlabError(msg)
    values, cumulative = present[name].to_numpy(), np.cumsum(present["n"].to_numpy())
    last = int(cumulative[-1]) - 1  # the 0-based index of the last raw row

    def at(row: int) -> float:  # the row-th smallest raw value
        return float(values[np.searchsorted(cumulative, row, side="right")])

    inner = set()
    for j in range(1, count):
        position = j / count * last
        below = math.floor(position)
        a, b = at(below), at(min(below + 1, last))
        inner.add(a + (position - below) * (b - a))
    return (-math.inf, *sorted(inner), math.inf)


def regroup(data: Grouped, edges: Mapping[str, BinEdges]) -> Grouped:
    """A new Grouped with the features of ``edges`` binned with them (groups that fall in the
    same bins merged); ``data``'s own bins are kept. ``data`` itself is not changed.

    Raises
    ------
    BinomlabError
        As :func:`binomlab.from_counts` (NaN, or a value outside the edges).
    """
    binned = from_counts(data.frame, data.features, bins=dict(edges))
    return Grouped(binned.frame, data.features, bins={**data.bins, **binned.bins})


def _field_error_html(message: str) -> str:
    return (
        '<span class="binomlab-field-error" style="color:var(--jp-error-color1,#d32f2f);'
        f'font-size:12px;white-space:pre-wrap">{html.escape(message)}</span>'
    )


class TrainPanel(Panel):
    """Train a model with ``bl.fit`` in a background thread, with progress, curves and Stop.

    Parameters
    ----------
    train, val
        Training and validation groups; ignored when ``state`` is given.
    state
        A :class:`LabState` shared with other panels; trained models are added to it.
    backend_names
        The backends offered; defaults to those installed
        (``bl.backends.available(check=True)``).

    Attributes
    ----------
    backend, model, hidden, activation, dropout, embed, loss, phi, optimizer, epochs, lr, batch_size
        The input widgets. ``model`` offers the specs the backend builds, ``loss`` the losses
        it trains, ``phi`` how it can learn the beta-binomial's φ (one for all groups, or per
        group from the network; enabled for the beta-binomial loss), ``optimizer`` those of
        its optimizers that apply to the model, loss and φ model. ``hidden``, ``activation``,
        ``dropout`` and ``embed`` (``MLP(embed=...)``: empty, ``auto`` or a size; enabled
        where the backend takes codes) are the MLP's (disabled for logistic regression).
        ``epochs`` is the number of epochs for Adam/AdamW and the maximum number of iterations
        for Newton and L-BFGS
        (which stop earlier once converged); ``lr`` and ``batch_size`` are disabled for the
        full-batch optimisers.
    weight_decay, early_stopping, patience, seed
        ``weight_decay`` is the L2 penalty (0: maximum likelihood; disabled for boosting, whose
        L2 is the spec's); ``early_stopping`` (a checkbox) stops Adam/AdamW or boosting after
        ``patience`` epochs without improvement (disabled for Newton and L-BFGS, which run to
        the optimum). The numbers are not clamped: a value
        ``bl.fit`` would refuse is shown as an error beside its field (see :meth:`problems`).
    feature_boxes, feature_labels, encodings, bin_counts
        ``{feature: widget}``: the checkbox that keeps a feature of ``state.train`` in the
        model (``bl.fit(..., features=)``), its dtype and number of values, the dropdown of
        how it is encoded (a string, bool or binned feature has its levels; an integer one is
        a standardised number, a category with a level per value, or quantile bins; a float
        one a number or bins) and the number of quantile bins. An encoding other than
        ``bl.fit``'s own trains on regrouped copies of train and val (see
        :meth:`training_data`; the Grouped objects passed in are never changed), and
        :attr:`encoding_note` says so.
    field_errors
        ``{field: HTML}``, the error beside each field of :data:`FIELDS` (empty when valid).
    train_button, stop_button
        Train starts a run; it is disabled, and a click refused with the message, while a run
        is going or an input is invalid. Stop ends a run after the current optimizer step
        (adam/adamw) or iteration, keeping the best finished epoch's weights.
    progress
        ``IntProgress`` whose ``max`` is the budget: epochs × optimizer steps per epoch for
        adam/adamw (the bar moves inside an epoch and the status line counts the batches),
        iterations for newton/lbfgs.
    curve_view
        ``HTML``: every run's train (solid) and validation (dashed) NLL per trial overlaid, the
        best epoch of each marked, the x-axis fitted to the longest run shown, and a caption
        naming each run and its best epoch. Redrawn in place at most every
        :data:`REDRAW_SECONDS`.
    run_toggles
        ``{run name: Checkbox}``: untick a run to hide its curves.
    curve, curves, best_epochs, curve_limits
        The curve data: the per-epoch rows of the current run, those of every run by name, each
        run's best epoch, and the plot's axis limits.
    last_model, last_name
        The last model trained and its name in the state's models.
    last_error
        The exception of the last failed run or refused click (also shown in the panel), or
        None; a valid input clears it.
    callbacks
        Extra ``bl.fit`` callbacks added to every run, ``callback(epoch, metrics) -> continue?``.
    batch_callbacks
        Extra ``bl.fit`` batch callbacks added to every adam/adamw run,
        ``callback(epoch, batch, batches) -> continue?``.
    """

    def __init__(
        self,
        train: Grouped | None = None,
        val: Grouped | None = None,
        *,
        state: LabState | None = None,
        backend_names: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(state if state is not None else LabState(train, val), **kwargs)
        names = list(backend_names) if backend_names is not None else backends.available(check=True)
        default = (
            "lightning"
            if "lightning" in names
            else ([n for n in names if n != "reference"] or names)[0]
        )
        self._engines: dict[str, Any] = {}
        self.last_model: Fitted | None = None
        self.last_name: str | None = None
        self.callbacks: list[Callable[[int, Mapping[str, float]], bool | None]] = []
        self.batch_callbacks: list[Callable[[int, int, int], bool | None]] = []
        self._stop = threading.Event()
        self._drawn = 0.0
        self._steps = 1  # optimizer steps (boosting rounds) per epoch of the run in progress
        self._step_word = "batch"  # what the status line calls a step: "boosting round" for trees
        self._batch_drawn = 0.0  # when the bar last moved inside an epoch
        self._training_text = ""
        self._mode = ""
        self._updating = False
        self._problems: dict[str, str] = {}
        self._runs: list[CurveRun] = []
        self._toggles: dict[int, widgets.Checkbox] = {}
        self._current: CurveRun | None = None
        self._lock = threading.RLock()
        # ((train, val, rules), (new train, new val, edges)) of the last regrouping, reused
        # while the state's data and the rules are the same
        self._regrouped: tuple[Any, tuple[Grouped, Grouped | None, dict[str, BinEdges]]] | None = (
            None
        )

        style = {"description_width": "110px"}
        wide = widgets.Layout(width="300px")
        self.backend = widgets.Dropdown(
            options=names, value=default, description="backend", style=style, layout=wide
        )
        self.model = widgets.Dropdown(
            options=[(label, kind) for kind, label in MODEL_LABELS.items()],
            value="logistic",
            description="model",
            style=style,
            layout=wide,
        )
        self.hidden = widgets.Text(
            value="64,32",
            description="hidden layers",
            placeholder="e.g. 64,32",
            style=style,
            layout=wide,
            disabled=True,
        )
        self.activation = widgets.Dropdown(
            options=list(ACTIVATIONS),
            value="relu",
            description="activation",
            style=style,
            layout=wide,
            disabled=True,
        )
        # unbounded: a Bounded*Text would clamp a bad value silently; problems() reports it
        self.dropout = widgets.FloatText(
            value=0.0, step=0.05, description="dropout", style=style, layout=wide, disabled=True
        )
        self.embed = widgets.Text(
            value="",
            placeholder="none, auto or a size",
            description="embeddings",
            style=style,
            layout=wide,
            disabled=True,
            tooltip="Learned embeddings of the features with levels (MLP on a backend that "
            "takes codes): empty for none, auto for fastai's size rule, or a size such as 8",
        )
        self.trees = widgets.IntText(
            value=GBDT().trees,
            description="trees",
            style=style,
            layout=wide,
            disabled=True,
            tooltip="Boosted trees: the most trees (boosting rounds); the best epoch's are kept",
        )
        self.leaves = widgets.IntText(
            value=GBDT().leaves,
            description="leaves",
            style=style,
            layout=wide,
            disabled=True,
            tooltip="Boosted trees: the most leaves per tree",
        )
        self.optimizer = widgets.Dropdown(
            options=["auto"], value="auto", description="optimizer", style=style, layout=wide
        )
        self.loss = widgets.Dropdown(
            options=["binomial"], value="binomial", description="loss", style=style, layout=wide
        )
        self.phi = widgets.Dropdown(
            options=[(PHI_LABELS["scalar"], "scalar")],
            value="scalar",
            description="φ model",
            style=style,
            layout=wide,
            disabled=True,
            tooltip="How the beta-binomial learns its concentration φ (ρ = 1/(1 + φ))",
        )
        self.epochs = widgets.IntText(
            value=DEFAULT_EPOCHS["adam"], description="epochs", style=style, layout=wide
        )
        self.lr = widgets.FloatText(
            value=0.01, step=0.001, description="learning rate", style=style, layout=wide
        )
        self.batch_size = widgets.IntText(
            value=1024, description="batch size", style=style, layout=wide
        )
        self.weight_decay = widgets.FloatText(
            value=0.0, step=1e-4, description="weight decay", style=style, layout=wide
        )
        self.early_stopping = widgets.Checkbox(
            value=False,
            description="early stopping",
            tooltip="adam/adamw and boosting: stop when the validation NLL has not improved "
            "for 'patience' epochs (the training objective without validation data)",
            style=style,
            layout=wide,
        )
        self.patience = widgets.IntText(
            value=DEFAULT_PATIENCE, description="patience", style=style, layout=wide
        )
        self.seed = widgets.IntText(value=0, description="seed", style=style, layout=wide)
        self.field_errors = {name: widgets.HTML("") for name in FIELDS}
        self._build_features()
        self.encoding_note = widgets.HTML("")
        self.train_button = widgets.Button(
            description="Train", button_style="primary", icon="play", tooltip="Train the model"
        )
        self.stop_button = widgets.Button(
            description="Stop",
            button_style="warning",
            icon="stop",
            disabled=True,
            tooltip="Stop now and keep the best finished epoch's weights",
        )
        self.progress = widgets.IntProgress(
            value=0,
            min=0,
            max=DEFAULT_EPOCHS["adam"],
            description="epoch 0",
            style=style,
            layout=widgets.Layout(width="100%", max_width="540px"),
        )
        self.status = widgets.HTML("Choose a backend and a model, then press <b>Train</b>.")
        self.curve_view = widgets.HTML(curves_html([]))
        self._toggle_title = widgets.HTML(
            "<b>runs shown</b>", layout=widgets.Layout(margin="0 12px 0 0")
        )
        self.run_toggle_box = widgets.HBox(
            layout=widgets.Layout(flex_flow="row wrap", align_items="center", display="none")
        )
        self.train_button.add_class("binomlab-train")
        self.stop_button.add_class("binomlab-stop")
        self.progress.add_class("binomlab-progress")
        self.status.add_class("binomlab-status")
        self.run_toggle_box.add_class("binomlab-run-toggles")

        choices = (self.backend, self.model, self.loss, self.phi, self.optimizer, self.activation)
        features = (*self.feature_boxes.values(), *self.encodings.values())
        inputs = (*self._inputs().values(), *self.bin_counts.values())
        for widget in (*choices, self.early_stopping, *features, *inputs):
            widget.observe(self._on_change, names="value")
        self.train_button.on_click(self._on_train)
        self.stop_button.on_click(self._on_stop)
        self.state.subscribe(self._on_models)
        self._on_change(None)
        self.children = (self._layout(), self.error)

    def _build_features(self) -> None:
        """A row per feature of the training data: keep it?, its dtype, its encoding."""
        self.feature_boxes: dict[str, widgets.Checkbox] = {}
        self.encodings: dict[str, widgets.Dropdown] = {}
        self.bin_counts: dict[str, widgets.IntText] = {}
        self.feature_labels: dict[str, widgets.HTML] = {}
        self._kinds: dict[str, str] = {}
        self._feature_rows: list[widgets.HBox] = []
        train = self.state.train
        if not isinstance(train, Grouped):
            return
        cardinalities = train.cardinalities()
        for name in train.features:
            kind = self._kinds[name] = feature_kind(train, name)
            dtype = str(train.frame.schema[name].base_type())
            count = (
                plural(len(train.bins[name]) - 1, "bin")
                if kind == "binned"
                else plural(cardinalities[name], "value")
            )
            box = widgets.Checkbox(
                value=True,
                description=name,
                indent=False,
                tooltip=f"Train on {name}",
                layout=widgets.Layout(width="150px"),
            )
            options = encoding_choices(kind)
            encoding = widgets.Dropdown(
                options=options,
                value=options[0][1],
                disabled=len(options) == 1,
                layout=widgets.Layout(width="220px"),
            )
            bins = widgets.IntText(
                value=DEFAULT_BINS,
                disabled=True,
                tooltip="number of quantile bins",
                layout=widgets.Layout(width="64px"),
            )
            label = widgets.HTML(
                f'<span style="color:var(--jp-ui-font-color2,#666);font-size:12px">'
                f"{html.escape(dtype)} · {count}</span>",
                layout=widgets.Layout(width="130px"),
            )
            box.add_class("binomlab-feature")
            encoding.add_class("binomlab-encoding")
            self.feature_boxes[name], self.encodings[name] = box, encoding
            self.bin_counts[name], self.feature_labels[name] = bins, label
            row = [box, label, encoding] + ([bins] if "bins" in _CHOICES[kind] else [])
            self._feature_rows.append(
                widgets.HBox(row, layout=widgets.Layout(align_items="center"))
            )

    def _layout(self) -> widgets.VBox:
        """The form (each number with its error beside it) left of the run's view; the
        features under both."""
        fields = {n: widgets.HBox([w, self.field_errors[n]]) for n, w in self._inputs().items()}
        form = widgets.VBox(
            layout=widgets.Layout(flex="0 0 auto"),  # the fields keep their width
            children=[
                self.backend,
                self.model,
                fields["hidden"],
                self.activation,
                fields["dropout"],
                fields["embed"],
                fields["trees"],
                fields["leaves"],
                self.loss,
                self.phi,
                self.optimizer,
                fields["epochs"],
                fields["lr"],
                fields["batch_size"],
                fields["weight_decay"],
                self.early_stopping,
                fields["early_stopping"],
                fields["seed"],
            ],
        )
        buttons = widgets.HBox([self.train_button, self.stop_button])
        run = widgets.VBox(
            [buttons, self.progress, self.status, self.curve_view, self.run_toggle_box],
            layout=widgets.Layout(flex="1 1 360px", min_width="0"),
        )
        # the run's view goes under the form when the panel is too narrow for both
        row = widgets.HBox([form, run], layout=widgets.Layout(flex_flow="row wrap"))
        parts: list[widgets.Widget] = [row]
        if self._feature_rows:
            title = widgets.HTML(
                "<b>Features</b>: tick those to train on and choose how each is encoded"
            )
            features = widgets.VBox(
                [title, *self._feature_rows, self.field_errors["features"], self.encoding_note]
            )
            features.add_class("binomlab-train-features")
            parts.append(features)
        return widgets.VBox(parts)

    # -- state -------------------------------------------------------------------------------

    @property
    def curve(self) -> list[dict[str, Any]]:
        """The per-epoch rows of the current (or last) run."""
        return self.state.history

    @property
    def curves(self) -> dict[str, list[dict[str, Any]]]:
        """The per-epoch rows ``{"epoch", "train_nll", "val_nll"}`` of every run on the plot,
        by run name (shown or hidden), in the order they were trained."""
        with self._lock:
            return {run.name: [dict(r) for r in run.rows] for run in self._runs}

    @property
    def best_epochs(self) -> dict[str, int | None]:
        """Each run's marked epoch: ``fitted.best_epoch_`` once it ended, the best so far while
        it runs (None before its first epoch)."""
        with self._lock:
            runs = list(self._runs)
        return {run.name: (None if (b := run.best()) is None else b["epoch"]) for run in runs}

    @property
    def curve_runs(self) -> list[CurveRun]:
        """The runs on the plot (:class:`~binomlab.widgets.curves.CurveRun`), in order."""
        with self._lock:
            return list(self._runs)

    @property
    def curve_limits(self) -> dict[str, tuple[float, float]] | None:
        """``{"x": (lo, hi), "y": (lo, hi)}`` of the plot (the x-axis ends a little past the
        longest run shown), or None while nothing is drawn."""
        axes = curve_axes(self.curve_runs)
        return None if axes is None else {"x": axes.x, "y": axes.y}

    @property
    def run_toggles(self) -> dict[str, widgets.Checkbox]:
        """``{run name: Checkbox}``; unticking one hides that run's curves."""
        with self._lock:
            return {run.name: self._toggles[id(run)] for run in self._runs}

    @property
    def running(self) -> bool:
        """True while a training thread runs."""
        return self.state.training

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the training thread ends (or ``timeout`` seconds); True if it ended."""
        thread = self.state.thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _engine(self, name: str) -> Any:
        if name not in self._engines:
            self._engines[name] = backends.get(name)
        return self._engines[name]

    def _inputs(self) -> dict[str, widgets.ValueWidget]:
        """The widgets of :data:`FIELDS` that hold one value, by field."""
        return {
            "hidden": self.hidden,
            "dropout": self.dropout,
            "embed": self.embed,
            "trees": self.trees,
            "leaves": self.leaves,
            "epochs": self.epochs,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "weight_decay": self.weight_decay,
            "early_stopping": self.patience,
            "seed": self.seed,
        }

    def _kind_spec(self) -> ModelSpec:
        """A spec of the chosen kind (whatever the hidden layers say)."""
        kinds = {"logistic": Logistic, "gbdt": GBDT}
        return kinds.get(self.model.value, MLP)()

    def _loss_phi(self) -> tuple[str, str]:
        """The loss and φ model chosen (φ is "scalar" unless the loss is the beta-binomial)."""
        loss = self.loss.value
        return loss, self.phi.value if loss == "beta-binomial" else "scalar"

    def effective_optimizer(self) -> str:
        """The optimizer ``bl.fit`` will use with the current choices."""
        engine = self._engine(self.backend.value)
        if self.optimizer.value != "auto":
            return self.optimizer.value
        return default_optimizer(engine, self._kind_spec(), self._loss_phi()[0])

    def _checked_spec(self) -> tuple[ModelSpec, dict[str, str]]:
        """The spec of the current choices and ``{field: message}`` of what is wrong in it
        (then a spec with the defaults in place of the bad values)."""
        if self.model.value == "logistic":
            return Logistic(), {}
        if self.model.value == "gbdt":
            return self._checked_gbdt()
        found: dict[str, str] = {}
        text = self.hidden.value.replace(" ", "")
        try:
            if not text:  # "mlp:" alone would be the default spec, not what was typed
                msg = "Expected hidden layer widths, e.g. 64,32. Received: an empty field"
                raise BinomlabError(msg)
            hidden = parse_spec(f"mlp:{text}").hidden
        except BinomlabError as err:
            found["hidden"], hidden = str(err), MLP().hidden
        spec = MLP(hidden=hidden, activation=self.activation.value)
        try:
            spec = MLP(hidden=hidden, activation=self.activation.value, dropout=self.dropout.value)
        except (BinomlabError, TypeError, ValueError) as err:
            found["dropout"] = str(err)
        embed, problem = self._embed_value()
        if problem:
            found["embed"] = problem
        elif embed is not None:
            spec = MLP(hidden=spec.hidden, activation=spec.activation, dropout=spec.dropout,
                       embed=embed)  # fmt: skip
        return spec, found

    def _checked_gbdt(self) -> tuple[GBDT, dict[str, str]]:
        """The boosted-trees spec of the fields (the learning rate is the spec's) and what
        is wrong in them, each under its field."""
        found: dict[str, str] = {}
        values: dict[str, Any] = {}
        for name, key, widget in (
            ("trees", "trees", self.trees),
            ("leaves", "leaves", self.leaves),
            ("lr", "learning_rate", self.lr),
        ):
            try:
                GBDT(**{key: widget.value})
            except (BinomlabError, TypeError, ValueError) as err:
                found[name] = str(err)
            else:
                values[key] = widget.value
        return GBDT(**values), found

    def _embed_value(self) -> tuple[int | str | None, str | None]:
        """``MLP(embed=...)`` from the embeddings field (None when disabled or empty) and
        what is wrong with it, if anything."""
        text = self.embed.value.strip().lower()
        if self.embed.disabled or text in ("", "none"):
            return None, None
        if text == "auto":
            return "auto", None
        if text.isdigit() and int(text) >= 1:
            return int(text), None
        return None, (
            "Expected embeddings to be empty (none), auto (fastai's size rule) or a size "
            f"such as 8. Received: {self.embed.value!r}"
        )

    def spec(self) -> ModelSpec:
        """The model spec of the current choices (with the MLP's activation and dropout).

        Raises
        ------
        BinomlabError
            The hidden layers are not a list of positive widths, or the dropout is not in
            ``[0, 1)``.
        """
        spec, found = self._checked_spec()
        if found:
            raise BinomlabError(next(iter(found.values())))
        return spec

    def chosen_features(self) -> list[str]:
        """The ticked features, in the training data's order."""
        return [name for name, box in self.feature_boxes.items() if box.value]

    def _rules(self) -> dict[str, tuple[str, Any]]:
        """``{feature: ("category", None) | ("bins", count)}`` of the ticked features whose
        encoding needs regrouped data."""
        rules: dict[str, tuple[str, Any]] = {}
        for name in self.chosen_features():
            encoding = self.encodings[name].value
            if encoding == "category" and self._kinds[name] == "integer":
                rules[name] = ("category", None)
            elif encoding == "bins":
                rules[name] = ("bins", self.bin_counts[name].value)
        return rules

    def training_data(self) -> tuple[Grouped | None, Grouped | None]:
        """The train and val groups the next run trains on: the state's own, or, when an
        encoding needs it, new Grouped objects with those features binned (a category: one bin
        per integer; quantile bins: edges from the training trials). Those models read the raw
        feature values at predict time (``bl.fit`` keeps the edges), so they are compared
        and calibrated on the state's data like any other.

        Raises
        ------
        BinomlabError
            An encoding that cannot be made (see :func:`category_edges`,
            :func:`quantile_edges`, :func:`regroup`).
        """
        train, val = self.state.train, self.state.val
        rules = self._rules()
        if not rules or not isinstance(train, Grouped):
            return train, val
        key = tuple(sorted(rules.items()))
        with self._lock:
            cached = self._regrouped
            if cached is not None:
                (old_train, old_val, old_key), (new_train, new_val, _) = cached
                if old_train is train and old_val is val and old_key == key:
                    return new_train, new_val
        parts = [train] if val is None else [train, val]
        edges = {
            name: category_edges(name, parts)
            if rule == "category"
            else quantile_edges(train, name, count)
            for name, (rule, count) in rules.items()
        }
        new_train = regroup(train, edges)
        new_val = None if val is None else regroup(val, edges)
        with self._lock:
            self._regrouped = ((train, val, key), (new_train, new_val, edges))
        return new_train, new_val

    def _choices(self) -> dict[str, Any]:
        """The ``bl.fit`` options the dropdowns give (the binomial loss left at its default)."""
        options: dict[str, Any] = {
            "backend": self.backend.value,
            "optimizer": None if self.optimizer.value == "auto" else self.optimizer.value,
        }
        loss, phi = self._loss_phi()
        if loss != "binomial":
            options["loss"] = loss
            if phi != "scalar":
                options["phi"] = phi
        return options

    def _numbers(self) -> dict[str, Any]:
        """The ``bl.fit`` options the number fields give: lr, batch size and early stopping
        only for the mini-batch optimizers, weight decay when it is not 0."""
        numbers = {"epochs": self.epochs.value, "seed": self.seed.value}
        if self.effective_optimizer() in TREE_OPTIMIZERS:  # the learning rate is the spec's
            if self.early_stopping.value:
                numbers["early_stopping"] = self.patience.value
            return numbers
        if self.effective_optimizer() not in DETERMINISTIC:
            numbers["lr"] = self.lr.value
            numbers["batch_size"] = self.batch_size.value
            if self.early_stopping.value:
                numbers["early_stopping"] = self.patience.value
        if self.weight_decay.value != 0:
            numbers["weight_decay"] = self.weight_decay.value
        return numbers

    def fit_options(self) -> dict[str, Any]:
        """The keyword arguments of ``bl.fit`` for the current choices (without callbacks):
        ``features`` when not all are ticked, ``val`` regrouped where an encoding needs it
        (:meth:`training_data` gives the train groups that go with it).

        Raises
        ------
        BinomlabError
            The hidden layers or the dropout are invalid, or an encoding cannot be made.
        """
        train, val = self.training_data()
        options = {"model": self.spec(), "val": val, **self._choices(), **self._numbers()}
        chosen = self.chosen_features()
        if isinstance(train, Grouped) and chosen != list(train.features):
            options["features"] = chosen
        return options

    def _feature_problem(self) -> str | None:
        """What is wrong with the features chosen and their encodings, or None."""
        if not self.feature_boxes:
            return None
        chosen = self.chosen_features()
        if not chosen:
            return "Tick at least one feature to train on."
        schema = self.state.train.frame.schema
        for name in chosen:
            if self._kinds[name] == "unsupported":
                return (
                    f"{name!r} ({schema[name]}) cannot be encoded: untick it, or cast it to a "
                    "string (levels) or a number before grouping."
                )
        try:
            self.training_data()
        except BinomlabError as err:
            return str(err)
        return None

    def problems(self) -> dict[str, str]:
        """What ``bl.fit`` would refuse in the current inputs, ``{field: message}``.

        The spec's fields (hidden layers, dropout) are checked by the spec, the features and
        their encodings by making the data they need, and each other field of :data:`FIELDS`
        on its own by the core's :func:`binomlab.training.resolve`, then all of them together;
        a combination of choices that cannot train is under :data:`OPTIONS`. Empty when the
        inputs are valid (or when there is no training data to check them against).
        """
        train = self.state.train
        if not isinstance(train, Grouped):
            return {}
        spec, found = self._checked_spec()
        feature_problem = self._feature_problem()
        if feature_problem is not None:
            found["features"] = feature_problem
        else:
            train = self.training_data()[0]
        choices = {"model": spec, **self._choices()}
        base = self._refusal(train, choices)
        if base is not None:
            return {**found, OPTIONS: base}
        numbers = self._numbers()
        for name, value in numbers.items():
            message = self._refusal(train, {**choices, name: value})
            if message is not None:
                found[name] = message
        if not found:
            message = self._refusal(train, {**choices, **numbers})
            if message is not None:
                found[OPTIONS] = message
        return found

    def _refusal(self, train: Grouped, options: dict[str, Any]) -> str | None:
        """The message ``resolve(train, **options)`` raises, or None."""
        try:
            resolve(train, **{**options, "backend": self._engine(options["backend"])})
        except (BinomlabError, TypeError) as err:
            return str(err)
        return None

    def _problem_error(self) -> BinomlabError:
        """The current problems as one error, each message after its field's name."""
        lines = [
            message if name == OPTIONS else f"{FIELDS[name]}: {message}"
            for name, message in self._problems.items()
        ]
        return BinomlabError("\n".join(lines))

    # -- events ------------------------------------------------------------------------------

    def _on_change(self, change: Any) -> None:
        """Any input changed: offer what the backend can train, then check the inputs."""
        if self._updating:
            return
        self._updating = True
        try:
            engine = self._engine(self.backend.value)
            self._offer(engine)
            self._on_options()
        except Exception as err:  # a plugin that fails to build: show it, keep the panel
            self._problems = {OPTIONS: f"{type(err).__name__}: {err}"}
            self._show_error(err)
        else:
            self._check(user=change is not None)
            self._describe_encoding()
        finally:
            self._updating = False
            self.train_button.disabled = self.running or bool(self._problems)

    def _offer(self, engine: Any) -> None:
        """Offer the specs, losses and optimizers ``engine`` can train together."""
        self._set_options(self.model, model_choices(engine))
        self._set_options(self.loss, loss_choices(engine))
        self._set_options(self.phi, phi_choices(engine))
        self.phi.disabled = self.loss.value != "beta-binomial" or len(self.phi.options) == 1
        usable = optimizer_choices(engine, self._kind_spec(), *self._loss_phi())
        self._set_options(self.optimizer, ["auto", *usable])

    @staticmethod
    def _set_options(dropdown: widgets.Dropdown, options: list[Any]) -> None:
        """New options, keeping the value where it is still offered (else the first)."""
        if list(dropdown.options) != options:
            keep = dropdown.value
            dropdown.options = options
            values = [o[1] if isinstance(o, tuple) else o for o in options]
            dropdown.value = keep if keep in values else values[0]

    def _on_options(self) -> None:
        """Enable what applies to the current choices, disable the rest."""
        mlp = self.model.value == "mlp"
        for widget in (self.hidden, self.activation, self.dropout):
            widget.disabled = not mlp
        engine = self._engine(self.backend.value)
        self.embed.disabled = not (mlp and takes_codes(engine, "mlp"))
        trees = self.model.value == "gbdt"
        self.trees.disabled = self.leaves.disabled = not trees
        mode = self.effective_optimizer()
        full_batch = mode in DETERMINISTIC
        self.lr.disabled = full_batch
        self.batch_size.disabled = full_batch or mode in TREE_OPTIMIZERS
        # boosting takes no weight decay (the trees' L2 is the spec's): bl.fit never sees it
        self.weight_decay.disabled = mode in TREE_OPTIMIZERS
        self.early_stopping.disabled = full_batch
        self.patience.disabled = full_batch or not self.early_stopping.value
        self.epochs.description = "max iterations" if full_batch else "epochs"
        self.lr.tooltip = "the trees' shrinkage (bl.GBDT(learning_rate=...))" if trees else ""
        if mode != self._mode:
            self.epochs.value = DEFAULT_EPOCHS[mode]
            if mode in TREE_OPTIMIZERS:
                self.lr.value = GBDT().learning_rate
            elif self._mode in TREE_OPTIMIZERS:  # back from the trees' shrinkage
                self.lr.value = DEFAULT_LR.get(mode, DEFAULT_LR["adam"])
        self._mode = mode
        for name, box in self.feature_boxes.items():
            encoding = self.encodings[name]
            encoding.disabled = not box.value or len(encoding.options) == 1
            self.bin_counts[name].disabled = not box.value or encoding.value != "bins"

    def _check(self, *, user: bool) -> None:
        """Show :meth:`problems` beside the fields; a user's valid input clears the error
        box, an invalid one replaces what it shows."""
        self._problems = self.problems()
        for name, view in self.field_errors.items():
            message = self._problems.get(name)
            view.value = "" if message is None else _field_error_html(message)
        first = next(iter(self._problems.values()), None)
        self.train_button.tooltip = "Train the model" if first is None else first
        if user and not self._problems:
            self._clear_error()
        elif user and self.last_error is not None:
            self._show_error(self._problem_error())

    def _describe_encoding(self) -> None:
        """Say how the ticked features will be read, and whether the data is regrouped."""
        if not self.feature_boxes or "features" in self._problems:
            self.encoding_note.value = ""
            return
        lines = []
        numbers = [n for n in self.chosen_features() if self.encodings[n].value == "number"]
        if numbers:
            shown = ", ".join(f"<b>{html.escape(n)}</b>" for n in numbers)
            lines.append(
                f"Read as numbers (standardised, one input each): {shown}. "
                "Choose <i>category</i> for a level per value, or bins."
            )
        rules = self._rules()
        if rules:
            train, val = self.training_data()
            edges = self._regrouped[1][2] if self._regrouped is not None else {}
            for name, (rule, count) in rules.items():
                labels = bin_labels(edges[name])
                if rule == "category":
                    lo, hi = int(edges[name][0]), int(edges[name][-3])
                    lines.append(
                        f"<b>{html.escape(name)}</b> as a category: a level per integer from "
                        f"{lo:,} to {hi:,}, labelled as bins ({html.escape(labels[0])} is "
                        f"{lo:,})."
                    )
                else:
                    shown = ", ".join(labels if len(labels) <= 8 else [*labels[:7], "…"])
                    lines.append(
                        f"<b>{html.escape(name)}</b> in {plural(len(labels), 'quantile bin')} "
                        f"of the training trials (asked: {count:,}): {html.escape(shown)}."
                    )
            counts = [("train", self.state.train, train), ("val", self.state.val, val)]
            parts = " and ".join(
                f"{part} ({len(before):,} → {plural(len(after), 'group')})"
                for part, before, after in counts
                if before is not None and after is not None
            )
            lines.append(
                f"Runs train on regrouped copies of {parts}; the Grouped objects you passed are "
                "unchanged, and the models bin the raw values themselves when they predict."
            )
        self.encoding_note.value = "".join(
            f'<div style="font-size:12px">{line}</div>' for line in lines
        )

    def _on_train(self, _button: Any) -> None:
        if self.running:
            return
        self._clear_error()
        try:
            if self.state.train is None:
                msg = "The Train panel needs training data: TrainPanel(train, val)."
                raise BinomlabError(msg)
            self._check(user=False)
            if self._problems:  # the button is disabled; a click from code is refused too
                raise self._problem_error()
            options = self.fit_options()
            train = self.training_data()[0]
            # named by what distinguishes it: spec, backend, the options off their defaults
            base = self.state.run_name({**options, "bins": train.bins})
        except Exception as err:
            self.status.value = ""  # the last run's line would read as this click's outcome
            self._show_error(err)
            return
        self._stop.clear()
        unit = "iteration" if self.effective_optimizer() in DETERMINISTIC else "epoch"
        with self._lock:
            run = CurveRun(
                name=self._curve_name(self.state.unique_name(base)),
                colour=self.state.reserve_colour(),  # the model's colour when it is added
                unit=unit,
                loss=options.get("loss", "binomial"),
            )
            self._runs.append(run)
            self._current = run
            self.state.history = run.rows
        self._sync_toggles()
        # mini-batch runs move the bar by optimizer steps, boosting by rounds (the longest
        # block of an epoch), full-batch ones by iterations
        self._step_word = "batch"
        if "batch_size" in options:
            self._steps = -(-len(train) // options["batch_size"])
        elif isinstance(options["model"], GBDT):
            self._steps = -(-options["model"].trees // options["epochs"])
            self._step_word = "boosting round"
        else:
            self._steps = 1
        self.progress.max = options["epochs"] * self._steps
        self.progress.value = 0
        self.progress.description = f"{unit} 0"
        self.progress.bar_style = "info"
        self._redraw()
        self._training_text = f"Training {options['model']} on {options['backend']}"
        self.status.value = html.escape(f"{self._training_text}…")
        self.train_button.disabled = True
        self.stop_button.disabled = False
        self._drawn = self._batch_drawn = 0.0
        thread = threading.Thread(
            target=self._run, args=(train, options, run, base), name="binomlab-train", daemon=True
        )
        self.state.thread = thread
        thread.start()

    def _on_stop(self, _button: Any) -> None:
        if self.running:
            self._stop.set()
            self.status.value = "Stopping…"

    # -- the curves --------------------------------------------------------------------------

    def _curve_name(self, base: str) -> str:
        """``base``, or ``base #2``... when a run on the plot has that name."""
        taken = {run.name for run in self._runs}
        name, i = base, 1
        while name in taken:
            i += 1
            name = f"{base} #{i}"
        return name

    def _sync_toggles(self) -> None:
        """A checkbox per run, named as the run, ticked when it is shown."""
        with self._lock:
            runs = list(self._runs)
            for run in runs:
                box = self._toggles.get(id(run))
                if box is None:
                    box = widgets.Checkbox(
                        value=run.visible,
                        description=run.name,
                        indent=False,
                        layout=widgets.Layout(width="auto", margin="0 14px 0 0"),
                    )
                    box.observe(self._on_toggle, names="value")
                    self._toggles[id(run)] = box
                box.description = run.name
            alive = {id(run) for run in runs}
            self._toggles = {key: box for key, box in self._toggles.items() if key in alive}
            boxes = [self._toggles[id(run)] for run in runs]
        self.run_toggle_box.children = (self._toggle_title, *boxes) if boxes else ()
        self.run_toggle_box.layout.display = "flex" if boxes else "none"

    def _on_toggle(self, change: Any) -> None:
        with self._lock:
            for run in self._runs:
                if self._toggles.get(id(run)) is change["owner"]:
                    run.visible = bool(change["new"])
        self._redraw()

    def _on_models(self, event: str) -> None:
        """The state's models changed: a run's curve follows its model's name, and goes with
        the model when it is removed."""
        if event != "models":
            return
        names = {id(model): name for name, model in dict(self.state.models).items()}
        changed = False
        with self._lock:
            kept = []
            for run in self._runs:
                if run.model is not None:
                    name = names.get(id(run.model))
                    if name is None:
                        changed = True
                        continue
                    if name != run.name:
                        run.name, changed = name, True
                kept.append(run)
            self._runs = kept
        if changed:
            self._sync_toggles()
            self._redraw()

    def _redraw(self) -> None:
        with self._lock:
            self.curve_view.value = curves_html(list(self._runs))

    # -- the training thread -----------------------------------------------------------------

    def _on_epoch(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        self.state.history.append(
            {
                "epoch": int(epoch),
                "train_nll": metrics["train_nll"],
                "val_nll": metrics.get("val_nll"),
            }
        )
        now = time.monotonic()
        if now - self._drawn >= REDRAW_SECONDS or epoch * self._steps >= self.progress.max:
            self._drawn = now
            self._draw(epoch)
        return not self._stop.is_set()

    def _on_batch(self, epoch: int, batch: int, batches: int) -> bool:
        """Progress inside an epoch (adam/adamw batches, boosting rounds), at most every
        :data:`REDRAW_SECONDS`: the bar moves by the steps done and the status line counts
        them; Stop stops here."""
        now = time.monotonic()
        if now - self._batch_drawn >= REDRAW_SECONDS:
            self._batch_drawn = now
            done = len(self.state.history)  # the epochs finished
            self.progress.value = min(done * batches + batch, self.progress.max)
            self.status.value = html.escape(
                f"{self._training_text}: epoch {epoch}, {self._step_word} {batch:,} of {batches:,}"
            )
        return not self._stop.is_set()

    def _draw(self, epoch: int) -> None:
        unit = self._current.unit if self._current is not None else "epoch"
        self.progress.value = min(epoch * self._steps, self.progress.max)
        self.progress.description = f"{unit} {epoch}"
        self._redraw()

    def _run(self, train: Grouped, options: dict[str, Any], curve: CurveRun, name: str) -> None:
        run: dict[str, Any] = {
            "name": None,
            "backend": options["backend"],
            "spec": str(options["model"]),
            "epochs": 0,
            "best_epoch": None,
            "stop_reason": None,
            "seconds": None,
            "error": None,
        }
        caught: list[warnings.WarningMessage] = []
        try:
            on_batch = [self._on_batch, *self.batch_callbacks] if self._steps > 1 else []
            with warnings.catch_warnings(record=True) as caught:
                fitted = fit(
                    train,
                    callbacks=[self._on_epoch, *self.callbacks],
                    batch_callbacks=on_batch,
                    **options,
                )
            _reissue(caught)  # still on stderr, as bl.fit gives them
            if fitted.epochs_ == 0:  # stopped inside its first epoch: no epoch to keep
                self._drop_unfinished(curve, name)
                unfinished = "stopped before its first epoch ended: no model added"
                run.update(
                    stop_reason=fitted.stop_reason, seconds=fitted.seconds_, error=unfinished
                )
                return
            with self._lock:
                curve.best_epoch = fitted.best_epoch_
                curve.outcome = fitted.stop_reason
                curve.model = fitted  # from here the curve follows the model's name
            self._draw(fitted.epochs_)
            self.last_model = fitted
            # the leaderboard and the other panels update before the bar says "done"
            self.last_name = run["name"] = self.state.add_model(name, fitted, colour=curve.colour)
        except BaseException as err:
            run["error"] = f"{type(err).__name__}: {err}"
            with self._lock:
                curve.outcome = "failed"
                if curve.model is None:
                    curve.name = self._curve_name(f"{name} (failed)")
            self._sync_toggles()
            if self.state.history:
                self._draw(self.state.history[-1]["epoch"])
            else:
                self._redraw()
            self.progress.bar_style = "danger"
            self.status.value = html.escape(f"Training {name} failed.")
            self._show_error(err)
        else:
            run.update(
                epochs=fitted.epochs_,
                best_epoch=fitted.best_epoch_,
                stop_reason=fitted.stop_reason,
                seconds=fitted.seconds_,
            )
            self.status.value = self._done_text(fitted) + _warnings_text(caught)
            if fitted.stop_reason in FINISHED:
                self.progress.value = self.progress.max
                self.progress.bar_style = "success"
            else:
                self.progress.bar_style = "warning"
        finally:
            self.state.runs.append(run)
            self.train_button.disabled = bool(self._problems)
            self.stop_button.disabled = True

    def _drop_unfinished(self, curve: CurveRun, name: str) -> None:
        """A run stopped before its first epoch ended has no epoch to keep: it is not added
        as a model (its weights are partway through an epoch), and its curve goes."""
        with self._lock:
            self._runs = [r for r in self._runs if r is not curve]
        self.state.release_colour(curve.colour)
        self._sync_toggles()
        self._redraw()
        self.progress.value = 0
        self.progress.bar_style = "warning"
        self.status.value = html.escape(
            f"{name}: stopped before its first epoch ended, so no model was added. "
            "Train again and stop after an epoch to keep one."
        )

    def _done_text(self, fitted: Fitted) -> str:
        """The status line of a finished run: epochs, why it stopped, the epoch kept."""
        kept = fitted.kept_epoch()  # the epoch whose weights the model has
        unit = "iteration" if fitted.config.deterministic else "epoch"
        has_val = kept is not None and kept["val_nll"] is not None
        loss = "" if fitted.loss == "binomial" else f" ({fitted.loss})"
        nll = (
            f", {unit} {kept['epoch']} kept: val NLL{loss} {nll_text(kept['val_nll'])}"
            if has_val
            else ""
        )
        if fitted.phi_ is not None:  # the beta-binomial's concentration and ρ = 1/(1 + φ)
            nll += f", φ = {fitted.phi_:.4g} (ρ = {1 / (1 + fitted.phi_):.4f})"
        elif fitted.phi_model == "network":  # ρ varies by group: its range on the data
            rho = 1 / (1 + fitted.predict_phi(self.state.train))
            nll += f", ρ from {rho.min():.4f} to {rho.max():.4f}"
        return (
            f"<b>{html.escape(str(self.last_name))}</b>: {plural(fitted.epochs_, unit)}, "
            f"stopped: {STOP_TEXT.get(fitted.stop_reason, fitted.stop_reason)}{nll} "
            f"({fitted.seconds_:.1f} s)."
        )
