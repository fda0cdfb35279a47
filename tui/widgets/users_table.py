"""The users of one userstore, a page at a time (the core's cursor paging, never all users).

Reaching the last row loads the next page; ``search`` starts again from the first page of
the users whose name starts with a prefix, or whose claim has a value (filtered by the
store, server-side).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on, work
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable
from textual.worker import Worker, WorkerState

from core.claims import LOCAL_DIALECT
from core.iam import Iam
from core.identity.service import UserView
from core.userstores.base import Page
from tui.engine_errors import ReportsEngineErrors
from tui.widgets.fitted_table import FittedTable

#: (column label, local claim short name); None is the username itself.
COLUMNS: tuple[tuple[str, str | None], ...] = (
    ("Username", None),
    ("Display name", "displayname"),
    ("Email", "emailaddress"),
    ("Given name", "givenname"),
    ("Last name", "lastname"),
)


@dataclass(frozen=True)
class PageRequest:
    """One page asked of the engine; a reply to an older request is dropped."""

    domain: str
    prefix: str | None
    cursor: str | None
    page_size: int
    #: (claim, exact value): search by claim instead of by username prefix
    claim: tuple[str, str] | None = None


class UsersTable(ReportsEngineErrors, FittedTable):
    """Row keys are qualified names (``PRIMARY/alice``); the columns share the width, the
    username served first (``FittedTable``)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("home", "scroll_top", "First user", show=False, id="users.first"),
        Binding("end", "scroll_bottom", "Last user (loads the next page)", show=False,
                id="users.last"),
    ]

    @dataclass
    class PageLoaded(Message):
        request: PageRequest
        page: Page[UserView]
        #: How many users match, counted with the first page only.
        total: int | None

    def __init__(self, iam: Iam, domain: str, page_size: int, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._iam = iam
        self.domain = domain
        self.page_size = page_size
        self.prefix: str | None = None
        self.claim: tuple[str, str] | None = None
        self.total: int | None = None
        #: The users shown, by row key.
        self.users: dict[str, UserView] = {}
        #: True when the last page asked for could not be read (moving to the end retries).
        self.failed = False
        self._next_cursor: str | None = None
        self._pending: PageRequest | None = None
        #: Row key to put the cursor on if it is on the next page that arrives.
        self.select_after_load: str | None = None

    def on_mount(self) -> None:
        for label, _claim in COLUMNS:
            self.add_column(label, key=label)

    # ------------------------------------------------------------------ state
    @property
    def loading_page(self) -> bool:
        return self._pending is not None

    @property
    def has_more(self) -> bool:
        return self._next_cursor is not None

    @property
    def highlighted_user(self) -> UserView | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self.users.get(key) if key is not None else None

    # ------------------------------------------------------------------ loading
    @property
    def searching(self) -> bool:
        return self.prefix is not None or self.claim is not None

    def search(self, prefix: str | None, claim: tuple[str, str] | None = None,
               domain: str | None = None) -> None:
        """Show the first page of the users whose name starts with ``prefix``, or whose
        ``claim`` has exactly that value (neither: every user), of ``domain`` if given."""
        self.domain = domain or self.domain
        self.prefix = prefix
        self.claim = claim
        self.total = None
        self.users.clear()
        self.clear()
        self._next_cursor = None
        self._request(None)

    def _request(self, cursor: str | None) -> None:
        self.failed = False
        self._pending = PageRequest(self.domain, self.prefix, cursor, self.page_size,
                                    self.claim)
        self._fetch(self._pending)

    @work(thread=True, exclusive=True, exit_on_error=False, group="users-page",
          description="Loading users")
    def _fetch(self, request: PageRequest) -> None:
        identity = self._iam.identity
        page = identity.list_users(request.domain, request.page_size, request.cursor,
                                   request.prefix, claim=request.claim)
        first_of_all = request.cursor is None and request.claim is None
        total = identity.count_users(request.domain, request.prefix) if first_of_all else None
        self.post_message(self.PageLoaded(request, page, total))

    @on(PageLoaded)
    def _add_page(self, message: PageLoaded) -> None:
        if message.request != self._pending:
            message.stop()  # superseded by a newer search; nobody needs to hear of it
            return
        self._pending = None
        if message.total is not None:
            self.total = message.total
        self._next_cursor = message.page.next_cursor
        for user in message.page.items:
            self.users[user.qualified_name] = user
            self.add_row(*_cells(user), key=user.qualified_name)
        wanted, self.select_after_load = self.select_after_load, None
        if wanted is not None and wanted in self.users:
            self.move_cursor(row=self.get_row_index(wanted), animate=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.group == "users-page":
            self._pending = None
            self.failed = True

    @on(DataTable.RowHighlighted)
    def _load_more_at_the_end(self) -> None:
        if self.has_more and not self.loading_page and self.cursor_row >= self.row_count - 1:
            self._request(self._next_cursor)


def _cells(user: UserView) -> list[str]:
    return [user.username if claim is None else user.claims.get(f"{LOCAL_DIALECT}/{claim}", "")
            for _label, claim in COLUMNS]
