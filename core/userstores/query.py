"""A store-neutral query: what a SCIM filter (or any face) asks of a userstore.

The inbound SCIM server turns a filter into this tree; each store compiles it natively (SQL
``WHERE`` clauses with bound parameters, LDAP filters with escaped values), so a search never
walks the store. At the identity-service level a :class:`Field` names a local claim URI; the
service rewrites claim fields into store attribute fields with the domain's mapping before it
hands the query to a store, so stores still speak attributes only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Op(StrEnum):
    """The SCIM comparison operators (RFC 7644 §3.4.2.2)."""

    EQ = "eq"
    NE = "ne"
    CO = "co"
    SW = "sw"
    EW = "ew"
    GT = "gt"
    GE = "ge"
    LT = "lt"
    LE = "le"
    PR = "pr"


class Kind(StrEnum):
    """What a field names: a built-in property of every entry, or an attribute/claim."""

    NAME = "name"  # the username (users) or the group name (groups)
    ID = "id"  # the immutable id
    CREATED = "created"
    MODIFIED = "modified"
    ATTRIBUTE = "attribute"  # a store attribute (stores) or a local claim URI (service)
    MEMBER = "member"  # groups only: the id of a member user (``eq`` only)


@dataclass(frozen=True)
class Field:
    kind: Kind
    name: str = ""  # the attribute or claim for Kind.ATTRIBUTE

    @property
    def is_time(self) -> bool:
        return self.kind in (Kind.CREATED, Kind.MODIFIED)


NAME = Field(Kind.NAME)
ID = Field(Kind.ID)
CREATED = Field(Kind.CREATED)
MODIFIED = Field(Kind.MODIFIED)
MEMBER = Field(Kind.MEMBER)


def attribute(name: str) -> Field:
    return Field(Kind.ATTRIBUTE, name)


@dataclass(frozen=True)
class Compare:
    field: Field
    op: Op
    #: None only for ``pr``; a datetime for the time fields, text otherwise.
    value: str | datetime | None = None


@dataclass(frozen=True)
class And:
    terms: tuple[Query, ...]


@dataclass(frozen=True)
class Or:
    terms: tuple[Query, ...]


@dataclass(frozen=True)
class Not:
    term: Query


@dataclass(frozen=True)
class Constant:
    """Always true or always false: e.g. a filter on an attribute this deployment does not
    store matches nothing (RFC 7644 §3.4.2.1)."""

    value: bool


Query = Compare | And | Or | Not | Constant

TRUE = Constant(True)
FALSE = Constant(False)


@dataclass(frozen=True)
class Sort:
    field: Field
    descending: bool = False


@dataclass(frozen=True)
class SearchPage(Generic[T]):
    """One page of an index-paged search (SCIM ``startIndex``/``count``): the matches
    ``start`` to ``start + count`` in order, and how many match in all."""

    total: int
    items: Sequence[T]
    #: Each user's groups (``StoredGroup``, which this module cannot import: base imports
    #: it) by user id, in name order, when the store read them with the page (the SQL store
    #: on PostgreSQL does, in the same statement); None: not read (ask ``groups_of_users``).
    groups: Mapping[str, Sequence[Any]] | None = None


def map_fields(query: Query, rename: Callable[[Field], Field | None]) -> Query:
    """``query`` with every field passed through ``rename``; a field it maps to None makes
    that comparison match nothing (the attribute is not stored here)."""
    if isinstance(query, Compare):
        field = rename(query.field)
        return FALSE if field is None else Compare(field, query.op, query.value)
    if isinstance(query, And):
        return And(tuple(map_fields(t, rename) for t in query.terms))
    if isinstance(query, Or):
        return Or(tuple(map_fields(t, rename) for t in query.terms))
    if isinstance(query, Not):
        return Not(map_fields(query.term, rename))
    return query


def simplify(query: Query) -> Query:
    """Fold constants away, so stores see either a constant or a tree without constants."""
    if isinstance(query, And | Or):
        neutral = isinstance(query, And)  # True is neutral in AND, False in OR
        terms: list[Query] = []
        for t in (simplify(t) for t in query.terms):
            if isinstance(t, Constant):
                if t.value != neutral:
                    return Constant(not neutral)
                continue
            terms.append(t)
        if not terms:
            return Constant(neutral)
        if len(terms) == 1:
            return terms[0]
        return And(tuple(terms)) if neutral else Or(tuple(terms))
    if isinstance(query, Not):
        inner = simplify(query.term)
        return Constant(not inner.value) if isinstance(inner, Constant) else Not(inner)
    return query
