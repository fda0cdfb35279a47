"""What a target should receive: outbound claims, role mapping, scope by provisioning roles."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from connectors.base import OutboundUser
from core.claims import ACTIVE, ClaimCatalog
from core.names import INTERNAL, parse_name
from core.provisioning.targets import Target

_SCIM_CORE_PREFIX = "urn:ietf:params:scim:schemas:core:2.0:User:"


def in_scope(target: Target, roles: Iterable[str]) -> bool:
    """A user is provisioned to a target with provisioning roles only while it holds one."""
    wanted = target.provisioning_roles
    return not wanted or bool(wanted & {str(parse_name(r)) for r in roles})


def mapped_group_name(target: Target, group: str) -> str | None:
    """The remote name of a local group, or None when the group is not sent to this target.

    Internal roles are never sent as groups (they do not exist remotely, reference #21904),
    nor are provisioning roles (they decide scope). With role mappings, only mapped groups
    are sent, under their remote name; without any, every group goes by its own name.
    """
    qn = parse_name(group)
    if qn.domain == INTERNAL or str(qn) in target.provisioning_roles:
        return None
    mappings = {str(parse_name(m.local)): m.remote for m in target.idp.role_mappings}
    if mappings:
        return mappings.get(str(qn))
    return qn.name


def outbound_attributes(
    target: Target, catalog: ClaimCatalog, claims: Mapping[str, str]
) -> dict[str, str]:
    """Remote attribute -> value, from the identity provider's claim mappings (with their
    default values) or, when it has none, from the connector's own dialect."""
    if target.idp.claim_mappings:
        out: dict[str, str] = {}
        for m in target.idp.claim_mappings:
            value = claims.get(catalog.resolve(m.local)) or m.default
            if value:
                out[m.remote] = value
        return out
    dialect = target.spec.dialect
    if dialect is None:
        return {}
    out = {}
    for external, local in catalog.external_to_local(dialect).items():
        if local in claims:
            path = external.removeprefix(_SCIM_CORE_PREFIX)
            out[path] = claims[local]
    return out


def outbound_user(
    target: Target,
    catalog: ClaimCatalog,
    username: str,
    domain: str,
    claims: Mapping[str, str],
    roles: Sequence[str],
    password: str | None = None,
) -> OutboundUser:
    groups = [g for g in (mapped_group_name(target, r) for r in roles) if g]
    active = claims.get(ACTIVE, "true").lower() != "false"
    attributes = outbound_attributes(target, catalog, claims)
    unset = tuple(dict.fromkeys(m.remote for m in target.idp.claim_mappings
                                if m.remote not in attributes))
    return OutboundUser(
        username=username, domain=domain, claims=dict(claims), attributes=attributes,
        password=password, active=active, groups=groups, unset=unset,
    )
