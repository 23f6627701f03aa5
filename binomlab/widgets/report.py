"""What outlives the kernel: the Lab's HTML report, and its runs logged to MLflow.

:func:`write_report` writes one self-contained HTML page (inline CSS, figures as base64 PNG):
the data, the leaderboard with its intervals and training options, every run's NLL curve, the
CORP calibration diagrams and the score decomposition. :class:`ReportPanel` is its button in
the Lab. :func:`mlflow_runs` gives what :func:`log_to_mlflow` logs for each model: the
resolved training config as params, the leaderboard's numbers as metrics, backend and spec as
tags.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import importlib
import io
import math
import os
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import polars as pl

from binomlab.backends.protocol import TrainConfig
from binomlab.calibration import plot_calibration
from binomlab.decomposition import decompose
from binomlab.errors import BinomlabError
from binomlab.widgets._render import check_new_file, frame_html, write_beside
from binomlab.widgets.compare_panel import (
    format_decomposition,
    format_leaderboard,
    leaderboard_html,
)
from binomlab.widgets.curves import plural
from binomlab.widgets.data_panel import data_summary, feature_table
from binomlab.widgets.panel import Panel
from binomlab.widgets.state import (
    BAND_RESAMPLES,
    COMPARE_RESAMPLES,
    LEVEL,
    MAX_OVERLAID,
    SEED,
    LabState,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "MAX_OVERLAID",
    "ReportPanel",
    "log_to_mlflow",
    "mlflow_runs",
    "write_report",
]

_COLUMNS = 3
"""Small multiples per row (curves, and CORP diagrams beyond :data:`MAX_OVERLAID`)."""

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
background:#fff;margin:2em auto;max-width:1200px;padding:0 1em;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;
border-bottom:1px solid #ddd;padding-bottom:.2em}
.meta,.note{color:#555;font-size:.9em;max-width:60em}
.scroll{overflow-x:auto;max-width:100%}
img{max-width:100%;height:auto;display:block;margin:.5em 0}
code{background:#f3f3f3;padding:0 .2em}
"""


def _png(figure: Figure) -> str:
    """``figure`` as an ``<img>`` holding its PNG in base64."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="figure">'


def _grid(count: int, *, size: float = 4.0, aspect: float = 0.8) -> tuple[Figure, list[Any]]:
    """A figure of ``count`` axes ``size`` wide and ``aspect × size`` high, :data:`_COLUMNS`
    per row, unused cells hidden."""
    from matplotlib.figure import Figure

    columns = min(_COLUMNS, count)
    rows = math.ceil(count / columns)
    figure = Figure(
        figsize=(size * columns + 0.5, size * aspect * rows + 0.5), layout="constrained"
    )
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for unused in axes[count:]:
        unused.set_visible(False)
    return figure, axes[:count]


def _short(name: str, width: int = 48) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _curves(models: Mapping[str, Any], colours: Mapping[str, str]) -> str:
    """Every run's train (solid) and validation (dashed) NLL per epoch, one panel each in
    its model's colour, its best epoch marked; a sentence for the models without a
    history."""
    runs = {
        name: model
        for name, model in models.items()
        if isinstance(getattr(model, "history", None), pl.DataFrame) and model.history.height > 0
    }
    missing = [name for name in models if name not in runs]
    note = (
        f'<p class="note">No training history (not trained in this session, or not a '
        f"trained model): {html.escape(', '.join(missing))}.</p>"
        if missing
        else ""
    )
    if not runs:
        return note
    figure, axes = _grid(len(runs))
    for ax, (name, model) in zip(axes, runs.items(), strict=True):
        history = model.history
        config = getattr(model, "config", None)
        unit = "iteration" if isinstance(config, TrainConfig) and config.deterministic else "epoch"
        epochs = history["epoch"].to_list()
        colour = colours[name]
        marker = "o" if len(epochs) == 1 else None
        ax.plot(epochs, history["train_nll"].to_list(), color=colour, marker=marker, label="train")
        val = history["val_nll"]
        if val.null_count() < history.height:
            ax.plot(epochs, val.to_list(), color=colour, ls="--", marker=marker, label="validation")
        best = getattr(model, "best_epoch_", None)
        if isinstance(best, int) and best in epochs:
            ax.axvline(best, color="0.4", lw=0.8, ls=":", label=f"best {unit} {best}")
        ax.set_title(_short(name), fontsize=9)
        ax.set_xlabel(unit)
        ax.set_ylabel("NLL per trial")
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    return _png(figure) + note


def _calibration(data: Any, models: Mapping[str, Any], colours: Mapping[str, str]) -> str:
    """The CORP diagrams with their consistency bands, each model in its colour: one diagram
    for up to :data:`MAX_OVERLAID` models, else one each."""
    from matplotlib.figure import Figure

    options = {
        "strategy": "corp",
        "level": LEVEL,
        "resamples": BAND_RESAMPLES,
        "seed": SEED,
    }
    if len(models) <= MAX_OVERLAID:
        figure = Figure(figsize=(6, 6), layout="constrained")
        drawn = [colours[name] for name in models]
        plot_calibration(data, dict(models), ax=figure.subplots(), colors=drawn, **options)
        return _png(figure)
    figure, axes = _grid(len(models), size=4.4, aspect=1.05)  # square diagrams, a title
    for ax, (name, model) in zip(axes, models.items(), strict=True):
        colour = colours[name]
        plot_calibration(data, {name: model}, ax=ax, colors=[colour], legend=False, **options)
        ax.set_title(_short(name), fontsize=9, color=colour)
    return _png(figure)


def _decomposition(data: Any, models: Mapping[str, Any]) -> str:
    frame = decompose(data, dict(models))
    parts = []
    for scoring, label in (("log_loss", "log loss"), ("brier", "Brier score")):
        rows = frame.filter(pl.col("scoring") == scoring)
        parts.append(
            f"<h3>{label} per trial</h3>"
            + frame_html(
                format_decomposition(rows), css_class="binomlab-decomposition-table", digits=4
            )
        )
    return "".join(parts)


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _version() -> str:
    try:
        return version("binomlab")
    except PackageNotFoundError:  # pragma: no cover - a source checkout without metadata
        return "unknown"


def report_html(state: LabState, *, title: str = "binomlab report") -> str:
    """The report of ``state`` as one self-contained HTML page (see :func:`write_report`).

    Raises
    ------
    BinomlabError
        The state holds no data or no model, and as ``bl.compare``, ``bl.plot_calibration``
        and ``bl.decompose``.
    """
    data = state.eval_data
    if not state.models:
        msg = "The report needs at least one model: train or add one first."
        raise BinomlabError(msg)
    table = state.leaderboard()
    models = dict(state.models)
    ordered = {name: models[name] for name in table["model"]}
    colours = dict(zip(ordered, state.colours_of(ordered), strict=True))  # as in the Lab
    train = state.train if state.train is not None else data
    parts = {"train": train} | ({"val": state.val} if state.val is not None else {})
    part = "validation" if state.val is not None else "training"
    now = dt.datetime.now(dt.UTC).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    best = table["model"][0]
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">Written {html.escape(now)} by binomlab {html.escape(_version())}. '
        f"{plural(len(models), 'model')}, evaluated on the {part} data ({data.trials:,} trials in "
        f"{len(data):,} groups). Best (lowest NLL): <b>{html.escape(best)}</b>.</p>",
        _section(
            "Data",
            frame_html(data_summary(parts), css_class="binomlab-data")
            + "<h3>Features</h3>"
            + frame_html(feature_table(train), css_class="binomlab-features"),
        ),
        _section(
            "Leaderboard",
            '<p class="note">Metrics per trial on the '
            f"{part} data, best NLL first (highlighted). [{LEVEL:.0%} CI]: the interval of "
            "each metric over test sets of this many trials, the model held fixed (t for NLL "
            "and Brier, DeLong for AUC, a bootstrap of the trials for ECE: "
            f"{COMPARE_RESAMPLES:,} resamples). Δ nll vs best (SE) and p: the paired "
            "comparison with the best model on the same trials. epochs: epochs (or "
            "iterations) run; best epoch: the one whose weights the model keeps.</p>"
            + leaderboard_html(format_leaderboard(table), best=best, colours=colours),
        ),
        _section(
            "Training curves",
            '<p class="note">NLL per trial after every epoch (iteration for the full-batch '
            "optimisers): training solid, validation dashed; the dotted line is the epoch "
            "whose weights the model keeps.</p>" + _curves(ordered, colours),
        ),
        _section(
            "Calibration (CORP)",
            '<p class="note">The CORP reliability diagram: the isotonic regression of the '
            "outcomes on each model's predictions, with its "
            f"{LEVEL:.0%} consistency band ({BAND_RESAMPLES:,} resamples): where the "
            "curve leaves the band, the miscalibration is more than chance; the trial "
            "histogram shows where the predictions lie.</p>" + _calibration(data, ordered, colours),
        ),
        _section(
            "Score decomposition",
            '<p class="note">score = MCB − DSC + UNC (CORP). MCB (miscalibration): what '
            "recalibrating the model would gain; DSC (discrimination): what its ranking of "
            "the trials is worth over the base rate; UNC (uncertainty): the score of the "
            "base rate, the same for every model.</p>" + _decomposition(data, ordered),
        ),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        + "".join(sections)
        + "</body></html>"
    )


def write_report(
    state: LabState,
    path: str | os.PathLike[str] = "report.html",
    *,
    overwrite: bool = False,
    title: str = "binomlab report",
) -> Path:
    """Write the report of ``state`` to ``path`` and return its absolute path.

    One self-contained HTML page (inline CSS, figures as base64 PNG, nothing fetched): the
    data summary, the leaderboard with its intervals and each run's options, every run's
    train/validation NLL curve, the CORP calibration diagram(s) and the score decomposition
    (log loss and Brier score). The page is written next to ``path`` and renamed into place.

    Raises
    ------
    BinomlabError
        An empty path; ``path`` exists and ``overwrite`` is False, or is a folder; its
        folder does not exist; no data or no model (and as :func:`report_html`).
    """
    if not str(path).strip():
        msg = "Type the file to write the report to, e.g. report.html."
        raise BinomlabError(msg)
    target = Path(path).expanduser().resolve()
    if target.is_dir():
        msg = f"{target} is a folder: name the report's file, e.g. {target / 'report.html'}"
        raise BinomlabError(msg)
    check_new_file(target, overwrite=overwrite)
    page = report_html(state, title=title)
    return write_beside(target, lambda file: Path(file).write_text(page, encoding="utf-8"),
                        suffix=".html")  # fmt: skip


class ReportPanel(Panel):
    """A path box and a "Write report" button: :func:`write_report` of the Lab's state.

    Attributes
    ----------
    path, overwrite, write_button
        The file to write, whether an existing one may be replaced, and the button.
    result
        Says where the report went.
    last_path
        The file written by the last click, or None.
    """

    def __init__(self, state: LabState, *, path: str = "report.html", **kwargs: Any) -> None:
        super().__init__(state, **kwargs)
        self.last_path: Path | None = None
        self.path = widgets.Text(
            value=path,
            description="report file",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="320px"),
        )
        self.overwrite = widgets.Checkbox(value=False, description="replace", indent=False)
        self.write_button = widgets.Button(description="Write report", icon="file")
        self.result = widgets.HTML()
        self.write_button.on_click(self._on_write)
        self.add_class("binomlab-report")
        self.children = (
            widgets.HBox(
                [self.path, self.overwrite, self.write_button],
                layout=widgets.Layout(flex_flow="row wrap", align_items="center"),
            ),
            self.result,
            self.error,
        )

    def _on_write(self, _button: Any) -> None:
        self.result.value = ""
        try:
            path = write_report(self.state, self.path.value, overwrite=self.overwrite.value)
        except Exception as err:
            self._show_error(err)
            return
        self._clear_error()
        self.last_path = path
        self.result.value = (
            f"Wrote the report to <code>{html.escape(str(path))}</code> (one HTML file: open it "
            "in any browser, no kernel needed)."
        )


# -- MLflow ----------------------------------------------------------------------------------

_METRIC_TYPES = (pl.Float64, pl.Int64)


def mlflow_runs(state: LabState) -> list[dict[str, Any]]:
    """What :func:`log_to_mlflow` logs, one dict per model in leaderboard order: ``name``,
    ``params`` (the resolved training config, ``TrainConfig.to_dict()``, backend options as
    ``options.<name>``; with the spec and features), ``metrics`` (the leaderboard's numbers
    that are not null), ``tags`` (``backend``, ``spec``) and ``history`` (the model's
    per-epoch rows, ``[]`` without one).

    Raises
    ------
    BinomlabError
        As :meth:`LabState.leaderboard`.
    """
    table = state.leaderboard()
    models = dict(state.models)
    metric_columns = [
        c for c, t in table.schema.items() if t in _METRIC_TYPES and c not in ("seed",)
    ]
    out = []
    for row in table.iter_rows(named=True):
        model = models[row["model"]]
        config = getattr(model, "config", None)
        params: dict[str, Any] = {}
        if isinstance(config, TrainConfig):
            values = config.to_dict()
            options = values.pop("options")
            params |= values | {f"options.{k}": v for k, v in options.items()}
            params = {k: v for k, v in params.items() if v is not None}  # not "None" strings
        if row["spec"] is not None:
            params["spec"] = row["spec"]
        features = getattr(model, "features", None)
        if features:
            params["features"] = ",".join(map(str, features))
        history = getattr(model, "history", None)
        out.append(
            {
                "name": row["model"],
                "params": params,
                "metrics": {c: float(row[c]) for c in metric_columns if row[c] is not None},
                "tags": {
                    k: v
                    for k, v in {"backend": row["backend"], "spec": row["spec"]}.items()
                    if v is not None
                },
                "history": history.to_dicts() if isinstance(history, pl.DataFrame) else [],
            }
        )
    return out


def log_to_mlflow(state: LabState, experiment: str | None = None) -> list[str]:
    """Log every model of ``state`` as an MLflow run (:func:`mlflow_runs`: params, metrics,
    tags, and ``train_nll`` / ``val_nll`` per epoch as steps), in ``experiment`` (MLflow's
    active one when None); return the run ids.

    Raises
    ------
    BinomlabError
        ``mlflow`` is not installed (the message says ``pip install mlflow``), its tracking
        store cannot be opened (the message says how to point it at one), or the state has
        no model.
    """
    try:
        mlflow = importlib.import_module("mlflow")
    except ImportError as err:
        msg = (
            "Logging runs to MLflow needs mlflow, which is not installed: pip install "
            "'binomlab[mlflow]' (MLflow's client, mlflow-skinny) or pip install mlflow"
        )
        raise BinomlabError(msg) from err
    runs = mlflow_runs(state)
    if not runs:
        msg = "No model to log: train or add one first."
        raise BinomlabError(msg)
    try:
        if experiment is not None:
            mlflow.set_experiment(experiment)
        else:
            mlflow.get_experiment("0")  # opens the tracking store, as start_run would
    except (ImportError, mlflow.exceptions.MlflowException) as err:
        msg = (
            f"MLflow could not open its tracking store {mlflow.get_tracking_uri()!r}: "
            f"{type(err).__name__}: {err}. Point it at a tracking server "
            "(mlflow.set_tracking_uri('http://host:5000') or MLFLOW_TRACKING_URI), install the "
            "full mlflow for its default sqlite store, or log to a folder with "
            "MLFLOW_ALLOW_FILE_STORE=true and a file:///path URI."
        )
        raise BinomlabError(msg) from err
    ids = []
    for run in runs:
        with mlflow.start_run(run_name=run["name"]) as active:
            mlflow.log_params(run["params"])
            mlflow.log_metrics(run["metrics"])
            mlflow.set_tags(run["tags"])
            for row in run["history"]:
                for key in ("train_nll", "val_nll"):
                    if row.get(key) is not None:
                        mlflow.log_metric(key, row[key], step=int(row["epoch"]))
            ids.append(active.info.run_id)
    return ids
