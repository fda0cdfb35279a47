"""The system database: engine, migrations on start, and the ambient transaction.

``SystemDB.transaction()`` opens one transaction and publishes its connection in a context
variable, so that the PRIMARY userstore, the audit log and later the outbox join the same
transaction without every call passing a connection around.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

import psycopg
from psycopg.pq import ExecStatus
from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    Engine,
    Executable,
    String,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, OperationalError

from core import ambient, encoded_json
from core.ambient import ALONE_WRITE, Ambient, PendingRows
from core.errors import InvalidInput, StoreUnavailable
from core.home import private

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    # The busy timeout is pysqlite's ``timeout``: 5 s, or ``?timeout=SECONDS`` in the URL.
    cur.close()


#: One lock per SQLite file, shared by every engine of this process on it.
_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()
_READS = ("SELECT", "PRAGMA", "EXPLAIN")


class _QueuedWriterConnection(sqlite3.Connection):
    """A SQLite connection whose transactions queue for the file's one writer in-process.

    SQLite lets one transaction at a time write. One that finds the file locked waits in
    pysqlite's busy handler, which sleeps 1, 2, 5, 10, ... ms between tries, so threads of
    one process that write at once (the SCIM server's requests, the console, the workers)
    wait far longer than the writes take. Here a transaction takes the file's lock at its
    first write and gives it back when it commits or rolls back, so the next writer starts
    at once; another process still meets the busy handler. Waiting for the lock is bounded
    by the busy timeout, after which the write goes on and SQLite decides as before."""

    write_lock: threading.Lock
    busy_timeout: float
    _holds = False

    def before_write(self) -> None:
        if not self._holds:
            self._holds = self.write_lock.acquire(timeout=self.busy_timeout)

    def _release(self) -> None:
        if self._holds:
            self._holds = False
            self.write_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()


def _queue_writes(engine: Engine, path: str, busy_timeout: float) -> None:
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.setdefault(str(Path(path).resolve()), threading.Lock())

    @event.listens_for(engine, "connect")
    def bind(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.write_lock, dbapi_conn.busy_timeout = lock, busy_timeout

    @event.listens_for(engine, "before_cursor_execute")
    def before(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip()[:7].upper().startswith(_READS):
            cursor.connection.before_write()


#: Threads of the SCIM server's lane for SQL stores on a database server, each holding a
#: connection for as long as it runs (``core.inbound.app.SERVER_LANE_THREADS``, where the
#: number is measured); counted here so that the pool keeps room for the other threads.
LANE_CONNECTIONS = 4
#: Connections a PostgreSQL or MariaDB engine keeps: as many as the threads of a busy
#: ``serve`` use at once (the SCIM lane's, the event loop's default executor's
#: ``min(32, cpus + 4)`` for LDAP stores, Bulk and token checks, one for the worker pool,
#: a few more for the rest). With SQLAlchemy's 5, the SCIM server's requests opened and
#: closed overflow connections all the time: a new backend (milliseconds of PostgreSQL's
#: CPU) and its prepared statements each time. Beyond these, as many again are opened as
#: needed and closed when handed back.
KEPT_CONNECTIONS = LANE_CONNECTIONS + min(32, (os.cpu_count() or 1) + 4) + 4


def make_engine(url: str) -> Engine:
    """An engine for any SQLAlchemy URL; SQLite files get WAL mode and foreign keys."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(f"database URL {url!r} is not a valid SQLAlchemy URL") from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername in ("mysql", "mariadb"):
        parsed = parsed.set(drivername="mysql+pymysql")
    # JSON columns store an EncodedJSON (an attempt's exchanges) from its own text
    kwargs: dict[str, Any] = {"future": True, "json_serializer": encoded_json.dumps}
    queued_file = None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            queued_file = parsed.database
            kwargs["connect_args"] = {"factory": _QueuedWriterConnection}
            _private_sqlite_file(Path(parsed.database))
            # Connections are kept (opening one costs the PRAGMAs and, on close, a WAL
            # checkpoint: ~2 ms, a third of a SCIM request); beyond 16 at once more are
            # opened as needed, so a burst of threads never waits for one.
            kwargs["pool_size"] = 16
            kwargs["max_overflow"] = -1
    else:
        # The connection used last is taken first, so under load the same few stay busy
        # and only one that sat idle is pinged (``_ping_when_idle``).
        kwargs["pool_use_lifo"] = True
        kwargs["pool_size"], kwargs["max_overflow"] = KEPT_CONNECTIONS, KEPT_CONNECTIONS
        if parsed.get_backend_name() == "mysql":
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    try:
        engine = create_engine(parsed, **kwargs)
    except Exception as exc:  # unknown dialect, missing driver
        raise InvalidInput(f"cannot use database URL {_redacted(url)}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        _ping_when_idle(engine)
    if engine.dialect.driver == "psycopg":
        event.listen(engine, "connect", _described_cursors)
        event.listen(engine, "before_cursor_execute", ambient.begin_unless_alone)
    if queued_file is not None:
        timeout = parsed.query.get("timeout", "5")  # pysqlite's default; create_engine checked it
        _queue_writes(engine, queued_file, float(timeout if isinstance(timeout, str)
                                                 else timeout[-1]))
    return engine


#: The result shapes whose ``Cursor.description`` is kept; past this many it starts anew.
DESCRIPTIONS_KEPT = 1024
_DESCRIPTIONS: dict[tuple[tuple[bytes | None, int, int, int], ...], list[Any]] = {}
_SELECTING = (ExecStatus.TUPLES_OK, ExecStatus.SINGLE_TUPLE)


class _DescribedCursor(psycopg.Cursor[Any]):
    """psycopg's cursor, whose ``description`` is made once per result shape (each
    column's name, type, modifier and size) instead of once per statement. SQLAlchemy reads
    it on every statement that returns rows, and psycopg builds it anew each time (a
    ``Column`` per column, its type looked up): some 7 us of a 70 us statement of five
    columns."""

    @property
    def description(self) -> list[Any] | None:
        res = self.pgresult
        if res is None or (not res.nfields and res.status not in _SELECTING):
            return super().description
        shape = tuple((res.fname(i), res.ftype(i), res.fmod(i), res.fsize(i))
                      for i in range(res.nfields))
        columns = _DESCRIPTIONS.get(shape)
        if columns is None:
            columns = super().description or []
            if len(_DESCRIPTIONS) >= DESCRIPTIONS_KEPT:
                _DESCRIPTIONS.clear()
            _DESCRIPTIONS[shape] = columns
        return list(columns)


def _described_cursors(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.cursor_factory = _DescribedCursor


#: A pooled connection idle this long is pinged before it is handed out.
IDLE_PING_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """``pool_pre_ping`` for connections that sat in the pool: a server restart or an idle
    timeout drops those, and the ping replaces them before a request uses one. One handed
    back moments ago is not pinged: the ping is a round trip (a sixth of a SCIM POST's on
    PostgreSQL) and a connection lost since fails its statement as it would mid-request
    anyway, which invalidates the pool's older connections."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return  # new, or busy moments ago
        if not _answers(dialect, dbapi_conn):
            raise DisconnectionError("the pooled connection is gone")  # the pool reconnects


def _answers(dialect: Any, dbapi_conn: Any) -> bool:
    """Whether a driver connection's server answers a ping (False: it dropped it)."""
    try:
        return bool(dialect.do_ping(dbapi_conn))
    except dialect.loaded_dbapi.Error as exc:
        if not dialect.is_disconnect(exc, dbapi_conn, None):
            raise
        return False


def _private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 (SQLite gives its -wal and -shm files the database's
    mode) and tighten the files of an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists():
            private(name, 0o600)


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


class SystemDB:
    """The system database of one deployment."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.safe_url = _redacted(url)
        self.engine = make_engine(url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (called on every start)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        try:
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except (OperationalError, DBAPIError) as exc:
            raise StoreUnavailable(
                f"system database {self.safe_url} is unreachable or locked: {_first_line(exc)}"
            ) from exc

    def table_names(self) -> set[str]:
        return set(inspect(self.engine).get_table_names())

    def setting_warnings(self) -> list[str]:
        """What the database server is set to that degrades this deployment, each said
        for an administrator (``serve`` logs them at start). PostgreSQL with autovacuum
        off analyzes a table only when asked: a store that grows by SCIM keeps the
        statistics of its size at the last import (``SqlUserStore.bulk_loaded``), or
        none, and a lookup by name may then read every user of the store."""
        if self.dialect != "postgresql":
            return []
        with self.engine.connect() as conn:
            autovacuum = conn.exec_driver_sql("SHOW autovacuum").scalar()
        if autovacuum == "off":
            return ["PostgreSQL runs with autovacuum off: tables are analyzed only by "
                    "an import, so searches slow down as the stores grow; turn it on "
                    "(the server's default) or run ANALYZE from time to time"]
        return []

    def connect(self) -> Connection:
        """A connection for a caller to keep across many transactions
        (``transaction(on=...)``); StoreUnavailable when none can be made."""
        try:
            return self.engine.connect()
        except (OperationalError, DBAPIError) as exc:
            raise StoreUnavailable(
                f"system database {self.safe_url} is unreachable: {_first_line(exc)}"
            ) from exc

    def kept(self, conn: Connection | None, idle: float) -> Connection:
        """The connection a thread keeps between its transactions
        (``transaction(on=...)``): ``conn`` itself, unless there is none, it was closed or
        invalidated, or it sat unused for ``idle`` seconds, at least IDLE_PING_SECONDS
        (after which the pool pings its own), and its server no longer answers a ping (a
        restart, an idle timeout); then a new one."""
        if conn is not None and not conn.closed and not conn.invalidated:
            if idle < IDLE_PING_SECONDS or \
                    _answers(self.engine.dialect, conn.connection.dbapi_connection):
                return conn
            conn.invalidate()  # its server did not answer: not back to the pool
        if conn is not None:
            conn.close()
        return self.connect()

    @contextlib.contextmanager
    def transaction(self, on: Connection | None = None, *, unbegun: bool = False
                    ) -> Iterator[Connection]:
        """Join the ambient transaction, or open one that commits when the block ends.

        ``on``: a connection of this engine that the caller keeps open between its
        transactions (a worker's database thread runs many small ones; connecting for
        each costs more than the work in it on SQLite). It is used from one thread only.

        ``unbegun``: on PostgreSQL, open it without beginning it at the database, so its
        reads and its last write may run alone (``core.ambient``: a SCIM request's
        transaction, one round trip instead of up to five).
        """
        if (joined := ambient.current(self.engine)) is not None:
            yield joined.conn
            return
        try:
            if on is None:
                conn_cm: Any = self.engine.begin()
                conn = conn_cm.__enter__()
            else:
                conn_cm, conn = on.begin(), on
                conn_cm.__enter__()
        except (OperationalError, DBAPIError) as exc:
            raise StoreUnavailable(
                f"system database {self.safe_url} is unreachable: {_first_line(exc)}"
            ) from exc
        opened = Ambient(self.engine, conn,
                         unbegun=unbegun and self.engine.dialect.driver == "psycopg")
        token = ambient.open_on(opened)
        try:
            yield conn
            _insert_pending(opened)
        except BaseException as exc:
            ambient.close(opened, token)
            conn_cm.__exit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, OperationalError):  # locked (busy timeout) or connection lost
                raise StoreUnavailable(
                    f"system database {self.safe_url} is unreachable or locked: "
                    f"{_first_line(exc)}"
                ) from exc
            raise
        ambient.close(opened, token)
        try:
            conn_cm.__exit__(None, None, None)
        except (OperationalError, DBAPIError) as exc:
            raise StoreUnavailable(
                f"system database {self.safe_url} refused the commit: {_first_line(exc)}"
            ) from exc
        for callback in opened.after:
            callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the outermost transaction has committed (never on a
        rollback); with no transaction open, run it now."""
        joined = ambient.current(self.engine)
        if joined is not None:
            joined.after.append(callback)
        else:
            callback()

    def wrote_alone(self) -> bool:
        """Whether the ambient transaction's last write has committed alone
        (``core.ambient``): whoever was asked before it (``EventBus.wants``) had said it
        would not write."""
        joined = ambient.current(self.engine)
        return joined is not None and joined.closed

    def writes_more(self) -> None:
        """Say that the ambient transaction writes more after its next write
        (``core.ambient.write_more``)."""
        if (joined := ambient.current(self.engine)) is not None:
            ambient.write_more(joined.conn)

    def dispose(self) -> None:
        self.engine.dispose()


#: Ids per ``IN (...)`` of a batched read (well under every backend's parameter limit).
IN_CHUNK = 500


def in_chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    """The distinct ``ids`` in slices of at most ``IN_CHUNK``, for batched ``IN`` reads."""
    distinct = list(dict.fromkeys(ids))
    for i in range(0, len(distinct), IN_CHUNK):
        yield distinct[i:i + IN_CHUNK]


class InStatement:
    """A statement with one ``column IN (:name)`` list of strings or integers, built once
    in three forms.

    SQLAlchemy writes an expanding list's placeholders into the compiled SQL on every
    execution (some 12 us a statement on SQLite); a list of one, the usual case of a
    request about one user, is sent as ``column = :name`` instead, which needs none of
    that, and on SQLite a longer list goes as one JSON text that the statement reads with
    ``json_each`` (a worker's batch of users: 34 -> 18 us a statement). ``build`` makes the
    statement around the criterion it is given."""

    def __init__(self, build: Callable[[ColumnElement[bool]], Executable],
                 column: ColumnElement[Any], name: str) -> None:
        self.name = name
        self.many = build(column.in_(bindparam(name, expanding=True)))
        self.one = build(column == bindparam(name))
        self.listed = build(column.in_(select(literal_column("value")).select_from(
            func.json_each(bindparam(name, type_=String())))))

    def execute(self, conn: Connection, params: dict[str, Any]) -> CursorResult[Any]:
        values = params[self.name]
        if len(values) == 1:
            return conn.execute(self.one, {**params, self.name: values[0]})
        if conn.dialect.name == "sqlite":
            return conn.execute(self.listed, {**params, self.name: json.dumps(list(values))})
        return conn.execute(self.many, params)


#: Compiled inserts of :func:`insert_rows` and :func:`insert_row`: by table, columns,
#: dialect, rows per statement and the key replaced on conflict, the statement and what
#: turns a row into the driver's parameters (each value through its column's converter,
#: in the order the driver takes them).
_INSERTS: dict[tuple[str, tuple[str, ...], str, int, tuple[str, ...]],
               tuple[str, Callable[[tuple[Any, ...]], Any]]] = {}
#: At most this many rows go in one multi-row INSERT (see :func:`insert_rows`).
MULTI_ROW_INSERT = 16
#: The dialects whose inserts can replace a row whose unique key is taken
#: (``insert_rows(..., replacing=...)``).
_REPLACING_INSERTS: dict[str, Callable[[Table], Any]] = {
    "sqlite": sqlite.insert, "postgresql": postgresql.insert, "mysql": mysql.insert,
    "mariadb": mysql.insert}


def insert_rows(conn: Connection, table: Table, columns: tuple[str, ...],
                rows: Sequence[tuple[Any, ...]], replacing: tuple[str, ...] = (),
                options: Mapping[str, Any] | None = None) -> None:
    """``conn.execute(insert(table), rows)`` for many rows of ``columns``, cheaper.

    ``replacing``: the columns of a unique key of ``table``; a row whose key is taken
    replaces the stored row's other ``columns`` (``ON CONFLICT ... DO UPDATE`` on SQLite
    and PostgreSQL, ``ON DUPLICATE KEY UPDATE`` on MariaDB).

    The statement is compiled once per dialect; each value goes through its column type's
    bind processor (the converters Core applies: UTC times, JSON), and the rows go to the
    driver's ``executemany`` as they are. Core's per-row parameter handling (a few
    microseconds a row: a tenth of a bulk import) is skipped, and so are Python-side
    column defaults: every column that has one must be in ``columns``.

    On PostgreSQL a few rows (a user's attributes) go as one multi-row INSERT instead:
    psycopg's ``executemany`` runs a pipeline (a statement per row and a sync), some 150 us
    more CPU for three rows than the one statement.

    ``options``: the statement's execution options.
    """
    if 1 < len(rows) <= MULTI_ROW_INSERT and conn.dialect.name == "postgresql":
        sql, to_driver = _compiled_insert(conn, table, columns, len(rows), replacing)
        conn.exec_driver_sql(sql, to_driver(tuple(v for row in rows for v in row)), options)
        return
    sql, to_driver = _compiled_insert(conn, table, columns, 1, replacing)
    if len(rows) == 1:  # psycopg's executemany would run a pipeline for it
        conn.exec_driver_sql(sql, to_driver(rows[0]), options)
        return
    conn.exec_driver_sql(sql, [to_driver(row) for row in rows], options)


def insert_later(conn: Connection, table: Table, columns: tuple[str, ...],
                 rows: Sequence[tuple[Any, ...]]) -> None:
    """:func:`insert_rows`, in an unbegun transaction (``core.ambient``) at its commit or
    carried by the statement it runs alone; elsewhere now."""
    opened = ambient.unbegun_on(conn)
    if opened is None:
        insert_rows(conn, table, columns, rows)
        return
    opened.pending.append(PendingRows(table, columns, list(rows)))


def _insert_pending(opened: Ambient) -> None:
    """The rows ``insert_later`` kept, inserted as the transaction ends. One insert that
    is all a transaction writes runs alone: it is its last write."""
    pending, opened.pending = opened.pending, []
    options = None
    if len(pending) == 1 and opened.unbegun:
        opened.last_write_open = True
        options = ALONE_WRITE
    for rows in pending:
        insert_rows(opened.conn, rows.table, rows.columns, rows.rows, options=options)


#: Per table of rows a statement carries: the table, the columns and how many rows.
CarriedShape = tuple[tuple[Table, tuple[str, ...], int], ...]


def carrying(statement: Any, anchor: Any, shape: CarriedShape) -> Any:
    """``statement`` with the inserts of rows of ``shape`` (``carried_shape``: per table,
    the columns and how many rows) as data-modifying CTEs, each row inserted once per row
    of ``anchor`` (a CTE of the statement that returns one row when it changed something,
    none otherwise); their values are the parameters ``carried_values`` names."""
    for i, (table, columns, count) in enumerate(shape):
        rows = [select(*(bindparam(f"carried_{i}_{j}_{k}", type_=table.c[column].type)
                         for k, column in enumerate(columns))).select_from(anchor)
                for j in range(count)]
        statement = statement.add_cte(insert(table).from_select(
            list(columns), rows[0] if count == 1 else union_all(*rows)
        ).cte(f"carried_{i}"))
    return statement


def carried_shape(carried: Sequence[PendingRows]) -> CarriedShape:
    return tuple((rows.table, rows.columns, len(rows.rows)) for rows in carried)


def carried_values(carried: Sequence[PendingRows]) -> dict[str, Any]:
    return {f"carried_{i}_{j}_{k}": value for i, rows in enumerate(carried)
            for j, row in enumerate(rows.rows) for k, value in enumerate(row)}


def insert_row(conn: Connection, table: Table, columns: tuple[str, ...],
               row: tuple[Any, ...]) -> None:
    """One row as :func:`insert_rows` inserts many, through the driver's ``execute``
    (an audit row per write: 14 us instead of Core's 25 on SQLite)."""
    insert_rows(conn, table, columns, (row,))


def _compiled_insert(conn: Connection, table: Table, columns: tuple[str, ...],
                     rows: int = 1, replacing: tuple[str, ...] = ()
                     ) -> tuple[str, Callable[[tuple[Any, ...]], Any]]:
    """The insert of ``rows`` rows of ``columns`` into ``table`` (replacing on a conflict
    of the key ``replacing``) compiled for ``conn``'s dialect, and what turns their values,
    row after row, into the driver's parameters."""
    key = (table.name, columns, conn.dialect.name, rows, replacing)
    compiled = _INSERTS.get(key)
    if compiled is None:
        compiled = _INSERTS[key] = _compile_insert(conn.dialect, table, columns, rows,
                                                   replacing)
    return compiled


def _is_time(column: ColumnElement[Any]) -> bool:
    try:
        return issubclass(column.type.python_type, datetime)
    except NotImplementedError:
        return False


#: A value no row holds (``_compile_insert``'s last converted value before the first).
_NOTHING = object()


def _insert(dialect: Any, table: Table, columns: tuple[str, ...], rows: int,
            replacing: tuple[str, ...]) -> Any:
    """The insert statement of ``_compile_insert``: ``rows`` rows (more than one: a
    multi-row VALUES of parameters ``column_0``, ``column_1``, ...), replacing the other
    ``columns`` of a row whose key ``replacing`` is taken."""
    # inline(): no RETURNING of the generated key (PostgreSQL and MariaDB would add it).
    statement: Any = (_REPLACING_INSERTS[dialect.name] if replacing else insert)(table).inline()
    if rows > 1:
        statement = statement.values([
            {c: bindparam(f"{c}_{i}", type_=table.c[c].type) for c in columns}
            for i in range(rows)])
    if not replacing:
        return statement
    return replacing_on_conflict(statement, dialect.name, table, replacing,
                                 [c for c in columns if c not in replacing])


def replacing_on_conflict(statement: Any, dialect_name: str, table: Table,
                          key: tuple[str, ...], replaced: Sequence[str]) -> Any:
    """``statement``, an insert of ``dialect_name``'s own ``insert``, that replaces the
    ``replaced`` columns of the stored row when its unique key ``key`` is taken."""
    if dialect_name in ("mysql", "mariadb"):
        return statement.on_duplicate_key_update(
            {c: statement.inserted[c] for c in replaced})
    return statement.on_conflict_do_update(
        index_elements=[table.c[c] for c in key],
        set_={c: statement.excluded[c] for c in replaced})


#: Statements of :func:`execute_compiled` compiled, by statement and dialect (as
#: ``_INSERTS``).
_COMPILED: dict[tuple[Executable, str], tuple[str, Callable[[tuple[Any, ...]], Any]]] = {}


def execute_compiled(conn: Connection, statement: Executable, table: Table,
                     columns: tuple[str, ...], row: tuple[Any, ...]) -> CursorResult[Any]:
    """``conn.execute(statement, dict(zip(columns, row)))`` for a statement whose
    parameters are the ``columns`` of ``table`` (an insert of one row that returns its
    key, say), as :func:`insert_rows` runs its inserts: compiled once per dialect, the
    values through their columns' converters straight to the driver. Core's execution of
    a statement (its cache key, parameter processing) costs more than the statement does
    on SQLite."""
    key = (statement, conn.dialect.name)
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = _COMPILED[key] = _compile_statement(conn.dialect, statement, table,
                                                       columns, 1)
    sql, to_driver = compiled
    return conn.exec_driver_sql(sql, to_driver(row))


def _compile_insert(dialect: Any, table: Table, columns: tuple[str, ...], rows: int,
                    replacing: tuple[str, ...] = ()
                    ) -> tuple[str, Callable[[tuple[Any, ...]], Any]]:
    if any(c.default is not None for c in table.c if c.name not in columns):
        raise ValueError(f"insert_rows into {table.name}: a column with a default "
                         "is left out")
    return _compile_statement(dialect, _insert(dialect, table, columns, rows, replacing),
                              table, columns, rows)


def _compile_statement(dialect: Any, statement: Any, table: Table, columns: tuple[str, ...],
                       rows: int) -> tuple[str, Callable[[tuple[Any, ...]], Any]]:
    """``statement`` compiled for ``dialect``, and what turns the values of its ``rows``
    rows of ``columns`` (parameters ``column`` for one row, ``column_0``, ``column_1``, ...
    for more), row after row, into the driver's parameters."""
    names = [f"{c}_{i}" if rows > 1 else c for i in range(rows) for c in columns]
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    order = tuple(compiled.positiontup) if compiled.positiontup is not None else None
    converters = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect)
                  for c in columns] * rows
    times = [_is_time(table.c[c]) for c in columns] * rows
    at = _reordered([names.index(c) for c in order]) \
        if order not in (None, tuple(names)) else None
    #: Only the columns that have a converter (most have none: ints, strings); those of
    #: times (immutable) with the last value converted and the result, since the rows of
    #: one write share their time, whose conversion costs more than the rest of the row.
    convert = [(i, f, times[i]) for i, f in enumerate(converters) if f is not None]
    last: list[tuple[Any, Any]] = [(_NOTHING, None)] * len(convert)

    def to_driver(row: tuple[Any, ...]) -> Any:
        if convert:
            values = list(row)
            for n, (i, f, is_time) in enumerate(convert):
                value = values[i]
                if not is_time:
                    values[i] = f(value)
                    continue
                seen, converted = last[n]
                if value is not seen:
                    converted = f(value)
                    last[n] = (value, converted)
                values[i] = converted
            row = tuple(values)
        if order is None:  # a named paramstyle: the driver takes dicts
            return dict(zip(names, row, strict=True))
        return row if at is None else at(row)

    return compiled.string, to_driver


def _reordered(positions: list[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """The values of a row in ``positions``' order (``itemgetter`` gives a bare value
    for one position)."""
    if len(positions) == 1:
        return lambda row: (row[positions[0]],)
    return itemgetter(*positions)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
