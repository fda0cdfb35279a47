"""Applications: the resident application and the others, their inbound settings, API
tokens (shown once when issued; revoked by their last four characters) and the ordered
outbound targets with their blocking and JIT flags (``shift+up`` / ``shift+down`` on the
targets list moves the highlighted one; the order is the one provisioning tries them in)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from core.apps import Application, OutboundTarget, TokenInfo
from core.errors import AlreadyExists, NotFound
from core.iam import Iam
from core.names import PRIMARY
from core.properties import PropertySpec, PropertyType
from tui.screens.base import CONSOLE_ADMIN, ListDetailScreen, list_bindings
from tui.screens.sync_offer import offer_sync_all
from tui.widgets.filter_bar import FilterBar
from tui.widgets.form_screen import FormScreen
from tui.widgets.info_modal import InfoModal
from tui.widgets.property_form import FormValues
from tui.widgets.tables import ListTable, matches, plain

_P = PropertyType
NAME = PropertySpec("name", "Name", required=True)
DESCRIPTION = PropertySpec("description", "Description")
PROXY_MODE = PropertySpec("proxy-mode", "Proxy mode", _P.BOOLEAN, default=False,
                          help="users of this application are not stored locally")
FAIL_ON_BLOCKING = PropertySpec("fail-on-blocking-failure", "Fail on blocking failure",
                                _P.BOOLEAN, default=False,
                                help="a failed blocking target fails the inbound request")
#: How an (identity provider, connector) pair serves an application's outbound provisioning.
TARGET_MODES = ("off", "on", "blocking", "jit", "blocking+jit")
_NEEDS_APP = frozenset({"edit", "outbound", "issue", "revoke", "delete"})
TOKEN_HINT = ("Shown once: copy it now (c copies it through the terminal; or select it "
              "with the mouse, shift+drag in most terminals). It cannot be read again.")


def inbound_domain(domains: Sequence[str]) -> PropertySpec:
    return PropertySpec("inbound-domain", "Inbound userstore", _P.CHOICE, default=PRIMARY,
                        choices=tuple(domains), help="where the application's users live")


def target_mode(target: OutboundTarget | None) -> str:
    if target is None:
        return "off"
    flags = [f for f, on_ in (("blocking", target.blocking), ("jit", target.jit)) if on_]
    return "+".join(flags) or "on"


def target_key(target: OutboundTarget) -> str:
    return f"{target.idp}:{target.connector}"


def moved(targets: Sequence[OutboundTarget], key: str, delta: int
          ) -> tuple[OutboundTarget, ...]:
    """``targets`` with the one named ``key`` moved ``delta`` places (kept in bounds)."""
    keys = [target_key(t) for t in targets]
    if key not in keys:
        raise NotFound(f"outbound target {key} is no longer listed (someone changed them)")
    order = list(targets)
    target = order.pop(keys.index(key))
    order.insert(max(0, min(len(order), keys.index(key) + delta)), target)
    return tuple(order)


def targets_from(modes: dict[str, str]) -> tuple[OutboundTarget, ...]:
    """Outbound targets from ``{"idp:connector": mode}``, in the given order."""
    out = []
    for key, mode in modes.items():
        if mode in (None, "", "off"):
            continue
        idp, _, connector = key.rpartition(":")
        out.append(OutboundTarget(idp, connector, "blocking" in mode, "jit" in mode))
    return tuple(out)


@dataclass(frozen=True)
class AppsRead:
    apps: list[Application]
    tokens: dict[str, list[TokenInfo]]
    domains: list[str]
    #: every "idp:connector" an application can send to
    targets: list[str]


class ApplicationsScreen(ListDetailScreen):
    DEFAULT_CSS = """
    ApplicationsScreen #app-detail {
        height: 50%;
    }
    ApplicationsScreen #app-targets {
        height: auto;
        max-height: 8;
    }
    ApplicationsScreen #app-targets-title {
        text-style: bold;
    }
    """
    AUTO_FOCUS = "#apps"
    LIST_ID = "apps"
    BINDINGS: ClassVar[list[BindingType]] = [
        *list_bindings("apps", "Show only the applications whose name matches",
                       "Show every application again"),
        Binding("a", "add", "Add", id="apps.add", tooltip="Add an application"),
        Binding("e", "edit", "Edit", id="apps.edit",
                tooltip="Description, inbound userstore and proxy mode"),
        Binding("o", "outbound", "Outbound", id="apps.outbound",
                tooltip="Choose the outbound targets and their flags"),
        Binding("shift+up", "move_target(-1)", "Move up", key_display="⇧↑",
                id="apps.target_up", tooltip="Try the highlighted outbound target earlier"),
        Binding("shift+down", "move_target(1)", "Move down", key_display="⇧↓",
                id="apps.target_down", tooltip="Try the highlighted outbound target later"),
        Binding("i", "issue", "Token", id="apps.issue",
                tooltip="Issue an API token (shown once)"),
        Binding("x", "revoke", "Revoke", id="apps.revoke",
                tooltip="Revoke a token by its last four characters (asks first)"),
        Binding("d", "delete", "Delete", id="apps.delete",
                tooltip="Delete the application (asks first)"),
        Binding("r", "refresh", "Refresh", id="apps.refresh", show=False,
                tooltip="Read the applications again"),
    ]

    def __init__(self, iam: Iam, read_only: bool) -> None:
        super().__init__(iam, read_only)
        self.apps: dict[str, Application] = {}
        self.tokens: dict[str, list[TokenInfo]] = {}
        self.domains: list[str] = [PRIMARY]
        self.targets: list[str] = []

    def compose_body(self) -> ComposeResult:
        with Vertical(id="apps-pane", classes="list-pane") as pane:
            pane.border_title = "Applications"
            yield FilterBar("Name contains")
            yield ListTable("Name", "Inbound", "Proxy", "Outbound targets", id="apps")
        with VerticalScroll(id="app-detail", classes="detail-pane") as detail:
            detail.border_title = "Application"
            yield Static("No application selected.", id="app-detail-body", markup=False)
            yield Static("Outbound targets, in the order they are tried (shift+up/down "
                         "moves one):", id="app-targets-title", markup=False)
            yield ListTable("#", "Target", "Mode", id="app-targets")

    @property
    def highlighted(self) -> Application | None:
        key = self.table.highlighted_key
        return self.apps.get(key) if key else None

    @property
    def targets_table(self) -> ListTable:
        return self.query_one("#app-targets", ListTable)

    def _live_hints(self, app: Application) -> list[str]:
        return [t.hint for t in self.tokens.get(app.name, []) if t.revoked is None]

    # ------------------------------------------------------------------ reading
    def action_refresh(self) -> None:
        iam = self.iam

        def read() -> AppsRead:
            apps = [iam.get_app(n) for n in iam.app_names()]
            targets = [f"{n}:{c.type}" for n in iam.idp_names()
                       for c in iam.get_idp(n).connectors]
            return AppsRead(apps, {a.name: iam.app_tokens(a.name) for a in apps},
                            iam.stores.domains, targets)

        self.call_engine("Loading applications", read, self._show)

    def _show(self, read: AppsRead) -> None:
        self.apps = {a.name: a for a in read.apps}
        self.tokens, self.domains, self.targets = read.tokens, read.domains, read.targets
        self._fill()

    def _fill(self) -> None:
        needle = self.filter_bar.value
        shown = [a for a in self.apps.values()
                 if not needle or matches(needle, a.name, a.description)]
        self.table.refill([(a.name, [
            plain(a.name), plain(a.inbound_domain),
            plain("yes" if a.proxy_mode else "no"),
            plain(", ".join(f"{t.idp}:{t.connector}" for t in a.outbound) or "none")])
            for a in shown])
        self.show_detail()
        self.refresh_bindings()

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()  # the move keys follow the targets list's focus

    def show_detail(self) -> None:
        app = self.highlighted
        self.query_one("#app-detail-body", Static).update(
            render_app(app, self.tokens.get(app.name, []) if app else []))
        targets = app.outbound if app else ()
        self.query_one("#app-targets-title").display = bool(targets)
        self.targets_table.display = bool(targets)
        self.targets_table.refill([(target_key(t), [str(n), plain(target_key(t)),
                                                    target_mode(t)])
                                   for n, t in enumerate(targets, start=1)])

    def apply_filter(self) -> None:
        self._fill()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        app = self.highlighted
        if action in _NEEDS_APP and app is None:
            return False
        if action in {"issue", "delete"} and app is not None and app.resident:
            return False  # the resident application takes no tokens and stays
        if action == "revoke" and app is not None:
            return bool(self._live_hints(app))
        if action == "move_target":
            return self.targets_table.has_focus and self.targets_table.row_count > 1
        return super().check_action(action, parameters)

    # ------------------------------------------------------------------ writes
    def _saved(self, name: str | None) -> None:
        if name is not None:
            self.notify(f"Application {name} saved", title="Applications")
            self.action_refresh()

    def _settings_form(self, app: Application | None) -> FormScreen[str]:
        iam = self.iam
        values: dict[str, Any] = {}
        if app is not None:
            values = {"name": app.name, "description": app.description,
                      "inbound-domain": app.inbound_domain, PROXY_MODE.name: app.proxy_mode,
                      FAIL_ON_BLOCKING.name: app.fail_on_blocking_failure}

        def submit(form: FormValues) -> str:
            name = form.text("name").strip()
            if app is None and name in iam.app_names():
                raise AlreadyExists(f"name: application {name!r} already exists")
            base = iam.get_app(name) if app is not None else Application(name)
            iam.save_app(CONSOLE_ADMIN, dataclasses.replace(
                base, description=form.text("description"),
                inbound_domain=form.text("inbound-domain") or PRIMARY,
                proxy_mode=bool(form.values[PROXY_MODE.name]),
                fail_on_blocking_failure=bool(form.values[FAIL_ON_BLOCKING.name])))
            return name

        specs = [NAME, DESCRIPTION, inbound_domain(self.domains), PROXY_MODE, FAIL_ON_BLOCKING]
        title = f"Edit {app.name}" if app else "New application"
        return FormScreen(title, specs, submit, values=values,
                          locked={"name"} if app is not None else set())

    def action_add(self) -> None:
        if self.refuse_write("add an application"):
            return
        self.app.push_screen(self._settings_form(None), self._saved)

    def action_edit(self) -> None:
        app = self.highlighted
        if app is None or self.refuse_write("edit the application"):
            return
        self.app.push_screen(self._settings_form(app), self._saved)

    def action_outbound(self) -> None:
        app = self.highlighted
        if app is None or self.refuse_write("change the outbound targets"):
            return
        current = {f"{t.idp}:{t.connector}": t for t in app.outbound}
        keys = [*current, *(k for k in self.targets if k not in current)]
        if not keys:
            self.notify("No identity provider has a connector yet: add one on the Identity "
                        "providers screen (6).", title="Outbound targets", severity="warning")
            return
        specs = [PropertySpec(k, k, _P.CHOICE, default="off", choices=TARGET_MODES,
                              help="blocking: the inbound request waits for it; jit: users "
                                   "created just in time are provisioned too")
                 for k in keys]
        iam, name = self.iam, app.name
        added: list[str] = []  # targets the save added: each is offered a sync of everyone

        def submit(form: FormValues) -> str:
            targets = targets_from({k: form.text(k) for k in keys})
            iam.save_app(CONSOLE_ADMIN, dataclasses.replace(iam.get_app(name),
                                                            outbound=targets))
            added[:] = [target_key(t) for t in targets if target_key(t) not in current]
            return name

        def saved(saved_name: str | None) -> None:
            self._saved(saved_name)
            for target in added if saved_name is not None else ():
                offer_sync_all(self, target)

        self.app.push_screen(FormScreen(
            f"Outbound targets of {name}", specs, submit,
            values={k: target_mode(current.get(k)) for k in keys},
            intro="Targets are tried in this order; off removes one."), saved)

    def action_move_target(self, delta: int) -> None:
        app, key = self.highlighted, self.targets_table.highlighted_key
        if app is None or key is None or self.refuse_write("reorder the outbound targets"):
            return
        iam, name = self.iam, app.name

        def move() -> int:
            current = iam.get_app(name)
            order = moved(current.outbound, key, delta)
            if order != current.outbound:
                iam.save_app(CONSOLE_ADMIN, dataclasses.replace(current, outbound=order))
            return [target_key(t) for t in order].index(key) + 1

        self.call_engine("Reordering outbound targets", move, lambda place: self._announce(
            f"{key} is now tried {ordinal(place)} for {name}"))

    def action_issue(self) -> None:
        app = self.highlighted
        if app is None or self.refuse_write("issue a token"):
            return
        name = app.name

        def issued(token: str) -> None:
            self.app.push_screen(token_modal(name, token))
            self.action_refresh()

        self.call_engine("Issuing a token", lambda: self.iam.issue_token(CONSOLE_ADMIN, name),
                         issued)

    def action_revoke(self) -> None:
        app = self.highlighted
        if app is None or self.refuse_write("revoke a token"):
            return
        hints = self._live_hints(app)
        name = app.name
        spec = PropertySpec("hint", "Token ending in", _P.CHOICE, required=True,
                            choices=tuple(dict.fromkeys(hints)))

        def chosen(hint: str | None) -> None:
            if hint:
                self.confirm(f"Revoke the token of {name} ending in {hint}?",
                             lambda: self._revoke(name, hint),
                             detail="Clients that use it are refused from now on.",
                             action="Revoke")

        self.app.push_screen(FormScreen(f"Revoke a token of {name}", [spec],
                                        lambda form: form.text("hint"), save_label="Revoke"),
                             chosen)

    def _revoke(self, name: str, hint: str) -> None:
        self.call_engine("Revoking a token",
                         lambda: self.iam.revoke_token(CONSOLE_ADMIN, name, hint),
                         lambda n: self._announce(f"{n} token(s) of {name} revoked"))

    def action_delete(self) -> None:
        app = self.highlighted
        if app is None or self.refuse_write("delete the application"):
            return
        name = app.name
        self.confirm(f"Delete application {name}?", lambda: self.call_engine(
            "Deleting an application", lambda: self.iam.remove_app(CONSOLE_ADMIN, name),
            lambda _none: self._announce(f"Application {name} deleted")),
            detail="Its tokens stop working and its outbound targets go with it.",
            action="Delete")

    def _announce(self, message: str) -> None:
        self.notify(message, title="Applications")
        self.action_refresh()

    # ------------------------------------------------------------------ palette
    def palette_commands(self) -> Iterable[SystemCommand]:
        app = self.highlighted
        if app is None or self.read_only or app.resident:
            return
        yield SystemCommand(f"Issue a token for {app.name}", "Shown once",
                            self.action_issue)


def ordinal(n: int) -> str:
    return {1: "first", 2: "second", 3: "third"}.get(n, f"{n}th")


def token_modal(app: str, token: str) -> InfoModal:
    return InfoModal(f"New token for {app}", Text.assemble((token, "bold"), "\n\n", TOKEN_HINT),
                     hint="c copies · esc closes", copy=token)


def render_app(app: Application | None, tokens: Sequence[TokenInfo]) -> Text:
    if app is None:
        return Text("No application selected.", style="italic")
    text = Text()
    text.append(app.name, style="bold")
    if app.resident:
        text.append(" · resident (the console and the CLI)")
    if app.description:
        text.append(f"\n{app.description}")
    for label, value in (("Inbound userstore", app.inbound_domain),
                         ("Proxy mode", "yes" if app.proxy_mode else "no"),
                         ("Fail on blocking failure",
                          "yes" if app.fail_on_blocking_failure else "no")):
        text.append(f"\n{label}: ", style="bold")
        text.append(value)
    if not app.outbound:
        text.append("\nOutbound targets: ", style="bold")
        text.append("none")
    if not app.resident:
        text.append("\nTokens: ", style="bold")
        if not tokens:
            text.append("none")
        for token in tokens:
            state = f"revoked {token.revoked:%Y-%m-%d}" if token.revoked else "live"
            text.append(f"\n  …{token.hint}  issued {token.created:%Y-%m-%d}  {state}")
    return text
