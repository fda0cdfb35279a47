"""Property schemas: one declaration drives validation, YAML, the CLI and the console form.

Connectors and userstores each declare a tuple of :class:`PropertySpec`; :func:`validate`
turns raw values (strings from YAML, a form or the command line) into typed values and
reports every faulty field by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.errors import InvalidInput


class PropertyType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    CHOICE = "choice"
    URL = "url"
    REGEX = "regex"


@dataclass(frozen=True)
class PropertySpec:
    name: str
    label: str
    type: PropertyType = PropertyType.STRING
    required: bool = False
    secret: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    help: str = ""
    #: For a URL: the properties that take a user name and password instead (a URL may
    #: not carry them); empty: the schema's secret properties are named.
    credentials: str = ""
    #: For a URL: the schemes it may have (empty: any).
    schemes: tuple[str, ...] = ()


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


_URL_RE = re.compile(r"^[a-z][a-z0-9+.-]*://[^\s/]+", re.IGNORECASE)
#: The user-information part of a URL (``user:password@``), up to its last ``@``.
_USERINFO_RE = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^\s/?#]*@", re.IGNORECASE)


def redact_urls(text: str) -> str:
    """``text`` with the user name and password of every URL in it replaced by ``***``.

    What any screen, log, export or error message shows of a URL: connector URLs are
    refused with credentials, but one stored before that rule, or a URL in a peer's
    words, must not leak them."""
    if "@" not in text:  # the user information ends with one: nothing to replace
        return text
    return _USERINFO_RE.sub(r"\1***@", text)


class _CredentialsInUrl(ValueError):
    """A URL carries a user name or password."""
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _coerce(spec: PropertySpec, value: Any) -> Any:
    if spec.type is PropertyType.BOOLEAN:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("expected true or false")
    if spec.type is PropertyType.INTEGER:
        if isinstance(value, bool):
            raise ValueError("expected a whole number")
        try:
            return int(str(value).strip())
        except ValueError:
            raise ValueError("expected a whole number") from None
    text = str(value) if not isinstance(value, str) else value
    if spec.type is PropertyType.CHOICE and text not in spec.choices:
        raise ValueError("expected one of " + ", ".join(spec.choices))
    if spec.type is PropertyType.URL and not _URL_RE.match(text):
        raise ValueError("expected a URL such as http://127.0.0.1:8787/v2")
    if spec.type is PropertyType.URL and redact_urls(text) != text:
        raise _CredentialsInUrl("a URL must not carry a user name or password (it would be "
                                "stored and shown in clear)")
    if spec.schemes and text.split(":", 1)[0].lower() not in spec.schemes:
        raise ValueError("expected a URL starting with " +
                         " or ".join(f"{s}://" for s in spec.schemes))
    if spec.type is PropertyType.REGEX:
        try:
            re.compile(text)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
    return text


def check(
    specs: Sequence[PropertySpec], values: Mapping[str, Any], partial: bool = False
) -> tuple[dict[str, Any], list[FieldError]]:
    """Typed values with defaults filled in, and every error found (unknown, missing, bad)."""
    by_name = {s.name: s for s in specs}
    errors = [FieldError(k, "unknown property (known: " + ", ".join(by_name) + ")")
              for k in values if k not in by_name]
    out: dict[str, Any] = {}
    for spec in specs:
        raw = values.get(spec.name)
        if raw is None or raw == "":
            if spec.required and not partial:
                errors.append(FieldError(spec.name, f"{spec.label} is required"))
            elif spec.default is not None and not partial:
                out[spec.name] = spec.default
            continue
        try:
            out[spec.name] = _coerce(spec, raw)
        except _CredentialsInUrl as exc:
            # Refused, yet typed: a URL stored before this rule still works (and is shown
            # redacted) until the configuration is next saved.
            out[spec.name] = raw
            where = spec.credentials or " or ".join(s.name for s in specs if s.secret)
            errors.append(FieldError(spec.name, f"{redact_urls(repr(raw))} is not valid: {exc}"
                                     + (f": give them in {where}" if where else "")))
        except ValueError as exc:
            shown = "the value" if spec.secret else repr(raw)
            errors.append(FieldError(spec.name, f"{shown} is not valid: {exc}"))
    return out, errors


def validate(specs: Sequence[PropertySpec], values: Mapping[str, Any], where: str
             ) -> dict[str, Any]:
    out, errors = check(specs, values)
    if errors:
        raise InvalidInput(f"{where}: " + "; ".join(str(e) for e in errors))
    return out


def secret_names(specs: Sequence[PropertySpec]) -> set[str]:
    return {s.name for s in specs if s.secret}
