"""SCIM User bodies from mapped attributes, with scim2-models as the schema's authority.

``build_user`` is the exact way: every attribute path is walked into a ``User`` model
(validated on assignment) that is then dumped. A provisioning run sends thousands of
users whose attribute *names* are the same, so ``user_body`` takes that way once per set
of names (a *shape*), with a placeholder for each value, and gives each user a copy of the
dumped shape with its own values, each validated by the type scim2-models declares for
its attribute (an email address is checked and normalized as the model would; a plain one,
by its domain's check, done once per domain: ``checked_email``).

A shape is only used where a value cannot change more than its own place in the body:
not when an attribute writes what a value filter of the same set compares, nor when a
placeholder does not land exactly once, unchanged, on a field of its own. A user whose
value fails its check (or is empty) takes the exact way, so the error is the same.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import email_validator
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, EMAIL_MAX_LENGTH
from pydantic import BaseModel, EmailStr, TypeAdapter, ValidationError
from scim2_models import Context, EnterpriseUser, Path, SCIMException, User
from scim2_models.path import Comparison

from connectors.base import PermanentError
from core.claims import SCIM_CORE_USER
from core.scim_paths import ensure_selected, plain_selection

UserModel = User[EnterpriseUser]
#: Core attributes set from the OutboundUser itself, never from the mapping.
OWN_ATTRIBUTES = frozenset({"userName", "active", "password"})
#: Value filters used per attribute (``emails`` -> ``['type eq "work"']``), for PATCH.
Selections = dict[str, list[str]]
#: Where a value sits in a dumped body: keys and list positions from the top.
Where = tuple[str | int, ...]


def build_user(attributes: Mapping[str, str], user_name: str, active: bool,
               password: str | None, what: str) -> tuple[UserModel, Selections]:
    """The SCIM User, validated, and the value filters used per attribute.

    A malformed attribute path or value is a PermanentError (raised before any request).
    """
    resource = UserModel()
    selections: Selections = {}
    for raw, value in attributes.items():
        try:
            path = Path[UserModel](raw)
            if _own(path):
                continue
            if path.value_filter is not None:
                _select(resource, path, selections)
            path.set(resource, value)
        except (SCIMException, ValueError) as exc:  # pydantic's ValidationError included
            raise PermanentError(f"{what}: attribute {raw!r} = {value!r} cannot be sent: "
                                 f"{reason(exc)}") from None
    try:
        resource.user_name = user_name
        resource.active = active
        resource.password = password
    except ValidationError as exc:
        raise PermanentError(f"{what}: {reason(exc)}") from None
    return resource, selections


def user_body(attributes: Mapping[str, str], user_name: str, active: bool,
              password: str | None, context: Context, what: str
              ) -> tuple[dict[str, Any], Selections]:
    """``build_user`` dumped in ``context``: the same body, from the shape of the
    attribute names when there is a usable one."""
    shape = _shape(tuple(attributes), active, password is not None, context)
    if shape is not None:
        values = [*attributes.values(), user_name, *([] if password is None else [password])]
        body = shape.fill(values)
        if body is not None:
            return body, {k: list(v) for k, v in shape.selections.items()}
    resource, selections = build_user(attributes, user_name, active, password, what)
    return resource.model_dump(scim_ctx=context), selections


def reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(str(e["msg"]) for e in exc.errors())
    return str(getattr(exc, "detail", None) or exc)


def _own(path: Path[Any]) -> bool:
    return path.schema in (None, SCIM_CORE_USER) and path.attr in OWN_ATTRIBUTES


def _select(resource: UserModel, path: Path[Any], selections: Selections) -> None:
    """Make sure the entry a value filter selects exists (``emails[type eq "work"]``) and
    note the selection (the PATCH of an update replaces just that entry)."""
    ensure_selected(resource, path)
    value_filter = path.value_filter
    head = f"{path.schema}:{path.parts[0]}" if path.schema else path.parts[0]
    key = path.parts[0] if path.schema in (None, SCIM_CORE_USER) else head
    if str(value_filter) not in selections.setdefault(key, []):
        selections[key].append(str(value_filter))


# ---------------------------------------------------------------- shapes
@dataclass(frozen=True)
class _Slot:
    """One value of a shape: what checks it and gives the value sent, raising
    ValidationError or ValueError when it does not pass (None: a plain optional string,
    which a non-empty string passes unchanged), and where it goes (None: the dump leaves
    it out, e.g. the read-only ``id``, but the model still checks it)."""

    check: Callable[[str], Any] | None
    where: Where | None


#: The core schema of ``str | None``: nothing to check in a non-empty string.
_PLAIN_TEXT = {"type": "nullable", "schema": {"type": "str"}}


def _checked(adapter: TypeAdapter[Any], value: str) -> Any:
    """``value`` validated by ``adapter`` and dumped as the model dumps it."""
    return adapter.dump_python(adapter.validate_python(value), mode="json")


#: A plain address: a local part of ASCII dot-atom text (RFC 5322 3.2.3: what
#: email_validator takes unchanged) and a domain of ASCII hostname characters. Neither
#: pydantic's display-name form, nor spaces, quotes or Unicode normalization can apply.
_ATEXT = r"[a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~]+"
_PLAIN_ADDRESS = re.compile(rf"({_ATEXT}(?:\.{_ATEXT})*)@([a-zA-Z0-9.\-]+)")


def checked_email(adapter: TypeAdapter[Any], value: str) -> Any:
    """``_checked(adapter, value)`` for an email field (``EmailStr``), cheaper for a plain
    address: email_validator judges its local part by the dot-atom rule alone, so the
    address passes exactly when its domain does (judged once per domain, by the same
    validator) and its three forms fit ``EMAIL_MAX_LENGTH``; it is sent with the domain
    normalized. A role name (``Postmaster``, which the validator lowercases) and every
    other address take the validator itself, errors included."""
    plain = _PLAIN_ADDRESS.fullmatch(value)
    if plain is not None:
        local, domain = plain.groups()
        forms = _domain_forms(domain)
        if forms is not None and local.lower() not in CASE_INSENSITIVE_MAILBOX_NAMES:
            address = f"{local}@{forms[0]}"
            if max(len(value), len(address.encode()),
                   len(local) + 1 + len(forms[1])) <= EMAIL_MAX_LENGTH:
                return address
    return _checked(adapter, value)


@functools.lru_cache(maxsize=1024)
def _domain_forms(domain: str) -> tuple[str, str] | None:
    """The domain as email_validator normalizes it and its ASCII form, or None when an
    address there does not pass (as pydantic calls it: no deliverability check)."""
    try:
        found = email_validator.validate_email(f"a@{domain}", check_deliverability=False)
    except email_validator.EmailNotValidError:
        return None
    return found.domain, found.ascii_domain


@dataclass(frozen=True)
class _Shape:
    body: dict[str, Any]
    #: One per value, in order (attributes, userName, password); None: not sent at all
    #: (userName, active and password come from the user, not from the mapping).
    slots: tuple[_Slot | None, ...]
    selections: Selections

    def fill(self, values: Sequence[str]) -> dict[str, Any] | None:
        """A copy of the body with ``values``; None when one does not pass its type."""
        body: dict[str, Any] = _copy(self.body)
        for slot, value in zip(self.slots, values, strict=True):
            if slot is None:
                continue
            if not isinstance(value, str) or not value:
                return None
            checked: Any = value
            if slot.check is not None:
                try:
                    checked = slot.check(value)
                except (ValidationError, ValueError):
                    return None
            if slot.where is not None:
                _put(body, slot.where, checked)
        return body


@functools.lru_cache(maxsize=256)
def _shape(names: tuple[str, ...], active: bool, with_password: bool, context: Context
           ) -> _Shape | None:
    """The shape of users with these attribute names, or None when there is none."""
    if not _independent(names):
        return None
    token = secrets.token_hex(4)
    marks = [f"mark{i}x{token}@example.com" for i in range(len(names) + 2)]
    user_name, password = marks[-2], marks[-1] if with_password else None
    try:
        resource, selections = build_user(dict(zip(names, marks, strict=False)), user_name,
                                          active, password, "shape")
    except PermanentError:
        return None
    body = resource.model_dump(scim_ctx=context)
    fields: dict[str, list[tuple[type[BaseModel], str] | None]] = {}
    _fields_of(resource, set(marks), fields)
    places: dict[str, list[Where]] = {}
    _places_of(body, (), set(marks), places)
    slots: list[_Slot | None] = []
    named: list[str | None] = [*names, None, None]  # userName, password: not mapped
    for mark, name in list(zip(marks, named, strict=True))[:len(marks) - (not with_password)]:
        held, placed = fields.get(mark, []), places.get(mark, [])
        if not held and name is not None and _own(Path[UserModel](name)):
            slots.append(None)  # mapped onto userName, active or password: not sent
            continue
        if len(held) != 1 or held[0] is None or len(placed) > 1:
            return None  # overwritten, transformed, inside a list, or sent twice
        model, field = held[0]
        annotation = model.model_fields[field].rebuild_annotation()
        adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        if placed and _checked(adapter, mark) != mark:
            return None
        check = None if adapter.core_schema == _PLAIN_TEXT else functools.partial(
            checked_email if annotation == EmailStr | None else _checked, adapter)
        slots.append(_Slot(check, placed[0] if placed else None))
    return _Shape(body, tuple(slots), selections)


def _independent(names: Sequence[str]) -> bool:
    """No value can decide where another goes: each value filter is a plain comparison,
    and no path writes what a filter of the same attribute compares (or the whole
    attribute)."""
    try:
        paths = [Path[UserModel](n) for n in names]
    except (SCIMException, ValueError):
        return False
    compared: set[tuple[str, str, str | None]] = set()
    for path in paths:
        if path.value_filter is not None:
            if not plain_selection(path.value_filter):
                return False
            assert isinstance(path.value_filter, Comparison)
            compared.add((*_head(path), path.value_filter.attr_path.attr.lower()))
    heads = {(schema, attr) for schema, attr, _ in compared}
    for path in paths:
        head = _head(path)
        sub = path.parts[1].lower() if len(path.parts) > 1 else None
        if head in heads and (sub is None or (*head, sub) in compared):
            return False
    return True


def _head(path: Path[Any]) -> tuple[str, str]:
    return (path.schema or SCIM_CORE_USER).lower(), path.parts[0].lower()


def _fields_of(obj: BaseModel, marks: set[str],
               out: dict[str, list[tuple[type[BaseModel], str] | None]]) -> None:
    """Which model field holds each mark (None for a mark inside a list of values)."""
    for name in type(obj).model_fields:
        value = getattr(obj, name)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, BaseModel):
                _fields_of(item, marks, out)
            elif isinstance(item, str) and item in marks:
                out.setdefault(item, []).append(None if item is not value
                                                else (type(obj), name))


def _places_of(value: Any, where: Where, marks: set[str], out: dict[str, list[Where]]
               ) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _places_of(v, (*where, k), marks, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _places_of(v, (*where, i), marks, out)
    elif isinstance(value, str) and value in marks:
        out.setdefault(value, []).append(where)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _put(body: dict[str, Any], where: Where, value: Any) -> None:
    container: Any = body
    for step in where[:-1]:
        container = container[step]
    container[where[-1]] = value
