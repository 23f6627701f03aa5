"""The Export tab: write a trained model to a folder that ``bl.load`` serves."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from binomlab.widgets._render import slug
from binomlab.widgets.panel import Panel
from binomlab.widgets.state import LabState

__all__ = ["FORMAT_CHOICES", "ExportPanel"]

FORMAT_CHOICES = {
    "ONNX + native": ("onnx", "native"),
    "ONNX (bl.load)": ("onnx",),
    "native only": ("native",),
}


class ExportPanel(Panel):
    """Choose a model, the formats and a folder; Export writes ``folder/<model name>``.

    Parameters
    ----------
    models
        ``{name: Fitted}``; ignored when ``state`` is given. Models that cannot export
        (plain probabilities, loaded predictors) are not offered.
    state
        A :class:`LabState` shared with other panels.

    Attributes
    ----------
    model, formats, folder, overwrite
        The inputs (``formats`` holds a tuple for ``Fitted.export``; ``overwrite`` replaces a
        folder that already holds files, else exporting there is refused).
    last_path
        The directory written by the last export, or None.
    last_error
        The exception of the last failed export (also shown), or None.
    """

    def __init__(
        self,
        models: Mapping[str, Any] | None = None,
        *,
        state: LabState | None = None,
        folder: str | Path = "models",
        **kwargs: Any,
    ) -> None:
        super().__init__(state if state is not None else LabState(models=models), **kwargs)
        self.last_path: Path | None = None
        style = {"description_width": "70px"}
        self.model = widgets.Dropdown(
            description="model", style=style, layout=widgets.Layout(width="360px")
        )
        self.formats = widgets.Dropdown(
            options=list(FORMAT_CHOICES.items()),
            description="formats",
            style=style,
            layout=widgets.Layout(width="360px"),
        )
        self.folder = widgets.Text(
            value=str(folder),
            description="folder",
            style=style,
            layout=widgets.Layout(width="360px"),
        )
        self.overwrite = widgets.Checkbox(
            value=False, description="replace the folder if it holds an export", indent=False
        )
        self.export_button = widgets.Button(
            description="Export", button_style="primary", icon="download"
        )
        self.result = widgets.HTML("")
        self.export_button.on_click(self._on_export)
        self.state.subscribe(lambda _event: self.sync())
        self.sync()
        self.children = (
            self.model,
            self.formats,
            self.folder,
            self.overwrite,
            self.export_button,
            self.result,
            self.error,
        )

    def sync(self) -> None:
        """Offer the state's exportable models; a model just added becomes the choice."""
        names = [n for n, m in self.state.models.items() if callable(getattr(m, "export", None))]
        added = [n for n in names if n not in self.model.options]
        keep = self.model.value
        self.model.options = names
        if added:
            self.model.value = added[-1]
        else:
            self.model.value = keep if keep in names else (names[-1] if names else None)
        self.export_button.disabled = not names

    def destination(self) -> Path:
        """``folder / slug(model name)``, where Export writes."""
        return Path(self.folder.value).expanduser() / slug(str(self.model.value))

    def _on_export(self, _button: Any) -> None:
        self._clear_error()
        self.result.value = ""
        try:
            name = self.model.value
            if name is None:
                msg = "No model to export: train one first."
                raise ValueError(msg)
            path = self.state.models[name].export(
                self.destination(), formats=self.formats.value, overwrite=self.overwrite.value
            )
        except Exception as err:
            self._show_error(err)
            return
        self.last_path = Path(path).resolve()
        files = ", ".join(sorted(p.name for p in self.last_path.iterdir()))
        self.result.value = (
            f"Wrote <code>{html.escape(str(self.last_path))}</code> ({html.escape(files)}). "
            f"Serve it with <code>bl.load({html.escape(repr(str(self.last_path)))})</code>."
        )
