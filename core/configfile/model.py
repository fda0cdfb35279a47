"""The shape of a configuration file (pydantic models) and its readable schema errors.

Types are strict: a value is text, a number or true/false exactly as YAML reads it, so
``country: NO`` (which YAML 1.1 reads as false) is an error that says to quote it instead
of silently becoming ``false``. Connector and userstore ``properties`` take any single value;
their property schemas type them later. A key left out of an entry means "keep what the
deployment has" for an existing object and "the default" for a new one.

Each entry of each section is validated on its own, so one bad entry never hides the errors
of the others, and the good entries still get their cross-reference checks.
"""

from __future__ import annotations

import datetime
import types
import typing
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar, Union

from annotated_types import Len
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    PlainValidator,
    StringConstraints,
    ValidationError,
)

from core.configfile.errors import Reporter, YamlPath
from core.operators import key_problem, name_problem


def _single_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        raise ValueError("expected a single value (text, a number or true/false), "
                         f"got {describe(value)}")
    return value


Name = Annotated[str, StringConstraints(min_length=1)]
#: A property value: any single YAML value; the property schema types it.
PropertyValue = Annotated[str | int | float | bool | None, PlainValidator(_single_value)]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class UserstoreEntry(_Entry):
    domain: Name
    type: Name = "sql"
    description: str | None = None
    enabled: bool | None = None
    properties: dict[str, PropertyValue] | None = None


class ClaimEntry(_Entry):
    uri: Name
    display_name: Name | None = None
    description: str | None = None
    regex: str | None = None
    mappings: dict[str, Name] = {}


class RoleEntry(_Entry):
    name: Name
    members: list[Name] | None = None


class UserEntry(_Entry):
    username: Name
    password: Name | None = None
    claims: dict[str, str] = {}
    roles: list[Name] | None = None


class ClaimMappingEntry(_Entry):
    local: Name
    remote: Name
    default: str | None = None


class RoleMappingEntry(_Entry):
    local: Name
    remote: Name


class JitEntry(_Entry):
    enabled: bool = False
    userstore: Name = "PRIMARY"
    scheme: Name = "provision_silently"  # one of core.idps.JIT_SCHEMES
    associate_local_user: bool = False
    attribute_sync: Name = "override"  # one of core.idps.ATTRIBUTE_SYNC


class FederationEntry(_Entry):
    protocol: Name  # one of core.idps.FEDERATION_PROTOCOLS
    issuer: Name
    audience: Name | list[Name]
    jwks: Name | None = None
    jwks_uri: Name | None = None
    certificate: Name | None = None
    username_claim: Name | None = None
    groups_claim: Name = "groups"


class ConnectorEntry(_Entry):
    type: Name
    enabled: bool = True
    default: bool = False
    properties: dict[str, PropertyValue] = {}


class IdentityProviderEntry(_Entry):
    name: Name
    description: str | None = None
    enabled: bool | None = None
    claim_mappings: list[ClaimMappingEntry] | None = None
    role_mappings: list[RoleMappingEntry] | None = None
    provisioning_roles: list[Name] | None = None
    jit: JitEntry | None = None
    federation: FederationEntry | None = None
    connectors: list[ConnectorEntry] | None = None


class InboundEntry(_Entry):
    userstore: Name | None = None
    proxy_mode: bool | None = None


class OutboundEntry(_Entry):
    idp: Name
    connector: Name
    blocking: bool = False
    jit: bool = False


class ApplicationEntry(_Entry):
    name: Name
    description: str | None = None
    inbound: InboundEntry | None = None
    fail_on_blocking_failure: bool | None = None
    outbound: list[OutboundEntry] | None = None


def _checked(problem: Callable[[str], str | None]) -> AfterValidator:
    def check(value: str) -> str:
        if (text := problem(value)) is not None:
            raise ValueError(text)
        return value

    return AfterValidator(check)


class OperatorEntry(_Entry):
    """Who may open the console over SSH (``core.configfile.operators`` checks the rest:
    a name given twice, a key held by two operators)."""

    name: Annotated[str, _checked(name_problem)]
    keys: Annotated[list[Annotated[str, _checked(key_problem)]], Len(min_length=1)]
    read_only: bool | None = None


#: Section -> (entry model, the key that names an entry), in the order they are applied.
SECTIONS: dict[str, tuple[type[_Entry], str]] = {
    "userstores": (UserstoreEntry, "domain"),
    "claims": (ClaimEntry, "uri"),
    "roles": (RoleEntry, "name"),
    "users": (UserEntry, "username"),
    "identity_providers": (IdentityProviderEntry, "name"),
    "applications": (ApplicationEntry, "name"),
    "operators": (OperatorEntry, "name"),
}

E = TypeVar("E", bound=_Entry)


@dataclass(frozen=True)
class Located(Generic[E]):
    path: YamlPath
    entry: E


@dataclass
class ConfigFile:
    """The valid entries of each section, and the names of every entry, valid or not.

    The names of invalid entries are kept so that a reference to them is not reported as
    unknown on top of the entry's own error.
    """

    userstores: list[Located[UserstoreEntry]] = field(default_factory=list)
    claims: list[Located[ClaimEntry]] = field(default_factory=list)
    roles: list[Located[RoleEntry]] = field(default_factory=list)
    users: list[Located[UserEntry]] = field(default_factory=list)
    identity_providers: list[Located[IdentityProviderEntry]] = field(default_factory=list)
    applications: list[Located[ApplicationEntry]] = field(default_factory=list)
    operators: list[Located[OperatorEntry]] = field(default_factory=list)
    unparsed_names: dict[str, set[str]] = field(default_factory=dict)


def parse(data: Any, report: Reporter) -> ConfigFile:
    """The entries of a loaded document; every schema error goes to ``report``."""
    config = ConfigFile()
    if data is None:
        return config
    if not isinstance(data, dict):
        report.add((), "the file must be a mapping of sections (" + ", ".join(SECTIONS)
                   + f"), got {describe(data)}")
        return config
    for section, items in data.items():
        if section not in SECTIONS:
            report.add((section,), f"unknown section {section!r} (expected one of: "
                       + ", ".join(SECTIONS) + ")", at_key=True)
            continue
        if items is None:
            continue
        if not isinstance(items, list):
            report.add((section,), f"{section}: expected a list of entries (each starting "
                       f"with '- '), got {describe(items)}")
            continue
        model, key = SECTIONS[section]
        located: list[Located[Any]] = getattr(config, section)
        for index, item in enumerate(items):
            path = (section, index)
            try:
                located.append(Located(path, model.model_validate(item)))
            except ValidationError as exc:
                _report_validation(exc, path, model, report)
                if isinstance(item, dict) and isinstance(item.get(key), str):
                    config.unparsed_names.setdefault(section, set()).add(item[key])
    return config


# ---------------------------------------------------------------- readable schema errors
_EXPECTED = {
    "string_type": "text",
    "bool_type": "true or false",
    "int_type": "a whole number",
    "list_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
}


def describe(value: Any) -> str:
    """What kind of YAML value this is, without showing it (it may be a password)."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _report_validation(exc: ValidationError, base: YamlPath, model: type[_Entry],
                       report: Reporter) -> None:
    for err in exc.errors(include_url=False):
        loc: list[Hashable] = list(err["loc"])
        at_key = err["type"] == "extra_forbidden"
        if "[key]" in loc:  # the key of a mapping was wrong, not its value
            loc = loc[:loc.index("[key]")]
            at_key = True
        report.add((*base, *loc), _message(err, model, loc), at_key=at_key)


def _message(err: Any, model: type[_Entry], loc: list[Hashable]) -> str:
    kind, name, value = err["type"], (loc[-1] if loc else None), err.get("input")
    if kind == "missing":
        return f"missing required key {name!r}"
    if kind == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        known = ", ".join(owner.model_fields) if owner else ""
        return f"unknown key {name!r}" + (f" (expected one of: {known})" if known else "")
    if kind == "too_short":  # a list
        return f"{name}: give at least one" if isinstance(name, str) else "give at least one"
    if kind == "string_too_short":
        return f"{name} must not be empty" if isinstance(name, str) else "must not be empty"
    where = f"{name}: " if isinstance(name, str) else ""
    if kind in _EXPECTED:
        text = f"{where}expected {_EXPECTED[kind]}, got {describe(value)}"
        if kind == "string_type" and isinstance(value, bool | int | float | datetime.date):
            text += " (put the value in quotes to keep it as text)"
        return text
    return where + str(err["msg"]).removeprefix("Value error, ")


def _model_at(model: type[_Entry], loc: list[Hashable]) -> type[_Entry] | None:
    """The entry model that holds the mapping at ``loc`` inside ``model``."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, _Entry)):
            return None
        info = current.model_fields.get(str(part))
        if info is None:
            return None
        current = _item_type(info.annotation)
    return current if isinstance(current, type) and issubclass(current, _Entry) else None


def _item_type(annotation: Any) -> Any:
    """``X`` out of ``X | None``, ``list[X]`` and ``dict[str, X]``."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        real = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _item_type(real[0]) if len(real) == 1 else annotation
    if origin in (list, dict):
        return _item_type(typing.get_args(annotation)[-1])
    return annotation
