"""Userstore definitions: the store types with their property schemas, the stored rows, and
secret properties.

The store types are one table, :data:`TYPES` (name -> :class:`StoreType`: property schema,
the checks beyond the types, and the opener); a new kind of userstore is one entry there.
One schema per store type drives validation, YAML, the CLI and the console form. A secret
property (an LDAP bind password, an SQL URL, which may carry a database password) lives in
memory as a :class:`~core.idps.SecretValue`, in the ``userstores.secrets`` column encrypted
(with the reference it came from), on every screen masked, and in an export as a reference
(``${env:NAME}``) - except a URL that holds no password, which is written as it is.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from core.errors import InvalidInput
from core.names import PRIMARY
from core.properties import FieldError, PropertySpec, PropertyType, check
from core.schema import userstores as userstores_table
from core.secrets import MASK, SecretBox, SecretValue
from core.userstores.base import (
    DEFAULT_GROUP_NAME_REGEX,
    DEFAULT_PASSWORD_REGEX,
    DEFAULT_USERNAME_REGEX,
    Policies,
)
from core.userstores.ldap_schema import FLAVOURS, ldap_properties, property_errors

if TYPE_CHECKING:
    from core.db import SystemDB
    from core.passwords import PasswordHashing
    from core.userstores.base import UserStore

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
    PropertySpec("url", "Database URL", _P.STRING, secret=True,
                 help="SQLAlchemy URL (postgresql://, mysql://, sqlite:///); empty for "
                      "PRIMARY, which lives in the system database"),
    PropertySpec("read_only", "Read-only", _P.BOOLEAN, default=False),
    *POLICY_PROPERTIES,
)


@dataclass(frozen=True)
class StoreDefinition:
    domain: str
    type: str
    position: int
    enabled: bool
    description: str
    #: Typed values; secret ones are :class:`SecretValue` (never shown as they are).
    properties: Mapping[str, Any]


#: Opens a store: (store type, domain, typed properties, system database, password hashing,
#: policies) -> the store, not connected yet.
Opener = Callable[[str, str, Mapping[str, Any], "SystemDB", "PasswordHashing", Policies],
                  "UserStore"]


@dataclass(frozen=True)
class StoreType:
    """One kind of userstore: the properties a definition of it holds, the checks their
    types cannot express, and how a store of it is opened."""

    name: str
    properties: tuple[PropertySpec, ...]
    #: (domain, typed properties) -> what is wrong beyond the types (URLs, filters, DNs).
    check: Callable[[str, Mapping[str, Any]], list[FieldError]]
    #: ``"module:function"`` of its :data:`Opener`, imported when a store is first opened
    #: (so reading definitions loads no store implementation).
    opener: str

    def open(self, domain: str, props: Mapping[str, Any], db: SystemDB,
             hashing: PasswordHashing) -> UserStore:
        module, function = self.opener.split(":")
        opener: Opener = getattr(importlib.import_module(module), function)
        return opener(self.name, domain, props, db, hashing, policies_from(props))


def _sql_errors(domain: str, typed: Mapping[str, Any]) -> list[FieldError]:
    url = secret_text(typed, "url")
    if domain == PRIMARY:
        return [FieldError("url", "userstore PRIMARY lives in the system database; it takes "
                                  "no url")] if url else []
    if not url:
        return [FieldError("url", f"url is required for a secondary store ({domain})")]
    try:
        make_url(url).get_dialect()
    except ArgumentError:
        return [FieldError("url", "is not a SQLAlchemy URL (e.g. "
                                  "postgresql://user@host/db or sqlite:///path.db)")]
    except (NoSuchModuleError, ImportError):
        return [FieldError("url", "names a database this installation has no driver for")]
    return []


def _directory_errors(flavour: str, domain: str, typed: Mapping[str, Any]
                      ) -> list[FieldError]:
    errors = property_errors(flavour, typed)
    if domain == PRIMARY:
        errors.append(FieldError("type", "userstore PRIMARY is the SQL store in the "
                                         "system database"))
    return errors


#: The store types by name: add a kind of userstore here.
TYPES: dict[str, StoreType] = {
    "sql": StoreType("sql", SQL_PROPERTIES, _sql_errors,
                     "core.userstores.sql_external:open_sql_store"),
    **{flavour: StoreType(flavour, ldap_properties(flavour, POLICY_PROPERTIES),
                          functools.partial(_directory_errors, flavour),
                          "core.userstores.ldap_ad:open_directory_store")
       for flavour in FLAVOURS},
}

#: Store type -> its property schema.
STORE_TYPES: dict[str, tuple[PropertySpec, ...]] = {
    name: t.properties for name, t in TYPES.items()}


def specs_for(store_type: str, where: str = "userstore") -> tuple[PropertySpec, ...]:
    specs = STORE_TYPES.get(store_type)
    if specs is None:
        raise InvalidInput(f"{where}: type {store_type!r} is not supported "
                           f"(supported: {', '.join(STORE_TYPES)})")
    return specs


def policies_from(props: Mapping[str, Any]) -> Policies:
    return Policies(**{s.name: props[s.name] for s in POLICY_PROPERTIES if s.name in props})


def secret_text(props: Mapping[str, Any], name: str) -> str:
    """The clear value of a secret property ('' when absent)."""
    value = props.get(name)
    if isinstance(value, SecretValue):
        return value.value
    return str(value) if value else ""


# ---------------------------------------------------------------- checking
def _clear(specs: tuple[PropertySpec, ...], values: Mapping[str, Any]) -> dict[str, Any]:
    """Values with every secret as its clear text (for the type checks)."""
    secret = {s.name for s in specs if s.secret}
    return {k: (v.value if isinstance(v, SecretValue) else v) if k in secret else v
            for k, v in values.items()}


def definition_errors(domain: str, store_type: str, typed: Mapping[str, Any]
                      ) -> list[FieldError]:
    """What the types cannot see: which stores need a URL, LDAP filters, DNs, ranges."""
    return TYPES[store_type].check(domain, typed)


def typed_properties(domain: str, store_type: str, values: Mapping[str, Any]
                     ) -> tuple[dict[str, Any], list[FieldError]]:
    """Typed values with defaults (secrets as SecretValue, keeping their reference) and
    every error found."""
    specs = specs_for(store_type, f"userstore {domain}")
    typed, errors = check(specs, _clear(specs, values))
    for spec in specs:
        if spec.secret and spec.name in typed:
            given = values[spec.name]
            typed[spec.name] = given if isinstance(given, SecretValue) \
                else SecretValue(str(typed[spec.name]))
    if not errors:
        errors = definition_errors(domain, store_type, typed)
    return typed, errors


def validated(domain: str, store_type: str, values: Mapping[str, Any]) -> dict[str, Any]:
    typed, errors = typed_properties(domain, store_type, values)
    if errors:
        raise InvalidInput(f"userstore {domain}: " + "; ".join(str(e) for e in errors))
    return typed


# ---------------------------------------------------------------- storage
def to_columns(box: SecretBox, store_type: str, props: Mapping[str, Any]
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``properties``, ``secrets``) column values: the secrets encrypted."""
    secret = {s.name for s in STORE_TYPES[store_type] if s.secret}
    plain = {k: v for k, v in props.items() if k not in secret}
    hidden = {k: {"cipher": box.encrypt(v.value), "ref": v.ref}
              for k, v in props.items() if k in secret and isinstance(v, SecretValue)}
    return plain, hidden


def _from_row(box: SecretBox | None, row: Mapping[str, Any]) -> StoreDefinition:
    props = dict(row["properties"])
    secret = {s.name for s in STORE_TYPES.get(row["type"], ()) if s.secret}
    for name in secret & props.keys():  # rows written before the property was a secret
        props[name] = SecretValue(str(props[name]))
    for name, stored in (row["secrets"] or {}).items():
        if box is None:
            raise InvalidInput(f"userstore {row['domain']}: its secrets need the secret key")
        props[name] = SecretValue(box.decrypt(stored["cipher"]), stored.get("ref"))
    return StoreDefinition(row["domain"], row["type"], row["position"], row["enabled"],
                           row["description"], props)


def read_definitions(conn: Connection, box: SecretBox | None) -> list[StoreDefinition]:
    rows = conn.execute(select(userstores_table).order_by(
        userstores_table.c.position)).mappings().all()
    return [_from_row(box, dict(r)) for r in rows]


# ---------------------------------------------------------------- showing and exporting
def url_without_password(value: str) -> str | None:
    """The URL when it carries no password, else None."""
    try:
        url = make_url(value)
    except ArgumentError:
        return None
    return value if url.password is None else None


def shown_value(spec: PropertySpec | None, value: Any) -> Any:
    """What a screen may show: secrets masked (a URL keeps all but its password)."""
    if not isinstance(value, SecretValue):
        return value
    if spec is not None and spec.name == "url":
        try:
            return make_url(value.value).render_as_string(hide_password=True)
        except ArgumentError:
            return MASK
    return MASK if value.value else ""


def shown_properties(d: StoreDefinition) -> dict[str, Any]:
    specs = {s.name: s for s in STORE_TYPES.get(d.type, ())}
    return {k: shown_value(specs.get(k), v) for k, v in d.properties.items()}


def reference_name(domain: str, prop: str) -> str:
    """``${env:MWARE_USERSTORE_<DOMAIN>_<PROPERTY>}``: the reference export writes for a
    secret that was not given as one."""
    name = re.sub(r"[^A-Z0-9]", "_", f"MWARE_USERSTORE_{domain}_{prop}".upper())
    return f"${{env:{name}}}"


def exported_value(domain: str, name: str, value: SecretValue) -> str:
    if value.ref:
        return value.ref
    if name == "url" and url_without_password(value.value):
        return value.value
    return reference_name(domain, name)
