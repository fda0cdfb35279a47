"""The connector contract, as far as configuration goes: type and property schema.

Each connector module declares a :class:`ConnectorSpec`; the registry below is what
validation, YAML, the CLI and the console form read. Property keys keep the reference
server's names (``scim2-user-ep``) so existing configurations import unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InvalidInput
from core.properties import PropertySpec


@dataclass(frozen=True)
class ConnectorSpec:
    type: str
    label: str
    properties: tuple[PropertySpec, ...]
    #: Properties required only when another property has a value: {prop: (other, value)}.
    required_when: tuple[tuple[str, str, str], ...] = ()


def registry() -> dict[str, ConnectorSpec]:
    from connectors import scim2

    return {spec.type: spec for spec in (scim2.SPEC,)}


def spec_for(connector_type: str) -> ConnectorSpec:
    specs = registry()
    try:
        return specs[connector_type]
    except KeyError:
        raise InvalidInput(
            f"connector type {connector_type!r} is not known (known: {', '.join(specs)})"
        ) from None
