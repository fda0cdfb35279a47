"""``mware-iam demo``: a throwaway deployment wired to local peers, and optional activity.

- The home is a temporary directory, seeded from ``sample_config/`` and removed at exit.
- ``scim2-server`` runs on 127.0.0.1:8787 and answers at ``/v2``, the base that
  ``sample_config/`` and the README name: the target ``scim-peer`` reaches it directly.
  The partner's directory is a second ``scim2-server`` (on a free port, so the two
  directories stay apart), which ``partner-directory`` reaches through a
  :class:`FaultProxy`.
- The SPML 2.0 sandbox provider (``connectors.sandbox.spml``) runs on 127.0.0.1:8790 as
  the HR portal's third target, ``spml-provider`` (users leaving scope are suspended).
- On request the inbound SCIM API is served too (``mware-iam demo`` does, on 8080), with a
  token of the HR portal in a file of the home.
- ``corp-sso`` is an OIDC identity provider with JIT on for the HR portal, signed for by the
  sandbox IdP (``core/demo/sso.py``); with activity, one of its people logs in every
  ``JIT_EVERY`` ticks through the JIT intake.
- With activity, a thread plays the HR portal (``Initiator.application_client``): it
  creates, changes and deletes users on a timer, so both targets get work; and the
  partner goes down on a fixed cycle (the proxy answers 503 for ``OUTAGE_SECONDS`` of every
  ``CYCLE_SECONDS``), so the dashboard shows it retrying, quarantined and recovering.

Everything is bounded: at most ``MAX_USERS`` generated users exist at once, one change per
tick, and the outage always ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from connectors.sandbox import google, salesforce, spml
from connectors.sandbox.peers import (
    LOOPBACK,
    Fault,
    FaultProxy,
    PeerUnavailable,
    ScimServer,
    fault_proxy,
    scim_server,
)
from core.apps import OutboundTarget
from core.configfile.files import seed_sample
from core.demo.sso import FederatedLogins, configure_corp_sso
from core.errors import IamError
from core.files import write_private
from core.http.thread import scim_thread
from core.iam import Iam
from core.identity.events import Face, Initiator
from core.idps import ClaimMapping, ConnectorConfig, IdentityProvider, RoleMapping
from core.jit.sandbox import SandboxIdp
from core.names import PRIMARY
from core.passwords import Argon2Params
from core.secrets import SecretValue

log = logging.getLogger(__name__)

PEER_PORT = 8787
GOOGLE_PORT = 8788  # the third target: a Google Workspace sandbox
#: The sample's targets, and the application whose outbound list holds both.
DIRECT_TARGET = "scim-peer"
FLAKY_TARGET = "partner-directory"
ACTOR_APP = "hr-portal"
PROVISIONED = "Internal/provisioned"
PARTNER = "Internal/partner-access"

TICK_SECONDS = 2.0
#: A federated login (corp-sso) every this many ticks.
JIT_EVERY = 3
CYCLE_SECONDS = 120.0
OUTAGE_START = 40.0
OUTAGE_SECONDS = 30.0
MIN_USERS = 6
MAX_USERS = 24
#: Fast breaker settings on the flaky target, so a walkthrough sees every state.
FLAKY_PROPERTIES = {"retry-base-seconds": 2, "quarantine-threshold": 3, "probe-seconds": 10,
                    "timeout-seconds": 5}

GIVEN = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Linus", "Radia",
         "Dennis", "Frances", "Tim", "Hedy", "Vint", "Katherine", "Donald")
FAMILY = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton",
          "Torvalds", "Perlman", "Ritchie", "Allen", "Berners-Lee", "Lamarr", "Cerf",
          "Johnson", "Knuth")
DEPARTMENTS = ("Engineering", "Sales", "HR", "Finance", "Support")


@dataclass
class Demo:
    iam: Iam
    home: Path
    peer: ScimServer
    #: The partner's directory, behind ``proxy``.
    partner: ScimServer
    proxy: FaultProxy
    activity: ActivityGenerator | None
    #: The inbound SCIM API (when served) and the file holding the HR portal's token.
    scim_url: str | None = None
    token_file: Path | None = None
    #: Signs corp-sso's logins (``mware-iam sandbox idp``'s keys in the home).
    sso: SandboxIdp | None = None

    @property
    def application(self) -> str:
        """The application whose token ``token_file`` holds."""
        return ACTOR_APP

    @property
    def peer_url(self) -> str:
        return f"{self.peer.origin}/v2"

    @property
    def partner_url(self) -> str:
        """The partner's directory, as reached without the proxy."""
        return f"{self.partner.origin}/v2"


@contextlib.contextmanager
def demo_deployment(activity: bool = False, *, peer_port: int | None = PEER_PORT,
                    argon2: Argon2Params | None = None, tick: float = TICK_SECONDS,
                    seed: int = 1865, scim_port: int | None = None) -> Iterator[Demo]:
    """The demo, started and stopped (peers, generator, temporary home) as one.

    With ``scim_port`` (0: any free port) the inbound SCIM API is served on 127.0.0.1 too,
    and a token of the HR portal is written (0600) to ``hr-portal.token`` in the home, so a
    walkthrough can provision users in with curl and watch them flow out.
    Raises ``PeerUnavailable`` when the SCIM peer cannot start (not installed, port taken).
    """
    with contextlib.ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mware-iam-demo-")))
        peer = stack.enter_context(scim_server(port=peer_port, tenants=False))
        partner = stack.enter_context(scim_server(tenants=False))
        proxy = stack.enter_context(fault_proxy(partner.origin))
        iam = stack.enter_context(Iam.open(home=str(home), argon2=argon2))
        seed_sample(iam, Initiator.admin(Face.CONFIG))
        stack.enter_context(spml_target(iam, ACTOR_APP, PROVISIONED,
                                        SPML_PORT if peer_port else 0))
        wire(iam, DIRECT_TARGET, f"{peer.origin}/v2")
        wire(iam, FLAKY_TARGET, proxy.url(f"{partner.origin}/v2"), FLAKY_PROPERTIES)
        stack.enter_context(google_target(iam, home, ACTOR_APP, PROVISIONED,
                                               None if peer_port is None else GOOGLE_PORT))
        stack.enter_context(salesforce_target(iam, ACTOR_APP))
        sync_seeded_users(iam)
        sso = configure_corp_sso(iam, home, ACTOR_APP, DIRECT_TARGET)
        scim_url = token_file = None
        if scim_port is not None:
            scim_url = stack.enter_context(scim_thread(iam, scim_port))
            token_file = home / f"{ACTOR_APP}.token"
            write_private(token_file, iam.issue_token(Initiator.admin(Face.CONFIG), ACTOR_APP))
        generator = None
        if activity:
            generator = ActivityGenerator(iam, proxy, tick=tick, seed=seed,
                                          logins=FederatedLogins(iam, sso, ACTOR_APP, seed))
            generator.start()
            stack.callback(generator.stop)
        yield Demo(iam, home, peer, partner, proxy, generator, scim_url, token_file, sso)


def wire(iam: Iam, idp_name: str, base_url: str, extra: dict[str, int] | None = None) -> None:
    """Point the identity provider's SCIM connector at ``base_url`` (…/v2)."""
    idp = iam.get_idp(idp_name)
    connectors = []
    for c in idp.connectors:
        properties = {**c.properties, **(extra or {}), "scim2-user-ep": f"{base_url}/Users"}
        if "scim2-group-ep" in c.properties:
            properties["scim2-group-ep"] = f"{base_url}/Groups"
        connectors.append(dataclasses.replace(c, properties=properties))
    iam.save_idp(Initiator.admin(Face.CONFIG),
                 dataclasses.replace(idp, connectors=tuple(connectors)))


def sync_seeded_users(iam: Iam) -> None:
    """Provision the sample's users now (the file creates them before the targets exist),
    through the HR portal, whose outbound list holds both targets."""
    initiator = Initiator.admin(Face.CONFIG)
    for user in iam.identity.list_users(PRIMARY, MAX_USERS).items:
        iam.provisioning.sync(initiator, user.qualified_name, ACTOR_APP)


class ActivityGenerator:
    """One identity change per tick as the HR portal, and the partner's outage cycle."""

    def __init__(self, iam: Iam, proxy: FaultProxy, *, tick: float = TICK_SECONDS,
                 seed: int = 1865, clock: Callable[[], float] = time.monotonic,
                 logins: FederatedLogins | None = None) -> None:
        self.iam = iam
        self.logins = logins
        self.ticks = 0
        self.proxy = proxy
        self.tick = tick
        self.initiator = Initiator.application_client(ACTOR_APP)
        self.users: list[str] = []
        self.changes = 0
        self._random = random.Random(seed)
        self._serial = 0
        self._clock = clock
        self._started = clock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mware-iam-demo-activity",
                                        daemon=True)

    def start(self) -> None:
        self._started = self._clock()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.proxy.outage(None)

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            self.step()

    # ------------------------------------------------------------------ one tick
    def step(self) -> None:
        """Set the outage for the current time, then make one change."""
        self.proxy.outage(Fault.answer(503, {"detail": "demo outage"})
                          if self.in_outage() else None)
        self.ticks += 1
        try:
            self._change()
            self.changes += 1
            if self.logins is not None and self.ticks % JIT_EVERY == 0:
                self.logins.login()
        except IamError as exc:  # e.g. the database is busy: the next tick tries again
            log.warning("demo activity: %s", exc.message)

    def in_outage(self) -> bool:
        into_cycle = (self._clock() - self._started) % CYCLE_SECONDS
        return OUTAGE_START <= into_cycle < OUTAGE_START + OUTAGE_SECONDS

    def _change(self) -> None:
        r = self._random.random()
        if len(self.users) < MIN_USERS or (r < 0.35 and len(self.users) < MAX_USERS):
            self._create()
        elif r < 0.65:
            self._update()
        elif r < 0.80:
            self._toggle_partner()
        else:
            self._delete()

    def _create(self) -> None:
        self._serial += 1
        given, family = self._random.choice(GIVEN), self._random.choice(FAMILY)
        name = f"{given.lower()}{self._serial:03d}"
        roles = [PROVISIONED] + ([PARTNER] if self._random.random() < 0.6 else [])
        self.iam.identity.add_user(self.initiator, name, None, {
            "givenname": given, "lastname": family, "emailaddress": f"{name}@example.com",
            "department": self._random.choice(DEPARTMENTS)}, roles)
        self.users.append(name)

    def _update(self) -> None:
        name = self._random.choice(self.users)
        self.iam.identity.update_user(self.initiator, name,
                                      {"department": self._random.choice(DEPARTMENTS)}, ())

    def _toggle_partner(self) -> None:
        name = self._random.choice(self.users)
        if PARTNER in self.iam.identity.roles_of(name):
            self.iam.identity.unassign(self.initiator, PARTNER, [name])
        else:
            self.iam.identity.assign(self.initiator, PARTNER, [name])

    def _delete(self) -> None:
        name = self.users.pop(0)
        self.iam.identity.delete_user(self.initiator, name)


#: The Google target: an identity provider provisioned through the sandbox.
GOOGLE_IDP = "google-workspace"
GOOGLE_DOMAIN = "example.com"  # the sample's and the activity's users have addresses there


@contextlib.contextmanager
def google_target(iam: Iam, home: Path, app: str, provisioning_role: str,
                port: int | None = GOOGLE_PORT) -> Iterator[google.GoogleSandbox | None]:
    """Run a sandbox for the demo and add it to ``app``'s targets as ``GOOGLE_IDP``: the
    key in a 0600 file of the home, stored as a ``${file:}`` reference; role
    ``PRIMARY/engineering`` mapped to the group ``engineering``. Without the discovery
    document (the ``sandbox`` extra) the demo runs without it (None)."""
    try:
        sandbox = google.GoogleSandbox(GOOGLE_DOMAIN, port)
    except PeerUnavailable as exc:
        log.warning("demo: no Google target (%s)", exc)
        yield None
        return
    except OSError as exc:
        raise PeerUnavailable(f"port {port} on {LOOPBACK} is in use for the Google sandbox "
                              f"({exc.strerror})") from None
    sandbox.start()
    try:
        key_file = home / "google-service-account.pem"
        write_private(key_file, sandbox.private_key_pem)
        initiator = Initiator.admin(Face.CONFIG)
        props = {k: v for k, v in sandbox.properties().items() if k != "google_prov_private_key"}
        iam.save_idp(initiator, IdentityProvider(
            GOOGLE_IDP, "Google Workspace (the sandbox of mware-iam sandbox google)",
            role_mappings=(RoleMapping("PRIMARY/engineering", "engineering"),),
            provisioning_roles=(provisioning_role,),
            connectors=(ConnectorConfig("googleapps", default=True, properties=props, secrets={
                "google_prov_private_key": SecretValue(sandbox.private_key_pem,
                                                       f"${{file:{key_file}}}")}),)))
        current = iam.get_app(app)
        iam.save_app(initiator, dataclasses.replace(current, outbound=(
            *current.outbound, OutboundTarget(GOOGLE_IDP, "googleapps", False, False))))
        yield sandbox
    finally:
        sandbox.stop()


#: The SPML target (an identity provider of its own) and where it listens.
SPML_IDP = "spml-provider"
SPML_PORT = 8790


@contextlib.contextmanager
def spml_target(iam: Iam, application: str, provisioning_role: str,
                port: int = SPML_PORT) -> Iterator[spml.SpmlSandbox]:
    """A sandbox provider as one more target of ``application`` (``mware-iam demo``):
    users holding ``provisioning_role`` become PSOs, and are suspended when they lose it."""
    with spml.spml_sandbox(port) as sandbox:
        admin = Initiator.admin(Face.CONFIG)
        iam.save_idp(admin, IdentityProvider(
            name=SPML_IDP, description="The SPML 2.0 sandbox provider",
            provisioning_roles=(provisioning_role,),
            claim_mappings=(ClaimMapping("givenname", "givenName"),
                            ClaimMapping("lastname", "sn"),
                            ClaimMapping("emailaddress", "mail")),
            connectors=(ConnectorConfig("spml", default=True, properties={
                "spml-ep": sandbox.url, "spml-oc": spml.OBJECT_CLASS,
                "deprovision-action": "disable"}),)))
        app = iam.get_app(application)
        iam.save_app(admin, dataclasses.replace(app, outbound=(
            *app.outbound, OutboundTarget(SPML_IDP, "spml", False, False))))
        yield sandbox


#: The Salesforce target: a sandbox org on 127.0.0.1:8789.
SALESFORCE_PORT = 8789
SALESFORCE_IDP = "salesforce-org"


@contextlib.contextmanager
def salesforce_target(iam: Iam, application: str, port: int = SALESFORCE_PORT
                      ) -> Iterator[salesforce.SalesforcePeer]:
    """``mware-iam demo``'s Salesforce org: the peer on ``port`` (a free one when taken),
    an identity provider ``salesforce-org`` with a ``salesforce`` connector pointing at it
    (engineering mapped to a public group), appended to ``application``'s targets."""
    try:
        peer = salesforce.SalesforcePeer(port)
    except OSError:
        peer = salesforce.SalesforcePeer(0)
    peer.start()
    try:
        props = peer.properties()
        secret = SecretValue(str(props.pop("sf-client-secret")))
        admin = Initiator.admin(Face.CONFIG)
        iam.save_idp(admin, IdentityProvider(
            name=SALESFORCE_IDP, description=f"Sandbox Salesforce org on {peer.origin}",
            role_mappings=(RoleMapping("PRIMARY/engineering", "Engineering"),),
            connectors=(ConnectorConfig("salesforce", default=True, properties=props,
                                        secrets={"sf-client-secret": secret}),)))
        app = iam.get_app(application)
        iam.save_app(admin, dataclasses.replace(
            app, outbound=(*app.outbound, OutboundTarget(SALESFORCE_IDP, "salesforce"))))
        yield peer
    finally:
        peer.stop()
