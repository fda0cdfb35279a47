"""What the SCIM server publishes: schemas trimmed to what this deployment stores, the
resource types and the service provider configuration.

A SCIM client (Entra, Okta, the conformance suite) reads ``/Schemas`` to learn which
attributes it may send; an attribute we published but silently dropped would look stored and
come back missing. So the User schema keeps only the attributes with a claim mapping in the
SCIM dialect (``core/claims.py``, editable per deployment), plus those the server serves
itself (``id``, ``userName``, ``password``, ``groups``); multi-valued attributes keep
``value`` and ``type``, whose canonical values are the types we store (``work``, ``mobile``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    ETag,
    Filter,
    Mutability,
    Patch,
    Schema,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
)
from scim2_models.path import Comparison
from scim2_models.resources.schema import Attribute
from scim2_server.utils import load_default_resource_types, load_default_schemas

from core.claims import SCIM_CORE_USER, SCIM_ENTERPRISE_USER
from core.inbound import Limits

SCIM_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"

#: User attributes the server serves whatever the claim mappings say.
_SERVED_USER_ATTRIBUTES = {"username", "password", "groups"}
_GROUP_ATTRIBUTES = {"displayname", "members"}


@dataclass(frozen=True)
class MappedPath:
    """One SCIM dialect mapping: ``emails[type eq "work"].value`` -> a local claim."""

    schema: str
    attribute: str  # top-level attribute name, as written in the mapping
    sub_attribute: str | None  # e.g. "value", "givenName"
    selector: tuple[str, str] | None  # e.g. ("type", "work")
    path: str  # the mapping's path, relative to its schema
    claim: str


def parse_mapping(external_uri: str, claim: str) -> MappedPath | None:
    """Read a SCIM dialect mapping key; None for keys outside the User schemas."""
    for schema in (SCIM_ENTERPRISE_USER, SCIM_CORE_USER):
        if external_uri.startswith(schema + ":"):
            path = external_uri[len(schema) + 1:]
            break
    else:
        return None
    selector = None
    head, sep, rest = path.partition("[")
    sub: str | None
    if sep:
        condition, _, tail = rest.partition("]")
        name, op, value = condition.split(" ", 2)
        if op.lower() != "eq":
            return None
        selector = (name, value.strip('"'))
        sub = tail.lstrip(".") or None
    else:
        head, _, sub_part = path.partition(".")
        sub = sub_part or None
    return MappedPath(schema, head, sub, selector, path, claim)


def mapped_paths(external: Mapping[str, str]) -> list[MappedPath]:
    """Every User mapping of the SCIM dialect (external URI -> claim URI)."""
    return [m for m in (parse_mapping(uri, claim) for uri, claim in external.items()) if m]


def stored_types(paths: Iterable[MappedPath]) -> dict[str, dict[str, list[str]]]:
    """schema -> multi-valued attribute (lower case) -> the types stored, in mapping order."""
    out: dict[str, dict[str, list[str]]] = {}
    for p in paths:
        if p.selector is not None and p.selector[0].lower() == "type":
            types = out.setdefault(p.schema, {}).setdefault(p.attribute.lower(), [])
            if p.selector[1] not in types:
                types.append(p.selector[1])
    return out


def _trim(attribute: Attribute, keep: set[str], types: set[str]) -> Attribute:
    subs = [s for s in attribute.sub_attributes or []
            if (s.name or "").lower() in keep]
    update: dict[str, object] = {"sub_attributes": subs or None}
    for s in subs:
        if (s.name or "").lower() == "type" and types:
            s.canonical_values = sorted(types)
    return attribute.model_copy(update=update)


def _user_schema(schema: Schema, paths: Iterable[MappedPath], served: set[str]) -> Schema:
    wanted: dict[str, set[str]] = {}
    types: dict[str, set[str]] = {}
    for p in paths:
        subs = wanted.setdefault(p.attribute.lower(), set())
        if p.sub_attribute:
            subs.add(p.sub_attribute.lower())
        if p.selector:
            subs.add(p.selector[0].lower())
            types.setdefault(p.attribute.lower(), set()).add(p.selector[1])
    kept = []
    for attribute in schema.attributes or []:
        name = (attribute.name or "").lower()
        if name == "username":
            # Renaming a user is not supported: every store keys accounts by name, and
            # the provisioned copies elsewhere would be orphaned. Said, not silently done.
            kept.append(attribute.model_copy(update={"mutability": Mutability.immutable}))
        elif name in served:
            kept.append(attribute)
        elif name in wanted:
            kept.append(_trim(attribute, wanted[name], types.get(name, set()))
                        if attribute.sub_attributes else attribute)
    return schema.model_copy(update={"attributes": kept})


def _group_schema(schema: Schema) -> Schema:
    """displayName and members (value, $ref, type): a member's display is not stored, so
    it is not published either."""
    kept = []
    for attribute in schema.attributes or []:
        name = (attribute.name or "").lower()
        if name == "members":
            kept.append(_trim(attribute, {"value", "$ref", "type"}, set()))
        elif name in _GROUP_ATTRIBUTES:
            kept.append(attribute)
    return schema.model_copy(update={"attributes": kept})


def build_provider(external: Mapping[str, str], limits: Limits) -> ScimProvider:
    """The SCIM description of this deployment, from its SCIM dialect mappings."""
    paths = mapped_paths(external)
    defaults = load_default_schemas()
    core_paths = [p for p in paths if p.schema == SCIM_CORE_USER]
    enterprise_paths = [p for p in paths if p.schema == SCIM_ENTERPRISE_USER]
    schemas = [
        _user_schema(defaults[SCIM_CORE_USER], core_paths, _SERVED_USER_ATTRIBUTES),
        _user_schema(defaults[SCIM_ENTERPRISE_USER], enterprise_paths, set()),
        _group_schema(defaults[SCIM_GROUP]),
    ]
    resource_types = list(load_default_resource_types().values())
    config = ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(supported=True, max_operations=limits.bulk_max_operations,
                  max_payload_size=limits.max_payload_bytes),
        filter=Filter(supported=True, max_results=limits.max_results),
        change_password=ChangePassword(supported=True),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken, name="Bearer token",
                description="A token issued to the application: mware-iam app token APP",
                primary=True),
            AuthenticationScheme(
                type=AuthenticationScheme.Type.httpbasic, name="HTTP Basic",
                description="The application's name as user name and one of its tokens "
                            "as password"),
        ],
    )
    return ScimProvider.from_discovery(schemas, resource_types, config=config)


def selector_matches(selector: tuple[str, str] | None, node: Comparison) -> bool:
    """Whether a value-filter comparison (``type eq "work"``) names a mapping's selector."""
    return (selector is not None and node.attr_path.sub_attr is None
            and node.attr_path.attr.lower() == selector[0].lower()
            and isinstance(node.value, str) and node.value.lower() == selector[1].lower())
