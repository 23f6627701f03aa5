"""The Calibration tab: reliability diagrams of the selected models (CORP with its bands, or
binned with Wilson intervals), the per-group view, and the bias by feature."""

from __future__ import annotations

import html
import math
import textwrap
from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets
import numpy as np
import polars as pl

from binomlab.bias import BIAS_SCHEMA, bias, plot_bias
from binomlab.calibration import PLOT_STRATEGIES, calibration, plot_calibration
from binomlab.errors import BinomlabError
from binomlab.grouped import Grouped
from binomlab.metrics import evaluate
from binomlab.reliability import reliability
from binomlab.roc import plot_roc, roc_curve
from binomlab.widgets._render import (
    decimals_for,
    frame_html,
    interval_text,
    legend_below,
    number_text,
    p_text,
    se_text,
    show_figure,
)
from binomlab.widgets.checklist import ModelChecklist
from binomlab.widgets.panel import Panel
from binomlab.widgets.state import BAND_RESAMPLES, LEVEL, MAX_OVERLAID, SEED, LabState

__all__ = ["BiasView", "CalibrationPanel", "RocView", "format_bias", "worst_groups"]

WORST = 10
STRATEGY_LABELS = {
    "corp": "CORP (isotonic, no bins)",
    "quantile": "quantile bins",
    "uniform": "uniform bins",
    "groups": "one point per group",
}
BAND_OPTIONS = (("consistency", "consistency"), ("confidence", "confidence"), ("none", "none"))
MIN_RESAMPLES = 100
MAX_LAB_RESAMPLES = 5_000
"""The most replicates a band may take in the Lab, which redraws on every change."""
BIAS_BINS = 10
"""Bins of a numeric feature with more distinct values (``bl.bias``'s default)."""
_EDGE = 1e-12
"""Tolerance of "the diagram leaves its band": a point on the band's edge is inside."""


def worst_groups(
    table: pl.DataFrame, features: tuple[str, ...], *, top: int = WORST
) -> pl.DataFrame:
    """The groups a model fits worst, from a ``strategy="groups"`` calibration table.

    Ranked by the absolute Pearson residual ``(k − n p) / sqrt(n p (1 − p))``; the columns
    are the features, ``trials``, ``observed`` with its interval, ``predicted`` and
    ``residual``.
    """
    n = table["trials"].to_numpy().astype(np.float64)
    k = table["successes"].to_numpy().astype(np.float64)
    p = table["mean_predicted"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        residual = (k - n * p) / np.sqrt(n * p * (1.0 - p))
    return (
        table.select(
            *features,
            "trials",
            "observed",
            "lower",
            "upper",
            predicted=pl.col("mean_predicted"),
        )
        .with_columns(residual=pl.Series(residual))
        .sort(pl.col("residual").abs(), descending=True, nulls_last=True)
        .head(top)
    )


def _selected_models(state: LabState) -> dict[str, Any]:
    return {n: state.models[n] for n in state.selected if n in state.models}


def _hide(widget: widgets.DOMWidget, hidden: bool) -> None:
    widget.layout.display = "none" if hidden else None


class CalibrationPanel(Panel):
    """Reliability diagram of the selected models: CORP with a band (the default), or bins
    with 95% Wilson intervals; and :class:`BiasView`, the bias by feature.

    Parameters
    ----------
    data
        The groups to calibrate on; ignored when ``state`` is given.
    models
        ``{name: model}`` (``Fitted``, ``Predictor`` or probabilities); all start selected.
    state
        A :class:`LabState` shared with other panels (its ``eval_data`` and ``selected``).

    Attributes
    ----------
    strategy
        ``Dropdown`` of ``bl.plot_calibration``'s strategies: ``"corp"`` (the CORP diagram,
        ``bl.reliability``: no bins), ``"quantile"``, ``"uniform"``, ``"groups"`` (one point
        per group, only grouped data allows it).
    bins
        ``IntSlider``: bins of ``"quantile"`` and ``"uniform"`` (disabled otherwise).
    band, resamples
        CORP only: the band to shade (``"consistency"``, ``"confidence"`` or ``"none"``) and
        its replicates (``IntText``, :data:`~binomlab.widgets.state.BAND_RESAMPLES` by
        default, at most :data:`MAX_LAB_RESAMPLES`).
    histogram
        ``Checkbox``: draw the trials by predicted probability under the diagram.
    limits
        ``ToggleButtons``: ``"data"`` (axes on the predictions' range, the default) or
        ``"unit"`` (0–1).
    overdispersed
        ``Checkbox``: widen each model's intervals by its estimated dispersion
        (``bl.calibration(..., overdispersed=True)``). Bin strategies only: hidden and
        disabled for CORP, and disabled (unticked, :attr:`widen_note` says why) while a
        selected model has no dispersion on these data.
    checklist, all_button, only
        The selection drawn (shared with Compare): one checkbox per model, a button that
        selects every model, and a ``Dropdown`` that selects one model alone.
    tables
        ``{name: table}`` of the selected models, as drawn: ``bl.reliability(...)`` for CORP,
        ``bl.calibration(...)`` otherwise.
    dispersions
        ``{name: φ}``: the factor each model's intervals were widened by (1: not widened);
        empty when nothing was asked to widen.
    figure, axes
        The matplotlib figure drawn (None before a model is selected or after an error);
        ``axes`` is its (first) diagram.
    arrangement
        ``ToggleButtons``: every model on one diagram (``"overlay"``) or one diagram per
        model (``"small"``, small multiples, three to a row). Until the user picks one, it
        follows the number of models selected: overlay up to
        :data:`~binomlab.widgets.state.MAX_OVERLAID`, one per model beyond.
    grid
        The diagrams drawn, one per model with ``"small"`` (else the one :attr:`axes`).
    group_table
        With ``strategy="groups"``: :func:`worst_groups` of each selected model, stacked with
        a ``model`` column; otherwise None.
    bias
        The :class:`BiasView` under the diagram.
    roc
        The :class:`RocView` under it: the ROC curves of the selected models.
    last_error
        The exception of the last failed redraw (also shown), or None.
    """

    def __init__(
        self,
        data: Grouped | None = None,
        *,
        models: Mapping[str, Any] | None = None,
        state: LabState | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(state if state is not None else LabState(data, models=models), **kwargs)
        self.tables: dict[str, pl.DataFrame] = {}
        self.dispersions: dict[str, float] = {}
        self.figure: Any = None
        self.axes: Any = None
        self.group_table: pl.DataFrame | None = None
        self.grid: list[Any] = []
        self._syncing = False
        self._arranged = False  # True once the user has picked overlay or one per model
        self._corp_cache: dict[tuple[Any, ...], tuple[Any, pl.DataFrame]] = {}
        order = sorted(PLOT_STRATEGIES, key=lambda s: s != "corp")
        self.strategy = widgets.Dropdown(
            options=[(STRATEGY_LABELS.get(s, s), s) for s in order],
            value="corp",
            description="strategy",
        )
        self.bins = widgets.IntSlider(
            value=10, min=2, max=50, description="bins", continuous_update=False
        )
        self.band = widgets.Dropdown(options=BAND_OPTIONS, value="consistency", description="band")
        self.resamples = widgets.IntText(value=BAND_RESAMPLES, description="resamples")
        self.histogram = widgets.Checkbox(value=True, description="trial histogram", indent=False)
        self.limits = widgets.ToggleButtons(
            options=[("predictions' range", "data"), ("0–1", "unit")],
            value="data",
            description="axes",
        )
        self.overdispersed = widgets.Checkbox(
            value=False, description="widen intervals for overdispersion", indent=False
        )
        self.widen_note = widgets.HTML()
        self.arrangement = widgets.ToggleButtons(
            options=[("overlay", "overlay"), ("one per model", "small")],
            value="overlay",
            description="models",
            tooltips=["every model on one diagram", "a diagram per model (small multiples)"],
        )
        self.checklist = ModelChecklist(self.state, title="models")
        self.all_button = widgets.Button(description="all models")
        self.only = widgets.Dropdown(
            options=[("—", "")], value="", description="only", layout={"width": "250px"}
        )
        self.plot = widgets.Output(layout=widgets.Layout(min_width="0", max_width="100%"))
        self.message = widgets.HTML()
        self.groups_view = widgets.HTML()
        self.bias = BiasView(state=self.state)
        self.roc = RocView(state=self.state)
        for control in (
            self.strategy,
            self.bins,
            self.band,
            self.resamples,
            self.histogram,
            self.limits,
            self.overdispersed,
            self.arrangement,
        ):
            control.observe(self._on_control, names="value")
        self.all_button.on_click(lambda _button: self.state.select(list(self.state.models)))
        self.only.observe(self._on_only, names="value")
        self.state.subscribe(self._on_state)
        self._sync_only()
        wrap = widgets.Layout(flex_flow="row wrap", align_items="center")
        self.children = (
            widgets.HBox([self.strategy, self.bins, self.band, self.resamples], layout=wrap),
            widgets.HBox(
                [self.histogram, self.limits, self.overdispersed, self.widen_note], layout=wrap
            ),
            self.arrangement,
            widgets.HBox(
                [
                    self.plot,
                    widgets.VBox(
                        [self.checklist, self.all_button, self.only],
                        layout=widgets.Layout(flex="1 1 260px", min_width="0"),
                    ),
                ],
                layout=wrap,
            ),
            self.error,
            self.message,
            self.groups_view,
            self.bias,
            self.roc,
        )
        self.redraw()

    def _on_state(self, _event: str) -> None:
        self.checklist.sync()
        self._sync_only()
        self.redraw()

    def _on_control(self, change: Any) -> None:
        if not self._syncing:
            if change["owner"] is self.arrangement:
                self._arranged = True  # the user's choice, kept from now on
            self.redraw()

    def _arrange(self, count: int) -> None:
        """Until the user picks an arrangement: overlay up to :data:`MAX_OVERLAID` models,
        one diagram each beyond (so many curves and bands do not hide each other)."""
        if self._arranged:
            return
        wanted = "small" if count > MAX_OVERLAID else "overlay"
        if self.arrangement.value != wanted:
            self._syncing = True
            try:
                self.arrangement.value = wanted
            finally:
                self._syncing = False

    def _on_only(self, change: Any) -> None:
        if not self._syncing and change["new"]:
            self.state.select([change["new"]])

    def _sync_only(self) -> None:
        """The ``only`` dropdown: every model, showing the one selected when only one is."""
        self._syncing = True
        try:
            names = list(self.state.models)
            options = [("—", ""), *((n, n) for n in names)]
            if list(self.only.options) != options:
                self.only.options = options
            selected = self.state.selected
            self.only.value = selected[0] if len(selected) == 1 else ""
        finally:
            self._syncing = False

    def _sync_controls(self, blocked: dict[str, str]) -> None:
        """Enable and show what applies to the strategy; ``blocked``: ``{model: why}`` for
        the selected models that cannot be widened."""
        strategy = self.strategy.value
        corp = strategy == "corp"
        self._syncing = True
        try:
            self.bins.disabled = strategy in ("groups", "corp")
            for control in (self.band, self.resamples):
                _hide(control, not corp)
                control.disabled = not corp
            self.resamples.disabled = not corp or self.band.value == "none"
            _hide(self.overdispersed, corp)
            self.overdispersed.disabled = corp or bool(blocked)
            if blocked and not corp:
                self.overdispersed.value = False
                name, why = next(iter(blocked.items()))
                self.widen_note.value = (
                    f'<span style="font-size:12px">widening not available: {html.escape(name)} has '
                    f"no dispersion on these data ({html.escape(why)}). Deselect it to widen."
                    "</span>"
                )
            else:
                self.widen_note.value = ""
        finally:
            self._syncing = False

    def _widen_blocked(self, models: dict[str, Any]) -> dict[str, str]:
        """``{model: df_note}`` of the models whose dispersion is not defined here."""
        if self.strategy.value == "corp":
            return {}
        data = self.state.eval_data
        blocked = {}
        for name, model in models.items():
            metrics = evaluate(data, model)
            if not math.isfinite(metrics["dispersion"]):
                blocked[name] = str(metrics["df_note"])
        return blocked

    def _resamples(self) -> int:
        value = self.resamples.value
        if not MIN_RESAMPLES <= value <= MAX_LAB_RESAMPLES:
            msg = (
                f"Expected resamples to be an integer in [{MIN_RESAMPLES}, "
                f"{MAX_LAB_RESAMPLES:,}] in the Lab: a band costs that many isotonic fits over "
                "the distinct predictions at every redraw. For more, call "
                "bl.plot_calibration(data, models, strategy='corp', resamples=N) in a cell. "
                f"Received: resamples={value!r}"
            )
            raise BinomlabError(msg)
        return int(value)

    def _reliability(self, name: str, model: Any, band: str | None, resamples: int) -> pl.DataFrame:
        """``bl.reliability`` of a model, kept while the model and the settings are the same."""
        key = (name, id(model), band, resamples)
        cached = self._corp_cache.get(key)
        if cached is not None and cached[0] is model:
            return cached[1]
        table = reliability(
            self.state.eval_data, model, bands=band, level=LEVEL, resamples=resamples, seed=SEED
        )
        self._corp_cache[key] = (model, table)
        return table

    def _fail(self, err: BaseException) -> None:
        """Show ``err`` and nothing else: no figure or table of other settings stays up."""
        self.tables, self.dispersions, self.group_table = {}, {}, None
        self.figure, self.axes = None, None
        self.plot.outputs = ()
        self.message.value = ""
        self.groups_view.value = ""
        self._show_error(err)

    def redraw(self) -> None:
        """Recompute the tables and the figure for the selected models."""
        models = _selected_models(self.state)
        live = {id(m) for m in self.state.models.values()}
        self._corp_cache = {k: v for k, v in self._corp_cache.items() if k[1] in live}
        try:
            blocked = self._widen_blocked(models)
        except Exception as err:
            self._sync_controls({})
            self._fail(err)
            return
        self._sync_controls(blocked)
        if not models:
            self.tables, self.dispersions, self.figure, self.axes = {}, {}, None, None
            self.group_table = None
            self.plot.outputs = ()
            self.groups_view.value = ""
            self._clear_error()
            self.message.value = "Select one or more models to draw their reliability diagram."
            return
        from matplotlib.figure import Figure  # on the first diagram, not when the Lab opens

        strategy, bins = self.strategy.value, int(self.bins.value)
        band = None if self.band.value == "none" else self.band.value
        widen = strategy != "corp" and self.overdispersed.value and not self.overdispersed.disabled
        try:
            data = self.state.eval_data
            if strategy == "corp":
                resamples = self._resamples() if band else BAND_RESAMPLES
                tables = {n: self._reliability(n, m, band, resamples) for n, m in models.items()}
                options: dict[str, Any] = {
                    "strategy": "corp", "band": band, "resamples": resamples, "seed": SEED
                }  # fmt: skip
            else:
                # only passed when asked for, so the panel also runs against a core without it
                extra = {"overdispersed": True} if widen else {}
                tables = {
                    n: calibration(data, m, bins, strategy=strategy, level=LEVEL, **extra)
                    for n, m in models.items()
                }
                options = {"strategy": strategy, "bins": bins, **extra}
            dispersions = {n: float(t["dispersion"][0]) for n, t in tables.items()} if widen else {}
            title = self._title(strategy, bins, band, dispersions)
            self._arrange(len(models))
            colours = self.state.colours_of(models)  # each model's own, in every view
            drawing = {"level": LEVEL, "histogram": self.histogram.value,
                       "limits": self.limits.value, **options}  # fmt: skip
            if self.arrangement.value == "small" and len(models) > 1:
                figure, grid = self._small_multiples(data, models, tables, drawing, colours)
                figure.suptitle(title)
                axes = grid[0]
            else:
                figure = Figure(figsize=(5.5, 5.5), layout="constrained")
                axes = figure.subplots()
                plot_calibration(data, models, tables=tables, ax=axes, colors=colours, **drawing)
                axes.set_title(title)
                legend_below(figure, axes)
                grid = [axes]
            self.grid = grid
            show_figure(self.plot, figure)
        except Exception as err:
            self._fail(err)
            return
        self._clear_error()
        self.tables, self.dispersions, self.figure, self.axes = tables, dispersions, figure, axes
        if strategy == "corp":
            self.message.value = self._corp_message(data, band, resamples)
        else:
            self.message.value = self._bins_message(data, strategy)
        if strategy == "groups":
            self.group_table = pl.concat(
                [
                    worst_groups(t, data.features).select(pl.lit(n).alias("model"), pl.all())
                    for n, t in tables.items()
                ]
            )
            self.groups_view.value = (
                f"<b>Per group</b>: the {WORST} groups each model fits worst (largest Pearson "
                "residual; |residual| > 2 is unusual for a calibrated model)"
                + frame_html(self.group_table, css_class="binomlab-groups", digits=4)
            )
        else:
            self.group_table = None
            self.groups_view.value = ""

    @staticmethod
    def _small_multiples(
        data: Grouped,
        models: dict[str, Any],
        tables: dict[str, pl.DataFrame],
        drawing: dict[str, Any],
        colours: list[str],
    ) -> tuple[Any, list[Any]]:
        """A diagram per model, three to a row, each titled with the model's name (wrapped)
        and drawn in the model's own colour, as in the overlay; no legend in the cells."""
        from matplotlib.figure import Figure

        columns = min(3, len(models))
        rows = math.ceil(len(models) / columns)
        figure = Figure(figsize=(4.4 * columns, 4.6 * rows + 0.4), layout="constrained")
        cells = list(figure.subplots(rows, columns, squeeze=False).ravel())
        for i, ((name, model), ax) in enumerate(zip(models.items(), cells, strict=False)):
            plot_calibration(data, {name: model}, tables={name: tables[name]}, ax=ax,
                             colors=[colours[i]], legend=False, **drawing)  # fmt: skip
            ax.set_title(textwrap.fill(name, 40), fontsize="medium", color=colours[i])
        for ax in cells[len(models) :]:
            ax.set_visible(False)
        return figure, cells[: len(models)]

    @staticmethod
    def _title(strategy: str, bins: int, band: str | None, dispersions: dict[str, float]) -> str:
        if strategy == "corp":
            return "reliability, CORP" + (f", {LEVEL:.0%} {band} band" if band else "")
        widened = any(phi > 1.0 for phi in dispersions.values())
        return (
            f"reliability, {strategy}"
            + ("" if strategy == "groups" else f", {bins} bins")
            + f", {LEVEL:.0%} Wilson intervals"
            + (", widened for overdispersion" if widened else "")
        )

    def _view_note(self) -> str:
        parts = []
        if self.histogram.value:
            parts.append(
                "The bars at the bottom (right axis): the trials by predicted probability."
            )
        if self.limits.value == "data":
            parts.append(
                "The axes span the predictions and the observed rates; 0–1 shows the whole square."
            )
        return " ".join(parts)

    def _corp_message(self, data: Grouped, band: str | None, resamples: int) -> str:
        text = (
            f"{data.trials:,} trials; x: the model's prediction, y: the CORP estimate of the "
            "observed rate at it (the isotonic regression of the outcomes on the predictions: "
            "no bins to choose). A diagram on the diagonal is calibrated. "
        )
        if band == "consistency":
            text += (
                f"Shaded: the {LEVEL:.0%} simultaneous consistency band ({resamples:,} "
                f"resamples, seed {SEED}): where the diagram of a calibrated model would lie by "
                "chance; a diagram that leaves it anywhere is evidence of miscalibration at the "
                f"{1 - LEVEL:.0%} level. "
            )
        elif band == "confidence":
            text += (
                f"Shaded: the {LEVEL:.0%} simultaneous confidence band ({resamples:,} resamples "
                f"of each group's trials, seed {SEED}): how uncertain the estimated diagram is. "
            )
        else:
            text += "No band: choose one to see how far the diagram may move by chance. "
        if band:
            text += (
                "A band costs resamples × distinct predictions isotonic fits; more resamples "
                "steady its edges (bl.reliability takes 1,000). "
            )
        text += self._view_note()
        if band == "consistency":
            text += (
                "<ul style='margin:4px 0'>"
                + "".join(
                    f"<li>{_consistency_verdict(name, table)}</li>"
                    for name, table in self.tables.items()
                )
                + "</ul>"
            )
        return text

    def _bins_message(self, data: Grouped, strategy: str) -> str:
        what = "the group's prediction" if strategy == "groups" else "mean prediction of the bin"
        text = (
            f"{data.trials:,} trials; x: {what}, y: observed rate with its {LEVEL:.0%} Wilson "
            "interval. Points on the diagonal are calibrated. " + self._view_note()
        )
        if self.dispersions:
            text += (
                " Widened by each model's dispersion φ = max(1, Pearson χ² / df): "
                + "; ".join(
                    f"{html.escape(name)} φ = {phi:.3g} (intervals about ×{math.sqrt(phi):.2f})"
                    if phi > 1.0
                    else f"{html.escape(name)} φ = 1 (dispersion ≤ 1: not widened)"
                    for name, phi in self.dispersions.items()
                )
                + "."
            )
        return text


def _consistency_verdict(name: str, table: pl.DataFrame) -> str:
    """Whether a model's CORP diagram leaves its consistency band, from the table drawn."""
    name = html.escape(name)
    curve = table["recalibrated"].to_numpy()
    lower = table["consistency_lower"].to_numpy()
    upper = table["consistency_upper"].to_numpy()
    outside = (curve < lower - _EDGE) | (curve > upper + _EDGE)
    if not outside.any():
        return (
            f"{name}: inside the band everywhere: no evidence of miscalibration at the "
            f"{1 - LEVEL:.0%} level"
        )
    trials = table["trials"].to_numpy()
    share = trials[outside].sum() / trials.sum()
    return (
        f"{name}: leaves the band at {int(outside.sum()):,} of {outside.size:,} distinct "
        f"predictions ({share:.1%} of the trials): evidence of miscalibration"
    )


def format_bias(table: pl.DataFrame) -> pl.DataFrame:
    """``bl.bias``'s frame as shown: ``model``, ``level``, ``trials``, ``observed``,
    ``predicted``, ``bias [95% CI]``, ``SE`` and ``p``, as text (the decimals of the
    smallest standard error)."""
    decimals = decimals_for(table["bias_stderr"].to_list())
    rows = [
        {
            "model": r["model"],
            "level": "<null>" if r["level"] is None else r["level"],
            "trials": r["trials"],
            "observed": number_text(r["observed"], decimals),
            "predicted": number_text(r["predicted"], decimals),
            f"bias [{LEVEL:.0%} CI]": interval_text(
                r["bias_mean"], r["lower"], r["upper"], decimals
            ),
            "SE": se_text(r["bias_stderr"], decimals),
            "p": p_text(r["p_value"]),
        }
        for r in table.iter_rows(named=True)
    ]
    schema = {
        "model": pl.String,
        "level": pl.String,
        "trials": pl.Int64,
        "observed": pl.String,
        "predicted": pl.String,
        f"bias [{LEVEL:.0%} CI]": pl.String,
        "SE": pl.String,
        "p": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


class BiasView(Panel):
    """The bias of the selected models per level of one feature: ``bl.plot_bias`` and
    ``bl.bias``'s table.

    Parameters
    ----------
    data, models, state
        As :class:`CalibrationPanel` (the Calibration tab shares its state).

    Attributes
    ----------
    feature
        ``Dropdown`` of the data's features.
    table
        ``bl.bias(data, selected models, feature)`` at the Lab's level, as drawn.
    figure, axes
        The matplotlib figure of ``bl.plot_bias`` (None without a model or after an error).
    view
        ``HTML``: the caption and :func:`format_bias` of :attr:`table`.
    last_error
        The exception of the last failed redraw (also shown), or None.
    """

    def __init__(
        self,
        data: Grouped | None = None,
        *,
        models: Mapping[str, Any] | None = None,
        state: LabState | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(state if state is not None else LabState(data, models=models), **kwargs)
        self.table = pl.DataFrame(schema=BIAS_SCHEMA)
        self.figure: Any = None
        self.axes: Any = None
        data = self.state.val if self.state.val is not None else self.state.train
        features = list(data.features) if data is not None else []
        self.feature = widgets.Dropdown(
            options=features, value=features[0] if features else None, description="feature"
        )
        self.plot = widgets.Output()
        self.view = widgets.HTML()
        self.view.add_class("binomlab-bias")
        self.feature.observe(lambda _change: self.redraw(), names="value")
        self.state.subscribe(lambda _event: self.redraw())
        self.children = (
            widgets.HTML("<b>Bias by feature</b>"),
            self.feature,
            self.plot,
            self.error,
            self.view,
        )
        self.redraw()

    def _fail(self, err: BaseException) -> None:
        self.table = pl.DataFrame(schema=BIAS_SCHEMA)
        self.figure, self.axes = None, None
        self.plot.outputs = ()
        self.view.value = ""
        self._show_error(err)

    def redraw(self) -> None:
        """Recompute the table and the figure for the selected models and the feature."""
        models = _selected_models(self.state)
        if not models:
            self.table = pl.DataFrame(schema=BIAS_SCHEMA)
            self.figure, self.axes = None, None
            self.plot.outputs = ()
            self._clear_error()
            self.view.value = "Select one or more models to see their bias by feature."
            return
        from matplotlib.figure import Figure

        feature = self.feature.value
        try:
            data = self.state.eval_data
            if feature is None:
                msg = "The bias by feature needs a feature: these data have none."
                raise BinomlabError(msg)
            table = bias(data, models, feature, level=LEVEL, bins=BIAS_BINS)
            levels = table.filter(pl.col("model") == table["model"][0]).height
            figure = Figure(figsize=(max(5.0, 0.6 * levels + 2.0), 4.0), layout="constrained")
            axes = figure.subplots()
            plot_bias(data, models, feature, level=LEVEL, bins=BIAS_BINS, ax=axes,
                      colors=self.state.colours_of(models))  # fmt: skip
            axes.set_title(f"bias by {feature}, {LEVEL:.0%} t intervals")
            legend_below(figure, axes)
            show_figure(self.plot, figure)
        except Exception as err:
            self._fail(err)
            return
        self._clear_error()
        self.table, self.figure, self.axes = table, figure, axes
        self.view.value = (
            '<div style="font-size:12px;max-width:60em">Bias: the mean prediction minus the '
            "observed rate over the level's trials (positive: the model predicts too high), "
            f"with its {LEVEL:.0%} t interval and the two-sided p-value of no bias, as on the "
            f"expanded rows. A numeric feature with more than {BIAS_BINS} values is cut into "
            f"{BIAS_BINS} bins of about equal trials. Over many levels, expect about "
            f"{1 - LEVEL:.0%} of them below p = {1 - LEVEL:.2f} by chance.</div>"
            + frame_html(format_bias(table), css_class="binomlab-bias-table")
        )


class RocView(Panel):
    """The ROC curves of the selected models, each labelled with its AUC and DeLong's 95%
    interval: ``bl.plot_roc`` on the evaluation data.

    Attributes
    ----------
    tables
        ``{name: bl.roc_curve(data, model)}`` of the selected models, as drawn.
    figure, axes
        The matplotlib figure (None without a model or after an error).
    last_error
        The exception of the last failed redraw (also shown), or None.
    """

    def __init__(
        self,
        data: Grouped | None = None,
        *,
        models: Mapping[str, Any] | None = None,
        state: LabState | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(state if state is not None else LabState(data, models=models), **kwargs)
        self.tables: dict[str, pl.DataFrame] = {}
        self.figure: Any = None
        self.axes: Any = None
        self.plot = widgets.Output()
        self.view = widgets.HTML()
        self.state.subscribe(lambda _event: self.redraw())
        self.children = (widgets.HTML("<b>ROC curves</b>"), self.plot, self.error, self.view)
        self.redraw()

    def redraw(self) -> None:
        """Recompute the curves and the figure for the selected models."""
        models = _selected_models(self.state)
        self.tables, self.figure, self.axes = {}, None, None
        self.plot.outputs = ()
        if not models:
            self._clear_error()
            self.view.value = "Select one or more models to see their ROC curves."
            return
        from matplotlib.figure import Figure

        try:
            data = self.state.eval_data
            tables = {name: roc_curve(data, model) for name, model in models.items()}
            figure = Figure(figsize=(5.0, 5.0), layout="constrained")
            axes = figure.subplots()
            plot_roc(data, models, ax=axes, colors=self.state.colours_of(models))
            axes.set_title("ROC, AUC with DeLong's 95% interval")
            legend_below(figure, axes)
            show_figure(self.plot, figure)
        except Exception as err:
            self._show_error(err)
            self.view.value = ""
            return
        self._clear_error()
        self.tables, self.figure, self.axes = tables, figure, axes
        self.view.value = (
            '<div style="font-size:12px;max-width:60em">Each curve runs through every distinct '
            "prediction, from the highest: the share of successes (true positive rate) and "
            "of failures (false positive rate) among the trials above it, exactly as on the "
            "expanded rows. The AUC ranks the models by discrimination "
            "only; the CORP diagram above shows their calibration.</div>"
        )
