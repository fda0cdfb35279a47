"""Users: one userstore's users a page at a time, the highlighted user, and their changes.

The table never holds more than the pages asked for (the core's cursor paging), so it is
as quick on a million users as on ten. ``/`` searches server-side: by username prefix, or
by exact claim value with ``claim=value`` (``emailaddress=bob@example.com``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, Select, Static

from core.claims import USERNAME, LocalClaim, validate_claim_value
from core.errors import InvalidInput
from core.iam import Iam
from core.identity.service import DEFAULT_PAGE_SIZE, UserView
from core.names import INTERNAL, PRIMARY, parse_name
from core.properties import FieldError, PropertySpec, PropertyType
from core.provisioning.engine import TargetReport
from tui.messages import EngineFailed
from tui.screens.base import CONSOLE_ADMIN, ConsoleHost, FilteredScreen
from tui.widgets.engine_calls import CallsEngine
from tui.widgets.filter_bar import FilterBar
from tui.widgets.form_screen import FormScreen
from tui.widgets.info_modal import InfoModal
from tui.widgets.list_keys import MovingTable
from tui.widgets.property_form import FieldCheck, FormValues
from tui.widgets.user_detail import UserDetail
from tui.widgets.users_table import UsersTable

USERNAME_SPEC = PropertySpec("username", "Username", required=True,
                             help="the name in the userstore shown on the Users screen")
PASSWORD = PropertySpec("password", "Password", secret=True,
                        help="empty: no password (the user cannot sign in)")
PASSWORD_AGAIN = PropertySpec("password-again", "Password again", secret=True,
                              help="the same password, to catch a typo")
NEW_PASSWORD = PropertySpec("password", "New password", required=True, secret=True,
                            help="the userstore's password policy applies")
NEW_PASSWORD_AGAIN = PropertySpec("password-again", "New password again", required=True,
                                  secret=True, help="the same password, to catch a typo")

#: The claims a form offers first, in this order (the others follow by name).
_CLAIM_ORDER = ("givenname", "lastname", "displayname", "emailaddress", "telephone",
                "mobile", "title", "department")

_NEEDS_USER = frozenset({"edit", "delete", "password", "roles", "sync", "preview"})


def parse_search(text: str) -> tuple[str | None, tuple[str, str] | None]:
    """``claim=value`` searches by claim; anything else is a username prefix."""
    claim, sep, value = text.partition("=")
    if sep and claim.strip() and value.strip():
        return None, (claim.strip(), value.strip())
    return text, None


def editable_claims(claims: Iterable[LocalClaim]) -> list[LocalClaim]:
    """The claims an administrator may set (read-only ones and the username excluded)."""
    order = {short: i for i, short in enumerate(_CLAIM_ORDER)}
    shown = [c for c in claims if not c.read_only and c.uri != USERNAME]
    return sorted(shown, key=lambda c: (order.get(c.short, len(order)), c.short))


def claim_specs(claims: Sequence[LocalClaim]) -> list[PropertySpec]:
    return [PropertySpec(c.short, c.display_name, help=c.description) for c in claims]


def claim_checks(claims: Sequence[LocalClaim]) -> dict[str, FieldCheck]:
    """Each claim's own pattern, checked as the administrator types."""
    def check_of(claim: LocalClaim) -> FieldCheck:
        def check(value: str) -> str | None:
            try:
                validate_claim_value(claim, value)
            except InvalidInput as exc:
                return exc.message
            return None
        return check

    return {c.short: check_of(c) for c in claims}


def passwords_match(values: FormValues) -> list[FieldError]:
    if values.secrets.get("password", "") != values.secrets.get("password-again", ""):
        return [FieldError("password-again", "the two passwords differ")]
    return []


def claim_changes(before: Mapping[str, str], after: Mapping[str, str]
                  ) -> tuple[dict[str, str], list[str]]:
    """(claims to set, claims to remove) turning ``before`` into ``after`` (short names)."""
    to_set = {k: v for k, v in after.items() if v and before.get(k) != v}
    to_remove = [k for k, v in after.items() if not v and before.get(k)]
    return to_set, to_remove


def render_reports(reports: Sequence[TargetReport], requests: bool) -> Text:
    """What a sync did, or a preview would do, at each target."""
    text = Text()
    if not reports:
        return Text("No target provisions this user (no outbound target of the resident "
                    "application has it in scope).")
    for i, r in enumerate(reports):
        text.append(("\n\n" if i else "") + r.target, style="bold")
        text.append(f"  {r.operation} · {r.state}")
        if r.remote_id:
            text.append(f" · remote id {r.remote_id}")
        if r.message:
            text.append(f"\n{r.message}")
        if requests:
            for req in r.requests:
                text.append(f"\n{req.get('method', '')} {req.get('url', '')}", style="bold")
                if req.get("request_body") is not None:
                    text.append(f"\n{_json(req['request_body'])}")
            if not r.requests:
                text.append("\n(no request)")
    return text


def _json(body: object) -> str:
    import json

    return json.dumps(body, indent=2, sort_keys=True, default=str)


@dataclass(frozen=True)
class RoleChoice:
    user: str
    roles: list[str]
    current: list[str]


class UsersScreen(CallsEngine, FilteredScreen):
    DEFAULT_CSS = """
    UsersScreen #main {
        width: 1fr;
    }
    UsersScreen #users-pane {
        height: 1fr;
        border: round $panel-lighten-2;
    }
    UsersScreen #detail {
        height: 40%;
        min-height: 6;
        padding: 0 1;
        border: round $panel-lighten-2;
    }
    UsersScreen #users-pane:focus-within, UsersScreen #detail:focus {
        border: heavy $accent;
    }
    UsersScreen #domain-bar {
        height: 1;
    }
    UsersScreen #domain-label {
        padding: 0 1;
        text-style: bold;
    }
    UsersScreen #domain {
        width: 24;
    }
    UsersScreen #users-status {
        width: 1fr;
        height: 1;
        padding: 0 1;
        color: $text-muted;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    UsersScreen #users {
        height: 1fr;
    }
    """
    AUTO_FOCUS = "#users"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/", id="users.filter",
                tooltip="Search by username prefix, or claim=value"),
        Binding("escape", "clear_filter", "Clear filter", id="users.clear_filter",
                tooltip="Show every user again"),
        Binding("a", "add", "Add", id="users.add", tooltip="Create a user in this userstore"),
        Binding("e", "edit", "Edit", id="users.edit", tooltip="Change the user's claims"),
        Binding("d", "delete", "Delete", id="users.delete",
                tooltip="Delete the user (asks first)"),
        Binding("p", "password", "Password", id="users.password",
                tooltip="Set the user's password"),
        Binding("o", "roles", "Roles", id="users.roles", tooltip="Choose the user's roles"),
        Binding("s", "sync", "Sync", id="users.sync",
                tooltip="Provision the user now to every target"),
        Binding("v", "preview", "Preview", id="users.preview",
                tooltip="Show what provisioning would send (dry run)"),
        Binding("u", "domain", "Store", id="users.domain", show=False,
                tooltip="Choose the userstore whose users are listed"),
        Binding("r", "refresh", "Refresh", id="users.refresh", show=False,
                tooltip="Read the users again"),
    ]

    @classmethod
    def for_console(cls, app: ConsoleHost) -> Self:
        return cls(app.iam, app.read_only, live=app.live)

    def __init__(self, iam: Iam, read_only: bool, *, page_size: int | None = None,
                 live: bool = True) -> None:
        """``page_size``: users per page; by default the app's ``page_size``, else 50;
        ``live=False``: the detail pane reads the user's provisioning on no timer."""
        super().__init__(iam, read_only)
        self._page_size = page_size
        self._live = live

    def compose_body(self) -> ComposeResult:
        with Vertical(id="main"):
            with Vertical(id="users-pane") as pane:
                pane.border_title = "Users"
                with Horizontal(id="domain-bar"):
                    yield Label("Userstore", id="domain-label")
                    yield Select([(PRIMARY, PRIMARY)], value=PRIMARY, allow_blank=False,
                                 compact=True, id="domain")
                    yield Static(id="users-status", markup=False)
                yield FilterBar("Username starts with (or claim=value)")
                page_size = self._page_size or int(getattr(self.app, "page_size",
                                                           DEFAULT_PAGE_SIZE))
                yield UsersTable(self.iam, PRIMARY, page_size, id="users")
            detail = UserDetail(self.iam, live=self._live, id="detail")
            detail.border_title = "User"
            yield detail

    def on_mount(self) -> None:
        self.call_engine("Loading the userstores", lambda: self.iam.stores.domains,
                         self._show_domains)
        self.action_refresh()

    # ------------------------------------------------------------------ state
    @property
    def table(self) -> UsersTable:
        return self.query_one(UsersTable)

    @property
    def domain(self) -> str:
        return self.table.domain

    @property
    def highlighted(self) -> UserView | None:
        return self.table.highlighted_user

    def _show_domains(self, domains: list[str]) -> None:
        if not domains:
            return  # no store is open (the list says why); keep the one shown
        select: Select[str] = self.query_one("#domain", Select)
        with self.prevent(Select.Changed):
            select.set_options([(d, d) for d in domains])
            if self.domain in domains:
                select.value = self.domain

    # ------------------------------------------------------------------ listing
    def action_refresh(self) -> None:
        self._search(self.filter_bar.value)

    def _search(self, text: str, keep: str | None = None, domain: str | None = None) -> None:
        self.query_one(UserDetail).show(None)
        self.table.select_after_load = keep
        prefix, claim = parse_search(text) if text else (None, None)
        self.table.search(prefix, claim, domain)
        self._show_status()
        self.refresh_bindings()

    def _reload_keeping(self, name: str | None) -> None:
        self._search(self.filter_bar.value, keep=name)

    def _show_status(self) -> None:
        self.query_one("#users-status", Static).update(status_line(self.table))

    @on(Select.Changed, "#domain")
    def _domain_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.domain:
            self._search(self.filter_bar.value, domain=event.value)
            self.table.focus()

    def action_domain(self) -> None:
        select: Select[str] = self.query_one("#domain", Select)
        select.focus()
        select.expanded = True

    def apply_filter(self) -> None:
        self._search(self.filter_bar.value)

    def show_user(self, name: str) -> None:
        """Select ``name`` (``DOMAIN/name``), searching for it if it is not loaded."""
        qn = parse_name(name)
        if str(qn) in self.table.users:
            self.table.move_cursor(row=self.table.get_row_index(str(qn)))
        else:
            self.filter_bar.show_value(qn.name)
            self._search(qn.name, keep=str(qn), domain=qn.domain)
        self.table.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in _NEEDS_USER:
            return self.highlighted is not None
        return super().check_action(action, parameters)

    # ------------------------------------------------------------------ engine replies
    @on(EngineFailed)
    def _engine_failed(self) -> None:
        # The app reports the error itself; here the status line stops saying "Loading".
        self._show_status()

    @on(UsersTable.PageLoaded)
    def _page_loaded(self) -> None:
        self._show_status()
        self.table.rest()  # the detail, once the cursor rests (a key may still be held)
        self.refresh_bindings()

    @on(DataTable.RowHighlighted, "#users")
    def _user_highlighted(self) -> None:
        self.refresh_bindings()  # the user actions come or go

    @on(MovingTable.RowRested, "#users")
    def _user_rested(self) -> None:
        self.query_one(UserDetail).show(self.highlighted)

    # ------------------------------------------------------------------ writes
    def _claims(self) -> list[LocalClaim]:
        return editable_claims(self.iam.claims.claims.values())

    def action_add(self) -> None:
        if self.refuse_write("add a user"):
            return
        iam, domain, claims = self.iam, self.domain, self._claims()

        def submit(form: FormValues) -> str:
            name = form.text("username").strip()
            qualified = name if "/" in name else f"{domain}/{name}"
            values = {c.short: form.text(c.short) for c in claims}
            user = iam.identity.add_user(CONSOLE_ADMIN, qualified,
                                         form.secrets.get("password"),
                                         {k: v for k, v in values.items() if v})
            return user.qualified_name

        form = FormScreen(f"New user in {domain}",
                          [USERNAME_SPEC, PASSWORD, PASSWORD_AGAIN, *claim_specs(claims)],
                          submit, checks=claim_checks(claims), precheck=passwords_match)
        self.app.push_screen(form, self._written("added"))

    def action_edit(self) -> None:
        user = self.highlighted
        if user is None or self.refuse_write("edit the user"):
            return
        iam, claims = self.iam, self._claims()
        before = {c.short: user.claims.get(c.uri, "") for c in claims}

        def submit(form: FormValues) -> str:
            to_set, to_remove = claim_changes(
                before, {c.short: form.text(c.short).strip() for c in claims})
            if to_set or to_remove:
                iam.identity.update_user(CONSOLE_ADMIN, user.qualified_name, to_set, to_remove)
            return user.qualified_name

        form = FormScreen(f"Edit {user.qualified_name}", claim_specs(claims), submit,
                          values=before, checks=claim_checks(claims),
                          intro="An emptied field removes that claim.")
        self.app.push_screen(form, self._written("saved"))

    def action_password(self) -> None:
        user = self.highlighted
        if user is None or self.refuse_write("set the password"):
            return
        iam, name = self.iam, user.qualified_name

        def submit(form: FormValues) -> str:
            iam.identity.set_password(CONSOLE_ADMIN, name, form.secrets["password"])
            return name

        form = FormScreen(f"Password of {name}", [NEW_PASSWORD, NEW_PASSWORD_AGAIN], submit,
                          precheck=passwords_match, save_label="Set password")
        self.app.push_screen(form, self._written("has a new password"))

    def action_delete(self) -> None:
        user = self.highlighted
        if user is None or self.refuse_write("delete the user"):
            return
        name = user.qualified_name
        self.confirm(f"Delete user {name}?", lambda: self._delete(name),
                     detail="Its roles go with it; targets that hold it deprovision it.",
                     action="Delete")

    def _delete(self, name: str) -> None:
        self.call_engine("Deleting a user",
                         lambda: self.iam.identity.delete_user(CONSOLE_ADMIN, name),
                         lambda _none: self._done(f"User {name} deleted", None))

    def action_roles(self) -> None:
        user = self.highlighted
        if user is None or self.refuse_write("change the roles"):
            return
        iam, name, domain = self.iam, user.qualified_name, user.domain

        def read() -> RoleChoice:
            roles = [*iam.identity.list_roles(INTERNAL), *iam.identity.list_roles(domain)]
            return RoleChoice(name, [r.qualified_name for r in roles],
                              iam.identity.roles_of(name))

        self.call_engine("Loading roles", read, self._pick_roles)

    def _pick_roles(self, choice: RoleChoice) -> None:
        """One yes/no field per role (legible without colour); saving applies the change."""
        current = set(choice.current)
        specs = [PropertySpec(r, r, PropertyType.BOOLEAN, default=False) for r in choice.roles]

        def submit(form: FormValues) -> str:
            chosen = {r for r in choice.roles if form.values.get(r)}
            self.iam.identity.set_user_roles(
                CONSOLE_ADMIN, choice.user, add=[r for r in choice.roles if r in chosen - current],
                remove=[r for r in choice.roles if r in current - chosen])
            return choice.user

        form = FormScreen(f"Roles of {choice.user}", specs, submit,
                          values={r: r in current for r in choice.roles},
                          intro="Groups of its userstore, and Internal roles "
                                "(space toggles).")
        self.app.push_screen(form, self._written("has new roles"))


    def action_sync(self) -> None:
        user = self.highlighted
        if user is None or self.refuse_write("provision the user"):
            return
        name = user.qualified_name

        def done(reports: list[TargetReport]) -> None:
            self.app.push_screen(InfoModal(f"Provisioned {name}",
                                           render_reports(reports, requests=False)))
            self.query_one(UserDetail).show(self.highlighted, again=True)

        self.call_engine("Provisioning a user",
                         lambda: self.iam.provisioning.sync(CONSOLE_ADMIN, name), done)

    def action_preview(self) -> None:
        user = self.highlighted
        if user is None:
            return
        name = user.qualified_name

        def show(reports: list[TargetReport]) -> None:
            self.app.push_screen(InfoModal(f"Preview for {name} (nothing is sent)",
                                           render_reports(reports, requests=True)))

        self.call_engine("Previewing provisioning",
                         lambda: self.iam.provisioning.preview(name), show)

    def _written(self, what: str) -> Callable[[str | None], None]:
        """What happens when a user form closed: a saved user is announced and shown."""
        def closed(name: str | None) -> None:
            if name is not None:
                self._done(f"User {name} {what}", name)
        return closed

    def _done(self, message: str, keep: str | None) -> None:
        self.notify(message, title="Users")
        self._reload_keeping(keep)

    # ------------------------------------------------------------------ palette
    def palette_commands(self) -> Iterable[SystemCommand]:
        user = self.highlighted
        if user is None:
            return
        name = user.qualified_name
        yield SystemCommand(f"Preview provisioning of {name}", "Dry run: what targets "
                            "would receive", self.action_preview)
        if not self.read_only:
            yield SystemCommand(f"Provision {name} now", "Push the user to every target",
                                self.action_sync)
            yield SystemCommand(f"Delete user {name}", "Asks first", self.action_delete)


def status_line(table: UsersTable) -> str:
    if table.failed:
        return "Users could not be read (see the message); r reloads."
    if table.loading_page and not table.row_count:
        return "Loading users…"
    shown, total = table.row_count, table.total
    if table.claim is not None:
        matching = f" with {table.claim[0]}={table.claim[1]}"
    else:
        matching = f" starting with {table.prefix!r}" if table.prefix else ""
    if not shown:
        return f"No users{matching}."
    count = _users(shown) if total is None or total == shown else f"{shown} of {_users(total)}"
    more = " · more at the end" if table.has_more else ""
    return f"{count}{matching}{more}"


def _users(n: int) -> str:
    return f"{n} user" if n == 1 else f"{n} users"
