"""Secret references in a configuration file: ``${env:NAME}``, ``${env:NAME:-default}``,
``${file:PATH}``.

A file carries a secret as a reference (or, discouraged, as a literal). Apply stores the
resolved value encrypted together with the reference; export writes the reference back, or
one named after the identity provider and property when none was recorded, and never the
value. An unset variable is accepted when the deployment already stores that secret under
that same reference, so an exported file applies on the machine it came from without the
secrets in its environment.
"""

from __future__ import annotations

import re

from core.errors import InvalidInput
from core.secrets import SecretValue, is_reference, resolve_reference

REFERENCE_FORMS = "${env:NAME}, ${env:NAME:-default} or ${file:PATH}"


def generated_reference(idp: str, prop: str) -> str:
    """``${env:MWARE_<IDP>_<PROPERTY>}``: what export writes for a secret with no reference."""
    name = re.sub(r"[^A-Z0-9]", "_", f"MWARE_{idp}_{prop}".upper())
    return f"${{env:{name}}}"


def reference_for(idp: str, prop: str, secret: SecretValue) -> str:
    return secret.ref or generated_reference(idp, prop)


def looks_like_reference(text: str) -> bool:
    return text.startswith("${") and text.endswith("}")


def resolve(text: str, stored: SecretValue | None, generated: str | None = None) -> SecretValue:
    """The secret a file value stands for; raises InvalidInput saying what is missing.

    ``stored`` is the secret the deployment holds for the same place: it is kept when the
    reference is unset but is the one it was stored under (or the ``generated`` one, which
    export writes when no reference was recorded).
    """
    if not looks_like_reference(text):
        return SecretValue(text)
    if not is_reference(text):
        raise InvalidInput(f"{text} is not a secret reference (use {REFERENCE_FORMS})")
    value = resolve_reference(text)
    if value is not None:
        return SecretValue(value, text)
    if stored is not None and (stored.ref == text or (stored.ref is None and text == generated)):
        return stored
    raise InvalidInput(f"{text}: the environment variable is not set and the reference gives "
                       "no default (set it, or write ${env:NAME:-default})")
