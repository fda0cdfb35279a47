"""The provisioning pattern: the user id a connector sends, built from placeholders.

The reference server's ``buildUserId`` (Google's ``google_prov_pattern``, Salesforce's
``sf-prov-pattern``; the facts are in ``provisioning-reference.md`` §5.6): a pattern such
as ``{UD, UN, TD, IDP}`` names the parts, each part's value has every occurrence of the
separator taken out (so the parts can be told apart again), the values are joined with
the separator and the result is lower-cased. With separator ``-``, user
``user@provisioning.com`` of ``PRIMARY`` and identity provider ``salesforce``:
``primary-user@provisioning.com-carbon.super-salesforce``.

The parts may also be written in braces of their own (``{UD}{UN}``, as our Salesforce
connector once documented); both read the same.
"""

from __future__ import annotations

import re

#: The tenant domain (``TD``): this deployment has one tenant, the reference's default.
TENANT_DOMAIN = "carbon.super"
#: Placeholders: user name without its domain, userstore domain, tenant, identity provider.
PLACEHOLDERS = ("UN", "UD", "TD", "IDP")
DEFAULT_PATTERN = "{UN}"
_SPLIT = re.compile(r"\s*(?:,|\}\s*\{)\s*")


def pattern_parts(pattern: str) -> list[str]:
    """The placeholders of ``pattern`` in order; ValueError saying why it is not one."""
    text = pattern.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError(f"{pattern!r} is not a pattern in braces, e.g. {{UD, UN}}")
    parts = _SPLIT.split(text[1:-1].strip())
    unknown = [p for p in parts if p not in PLACEHOLDERS]
    if unknown:
        raise ValueError(
            f"unknown placeholder {', '.join(map(repr, unknown))} (known: "
            + ", ".join(PLACEHOLDERS)
            + ", e.g. {UD, UN})"
        )
    return parts


def build_user_id(pattern: str, separator: str, username: str, domain: str, idp: str) -> str:
    """The id ``pattern`` gives the user ``username`` of userstore ``domain`` sent by the
    identity provider ``idp`` (ValueError for a pattern that is not one)."""
    values = {"UN": username, "UD": domain or "PRIMARY", "TD": TENANT_DOMAIN, "IDP": idp}
    parts = [
        values[p].replace(separator, "") if separator else values[p] for p in pattern_parts(pattern)
    ]
    return separator.join(parts).lower()
