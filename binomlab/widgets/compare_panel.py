"""The Compare tab: the leaderboard of every model in the Lab with its intervals and training
options (sortable, the best run highlighted, downloadable), the paired comparison with the best
model, renaming and deleting runs, the score decomposition, and the models' checkboxes."""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import polars as pl

from binomlab.compare import INTERVAL_SCHEMA, LEADERBOARD_SCHEMA
from binomlab.decomposition import DECOMPOSITION_SCHEMA, decompose
from binomlab.errors import BinomlabError
from binomlab.grouped import Grouped
from binomlab.widgets._render import (
    check_new_file,
    decimals_for,
    frame_html,
    interval_text,
    number_text,
    p_text,
    se_text,
    write_beside,
)
from binomlab.widgets.checklist import ModelChecklist
from binomlab.widgets.curves import plural
from binomlab.widgets.panel import Panel
from binomlab.widgets.state import COMPARE_RESAMPLES, LEVEL, RUN_SCHEMA, LabState

__all__ = [
    "BOARD_FORMATS",
    "ComparePanel",
    "format_decomposition",
    "format_leaderboard",
    "leaderboard_html",
    "sort_columns",
    "sort_leaderboard",
    "write_leaderboard",
]

METRICS = ("nll", "brier", "auc", "ece")
VS_BEST = "Δ nll vs best (SE)"
SAME = 1e-12
"""A Δ nll and its SE both within this (nats per trial; float64 rounding of sums is far
smaller) mean two models with the same predictions."""
SCORINGS = (("log loss", "log_loss"), ("Brier score", "brier"))
BOARD_FORMATS = {"csv": ".csv", "parquet": ".parquet"}
"""The formats the leaderboard is written in, with their file suffix."""
BEST_CLASS = "binomlab-best"
"""The class of the best run's cells in the leaderboard."""
_BEST_STYLE = (
    # a tint of JupyterLab's brand colour, so it reads in the light and the dark theme
    "<style>.binomlab-leaderboard-table td.binomlab-best{font-weight:600;"
    "background:rgba(25,118,210,.12);"
    "background:color-mix(in srgb,var(--jp-brand-color1,#1976d2) 15%,transparent)}"
    ".binomlab-leaderboard-table td.binomlab-best:first-child{"
    "box-shadow:inset 3px 0 0 var(--jp-brand-color1,#1976d2)}"
    # a model's colour square, drawn by CSS so the cell's text stays the model's name
    '.binomlab-swatch::before{content:"\\25A0";margin-right:.35em}</style>'
)
# optional columns: shown when some row departs from the value every default run has
_OPTIONAL = {
    "weight decay": ("weight_decay", lambda v: v not in (None, 0.0)),
    "early stop": ("early_stopping", lambda v: v is not None),
    "loss": ("loss", lambda v: v not in (None, "binomial")),
}


def _interval_header(metric: str) -> str:
    return f"{metric} [{LEVEL:.0%} CI]"


def _sort_keys() -> dict[str, str]:
    """``{shown column: the leaderboard column its rows are sorted by}``."""
    return {
        "model": "model",
        "backend": "backend",
        "spec": "spec",
        "params": "params",
        _interval_header("nll"): "nll",
        VS_BEST: "nll_vs_best",
        "p": "nll_vs_best_p",
        **{_interval_header(m): m for m in METRICS[1:]},
        "dispersion": "dispersion",
        "optimizer": "optimizer",
        "lr": "lr",
        "batch size": "batch_size",
        "epochs": "epochs",
        "best epoch": "best_epoch",
        "stop reason": "stop_reason",
        "seed": "seed",
        "seconds": "seconds",
        **{label: column for label, (column, _) in _OPTIONAL.items()},
    }


def sort_columns(shown: pl.DataFrame) -> list[tuple[str, str]]:
    """The ``(shown column, leaderboard column)`` pairs the board can be sorted by: every
    column of :func:`format_leaderboard`'s frame ``shown``, in its order."""
    keys = _sort_keys()
    return [(label, keys[label]) for label in shown.columns if label in keys]


def _real_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:g}"


def format_leaderboard(table: pl.DataFrame) -> pl.DataFrame:
    """The leaderboard as the Compare tab shows it: text cells, the model's name, one column
    per metric (what a narrow panel shows first), then the backend, spec and training
    options.

    ``table`` is :meth:`LabState.leaderboard`'s frame (``bl.compare``'s frame works too: the
    option columns are then empty). Each metric reads ``estimate [lower, upper]``, every row
    of a column to the decimals that show the two significant digits of its smallest
    standard error (3 to 6); ``Δ nll vs best (SE)`` and ``p`` are the paired comparison with
    the best model (``best`` on its row), and ``dispersion`` says why it is not defined
    (``n/a: <df_note>``) instead of a bare NaN. Then ``optimizer``, ``lr``, ``batch size``,
    ``epochs`` (run), ``best epoch``, ``stop reason``, ``seed`` and ``seconds``; ``weight
    decay``, ``early stop`` and ``loss`` only when some run sets them. The rows keep
    ``table``'s order.
    """
    rows = table.to_dicts()
    decimals = {m: decimals_for([r[f"{m}_se"] for r in rows]) for m in METRICS}
    optional = [
        label
        for label, (column, departs) in _OPTIONAL.items()
        if any(departs(r.get(column)) for r in rows)
    ]
    out = []
    for row in rows:
        shown: dict[str, Any] = {"model": row["model"]}
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
        seed = row.get("seed")
        shown |= {"backend": row["backend"], "spec": row["spec"], "params": row["params"]}
        shown |= {
            "optimizer": row.get("optimizer"),
            "lr": _real_text(row.get("lr")),
            "batch size": row.get("batch_size"),
            "epochs": row["epochs"],
            "best epoch": row.get("best_epoch"),
            "stop reason": row.get("stop_reason"),
            "seed": None if seed is None else str(seed),
        }
        for label in optional:
            value = row.get(_OPTIONAL[label][0])
            shown[label] = _real_text(value) if isinstance(value, float) else value
        seconds = row["seconds"]
        shown["seconds"] = None if seconds is None else f"{seconds:.3g}"
        out.append(shown)
    schema = {
        "model": pl.String,
        _interval_header("nll"): pl.String,
        VS_BEST: pl.String,
        "p": pl.String,
        **{_interval_header(m): pl.String for m in METRICS[1:]},
        "dispersion": pl.String,
        "backend": pl.String,
        "spec": pl.String,
        "params": pl.Int64,
        "optimizer": pl.String,
        "lr": pl.String,
        "batch size": pl.Int64,
        "epochs": pl.Int64,
        "best epoch": pl.Int64,
        "stop reason": pl.String,
        "seed": pl.String,
        **{label: (pl.Int64 if label == "early stop" else pl.String) for label in optional},
        "seconds": pl.String,
    }
    return pl.DataFrame(out, schema=schema)


def sort_leaderboard(table: pl.DataFrame, column: str, *, descending: bool = False) -> pl.DataFrame:
    """``table`` sorted by its ``column`` (nulls last, ties in ``table``'s order).

    Raises
    ------
    BinomlabError
        ``table`` has no column ``column``.
    """
    if column not in table.columns:
        msg = f"The leaderboard has no column {column!r}. Expected one of {table.columns}"
        raise BinomlabError(msg)
    return table.sort(column, descending=descending, nulls_last=True, maintain_order=True)


def leaderboard_html(
    shown: pl.DataFrame, *, best: str | None = None, colours: Mapping[str, str] | None = None
) -> str:
    """:func:`format_leaderboard`'s frame as the board's table, the cells of the row of model
    ``best`` in the class :data:`BEST_CLASS` (bold, tinted, marked at the left), and each
    model's name after a square in its colour from ``colours`` (``{name: colour}``, the
    colour of its curves and diagrams)."""
    table = frame_html(shown, css_class="binomlab-leaderboard-table")
    if "model" not in shown.columns:
        return _BEST_STYLE + table
    names = shown["model"].to_list()
    head, _, body = table.partition("<tbody>")
    rows = body.split("</tr>")
    if colours:
        column = shown.columns.index("model")
        for index, name in enumerate(names):
            colour = colours.get(name)
            if colour is None:
                continue
            cells = rows[index].split("<td>")  # cells[column + 1] starts the model's cell
            cells[column + 1] = (
                f'<span class="binomlab-swatch" style="color:{html.escape(colour)}" '
                f'aria-hidden="true"></span>{cells[column + 1]}'
            )
            rows[index] = "<td>".join(cells)
    if best is not None and best in names:
        index = names.index(best)
        rows[index] = rows[index].replace("<td>", f'<td class="{BEST_CLASS}">')
    return _BEST_STYLE + f"{head}<tbody>{'</tr>'.join(rows)}"


def write_leaderboard(
    table: pl.DataFrame, path: str | os.PathLike[str], *, fmt: str = "csv", overwrite: bool = False
) -> Path:
    """Write the leaderboard ``table`` as CSV or parquet and return the file's absolute path.

    ``path`` is the file (its suffix set to the format's: ``.csv`` or ``.parquet``), or an
    existing folder (the file is then ``leaderboard.csv`` in it). The file is written next
    to its place and renamed into it.

    Raises
    ------
    BinomlabError
        ``fmt`` is not one of :data:`BOARD_FORMATS`; an empty path; the file exists and
        ``overwrite`` is False; its folder does not exist.
    """
    if fmt not in BOARD_FORMATS:
        msg = f"Expected fmt to be one of {tuple(BOARD_FORMATS)}. Received: fmt={fmt!r}"
        raise BinomlabError(msg)
    if not str(path).strip():
        msg = "Type the file to write the leaderboard to, e.g. leaderboard.csv."
        raise BinomlabError(msg)
    target = Path(path).expanduser()
    if target.is_dir():
        target = target / "leaderboard"
    target = target.with_suffix(BOARD_FORMATS[fmt]).resolve()
    check_new_file(target, overwrite=overwrite)
    return write_beside(target, table.write_csv if fmt == "csv" else table.write_parquet)


def _vs_best(row: dict[str, Any]) -> tuple[str, str]:
    """The ``Δ nll vs best (SE)`` and ``p`` cells of a leaderboard row."""
    difference, se = row["nll_vs_best"], row["nll_vs_best_se"]
    if se is None and difference == 0.0:
        return "best", "—"
    same = se is not None and difference is not None and max(se, abs(difference)) <= SAME
    if same:  # the same loss on every trial, up to rounding: the same predictions
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
    a model is added, renamed or deleted.

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
        The leaderboard (:meth:`LabState.leaderboard`: ``bl.compare``'s frame with its
        interval and paired columns at the Lab's level and resamples, then each run's
        options), best NLL first whatever the board's sorting.
    best
        The best model's name (the first row of :attr:`table`: lowest NLL), or None.
    shown
        :func:`format_leaderboard` of :attr:`table` in the board's order: the text the
        board shows.
    sort_by, sort_order
        ``Dropdown`` of the shown columns and ``ToggleButtons`` ascending / descending: the
        board's order (a metric column sorts by its estimate; NLL ascending by default).
    run, new_name, rename_button, delete_button
        The run the buttons act on (``Dropdown`` of the models), the name to give it, and
        the buttons that rename it (:meth:`LabState.rename_model`) or delete it
        (:meth:`LabState.remove_model`).
    board_file, overwrite_file, csv_button, parquet_button
        Where "Download CSV" / "Download parquet" write :attr:`table`
        (:func:`write_leaderboard`), and whether an existing file may be replaced;
        :attr:`download_result` says where it went and links the file's bytes.
    last_download
        The file written by the last download, or None.
    scoring
        ``Dropdown``: the score :attr:`decomposition` splits (log loss or Brier score).
    decomposition
        ``bl.decompose(data, models, scoring=scoring.value)``, the models in leaderboard order.
    checklist
        One checkbox per model: the selection the Calibration panel draws.
    last_error
        The exception of the last failed action (also shown), or None.
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
        self.table = pl.DataFrame(schema=LEADERBOARD_SCHEMA | INTERVAL_SCHEMA | RUN_SCHEMA)
        self.best: str | None = None
        self.shown = format_leaderboard(self.table)
        self.decomposition = pl.DataFrame(schema=DECOMPOSITION_SCHEMA)
        self._decomposed: tuple[Any, ...] = ()
        self.last_download: Path | None = None
        self.checklist = ModelChecklist(self.state, title="show in Calibration:", wrap=True)
        self.caption = widgets.HTML()
        self.board = widgets.HTML()
        self.board.add_class("binomlab-leaderboard")
        self.notes = widgets.HTML()
        wrap = widgets.Layout(flex_flow="row wrap", align_items="center")
        self.sort_by = widgets.Dropdown(
            options=sort_columns(self.shown),
            value="nll",
            description="sort by",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="240px"),
        )
        self.sort_order = widgets.ToggleButtons(
            options=[("ascending", False), ("descending", True)],
            value=False,
            style={"button_width": "auto"},
        )
        self.run = widgets.Dropdown(
            description="run",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="320px"),
        )
        self.new_name = widgets.Text(
            placeholder="new name",
            description="rename to",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="280px"),
        )
        self.rename_button = widgets.Button(description="Rename", icon="pencil")
        self.delete_button = widgets.Button(description="Delete", icon="trash")
        self.run_result = widgets.HTML()
        self.board_file = widgets.Text(
            value="leaderboard.csv",
            description="leaderboard file",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="320px"),
        )
        self.overwrite_file = widgets.Checkbox(
            value=False, description="replace an existing file", indent=False
        )
        self.csv_button = widgets.Button(
            description="Download CSV", icon="download", layout=widgets.Layout(width="auto")
        )
        self.parquet_button = widgets.Button(
            description="Download parquet", icon="download", layout=widgets.Layout(width="auto")
        )
        self.download_result = widgets.HTML()
        self.scoring = widgets.Dropdown(options=SCORINGS, value="log_loss", description="decompose")
        self.decomposition_view = widgets.HTML()
        self.decomposition_view.add_class("binomlab-decomposition")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _button: self.refresh())
        self.scoring.observe(lambda _change: self._decompose(), names="value")
        self.sort_by.observe(lambda _change: self._show_board(), names="value")
        self.sort_order.observe(lambda _change: self._show_board(), names="value")
        self.rename_button.on_click(self._on_rename)
        self.delete_button.on_click(self._on_delete)
        self.csv_button.on_click(lambda _button: self.download("csv"))
        self.parquet_button.on_click(lambda _button: self.download("parquet"))
        self.state.subscribe(self._on_state)
        self.children = (
            self.caption,
            widgets.HBox([self.sort_by, self.sort_order], layout=wrap),
            self.board,
            self.notes,
            widgets.HBox(
                [self.run, self.new_name, self.rename_button, self.delete_button], layout=wrap
            ),
            self.run_result,
            widgets.HBox(
                [self.board_file, self.csv_button, self.parquet_button, self.overwrite_file],
                layout=wrap,
            ),
            self.download_result,
            self.error,
            self.checklist,
            self.scoring,
            self.decomposition_view,
            self.refresh_button,
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
        self._sync_runs()
        try:
            table = self.state.leaderboard()
            data = self.state.eval_data
            decomposition = self._decomposition(table)
        except Exception as err:
            self._show_error(err)
            return
        self._clear_error()
        self.table, self.decomposition = table, decomposition
        self.best = None if table.is_empty() else table["model"][0]
        part = "validation" if self.state.val is not None else "given"
        best = (
            ""
            if self.best is None
            else f" Best (lowest NLL, highlighted): <b>{html.escape(self.best)}</b>."
        )
        self.caption.value = (
            f"{plural(table.height, 'model')} on the {part} data ({data.trials:,} trials, "
            f"{len(data):,} groups); metrics per trial.{best}"
        )
        self._show_board()
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
            "(highlighted) on the same trials, with its standard error; <b>p</b>: the paired "
            "t-test of no difference. Two models whose NLL intervals overlap can still "
            "differ clearly: the paired test is the comparison, as they share the trials. "
            "<b>epochs</b>: epochs (or iterations) run; <b>best epoch</b>: the one whose "
            "weights the model keeps; <b>seconds</b>: training time."
            "</div>"
        )
        self._show_decomposition()

    # -- the board -----------------------------------------------------------------------------

    def _show_board(self) -> None:
        """Sort :attr:`table` as :attr:`sort_by` and :attr:`sort_order` say and show it."""
        shown = format_leaderboard(self.table)
        options = sort_columns(shown)
        if list(self.sort_by.options) != options:
            keep = self.sort_by.value
            self.sort_by.options = options
            values = [column for _, column in options]
            self.sort_by.value = keep if keep in values else "nll"
        ordered = sort_leaderboard(
            self.table, self.sort_by.value or "nll", descending=self.sort_order.value
        )
        self.shown = format_leaderboard(ordered)
        self.board.value = leaderboard_html(self.shown, best=self.best, colours=self.state.colours)

    # -- runs: rename and delete -------------------------------------------------------------

    def _sync_runs(self) -> None:
        """Offer every model to rename or delete, keeping the one chosen when it is there."""
        names = list(self.state.models)
        keep = self.run.value
        if list(self.run.options) != names:
            self.run.options = names
        self.run.value = keep if keep in names else (names[0] if names else None)
        self.rename_button.disabled = self.delete_button.disabled = not names

    def _on_rename(self, _button: Any) -> None:
        old, new = self.run.value, self.new_name.value
        self.run_result.value = ""
        try:
            if old is None:
                msg = "No run to rename: train or add a model first."
                raise BinomlabError(msg)
            name = self.state.rename_model(old, new)
        except Exception as err:
            self._show_error(err)
            return
        self._clear_error()
        self.run.value = name
        self.new_name.value = ""
        self.run_result.value = html.escape(f"Renamed {old!r} to {name!r}.")

    def _on_delete(self, _button: Any) -> None:
        name = self.run.value
        self.run_result.value = ""
        try:
            if name is None:
                msg = "No run to delete."
                raise BinomlabError(msg)
            self.state.remove_model(name)
        except Exception as err:
            self._show_error(err)
            return
        self._clear_error()
        self.run_result.value = html.escape(f"Deleted {name!r}.")

    # -- download ----------------------------------------------------------------------------

    def download(self, fmt: str = "csv") -> Path | None:
        """Write :attr:`table` to :attr:`board_file` as ``fmt`` (``"csv"`` or ``"parquet"``,
        :func:`write_leaderboard`), say where and link its bytes; the path, or None when it
        was refused (the reason shown)."""
        self.download_result.value = ""
        try:
            if self.table.is_empty():
                msg = "The leaderboard is empty: train or add a model first."
                raise BinomlabError(msg)
            path = write_leaderboard(
                self.table, self.board_file.value, fmt=fmt, overwrite=self.overwrite_file.value
            )
        except Exception as err:
            self._show_error(err)
            return None
        self._clear_error()
        self.last_download = path
        mime = "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        self.download_result.value = (
            f"Wrote {plural(self.table.height, 'row')} to <code>{html.escape(str(path))}</code> "
            f'(<a download="{html.escape(path.name)}" href="data:{mime};base64,{data}">'
            "save a copy from the browser</a>)."
        )
        return path

    # -- the decomposition -------------------------------------------------------------------

    def _decomposition(self, table: pl.DataFrame) -> pl.DataFrame:
        """``bl.decompose`` of the leaderboard's models, in its order (computed again only
        when the models, the data or the scoring change: a rename renames its rows)."""
        if table.is_empty():
            return pl.DataFrame(schema=DECOMPOSITION_SCHEMA)
        models = dict(self.state.models)
        ordered = {name: models[name] for name in table["model"] if name in models}
        key = (self.scoring.value, self.state.eval_data, *ordered.values())
        previous = self._decomposed
        if len(previous) == len(key) + 1 and all(
            a is b for a, b in zip(previous[:-1], key, strict=True)
        ):
            return previous[-1].with_columns(model=pl.Series(list(ordered), dtype=pl.String))
        decomposition = decompose(self.state.eval_data, ordered, scoring=self.scoring.value)
        self._decomposed = (*key, decomposition)
        return decomposition

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
