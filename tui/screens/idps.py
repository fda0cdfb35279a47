"""Identity providers: connectors, claim and role mappings, provisioning roles and JIT.

A connector's form is built from its type's property schema
(``ConnectorSpec.all_properties``). Secrets never enter a widget: the form says whether
one is stored, an empty secret field keeps it, ``ctrl+r`` on it removes it when saved (an
explicit action: emptying a field never clears anything), and a typed ``${env:NAME}`` is
stored as a reference. "Test connection" reaches the target with what is typed (the form) or saved
(the list), in a worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Button, Static

from connectors.base import ConnectorError
from connectors.registry import connector_class, registry, spec_for
from core.configfile import refs
from core.errors import IamError, InvalidInput
from core.iam import Iam
from core.idps import (
    ATTRIBUTE_SYNC,
    FEDERATION_PROTOCOLS,
    JIT_SCHEMES,
    ClaimMapping,
    ConnectorConfig,
    IdentityProvider,
    JitConfig,
    RoleMapping,
    connector_errors,
)
from core.jit.federation import federation_of_fields, keys_text
from core.jit.intake import JitIntake
from core.jit.sandbox import SandboxIdp
from core.names import PRIMARY
from core.properties import FieldError, PropertySpec, PropertyType, check
from core.provisioning.targets import build_target, target_key
from core.secrets import SecretValue
from tui.screens.base import CONSOLE_ADMIN, ListDetailScreen, list_bindings
from tui.screens.sync_offer import offer_sync_all
from tui.widgets.engine_calls import CallsEngine
from tui.widgets.filter_bar import FilterBar
from tui.widgets.form_screen import FormScreen
from tui.widgets.lines_screen import LinesScreen
from tui.widgets.property_form import FormValues
from tui.widgets.tables import ListTable, matches, plain

_P = PropertyType
NAME = PropertySpec("name", "Name", required=True)
DESCRIPTION = PropertySpec("description", "Description")
ENABLED = PropertySpec("enabled", "Enabled", _P.BOOLEAN, default=True)
PROVISIONING_ROLES = PropertySpec(
    "provisioning-roles", "Provisioning roles",
    help="roles whose members are provisioned, separated by commas; empty: every user")
JIT_ENABLED = PropertySpec("jit-enabled", "JIT provisioning", _P.BOOLEAN, default=False,
                           help="create local users when they first sign in through it")
JIT_SCHEME = PropertySpec("jit-scheme", "JIT scheme", _P.CHOICE, default=JIT_SCHEMES[0],
                          choices=JIT_SCHEMES)
JIT_ASSOCIATE = PropertySpec("jit-associate", "JIT associates local user", _P.BOOLEAN,
                             default=False)
JIT_SYNC = PropertySpec("jit-sync", "JIT attribute sync", _P.CHOICE, default=ATTRIBUTE_SYNC[0],
                        choices=ATTRIBUTE_SYNC,
                        help="override: the login's claims win; preserve_local: only empty "
                             "claims are filled; none: create only")
FED_PROTOCOL = PropertySpec("fed-protocol", "Federation protocol", _P.CHOICE,
                            choices=FEDERATION_PROTOCOLS,
                            help="how its logins are verified; unset: no JIT logins")
FED_ISSUER = PropertySpec("fed-issuer", "Issuer", help="https://... (SAML: or urn:...)")
FED_AUDIENCE = PropertySpec("fed-audience", "Audience",
                            help="OIDC client ids / SAML audiences, separated by commas")
FED_KEYS = PropertySpec("fed-keys", "Signing keys",
                        help="a JWKS (JSON) or jwks_uri for OIDC; the PEM certificate for SAML")
FED_USERNAME = PropertySpec("fed-username", "Username claim",
                            help="default: sub (OIDC), NameID (SAML)")
_FEDERATION_SPECS = (FED_PROTOCOL, FED_ISSUER, FED_AUDIENCE, FED_KEYS, FED_USERNAME)
CONNECTOR_ENABLED = PropertySpec("connector-enabled", "Connector enabled", _P.BOOLEAN,
                                 default=True)
CONNECTOR_DEFAULT = PropertySpec("connector-default", "Default connector", _P.BOOLEAN,
                                 default=False)
_CONNECTOR_META = (CONNECTOR_ENABLED, CONNECTOR_DEFAULT)
_NEEDS_IDP = frozenset({"edit", "connector", "claims", "roles", "delete", "test"})
SIM_USERNAME = PropertySpec("username", "Username", required=True)
SIM_CLAIMS = PropertySpec("claims", "Claims",
                          help="remote claims as name=value, separated by commas")
SIM_GROUPS = PropertySpec("groups", "Groups", help="remote groups, separated by commas")


def jit_userstore(domains: Sequence[str]) -> PropertySpec:
    return PropertySpec("jit-userstore", "JIT userstore", _P.CHOICE, default=PRIMARY,
                        choices=tuple(domains))


# ---------------------------------------------------------------- connectors
@dataclass(frozen=True)
class TestResult:
    ok: bool
    message: str


def test_connection(connector_type: str, properties: Mapping[str, Any]) -> TestResult:
    """Reach the target with typed ``properties`` (secrets included); never raises for a
    target that fails, it says why. Runs its own event loop: call it in a thread worker."""
    async def run() -> str:
        timeout = float(properties.get("timeout-seconds") or 10)
        async with httpx.AsyncClient(timeout=timeout) as client:
            connector = connector_class(connector_type)(properties, client)
            return await connector.test_connection()

    try:
        return TestResult(True, asyncio.run(run()))
    except ConnectorError as exc:
        return TestResult(False, exc.message)
    except httpx.HTTPError as exc:
        return TestResult(False, f"{type(exc).__name__}: {exc}")


def build_connector(connector_type: str, form: FormValues, stored: ConnectorConfig | None
                    ) -> tuple[ConnectorConfig, list[FieldError]]:
    """The configuration the form describes: typed secrets replace stored ones (a
    ``${env:NAME}`` reference is resolved and kept), empty secret fields keep them, and
    the ones the administrator cleared are gone."""
    spec = spec_for(connector_type)
    props = {s.name: form.values[s.name] for s in spec.all_properties
             if not s.secret and form.values.get(s.name) not in (None, "")}
    secrets: dict[str, SecretValue] = dict(stored.secrets) if stored else {}
    for name in form.cleared:
        secrets.pop(name, None)
    errors = []
    for name, text in form.secrets.items():
        try:
            secrets[name] = refs.resolve(text, secrets.get(name))
        except InvalidInput as exc:
            errors.append(FieldError(name, exc.message))
    config = ConnectorConfig(connector_type, bool(form.values.get(CONNECTOR_ENABLED.name)),
                             bool(form.values.get(CONNECTOR_DEFAULT.name)), props, secrets)
    return config, errors


def typed_properties(config: ConnectorConfig) -> dict[str, Any]:
    values = {**config.properties, **{k: v.value for k, v in config.secrets.items()}}
    typed, _errors = check(spec_for(config.type).all_properties, values)
    return typed


class ConnectorForm(CallsEngine, FormScreen[str]):
    """The connector's form, with "Test connection" (``ctrl+t``) on what is typed."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+t", "test", "Test", id="form.test",
                tooltip="Reach the target with the values typed (nothing is saved)"),
        Binding("ctrl+r", "clear_secret", "Clear secret", id="form.clear_secret",
                tooltip="Remove the stored value of the secret field you are on, on save"),
    ]

    def __init__(self, idp: IdentityProvider, connector_type: str,
                 submit: Callable[[FormValues], str]) -> None:
        stored = next((c for c in idp.connectors if c.type == connector_type), None)
        spec = spec_for(connector_type)
        values: dict[str, Any] = {CONNECTOR_ENABLED.name: True,
                                  CONNECTOR_DEFAULT.name: not idp.connectors}
        stored_secrets: dict[str, str | None] = {}
        if stored is not None:
            values = {**stored.properties, CONNECTOR_ENABLED.name: stored.enabled,
                      CONNECTOR_DEFAULT.name: stored.default}
            stored_secrets = {k: v.ref for k, v in stored.secrets.items() if v.value}
        verb = "Edit" if stored else "New"
        super().__init__(f"{verb} {spec.label} connector of {idp.name}",
                         [*_CONNECTOR_META, *spec.all_properties], submit, values=values,
                         stored_secrets=stored_secrets, precheck=self._problems,
                         intro="Secrets are never shown: an empty secret field keeps the "
                               "stored one (ctrl+r on it clears it); ${env:NAME} stores a "
                               "reference.")
        self.connector_type = connector_type
        self.stored = stored
        #: The last test's outcome, for the administrator and for tests.
        self.tested: TestResult | None = None

    def extra_buttons(self) -> ComposeResult:
        yield Button("Test connection", id="form-test", compact=True)

    def _problems(self, form: FormValues) -> list[FieldError]:
        config, errors = build_connector(self.connector_type, form, self.stored)
        return errors + connector_errors(config)

    @on(Button.Pressed, "#form-test")
    def action_test(self) -> None:
        form = self.form.collect()
        errors = self.form.errors() or self._problems(form)
        if errors:
            self.show_problems(errors)
            return
        config, _errors = build_connector(self.connector_type, form, self.stored)
        self.show_general("Testing the connection…")
        props = typed_properties(config)
        self.call_engine("Testing a connection",
                         lambda: test_connection(self.connector_type, props), self._tested)

    def action_clear_secret(self) -> None:
        name = self.form.name_of(self.focused)
        if name is None or not self.form.stored_secret(name):
            self.notify("Move to a secret field that has a stored value first.",
                        title="Clear secret", severity="warning")
            return
        self.form.clear_secret(name)
        self.notify(f"{self.form.label_of(name)}: the stored value is removed when you save.",
                    title="Clear secret")

    def _tested(self, result: TestResult) -> None:
        self.tested = result
        self.show_general(("Test passed: " if result.ok else "Test failed: ") + result.message)


# ---------------------------------------------------------------- mappings as lines
def parse_pairs(text: str, with_default: bool) -> list[tuple[str, str, str | None]]:
    """Lines ``local = remote`` (``| default`` after it when ``with_default``); blank lines
    and ``#`` comments are skipped."""
    pairs = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        local, sep, rest = line.partition("=")
        remote, bar, default = rest.partition("|") if with_default else (rest, "", "")
        if not sep or not local.strip() or not remote.strip():
            shape = "local = remote | default" if with_default else "local = remote"
            raise InvalidInput(f"line {n}: expected '{shape}', got {line!r}")
        pairs.append((local.strip(), remote.strip(), default.strip() if bar else None))
    return pairs


def claim_lines(mappings: Iterable[ClaimMapping]) -> str:
    return "\n".join(f"{m.local} = {m.remote}" + (f" | {m.default}" if m.default else "")
                     for m in mappings)


def role_lines(mappings: Iterable[RoleMapping]) -> str:
    return "\n".join(f"{m.local} = {m.remote}" for m in mappings)


# ---------------------------------------------------------------- the screen
@dataclass(frozen=True)
class IdpsRead:
    idps: list[IdentityProvider]
    domains: list[str]


class IdentityProvidersScreen(ListDetailScreen):
    DEFAULT_CSS = """
    IdentityProvidersScreen #idp-detail {
        height: 55%;
    }
    """
    AUTO_FOCUS = "#idps"
    LIST_ID = "idps"
    BINDINGS: ClassVar[list[BindingType]] = [
        *list_bindings("idps", "Show only the identity providers whose name matches",
                       "Show every identity provider again"),
        Binding("a", "add", "Add", id="idps.add", tooltip="Add an identity provider"),
        Binding("e", "edit", "Edit", id="idps.edit",
                tooltip="Description, provisioning roles and JIT settings"),
        Binding("c", "connector", "Connector", id="idps.connector",
                tooltip="Configure the outbound connector"),
        Binding("C", "connector_type", "Connector of a type", id="idps.connector_type",
                show=False, tooltip="Configure a connector of another type"),
        Binding("t", "test", "Test", id="idps.test",
                tooltip="Test the connection of every enabled connector"),
        Binding("m", "claims", "Claims", id="idps.claims", tooltip="Edit the claim mappings"),
        Binding("o", "roles", "Roles", id="idps.roles", tooltip="Edit the role mappings"),
        Binding("d", "delete", "Delete", id="idps.delete",
                tooltip="Delete the identity provider (asks first)"),
        Binding("l", "simulate_login", "Simulate login", id="idps.simulate_login", show=False,
                tooltip="Sign a login with the sandbox IdP's keys and send it to the JIT "
                        "intake (a demo, or a home where `mware-iam sandbox idp` ran)"),
        Binding("r", "refresh", "Refresh", id="idps.refresh", show=False,
                tooltip="Read the identity providers again"),
    ]

    def __init__(self, iam: Iam, read_only: bool) -> None:
        super().__init__(iam, read_only)
        self.idps: dict[str, IdentityProvider] = {}
        self.domains: list[str] = [PRIMARY]

    def compose_body(self) -> ComposeResult:
        with Vertical(id="idps-pane", classes="list-pane") as pane:
            pane.border_title = "Identity providers"
            yield FilterBar("Name contains")
            yield ListTable("Name", "State", "Connectors", "Provisioning roles", id="idps")
        with VerticalScroll(id="idp-detail", classes="detail-pane") as detail:
            detail.border_title = "Identity provider"
            yield Static("No identity provider selected.", id="idp-detail-body", markup=False)

    @property
    def highlighted(self) -> IdentityProvider | None:
        key = self.table.highlighted_key
        return self.idps.get(key) if key else None

    # ------------------------------------------------------------------ reading
    def action_refresh(self) -> None:
        iam = self.iam

        def read() -> IdpsRead:
            return IdpsRead([iam.get_idp(n) for n in iam.idp_names()], iam.stores.domains)

        self.call_engine("Loading identity providers", read, self._show)

    def _show(self, read: IdpsRead) -> None:
        self.idps = {i.name: i for i in read.idps}
        self.domains = read.domains
        self._fill()

    def _fill(self) -> None:
        needle = self.filter_bar.value
        shown = [i for i in self.idps.values() if not needle or matches(needle, i.name,
                                                                         i.description)]
        self.table.refill([(i.name, [
            plain(i.name), plain("enabled" if i.enabled else "disabled"),
            plain(", ".join(c.type + ("" if c.enabled else " (off)") for c in i.connectors)
                  or "none"),
            plain(", ".join(i.provisioning_roles) or "every user")]) for i in shown])
        self.show_detail()
        self.refresh_bindings()

    def show_detail(self) -> None:
        self.query_one("#idp-detail-body", Static).update(render_idp(self.highlighted))

    def apply_filter(self) -> None:
        self._fill()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in _NEEDS_IDP:
            return self.highlighted is not None
        return super().check_action(action, parameters)

    # ------------------------------------------------------------------ writes
    def _save(self, build: Callable[[IdentityProvider], IdentityProvider], name: str
              ) -> Callable[[], str]:
        """A save that re-reads the provider in the worker and changes only what ``build``
        changes (so an edit of the connector never loses a concurrent mapping edit)."""
        iam = self.iam

        def save() -> str:
            try:
                current = iam.get_idp(name)
            except IamError:
                current = IdentityProvider(name)
            iam.save_idp(CONSOLE_ADMIN, build(current))
            return name

        return save

    def _saved(self, name: str | None) -> None:
        if name is not None:
            self.notify(f"Identity provider {name} saved", title="Identity providers")
            self.action_refresh()

    def action_add(self) -> None:
        if self.refuse_write("add an identity provider"):
            return
        iam = self.iam

        def submit(form: FormValues) -> str:
            name = form.text("name").strip()
            if name in iam.idp_names():
                raise InvalidInput(f"name: identity provider {name!r} already exists")
            iam.save_idp(CONSOLE_ADMIN, IdentityProvider(
                name, form.text("description"), bool(form.values["enabled"])))
            return name

        self.app.push_screen(FormScreen("New identity provider",
                                        [NAME, DESCRIPTION, ENABLED], submit), self._saved)

    def action_edit(self) -> None:
        idp = self.highlighted
        if idp is None or self.refuse_write("edit the identity provider"):
            return
        values = {"name": idp.name, "description": idp.description, "enabled": idp.enabled,
                  PROVISIONING_ROLES.name: ", ".join(idp.provisioning_roles),
                  JIT_ENABLED.name: idp.jit.enabled, "jit-userstore": idp.jit.userstore,
                  JIT_SCHEME.name: idp.jit.scheme, JIT_ASSOCIATE.name: idp.jit.associate_local_user,
                  JIT_SYNC.name: idp.jit.attribute_sync}
        fed = idp.federation
        if fed is not None:
            values.update({FED_PROTOCOL.name: fed.protocol, FED_ISSUER.name: fed.issuer,
                           FED_AUDIENCE.name: ", ".join(fed.audience),
                           FED_KEYS.name: keys_text(fed),
                           FED_USERNAME.name: fed.username_claim or ""})

        def submit(form: FormValues) -> str:
            roles = tuple(r.strip() for r in form.text(PROVISIONING_ROLES.name).split(",")
                          if r.strip())
            jit = JitConfig(bool(form.values[JIT_ENABLED.name]), form.text("jit-userstore"),
                            form.text(JIT_SCHEME.name), bool(form.values[JIT_ASSOCIATE.name]),
                            form.text(JIT_SYNC.name) or ATTRIBUTE_SYNC[0])
            federation = federation_of_fields(*(form.text(f.name) for f in _FEDERATION_SPECS))
            return self._save(lambda cur: dataclasses.replace(
                cur, description=form.text("description"), enabled=bool(form.values["enabled"]),
                provisioning_roles=roles, jit=jit, federation=federation), idp.name)()

        specs = [NAME, DESCRIPTION, ENABLED, PROVISIONING_ROLES, JIT_ENABLED,
                 jit_userstore(self.domains), JIT_SCHEME, JIT_ASSOCIATE, JIT_SYNC,
                 *_FEDERATION_SPECS]
        self.app.push_screen(FormScreen(f"Edit {idp.name}", specs, submit, values=values,
                                        locked={"name"}), self._saved)

    def action_connector(self) -> None:
        """The identity provider's connector; a choice of type when it has none or several."""
        idp = self.highlighted
        if idp is None or self.refuse_write("configure the connector"):
            return
        if len(idp.connectors) == 1:
            self._edit_connector(idp, idp.connectors[0].type)
            return
        self.action_connector_type()

    def action_connector_type(self) -> None:
        idp = self.highlighted
        if idp is None or self.refuse_write("configure the connector"):
            return
        types = [*{*(c.type for c in idp.connectors), *registry()}]
        if len(types) == 1:
            self._edit_connector(idp, types[0])
            return
        kind = PropertySpec("type", "Connector type", _P.CHOICE, required=True,
                            choices=tuple(sorted(types)))
        self.app.push_screen(
            FormScreen(f"Connector of {idp.name}", [kind], lambda form: form.text("type"),
                       save_label="Open",
                       values={"type": next((c.type for c in idp.connectors), None)}),
            lambda chosen: self._edit_connector(idp, chosen) if chosen else None)

    def _edit_connector(self, idp: IdentityProvider, connector_type: str) -> None:
        """Save the connector; a new one that provisions (it and its provider enabled)
        then offers to sync everyone in its scope."""
        new: list[str] = []  # the target, when the save added it

        def submit(values: FormValues) -> str:
            config, errors = build_connector(connector_type, values, form.stored)
            if errors:
                raise InvalidInput("; ".join(str(e) for e in errors))

            def with_connector(cur: IdentityProvider) -> IdentityProvider:
                others = tuple(c for c in cur.connectors if c.type != connector_type)
                if len(others) == len(cur.connectors) and cur.enabled and config.enabled:
                    new.append(target_key(cur.name, connector_type))
                return dataclasses.replace(cur, connectors=(*others, config))

            return self._save(with_connector, idp.name)()

        def saved(name: str | None) -> None:
            self._saved(name)
            if name is not None and new:
                offer_sync_all(self, new[-1])

        form = ConnectorForm(idp, connector_type, submit)
        self.app.push_screen(form, saved)

    def action_claims(self) -> None:
        idp = self.highlighted
        if idp is None or self.refuse_write("edit the claim mappings"):
            return

        def parse(text: str) -> tuple[ClaimMapping, ...]:
            return tuple(ClaimMapping(a, b, c) for a, b, c in parse_pairs(text, True))

        def submit(mappings: tuple[ClaimMapping, ...]) -> str:
            return self._save(lambda cur: dataclasses.replace(cur, claim_mappings=mappings),
                              idp.name)()

        self.app.push_screen(LinesScreen(
            f"Claim mappings of {idp.name}", claim_lines(idp.claim_mappings), parse, submit,
            intro="One a line: local claim = remote attribute | default. None: the "
                  "connector's own dialect (SCIM) applies."), self._saved)

    def action_roles(self) -> None:
        idp = self.highlighted
        if idp is None or self.refuse_write("edit the role mappings"):
            return

        def parse(text: str) -> tuple[RoleMapping, ...]:
            return tuple(RoleMapping(a, b) for a, b, _c in parse_pairs(text, False))

        def submit(mappings: tuple[RoleMapping, ...]) -> str:
            return self._save(lambda cur: dataclasses.replace(cur, role_mappings=mappings),
                              idp.name)()

        self.app.push_screen(LinesScreen(
            f"Role mappings of {idp.name}", role_lines(idp.role_mappings), parse, submit,
            intro="One a line: local role = remote group."), self._saved)

    def action_delete(self) -> None:
        idp = self.highlighted
        if idp is None or self.refuse_write("delete the identity provider"):
            return
        name = idp.name
        self.confirm(f"Delete identity provider {name}?", lambda: self.call_engine(
            "Deleting an identity provider",
            lambda: self.iam.remove_idp(CONSOLE_ADMIN, name),
            lambda _none: self._saved_removed(name)),
            detail="Its connectors and mappings go with it.", action="Delete")

    def _saved_removed(self, name: str) -> None:
        self.notify(f"Identity provider {name} deleted", title="Identity providers")
        self.action_refresh()

    # ------------------------------------------------------------------ test
    def action_test(self) -> None:
        idp = self.highlighted
        if idp is None:
            return
        if not any(c.enabled for c in idp.connectors):
            self.notify(f"{idp.name} has no enabled connector to test.",
                        title="Test connection", severity="warning")
            return

        def run() -> list[tuple[str, TestResult]]:
            return [(c.type, test_connection(c.type, build_target(idp, c.type).properties))
                    for c in idp.connectors if c.enabled]

        self.call_engine("Testing connections", run,
                         lambda results: self._tested(idp.name, results))

    def _tested(self, name: str, results: list[tuple[str, TestResult]]) -> None:
        for connector_type, result in results:
            self.notify(result.message, title=f"{name}:{connector_type} "
                        + ("reachable" if result.ok else "failed"),
                        severity="information" if result.ok else "error")

    # ------------------------------------------------------------------ JIT
    def can_simulate(self) -> bool:
        idp = self.highlighted
        return idp is not None and idp.federation is not None and not self.read_only \
            and SandboxIdp.in_home(self.iam.home.path)

    def action_simulate_login(self) -> None:
        idp = self.highlighted
        if idp is None or idp.federation is None or not self.can_simulate():
            self.notify("Simulating a login needs the sandbox IdP's keys (the demo) and an "
                        "identity provider with federation settings", severity="warning")
            return
        iam, fed = self.iam, idp.federation
        apps = tuple(a for a in iam.app_names() if a != "resident") or ("resident",)
        app_spec = PropertySpec("app", "Application", _P.CHOICE, required=True,
                                default=apps[0], choices=apps)

        def submit(form: FormValues) -> str:
            claims: dict[str, str] = {}
            for part in filter(str.strip, form.text("claims").split(",")):
                name, sep, value = part.partition("=")
                if not sep or not name.strip():
                    raise InvalidInput(f"claims: expected name=value, got {part.strip()!r}")
                claims[name.strip()] = value.strip()
            groups = [g.strip() for g in form.text("groups").split(",") if g.strip()]
            body = SandboxIdp.of_home(iam.home.path, fed.issuer).login_body(
                fed, form.text("username").strip(), claims, groups)
            result = JitIntake(iam).login(form.text("app"), idp.name, body)
            verb = "created" if result.created else "updated or unchanged"
            return f"{result.user} {verb} by a JIT login through {form.text('app')}"

        self.app.push_screen(FormScreen(
            f"Simulate a login through {idp.name}", [SIM_USERNAME, SIM_CLAIMS, SIM_GROUPS,
                                                     app_spec], submit, save_label="Log in",
            intro="Signed with the sandbox IdP's demo keys and sent to the JIT intake."),
            lambda done: self.notify(done, title="JIT login") if done else None)

    # ------------------------------------------------------------------ palette
    def palette_commands(self) -> Iterable[SystemCommand]:
        idp = self.highlighted
        if idp is None:
            return
        yield SystemCommand(f"Test the connectors of {idp.name}", "Reach every enabled "
                            "connector now", self.action_test)
        if not self.read_only:
            yield SystemCommand(f"Configure the connector of {idp.name}", "Edit the outbound "
                                "connector", self.action_connector)
        if self.can_simulate():
            yield SystemCommand(f"Simulate a login through {idp.name}", "Sign claims with "
                                "the sandbox IdP and send them to the JIT intake",
                                self.action_simulate_login)


def render_idp(idp: IdentityProvider | None) -> Text:
    """Everything about one provider; secrets masked (``ConnectorConfig.masked``)."""
    if idp is None:
        return Text("No identity provider selected.", style="italic")
    text = Text()
    text.append(idp.name, style="bold")
    text.append(f" · {'enabled' if idp.enabled else 'disabled'}")
    if idp.description:
        text.append(f" · {idp.description}")

    def section(title: str, lines: Sequence[str], empty: str) -> None:
        text.append(f"\n{title}: ", style="bold")
        if not lines:
            text.append(empty)
        for line in lines:
            text.append(f"\n  {line}")

    jit = idp.jit
    text.append("\nJIT: ", style="bold")
    text.append(f"on, into {jit.userstore}, {jit.scheme}"
                + (", associates local users" if jit.associate_local_user else "")
                + (f", attribute sync {jit.attribute_sync}"
                   if jit.attribute_sync != ATTRIBUTE_SYNC[0] else "")
                if jit.enabled else "off")
    fed = idp.federation
    if fed is not None:
        keys = "JWKS" if fed.jwks else f"jwks_uri {fed.jwks_uri}" if fed.jwks_uri \
            else "certificate"
        text.append("\nFederation: ", style="bold")
        text.append(f"{fed.protocol}, issuer {fed.issuer}, audience "
                    f"{', '.join(fed.audience)}, keys: {keys}, username from "
                    f"{fed.username_key}")
    text.append("\nProvisioning roles: ", style="bold")
    text.append(", ".join(idp.provisioning_roles) or "none (every user is in scope)")
    section("Claim mappings", [f"{m.local} → {m.remote}" + (f" (default {m.default})"
                                                             if m.default else "")
                               for m in idp.claim_mappings], "none (the connector's dialect)")
    section("Role mappings", [f"{m.local} → {m.remote}" for m in idp.role_mappings], "none")
    if not idp.connectors:
        text.append("\nConnectors: ", style="bold")
        text.append("none (c adds one)")
    for c in idp.connectors:
        flags = ["enabled" if c.enabled else "disabled"] + (["default"] if c.default else [])
        text.append(f"\nConnector {c.type}", style="bold")
        text.append(f" ({', '.join(flags)})")
        masked = c.masked()
        width = max((len(k) for k in masked), default=0)
        for key in sorted(masked):
            text.append(f"\n  {key.ljust(width)}  {masked[key]}")
    return text
