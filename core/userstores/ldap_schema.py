"""Property schemas of the directory userstores, and the settings checked and built from them.

Three store types share one implementation (``core.userstores.ldap``), each with the
defaults of its reference counterpart:

* ``ldap`` - read-write LDAP (``ReadWriteLDAPUserStoreManager``);
* ``ldap_ro`` - read-only LDAP (``ReadOnlyLDAPUserStoreManager``): no write property at all;
* ``active_directory`` - Active Directory (``ActiveDirectoryUserStoreManager``).

The reference's CamelCase property names are spelled in snake_case, as the SQL store's are
(``UserNameSearchFilter`` -> ``username_search_filter``). Two defaults differ on purpose:
the user object class is ``inetOrgPerson`` rather than ``identityPerson`` (a schema only the
reference's embedded directory ships), and the immutable id attribute is a property of its
own (``immutable_id_attribute``: ``entryUUID``, ``objectGUID`` for Active Directory), like
the reference's ``UserIDAttribute``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ldap3.core.exceptions import LDAPException
from ldap3.operation.search import parse_filter
from ldap3.utils.dn import parse_dn

from core.properties import FieldError, PropertySpec
from core.properties import PropertyType as _P

LDAP = "ldap"
LDAP_RO = "ldap_ro"
ACTIVE_DIRECTORY = "active_directory"
FLAVOURS = (LDAP, LDAP_RO, ACTIVE_DIRECTORY)

#: What a search filter template puts in place of the (escaped) name.
PLACEHOLDER = "?"
PASSWORD_HASHES = ("SSHA", "SHA", "PLAIN_TEXT")
#: A page never holds more entries than this, whatever ``max_list_length`` says.
MAX_PAGE = 1000
_ATTRIBUTE_RE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)$")


def _connection(ad: bool) -> tuple[PropertySpec, ...]:
    return (
        PropertySpec("connection_url", "Connection URL", _P.URL, required=True,
                     help="ldaps://dc.example.com:636 or ldap://host:389 (with start_tls)"
                     if ad else "ldap://host:389, or ldaps://host:636 for LDAP over TLS"),
        PropertySpec("bind_dn", "Bind DN", required=True,
                     help="The account the store binds as (ConnectionName)"),
        PropertySpec("bind_password", "Bind password", required=True, secret=True),
        PropertySpec("start_tls", "StartTLS", _P.BOOLEAN, default=False,
                     help="Upgrade an ldap:// connection with StartTLS"),
        PropertySpec("validate_certificate", "Validate the server certificate", _P.BOOLEAN,
                     default=True),
        PropertySpec("ca_certificate_file", "CA certificate file",
                     help="PEM file of the CA(s) to trust; empty: the system's CAs"),
    )


def _users(ad: bool) -> tuple[PropertySpec, ...]:
    name = "cn" if ad else "uid"
    klass = "user" if ad else "person"
    return (
        PropertySpec("user_search_base", "User search base",
                     default="CN=Users,DC=WSO2,DC=Com" if ad else "ou=Users,dc=wso2,dc=org"),
        PropertySpec("user_entry_object_class", "User entry object class",
                     default="user" if ad else "inetOrgPerson",
                     help="Object classes of a new user, '/'-separated (e.g. a/b/c)"),
        PropertySpec("username_attribute", "Username attribute", default=name),
        PropertySpec("username_search_filter", "Username search filter",
                     default=f"(&(objectClass={klass})({name}=?))",
                     help="'?' stands for the (escaped) username"),
        PropertySpec("username_list_filter", "Username list filter",
                     default="(objectClass=person)"),
        PropertySpec("user_dn_pattern", "User DN pattern",
                     help="e.g. uid={0},ou=Users,dc=example,dc=org: names a user's entry "
                          "without a search"),
        PropertySpec("immutable_id_attribute", "Immutable id attribute",
                     default="objectGUID" if ad else "entryUUID",
                     help="The id that survives renames (objectGUID is read as a UUID)"),
    )


def _groups(ad: bool) -> tuple[PropertySpec, ...]:
    klass = "group" if ad else "groupOfNames"
    return (
        PropertySpec("group_search_base", "Group search base",
                     default="CN=Users,DC=WSO2,DC=Com" if ad else "ou=Groups,dc=wso2,dc=org"),
        PropertySpec("group_entry_object_class", "Group entry object class", default=klass),
        PropertySpec("group_name_attribute", "Group name attribute", default="cn"),
        PropertySpec("group_search_filter", "Group search filter",
                     default=f"(&(objectClass={klass})(cn=?))",
                     help="'?' stands for the (escaped) group name"),
        PropertySpec("group_list_filter", "Group list filter",
                     default="(objectcategory=group)" if ad else "(objectClass=groupOfNames)"),
        PropertySpec("membership_attribute", "Membership attribute", default="member"),
        PropertySpec("member_of_attribute", "MemberOf attribute",
                     default="memberOf" if ad else "",
                     help="The back link on user entries (memberOf), if the directory keeps "
                          "one"),
        PropertySpec("back_links_enabled", "Back links enabled", _P.BOOLEAN, default=ad,
                     help="Read memberships through the memberOf attribute"),
        PropertySpec("read_groups", "Read groups", _P.BOOLEAN, default=True),
    )


def _writes(ad: bool) -> tuple[PropertySpec, ...]:
    specific = (
        PropertySpec("user_account_control", "userAccountControl of an enabled account",
                     _P.INTEGER, default=512, help="512: a normal, enabled account"),
    ) if ad else (
        PropertySpec("password_hash_method", "Password hash method", _P.CHOICE,
                     default="SSHA", choices=PASSWORD_HASHES,
                     help="How userPassword is written: hashed here (SSHA, SHA), or as given "
                          "for a directory that hashes it itself (PLAIN_TEXT)"),
    )
    return (
        PropertySpec("write_groups", "Write groups", _P.BOOLEAN, default=True),
        PropertySpec("read_only", "Read-only", _P.BOOLEAN, default=False),
        *specific,
    )


def _operations() -> tuple[PropertySpec, ...]:
    return (
        PropertySpec("max_list_length", "Maximum list length", _P.INTEGER, default=100,
                     help=f"Most entries in one page of a list (0: {MAX_PAGE})"),
        PropertySpec("connection_pooling", "Connection pooling", _P.BOOLEAN, default=True),
        PropertySpec("connection_retry_count", "Connection retry count", _P.INTEGER,
                     default=2, help="Further attempts to connect after a failure"),
        PropertySpec("connection_retry_delay", "Connection retry delay (ms)", _P.INTEGER,
                     default=500),
        PropertySpec("connection_timeout", "Connection timeout (s)", _P.INTEGER, default=10),
    )


def ldap_properties(flavour: str, policies: tuple[PropertySpec, ...]) -> tuple[PropertySpec, ...]:
    """The property schema of one flavour; ``policies`` are the name and password rules,
    here with case-insensitive usernames by default, as directories compare names."""
    ad = flavour == ACTIVE_DIRECTORY
    rules = tuple(dataclasses.replace(p, default=True) if p.name == "case_insensitive_usernames"
                  else p for p in policies)
    writes = () if flavour == LDAP_RO else _writes(ad)
    return (*_connection(ad), *_users(ad), *_groups(ad), *writes, *_operations(), *rules)


@dataclass(frozen=True)
class LdapSettings:
    """What the directory store needs from its (typed, checked) properties."""

    flavour: str
    url: str
    host: str
    port: int
    ldaps: bool
    bind_dn: str
    bind_password: str = field(repr=False)
    start_tls: bool
    validate_certificate: bool
    ca_certificate_file: str
    user_search_base: str
    user_object_classes: tuple[str, ...]
    username_attribute: str
    username_search_filter: str
    username_list_filter: str
    user_dn_pattern: str
    id_attribute: str
    group_search_base: str
    group_object_classes: tuple[str, ...]
    group_name_attribute: str
    group_search_filter: str
    group_list_filter: str
    membership_attribute: str
    member_of_attribute: str
    back_links: bool
    read_groups: bool
    write_groups: bool
    read_only: bool
    password_hash_method: str
    user_account_control: int
    page_limit: int
    pooling: bool
    retry_count: int
    retry_delay: float
    timeout: int

    @property
    def encrypted(self) -> bool:
        """LDAPS or StartTLS: what Active Directory demands before it takes a password."""
        return self.ldaps or self.start_tls

    @property
    def binary_id(self) -> bool:
        """objectGUID is 16 bytes (little-endian UUID fields), not text."""
        return self.id_attribute.lower() == "objectguid"


def _check_filter(errors: list[FieldError], name: str, value: str, placeholders: int) -> None:
    found = value.count(PLACEHOLDER)
    if found != placeholders:
        want = "exactly one '?' (where the name goes)" if placeholders else "no '?'"
        errors.append(FieldError(name, f"{value!r} must hold {want}"))
        return
    try:
        parse_filter(value.replace(PLACEHOLDER, "x"), None, False, False, None, False)
    except LDAPException as exc:
        errors.append(FieldError(name, f"{value!r} is not an LDAP filter ({exc})"))
    if not value.startswith("(") or not value.endswith(")"):
        errors.append(FieldError(name, f"{value!r} must be enclosed in parentheses"))


def _check_dn(errors: list[FieldError], name: str, value: str) -> None:
    try:
        parse_dn(value)
    except LDAPException:
        errors.append(FieldError(name, f"{value!r} is not a distinguished name"))


def property_errors(flavour: str, props: Mapping[str, Any]) -> list[FieldError]:
    """What the schema's types cannot see: URLs, DNs, filters, attribute names, ranges."""
    errors: list[FieldError] = []
    url = urlsplit(str(props.get("connection_url", "")))
    if url.scheme.lower() not in ("ldap", "ldaps"):
        errors.append(FieldError("connection_url", "must start with ldap:// or ldaps://"))
    elif url.scheme.lower() == "ldaps" and props.get("start_tls"):
        errors.append(FieldError("start_tls", "StartTLS upgrades an ldap:// connection; an "
                                              "ldaps:// one is encrypted already"))
    try:
        url.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        errors.append(FieldError("connection_url", "the port is not a number"))
    for name in ("bind_dn", "user_search_base", "group_search_base"):
        _check_dn(errors, name, str(props.get(name, "")))
    for name, holes in (("username_search_filter", 1), ("username_list_filter", 0),
                        ("group_search_filter", 1), ("group_list_filter", 0)):
        _check_filter(errors, name, str(props.get(name, "")), holes)
    for name in ("username_attribute", "immutable_id_attribute", "group_name_attribute",
                 "membership_attribute", "member_of_attribute"):
        value = str(props.get(name) or "")
        if value and not _ATTRIBUTE_RE.match(value):
            errors.append(FieldError(name, f"{value!r} is not an attribute name"))
    pattern = str(props.get("user_dn_pattern") or "")
    if pattern:
        if pattern.count("{0}") != 1:
            errors.append(FieldError("user_dn_pattern", "must hold {0} once, where the "
                                                        "username goes"))
        else:
            _check_dn(errors, "user_dn_pattern", pattern.replace("{0}", "x"))
    if props.get("back_links_enabled") and not props.get("member_of_attribute"):
        errors.append(FieldError("member_of_attribute", "is required when back_links_enabled "
                                                        "is true"))
    for name, low, high in (("max_list_length", 0, MAX_PAGE), ("connection_retry_count", 0, 10),
                            ("connection_retry_delay", 0, 60_000),
                            ("connection_timeout", 1, 600)):
        number = props.get(name)
        if isinstance(number, int) and not low <= number <= high:
            errors.append(FieldError(name, f"must be between {low} and {high}"))
    return errors


def _classes(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split("/") if c.strip())


def settings(flavour: str, props: Mapping[str, Any], bind_password: str) -> LdapSettings:
    """Settings from typed, checked properties (defaults filled in)."""
    url = urlsplit(props["connection_url"])
    ldaps = url.scheme.lower() == "ldaps"
    limit = int(props["max_list_length"]) or MAX_PAGE
    return LdapSettings(
        flavour=flavour, url=props["connection_url"], host=url.hostname or "",
        port=url.port or (636 if ldaps else 389), ldaps=ldaps, bind_dn=props["bind_dn"],
        bind_password=bind_password, start_tls=bool(props["start_tls"]),
        validate_certificate=bool(props["validate_certificate"]),
        ca_certificate_file=props.get("ca_certificate_file") or "",
        user_search_base=props["user_search_base"],
        user_object_classes=_classes(props["user_entry_object_class"]),
        username_attribute=props["username_attribute"],
        username_search_filter=props["username_search_filter"],
        username_list_filter=props["username_list_filter"],
        user_dn_pattern=props.get("user_dn_pattern") or "",
        id_attribute=props["immutable_id_attribute"],
        group_search_base=props["group_search_base"],
        group_object_classes=_classes(props["group_entry_object_class"]),
        group_name_attribute=props["group_name_attribute"],
        group_search_filter=props["group_search_filter"],
        group_list_filter=props["group_list_filter"],
        membership_attribute=props["membership_attribute"],
        member_of_attribute=props.get("member_of_attribute") or "",
        back_links=bool(props["back_links_enabled"]), read_groups=bool(props["read_groups"]),
        write_groups=bool(props.get("write_groups", False)),
        read_only=flavour == LDAP_RO or bool(props.get("read_only")),
        password_hash_method=props.get("password_hash_method", "SSHA"),
        user_account_control=int(props.get("user_account_control", 512)),
        page_limit=min(limit, MAX_PAGE), pooling=bool(props["connection_pooling"]),
        retry_count=int(props["connection_retry_count"]),
        retry_delay=int(props["connection_retry_delay"]) / 1000,
        timeout=int(props["connection_timeout"]),
    )
