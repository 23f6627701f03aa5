"""The Calibration tab: reliability diagram of the selected models, and the per-group view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets
import numpy as np
import polars as pl

from binomlab.calibration import STRATEGIES, calibration, plot_calibration
from binomlab.grouped import Grouped
from binomlab.widgets._render import frame_html, show_figure
from binomlab.widgets.checklist import ModelChecklist
from binomlab.widgets.panel import Panel
from binomlab.widgets.state import LabState

__all__ = ["CalibrationPanel", "worst_groups"]

WORST = 10


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


class CalibrationPanel(Panel):
    """Reliability diagram (95% Wilson intervals) of the selected models, with bins/strategy.

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
    bins, strategy
        ``IntSlider`` and ``Dropdown`` (``"quantile"``, ``"uniform"``, ``"groups"``: one point
        per group, only grouped data allows it).
    overdispersed
        ``Checkbox``: widen each model's intervals by its estimated dispersion
        (``bl.calibration(..., overdispersed=True)``).
    tables
        ``{name: bl.calibration(...)}`` of the selected models, as drawn.
    figure, axes
        The matplotlib figure drawn (None before a model is selected).
    group_table
        With ``strategy="groups"``: :func:`worst_groups` of each selected model, stacked with
        a ``model`` column; otherwise None.
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
        self.group_table: pl.DataFrame | None = None
        self.bins = widgets.IntSlider(
            value=10, min=2, max=50, description="bins", continuous_update=False
        )
        self.strategy = widgets.Dropdown(
            options=STRATEGIES, value="quantile", description="strategy"
        )
        self.overdispersed = widgets.Checkbox(
            value=False, description="widen intervals for overdispersion", indent=False
        )
        self.checklist = ModelChecklist(self.state, title="models")
        self.plot = widgets.Output(layout=widgets.Layout(min_width="420px"))
        self.message = widgets.HTML()
        self.groups_view = widgets.HTML()
        self.bins.observe(lambda _change: self.redraw(), names="value")
        self.overdispersed.observe(lambda _change: self.redraw(), names="value")
        self.strategy.observe(self._on_strategy, names="value")
        self.state.subscribe(self._on_state)
        self.children = (
            widgets.HBox([self.strategy, self.bins, self.overdispersed]),
            widgets.HBox([self.plot, self.checklist]),
            self.message,
            self.groups_view,
            self.error,
        )
        self.redraw()

    def _on_state(self, _event: str) -> None:
        self.checklist.sync()
        self.redraw()

    def _on_strategy(self, change: Any) -> None:
        self.bins.disabled = change["new"] == "groups"
        self.redraw()

    def redraw(self) -> None:
        """Recompute the tables and the figure for the selected models."""
        models = {n: self.state.models[n] for n in self.state.selected if n in self.state.models}
        if not models:
            self.tables, self.figure, self.axes, self.group_table = {}, None, None, None
            self.plot.outputs = ()
            self.groups_view.value = ""
            self.message.value = "Select one or more models to draw their reliability diagram."
            return
        from matplotlib.figure import Figure  # on the first diagram, not when the Lab opens

        bins, strategy = int(self.bins.value), self.strategy.value
        # only passed when asked for, so the panel also runs against a core without it
        extra = {"overdispersed": True} if self.overdispersed.value else {}
        try:
            data = self.state.eval_data
            tables = {
                n: calibration(data, m, bins, strategy=strategy, **extra) for n, m in models.items()
            }
            figure = Figure(figsize=(5.5, 5.5))
            axes = figure.subplots()
            plot_calibration(data, models, bins=bins, strategy=strategy, ax=axes, **extra)
            axes.set_title(
                f"reliability, {strategy}"
                + ("" if strategy == "groups" else f", {bins} bins")
                + ", 95% Wilson intervals"
                + (" (widened)" if extra else "")
            )
            show_figure(self.plot, figure)
        except Exception as err:
            self._show_error(err)
            return
        self._clear_error()
        self.tables, self.figure, self.axes = tables, figure, axes
        self.message.value = (
            f"{data.trials:,} trials; x: mean prediction of the bin, y: observed rate with its "
            "95% interval. Points on the diagonal are calibrated."
        )
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
