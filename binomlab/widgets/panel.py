"""``Panel``: the base of the Lab's panels that act on a :class:`LabState` and show errors."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from binomlab.widgets._render import error_html
from binomlab.widgets.state import LabState

__all__ = ["Panel"]


class Panel(widgets.VBox):
    """A ``VBox`` bound to a :class:`LabState` that shows the exception of its last action.

    Subclasses build their widgets in ``__init__`` (after calling this one), put
    :attr:`error` among their children, and report the outcome of each action with
    :meth:`_show_error` or :meth:`_clear_error`.

    Parameters
    ----------
    state
        The state the panel displays and edits.
    **kwargs
        Passed to ``ipywidgets.VBox``.

    Attributes
    ----------
    state
        The :class:`LabState`.
    error
        ``HTML``: the last error as a red box (:func:`error_html`), or empty.
    last_error
        The exception of the last failed action, or None.
    """

    def __init__(self, state: LabState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.last_error: BaseException | None = None
        self.error = widgets.HTML("")

    def _show_error(self, err: BaseException) -> None:
        """Keep ``err`` as :attr:`last_error` and show it in :attr:`error`."""
        self.last_error = err
        self.error.value = error_html(err)

    def _clear_error(self) -> None:
        """Forget the last error and empty :attr:`error`."""
        self.last_error = None
        self.error.value = ""
