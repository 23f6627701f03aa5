"""Small renderers shared by the panels: HTML tables, numbers, errors, figures, files."""

from __future__ import annotations

import base64
import html
import io
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    import ipywidgets
    from matplotlib.figure import Figure

__all__ = [
    "LAB_STYLE",
    "check_new_file",
    "decimals_for",
    "error_html",
    "frame_html",
    "interval_text",
    "legend_below",
    "number_text",
    "p_text",
    "se_text",
    "show_figure",
    "slug",
    "special_text",
    "write_beside",
]

TABLE_STYLE = (
    "<style>"
    # JupyterLab's theme variables (light and dark), with the light theme's values outside it
    ".binomlab-table{border-collapse:collapse;font-size:12px;"
    "color:var(--jp-ui-font-color1,#212121)}"
    ".binomlab-table th,.binomlab-table td{padding:2px 8px;text-align:right;"
    "border-bottom:1px solid var(--jp-border-color2,#ddd);white-space:nowrap}"
    ".binomlab-table th{background:var(--jp-layout-color2,#f3f3f3);"
    "color:var(--jp-ui-font-color1,#212121);font-weight:600}"
    ".binomlab-table td:first-child,.binomlab-table th:first-child{text-align:left}"
    # a table wider than its panel scrolls inside it instead of overflowing the page
    # (width 0 and min-width 100%: the table's width does not widen the widget around it)
    ".binomlab-table-scroll{width:0;min-width:100%;overflow-x:auto}"
    "</style>"
)
"""The tables' CSS: colours from JupyterLab's theme variables, so headers stay readable in
the dark theme."""

LAB_STYLE = (
    "<style>"
    # an HTML widget is as narrow as its panel: its tables scroll inside it
    ".binomlab-lab .widget-html-content{min-width:0}"
    # long model names wrap in their checkboxes instead of ending in an ellipsis
    ".binomlab-lab .widget-checkbox{height:auto;max-width:100%}"
    ".binomlab-lab .widget-checkbox .widget-label-basic,"
    ".binomlab-lab .widget-checkbox .widget-label-basic span"
    "{white-space:normal;overflow:visible;text-overflow:clip;height:auto}"
    "</style>"
)
"""The Lab's own CSS, in its title: layout rules for the widgets inside ``.binomlab-lab``."""


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return html.escape(str(value))


def frame_html(frame: pl.DataFrame, *, css_class: str = "", digits: int = 5) -> str:
    """A Polars frame as a plain HTML table (floats to ``digits`` decimals, ints with commas)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(v, digits)}</td>" for v in row) + "</tr>"
        for row in frame.iter_rows()
    )
    return (
        f'{TABLE_STYLE}<div class="binomlab-table-scroll"><table class="binomlab-table '
        f'{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )


def decimals_for(std_errors: Sequence[float | None], *, low: int = 3, high: int = 6) -> int:
    """Decimals that show the first two significant digits of the smallest finite standard
    error, within ``[low, high]`` (4 when none is finite): a column's common precision."""
    finite = [s for s in std_errors if s is not None and math.isfinite(s) and s > 0]
    if not finite:
        return 4
    return min(high, max(low, math.ceil(-math.log10(min(finite))) + 1))


def special_text(value: float | None) -> str | None:
    """How a table shows a value that is not an ordinary number: ``—`` for None, ``n/a`` for
    NaN, ``inf`` / ``-inf``; None for a finite number."""
    if value is None:
        return "—"
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return None


def number_text(value: float | None, decimals: int) -> str:
    """``value`` to ``decimals`` decimals (``0.0000``, never ``-0.0000``); ``—`` for None,
    ``n/a`` for NaN, ``inf`` for infinity."""
    special = special_text(value)
    if special is not None:
        return special
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def se_text(std_error: float | None, decimals: int) -> str:
    """A standard error to ``decimals`` decimals, or to two significant digits where those
    would show a positive one as zero; ``n/a`` where it is not defined."""
    if std_error is None or not math.isfinite(std_error):
        return "n/a"
    text = number_text(std_error, decimals)
    return f"{std_error:.2g}" if std_error > 0 and float(text) == 0 else text


def interval_text(
    value: float | None, lower: float | None, upper: float | None, decimals: int
) -> str:
    """``0.5045 [0.5012, 0.5078]``: an estimate and its interval (``[n/a]`` without one)."""
    text = number_text(value, decimals)
    bounds = (lower, upper)
    if any(b is None or not math.isfinite(b) for b in bounds):
        return f"{text} [n/a]"
    return f"{text} [{number_text(lower, decimals)}, {number_text(upper, decimals)}]"


def p_text(p_value: float | None) -> str:
    """A p-value as reported: ``0.034``, ``< 0.001``; ``—`` for None, ``n/a`` for NaN."""
    if p_value is None:
        return "—"
    if not math.isfinite(p_value):
        return "n/a"
    return "< 0.001" if p_value < 0.001 else f"{p_value:.3f}"


def error_html(err: BaseException) -> str:
    """An exception as a red box: its type and message."""
    text = html.escape(f"{type(err).__name__}: {err}")
    return (
        '<div class="binomlab-error" style="color:#8b0000;background:#fdecea;padding:6px 10px;'
        f'border-left:4px solid #d32f2f;white-space:pre-wrap">{text}</div>'
    )


LEGEND_INSIDE = 4
"""The most entries a legend keeps inside its axes; a longer one (many models) would cover
the curves, so :func:`legend_below` moves it under the figure."""


def legend_below(figure: Figure, axes: Any, *, inside: int = LEGEND_INSIDE) -> None:
    """Move the legend of ``axes`` under ``figure`` (one entry a line, the same entries)
    when it has more than ``inside`` entries: inside the axes it would hide the curves. The
    figure grows by the legend's height.

    ``figure`` must use the constrained layout, which makes room for the legend under it.
    """
    if axes.get_legend() is None:
        return
    handles, labels = axes.get_legend_handles_labels()
    if len(labels) <= inside:
        return
    axes.get_legend().remove()
    figure.legend(handles, labels, loc="outside lower center", fontsize="small", frameon=False)
    # the figure grows by the legend's lines (about 0.2 in each), so the axes keep their size
    lines = sum(label.count("\n") + 1 for label in labels)
    width, height = figure.get_size_inches()
    figure.set_size_inches(width, height + 0.2 * lines + 0.1)


def show_figure(output: ipywidgets.Output, figure: Figure, *, dpi: int = 100) -> None:
    """Replace what ``output`` shows with ``figure`` as a PNG.

    The Output's ``outputs`` are set directly, so this works from any thread and without an
    IPython kernel (in tests).
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    png = base64.b64encode(buffer.getvalue()).decode("ascii")
    output.outputs = (
        {
            "output_type": "display_data",
            "data": {"image/png": png, "text/plain": repr(figure)},
            "metadata": {},
        },
    )


def check_new_file(target: Path, *, overwrite: bool) -> None:
    """Refuse to write ``target`` when it exists (without ``overwrite``) or its folder does
    not: a BinomlabError saying what to do."""
    from binomlab.errors import BinomlabError

    if target.exists() and not overwrite:
        msg = f"{target} exists: tick 'replace' (overwrite=True) to replace it."
        raise BinomlabError(msg)
    if not target.parent.is_dir():
        msg = f"The folder {target.parent} does not exist: create it or pick another path."
        raise BinomlabError(msg)


def write_beside(target: Path, write: Callable[[str], None], *, suffix: str = "") -> Path:
    """``write(temporary_path)`` into a new file beside ``target``, then rename it into place:
    a failed write leaves ``target`` as it was and no partial file."""
    handle, temporary = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=suffix,
                                         dir=target.parent)  # fmt: skip
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return target


def slug(name: str) -> str:
    """A model name as a folder name: ``mlp:64,32/lightning #2`` → ``mlp_64_32-lightning-2``."""
    out = []
    for ch in name:
        if ch.isalnum() or ch in "-_.":
            out.append(ch)
        elif ch == "/":
            out.append("-")
        elif ch in ":,":
            out.append("_")
        elif ch == "#":
            out.append("-")
        elif ch == " ":
            continue
        else:
            out.append("_")
    return "".join(out).strip("._") or "model"
