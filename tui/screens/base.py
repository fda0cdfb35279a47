"""What the console's screens share: the deployment, read-only refusals, confirmation,
engine-error reporting, and the header and footer around their body; and, for the
sections that are one filtered list with a detail pane, :class:`ListDetailScreen`.

See ``tui/CONTRIBUTING-SCREENS.md`` for the contract between the shell and the screens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Protocol, Self

from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widgets import DataTable

from core.iam import Iam
from core.identity.events import Initiator
from core.provisioning.outbox import AttemptSummary
from core.provisioning.status import TargetStatus
from tui.engine_errors import ReportsEngineErrors
from tui.widgets.chrome import AppHeader, ConsoleFooter
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.engine_calls import CallsEngine
from tui.widgets.filter_bar import FilterBar
from tui.widgets.list_keys import MovingTable
from tui.widgets.tables import ListTable


class StatusSource(Protocol):
    """Where the dashboard reads from: ``iam.provisioning``, or fixed data in tests."""

    def status(self) -> list[TargetStatus]: ...

    def activity(self, limit: int = ...) -> list[AttemptSummary]: ...


class ConsoleHost(Protocol):
    """What a screen reads of the console app when it is built for its section
    (``tui.app.MwareConsole``, which imports the screens: a protocol, so no cycle)."""

    iam: Iam
    read_only: bool
    live: bool
    status_source: StatusSource | None

#: Who the console's writes are audited as: the operator (SSH) or the OS user.
CONSOLE_ADMIN = Initiator.console_operator()


def refuse_write(node: DOMNode, what: str) -> bool:
    """In a read-only session, say so and return True; the caller then does nothing."""
    if not getattr(node.app, "read_only", False):
        return False
    node.app.notify(f"Read-only session: cannot {what}.", title="Refused", severity="warning")
    return True


class ConsoleScreen(ReportsEngineErrors, Screen[None]):
    """A section of the console; subclasses implement :meth:`compose_body`."""

    @classmethod
    def for_console(cls, app: ConsoleHost) -> Self:
        """The screen as the console builds it for its section (``tui/navigation.py``);
        a screen that takes more than the deployment and the read-only flag overrides it."""
        return cls(app.iam, app.read_only)

    def __init__(self, iam: Iam, read_only: bool) -> None:
        super().__init__()
        self.iam = iam
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        yield AppHeader()
        yield from self.compose_body()
        yield ConsoleFooter()

    def compose_body(self) -> ComposeResult:
        """The widgets between the header and the footer."""
        yield from ()

    def refuse_write(self, what: str) -> bool:
        return refuse_write(self, what)

    def confirm(self, question: str, on_yes: Callable[[], object], *, detail: str = "",
                action: str = "Confirm") -> None:
        """Ask first; ``on_yes`` runs only when the administrator confirms."""
        def answered(yes: bool | None) -> None:
            if yes:
                on_yes()

        self.app.push_screen(ConfirmScreen(question, detail, action=action), answered)

    def palette_commands(self) -> Iterable[SystemCommand]:
        """Commands that make sense on this screen now (the app's palette asks for them)."""
        return ()


def list_bindings(screen: str, filter_tooltip: str, clear_tooltip: str) -> list[BindingType]:
    """The ``/`` filter and its clearing, as every list screen binds them."""
    return [
        Binding("slash", "filter", "Filter", key_display="/", id=f"{screen}.filter",
                tooltip=filter_tooltip),
        Binding("escape", "clear_filter", "Clear filter", id=f"{screen}.clear_filter",
                tooltip=clear_tooltip),
    ]


class FilteredScreen(ConsoleScreen):
    """A section whose main table (``table``) sits under a :class:`FilterBar`: ``/`` opens
    the bar, which applies (``apply_filter``) as the administrator types and on enter (then
    the list takes the focus back), and ``escape`` clears it, a key offered only while a
    filter is set or the bar is open (otherwise escape goes back to the previous screen)."""

    @property
    def table(self) -> DataTable[Any]:
        raise NotImplementedError

    @property
    def filter_bar(self) -> FilterBar:
        return self.query_one(FilterBar)

    def apply_filter(self) -> None:
        """Show what the filter (``filter_bar.value``) now keeps."""
        raise NotImplementedError

    def action_filter(self) -> None:
        self.filter_bar.open()
        self.refresh_bindings()

    def action_clear_filter(self) -> None:
        self.filter_bar.clear()
        self.table.focus()
        self.refresh_bindings()

    @on(FilterBar.Applied)
    def _filter_applied(self, message: FilterBar.Applied) -> None:
        if message.changed:
            self.apply_filter()
        if message.done:
            self.table.focus()
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            return self.filter_bar.active
        return True


class ListDetailScreen(CallsEngine, FilteredScreen):
    """A section that is one filtered list (a :class:`ListTable` whose id is ``LIST_ID``,
    under a :class:`FilterBar`, in a container of class ``list-pane``) and a detail pane
    (class ``detail-pane``) for the highlighted row.

    It reads on mount (``action_refresh``), keeps the keys in step with the cursor and
    shows the row it rests on in the detail (``show_detail``), and runs the filter
    (:class:`FilteredScreen`; applying it reads again, unless the subclass filters what it
    holds). The detail pane's height is the subclass's to set.
    """

    DEFAULT_CSS = """
    ListDetailScreen .list-pane {
        height: 1fr;
        border: round $panel-lighten-2;
    }
    ListDetailScreen .detail-pane {
        min-height: 6;
        padding: 0 1;
        border: round $panel-lighten-2;
    }
    ListDetailScreen .list-pane:focus-within, ListDetailScreen .detail-pane:focus {
        border: heavy $accent;
    }
    ListDetailScreen .list-pane > ListTable {
        height: 1fr;
    }
    """
    LIST_ID: ClassVar[str]

    def on_mount(self) -> None:
        self.action_refresh()

    @property
    def table(self) -> ListTable:
        return self.query_one(f"#{self.LIST_ID}", ListTable)

    def action_refresh(self) -> None:
        """Read the list from the engine (in a worker) and show it."""
        raise NotImplementedError

    def show_detail(self) -> None:
        """Show the highlighted row in the detail pane."""

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table is self.table:
            self.refresh_bindings()

    @on(MovingTable.RowRested)
    def _row_rested(self, event: MovingTable.RowRested) -> None:
        if event.data_table is self.table:
            self.show_detail()

    def apply_filter(self) -> None:
        """Show what the filter now keeps (by default: read the list again)."""
        self.action_refresh()
