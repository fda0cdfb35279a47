"""The users screen: the deployment catalog, the users of PRIMARY, and the highlighted user."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, Static

from core.iam import Iam
from core.names import PRIMARY
from tui.messages import EngineFailed
from tui.widgets.catalog import CatalogPanel
from tui.widgets.header import AppHeader
from tui.widgets.user_detail import UserDetail
from tui.widgets.users_table import UsersTable


class UsersScreen(Screen[None]):
    AUTO_FOCUS = "#users"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/", id="users.filter",
                tooltip="Show only the users whose name starts with a prefix"),
        Binding("escape", "clear_filter", "Clear filter", id="users.clear_filter",
                tooltip="Show every user again"),
        Binding("r", "refresh", "Refresh", id="users.refresh",
                tooltip="Read the users and the catalog again"),
    ]

    def __init__(self, iam: Iam, deployment: str, read_only: bool, page_size: int) -> None:
        super().__init__()
        self._iam = iam
        self._deployment = deployment
        self._read_only = read_only
        self._page_size = page_size

    def compose(self) -> ComposeResult:
        yield AppHeader(self._deployment, self._read_only, id="header")
        with Horizontal(id="body"):
            catalog = CatalogPanel(self._iam, id="catalog")
            catalog.border_title = "Deployment"
            yield catalog
            with Vertical(id="main"):
                with Vertical(id="users-pane") as pane:
                    pane.border_title = f"Users · {PRIMARY}"
                    with Horizontal(id="filter-bar"):
                        yield Label("Username starts with", id="filter-label")
                        yield Input(placeholder="enter applies, esc clears", id="filter")
                    yield UsersTable(self._iam, PRIMARY, self._page_size, id="users")
                    yield Static(id="users-status", markup=False)
                detail = UserDetail(self._iam, id="detail")
                detail.border_title = "User"
                yield detail
        yield Footer()

    def on_mount(self) -> None:
        self.action_refresh()

    @property
    def _table(self) -> UsersTable:
        return self.query_one(UsersTable)

    @property
    def _filter(self) -> Input:
        return self.query_one("#filter", Input)

    @property
    def _filter_bar(self) -> Horizontal:
        return self.query_one("#filter-bar", Horizontal)

    # ------------------------------------------------------------------ actions
    def action_refresh(self) -> None:
        self.query_one(CatalogPanel).load()
        self._search(self._table.prefix)

    def action_filter(self) -> None:
        self._filter_bar.display = True
        self._filter.focus()
        self.refresh_bindings()

    def action_clear_filter(self) -> None:
        self._filter.value = ""
        self._filter_bar.display = False
        if self._table.prefix is not None:
            self._search(None)
        self._table.focus()
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            return self._filter_bar.display or self._table.prefix is not None
        return True

    @on(Input.Submitted, "#filter")
    def _apply_filter(self, event: Input.Submitted) -> None:
        prefix = event.value.strip()
        if not prefix:
            self.action_clear_filter()
            return
        self._search(prefix)
        self._table.focus()
        self.refresh_bindings()

    def _search(self, prefix: str | None) -> None:
        self.query_one(UserDetail).show(None)
        self._table.search(prefix)
        self._show_status()

    def _show_status(self) -> None:
        self.query_one("#users-status", Static).update(_status(self._table))

    # ------------------------------------------------------------------ engine replies
    @on(EngineFailed)
    def _engine_failed(self) -> None:
        # The app reports the error itself; here the status line stops saying "Loading".
        self._show_status()

    @on(UsersTable.PageLoaded)
    def _page_loaded(self) -> None:
        self._show_status()
        self.query_one(UserDetail).show(self._table.highlighted_user)

    @on(DataTable.RowHighlighted, "#users")
    def _user_highlighted(self) -> None:
        self.query_one(UserDetail).show(self._table.highlighted_user)


def _status(table: UsersTable) -> str:
    if table.failed:
        return "Users could not be read (see the message); r reloads."
    if table.loading_page and not table.row_count:
        return "Loading users…"
    shown, total = table.row_count, table.total
    matching = f" starting with {table.prefix!r}" if table.prefix else ""
    if not shown:
        return f"No users{matching}."
    count = _users(shown) if total is None or total == shown else f"{shown} of {_users(total)}"
    more = " · the next page loads at the end" if table.has_more else ""
    return f"{count}{matching}{more}"


def _users(n: int) -> str:
    return f"{n} user" if n == 1 else f"{n} users"
