"""Targets: one enabled connector of one identity provider, as the engine uses it."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import IDP_NAME, ConnectorSpec
from connectors.registry import spec_for
from core.idps import ConnectorConfig, IdentityProvider, typed_properties
from core.names import parse_name


def target_key(idp: str, connector_type: str) -> str:
    return f"{idp}:{connector_type}"


def split_key(key: str) -> tuple[str, str]:
    idp, _, connector_type = key.rpartition(":")
    return idp, connector_type


@dataclass(frozen=True)
class Target:
    idp: IdentityProvider
    config: ConnectorConfig
    spec: ConnectorSpec
    #: Typed properties (secrets decrypted, common properties with defaults).
    properties: Mapping[str, Any]

    @property
    def key(self) -> str:
        return target_key(self.idp.name, self.config.type)

    @functools.cached_property
    def provisioning_roles(self) -> frozenset[str]:
        return frozenset(str(parse_name(r)) for r in self.idp.provisioning_roles)

    @property
    def sends_groups(self) -> bool:
        """Groups go to this target: the connector has them and they are configured."""
        need = self.spec.groups_need
        return self.spec.supports_groups and (need is None or bool(self.properties.get(need)))

    @functools.cached_property
    def fingerprint(self) -> str:
        """Changes whenever the configuration does (to rebuild cached connectors); worked
        out once per target (the runtime asks for every job)."""
        raw = json.dumps(self.properties, sort_keys=True, default=str)
        return hashlib.sha256(raw.encode()).hexdigest()

    def prop(self, name: str) -> Any:
        return self.properties[name]


def build_target(idp: IdentityProvider, connector_type: str) -> Target:
    config = idp.connector(connector_type)
    typed, _errors = typed_properties(config, cross_checks=False)  # checked when saved
    return Target(idp, config, spec_for(connector_type), {**typed, IDP_NAME: idp.name})
