"""What a verified federated login says: who it is and the claims it carries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FederatedLogin:
    #: The identity provider's stable name for the person (OIDC ``sub``, SAML NameID).
    subject: str
    #: The local username it asks for (per ``username_claim``).
    username: str
    #: The remote claims by their names in the token (values: text or lists of text).
    claims: Mapping[str, Any] = field(default_factory=dict)
