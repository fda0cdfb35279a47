"""SCIM 2.0 outbound connector: property schema (the HTTP operations land with the engine)."""

from __future__ import annotations

from connectors.base import ConnectorSpec
from core.properties import PropertySpec, PropertyType

_P = PropertyType

SPEC = ConnectorSpec(
    type="scim2",
    label="SCIM 2.0",
    properties=(
        PropertySpec("scim2-user-ep", "User endpoint", _P.URL, required=True,
                     help="e.g. http://127.0.0.1:8787/v2/Users"),
        PropertySpec("scim2-group-ep", "Group endpoint", _P.URL,
                     help="e.g. http://127.0.0.1:8787/v2/Groups; empty: groups not sent"),
        PropertySpec("scim2-authentication-mode", "Authentication mode", _P.CHOICE,
                     default="NONE", choices=("NONE", "BASIC", "BEARER", "API_KEY")),
        PropertySpec("scim2-username", "Username"),
        PropertySpec("scim2-password", "Password", secret=True),
        PropertySpec("scim2-access-token", "Access token", secret=True),
        PropertySpec("scim2-api-key-header", "API key header name"),
        PropertySpec("scim2-api-key-value", "API key value", secret=True),
        PropertySpec("scim2-user-store-domain", "Userstore domain prefix",
                     help="if set, names are sent as DOMAIN/name"),
        PropertySpec("scim2-enable-pwd-provisioning", "Provision passwords", _P.BOOLEAN,
                     default=True),
        PropertySpec("scim2-default-pwd", "Default password", secret=True),
    ),
    required_when=(
        ("scim2-username", "scim2-authentication-mode", "BASIC"),
        ("scim2-password", "scim2-authentication-mode", "BASIC"),
        ("scim2-access-token", "scim2-authentication-mode", "BEARER"),
        ("scim2-api-key-header", "scim2-authentication-mode", "API_KEY"),
        ("scim2-api-key-value", "scim2-authentication-mode", "API_KEY"),
    ),
)
