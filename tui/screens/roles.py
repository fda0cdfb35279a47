"""Roles: the roles of every domain, the members of the highlighted one, and their changes.

Members are read a page at a time (``IdentityService.member_page``, server-side cursor
paging): reaching the last member shown loads the next page, so a group of a large store
never loads whole.

A role that an identity provider lists among its provisioning roles is marked with the
providers' names: giving a user such a role provisions the user there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from core.claims import LOCAL_DIALECT
from core.iam import Iam
from core.identity.service import DEFAULT_PAGE_SIZE, RoleView, UserView
from core.names import parse_name
from core.properties import PropertySpec
from core.userstores.base import Page
from tui.messages import EngineFailed
from tui.screens.base import CONSOLE_ADMIN, FilteredScreen
from tui.widgets.engine_calls import CallsEngine
from tui.widgets.filter_bar import FilterBar
from tui.widgets.form_screen import FormScreen
from tui.widgets.list_keys import MovingTable
from tui.widgets.property_form import FormValues
from tui.widgets.tables import ListTable, plain

ROLE_NAME = PropertySpec("name", "Role", required=True,
                         help="DOMAIN/name; Internal/name for an internal role; "
                              "no domain: PRIMARY")
USERS = PropertySpec("users", "Users", required=True,
                     help="usernames separated by commas (DOMAIN/name outside PRIMARY)")
MEMBERS = PropertySpec("users", "Members", help=USERS.help)
MEMBERS_TASK = "Loading the members of a role"



@dataclass(frozen=True)
class MembersRead:
    role: str
    #: the cursor this page was asked with (None: the first page)
    cursor: str | None
    page: Page[UserView]


@dataclass(frozen=True)
class RolesRead:
    roles: list[RoleView]
    #: qualified role name -> the identity providers that provision it
    provisioning: dict[str, list[str]]


def provisioning_roles(iam: Iam) -> dict[str, list[str]]:
    """Which identity providers use each role as a provisioning role."""
    used: dict[str, list[str]] = {}
    for name in iam.idp_names():
        for role in iam.get_idp(name).provisioning_roles:
            used.setdefault(str(parse_name(role)), []).append(name)
    return used


def split_names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


class RolesScreen(CallsEngine, FilteredScreen):
    DEFAULT_CSS = """
    RolesScreen #roles-body {
        height: 1fr;
    }
    RolesScreen #roles-pane, RolesScreen #members-pane {
        width: 1fr;
        border: round $panel-lighten-2;
    }
    RolesScreen #roles-pane:focus-within, RolesScreen #members-pane:focus-within {
        border: heavy $accent;
    }
    RolesScreen DataTable {
        height: 1fr;
    }
    RolesScreen .status {
        height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    """
    AUTO_FOCUS = "#roles"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/", id="roles.filter",
                tooltip="Show only the roles whose name starts with a prefix"),
        Binding("escape", "clear_filter", "Clear filter", id="roles.clear_filter",
                tooltip="Show every role again"),
        Binding("a", "add", "Add", id="roles.add", tooltip="Create a role"),
        Binding("n", "rename", "Rename", id="roles.rename",
                tooltip="Rename the highlighted role"),
        Binding("d", "delete", "Delete", id="roles.delete",
                tooltip="Delete the highlighted role (asks first)"),
        Binding("u", "assign", "Assign", id="roles.assign",
                tooltip="Give the highlighted role to users"),
        Binding("x", "remove_member", "Remove", id="roles.remove_member",
                tooltip="Take the role away from the highlighted member"),
        Binding("r", "refresh", "Refresh", id="roles.refresh",
                tooltip="Read the roles and members again"),
    ]

    def __init__(self, iam: Iam, read_only: bool) -> None:
        super().__init__(iam, read_only)
        self.roles: dict[str, RoleView] = {}
        self.provisioning: dict[str, list[str]] = {}
        self.members: list[UserView] = []
        self._members_of: str | None = None
        #: The page of members asked for and not yet shown ((role, cursor)), if any.
        self._members_pending: tuple[str, str | None] | None = None
        self._members_next: str | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="roles-body"):
            with Vertical(id="roles-pane") as pane:
                pane.border_title = "Roles"
                yield FilterBar("Role starts with")
                yield ListTable("Role", "Provisioned by", id="roles")
                yield Static("Loading roles…", id="roles-status", classes="status")
            with Vertical(id="members-pane") as members:
                members.border_title = "Members"
                yield ListTable("Member", "Email", id="members")
                yield Static("", id="members-status", classes="status")

    def on_mount(self) -> None:
        self.action_refresh()

    # ------------------------------------------------------------------ reading
    @property
    def role_table(self) -> ListTable:
        return self.query_one("#roles", ListTable)

    @property
    def member_table(self) -> ListTable:
        return self.query_one("#members", ListTable)

    @property
    def highlighted_role(self) -> str | None:
        return self.role_table.highlighted_key

    @property
    def highlighted_member(self) -> str | None:
        return self.member_table.highlighted_key

    def action_refresh(self) -> None:
        prefix = self.filter_bar.value or None
        iam = self.iam

        def read() -> RolesRead:
            return RolesRead(iam.identity.list_roles(prefix=prefix), provisioning_roles(iam))

        self.call_engine("Loading roles", read, self._show_roles)

    def _show_roles(self, read: RolesRead) -> None:
        self.roles = {r.qualified_name: r for r in read.roles}
        self.provisioning = read.provisioning
        self.role_table.refill([
            (name, [plain(name), plain(", ".join(read.provisioning.get(name, [])))])
            for name in self.roles])
        prefix = self.filter_bar.value
        matching = f" starting with {prefix!r}" if prefix else ""
        count = len(self.roles)
        self.query_one("#roles-status", Static).update(
            f"{count} role{'' if count == 1 else 's'}{matching}")
        self._load_members(force=True)

    @on(MovingTable.RowRested, "#roles")
    def _role_rested(self) -> None:
        self._load_members()

    def _load_members(self, force: bool = False) -> None:
        role = self.highlighted_role
        if role == self._members_of and not force:
            return
        self._members_of = role
        pane = self.query_one("#members-pane")
        pane.border_title = f"Members of {role}" if role else "Members"
        self.members, self._members_next = [], None
        self.member_table.refill([])
        if role is None:
            self._members_pending = None
            self._show_members_status()
            return
        self._fetch_members(role, None)

    def _fetch_members(self, role: str, cursor: str | None) -> None:
        self._members_pending = (role, cursor)
        size = getattr(self.app, "page_size", None) or DEFAULT_PAGE_SIZE
        identity = self.iam.identity
        self.query_one("#members-status", Static).update("Loading members…")
        self.call_engine(MEMBERS_TASK, lambda: MembersRead(
            role, cursor, identity.member_page(role, size, cursor)), self._show_members)

    def _show_members(self, read: MembersRead) -> None:
        if (read.role, read.cursor) != self._members_pending:
            return  # the highlight moved on, or the list was read again since
        self._members_pending = None
        self._members_next = read.page.next_cursor
        self.members.extend(read.page.items)
        email = f"{LOCAL_DIALECT}/emailaddress"
        self.member_table.extend([(u.qualified_name, [plain(u.qualified_name),
                                                        plain(u.claims.get(email, ""))])
                                  for u in read.page.items])
        self._show_members_status()

    def _show_members_status(self) -> None:
        shown = len(self.members)
        status = "No members." if not shown else f"{shown} member{'' if shown == 1 else 's'}"
        if self._members_next is not None:
            status = f"{status} so far; the last one shown loads more"
        self.query_one("#members-status", Static).update(status)

    @on(EngineFailed)
    def _members_failed(self, message: EngineFailed) -> None:
        if message.task == MEMBERS_TASK:  # the app reports it; moving to the end retries
            self._members_pending = None
            self._show_members_status()

    @on(DataTable.RowHighlighted, "#members")
    def _more_members_at_the_end(self) -> None:
        table, role = self.member_table, self._members_of
        if (role is not None and self._members_next is not None
                and self._members_pending is None and table.cursor_row >= table.row_count - 1):
            self._fetch_members(role, self._members_next)

    # ------------------------------------------------------------------ filter
    @property
    def table(self) -> ListTable:
        return self.role_table

    def apply_filter(self) -> None:
        self.action_refresh()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in {"rename", "delete", "assign"}:
            return self.highlighted_role is not None
        if action == "remove_member":
            return self.member_table.has_focus and self.highlighted_member is not None
        return super().check_action(action, parameters)

    @on(DataTable.RowHighlighted)
    @on(DataTable.RowSelected, "#roles")
    def _bindings_follow_the_cursor(self) -> None:
        self.refresh_bindings()

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()

    # ------------------------------------------------------------------ writes
    def action_add(self) -> None:
        if self.refuse_write("add a role"):
            return
        iam = self.iam

        def submit(form: FormValues) -> str:
            role = iam.identity.add_role(CONSOLE_ADMIN, form.text("name").strip(),
                                         split_names(form.text("users")))
            return role.qualified_name

        self._open_form(FormScreen("New role", [ROLE_NAME, MEMBERS], submit),
                        "Role {} added")

    def action_rename(self) -> None:
        role = self.highlighted_role
        if role is None or self.refuse_write("rename the role"):
            return
        iam = self.iam

        def submit(form: FormValues) -> str:
            return iam.identity.rename_role(CONSOLE_ADMIN, role,
                                            form.text("name").strip()).qualified_name

        spec = PropertySpec("name", "New name", required=True,
                            help="the role stays in its domain")
        self._open_form(FormScreen(f"Rename {role}", [spec], submit,
                                   values={"name": parse_name(role).name}),
                        "Role renamed to {}")

    def action_delete(self) -> None:
        role = self.highlighted_role
        if role is None or self.refuse_write("delete the role"):
            return
        users = ", ".join(self.provisioning.get(role, []))
        detail = "Its members lose it."
        if users:
            detail += f" It is a provisioning role of {users}: they are deprovisioned."
        self.confirm(f"Delete role {role}?", lambda: self._delete(role), detail=detail,
                     action="Delete")

    def _delete(self, role: str) -> None:
        self.call_engine("Deleting a role",
                         lambda: self.iam.identity.delete_role(CONSOLE_ADMIN, role),
                         lambda _none: self._done(f"Role {role} deleted"))

    def action_assign(self) -> None:
        role = self.highlighted_role
        if role is None or self.refuse_write("assign the role"):
            return
        iam = self.iam

        def submit(form: FormValues) -> list[str]:
            return iam.identity.assign(CONSOLE_ADMIN, role, split_names(form.text("users")))

        def done(added: list[str] | None) -> None:
            if added is not None:
                self._done(f"{role} given to {', '.join(added)}" if added
                           else "Nobody new: they all had the role already")

        self.app.push_screen(FormScreen(f"Give {role} to users", [USERS], submit,
                                        save_label="Assign"), done)

    def action_remove_member(self) -> None:
        # the role whose members are shown: the cursor may have moved on for a moment
        role, member = self._members_of, self.highlighted_member
        if role is None or member is None or self.refuse_write("remove the member"):
            return
        self.confirm(f"Take {role} away from {member}?",
                     lambda: self._unassign(role, member), action="Remove")

    def _unassign(self, role: str, member: str) -> None:
        self.call_engine(
            "Removing a member",
            lambda: self.iam.identity.unassign(CONSOLE_ADMIN, role, [member]),
            lambda _names: self._done(f"{member} no longer has {role}"))

    def _open_form(self, form: FormScreen[str], done: str) -> None:
        def closed(name: str | None) -> None:
            if name is not None:
                self._done(done.format(name))

        self.app.push_screen(form, closed)

    def _done(self, what: str) -> None:
        self.notify(what, title="Roles")
        self.action_refresh()

    # ------------------------------------------------------------------ palette
    def palette_commands(self) -> Iterable[SystemCommand]:
        if self.read_only:
            return
        role = self.highlighted_role
        yield SystemCommand("Add a role", "Create a role", self.action_add)
        if role is not None:
            yield SystemCommand(f"Give {role} to users", "Assign the highlighted role",
                                self.action_assign)
            yield SystemCommand(f"Delete role {role}", "Asks first", self.action_delete)

