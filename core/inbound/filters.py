"""SCIM filters (parsed by scim2-models) as store queries (``core/userstores/query.py``).

The identity service hands the query to the store, which compiles it to SQL or LDAP, so a
filter never walks a store. Attributes map to claims through the SCIM dialect mappings:
``emails.value`` and ``emails[type eq "work"].value`` both reach the ``emailaddress`` claim
that ``emails[type eq "work"].value`` maps. An attribute the deployment does not store
matches nothing (RFC 7644 §3.4.2.1). ``active eq true`` also matches users that never had
the claim (a user is active unless it says otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    Present,
    ValuePath,
)
from scim2_models.path import Not as ScimNot

from core.claims import ACTIVE, SCIM_CORE_USER
from core.errors import InvalidInput
from core.inbound.schemas import SCIM_GROUP, MappedPath, selector_matches
from core.userstores import query as q

_TIME_FIELDS = {"created": q.CREATED, "lastmodified": q.MODIFIED}
#: A group's externalId (kept beside the store, see ``group_ids``); the storage resolves it.
EXTERNAL_ID = "externalId"


def _value(value: Any, field: q.Field) -> str | datetime | None:
    if value is None:
        return None
    if field.is_time:
        return _time(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if "\x00" in text:
        raise InvalidInput("a filter value cannot hold a NUL character")
    return text


def _time(value: Any) -> datetime:
    """A filter's time in UTC. RFC 3339 asks for an offset; a time without one (Entra and
    scripts send ``"2024-01-01"``) is read as UTC, as the times we publish are."""
    try:
        when = value if isinstance(value, datetime) else \
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(f"{value!r} is not a date and time (RFC 3339) between the "
                           "years 1 and 9999") from None


def _compare(field: q.Field, node: Comparison | Present) -> q.Query:
    if isinstance(node, Present):
        return q.Compare(field, q.Op.PR)
    value = _value(node.value, field)
    if value is None:  # "eq null" means absent (RFC 7644 §3.4.2.2)
        if node.op is CompareOperator.eq:
            return q.Not(q.Compare(field, q.Op.PR))
        if node.op is CompareOperator.ne:
            return q.Compare(field, q.Op.PR)
        raise InvalidInput(f"{node.op.value} cannot compare with null")
    op = q.Op(node.op.value)
    if field == q.attribute(ACTIVE) and op in (q.Op.EQ, q.Op.NE) and value in ("true",
                                                                                "false"):
        inactive = q.Compare(field, q.Op.EQ, "false")
        wanted_active = (value == "true") == (op is q.Op.EQ)
        return q.Not(inactive) if wanted_active else inactive
    return q.Compare(field, op, value)


class FilterTranslator:
    """Translates the filters of one resource type."""

    def __init__(self, resource: str, paths: Sequence[MappedPath]) -> None:
        self.resource = resource
        self.paths = paths

    def translate(self, node: FilterNode | None) -> q.Query:
        if node is None:
            return q.TRUE
        return q.simplify(self._node(node, None))

    def _node(self, node: FilterNode, parent: AttrPath | None) -> q.Query:
        if isinstance(node, LogicalExpr):
            terms = tuple(self._node(t, parent) for t in node.terms)
            return q.And(terms) if node.op is LogicalOperator.and_ else q.Or(terms)
        if isinstance(node, ScimNot):
            return q.Not(self._node(node.expr, parent))
        if isinstance(node, ValuePath):
            return self._node(node.val_filter, node.attr_path)
        if isinstance(node, Comparison | Present):
            return self._leaf(node, parent)
        raise InvalidInput(f"unsupported filter expression: {node}")

    def _leaf(self, node: Comparison | Present, parent: AttrPath | None) -> q.Query:
        path = node.attr_path
        if parent is not None:  # inside emails[...]: type / value are sub-attributes
            path = AttrPath(parent.attr, path.attr, parent.uri)
        if self.resource == "Group":
            return self._group_leaf(path, node)
        return self._user_leaf(path, node)

    def _common(self, path: AttrPath, node: Comparison | Present) -> q.Query | None:
        """``id`` and ``meta.created`` / ``meta.lastModified``, on either resource."""
        attr = path.attr.lower()
        if attr == "id" and path.sub_attr is None:
            return _compare(q.ID, node)
        if attr == "meta" and (path.sub_attr or "").lower() in _TIME_FIELDS:
            return _compare(_TIME_FIELDS[(path.sub_attr or "").lower()], node)
        return None

    def _group_leaf(self, path: AttrPath, node: Comparison | Present) -> q.Query:
        common = self._common(path, node)
        if common is not None:
            return common
        if path.uri not in (None, SCIM_GROUP):
            return q.FALSE
        attr, sub = path.attr.lower(), (path.sub_attr or "value").lower()
        if attr == "displayname" and path.sub_attr is None:
            return _compare(q.NAME, node)
        if attr == "externalid" and path.sub_attr is None:
            return _compare(q.attribute(EXTERNAL_ID), node)
        if attr == "members" and sub == "value":
            if isinstance(node, Present) or node.op is not CompareOperator.eq:
                raise InvalidInput("members can only be compared with eq, as in "
                                   'members[value eq "<user id>"]')
            return q.Compare(q.MEMBER, q.Op.EQ, str(node.value))
        return q.FALSE

    def _user_leaf(self, path: AttrPath, node: Comparison | Present) -> q.Query:
        common = self._common(path, node)
        if common is not None:
            return common
        schema = path.uri or SCIM_CORE_USER
        attr = path.attr.lower()
        if schema == SCIM_CORE_USER and attr == "username" and path.sub_attr is None:
            return _compare(q.NAME, node)
        candidates = [p for p in self.paths
                      if p.schema == schema and p.attribute.lower() == attr]
        if not candidates:
            return q.FALSE
        sub = path.sub_attr.lower() if path.sub_attr else None
        terms: list[q.Query] = []
        for p in candidates:
            if p.selector is not None and sub == p.selector[0].lower():
                # emails.type eq "work": whether the entry of that type exists
                matches = isinstance(node, Comparison) and selector_matches(p.selector, node)
                terms.append(q.Compare(q.attribute(p.claim), q.Op.PR) if matches
                             else q.FALSE)
                continue
            own = p.sub_attribute.lower() if p.sub_attribute else None
            # A multi-valued attribute compared as a whole compares its "value".
            if own == sub or (sub is None and own == "value"):
                terms.append(_compare(q.attribute(p.claim), node))
        return q.Or(tuple(terms)) if terms else q.FALSE
