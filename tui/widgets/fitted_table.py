"""A ``DataTable`` whose columns share the table's width.

When every column fits at its natural width (its widest cell or label) each gets it. When
they do not, the columns named in ``FIRST`` (names, targets: what a row is read by) are
served first; the others give way first, the widest of them cut first, down to a floor;
only then do the first columns give way, the same way. A cut cell ends with an ellipsis
(plain text cells are shown as ``Text`` with ``overflow="ellipsis"``, never as markup).

Widths are measured as rows arrive (a running maximum per column, so a live table does not
jump when a long row leaves) and shared again when the table is resized.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.text import Text, TextType
from textual import events
from textual.geometry import Size
from textual.widgets.data_table import ColumnKey, RowKey

from tui.widgets.list_keys import MovingTable

#: What a column that must give way keeps at least (fewer if it needs fewer): the columns
#: served first keep a readable part of a name, the others a letter or two and the ellipsis.
FIRST_FLOOR = 8
OTHER_FLOOR = 4


def share_width(natural: Sequence[int], floors: Sequence[int], first: Sequence[bool],
                room: int) -> list[int]:
    """Widths for columns of ``natural`` widths in ``room`` cells (see the module's doc).

    When even the floors do not fit, the floors are returned (the table then scrolls).
    """
    widths = list(natural)
    for tier in (False, True):  # the other columns give way before the first ones
        excess = sum(widths) - room
        if excess <= 0:
            break
        members = [i for i, f in enumerate(first) if f == tier and widths[i] > floors[i]]
        while excess > 0 and members:
            widest = max(widths[i] for i in members)
            for i in [i for i in members if widths[i] == widest]:
                if excess <= 0:
                    break
                widths[i] -= 1
                excess -= 1
            members = [i for i in members if widths[i] > floors[i]]
    return widths


def ellipsis_cell(cell: Any) -> Any:
    """Plain text as a ``Text`` cut with an ellipsis; anything else unchanged."""
    if type(cell) is str:
        return Text(cell, no_wrap=True, overflow="ellipsis", end="")
    if isinstance(cell, Text) and cell.overflow is None:
        cell.no_wrap, cell.overflow = True, "ellipsis"
    return cell


def _cell_width(cell: Any) -> int:
    if isinstance(cell, Text):
        return cell.cell_len
    return cell_len(str(cell))


class FittedTable(MovingTable[Any]):
    """See the module's doc. ``FIRST``: keys of the columns served first (default: the
    first column)."""

    FIRST: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        #: The widest cell seen per column key (labels included).
        self._natural: dict[ColumnKey, int] = {}
        self._shared_for: tuple[int, tuple[int, ...]] | None = None

    # ------------------------------------------------------------------ measuring
    def add_column(self, label: TextType, *, width: int | None = None,
                   key: str | None = None, default: Any | None = None) -> ColumnKey:
        if isinstance(label, str):
            label = Text(label, no_wrap=True, overflow="ellipsis", end="")
        column = super().add_column(label, width=width, key=key, default=default)
        self._natural[column] = cell_len(str(label))
        self._refit()
        return column

    def add_row(self, *cells: Any, height: int | None = 1, key: str | None = None,
                label: TextType | None = None) -> RowKey:
        fitted = [ellipsis_cell(c) for c in cells]
        for column, cell in zip(self.ordered_columns, fitted, strict=False):
            self._grow(column.key, cell)
        return super().add_row(*fitted, height=height, key=key, label=label)

    def update_cell(self, row_key: RowKey | str, column_key: ColumnKey | str, value: Any,
                    *, update_width: bool = False) -> None:
        cell = ellipsis_cell(value)
        self._grow(ColumnKey(column_key) if isinstance(column_key, str) else column_key, cell)
        super().update_cell(row_key, column_key, cell, update_width=update_width)

    def clear(self, columns: bool = False) -> Any:
        self._natural = {} if columns else {
            key: cell_len(str(column.label)) for key, column in self.columns.items()}
        return super().clear(columns)

    def _grow(self, key: ColumnKey, cell: Any) -> None:
        width = _cell_width(cell)
        if width > self._natural.get(key, 0):
            self._natural[key] = width
            self._refit()

    # ------------------------------------------------------------------ sharing
    def on_resize(self, event: events.Resize) -> None:
        self._refit()

    def _refit(self) -> None:
        if self.is_mounted:
            self.call_after_refresh(self.fit_columns)

    def fit_columns(self) -> None:
        """Share the table's width among its columns now."""
        columns = self.ordered_columns
        if not columns:
            return
        first_keys = self.FIRST or {columns[0].key.value or ""}
        natural = [self._natural.get(c.key, 0) for c in columns]
        room = self.scrollable_content_region.width - 2 * self.cell_padding * len(columns)
        if (room, tuple(natural)) == self._shared_for:
            return
        self._shared_for = (room, tuple(natural))
        first = [c.key.value in first_keys for c in columns]
        floors = [min(n, FIRST_FLOOR if f else OTHER_FLOOR) for n, f in zip(
            natural, first, strict=True)]
        widths = share_width(natural, floors, first, room)
        if [c.width for c in columns] == widths and not any(c.auto_width for c in columns):
            return
        for column, width in zip(columns, widths, strict=True):
            column.width, column.auto_width = width, False
        self.virtual_size = Size(sum(c.get_render_width(self) for c in columns),
                                 self.virtual_size.height)
        self.notify_style_update()  # the cells' renderings were cached at the old widths
