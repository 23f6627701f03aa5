"""``ModelChecklist``: one checkbox per model of a LabState, bound to its selection."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from binomlab.widgets.state import LabState

__all__ = ["ModelChecklist"]


class ModelChecklist(widgets.VBox):
    """Checkboxes of the state's models; ticking one selects it in every panel.

    ``wrap=True`` lays them out in a wrapping row instead of a column.

    Attributes
    ----------
    checkboxes
        ``{model name: Checkbox}``.
    """

    def __init__(
        self,
        state: LabState,
        *,
        title: str = "selected models",
        wrap: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.title = widgets.HTML(f"<b>{title}</b>", layout=widgets.Layout(margin="0 12px 0 0"))
        self.checkboxes: dict[str, widgets.Checkbox] = {}
        self._syncing = False
        if wrap:  # one line of checkboxes (wrapping), under a table
            self.layout.flex_flow = "row wrap"
            self.layout.align_items = "center"
        else:  # a column beside a figure
            self.layout.min_width = "260px"
            self.layout.flex = "0 0 auto"
        self.add_class("binomlab-checklist")
        self.sync()

    def sync(self) -> None:
        """Rebuild the checkboxes from the state's models and tick the selected ones."""
        self._syncing = True
        try:
            names = list(self.state.models)
            if names != list(self.checkboxes):
                boxes = {}
                for name in names:
                    box = self.checkboxes.get(name) or widgets.Checkbox(
                        description=name,
                        indent=False,
                        layout=widgets.Layout(width="auto", margin="0 16px 0 0"),
                    )
                    if name not in self.checkboxes:
                        box.observe(self._on_tick, names="value")
                    boxes[name] = box
                self.checkboxes = boxes
                self.children = (self.title, *boxes.values())
            selected = set(self.state.selected)
            for name, box in self.checkboxes.items():
                box.value = name in selected
        finally:
            self._syncing = False

    def _on_tick(self, _change: Any) -> None:
        if self._syncing:
            return
        self.state.select(name for name, box in self.checkboxes.items() if box.value)
