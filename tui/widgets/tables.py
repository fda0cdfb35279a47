"""The console's object lists: a ``DataTable`` keyed by the object's name, refilled whole
(or, for a paged list, extended a page at a time)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual import events

from tui.widgets.fitted_table import FittedTable


class ListTable(FittedTable):
    """A row-cursor table whose rows are replaced at once by :meth:`refill`; its columns
    share its width, the first (the object's name) served first."""

    def __init__(self, *columns: str, id: str | None = None) -> None:
        super().__init__(id=id)
        self._columns = columns
        self._widths_changed = False

    def on_mount(self) -> None:
        for label in self._columns:
            self.add_column(label, key=label)

    def refill(self, rows: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Replace the rows, keeping the cursor on the same key when it is still there."""
        current = self.highlighted_key
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        keys = [key for key, _cells in rows]
        if current in keys:
            self.move_cursor(row=keys.index(current), animate=False)
        self._widths_changed = True

    def extend(self, rows: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Add rows after the ones shown (the next page of a paged list)."""
        for key, cells in rows:
            self.add_row(*cells, key=key)
        self._widths_changed = True

    def on_idle(self, event: events.Idle) -> None:
        # DataTable measures new rows when idle but keeps rows it rendered before at the old
        # column widths; render them again once the widths are known.
        if self._widths_changed:
            self._widths_changed = False
            self.notify_style_update()
            self.refresh()

    @property
    def highlighted_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value


def plain(value: object) -> Text:
    """A cell that is never read as console markup (names may hold ``[``), cut with an
    ellipsis when its column is too narrow."""
    return Text(str(value), no_wrap=True, overflow="ellipsis", end="")


def matches(needle: str, *haystack: object) -> bool:
    """Case-insensitive substring filter used by the client-side ``/`` filters."""
    folded = needle.casefold()
    return any(folded in str(h).casefold() for h in haystack)
