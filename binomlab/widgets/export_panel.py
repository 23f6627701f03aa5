"""The Export tab: write a trained model to a folder that ``bl.load`` serves."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from binomlab.errors import BinomlabError
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
        folder that already holds files, else exporting there is refused). ``model`` starts
        at the best model (see :meth:`sync`).
    best
        The best exportable model's name (lowest NLL on the Lab's leaderboard), or None
        (without data, or without an exportable model).
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
        self.best: str | None = None
        self.best_note = widgets.HTML("")
        self._offered: list[Any] = []
        self._chosen: Any = None
        self.export_button.on_click(self._on_export)
        self.model.observe(self._on_choice, names="value")
        self.state.subscribe(lambda _event: self.sync())
        self.sync()
        self.children = (
            widgets.HBox([self.model, self.best_note], layout=widgets.Layout(align_items="center")),
            self.formats,
            self.folder,
            self.overwrite,
            self.export_button,
            self.result,
            self.error,
        )

    def sync(self) -> None:
        """Offer the state's exportable models. When models are added or deleted the best
        one (the leaderboard's first exportable row: lowest NLL) becomes the choice, or the
        last added where there is no leaderboard (no data); a renamed choice stays chosen."""
        models = dict(self.state.models)
        names = [n for n, m in models.items() if callable(getattr(m, "export", None))]
        chosen = self._chosen
        objects = [models[n] for n in names]
        same = len(objects) == len(self._offered) and all(
            a is b for a, b in zip(objects, self._offered, strict=True)
        )
        self.best = self._best(names)
        if list(self.model.options) != names:
            self.model.options = names
        if same and chosen is not None and any(m is chosen for m in objects):
            value = names[next(i for i, m in enumerate(objects) if m is chosen)]
        elif same and self.model.value in names:
            value = self.model.value
        else:
            value = self.best if self.best is not None else (names[-1] if names else None)
        self.model.value = value
        self._offered = objects
        self._chosen = models.get(value) if value is not None else None
        self.export_button.disabled = not names
        self.best_note.value = (
            ""
            if self.best is None
            else f"best: <b>{html.escape(self.best)}</b> (lowest NLL on the leaderboard)"
        )

    def _best(self, names: list[str]) -> str | None:
        """The leaderboard's first exportable model, or None without a leaderboard."""
        if not names or (self.state.val is None and self.state.train is None):
            return None
        try:
            board = self.state.leaderboard()
        except Exception:  # the Compare tab shows why the leaderboard cannot be made
            return None
        return next((n for n in board["model"] if n in names), None)

    def _on_choice(self, change: Any) -> None:
        self._chosen = self.state.models.get(change["new"]) if change["new"] is not None else None

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
            if not self.folder.value.strip():  # "" would be the working directory, unasked
                msg = "Expected a folder to export into, e.g. models. Received: an empty folder"
                raise BinomlabError(msg)
            path = self.state.models[name].export(
                self.destination(), formats=self.formats.value, overwrite=self.overwrite.value
            )
        except Exception as err:
            self._show_error(err)
            return
        self.last_path = Path(path).resolve()
        files = ", ".join(sorted(p.name for p in self.last_path.iterdir()))
        wrote = f"Wrote <code>{html.escape(str(self.last_path))}</code> ({html.escape(files)}). "
        if "onnx" in self.formats.value:
            serve = f"Serve it with <code>bl.load({html.escape(repr(str(self.last_path)))})</code>."
        else:  # bl.load serves model.onnx: a native-only export is not one it can load
            serve = (
                "Native format only: <code>bl.load</code> serves the ONNX model, so export "
                "with ONNX to serve it."
            )
        self.result.value = wrote + serve
