"""Store searches stop: a time limit in the database and cancellation when the client has
gone, on SQLite, PostgreSQL and MariaDB; and the statement cache stays bounded."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, text

from core.db import SystemDB
from core.errors import TooManyMatches
from core.iam import Iam
from core.identity.events import Initiator
from core.userstores import query as q
from core.userstores.deadlines import DEADLINES
from core.userstores.query_guard import Cancellation, Cancelled, current_cancellation, guarded
from core.userstores.sql_query import STATEMENTS, ShapeCache, _user_statements, comparisons, shape
from tests.servers import database_url

#: A statement that runs for minutes on every backend unless stopped.
ENDLESS = text("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c "
               "WHERE n < 2000000000) SELECT count(*) FROM c")


def _endless_recursion(conn: Connection) -> None:
    if conn.dialect.name == "mysql":  # MariaDB stops a recursion at 1,000 by default
        conn.exec_driver_sql("SET SESSION max_recursive_iterations = 4294967295")


def test_a_statement_past_its_time_is_stopped_and_the_connection_lives_on(iam: Iam) -> None:
    with iam.db.engine.connect() as conn:
        _endless_recursion(conn)
        started = time.monotonic()
        with pytest.raises(TooManyMatches, match=r"longer than 0\.3 s"), \
                guarded(conn, 0.3) as options:
            conn.execute(ENDLESS, execution_options=options).scalar()
        assert time.monotonic() - started < 5
        conn.rollback()
        with guarded(conn, 5) as options:  # a quick statement under a limit runs
            assert conn.execute(text("SELECT 1"), execution_options=options).scalar() == 1
        assert conn.execute(text("SELECT 2")).scalar() == 2  # and no limit stays behind


@pytest.mark.parametrize("commit", [True, False])
def test_a_limit_at_the_start_of_a_transaction_holds_in_it_alone(iam: Iam, commit: bool
                                                                  ) -> None:
    """The first statement of a transaction under a limit (on PostgreSQL sent with the
    transaction's BEGIN): the limit stops a long statement, the transaction around it
    commits or rolls back what it wrote, and no limit stays behind."""
    with iam.db.engine.connect() as conn:
        _endless_recursion(conn)
        conn.commit()
        with conn.begin() as transaction:
            with guarded(conn, 0.3) as options:
                assert conn.execute(text("SELECT 1"), execution_options=options).scalar() == 1
            conn.execute(text("INSERT INTO config_versions (kind, version) "
                              "VALUES ('guard-test', 7)"))
            if not commit:
                transaction.rollback()
        with conn.begin(), pytest.raises(TooManyMatches, match=r"longer than 0\.3 s"), \
                    guarded(conn, 0.3) as options:
            conn.execute(ENDLESS, execution_options=options).scalar()
    with iam.db.engine.connect() as other:
        assert other.execute(text("SELECT version FROM config_versions "
                                  "WHERE kind = 'guard-test'")).scalar() == \
            (7 if commit else None)
        assert other.execute(text("SELECT 2")).scalar() == 2
        if other.dialect.name == "postgresql":
            assert other.execute(text("SHOW statement_timeout")).scalar() == "0"


def test_a_search_is_cancelled_when_its_client_has_gone(iam: Iam) -> None:
    cancellation = Cancellation()
    outcome: list[BaseException] = []

    def search() -> None:
        current_cancellation.set(cancellation)
        try:
            with iam.db.engine.connect() as conn:
                _endless_recursion(conn)
                with guarded(conn, 60) as options:
                    conn.execute(ENDLESS, execution_options=options).scalar()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=search)
    thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    cancellation.cancel()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - started < 5
    assert isinstance(outcome[0], Cancelled), outcome
    with pytest.raises(Cancelled), iam.db.engine.connect() as conn:  # no new one starts
        current_cancellation.set(cancellation)
        try:
            with guarded(conn):
                pass
        finally:
            current_cancellation.set(None)


def test_store_searches_run_guarded(iam: Iam) -> None:
    iam.identity.add_user(Initiator.admin(), "ann")
    ann = q.Compare(q.NAME, q.Op.EQ, "ann")
    assert iam.identity.search_users("PRIMARY", ann, 0, 10).total == 1
    cancellation = Cancellation()
    cancellation.cancel()
    token = current_cancellation.set(cancellation)
    try:
        with pytest.raises(Cancelled):
            iam.identity.search_users("PRIMARY", ann, 0, 10)
    finally:
        current_cancellation.reset(token)


def _or_of(n: int, k: int) -> q.Query:
    return q.Or(tuple(q.Compare(q.attribute(f"a{k}.{i}"), q.Op.EQ, "x") for i in range(n)))


def test_the_statement_cache_is_bounded_by_what_it_holds() -> None:
    cache = ShapeCache(budget=100, largest=10)
    small = [shape(_or_of(5, k))[0] for k in range(30)]
    for s in small:
        cache.get(s, comparisons(s), lambda s=s: _user_statements(s, None))
    assert cache.held <= 100 and len(cache._entries) == 20
    big = shape(_or_of(11, 0))[0]
    built = cache.get(big, comparisons(big), lambda: _user_statements(big, None))
    assert not built.cached and built.options == {"compiled_cache": None}
    assert cache.held <= 100


def test_a_large_shape_fills_no_cache(sqlite_iam: Iam) -> None:
    STATEMENTS.clear()
    engine = sqlite_iam.db.engine
    before = len(engine._compiled_cache)  # type: ignore[attr-defined]
    store = sqlite_iam.stores.store("PRIMARY")
    for k in range(5):
        assert store.search_users(_or_of(40, k), 0, 10).total == 0
    assert STATEMENTS.held == 0
    assert len(engine._compiled_cache) == before  # type: ignore[attr-defined]
    store.search_users(_or_of(3, 0), 0, 10)
    assert STATEMENTS.held == 3


def test_a_search_in_an_unbegun_transaction_runs_alone_and_stops_at_its_deadline(
        tmp_path: Path) -> None:
    """On PostgreSQL a SCIM GET's search runs outside any transaction (one round trip):
    no ``SET LOCAL`` can limit it there, so the deadline thread's cancel request does."""
    with database_url("postgresql", str(tmp_path)) as url:
        db = SystemDB(url)
        try:
            with db.transaction(unbegun=True) as conn:
                raw = conn.connection.driver_connection
                with guarded(conn, 5) as options:
                    assert conn.execute(text("SELECT 1"), execution_options=options
                                        ).scalar() == 1
                assert raw.info.transaction_status == TransactionStatus.IDLE  # alone
                started = time.monotonic()
                with pytest.raises(TooManyMatches, match=r"longer than 0\.3 s"), \
                        guarded(conn, 0.3) as options:
                    conn.execute(ENDLESS, execution_options=options).scalar()
                assert 0.3 <= time.monotonic() - started < 5
                assert conn.execute(text("SELECT 2")).scalar() == 2  # and it lives on
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "0"
        finally:
            db.dispose()


def test_a_statement_that_ended_is_never_stopped_later() -> None:
    """The deadline of a statement that finished in time is dropped: the thread does not
    stop whatever its connection runs next."""
    stopped: list[str] = []
    with DEADLINES.watching(time.monotonic() + 0.05, lambda: stopped.append("early")):
        pass
    with DEADLINES.watching(time.monotonic() + 0.05, lambda: stopped.append("late")):
        time.sleep(0.6)
    time.sleep(0.3)
    assert stopped == ["late"]
