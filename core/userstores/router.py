"""Userstore registry and router: ``DOMAIN/name`` -> the store of that domain.

Store definitions live in the ``userstores`` table (PRIMARY is created on first start).
Unqualified names are looked up in PRIMARY first, then in the secondaries in their order.
A disabled store is hidden (its data stays where it is).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from core.db import SystemDB, make_engine
from core.errors import InvalidInput, NotFound
from core.names import INTERNAL, PRIMARY, QualifiedName, parse_name
from core.passwords import PasswordHashing
from core.properties import PropertySpec, PropertyType, validate
from core.schema import metadata, um_groups, um_memberships, um_user_attributes, um_users
from core.schema import userstores as userstores_table
from core.userstores.base import (
    DEFAULT_GROUP_NAME_REGEX,
    DEFAULT_PASSWORD_REGEX,
    DEFAULT_USERNAME_REGEX,
    Policies,
    StoredUser,
    UserStore,
)
from core.userstores.sql import SqlUserStore

_P = PropertyType
POLICY_PROPERTIES: tuple[PropertySpec, ...] = (
    PropertySpec("case_insensitive_usernames", "Case-insensitive usernames", _P.BOOLEAN,
                 default=False),
    PropertySpec("username_regex", "Username pattern", _P.REGEX, default=DEFAULT_USERNAME_REGEX),
    PropertySpec("username_message", "Username pattern message",
                 default=Policies.username_message),
    PropertySpec("password_regex", "Password pattern", _P.REGEX, default=DEFAULT_PASSWORD_REGEX),
    PropertySpec("password_message", "Password pattern message",
                 default=Policies.password_message),
    PropertySpec("group_name_regex", "Group name pattern", _P.REGEX,
                 default=DEFAULT_GROUP_NAME_REGEX),
    PropertySpec("group_name_message", "Group name pattern message",
                 default=Policies.group_name_message),
)

SQL_PROPERTIES: tuple[PropertySpec, ...] = (
    PropertySpec("url", "Database URL", _P.STRING,
                 help="SQLAlchemy URL; empty for PRIMARY, which lives in the system database"),
    PropertySpec("read_only", "Read-only", _P.BOOLEAN, default=False),
    *POLICY_PROPERTIES,
)

STORE_TYPES: dict[str, tuple[PropertySpec, ...]] = {"sql": SQL_PROPERTIES}


@dataclass(frozen=True)
class StoreDefinition:
    domain: str
    type: str
    position: int
    enabled: bool
    description: str
    properties: Mapping[str, Any]


def policies_from(props: Mapping[str, Any]) -> Policies:
    return Policies(**{s.name: props[s.name] for s in POLICY_PROPERTIES if s.name in props})


class UserstoreRouter:
    def __init__(self, db: SystemDB, hashing: PasswordHashing) -> None:
        self.db = db
        self.hashing = hashing
        self.definitions: dict[str, StoreDefinition] = {}
        self._stores: dict[str, UserStore] = {}

    # ------------------------------------------------------------------ lifecycle
    @staticmethod
    def seed_primary(conn: Connection) -> bool:
        if conn.execute(select(userstores_table.c.domain).where(
                userstores_table.c.domain == PRIMARY)).first():
            return False
        props = validate(SQL_PROPERTIES, {}, "userstore PRIMARY")
        conn.execute(insert(userstores_table).values(
            domain=PRIMARY, type="sql", position=0, enabled=True,
            description="Primary userstore (in the system database)",
            properties=props, secrets={}))
        return True

    def load(self) -> None:
        """(Re)read the store definitions and open the stores."""
        self.close()
        with self.db.transaction() as conn:  # joins an open apply, so it sees its rows
            rows = conn.execute(select(userstores_table).order_by(
                userstores_table.c.position)).mappings().all()
        for r in rows:
            d = StoreDefinition(r["domain"], r["type"], r["position"], r["enabled"],
                                r["description"], r["properties"])
            self.definitions[d.domain] = d
            if d.enabled:
                self._stores[d.domain] = self._open(d)

    def _open(self, d: StoreDefinition) -> UserStore:
        if d.type != "sql":
            raise InvalidInput(f"userstore {d.domain}: type {d.type!r} is not supported")
        props = d.properties
        url = props.get("url")
        if d.domain == PRIMARY or not url:
            engine = self.db.engine
        else:
            engine = make_engine(url)
            user_tables = [um_users, um_user_attributes, um_groups, um_memberships]
            metadata.create_all(engine, tables=user_tables)
        return SqlUserStore(d.domain, engine, self.hashing, policies_from(props),
                            read_only=bool(props.get("read_only")))

    def close(self) -> None:
        for store in self._stores.values():
            if isinstance(store, SqlUserStore) and store.engine is not self.db.engine:
                store.engine.dispose()
            store.close()
        self._stores.clear()
        self.definitions.clear()

    # ------------------------------------------------------------------ routing
    @property
    def domains(self) -> list[str]:
        """Enabled domains, PRIMARY first, then the secondaries in order."""
        return list(self._stores)

    def store(self, domain: str) -> UserStore:
        if domain == INTERNAL:
            raise InvalidInput("the Internal domain holds roles only, not users or groups")
        store = self._stores.get(domain)
        if store is None:
            if domain in self.definitions:
                raise NotFound(f"userstore {domain} is disabled")
            known = ", ".join(self.domains) or "none"
            raise NotFound(f"userstore domain {domain!r} does not exist (known: {known})")
        return store

    def find_user(self, name: str) -> StoredUser:
        """A user by ``DOMAIN/name``, or by bare name in PRIMARY then the secondaries."""
        qn = parse_name(name)
        candidates = [qn.domain] if "/" in name else self.domains
        for domain in candidates:
            user = self.store(domain).get_user_by_name(qn.name)
            if user is not None:
                return user
        raise NotFound(f"user {name} does not exist")

    def qualify(self, name: str) -> QualifiedName:
        qn = parse_name(name)
        if qn.domain != INTERNAL:
            self.store(qn.domain)
        return qn
