"""Userstores: every domain with its type, state and user count; add, edit, test, enable.

The form is built from the store type's property schema (``STORE_TYPES[type]``) and checked
with the core's own ``typed_properties`` before it is saved. Secret properties (an SQL URL,
an LDAP bind password) never enter a widget: the form shows what may be shown of them (a
URL without its password, or the reference it came from) and an empty field keeps them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Static

from core.configfile import refs
from core.errors import InvalidInput
from core.iam import Iam
from core.names import PRIMARY
from core.properties import FieldError, PropertySpec, PropertyType
from core.secrets import SecretValue
from core.userstores.base import Health
from core.userstores.definitions import (
    STORE_TYPES,
    StoreDefinition,
    shown_properties,
    shown_value,
    typed_properties,
)
from tui.screens.base import CONSOLE_ADMIN, ListDetailScreen, list_bindings
from tui.widgets.filter_bar import FilterBar
from tui.widgets.form_screen import FormScreen
from tui.widgets.property_form import FormValues
from tui.widgets.tables import ListTable, matches, plain

DOMAIN = PropertySpec("domain", "Domain", required=True,
                      help="a letter, then letters, digits, '.', '_' or '-'")
DESCRIPTION = PropertySpec("description", "Description")
ENABLED = PropertySpec("enabled", "Enabled", PropertyType.BOOLEAN, default=True,
                       help="a disabled store is hidden; its data stays where it is")
_META = (DOMAIN, DESCRIPTION, ENABLED)


def store_properties(specs: Iterable[PropertySpec], form: FormValues,
                     stored: Mapping[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    """The properties the form describes: typed secrets replace the stored ones (a
    ``${env:NAME}`` reference is resolved and kept), empty secret fields keep them."""
    props: dict[str, Any] = {}
    errors = []
    for spec in specs:
        if not spec.secret:
            if form.values.get(spec.name) not in (None, ""):
                props[spec.name] = form.values[spec.name]
            continue
        current = stored.get(spec.name)
        current = current if isinstance(current, SecretValue) else None
        if spec.name in form.secrets:
            try:
                props[spec.name] = refs.resolve(form.secrets[spec.name], current)
            except InvalidInput as exc:
                errors.append(FieldError(spec.name, exc.message))
        elif current is not None:
            props[spec.name] = current
    return props, errors


@dataclass(frozen=True)
class StoreState:
    """What the health check found for one enabled store."""

    domain: str
    health: Health
    users: int | None


def describe_state(store: StoreDefinition, state: StoreState | None) -> str:
    if not store.enabled:
        return "disabled"
    if state is None:
        return "checking…"
    return "reachable" if state.health.reachable else "unreachable"


class UserstoresScreen(ListDetailScreen):
    DEFAULT_CSS = """
    UserstoresScreen #store-detail {
        height: 40%;
    }
    """
    AUTO_FOCUS = "#stores"
    LIST_ID = "stores"
    BINDINGS: ClassVar[list[BindingType]] = [
        *list_bindings("userstores",
                       "Show only the stores whose domain or description matches",
                       "Show every store again"),
        Binding("a", "add", "Add", id="userstores.add", tooltip="Add a userstore"),
        Binding("e", "edit", "Edit", id="userstores.edit",
                tooltip="Change the highlighted store's properties"),
        Binding("t", "test", "Test", id="userstores.test",
                tooltip="Test the connection to the highlighted store"),
        Binding("x", "switch", "Enable/disable", id="userstores.switch",
                tooltip="Enable or disable the highlighted store (disabling asks first)"),
        Binding("d", "delete", "Remove", id="userstores.delete",
                tooltip="Forget the highlighted store (asks first; its data stays)"),
        Binding("r", "refresh", "Refresh", id="userstores.refresh", show=False,
                tooltip="Read the stores and their state again"),
    ]

    @dataclass
    class StateRead(Message):
        state: StoreState

    def __init__(self, iam: Iam, read_only: bool) -> None:
        super().__init__(iam, read_only)
        self.stores: dict[str, StoreDefinition] = {}
        self.states: dict[str, StoreState] = {}

    def compose_body(self) -> ComposeResult:
        with Vertical(id="stores-pane", classes="list-pane") as pane:
            pane.border_title = "Userstores"
            yield FilterBar("Domain or description contains")
            yield ListTable("Domain", "Type", "State", "Users", "Description", id="stores")
        with VerticalScroll(id="store-detail", classes="detail-pane") as detail:
            detail.border_title = "Userstore"
            yield Static("No userstore selected.", id="store-detail-body", markup=False)

    @property
    def highlighted(self) -> StoreDefinition | None:
        key = self.table.highlighted_key
        return self.stores.get(key) if key else None

    # ------------------------------------------------------------------ reading
    def action_refresh(self) -> None:
        self.call_engine("Loading the userstores", self.iam.userstore_definitions,
                         self._show_stores)

    def _show_stores(self, stores: list[StoreDefinition]) -> None:
        self.stores = {s.domain: s for s in stores}
        self.states = {}
        self._fill()
        self._check([s.domain for s in stores if s.enabled])

    def _fill(self) -> None:
        needle = self.filter_bar.value
        shown = [s for s in self.stores.values()
                 if not needle or matches(needle, s.domain, s.description)]
        self.table.refill([(s.domain, self._cells(s)) for s in shown])
        self.show_detail()

    def _cells(self, store: StoreDefinition) -> list[Text]:
        state = self.states.get(store.domain)
        users = "" if state is None or state.users is None else str(state.users)
        return [plain(store.domain), plain(store.type), plain(describe_state(store, state)),
                plain(users), plain(store.description)]

    @work(thread=True, exclusive=True, exit_on_error=False, group="userstores-health",
          description="Checking the userstores")
    def _check(self, domains: list[str]) -> None:
        """One message per store, so a slow store does not hold the others back."""
        for domain in domains:
            store = self.iam.stores.store(domain)
            health = store.health()
            users = store.count_users() if health.reachable else None
            self.post_message(self.StateRead(StoreState(domain, health, users)))

    @on(StateRead)
    def _state_read(self, message: StateRead) -> None:
        state = message.state
        self.states[state.domain] = state
        store = self.stores.get(state.domain)
        if store is None or state.domain not in self.table.rows:
            return
        for column, value in zip(("State", "Users"), self._cells(store)[2:4], strict=True):
            self.table.update_cell(state.domain, column, value)
        self.show_detail()

    def show_detail(self) -> None:
        self.query_one("#store-detail-body", Static).update(
            render_store(self.highlighted, self.states))

    def apply_filter(self) -> None:
        self._fill()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in {"edit", "test", "switch", "delete"}:
            store = self.highlighted
            return store is not None and not (action == "delete" and store.domain == PRIMARY)
        return super().check_action(action, parameters)

    # ------------------------------------------------------------------ writes
    def action_add(self) -> None:
        if self.refuse_write("add a userstore"):
            return
        types = tuple(STORE_TYPES)
        if len(types) == 1:
            self._open_form(types[0], None)
            return
        kind = PropertySpec("type", "Type", PropertyType.CHOICE, required=True, choices=types,
                            default=types[0])
        self.app.push_screen(
            FormScreen("New userstore", [kind], lambda form: form.text("type"),
                       save_label="Next"),
            lambda chosen: self._open_form(chosen, None) if chosen else None)

    def action_edit(self) -> None:
        store = self.highlighted
        if store is None or self.refuse_write("edit the userstore"):
            return
        self._open_form(store.type, store)

    def _open_form(self, store_type: str, store: StoreDefinition | None) -> None:
        specs = STORE_TYPES[store_type]
        stored: Mapping[str, Any] = store.properties if store is not None else {}
        values: dict[str, Any] = {}
        shown: dict[str, str | None] = {}
        if store is not None:
            values = {k: v for k, v in stored.items() if not isinstance(v, SecretValue)}
            values.update(domain=store.domain, description=store.description,
                          enabled=store.enabled)
            by_name = {s.name: s for s in specs}
            shown = {k: v.ref or str(shown_value(by_name.get(k), v)) or None
                     for k, v in stored.items() if isinstance(v, SecretValue) and v.value}
        iam = self.iam

        def properties(form: FormValues) -> tuple[dict[str, Any], list[FieldError]]:
            props, errors = store_properties(specs, form, stored)
            if errors:
                return props, errors
            return props, typed_properties(form.text("domain").strip(), store_type, props)[1]

        def submit(form: FormValues) -> str:
            props, errors = properties(form)
            if errors:
                raise InvalidInput("; ".join(map(str, errors)))
            domain = form.text("domain").strip()
            iam.save_userstore(CONSOLE_ADMIN, domain, store_type, props,
                               enabled=bool(form.values["enabled"]),
                               description=form.text("description"))
            return domain

        title = f"Edit userstore {store.domain} ({store_type})" if store is not None \
            else f"New userstore ({store_type})"
        form = FormScreen(title, [*_META, *specs], submit, values=values, stored_secrets=shown,
                          locked={"domain"} if store is not None else set(),
                          precheck=lambda form: properties(form)[1])
        self.app.push_screen(form, self._saved)

    def _saved(self, domain: str | None) -> None:
        if domain is not None:
            self.notify(f"Userstore {domain} saved", title="Userstores")
            self.action_refresh()

    def action_switch(self) -> None:
        store = self.highlighted
        if store is None or self.refuse_write("enable or disable the userstore"):
            return
        if store.enabled:
            self.confirm(f"Disable userstore {store.domain}?", lambda: self._set_enabled(store),
                         detail="Its users and groups are hidden until it is enabled again; "
                                "its data stays where it is.", action="Disable")
        else:
            self._set_enabled(store)

    def _set_enabled(self, store: StoreDefinition) -> None:
        enabled = not store.enabled

        def save() -> None:
            self.iam.save_userstore(CONSOLE_ADMIN, store.domain, store.type,
                                    dict(store.properties), enabled, store.description)

        self.call_engine("Saving a userstore", save, lambda _none: self._saved(store.domain))

    def action_delete(self) -> None:
        store = self.highlighted
        if store is None or self.refuse_write("remove the userstore"):
            return
        domain = store.domain
        self.confirm(f"Remove userstore {domain}?", lambda: self.call_engine(
            "Removing a userstore", lambda: self.iam.remove_userstore(CONSOLE_ADMIN, domain),
            lambda _none: self._saved(domain)),
            detail="The console forgets it; the database or directory itself is not "
                   "touched (disable it instead to keep everything).", action="Remove")

    def action_test(self) -> None:
        store = self.highlighted
        if store is None:
            return
        if not store.enabled:
            self.notify(f"Userstore {store.domain} is disabled: enable it to test it.",
                        title="Test connection", severity="warning")
            return
        domain = store.domain
        self.call_engine("Testing a userstore",
                         lambda: self.iam.stores.store(domain).health(),
                         lambda health: self._tested(domain, health))

    def _tested(self, domain: str, health: Health) -> None:
        if health.reachable:
            latency = f" in {health.latency_ms:.0f} ms" if health.latency_ms is not None else ""
            self.notify(f"{domain} answered{latency}.", title="Test connection")
        else:
            self.notify(f"{domain}: {health.detail}", title="Test connection", severity="error")

    # ------------------------------------------------------------------ palette
    def palette_commands(self) -> Iterable[SystemCommand]:
        store = self.highlighted
        if store is not None:
            yield SystemCommand(f"Test userstore {store.domain}", "Reach the store now",
                                self.action_test)


def render_store(store: StoreDefinition | None, states: Mapping[str, StoreState]) -> Text:
    """The store's properties as a screen may show them (secrets masked)."""
    if store is None:
        return Text("No userstore selected.", style="italic")
    text = Text()
    text.append(store.domain, style="bold")
    text.append(f" · {store.type} · {'enabled' if store.enabled else 'disabled'}")
    if store.description:
        text.append(f"\n{store.description}")
    state = states.get(store.domain)
    if state is not None and not state.health.reachable:
        text.append(f"\n{state.health.detail}")
    props = shown_properties(store)
    if store.domain == PRIMARY:
        props["url"] = "(the system database)"
    names = [s.name for s in STORE_TYPES.get(store.type, ()) if s.name in props]
    width = max((len(n) for n in names), default=0)
    for name in names:
        text.append(f"\n{name.ljust(width)}  ", style="bold")
        text.append(_shown(props[name]))
    return text


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
