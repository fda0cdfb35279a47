"""Store searches that stop: a time limit in the database, and cancellation when the client
that asked has gone.

A filter the face accepts can still be expensive (a ``co`` on every user, a large ``or``),
and a SQL query runs on in the database after its HTTP client left (issue 17: 77 s at 5 GB
in one PostgreSQL backend). So every search of a SQL store runs :func:`guarded`:

* PostgreSQL: ``SET LOCAL statement_timeout`` (until the transaction ends; the search's
  transaction, or the SCIM operation's, which only reads after a search); in a
  transaction not begun yet (``core.ambient``: a SCIM GET's) the search runs alone, and
  the driver's cancel request stops it at its deadline (``deadlines.py``);
* MariaDB: ``SET STATEMENT max_statement_time=N FOR SELECT ...`` on the search's statements
  (MySQL: ``max_execution_time``), so no extra round trip;
* SQLite: a progress handler that interrupts the statement past the deadline.

A request that can be abandoned runs inside a :class:`Cancellation` (the SCIM server opens
one per request and cancels it when the client disconnects): each guarded search registers
how to stop its statement there (PostgreSQL: the driver's cancel request; MariaDB: ``KILL
QUERY`` from another connection; SQLite: ``interrupt()``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from psycopg import pq
from sqlalchemy import Connection, event
from sqlalchemy.exc import DBAPIError

from core import ambient
from core.ambient import ALONE_READ
from core.errors import TooManyMatches
from core.userstores.deadlines import DEADLINES

log = logging.getLogger("mware_iam.store")

#: How long one search statement may run in the database.
SEARCH_SECONDS = 15.0

#: SQLite calls the progress handler every this many virtual-machine instructions.
_SQLITE_STEPS = 20_000


class Cancellation:
    """Stops the searches of one request: :meth:`cancel` stops the one running now and
    every one after."""

    def __init__(self) -> None:
        self.cancelled = False
        self._stoppers: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            stoppers = list(self._stoppers)
        for stop in stoppers:
            try:
                stop()
            except Exception:  # the statement may have ended meanwhile
                log.debug("cancelling a search failed", exc_info=True)

    @contextlib.contextmanager
    def stopping(self, stop: Callable[[], None]) -> Iterator[None]:
        with self._lock:
            if self.cancelled:
                raise Cancelled("the client has gone")
            self._stoppers.append(stop)
        try:
            yield
        finally:
            with self._lock:
                self._stoppers.remove(stop)


class Cancelled(TooManyMatches):
    """A search stopped because its client left (nobody reads the answer)."""


#: The cancellation of the request being served, if it can be abandoned.
current_cancellation: ContextVar[Cancellation | None] = ContextVar(
    "store_cancellation", default=None)

_MARIADB_OPTION = "iam_statement_seconds"


def _stopper(conn: Connection) -> Callable[[], None]:
    raw: Any = conn.connection.driver_connection
    name = conn.dialect.name
    if name == "postgresql":
        return lambda: raw.cancel()
    if name == "sqlite":
        return lambda: raw.interrupt()
    thread_id = raw.thread_id()
    engine = conn.engine

    def kill() -> None:
        with engine.connect() as other:
            other.exec_driver_sql(f"KILL QUERY {int(thread_id)}")
    return kill


@contextlib.contextmanager
def guarded(conn: Connection, seconds: float | None = None) -> Iterator[dict[str, Any]]:
    """Run the block's statements within ``seconds`` and the current cancellation; yields
    the execution options to run them with. A statement stopped by either is reported
    as :class:`~core.errors.TooManyMatches` (RFC 7644's ``tooMany``: more than the server
    is willing to process), or :class:`Cancelled`."""
    seconds = SEARCH_SECONDS if seconds is None else seconds
    deadline = time.monotonic() + seconds
    name = conn.dialect.name
    options: dict[str, Any] = {}
    raw: Any = None
    watch: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if name == "postgresql":
        if ambient.unbegun_on(conn) is not None:
            options.update(ALONE_READ)  # one round trip: no BEGIN, SET LOCAL and COMMIT
            watch = DEADLINES.watching(deadline, _stopper(conn))
        else:
            _pg_time_limit(conn, f"SET LOCAL statement_timeout = {int(seconds * 1000)}")
    elif name == "sqlite":
        raw = conn.connection.driver_connection
        cancellation = current_cancellation.get()
        raw.set_progress_handler(
            lambda: int(time.monotonic() > deadline or bool(cancellation
                                                            and cancellation.cancelled)),
            _SQLITE_STEPS)
    elif name in ("mysql", "mariadb"):
        options[_MARIADB_OPTION] = seconds
        # Listened for on these engines alone: an engine with a statement listener takes
        # SQLAlchemy's slower execution path for every statement.
        if not event.contains(conn.engine, "before_cursor_execute", _mariadb_time_limit):
            event.listen(conn.engine, "before_cursor_execute", _mariadb_time_limit,
                         retval=True)
    cancellation = current_cancellation.get()
    try:
        with watch, cancellation.stopping(_stopper(conn)) if cancellation else \
                contextlib.nullcontext():
            yield options
    except DBAPIError as exc:
        if cancellation is not None and cancellation.cancelled:
            raise Cancelled("the client has gone") from exc
        if time.monotonic() >= deadline - 0.05:
            raise TooManyMatches(
                f"the search ran longer than {seconds:g} s and was stopped; "
                "narrow the filter") from exc
        raise
    finally:
        if raw is not None:
            raw.set_progress_handler(None, 0)


def _pg_time_limit(conn: Connection, setting: str) -> None:
    """Run ``setting`` (a ``SET LOCAL``). At the start of a transaction, where psycopg has
    sent nothing yet, it goes with the transaction's ``BEGIN`` in one message: psycopg
    would send the ``BEGIN`` on its own first, one round trip more (a SCIM GET by filter
    has 5 then, where 6 cost the server and PostgreSQL about 4 % more CPU)."""
    raw: Any = conn.connection.driver_connection
    if conn.in_transaction() and not raw.autocommit and \
            raw.info.transaction_status == pq.TransactionStatus.IDLE:
        done = raw.pgconn.exec_(f"BEGIN; {setting}".encode())
        if done.status == pq.ExecStatus.COMMAND_OK:
            return
    # Within a transaction begun already, or after a failure, which psycopg reports
    # (and SQLAlchemy then handles) as for any statement.
    conn.exec_driver_sql(setting)


def _mariadb_time_limit(conn: Connection, cursor: Any, statement: str, parameters: Any,
                        context: Any, executemany: bool) -> tuple[str, Any]:
    """MariaDB's per-statement limit, for the statements :func:`guarded` marks."""
    seconds = context.execution_options.get(_MARIADB_OPTION) if context else None
    if seconds is None:
        return statement, parameters
    if getattr(conn.dialect, "is_mariadb", False):
        return f"SET STATEMENT max_statement_time={float(seconds)} FOR {statement}", \
            parameters
    if not statement.startswith("SELECT "):  # MySQL's hint follows the SELECT keyword
        return statement, parameters
    return f"SELECT /*+ MAX_EXECUTION_TIME({int(seconds * 1000)}) */ " + \
        statement.removeprefix("SELECT "), parameters
