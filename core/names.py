"""Domain-qualified names: ``DOMAIN/name``; an unqualified name means PRIMARY."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import InvalidInput

SEPARATOR = "/"
PRIMARY = "PRIMARY"
INTERNAL = "Internal"
#: Domains no secondary userstore may take.
RESERVED_DOMAINS = frozenset({PRIMARY, INTERNAL, "Application", "Workflow", "SYSTEM"})
_RESERVED_BY_FOLD = {reserved.casefold(): reserved for reserved in RESERVED_DOMAINS}
_DOMAIN_RE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
#: Domains of the relay stores of applications in proxy mode (never a userstore's).
PROXY_PREFIX = "PROXY."


def proxy_domain(application: str) -> str:
    """The domain under which an application in proxy mode relays its users."""
    return PROXY_PREFIX + re.sub(r"[^A-Za-z0-9_-]", "_", application)[:58].upper()


def is_proxy_domain(domain: str) -> bool:
    return domain.upper().startswith(PROXY_PREFIX)


def normalize_domain(domain: str) -> str:
    """Domains compare case-insensitively; reserved ones keep their canonical spelling."""
    return _RESERVED_BY_FOLD.get(domain.casefold()) or domain.upper()


def validate_domain(domain: str) -> str:
    if not _DOMAIN_RE.match(domain):
        raise InvalidInput(
            f"domain {domain!r} is not valid: use a letter, then letters, digits, '.', '_' "
            "or '-' (at most 64 characters)"
        )
    return normalize_domain(domain)


@dataclass(frozen=True, order=True)
class QualifiedName:
    domain: str
    name: str

    def __str__(self) -> str:
        return f"{self.domain}{SEPARATOR}{self.name}"

    @property
    def is_internal(self) -> bool:
        return self.domain == INTERNAL


def parse_name(text: str, default_domain: str = PRIMARY) -> QualifiedName:
    """Split ``DOMAIN/name``; only the first separator counts, so names may contain ``/``."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("a name is required (got an empty value)")
    if text != text.strip():
        raise InvalidInput(f"name {text!r} has leading or trailing spaces")
    domain, sep, name = text.partition(SEPARATOR)
    if not sep:
        return QualifiedName(normalize_domain(default_domain), text)
    if not domain:
        raise InvalidInput(f"name {text!r} has an empty domain before '/'")
    if not name:
        raise InvalidInput(f"name {text!r} has nothing after the domain {domain!r}")
    return QualifiedName(validate_domain(domain), name)
