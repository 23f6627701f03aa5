"""The Compare tab: the leaderboard of every model in the Lab with its intervals, the paired
comparison with the best model, the score decomposition, and the models' checkboxes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets
import polars as pl

from binomlab.compare import INTERVAL_SCHEMA, LEADERBOARD_SCHEMA
from binomlab.decomposition import decompose
from binomlab.grouped import Grouped
from binomlab.widgets._render import (
    decimals_for,
    frame_html,
    interval_text,
    number_text,
    p_text,
    se_text,
)
from binomlab.widgets.checklist import ModelChecklist
from binomlab.widgets.panel import Panel
from binomlab.widgets.state import COMPARE_RESAMPLES, LEVEL, LabState

__all__ = ["ComparePanel", "format_decomposition", "format_leaderboard"]

METRICS = ("nll", "brier", "auc", "ece")
VS_BEST = "Δ nll vs best (SE)"
SCORINGS = (("log loss", "log_loss"), ("Brier score", "brier"))
DECOMPOSITION_SCHEMA = {
    "model": pl.String,
    "scoring": pl.String,
    "miscalibration": pl.Float64,
    "discrimination": pl.Float64,
    "uncertainty": pl.Float64,
    "score": pl.Float64,
}


def _interval_header(metric: str) -> str:
    return f"{metric} [{LEVEL:.0%} CI]"


def format_leaderboard(table: pl.DataFrame) -> pl.DataFrame:
    """``bl.compare``'s frame as the Compare tab shows it: text cells, one column per metric.

    Each metric reads ``estimate [lower, upper]``, every row of a column to the decimals that
    show the two significant digits of its smallest standard error (3 to 6); ``Δ nll vs best
    (SE)`` and ``p`` are the paired comparison with the best model (``best`` on its row), and
    ``dispersion`` says why it is not defined (``n/a: <df_note>``) instead of a bare NaN.
    """
    rows = table.to_dicts()
    decimals = {m: decimals_for([r[f"{m}_se"] for r in rows]) for m in METRICS}
    out = []
    for row in rows:
        shown: dict[str, Any] = {
            "model": row["model"],
            "backend": row["backend"],
            "spec": row["spec"],
            "params": row["params"],
        }
        for metric in METRICS:
            shown[_interval_header(metric)] = interval_text(
                row[metric], row[f"{metric}_lower"], row[f"{metric}_upper"], decimals[metric]
            )
            if metric == "nll":
                shown[VS_BEST], shown["p"] = _vs_best(row)
        dispersion = row["dispersion"]
        shown["dispersion"] = (
            f"n/a: {row['df_note']}"
            if dispersion is None or dispersion != dispersion
            else f"{dispersion:.4f}"
        )
        seconds = row["seconds"]
        shown["seconds"] = None if seconds is None else f"{seconds:.3g}"
        shown["epochs"] = row["epochs"]
        out.append(shown)
    schema = {
        "model": pl.String,
        "backend": pl.String,
        "spec": pl.String,
        "params": pl.Int64,
        _interval_header("nll"): pl.String,
        VS_BEST: pl.String,
        "p": pl.String,
        **{_interval_header(m): pl.String for m in METRICS[1:]},
        "dispersion": pl.String,
        "seconds": pl.String,
        "epochs": pl.Int64,
    }
    return pl.DataFrame(out, schema=schema)


def _vs_best(row: dict[str, Any]) -> tuple[str, str]:
    """The ``Δ nll vs best (SE)`` and ``p`` cells of a leaderboard row."""
    difference, se = row["nll_vs_best"], row["nll_vs_best_se"]
    if se is None and difference == 0.0:
        return "best", "—"
    if se == 0.0 and difference == 0.0:  # the same loss on every trial: the same predictions
        return "0 (same predictions)", "n/a"
    decimals = decimals_for([se], low=4, high=6)
    sign = "+" if difference is not None and difference > 0 else ""
    text = f"{sign}{number_text(difference, decimals)} (SE {se_text(se, decimals)})"
    return text, p_text(row["nll_vs_best_p"])


def format_decomposition(table: pl.DataFrame) -> pl.DataFrame:
    """``bl.decompose``'s frame as shown: ``model``, ``score``, ``MCB``, ``DSC``, ``UNC``."""
    return table.select(
        "model",
        "score",
        MCB=pl.col("miscalibration"),
        DSC=pl.col("discrimination"),
        UNC=pl.col("uncertainty"),
    )


class ComparePanel(Panel):
    """``bl.compare`` and ``bl.decompose`` of every model on the held-out data, refreshed when
    a model is added.

    Parameters
    ----------
    data
        The groups to evaluate on; ignored when ``state`` is given.
    models
        ``{name: model}`` to compare (``Fitted``, ``Predictor`` or probabilities).
    state
        A :class:`LabState` shared with other panels (its ``eval_data`` is used).

    Attributes
    ----------
    table
        The leaderboard (``bl.compare``'s frame with its interval and paired columns, at the
        Lab's level and resamples: :meth:`LabState.leaderboard`), best NLL first.
    shown
        :func:`format_leaderboard` of :attr:`table`: the text the board shows.
    scoring
        ``Dropdown``: the score :attr:`decomposition` splits (log loss or Brier score).
    decomposition
        ``bl.decompose(data, models, scoring=scoring.value)``, the models in leaderboard order.
    checklist
        One checkbox per model: the selection the Calibration panel draws.
    last_error
        The exception of the last failed refresh (also shown), or None.
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
        self.table = pl.DataFrame(schema=LEADERBOARD_SCHEMA | INTERVAL_SCHEMA)
        self.shown = format_leaderboard(self.table)
        self.decomposition = pl.DataFrame(schema=DECOMPOSITION_SCHEMA)
        self.checklist = ModelChecklist(self.state, title="show in Calibration:", wrap=True)
        self.caption = widgets.HTML()
        self.board = widgets.HTML()
        self.board.add_class("binomlab-leaderboard")
        self.notes = widgets.HTML()
        self.scoring = widgets.Dropdown(options=SCORINGS, value="log_loss", description="decompose")
        self.decomposition_view = widgets.HTML()
        self.decomposition_view.add_class("binomlab-decomposition")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _button: self.refresh())
        self.scoring.observe(lambda _change: self._decompose(), names="value")
        self.state.subscribe(self._on_state)
        self.children = (
            self.caption,
            self.board,
            self.notes,
            self.checklist,
            self.scoring,
            self.decomposition_view,
            self.refresh_button,
            self.error,
        )
        self.refresh()

    def _on_state(self, event: str) -> None:
        if event == "models":
            self.refresh()
        else:
            self.checklist.sync()

    def refresh(self) -> None:
        """Recompute the leaderboard, the decomposition and the checkboxes."""
        self.checklist.sync()
        try:
            table = self.state.leaderboard()
            data = self.state.eval_data
            shown = format_leaderboard(table)
            decomposition = self._decomposition(table)
        except Exception as err:
            self._show_error(err)
            return
        self._clear_error()
        self.table, self.shown, self.decomposition = table, shown, decomposition
        part = "validation" if self.state.val is not None else "given"
        self.caption.value = (
            f"{table.height} model(s) on the {part} data ({data.trials:,} trials, "
            f"{len(data):,} groups); metrics per trial, best NLL first."
        )
        self.board.value = frame_html(shown, css_class="binomlab-leaderboard-table")
        in_sample = (
            ""
            if self.state.val is not None
            else "; here the data are the training data, so the metrics are in-sample"
        )
        self.notes.value = (
            '<div class="binomlab-notes" style="font-size:12px;max-width:60em">'
            f"<b>[{LEVEL:.0%} CI]</b>: the interval of each metric over test sets of this "
            "many trials, the model held fixed (t for NLL and Brier, DeLong for AUC, a "
            f"bootstrap of the trials for ECE: {COMPARE_RESAMPLES:,} resamples){in_sample}. "
            f"<b>{VS_BEST}</b>: the mean per-trial log-loss difference to the best model "
            "(first row) on the same trials, with its standard error; <b>p</b>: the paired "
            "t-test of no difference. Two models whose NLL intervals overlap can still "
            "differ clearly: the paired test is the comparison, as they share the trials."
            "</div>"
        )
        self._show_decomposition()

    def _decomposition(self, table: pl.DataFrame) -> pl.DataFrame:
        """``bl.decompose`` of the leaderboard's models, in its order."""
        if table.is_empty():
            return pl.DataFrame(schema=DECOMPOSITION_SCHEMA)
        models = dict(self.state.models)
        ordered = {name: models[name] for name in table["model"] if name in models}
        return decompose(self.state.eval_data, ordered, scoring=self.scoring.value)

    def _decompose(self) -> None:
        try:
            decomposition = self._decomposition(self.table)
        except Exception as err:
            self._show_error(err)
            return
        self._clear_error()
        self.decomposition = decomposition
        self._show_decomposition()

    def _show_decomposition(self) -> None:
        if self.decomposition.is_empty():
            self.decomposition_view.value = ""
            return
        label = {value: text for text, value in SCORINGS}[self.scoring.value]
        self.decomposition_view.value = (
            f"<b>Score decomposition</b> ({label} per trial, CORP): score = MCB − DSC + UNC. "
            "MCB (miscalibration): what recalibrating the model (isotonic regression of the "
            "outcomes on its predictions) would gain; DSC (discrimination): what its ranking "
            "of the trials is worth over the base rate; UNC (uncertainty): the score of the "
            "base rate, the same for every model."
            + frame_html(
                format_decomposition(self.decomposition),
                css_class="binomlab-decomposition-table",
                digits=4,
            )
        )
