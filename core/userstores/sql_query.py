"""Compiling a store query (``core/userstores/query.py``) into SQL for the ``um_*`` tables.

Every value is a bound parameter. Positive attribute comparisons become
``pk IN (SELECT user_pk FROM um_user_attributes WHERE name = :n AND value ...)``, which every
backend answers from the ``(name, value, user_pk)`` index (a correlated ``EXISTS`` would make
SQLite walk every user). ``eq``, ``sw``, ``gt``.. and ``pr`` are index range reads; ``co`` and
``ew`` cannot use a B-tree and read the attribute's index entries, comparing case-insensitively
as SCIM's default (``caseExact`` false) asks, the same on SQLite, PostgreSQL and MariaDB.
Names compare by the store's key (case-folded in a case-insensitive store).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.functions import FunctionElement

from core.errors import InvalidInput
from core.schema import um_groups, um_memberships, um_user_attributes, um_users
from core.userstores.query import TRUE, And, Compare, Constant, Kind, Not, Op, Or, Query

#: Upper bound appended to a prefix to turn it into a range scan (binary collations).
PREFIX_END = "\U0010ffff"


def _compare(column: Any, op: Op, value: Any) -> ColumnElement[bool]:
    if op is Op.PR:
        return column.is_not(None)
    if op is Op.EQ:
        return column == value
    if op is Op.NE:
        return or_(column != value, column.is_(None))
    if op is Op.SW and isinstance(value, str):
        return and_(column >= value, column < value + PREFIX_END)
    if op in (Op.CO, Op.EW) and isinstance(value, str):
        lowered = func.lower(column)
        if op is Op.CO:
            return lowered.contains(value.lower(), autoescape=True)
        return lowered.endswith(value.lower(), autoescape=True)
    comparisons: dict[Op, Callable[[Any, Any], ColumnElement[bool]]] = {
        Op.GT: lambda c, v: c > v, Op.GE: lambda c, v: c >= v,
        Op.LT: lambda c, v: c < v, Op.LE: lambda c, v: c <= v,
    }
    if op in comparisons:
        return comparisons[op](column, value)
    raise InvalidInput(f"the operator {op.value} cannot compare {value!r}")


def _attribute_term(term: Compare) -> ColumnElement[bool]:
    """A comparison on a user attribute, as membership in the index range it selects."""
    a = um_user_attributes
    if term.op is Op.NE:  # absent, or present with another value
        return not_(_attribute_term(Compare(term.field, Op.EQ, term.value)))
    condition = a.c.name == term.field.name
    if term.op is not Op.PR:
        condition = and_(condition, _compare(a.c.value, term.op, term.value))
    return um_users.c.pk.in_(select(a.c.user_pk).where(condition))


class _unindexed(FunctionElement[Any]):
    """A column as SQLite's planner may not answer from an index (``+column``); the column
    itself on the other backends."""

    inherit_cache = True
    name = "unindexed"

    def __init__(self, column: ColumnClause[Any]) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(_unindexed)
def _column(element: _unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(next(iter(element.clauses)), **kw))


@compiles(_unindexed, "sqlite")
def _plus_column(element: _unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + str(compiler.process(next(iter(element.clauses)), **kw))


def user_where(domain: str, query: Query, key: Callable[[str], str]) -> ColumnElement[bool]:
    """The WHERE clause (on ``um_users``) selecting the users of ``domain`` matching
    ``query``; ``key`` is the store's name key (how usernames are compared).

    SQLite has no statistics here, so it takes ``store = ?`` for a selective use of the
    ``(store, username_key)`` index and would walk every user of the store, testing each
    against the few ids an attribute index found (226 ms instead of 0.1 ms at 1,000,000
    users, bench/scim_inbound_RESULTS.md). So the store test that bounds the search is kept
    out of the index choice, and each name or time term carries its own ``store = ?``,
    which leads the index it is read from: every term drives the plan with its index, under
    ``and`` and ``or`` alike. With no term at all, the store index orders the listing.
    """
    if query == TRUE:
        return um_users.c.store == domain
    return and_(_unindexed(um_users.c.store) == domain,
                _compile(query, lambda term: _user_term(term, key, domain)))


def _user_term(term: Compare, key: Callable[[str], str], domain: str
               ) -> ColumnElement[bool]:
    kind = term.field.kind
    if kind is Kind.ATTRIBUTE:
        return _attribute_term(term)
    if kind is Kind.ID:
        return _compare(um_users.c.user_id, term.op, term.value)
    if kind is Kind.NAME:
        value = key(term.value) if isinstance(term.value, str) and term.op not in (
            Op.CO, Op.EW) else term.value
        return and_(um_users.c.store == domain,
                    _compare(um_users.c.username_key, term.op, value))
    columns: dict[Kind, ColumnClause[Any]] = {
        Kind.CREATED: um_users.c.created, Kind.MODIFIED: um_users.c.modified,
    }
    if kind in columns:
        return and_(um_users.c.store == domain,
                    _compare(columns[kind], term.op, term.value))
    return false()


def group_filter(query: Query, key: Callable[[str], str]) -> ColumnElement[bool]:
    """The WHERE clause (on ``um_groups``) selecting the groups that match ``query``."""
    return _compile(query, lambda term: _group_term(term, key))


def _group_term(term: Compare, key: Callable[[str], str]) -> ColumnElement[bool]:
    kind = term.field.kind
    if kind is Kind.NAME:
        value = key(term.value) if isinstance(term.value, str) and term.op not in (
            Op.CO, Op.EW) else term.value
        return _compare(um_groups.c.name_key, term.op, value)
    if kind is Kind.MEMBER:
        if term.op is not Op.EQ:
            raise InvalidInput("group members can only be compared with eq")
        return um_groups.c.pk.in_(
            select(um_memberships.c.group_pk)
            .join(um_users, um_users.c.pk == um_memberships.c.user_pk)
            .where(um_users.c.user_id == term.value))
    columns: dict[Kind, ColumnClause[Any]] = {
        Kind.ID: um_groups.c.group_id, Kind.CREATED: um_groups.c.created,
        Kind.MODIFIED: um_groups.c.modified,
    }
    if kind in columns:
        return _compare(columns[kind], term.op, term.value)
    return false()  # groups have no attributes here


def _compile(query: Query, leaf: Callable[[Compare], ColumnElement[bool]]
             ) -> ColumnElement[bool]:
    if isinstance(query, Compare):
        return leaf(query)
    if isinstance(query, And):
        return and_(*(_compile(t, leaf) for t in query.terms))
    if isinstance(query, Or):
        return or_(*(_compile(t, leaf) for t in query.terms))
    if isinstance(query, Not):
        return not_(_compile(query.term, leaf))
    assert isinstance(query, Constant)
    return true() if query.value else false()
