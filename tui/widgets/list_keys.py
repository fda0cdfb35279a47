"""The keys every list of the console moves by: ``j``/``k`` down and up, ``g``/``G`` to the
first and last row (the k9s and lazygit habit), beside the arrows, home and end.

A list's own keys win over its screen's, so a screen never binds these letters.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

from textual.binding import Binding, BindingType
from textual.widgets import DataTable

CellType = TypeVar("CellType")
#: The prefix of these bindings' ids (``?`` lists them after the screen's own keys).
LIST_KEYS = "list."


class MovingTable(DataTable[CellType]):
    """A row-cursor ``DataTable`` that also moves with ``j``/``k`` and ``g``/``G``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "j",
            "cursor_down",
            "Down",
            show=False,
            id=f"{LIST_KEYS}down",
            tooltip="The next row (as down)",
        ),
        Binding(
            "k",
            "cursor_up",
            "Up",
            show=False,
            id=f"{LIST_KEYS}up",
            tooltip="The previous row (as up)",
        ),
        Binding(
            "g",
            "scroll_top",
            "First row",
            show=False,
            id=f"{LIST_KEYS}first",
            tooltip="The first row",
        ),
        Binding(
            "G",
            "scroll_bottom",
            "Last row",
            show=False,
            id=f"{LIST_KEYS}last",
            tooltip="The last row shown",
        ),
    ]
