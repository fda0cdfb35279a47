"""``Iam``: one deployment opened for use. Every face (CLI, console, SCIM) starts here.

Opening resolves the home and the system database, applies the migrations, seeds what a
new deployment needs (the claim dialects, PRIMARY, the resident application), opens the
userstores and builds the identity service. Configuration writes (identity providers,
applications, tokens, userstores, claims) are methods here so that each one is audited.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, select, update

from core import apps, audit, config_versions, idps
from core.claims import ClaimCatalog
from core.db import SystemDB
from core.errors import InvalidInput, NotFound
from core.health import HealthCheck
from core.home import Home
from core.identity.events import EventBus, Initiator
from core.identity.service import IdentityService
from core.names import (
    PRIMARY,
    PROXY_PREFIX,
    RESERVED_DOMAINS,
    is_proxy_domain,
    proxy_domain,
    validate_domain,
)
from core.passwords import Argon2Params, PasswordHashing
from core.provisioning.engine import ProvisioningEngine
from core.schema import applications, claim_attribute_mappings, internal_role_members
from core.schema import userstores as userstores_table
from core.secrets import SecretBox
from core.userstores.definitions import StoreDefinition, read_definitions, validated
from core.userstores.router import UserstoreRouter


class Iam:
    def __init__(self, home: Home, argon2: Argon2Params | None = None) -> None:
        self.home = home
        home.ensure()
        self.db = SystemDB(home.db_url)
        self.db.migrate()
        self.secrets = SecretBox.for_home(home.key_file)
        self.hashing = PasswordHashing(argon2)
        #: True when this start created the deployment (the caller may seed a config).
        self.fresh = False
        with self.db.transaction() as conn:
            self.fresh = ClaimCatalog.seed_defaults(conn)
            UserstoreRouter.seed_primary(conn)
            apps.seed_resident(conn)
        self.bus = EventBus()
        self.stores = UserstoreRouter(self.db, self.hashing, self.secrets)
        self.stores.on_reload = self.reload_claims  # stores another process changed
        self.stores.load()
        #: What ``/ready`` and ``/metrics`` say of the system database and the stores.
        self.health = HealthCheck(self.db, self.stores)
        self._claims: ClaimCatalog | None = None
        self.identity = IdentityService(self.db, self.stores, lambda: self.claims, self.bus)
        self.provisioning = ProvisioningEngine(self)

    @classmethod
    def open(cls, home: str | None = None, db: str | None = None,
             argon2: Argon2Params | None = None) -> Iam:
        return cls(Home.resolve(home, db), argon2)

    def close(self) -> None:
        self.provisioning.close()
        self.stores.close()
        self.db.dispose()

    def __enter__(self) -> Iam:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ claims
    @property
    def claims(self) -> ClaimCatalog:
        if self._claims is None:
            with self.db.transaction() as conn:
                self._claims = ClaimCatalog.load(conn)
        return self._claims

    def reload_claims(self) -> None:
        self._claims = None

    # ------------------------------------------------------------------ userstores
    def userstore_definitions(self) -> list[StoreDefinition]:
        """Every store definition in order; secret properties are ``SecretValue``s."""
        with self.db.transaction() as conn:
            return read_definitions(conn, self.secrets)

    def save_userstore(
        self, initiator: Initiator, domain: str, store_type: str,
        properties: Mapping[str, Any], enabled: bool = True, description: str = "",
    ) -> None:
        """Add or replace a store definition (secret properties: text or ``SecretValue``,
        stored encrypted); the stores are reopened at once."""
        domain = validate_domain(domain)
        if domain in RESERVED_DOMAINS - {PRIMARY}:
            raise InvalidInput(f"domain {domain} is reserved")
        if is_proxy_domain(domain):
            raise InvalidInput(f"domain {domain}: the prefix {PROXY_PREFIX} is reserved for "
                               "the relay stores of applications in proxy mode")
        props = validated(domain, store_type, properties)
        if domain == PRIMARY and not enabled:
            raise InvalidInput("userstore PRIMARY cannot be disabled")
        plain, secrets = self.stores.columns(store_type, props)
        with self.db.transaction() as conn:
            exists = conn.execute(select(userstores_table.c.position).where(
                userstores_table.c.domain == domain)).scalar()
            values = {"type": store_type, "enabled": enabled, "description": description,
                      "properties": plain, "secrets": secrets}
            if exists is None:
                position = len(self.userstore_definitions())
                conn.execute(insert(userstores_table).values(
                    domain=domain, position=position, **values))
            else:
                conn.execute(update(userstores_table).where(
                    userstores_table.c.domain == domain).values(**values))
            audit.record(conn, initiator, "userstore.save", domain,
                         {"type": store_type, "enabled": enabled})
            config_versions.bump(conn, config_versions.USERSTORES)
        self.stores.load()

    def remove_userstore(self, initiator: Initiator, domain: str) -> None:
        """Forget a secondary store: its definition, its claim mappings and its users'
        Internal role memberships. The directory or database itself is not touched (to
        hide a store and keep everything, disable it instead)."""
        domain = validate_domain(domain)
        if domain == PRIMARY:
            raise InvalidInput("userstore PRIMARY cannot be removed")
        if domain not in {d.domain for d in self.userstore_definitions()}:
            raise NotFound(f"userstore {domain} does not exist")
        with self.db.transaction() as conn:
            inbound = [a for a in apps.names(conn) if apps.get(conn, a).inbound_domain == domain]
            jit = [n for n in idps.names(conn)
                   if idps.get(conn, self.secrets, n).jit.userstore == domain]
            if inbound or jit:
                users = [f"application {a}" for a in inbound] + \
                    [f"identity provider {n} (JIT)" for n in jit]
                raise InvalidInput(f"userstore {domain} is used by {', '.join(users)}; point "
                                   "them at another userstore first")
            conn.execute(internal_role_members.delete().where(
                internal_role_members.c.domain == domain))
            conn.execute(claim_attribute_mappings.delete().where(
                claim_attribute_mappings.c.domain == domain))
            conn.execute(userstores_table.delete().where(userstores_table.c.domain == domain))
            for position, d in enumerate(read_definitions(conn, self.secrets)):
                conn.execute(update(userstores_table).where(
                    userstores_table.c.domain == d.domain).values(position=position))
            audit.record(conn, initiator, "userstore.remove", domain)
            config_versions.bump(conn, config_versions.USERSTORES)
        self.stores.load()
        self.reload_claims()

    # ------------------------------------------------------------------ claims config
    def save_claim(
        self, initiator: Initiator, uri: str, display_name: str, description: str = "",
        regex: str | None = None, mappings: Mapping[str, str] | None = None,
    ) -> None:
        from core.schema import claim_attribute_mappings, local_claims

        with self.db.transaction() as conn:
            values = {"display_name": display_name, "description": description, "regex": regex}
            if conn.execute(select(local_claims.c.uri).where(local_claims.c.uri == uri)).first():
                conn.execute(update(local_claims).where(local_claims.c.uri == uri).values(
                    **values))
            else:
                conn.execute(insert(local_claims).values(uri=uri, required=False,
                                                         read_only=False, **values))
            for domain, attribute in (mappings or {}).items():
                conn.execute(claim_attribute_mappings.delete().where(
                    claim_attribute_mappings.c.claim_uri == uri,
                    claim_attribute_mappings.c.domain == domain))
                conn.execute(insert(claim_attribute_mappings).values(
                    claim_uri=uri, domain=domain, attribute=attribute))
            audit.record(conn, initiator, "claim.save", uri, {"mappings": dict(mappings or {})})
        self.reload_claims()

    # ------------------------------------------------------------------ identity providers
    def idp_names(self) -> list[str]:
        with self.db.transaction() as conn:
            return idps.names(conn)

    def get_idp(self, name: str) -> idps.IdentityProvider:
        with self.db.transaction() as conn:
            return idps.get(conn, self.secrets, name)

    def save_idp(self, initiator: Initiator, idp: idps.IdentityProvider) -> None:
        with self.db.transaction() as conn:
            old = idps.get(conn, self.secrets, idp.name) if idp.name in idps.names(conn) \
                else None
            idps.save(conn, self.secrets, idp)
            self.provisioning.planner.invalidate()
            self.provisioning.newly_mapped_groups(conn, old, idp)
            audit.record(conn, initiator, "idp.save", idp.name,
                         {"connectors": [c.type for c in idp.connectors]})

    def remove_idp(self, initiator: Initiator, name: str) -> None:
        with self.db.transaction() as conn:
            users = [a for a in apps.names(conn)
                     if any(t.idp == name for t in apps.get(conn, a).outbound)]
            if users:
                raise InvalidInput(f"identity provider {name} is an outbound target of "
                                   f"{', '.join(users)}; remove it there first")
            idps.remove(conn, name)
            self.provisioning.planner.invalidate()
            audit.record(conn, initiator, "idp.remove", name)

    # ------------------------------------------------------------------ applications
    def app_names(self) -> list[str]:
        with self.db.transaction() as conn:
            return apps.names(conn)

    def get_app(self, name: str) -> apps.Application:
        with self.db.transaction() as conn:
            return apps.get(conn, name)

    def resident_app(self) -> apps.Application:
        with self.db.transaction() as conn:
            name = conn.execute(select(applications.c.name).where(
                applications.c.is_resident)).scalar_one()
            return apps.get(conn, name)

    def save_app(self, initiator: Initiator, app: apps.Application) -> None:
        self.stores.store(app.inbound_domain)
        with self.db.transaction() as conn:
            relay = proxy_domain(app.name)
            owner = apps.proxy_domain_owner(conn, relay, app.name) if app.proxy_mode else None
            if owner is not None:  # its relayed users would be the other's too
                raise InvalidInput(f"application {app.name}: proxy mode would relay under "
                                   f"{relay}, which application {owner!r} relays under; "
                                   "rename one of them")
            for t in app.outbound:
                try:
                    idps.get(conn, self.secrets, t.idp).connector(t.connector)
                except NotFound as exc:
                    raise InvalidInput(f"application {app.name}: outbound target: {exc}") \
                        from None
            apps.save(conn, app)
            self.provisioning.planner.invalidate()
            audit.record(conn, initiator, "app.save", app.name,
                         {"outbound": [f"{t.idp}:{t.connector}" for t in app.outbound]})

    def remove_app(self, initiator: Initiator, name: str) -> None:
        with self.db.transaction() as conn:
            apps.remove(conn, name)
            self.provisioning.planner.invalidate()
            audit.record(conn, initiator, "app.remove", name)

    def issue_token(self, initiator: Initiator, app_name: str) -> str:
        with self.db.transaction() as conn:
            token = apps.issue_token(conn, app_name)
            audit.record(conn, initiator, "app.token.issue", app_name, {"hint": token[-4:]})
        return token

    def revoke_token(self, initiator: Initiator, app_name: str, hint: str) -> int:
        with self.db.transaction() as conn:
            n = apps.revoke_token(conn, app_name, hint)
            if n == 0:
                raise NotFound(f"application {app_name} has no live token ending in {hint!r}")
            audit.record(conn, initiator, "app.token.revoke", app_name, {"hint": hint})
        return n

    def app_tokens(self, app_name: str) -> list[apps.TokenInfo]:
        with self.db.transaction() as conn:
            return apps.tokens(conn, app_name)

    def authenticate_token(self, token: str) -> apps.Application | None:
        with self.db.transaction() as conn:
            return apps.authenticate(conn, token)

    # ------------------------------------------------------------------ audit
    def audit_log(self, limit: int = 100, action: str | None = None,
                  target: str | None = None) -> list[audit.AuditEntry]:
        with self.db.transaction() as conn:
            return audit.read(conn, limit, action, target)
