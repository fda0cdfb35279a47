"""The keys every list of the console moves by: ``j``/``k`` down and up, ``g``/``G`` to the
first and last row (the k9s and lazygit habit), beside the arrows, home and end; and
:class:`MovingTable.RowRested`, once the cursor stops on a row.

A list's own keys win over its screen's, so a screen never binds these letters.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, TypeVar

from textual import on, work
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

CellType = TypeVar("CellType")
#: The prefix of these bindings' ids (``?`` lists them after the screen's own keys).
LIST_KEYS = "list."


class MovingTable(DataTable[CellType]):
    """A row-cursor ``DataTable`` that also moves with ``j``/``k`` and ``g``/``G``, and says
    when its cursor rests (:class:`RowRested`)."""

    #: How long the cursor stays on a row before the table posts :class:`RowRested` (as
    #: ``FilterInput.DEBOUNCE`` waits for typing to pause): a pane that shows the row, and
    #: reads what it needs for it, does so on ``RowRested``, and a key held down, or
    #: pressed again sooner, reads and draws nothing for the rows it passes over (each
    #: drawing of a pane is a layout of the screen). Held at 30 presses a second over a
    #: million users, the user detail reads the roles once, and a press costs 9-12 ms of
    #: CPU against 13.5 when every user passed was read and drawn (``bench/console.py
    #: --held-key``; bench/RESULTS.md, 2026-12-06).
    REST_SECONDS: ClassVar[float] = 0.05

    class RowRested(Message):
        """The cursor has stayed on a row for ``REST_SECONDS`` (the row: ``cursor_row``)."""

        def __init__(self, data_table: MovingTable[Any]) -> None:
            super().__init__()
            self.data_table = data_table

        @property
        def control(self) -> MovingTable[Any]:
            return self.data_table

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

    @on(DataTable.RowHighlighted)
    def _rest_after_the_move(self) -> None:
        self.rest()

    @work(exclusive=True, group="cursor-rest", description="Waiting for the cursor to rest")
    async def rest(self) -> None:
        """``RowRested`` after ``REST_SECONDS``, unless the cursor moves first (each move
        calls this again, and a new call cancels the wait)."""
        await asyncio.sleep(self.REST_SECONDS)
        self.post_message(self.RowRested(self))
