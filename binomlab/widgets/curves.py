"""The Train tab's NLL curves: every run's train and validation NLL overlaid on one plot.

Pure functions of plain data, so the curves can be tested without a browser: a
:class:`CurveRun` holds one run's per-epoch rows, :func:`curve_axes` fits the axes to the runs
shown (the x-axis to the longest run, never to a budget), :func:`curves_svg` draws them as an
inline SVG (train solid, validation dashed, a dot on each run's best epoch) and
:func:`curves_legend` writes the caption that names each run and its best epoch. Text and
frame colours are JupyterLab's CSS variables, so the plot follows the light and dark themes.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from binomlab.widgets._render import special_text

__all__ = [
    "CurveAxes",
    "CurveRun",
    "curve_axes",
    "curves_html",
    "curves_legend",
    "curves_svg",
    "nll_text",
    "plural",
]

HEADROOM = 0.05
"""The x-axis ends this fraction (at least one epoch) past the longest run shown."""
MAX_POINTS = 800
"""A series with more points than this is thinned to about this many (its best epoch's dot
and its last point are always drawn)."""
SIGNIFICANT = 4
"""Significant digits of every NLL the caption and the status line print."""

_TEXT = "fill:var(--jp-ui-font-color1,#333)"
_MUTED = "fill:var(--jp-ui-font-color2,#666)"
_FRAME = "fill:var(--jp-layout-color0,#fff);stroke:var(--jp-border-color1,#999)"
_GRID = "stroke:var(--jp-border-color2,#e0e0e0)"
_DASH = "6 3"


def plural(count: int, word: str) -> str:
    """``"1 epoch"``, ``"2 epochs"``, ``"1,000 iterations"``."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def nll_text(value: float | None) -> str:
    """An NLL to :data:`SIGNIFICANT` significant digits, in fixed notation: ``0.6123``,
    ``1.234``, ``0.01235``; ``—`` for None, ``n/a`` for NaN, ``inf`` for infinity."""
    special = special_text(value)
    if special is not None:
        return special
    if value == 0:
        return "0"
    decimals = max(0, SIGNIFICANT - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


@dataclass(eq=False)
class CurveRun:
    """One training run's curve.

    Attributes
    ----------
    name
        The run's name (the model's name in the Lab once it is trained).
    colour
        Its colour on the plot and in the caption.
    rows
        ``{"epoch", "train_nll", "val_nll"}`` per epoch, in order (``val_nll`` None without
        validation data).
    unit
        ``"epoch"``, or ``"iteration"`` for the full-batch optimisers.
    best_epoch
        The epoch whose weights the model kept (``fitted.best_epoch_``) once the run ended;
        None while it runs (:meth:`best` then gives the best so far).
    outcome
        ``"running"``, the fit's ``stop_reason``, or ``"failed"``.
    visible
        Whether the run is drawn.
    model
        The fitted model, once there is one.
    loss
        The training loss its NLLs are of: ``"binomial"`` or ``"beta-binomial"`` (the
        caption says so, since the leaderboard's ``nll`` is binomial for every model).
    """

    name: str
    colour: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    unit: str = "epoch"
    best_epoch: int | None = None
    outcome: str = "running"
    visible: bool = True
    model: Any = None
    loss: str = "binomial"

    def best(self) -> dict[str, Any] | None:
        """The row of the best epoch: :attr:`best_epoch`'s once known; while running the last
        iteration of a full-batch optimiser (it ends at the optimum), else the lowest monitored
        NLL so far (validation, else training). None before the first epoch."""
        rows = list(self.rows)
        if not rows:
            return None
        if self.best_epoch is not None:
            return next((r for r in rows if r["epoch"] == self.best_epoch), None)
        if self.unit == "iteration":
            return rows[-1]
        key = "val_nll" if any(_finite(r.get("val_nll")) for r in rows) else "train_nll"
        scored = [r for r in rows if _finite(r.get(key))]
        return min(scored, key=lambda r: r[key]) if scored else None


@dataclass(frozen=True)
class CurveAxes:
    """The plot's ranges and ticks.

    ``x`` runs from 0 to the longest run shown plus :data:`HEADROOM`; ``x_ticks`` are whole
    epochs. ``y`` spans the NLLs shown with a margin; ``y_decimals`` print every y tick
    distinctly.
    """

    x: tuple[float, float]
    y: tuple[float, float]
    x_ticks: tuple[int, ...]
    y_ticks: tuple[float, ...]
    y_decimals: int


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _values(run: CurveRun) -> list[float]:
    return [
        r[key] for r in list(run.rows) for key in ("train_nll", "val_nll") if _finite(r.get(key))
    ]


def _ticks(lo: float, hi: float, *, integer: bool, bins: int) -> list[float]:
    """Readable ticks in ``[lo, hi]`` (matplotlib's MaxNLocator, imported on first use so
    opening the Lab does not load matplotlib)."""
    from matplotlib.ticker import MaxNLocator

    locator = MaxNLocator(nbins=bins, integer=integer, min_n_ticks=2)
    span = hi - lo
    return [
        float(t) for t in locator.tick_values(lo, hi) if lo - 1e-9 * span <= t <= hi + 1e-9 * span
    ]


def _decimals(ticks: Sequence[float]) -> int:
    """The fewest decimals that print every tick exactly (up to 8)."""
    if len(ticks) < 2:
        return 4
    step = min(b - a for a, b in itertools.pairwise(ticks))
    for decimals in range(9):
        if all(abs(round(t, decimals) - t) <= 1e-6 * step for t in ticks):
            return decimals
    return 8


def curve_axes(runs: Sequence[CurveRun]) -> CurveAxes | None:
    """The axes that fit the visible runs' curves, or None when none has a finite point.

    The x-axis ends :data:`HEADROOM` (at least one epoch) past the longest run shown, so a
    run that stopped early, or an L-BFGS fit that converged in a few iterations of its budget,
    fills the plot.
    """
    shown = [r for r in runs if r.visible and r.rows]
    values = [v for r in shown for v in _values(r)]
    if not values:
        return None
    longest = max(int(r.rows[-1]["epoch"]) for r in shown)
    x_hi = float(longest + max(1, math.ceil(HEADROOM * longest)))
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9 * max(1.0, abs(hi)):
        lo, hi = lo - max(1e-3, 1e-3 * abs(lo)), hi + max(1e-3, 1e-3 * abs(hi))
    margin = 0.06 * (hi - lo)
    y = (lo - margin, hi + margin)
    x_ticks = tuple(int(t) for t in _ticks(0.0, x_hi, integer=True, bins=6))
    y_ticks = tuple(_ticks(*y, integer=False, bins=5))
    return CurveAxes(
        x=(0.0, x_hi), y=y, x_ticks=x_ticks, y_ticks=y_ticks, y_decimals=_decimals(y_ticks)
    )


def _x_label(runs: Sequence[CurveRun]) -> str:
    units = {r.unit for r in runs if r.visible and r.rows}
    return units.pop() if len(units) == 1 else "epoch or iteration"


def _thin(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= MAX_POINTS:
        return points
    stride = math.ceil(len(points) / MAX_POINTS)
    thinned = points[::stride]
    return thinned if thinned[-1] == points[-1] else [*thinned, points[-1]]


def curves_svg(runs: Sequence[CurveRun], *, width: int = 540, height: int = 250) -> str:
    """The visible runs' NLL per trial by epoch as an inline SVG.

    One ``<polyline class="train">`` (solid) and, with validation data, one
    ``<polyline class="val">`` (dashed) per visible run, in the run's colour, each with
    ``data-run`` naming the run; a ``<circle class="best">`` on the best epoch (on the
    validation curve where there is one) with ``data-epoch``. The axes come from
    :func:`curve_axes`.
    """
    pad_l, pad_r, pad_t, pad_b = 66, 14, 12, 38
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    axes = curve_axes(runs)
    limit = "" if axes is None else f' data-xmax="{axes.x[1]:g}"'
    parts = [
        f'<svg class="binomlab-curve" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="NLL per trial by epoch"{limit} '
        'style="font-family:var(--jp-ui-font-family,sans-serif);font-size:11px;'
        'max-width:100%;height:auto">',
        f'<rect x="{pad_l}" y="{pad_t}" width="{plot_w}" height="{plot_h}" style="{_FRAME}"/>',
    ]
    if axes is None:
        parts.append(
            f'<text x="{pad_l + plot_w / 2}" y="{pad_t + plot_h / 2}" text-anchor="middle" '
            f'style="{_MUTED}">NLL per trial appears here while training</text></svg>'
        )
        return "".join(parts)
    (x0, x1), (y0, y1) = axes.x, axes.y

    def px(epoch: float) -> float:
        return pad_l + plot_w * (epoch - x0) / (x1 - x0)

    def py(value: float) -> float:
        return pad_t + plot_h * (y1 - value) / (y1 - y0)

    bottom = pad_t + plot_h
    for tick in axes.y_ticks:
        y = py(tick)
        parts.append(
            f'<line class="grid" x1="{pad_l}" x2="{pad_l + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            f'style="{_GRID}"/><text x="{pad_l - 5}" y="{y + 3.5:.1f}" text-anchor="end" '
            f'style="{_TEXT}">{tick:.{axes.y_decimals}f}</text>'
        )
    for tick in axes.x_ticks:
        x = px(tick)
        parts.append(
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{pad_t}" y2="{bottom}" '
            f'style="{_GRID}"/><text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle" '
            f'style="{_TEXT}">{tick:,}</text>'
        )
    parts.append(
        f'<text x="{pad_l + plot_w / 2}" y="{height - 6}" text-anchor="middle" '
        f'style="{_TEXT}">{_x_label(runs)}</text>'
        f'<text x="14" y="{pad_t + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {pad_t + plot_h / 2})" style="{_TEXT}">NLL per trial</text>'
    )
    for run in runs:
        if not run.visible or not run.rows:
            continue
        rows = list(run.rows)
        name = html.escape(run.name, quote=True)
        series = {
            key: [(r["epoch"], r[key]) for r in rows if _finite(r.get(key))]
            for key in ("train_nll", "val_nll")
        }
        for key, points in series.items():
            if not points:
                continue
            css = key.split("_")[0]
            dash = f' stroke-dasharray="{_DASH}"' if css == "val" else ""
            path = " ".join(f"{px(e):.1f},{py(v):.1f}" for e, v in _thin(points))
            parts.append(
                f'<polyline class="{css}" data-run="{name}" fill="none" stroke="{run.colour}" '
                f'stroke-width="2"{dash} points="{path}"/>'
            )
        best = run.best()
        if best is not None:
            key = "val_nll" if _finite(best.get("val_nll")) else "train_nll"
            if _finite(best.get(key)):
                title = html.escape(
                    f"{run.name}: best {run.unit} {best['epoch']}, "
                    f"{key.split('_')[0]} NLL {nll_text(best[key])}"
                )
                parts.append(
                    f'<circle class="best" data-run="{name}" data-epoch="{best["epoch"]}" '
                    f'cx="{px(best["epoch"]):.1f}" cy="{py(best[key]):.1f}" r="4.5" '
                    f'fill="{run.colour}" style="stroke:var(--jp-layout-color0,#fff)" '
                    f'stroke-width="1.5"><title>{title}</title></circle>'
                )
    parts.append("</svg>")
    return "".join(parts)


def _swatch(colour: str, *, dashed: bool = False, dot: bool = False) -> str:
    """A short line (and dot) in ``colour``, which may be a CSS variable: set as style."""
    dash = f' stroke-dasharray="{_DASH}"' if dashed else ""
    mark = f'<circle cx="11" cy="6" r="4" style="fill:{colour}"/>' if dot else ""
    return (
        '<svg width="22" height="12" style="vertical-align:middle">'
        f'<line x1="0" y1="6" x2="22" y2="6" style="stroke:{colour}" stroke-width="2"{dash}/>'
        f"{mark}</svg>"
    )


def _summary(run: CurveRun) -> dict[str, str]:
    """A run's caption cells: ``best`` (``epoch 12 of 20``), ``val``, ``train`` (the NLLs at
    that epoch) and ``stopped`` (``running``, the stop reason or ``failed``)."""
    rows = list(run.rows)
    best = run.best()
    cells = {"best": "—", "val": "—", "train": "—", "stopped": run.outcome}
    if rows and best is not None:
        cells["best"] = f"{run.unit} {best['epoch']:,} of {int(rows[-1]['epoch']):,}"
        if run.best_epoch is None and run.outcome == "running":
            cells["best"] += " (so far)"
        for key in ("val", "train"):
            value = best.get(f"{key}_nll")
            cells[key] = nll_text(value) if _finite(value) else "—"
    elif rows:
        cells["best"] = plural(int(rows[-1]["epoch"]), run.unit)
    return cells


def curves_legend(runs: Sequence[CurveRun]) -> str:
    """The caption under the plot: the line styles, then a row per visible run with its
    colour, name, best epoch, the NLLs there and why it stopped (hidden runs are counted)."""
    ink = "var(--jp-ui-font-color1,#333)"
    key = (
        f"{_swatch(ink)} train &nbsp;{_swatch(ink, dashed=True)} validation &nbsp;"
        '<svg width="12" height="12" style="vertical-align:middle"><circle cx="6" cy="6" r="4" '
        f'style="fill:{ink}"/></svg> best epoch (the weights kept)'
    )
    cell = "padding:1px 8px 1px 0;text-align:right;white-space:nowrap"
    head = "".join(
        f'<th style="{cell};font-weight:600">{h}</th>'
        for h in ("best", "val NLL", "train NLL", "stopped")
    )
    body = []
    for run in runs:
        if not run.visible:
            continue
        cells = _summary(run)
        numbers = "".join(
            f'<td style="{cell}">{html.escape(cells[k])}</td>'
            for k in ("best", "val", "train", "stopped")
        )
        loss = (
            f' <span style="color:var(--jp-ui-font-color2,#666)">({html.escape(run.loss)} NLL)'
            "</span>"
            if run.loss != "binomial"
            else ""
        )
        body.append(
            f'<tr><td style="padding:1px 4px 1px 0">{_swatch(run.colour, dot=True)}</td>'
            f'<td style="padding:1px 8px 1px 0;overflow-wrap:anywhere">{html.escape(run.name)}'
            f"{loss}</td>{numbers}</tr>"
        )
    hidden = sum(not r.visible for r in runs)
    note = f"<div>{plural(hidden, 'run')} hidden.</div>" if hidden else ""
    table = (
        '<table style="border-collapse:collapse;font-size:12px;color:inherit">'
        f'<thead><tr><th></th><th style="text-align:left;font-weight:600">run</th>{head}</tr>'
        "</thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
        if body
        else ""
    )
    return (
        '<div class="binomlab-curve-legend" style="font-size:12px;line-height:1.5;'
        f'color:{ink};max-width:540px">'
        f'<div style="color:var(--jp-ui-font-color2,#666)">{key}</div>{table}{note}</div>'
    )


def curves_html(runs: Sequence[CurveRun], *, width: int = 540, height: int = 250) -> str:
    """The plot and its caption, one HTML value (one update in the page per redraw)."""
    legend = curves_legend(runs) if runs else ""
    return (
        f'<div class="binomlab-curves">{curves_svg(runs, width=width, height=height)}{legend}</div>'
    )
