"""The detail pane of the highlighted user: claims by short name, roles, where the user
is provisioned (per target: remote id, last outcome, last sync) and the federated subjects
its JIT logins come from.

Where the user is provisioned stays live as on the dashboard: each attempt of the
console's own workers at this user (``JobAttempted`` on the app's provisioning signal)
and, for workers elsewhere, a read every ``REFRESH_SECONDS`` while the pane is on screen
read it again; the pane is redrawn only when it changed, and keeps its scroll.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from core.claims import USERNAME
from core.iam import Iam
from core.identity.service import UserView
from core.jit.associations import subjects_of
from core.provisioning.mapping import Mapping
from tui.engine_errors import ReportsEngineErrors
from tui.messages import JobAttempted

#: How often the provisioning of the user shown is read again (as the dashboard's status).
REFRESH_SECONDS = 2.0


class UserDetail(ReportsEngineErrors, VerticalScroll):
    """Claims come with the listed user; roles and provisioning are read when it is shown."""

    @dataclass
    class RolesLoaded(Message):
        user: str
        roles: list[str]
        provisioning: list[Mapping]
        federated: list[str]

    @dataclass
    class ProvisioningRead(Message):
        user: str
        provisioning: list[Mapping]

    def __init__(self, iam: Iam, *, live: bool = True, id: str | None = None) -> None:
        """``live=False``: no timer (the console's own attempts still refresh the pane)."""
        super().__init__(id=id)
        self._iam = iam
        self._live = live
        self.user: UserView | None = None
        self.roles: list[str] | None = None
        self.provisioning: list[Mapping] | None = None
        self.federated: list[str] = []
        #: ``unwrapped_lines`` of the text shown.
        self._shape: int | None = None

    def compose(self) -> ComposeResult:
        yield Static(render_user(None, None), id="detail-body")

    def on_mount(self) -> None:
        signal = getattr(self.app, "provisioning_signal", None)
        if signal is not None:
            signal.subscribe(self, self._attempted)
        if self._live:
            self.set_interval(REFRESH_SECONDS, self._poll)

    def _attempted(self, message: JobAttempted) -> None:
        if self.user is not None and message.job.name == self.user.qualified_name:
            self._read_provisioning(self.user.qualified_name)

    def _poll(self) -> None:
        if self.user is not None and self.roles is not None and self.screen.is_current:
            self._read_provisioning(self.user.qualified_name)

    def show(self, user: UserView | None, again: bool = False) -> None:
        """Show ``user``; ``again`` reads its roles and provisioning even if it is shown.

        The pane is drawn once per user, when its roles arrive (a few milliseconds), not
        first with "loading" and then again: each drawing of the pane is a layout of the
        whole screen (``bench/console.py``). The Users screen shows the user the cursor
        rests on (``MovingTable.RowRested``), not each one a held key passes over."""
        if user == self.user and not again:
            return
        self.user = user
        if user is None:
            self.roles, self.provisioning, self.federated = None, None, []
            self._refresh_body()
        else:
            self._fetch_roles(user)

    @work(thread=True, exclusive=True, exit_on_error=False, group="user-roles",
          description="Loading the roles of a user")
    def _fetch_roles(self, user: UserView) -> None:
        iam, name = self._iam, user.qualified_name
        federated = subjects_of(iam.db, user.domain, user.id)
        self.post_message(self.RolesLoaded(name, iam.identity.roles_of(name),
                                           iam.provisioning.mappings_of(name), federated))

    @work(thread=True, exclusive=True, exit_on_error=False, group="user-provisioning",
          description="Reading where a user is provisioned")
    def _read_provisioning(self, name: str) -> None:
        self.post_message(self.ProvisioningRead(name, self._iam.provisioning.mappings_of(name)))

    @on(ProvisioningRead)
    def _show_provisioning(self, message: ProvisioningRead) -> None:
        if (self.user is not None and message.user == self.user.qualified_name
                and self.roles is not None and message.provisioning != self.provisioning):
            self.provisioning = message.provisioning
            self._refresh_body()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)  # reports the error
        if event.state is WorkerState.ERROR and event.worker.group == "user-roles":
            self.roles, self.provisioning, self.federated = None, None, []
            self._refresh_body()  # the user without roles; the error is reported

    @on(RolesLoaded)
    def _show_roles(self, message: RolesLoaded) -> None:
        if self.user is not None and message.user == self.user.qualified_name:
            self.roles = sorted(message.roles)
            self.provisioning = message.provisioning
            self.federated = message.federated
            self._refresh_body()

    def _refresh_body(self) -> None:
        body = self.query_one("#detail-body", Static)
        text = render_user(self.user, self.roles, self.provisioning, self.federated)
        shape = unwrapped_lines(text, body.content_size.width)
        # The same number of lines, none wrapped: the pane keeps its size, so it is
        # repainted without a layout of the whole screen (moving from user to user).
        body.update(text, layout=shape is None or shape != self._shape)
        self._shape = shape


def unwrapped_lines(text: Text, width: int) -> int | None:
    """How many lines ``text`` takes at ``width`` cells, or None when one would wrap."""
    lines = text.plain.split("\n")
    if width <= 0 or any(cell_len(line) > width for line in lines):
        return None
    return len(lines)


def render_user(user: UserView | None, roles: Sequence[str] | None,
                provisioning: Sequence[Mapping] | None = None,
                federated: Sequence[str] = ()) -> Text:
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
        text.append_text(render_provisioning(provisioning or ()))
        if federated:  # only users of JIT logins have any
            text.append("\nFederated: ", style="bold")
            text.append(", ".join(federated))
    return text


def render_provisioning(mappings: Sequence[Mapping]) -> Text:
    """One line per target: remote id, last outcome (and error), last sync in UTC."""
    text = Text()
    if not mappings:
        text.append("\nProvisioned to: ", style="bold")
        text.append("no target")
        return text
    text.append("\nProvisioned to:", style="bold")
    for m in mappings:
        kind = "" if m.entity_type == "user" else f" ({m.entity_type})"
        when = m.last_sync.strftime("%Y-%m-%d %H:%M UTC") if m.last_sync else "never"
        text.append(f"\n  {m.target}{kind}  ", style="bold")
        text.append(f"id {m.remote_id} · {m.last_outcome} · {when}")
        if m.last_error:
            text.append(f" · {m.last_error}")
    return text
