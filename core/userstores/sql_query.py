"""Compiling a store query (``core/userstores/query.py``) into SQL for the ``um_*`` tables.

Every value is a bound parameter. Positive attribute comparisons become
``pk IN (SELECT user_pk FROM um_user_attributes WHERE name = :n AND value ...)``, which every
backend answers from the ``(name, value, user_pk)`` index (a correlated ``EXISTS`` would make
SQLite walk every user). ``eq``, ``sw``, ``gt``.. and ``pr`` are index range reads; ``co`` and
``ew`` cannot use a B-tree and read the attribute's index entries, comparing case-insensitively
as SCIM's default (``caseExact`` false) asks, the same on SQLite, PostgreSQL and MariaDB.
Names compare by the store's key (case-folded in a case-insensitive store).

Statements are built once per query *shape*, the tree with its values taken out
(:func:`shape`): building a statement and its cache key cost SQLAlchemy more than running
it (240 of 380 µs for a ``userName eq`` search on SQLite). The values, and the domain, go in
as bind parameters, each computed from the value of its comparison (:class:`Statements`).
A shape's statements weigh about 5.5 KB per comparison (with SQLAlchemy's compiled form),
so the cache is bounded by comparisons held, not by entries (:class:`ShapeCache`): a
client sending ever new 400-term shapes filled 512 entries with 1.4 GB (issue 17). A
large shape is built for its search alone and kept out of SQLAlchemy's compiled cache too.
"""

from __future__ import annotations

import dataclasses
import operator
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BindParameter,
    ColumnElement,
    Select,
    and_,
    bindparam,
    event,
    false,
    func,
    not_,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import Pool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.functions import FunctionElement

from core.errors import InvalidInput
from core.schema import um_groups, um_memberships, um_user_attributes, um_users
from core.userstores.query import (
    TRUE,
    And,
    Compare,
    Constant,
    Kind,
    Not,
    Op,
    Or,
    Query,
    Sort,
)

#: Upper bound appended to a prefix to turn it into a range scan (binary collations).
PREFIX_END = "\U0010ffff"

USER_COLUMNS = (um_users.c.pk, um_users.c.user_id, um_users.c.username,
                um_users.c.created, um_users.c.modified)
GROUP_COLUMNS = (um_groups.c.pk, um_groups.c.group_id, um_groups.c.name,
                 um_groups.c.created, um_groups.c.modified)
_USER_SORT: dict[Kind, Any] = {
    Kind.NAME: um_users.c.username_key, Kind.ID: um_users.c.user_id,
    Kind.CREATED: um_users.c.created, Kind.MODIFIED: um_users.c.modified,
}

Key = Callable[[str], str]
#: A parameter's value from its comparison's value and the store's name key.
Compute = Callable[[Any, Key], Any]
_TIME = datetime(2000, 1, 1, tzinfo=UTC)  # the stand-in of every time value


def shape(query: Query) -> tuple[Query, list[Any]]:
    """``query`` with the value of each comparison replaced by a stand-in of its type
    (queries of one shape share their statements), and the values, in comparison order."""
    values: list[Any] = []

    def strip(node: Query) -> Query:
        if isinstance(node, Compare):
            values.append(node.value)
            stand_in = "" if isinstance(node.value, str) else \
                _TIME if isinstance(node.value, datetime) else node.value
            return Compare(node.field, node.op, stand_in)
        if isinstance(node, And | Or):
            return type(node)(tuple(strip(t) for t in node.terms))
        if isinstance(node, Not):
            return Not(strip(node.term))
        return node

    return strip(query), values


def comparisons(query: Query) -> int:
    """How many comparisons a query holds."""
    if isinstance(query, Compare):
        return 1
    if isinstance(query, And | Or):
        return sum(comparisons(t) for t in query.terms)
    if isinstance(query, Not):
        return comparisons(query.term)
    return 0


@dataclass(frozen=True)
class Statements:
    """The statements of one query shape (the page takes ``offset`` and ``limit``), and how
    their parameters come from the values of a query of that shape."""

    page: Select[Any]
    count: Select[Any]
    slots: tuple[tuple[str, int, Compute], ...]
    #: A user search's page with each user's attributes (a JSON object, column
    #: ``attributes``) in one statement: PostgreSQL's ``json_object_agg``.
    page_with_attributes: Select[Any] | None = None
    #: Whether the statements are kept for the next query of this shape; when not, they
    #: must not fill SQLAlchemy's compiled cache either (see :attr:`options`).
    cached: bool = True

    @property
    def options(self) -> dict[str, Any]:
        """The execution options of the statements."""
        return {} if self.cached else {"compiled_cache": None}

    def params(self, values: Sequence[Any], domain: str, key: Key) -> dict[str, Any]:
        return {"store": domain,
                **{name: compute(values[i], key) for name, i, compute in self.slots}}


class _Binder:
    """Hands out the bind parameters of one shape, in order, each computed from the value
    of the comparison being compiled (``leaf``: its position in the query)."""

    def __init__(self) -> None:
        self.slots: list[tuple[str, int, Compute]] = []
        self.leaf = -1

    def __call__(self, compute: Compute) -> BindParameter[Any]:
        name = f"v{len(self.slots)}"
        self.slots.append((name, self.leaf, compute))
        return bindparam(name)


def _value(value: Any, _key: Key) -> Any:
    return value


def _name_key(value: Any, key: Key) -> Any:
    return key(value)


def _like(op: Op, prepare: Compute) -> Compute:
    """The LIKE pattern (escaped with ``/``, lower case) of ``co`` or ``ew``."""
    def pattern(value: Any, key: Key) -> str:
        text = str(prepare(value, key)).lower()
        escaped = text.replace("/", "//").replace("%", "/%").replace("_", "/_")
        return f"%{escaped}%" if op is Op.CO else f"%{escaped}"
    return pattern


def _prefix_end(prepare: Compute) -> Compute:
    return lambda value, key: prepare(value, key) + PREFIX_END


_ORDERINGS: dict[Op, Callable[[Any, Any], ColumnElement[bool]]] = {
    Op.GT: operator.gt, Op.GE: operator.ge, Op.LT: operator.lt, Op.LE: operator.le}


def _compare(column: Any, op: Op, sample: Any, bind: _Binder,
             prepare: Compute = _value) -> ColumnElement[bool]:
    """``column op value``; ``sample`` is the value's stand-in (its type decides), and
    ``prepare`` turns the value into what the column holds (a name into its key)."""
    if op is Op.PR:
        present: ColumnElement[bool] = column.is_not(None)
        return present
    if op is Op.EQ:
        equal: ColumnElement[bool] = column == bind(prepare)
        return equal
    if op is Op.NE:
        return or_(column != bind(prepare), column.is_(None))
    text = isinstance(sample, str)
    if op is Op.SW and text:
        return and_(column >= bind(prepare), column < bind(_prefix_end(prepare)))
    if op in (Op.CO, Op.EW) and text:
        return _lower(column).like(bind(_like(op, prepare)), escape="/")
    if op in _ORDERINGS:
        return _ORDERINGS[op](column, bind(prepare))
    what = "times" if isinstance(sample, datetime) else repr(sample)
    raise InvalidInput(f"the operator {op.value} cannot compare {what}")


def _attribute_term(term: Compare, bind: _Binder) -> ColumnElement[bool]:
    """A comparison on a user attribute, as membership in the index range it selects."""
    a = um_user_attributes
    if term.op is Op.NE:  # absent, or present with another value
        return not_(_attribute_term(Compare(term.field, Op.EQ, term.value), bind))
    condition = a.c.name == term.field.name
    if term.op is not Op.PR:
        condition = and_(condition, _compare(a.c.value, term.op, term.value, bind))
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


class _lower(FunctionElement[Any]):
    """A text column in lower case, Unicode included (``co "Ü"`` finds ``ÜBERuser``):
    ``lower()`` on MariaDB, on PostgreSQL in the database's default collation (a database
    whose character type is ``C`` folds ASCII only), and Python's on SQLite, whose own
    ``lower()`` folds ASCII only (registered on every SQLite connection)."""

    inherit_cache = True
    name = "lower"

    def __init__(self, column: ColumnElement[Any]) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(_lower)
def _sql_lower(element: _lower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(next(iter(element.clauses)), **kw)})"


@compiles(_lower, "postgresql")
def _postgresql_lower(element: _lower, compiler: SQLCompiler, **kw: Any) -> str:
    # The name columns collate as "C", in which lower() folds ASCII only; the database's
    # default collation folds by its character type (UTF-8 in any usual setup).
    return f'lower({compiler.process(next(iter(element.clauses)), **kw)} COLLATE "default")'


@compiles(_lower, "sqlite")
def _python_lower(element: _lower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{SQLITE_LOWER}({compiler.process(next(iter(element.clauses)), **kw)})"


SQLITE_LOWER = "iam_lower"


def _text_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


@event.listens_for(Pool, "connect")
def _register_lower(dbapi_connection: Any, _record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.create_function(SQLITE_LOWER, 1, _text_lower, deterministic=True)


def _store() -> BindParameter[Any]:
    return bindparam("store")


def _user_where(query: Query, bind: _Binder) -> ColumnElement[bool]:
    """The WHERE clause (on ``um_users``) selecting the users of the domain (parameter
    ``store``) that match ``query``.

    SQLite has no statistics here, so it takes ``store = ?`` for a selective use of the
    ``(store, username_key)`` index and would walk every user of the store, testing each
    against the few ids an attribute index found (226 ms instead of 0.1 ms at 1,000,000
    users, bench/scim_inbound_RESULTS.md). So the store test that bounds the search is kept
    out of the index choice, and each name or time term carries its own ``store = ?``,
    which leads the index it is read from: every term drives the plan with its index, under
    ``and`` and ``or`` alike. With no term at all, the store index orders the listing.
    """
    if query == TRUE:
        return um_users.c.store == _store()
    return and_(_unindexed(um_users.c.store) == _store(),
                _compile(query, lambda term: _user_term(term, bind), bind))


def _user_term(term: Compare, bind: _Binder) -> ColumnElement[bool]:
    kind = term.field.kind
    if kind is Kind.ATTRIBUTE:
        return _attribute_term(term, bind)
    if kind is Kind.ID:
        return _compare(um_users.c.user_id, term.op, term.value, bind)
    if kind is Kind.NAME:
        return and_(um_users.c.store == _store(),
                    _compare(um_users.c.username_key, term.op, term.value, bind,
                             _name_prepare(term)))
    columns: dict[Kind, ColumnClause[Any]] = {
        Kind.CREATED: um_users.c.created, Kind.MODIFIED: um_users.c.modified,
    }
    if kind in columns:
        return and_(um_users.c.store == _store(),
                    _compare(columns[kind], term.op, term.value, bind))
    return false()


def _name_prepare(term: Compare) -> Compute:
    """Names compare by the store's key, but ``co``/``ew`` (which lower both sides)."""
    return _name_key if isinstance(term.value, str) and term.op not in (Op.CO, Op.EW) \
        else _value


class ShapeCache:
    """A least-recently-used cache of statements, bounded by the comparisons it holds
    (``budget``); a shape of more than ``largest`` comparisons is not kept."""

    def __init__(self, budget: int, largest: int) -> None:
        self.budget = budget
        self.largest = largest
        self.held = 0
        self._entries: OrderedDict[Hashable, tuple[Statements, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, weight: int, build: Callable[[], Statements]
            ) -> Statements:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry[0]
        statements = build()
        weight = max(1, weight)
        if weight > self.largest:
            return dataclasses.replace(statements, cached=False)
        with self._lock:
            if key not in self._entries:
                self._entries[key] = (statements, weight)
                self.held += weight
            while self.held > self.budget:
                self.held -= self._entries.popitem(last=False)[1][1]
        return statements

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.held = 0


#: About 6 MB at most (5.5 KB a comparison). A search of up to 8 comparisons is cached
#: (clients' filters have one to three); each cached shape also has its compiled form in
#: SQLAlchemy's cache of 500 per engine, so what a shape may weigh bounds that one too.
STATEMENTS = ShapeCache(budget=1024, largest=8)


def user_statements(query_shape: Query, sort: Sort | None) -> Statements:
    """The page and count statements of a user search of this shape (see :func:`shape`),
    in ``sort`` order (then by creation)."""
    return STATEMENTS.get(("user", query_shape, sort), comparisons(query_shape),
                          lambda: _user_statements(query_shape, sort))


def group_statements(query_shape: Query) -> Statements:
    """The page and count statements of a group search of this shape, in name order."""
    return STATEMENTS.get(("group", query_shape), comparisons(query_shape),
                          lambda: _group_statements(query_shape))


def _user_statements(query_shape: Query, sort: Sort | None) -> Statements:
    bind = _Binder()
    where = _user_where(query_shape, bind)
    page = select(*USER_COLUMNS).where(where)
    if sort is not None and sort.field.kind is Kind.ATTRIBUTE:
        value = um_user_attributes.alias("sort_value")
        page = page.outerjoin(value, and_(value.c.user_pk == um_users.c.pk,
                                          value.c.name == sort.field.name))
        key: Any = value.c.value
    else:
        key = _USER_SORT.get(sort.field.kind) if sort else None
    if key is not None:
        assert sort is not None
        # Users without the value come last either way, as RFC 7644 §3.4.2.3 asks.
        page = page.order_by(key.is_(None), key.desc() if sort.descending else key)
    page = page.order_by(um_users.c.pk).offset(bindparam("offset")).limit(bindparam("limit"))
    count = select(func.count()).select_from(um_users).where(where)
    return Statements(page, count, tuple(bind.slots), _with_attributes(page))


def _with_attributes(page: Select[Any]) -> Select[Any]:
    """PostgreSQL: the rows of ``page`` in its order, each with its user's attributes
    as one JSON object (column ``attributes``, null when it has none) and its groups in
    name order (``group_ids``, ``group_names``, ``groups_created``, ``groups_modified``:
    arrays, null when it has none): a search reads its page in one round trip instead of
    three. Both are read for the page's rows alone, after its offset and limit (the page
    is a subquery, which PostgreSQL scans in its order, joined laterally)."""
    rows = page.subquery("page")
    attribute = um_user_attributes.alias("attribute")
    attributes = select(func.json_object_agg(attribute.c.name, attribute.c.value)) \
        .where(attribute.c.user_pk == rows.c.pk).scalar_subquery()
    membership, group = um_memberships.alias("membership"), um_groups.alias("member_of")
    array_agg: Any = postgresql.array_agg
    groups = select(*(array_agg(aggregate_order_by(column, group.c.name_key))
                      .label(name) for name, column in (
                          ("group_ids", group.c.group_id), ("group_names", group.c.name),
                          ("groups_created", group.c.created),
                          ("groups_modified", group.c.modified)))) \
        .select_from(membership.join(group, group.c.pk == membership.c.group_pk)) \
        .where(membership.c.user_pk == rows.c.pk).lateral("of_groups")
    return select(*rows.c, type_coerce(attributes, JSON).label("attributes"), *groups.c) \
        .select_from(rows.join(groups, true()))


def _group_statements(query_shape: Query) -> Statements:
    bind = _Binder()
    where = and_(um_groups.c.store == _store(),
                 _compile(query_shape, lambda term: _group_term(term, bind), bind))
    page = select(*GROUP_COLUMNS).where(where).order_by(um_groups.c.name_key) \
        .offset(bindparam("offset")).limit(bindparam("limit"))
    count = select(func.count()).select_from(um_groups).where(where)
    return Statements(page, count, tuple(bind.slots))


def _group_term(term: Compare, bind: _Binder) -> ColumnElement[bool]:
    kind = term.field.kind
    if kind is Kind.NAME:
        return _compare(um_groups.c.name_key, term.op, term.value, bind, _name_prepare(term))
    if kind is Kind.MEMBER:
        if term.op is not Op.EQ:
            raise InvalidInput("group members can only be compared with eq")
        return um_groups.c.pk.in_(
            select(um_memberships.c.group_pk)
            .join(um_users, um_users.c.pk == um_memberships.c.user_pk)
            .where(um_users.c.user_id == bind(_value)))
    columns: dict[Kind, ColumnClause[Any]] = {
        Kind.ID: um_groups.c.group_id, Kind.CREATED: um_groups.c.created,
        Kind.MODIFIED: um_groups.c.modified,
    }
    if kind in columns:
        return _compare(columns[kind], term.op, term.value, bind)
    return false()  # groups have no attributes here


def _compile(query: Query, leaf: Callable[[Compare], ColumnElement[bool]], bind: _Binder
             ) -> ColumnElement[bool]:
    """Compile the tree; comparisons are numbered in the order :func:`shape` lists them."""
    if isinstance(query, Compare):
        bind.leaf += 1
        return leaf(query)
    if isinstance(query, And):
        return and_(*(_compile(t, leaf, bind) for t in query.terms))
    if isinstance(query, Or):
        return or_(*(_compile(t, leaf, bind) for t in query.terms))
    if isinstance(query, Not):
        return not_(_compile(query.term, leaf, bind))
    assert isinstance(query, Constant)
    return true() if query.value else false()
