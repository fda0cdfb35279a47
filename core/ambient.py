"""The ambient transaction: the one ``SystemDB.transaction()`` opened, published in a
context variable, and what it holds until it ends.

Round trips, not statements, are most of a short write's cost on PostgreSQL. A SCIM POST
was four (``BEGIN``, the user's insert, its audit row, ``COMMIT``), and the ``BEGIN`` and
``COMMIT`` alone cost the server and PostgreSQL some 170 us of CPU. A transaction opened
*unbegun* (``SystemDB.transaction(unbegun=True)``; PostgreSQL only) sends nothing when
it opens: the driver is in autocommit, and

- a statement marked ``ALONE_READ`` runs on its own. PostgreSQL's isolation level
  (READ COMMITTED) gives every statement of a transaction its own snapshot anyway, so a
  read before the transaction has written sees what it would have seen inside it;
- a statement marked ``ALONE_WRITE`` runs on its own as well, while the transaction
  allows it (:func:`carried`): it must then be the transaction's last write, and it
  carries the rows written later (:func:`core.db.insert_later`, the audit row) in the
  same statement, inserted only if it changes something. A layer that will write more
  after it says so first (:func:`write_more`);
- any other statement begins the transaction at the database, and from there on all is
  as usual.

A statement that would follow a write that committed on its own raises RuntimeError:
that is a layer that did not call :func:`write_more`, a bug, never a client's doing.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Engine, Table

#: The execution option that marks a statement that may run outside the transaction.
ALONE = "mware_iam_alone"
ALONE_READ = {ALONE: "read"}
ALONE_WRITE = {ALONE: "write"}


@dataclass(frozen=True)
class PendingRows:
    """Rows of ``columns`` to insert into ``table`` before the transaction commits."""

    table: Table
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


@dataclass(eq=False)
class Ambient:
    """A transaction open on ``conn``, a connection of ``engine``."""

    engine: Engine
    conn: Connection
    #: What runs once it has committed.
    after: list[Callable[[], None]] = field(default_factory=list)
    #: Rows inserted at the commit, unless a statement run alone carried them.
    pending: list[PendingRows] = field(default_factory=list)
    #: Nothing has begun at the database yet: the driver is in autocommit.
    unbegun: bool = False
    #: A statement marked ALONE_WRITE may run alone (no layer said it writes more).
    last_write_open: bool = False
    #: One did, and changed something: the transaction is over at the database.
    closed: bool = False

    @property
    def may_write_alone(self) -> bool:
        """Whether a statement marked ALONE_WRITE runs alone if it runs now."""
        return self.unbegun and self.last_write_open and not self.closed


_current: contextvars.ContextVar[Ambient | None] = contextvars.ContextVar(
    "mware_iam_ambient_transaction", default=None)


def current(engine: Engine) -> Ambient | None:
    """The transaction open on ``engine`` in this context, if any."""
    ambient = _current.get()
    return ambient if ambient is not None and ambient.engine is engine else None


def current_connection(engine: Engine) -> Connection | None:
    """The connection of the ambient transaction on ``engine``, if one is open."""
    ambient = current(engine)
    return None if ambient is None else ambient.conn


def unbegun_on(conn: Connection) -> Ambient | None:
    """The ambient transaction if it is open on ``conn`` and has not begun yet."""
    ambient = _of(conn)
    return ambient if ambient is not None and ambient.unbegun else None


def _of(conn: Connection) -> Ambient | None:
    """The ambient transaction if it is open on ``conn``."""
    ambient = _current.get()
    return ambient if ambient is not None and ambient.conn is conn else None


def open_on(ambient: Ambient) -> contextvars.Token[Ambient | None]:
    """Publish ``ambient``; an unbegun one puts its driver connection in autocommit."""
    if ambient.unbegun:
        raw = _driver(ambient.conn)
        if raw.info.transaction_status == TransactionStatus.IDLE:
            raw.autocommit = ambient.last_write_open = True
        else:  # a transaction the connection's last user left open: it goes on in it
            ambient.unbegun = False
    return _current.set(ambient)


def close(ambient: Ambient, token: contextvars.Token[Ambient | None]) -> None:
    """Take ``ambient`` back; its driver connection leaves autocommit, or, when it was
    lost meanwhile, is never handed out again (a lost connection's error stays the one
    the caller sees)."""
    _current.reset(token)
    if not ambient.unbegun:
        return
    ambient.unbegun = False
    if ambient.conn.invalidated:  # SQLAlchemy found it lost: the pool replaces it
        return
    try:
        _driver(ambient.conn).autocommit = False
    except psycopg.Error:
        ambient.conn.invalidate()


def _begin_now(conn: Connection, ambient: Ambient) -> None:
    """Make the next statement on ``conn`` begin ``ambient``, unbegun, at the database
    (the driver sends ``BEGIN`` with it)."""
    if ambient.closed:
        raise RuntimeError("a write after the transaction's last one, which committed on "
                           "its own: the layer that writes more must say so "
                           "(core.ambient.write_more) before that one")
    ambient.unbegun = False
    _driver(conn).autocommit = False


def write_more(conn: Connection) -> None:
    """Say that the transaction on ``conn`` writes more after its next write, which may
    then not run on its own."""
    ambient = _of(conn)
    if ambient is not None:
        ambient.last_write_open = False


def carried(conn: Connection) -> list[PendingRows] | None:
    """The pending rows a statement marked ALONE_WRITE carries if it runs now, or None
    when it would not run alone (then it runs in the transaction, and they at the commit).
    After it ran, :func:`carried_done` says whether it changed something."""
    ambient = _of(conn)
    return ambient.pending if ambient is not None and ambient.may_write_alone else None


def carried_done(conn: Connection, changed: bool) -> None:
    """The statement run alone changed something (and inserted the rows it carried, and
    committed), or nothing (then nothing is committed and all goes on as before)."""
    ambient = _of(conn)
    if ambient is not None and changed:
        ambient.pending.clear()
        ambient.closed = True


def begin_unless_alone(conn: Connection, _cursor: Any, _statement: str, _parameters: Any,
                       context: Any, _executemany: bool) -> None:
    """``before_cursor_execute`` of PostgreSQL engines: the statement runs alone when it
    may, or begins the transaction (see the module's docstring)."""
    ambient = _current.get()
    if ambient is None or ambient.conn is not conn or not ambient.unbegun:
        return
    alone = context.execution_options.get(ALONE) if context is not None else None
    if alone == "read" or (alone == "write" and ambient.may_write_alone):
        return
    _begin_now(conn, ambient)


def _driver(conn: Connection) -> Any:
    return conn.connection.driver_connection
