"""The detail pane of the highlighted user: claims by short name, then roles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from core.claims import USERNAME
from core.iam import Iam
from core.identity.service import UserView
from tui.workers import ReportsEngineErrors


class UserDetail(ReportsEngineErrors, VerticalScroll):
    """Claims come with the listed user; roles are read when the user is shown."""

    @dataclass
    class RolesLoaded(Message):
        user: str
        roles: list[str]

    def __init__(self, iam: Iam, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._iam = iam
        self.user: UserView | None = None
        self.roles: list[str] | None = None

    def compose(self) -> ComposeResult:
        yield Static(render_user(None, None), id="detail-body")

    def show(self, user: UserView | None) -> None:
        if user == self.user:
            return
        self.user, self.roles = user, None
        self._refresh_body()
        if user is not None:
            self._fetch_roles(user.qualified_name)

    @work(thread=True, exclusive=True, exit_on_error=False, group="user-roles",
          description="Loading the roles of a user")
    def _fetch_roles(self, name: str) -> None:
        self.post_message(self.RolesLoaded(name, self._iam.identity.roles_of(name)))

    @on(RolesLoaded)
    def _show_roles(self, message: RolesLoaded) -> None:
        if self.user is not None and message.user == self.user.qualified_name:
            self.roles = sorted(message.roles)
            self._refresh_body()

    def _refresh_body(self) -> None:
        self.query_one("#detail-body", Static).update(render_user(self.user, self.roles))


def render_user(user: UserView | None, roles: Sequence[str] | None) -> Text:
    """Plain aligned text, so that it reads the same with NO_COLOR."""
    if user is None:
        return Text("No user selected.", style="italic")
    text = Text()
    text.append(user.qualified_name, style="bold")
    claims = sorted((uri.rsplit("/", 1)[-1], value) for uri, value in user.claims.items()
                    if uri != USERNAME)
    width = max((len(short) for short, _value in claims), default=0)
    for short, value in claims:
        text.append(f"\n{short.ljust(width)}  ", style="bold")
        text.append(value)
    if roles is None:
        text.append("\nRoles: loading…", style="italic")
    else:
        text.append(f"\nRoles ({len(roles)}): ", style="bold")
        text.append(", ".join(roles) or "none")
    return text
