"""Identity providers: claim and role mappings, provisioning roles, JIT, connector configs.

Secret connector properties are stored encrypted (``SecretBox``); in memory they are
:class:`SecretValue` objects whose repr never shows the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from connectors.registry import spec_for
from core import config_versions
from core.errors import InvalidInput, NotFound
from core.properties import FieldError, check, redact_urls, secret_names
from core.schema import connector_configs, identity_providers
from core.secrets import SecretBox, SecretValue, mask


@dataclass(frozen=True)
class ClaimMapping:
    local: str
    remote: str
    default: str | None = None


@dataclass(frozen=True)
class RoleMapping:
    local: str
    remote: str


JIT_SCHEMES = ("provision_silently", "prompt_consent", "prompt_password_consent",
               "prompt_username_password_consent")


@dataclass(frozen=True)
class JitConfig:
    enabled: bool = False
    userstore: str = "PRIMARY"
    scheme: str = "provision_silently"
    associate_local_user: bool = False


@dataclass(frozen=True)
class ConnectorConfig:
    type: str
    enabled: bool = True
    default: bool = False
    properties: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, SecretValue] = field(default_factory=dict)

    def masked(self) -> dict[str, Any]:
        """Every property, secrets shown as a mask and URLs without their credentials:
        what any screen or export may show."""
        return {**{k: redact_urls(v) if isinstance(v, str) else v
                   for k, v in self.properties.items()},
                **{k: mask(v.value) for k, v in self.secrets.items()}}


@dataclass(frozen=True)
class IdentityProvider:
    name: str
    description: str = ""
    enabled: bool = True
    claim_mappings: tuple[ClaimMapping, ...] = ()
    role_mappings: tuple[RoleMapping, ...] = ()
    provisioning_roles: tuple[str, ...] = ()
    jit: JitConfig = JitConfig()
    connectors: tuple[ConnectorConfig, ...] = ()

    def connector(self, connector_type: str) -> ConnectorConfig:
        for c in self.connectors:
            if c.type == connector_type:
                return c
        raise NotFound(f"identity provider {self.name} has no {connector_type} connector")


def typed_properties(cfg: ConnectorConfig, cross_checks: bool = True
                     ) -> tuple[dict[str, Any], list[FieldError]]:
    """Every property of a connector configuration (secrets included) typed, with defaults
    filled in, and every problem by property name. ``cross_checks=False`` skips the
    connector's own checks (``ConnectorSpec.checks``; parsing a key is not free), for
    configurations checked when they were saved."""
    spec = spec_for(cfg.type)
    values: dict[str, Any] = {**cfg.properties, **{k: v.value for k, v in cfg.secrets.items()}}
    typed, errors = check(spec.all_properties, values)
    for prop, other, wanted in spec.required_when:
        if typed.get(other) == wanted and not typed.get(prop):
            errors.append(FieldError(prop, f"is required when {other} is {wanted}"))
    if cross_checks and spec.checks is not None:
        errors += spec.checks(typed)
    misplaced = [k for k in cfg.properties if k in secret_names(spec.all_properties)]
    errors += [FieldError(k, "is a secret; it cannot be stored as a plain property")
               for k in misplaced]
    return typed, errors


def connector_errors(cfg: ConnectorConfig) -> list[FieldError]:
    """Every problem of a connector configuration, by property name."""
    return typed_properties(cfg)[1]


def normalized(cfg: ConnectorConfig) -> ConnectorConfig:
    """The config with typed values and defaults filled in (raises on any error)."""
    typed, errors = typed_properties(cfg)
    if errors:
        raise InvalidInput(f"connector {cfg.type}: " + "; ".join(map(str, errors)))
    secrets = secret_names(spec_for(cfg.type).all_properties)
    props = {k: v for k, v in typed.items() if k not in secrets}
    return ConnectorConfig(cfg.type, cfg.enabled, cfg.default, props,
                           {k: v for k, v in cfg.secrets.items() if v.value})


# ---------------------------------------------------------------- persistence
def _to_row(idp: IdentityProvider) -> dict[str, Any]:
    return {
        "name": idp.name, "description": idp.description, "enabled": idp.enabled,
        "claim_mappings": [m.__dict__ for m in idp.claim_mappings],
        "role_mappings": [m.__dict__ for m in idp.role_mappings],
        "provisioning_roles": list(idp.provisioning_roles),
        "jit": idp.jit.__dict__,
    }


def names(conn: Connection) -> list[str]:
    return list(conn.execute(select(identity_providers.c.name)
                             .order_by(identity_providers.c.name)).scalars())


def get(conn: Connection, box: SecretBox, name: str) -> IdentityProvider:
    row = conn.execute(select(identity_providers).where(
        identity_providers.c.name == name)).mappings().first()
    if row is None:
        raise NotFound(f"identity provider {name!r} does not exist")
    conns = []
    for c in conn.execute(select(connector_configs).where(
            connector_configs.c.idp_pk == row["pk"]).order_by(connector_configs.c.type)
    ).mappings():
        secrets = {k: SecretValue(box.decrypt(v["cipher"]), v.get("ref"))
                   for k, v in c["secrets"].items()}
        conns.append(ConnectorConfig(c["type"], c["enabled"], c["is_default"],
                                     c["properties"], secrets))
    return IdentityProvider(
        name=row["name"], description=row["description"], enabled=row["enabled"],
        claim_mappings=tuple(ClaimMapping(**m) for m in row["claim_mappings"]),
        role_mappings=tuple(RoleMapping(**m) for m in row["role_mappings"]),
        provisioning_roles=tuple(row["provisioning_roles"]),
        jit=JitConfig(**row["jit"]), connectors=tuple(conns),
    )


def save(conn: Connection, box: SecretBox, idp: IdentityProvider) -> None:
    """Create or replace an identity provider.

    Connector rows are updated in place (never deleted and re-created), so anything keyed
    on a connector row (the provisioning mappings) survives an edit.
    """
    connectors = [normalized(c) for c in idp.connectors]
    if len({c.type for c in connectors}) != len(connectors):
        raise InvalidInput(f"identity provider {idp.name}: a connector type is listed twice")
    pk = conn.execute(select(identity_providers.c.pk).where(
        identity_providers.c.name == idp.name)).scalar()
    if pk is None:
        pk = conn.execute(insert(identity_providers).values(**_to_row(idp))
                          ).inserted_primary_key[0]  # type: ignore[index]
    else:
        conn.execute(update(identity_providers).where(identity_providers.c.pk == pk)
                     .values(**_to_row(idp)))
    existing = dict(conn.execute(select(connector_configs.c.type, connector_configs.c.pk).where(
        connector_configs.c.idp_pk == pk)).all())
    for c in connectors:
        values = {
            "enabled": c.enabled, "is_default": c.default, "properties": dict(c.properties),
            "secrets": {k: {"cipher": box.encrypt(v.value), "ref": v.ref}
                        for k, v in c.secrets.items()},
        }
        if c.type in existing:
            conn.execute(update(connector_configs)
                         .where(connector_configs.c.pk == existing.pop(c.type)).values(**values))
        else:
            conn.execute(insert(connector_configs).values(idp_pk=pk, type=c.type, **values))
    for gone_pk in existing.values():
        conn.execute(delete(connector_configs).where(connector_configs.c.pk == gone_pk))
    config_versions.bump(conn, config_versions.IDPS)


def remove(conn: Connection, name: str) -> None:
    pk = conn.execute(select(identity_providers.c.pk).where(
        identity_providers.c.name == name)).scalar()
    if pk is None:
        raise NotFound(f"identity provider {name!r} does not exist")
    conn.execute(delete(connector_configs).where(connector_configs.c.idp_pk == pk))
    conn.execute(delete(identity_providers).where(identity_providers.c.pk == pk))
    config_versions.bump(conn, config_versions.IDPS)
