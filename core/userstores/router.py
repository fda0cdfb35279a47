"""Userstore registry and router: ``DOMAIN/name`` -> the store of that domain.

Store definitions live in the ``userstores`` table (PRIMARY is created on first start; the
types and their property schemas are in :mod:`core.userstores.definitions`). Unqualified
names are looked up in PRIMARY first, then in the secondaries in their order. A disabled
store is hidden (its data stays where it is).

Opening a store never connects to it: a directory or database that is down makes that
store's calls fail with ``StoreUnavailable`` naming its domain, while every other store
keeps working (a store whose definition cannot even be opened behaves the same way).

Definitions written by another process (a ``userstores add`` beside a running ``serve``)
are seen within ``REFRESH_SECONDS``: every write bumps their version in the system DB
(:mod:`core.config_versions`), and routing compares it at most once in that time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn, cast

from sqlalchemy import Connection, insert, select

from core import config_versions
from core.db import SystemDB
from core.errors import IamError, InvalidInput, NotFound, StoreUnavailable
from core.names import INTERNAL, PRIMARY, QualifiedName, is_proxy_domain, parse_name
from core.passwords import PasswordHashing
from core.schema import userstores as userstores_table
from core.secrets import SecretBox
from core.userstores.base import Capabilities, Health, Policies, StoredUser, UserStore
from core.userstores.definitions import (
    POLICY_PROPERTIES,
    SQL_PROPERTIES,
    STORE_TYPES,
    TYPES,
    StoreDefinition,
    policies_from,
    read_definitions,
    to_columns,
    validated,
)
from core.userstores.sql import SqlUserStore

#: How often routing looks whether another process changed the store definitions.
REFRESH_SECONDS = 1.0

__all__ = ["POLICY_PROPERTIES", "SQL_PROPERTIES", "STORE_TYPES", "StoreDefinition",
           "UserstoreRouter", "open_store", "policies_from"]


def open_store(d: StoreDefinition, db: SystemDB, hashing: PasswordHashing) -> UserStore:
    """The store a definition describes (nothing is connected yet). The properties are
    checked again, so a row written by hand or by an older version fails here, clearly,
    and properties added since take their defaults."""
    props = validated(d.domain, d.type, d.properties)
    return TYPES[d.type].open(d.domain, props, db, hashing)


class _BrokenStore:
    """Stands in for a store whose definition could not be opened: every call says why."""

    def __init__(self, domain: str, reason: str) -> None:
        self.domain = domain
        self.reason = reason
        self.capabilities = Capabilities(False, False, False, False)
        self.policies = Policies()

    def _fail(self, *_: object, **__: object) -> NoReturn:
        raise StoreUnavailable(f"userstore {self.domain} cannot be opened: {self.reason}")

    def health(self) -> Health:
        return Health(False, f"cannot be opened: {self.reason}")

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Callable[..., NoReturn]:
        return self._fail


class UserstoreRouter:
    def __init__(self, db: SystemDB, hashing: PasswordHashing,
                 secrets: SecretBox | None = None) -> None:
        self.db = db
        self.hashing = hashing
        self.box = secrets
        self.definitions: dict[str, StoreDefinition] = {}
        self._stores: dict[str, UserStore] = {}
        self._relays: dict[str, UserStore] = {}
        #: Called after a reload caused by another process (e.g. to reload claims).
        self.on_reload: Callable[[], None] | None = None
        #: The definitions' version when they were read, and when it was last checked.
        self.version = -1
        self._checked = 0.0
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ lifecycle
    @staticmethod
    def seed_primary(conn: Connection) -> bool:
        if conn.execute(select(userstores_table.c.domain).where(
                userstores_table.c.domain == PRIMARY)).first():
            return False
        props = validated(PRIMARY, "sql", {})
        conn.execute(insert(userstores_table).values(
            domain=PRIMARY, type="sql", position=0, enabled=True,
            description="Primary userstore (in the system database)",
            properties=props, secrets={}))
        return True

    def load(self) -> None:
        """(Re)read the store definitions and open the stores (a store whose definition
        did not change is kept open: requests of other threads may be using it)."""
        with self._lock:
            with self.db.transaction() as conn:  # joins an open apply, so it sees its rows
                definitions = read_definitions(conn, self.box)
                self.version = config_versions.read(conn, config_versions.USERSTORES)
            self._checked = time.monotonic()
            old, old_definitions = self._stores, self.definitions
            stores: dict[str, UserStore] = {}
            for d in definitions:
                if not d.enabled:
                    continue
                kept = old.get(d.domain)
                stores[d.domain] = kept if kept is not None and \
                    old_definitions.get(d.domain) == d else self._open(d)
            self._stores = stores
            self.definitions = {d.domain: d for d in definitions}
            for domain, store in old.items():
                if stores.get(domain) is not store:
                    store.close()

    def refresh(self) -> None:
        """Reload when another process changed the definitions: the version is read at most
        once every ``REFRESH_SECONDS`` (a clock read otherwise)."""
        if time.monotonic() - self._checked < REFRESH_SECONDS:
            return
        with self._lock:
            if time.monotonic() - self._checked < REFRESH_SECONDS:
                return  # another thread looked meanwhile
            self._checked = time.monotonic()
            with self.db.transaction() as conn:
                changed = config_versions.read(conn, config_versions.USERSTORES) != self.version
            if changed:
                self.load()
                if self.on_reload is not None:
                    self.on_reload()

    def _open(self, d: StoreDefinition) -> UserStore:
        try:
            return open_store(d, self.db, self.hashing)
        except IamError as exc:
            if d.domain == PRIMARY:
                raise
            return cast(UserStore, _BrokenStore(d.domain, str(exc)))

    def columns(self, store_type: str, props: dict[str, Any]
                ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The (``properties``, ``secrets``) columns of a definition's typed properties."""
        if self.box is None:
            raise InvalidInput("userstore secrets need the deployment's secret key")
        return to_columns(self.box, store_type, props)

    def probe(self, d: StoreDefinition) -> Health:
        """The health of a defined store, enabled or not (a disabled one is opened for it)."""
        store = self._stores.get(d.domain) if d.enabled else None
        if store is not None:
            return store.health()
        temporary = self._open(d)
        try:
            return temporary.health()
        finally:
            temporary.close()

    def close(self) -> None:
        with self._lock:
            for store in self._stores.values():
                store.close()
            self._stores = {}
            self.definitions = {}

    # ------------------------------------------------------------------ routing
    @property
    def domains(self) -> list[str]:
        """Enabled domains, PRIMARY first, then the secondaries in order."""
        self.refresh()
        return list(self._stores)

    def store(self, domain: str) -> UserStore:
        if domain == INTERNAL:
            raise InvalidInput("the Internal domain holds roles only, not users or groups")
        if is_proxy_domain(domain):
            return self._relay(domain)
        self.refresh()
        store = self._stores.get(domain)
        if store is None:
            if domain in self.definitions:
                raise NotFound(f"userstore {domain} is disabled")
            known = ", ".join(self.domains) or "none"
            raise NotFound(f"userstore domain {domain!r} does not exist (known: {known})")
        return store

    def _relay(self, domain: str) -> UserStore:
        """The relay store of an application in proxy mode: the last state the application
        sent of each user it proxies, in the system database, so that PATCH applies, GET
        answers and the outbox can deliver after a crash. It is no userstore: it keeps no
        password, is never listed among the domains, and no name lookup reaches it."""
        relay = self._relays.get(domain)
        if relay is None:
            relay = self._relays[domain] = SqlUserStore(domain, self.db.engine, self.hashing,
                                                        keeps_passwords=False)
        return relay

    def find_user(self, name: str) -> StoredUser:
        """A user by ``DOMAIN/name``, or by bare name in PRIMARY then the secondaries.

        A bare name stops at the first store that is down before it is found: a later store
        may hold the same name, so answering from it could pick the wrong user.
        """
        qn = parse_name(name)
        qualified = "/" in name
        candidates = [qn.domain] if qualified else self.domains
        for domain in candidates:
            try:
                user = self.store(domain).get_user_by_name(qn.name)
            except StoreUnavailable as exc:
                if qualified:
                    raise
                raise StoreUnavailable(
                    f"{exc} - so user {qn.name} cannot be looked up without its domain; give "
                    f"it as DOMAIN/{qn.name}") from exc
            if user is not None:
                return user
        raise NotFound(f"user {name} does not exist")

    def qualify(self, name: str) -> QualifiedName:
        qn = parse_name(name)
        if qn.domain != INTERNAL:
            self.store(qn.domain)
        return qn
