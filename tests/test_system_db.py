"""The home, the system database URL, SQLite settings, and failures to reach a database."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError

from core import db as system_db
from core.db import SystemDB, make_engine
from core.errors import InvalidInput, StoreUnavailable
from core.home import DB_ENV, HOME_ENV, Home, default_home
from core.iam import Iam
from core.identity.events import Initiator
from core.schema import um_user_attributes
from tests.conftest import FAST_ARGON2
from tests.servers import database_url

SECRET = "topsecret"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in (HOME_ENV, DB_ENV, "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    return monkeypatch


# ---------------------------------------------------------------- home and URL
def test_home_from_mware_iam_home(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv(HOME_ENV, str(tmp_path / "iam-home"))
    clean_env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_home() == tmp_path / "iam-home"
    clean_env.setenv(HOME_ENV, "~/iam")
    assert default_home() == tmp_path / "user" / "iam"


def test_home_from_xdg_data_home(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_home() == tmp_path / "xdg" / "mware-iam"


def test_home_defaults_to_local_share(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert default_home() == tmp_path / "user" / ".local" / "share" / "mware-iam"
    clean_env.setenv("XDG_DATA_HOME", "")  # empty counts as unset
    assert default_home() == tmp_path / "user" / ".local" / "share" / "mware-iam"


def test_default_database_is_sqlite_in_the_home(clean_env: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    clean_env.setenv(HOME_ENV, str(tmp_path / "h"))
    home = Home.resolve()
    assert home.path == tmp_path / "h"
    assert home.db_url == f"sqlite:///{tmp_path / 'h' / 'mware-iam.db'}"
    assert home.key_file == tmp_path / "h" / "secret.key"
    # an explicit home wins over the environment
    assert Home.resolve(home=str(tmp_path / "other")).db_url == \
        f"sqlite:///{tmp_path / 'other' / 'mware-iam.db'}"


def test_database_url_from_environment_and_argument(clean_env: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    clean_env.setenv(DB_ENV, "postgresql://iam@db/iam")
    assert Home.resolve(home=str(tmp_path)).db_url == "postgresql://iam@db/iam"
    assert Home.resolve(home=str(tmp_path), db="sqlite:///x.db").db_url == "sqlite:///x.db"


def test_opening_creates_the_home_and_its_database(clean_env: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    clean_env.setenv(HOME_ENV, str(tmp_path / "fresh" / "home"))
    with Iam.open(argon2=FAST_ARGON2) as iam:
        assert iam.fresh
    assert (tmp_path / "fresh" / "home" / "mware-iam.db").is_file()
    assert (tmp_path / "fresh" / "home" / "secret.key").is_file()
    with Iam.open(argon2=FAST_ARGON2) as iam:
        assert not iam.fresh  # the second start finds the deployment


def modes(home: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mode & 0o777 for p in (home, *home.iterdir())}


def test_a_new_home_and_every_file_in_it_are_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    old = os.umask(0o022)
    try:
        with Iam.open(str(home), argon2=FAST_ARGON2) as iam:
            iam.identity.add_user(Initiator.admin(), "ann", None)  # the WAL holds a write
            found = modes(home)
    finally:
        os.umask(old)
    assert {"mware-iam.db-wal", "mware-iam.db-shm", "secret.key"} <= set(found)
    assert found == {"home": 0o700, **{name: 0o600 for name in found if name != "home"}}


def test_a_pre_existing_open_home_and_its_files_are_tightened(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Iam.open(str(home), argon2=FAST_ARGON2) as iam:
        iam.identity.add_user(Initiator.admin(), "ann", None)
        # As an older release left them: an open home, database, WAL and SHM.
        home.chmod(0o755)
        for name in ("mware-iam.db", "mware-iam.db-wal", "mware-iam.db-shm", "secret.key"):
            (home / name).chmod(0o644)
        with Iam.open(str(home), argon2=FAST_ARGON2):
            found = modes(home)
    assert found == {"home": 0o700, **{name: 0o600 for name in found if name != "home"}}
    assert {"mware-iam.db-wal", "mware-iam.db-shm"} <= set(found)


# ---------------------------------------------------------------- SQLite settings
def test_sqlite_uses_wal_and_enforces_foreign_keys(sqlite_iam: Iam) -> None:
    with sqlite_iam.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    with pytest.raises(IntegrityError), sqlite_iam.db.engine.begin() as conn:
        conn.execute(insert(um_user_attributes).values(user_pk=4242, name="mail", value="x"))


def test_sqlite_busy_timeout_comes_from_the_url(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/t.db?timeout=0.25")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 250
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()


def test_sqlite_writers_of_one_process_queue_on_the_file_lock(tmp_path: Path) -> None:
    """A transaction holds its file's writer lock from its first write to its end, and
    never after it: committed, rolled back, failed or not writing at all."""
    engine = make_engine(f"sqlite:///{tmp_path}/t.db")
    other = make_engine(f"sqlite:///{tmp_path}/../{tmp_path.name}/t.db")  # the same file
    lock = system_db._WRITE_LOCKS[str((tmp_path / "t.db").resolve())]
    try:
        for each in (engine, other):
            raw = each.raw_connection()
            assert raw.driver_connection.write_lock is lock  # type: ignore[union-attr]
            raw.close()
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (v INTEGER UNIQUE)")
        assert not lock.locked()
        with engine.begin() as conn:
            conn.exec_driver_sql("SELECT count(*) FROM t").scalar()
            assert not lock.locked()  # reading takes no turn
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            assert lock.locked()
        assert not lock.locked()
        with pytest.raises(IntegrityError), other.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert not lock.locked()
        with engine.connect() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (3)")
            conn.rollback()
            assert not lock.locked()
            conn.exec_driver_sql("INSERT INTO t VALUES (4)")
        assert not lock.locked()  # closed without commit: rolled back, lock given back
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT v FROM t").scalars().all() == [1]
    finally:
        engine.dispose()
        other.dispose()


@pytest.fixture
def exclusive_lock() -> Iterator[object]:
    """Call with a path: another connection takes an exclusive lock on it until the end."""
    held: list[sqlite3.Connection] = []

    def lock(path: Path) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        held.append(conn)

    yield lock
    for conn in held:
        conn.execute("ROLLBACK")
        conn.close()


def test_a_locked_database_fails_a_write_instead_of_waiting(
        tmp_path: Path, admin: Initiator, exclusive_lock: object) -> None:
    path = tmp_path / "system.db"
    with Iam.open(home=str(tmp_path / "home"), db=f"sqlite:///{path}?timeout=0.2",
                  argon2=FAST_ARGON2) as iam:
        iam.identity.add_user(admin, "before", None, {})
        exclusive_lock(path)  # type: ignore[operator]
        with pytest.raises(StoreUnavailable) as exc:
            iam.identity.add_user(admin, "alice", None, {"givenname": "Alice"})
        message = str(exc.value)
        assert "locked" in message and "\n" not in message
        # reads still work under WAL, and nothing of the failed write is there
        assert [u.username for u in iam.identity.list_users("PRIMARY").items] == ["before"]
        assert [e.target for e in iam.audit_log()] == ["PRIMARY/before"]


def test_transactions_on_a_kept_connection_commit_roll_back_and_are_joined(
        iam: Iam, admin: Initiator) -> None:
    with iam.db.engine.connect() as kept:
        with iam.db.transaction(on=kept) as conn:
            assert conn is kept
            iam.identity.add_user(admin, "kept", None, {})  # joins it (PRIMARY is here)
            with iam.db.transaction() as inner:
                assert inner is kept
        with pytest.raises(RuntimeError), iam.db.transaction(on=kept):
            iam.identity.add_user(admin, "undone", None, {})
            raise RuntimeError("roll back")
        with iam.db.transaction(on=kept):  # usable again after the rollback
            iam.identity.add_user(admin, "after", None, {})
    assert [u.username for u in iam.identity.list_users("PRIMARY").items] == ["after", "kept"]


def test_a_locked_database_fails_a_transaction_on_a_kept_connection(
        tmp_path: Path, admin: Initiator, exclusive_lock: object) -> None:
    path = tmp_path / "system.db"
    with Iam.open(home=str(tmp_path / "home"), db=f"sqlite:///{path}?timeout=0.2",
                  argon2=FAST_ARGON2) as iam, iam.db.engine.connect() as kept:
        exclusive_lock(path)  # type: ignore[operator]
        with pytest.raises(StoreUnavailable, match="locked"), iam.db.transaction(on=kept):
            iam.identity.add_user(admin, "alice", None, {})


def test_a_locked_new_database_fails_to_open(tmp_path: Path, exclusive_lock: object) -> None:
    path = tmp_path / "system.db"
    exclusive_lock(path)  # type: ignore[operator]
    with pytest.raises(StoreUnavailable, match="unreachable or locked") as exc:
        Iam.open(home=str(tmp_path / "home"), db=f"sqlite:///{path}?timeout=0.2",
                 argon2=FAST_ARGON2)
    assert "\n" not in str(exc.value)


# ---------------------------------------------------------------- unreachable and invalid
@pytest.mark.parametrize("url", [
    f"postgresql://user:{SECRET}@127.0.0.1:1/x",
    f"mysql://user:{SECRET}@127.0.0.1:1/x",
    f"mariadb://user:{SECRET}@127.0.0.1:1/x",
])
def test_unreachable_server_is_store_unavailable_without_password(tmp_path: Path,
                                                                  url: str) -> None:
    with pytest.raises(StoreUnavailable) as exc:
        Iam.open(home=str(tmp_path), db=url, argon2=FAST_ARGON2)
    message = str(exc.value)
    assert SECRET not in message and "\n" not in message
    assert "unreachable" in message and "127.0.0.1" in message


def test_unreachable_server_on_a_transaction(tmp_path: Path) -> None:
    db = SystemDB(f"postgresql://user:{SECRET}@127.0.0.1:1/x")
    try:
        with pytest.raises(StoreUnavailable) as exc, db.transaction() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        db.dispose()
    assert SECRET not in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("url, message", [
    ("not a url", "is not a valid SQLAlchemy URL"),
    (f"nosuchdb://user:{SECRET}@host/x", "cannot use database URL"),
    ("://", "is not a valid SQLAlchemy URL"),
])
def test_invalid_url_is_invalid_input(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as exc:
        Iam.open(home=str(tmp_path), db=url, argon2=FAST_ARGON2)
    assert SECRET not in str(exc.value)


def test_an_invalid_sqlite_option_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot use database URL"):
        make_engine(f"sqlite:///{tmp_path}/t.db?timeout=soon")


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_pooled_connection_dropped_while_idle_is_replaced_before_use(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server dropped a connection that sat in the pool (a restart, an idle timeout):
    the next transaction gets a new one, not the dropped one's error. One handed back
    moments ago is not pinged (each request would pay a round trip)."""
    with database_url(backend, str(tmp_path)) as url:
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                first = conn.execute(text(_BACKEND_PID[backend])).scalar()
            with engine.connect() as conn:  # busy moments ago: the same one, not pinged
                assert conn.execute(text(_BACKEND_PID[backend])).scalar() == first
            killer = make_engine(url)
            with killer.connect() as other:
                other.execute(text(_KILL[backend].format(first)))
                other.commit()
            killer.dispose()
            monkeypatch.setattr(system_db, "IDLE_PING_SECONDS", 0.0)
            with engine.connect() as conn:
                assert conn.execute(text(_BACKEND_PID[backend])).scalar() != first
        finally:
            engine.dispose()


_BACKEND_PID = {"postgresql": "SELECT pg_backend_pid()", "mariadb": "SELECT CONNECTION_ID()"}
_KILL = {"postgresql": "SELECT pg_terminate_backend({})", "mariadb": "KILL {}"}


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_connections_used_at_once_are_kept(tmp_path: Path, backend: str) -> None:
    """As many connections as a busy server's threads use at once go back to the pool and
    serve the next transactions, instead of being closed and opened again (with
    SQLAlchemy's pool of 5, 8 SCIM clients made it open a new server session every few
    requests)."""
    with database_url(backend, str(tmp_path)) as url:
        engine = make_engine(url)
        try:
            with contextlib.ExitStack() as stack:
                busy = [stack.enter_context(engine.connect())
                        for _ in range(system_db.KEPT_CONNECTIONS)]
                before = {c.execute(text(_BACKEND_PID[backend])).scalar() for c in busy}
            with contextlib.ExitStack() as stack:
                again = [stack.enter_context(engine.connect())
                         for _ in range(system_db.KEPT_CONNECTIONS)]
                assert {c.execute(text(_BACKEND_PID[backend])).scalar()
                        for c in again} == before
        finally:
            engine.dispose()


def test_postgresql_result_descriptions_are_made_once_per_shape(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cursor's description on PostgreSQL is the one psycopg makes, made once per result
    shape: rows come back under their own columns' names whichever shape came before, an
    alias or a type that differs makes another, and a statement without rows has none."""
    monkeypatch.setattr(system_db, "_DESCRIPTIONS", {})
    monkeypatch.setattr(system_db, "DESCRIPTIONS_KEPT", 3)
    with database_url("postgresql", str(tmp_path)) as url:
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                raw = conn.connection.driver_connection
                assert raw is not None
                for _ in range(2):
                    assert conn.execute(text("SELECT 1 AS a, 'x' AS b")).one()._asdict() \
                        == {"a": 1, "b": "x"}
                    assert conn.execute(text("SELECT 'y' AS a, 2 AS b")).one()._asdict() \
                        == {"a": "y", "b": 2}
                    assert conn.execute(text("SELECT 3 AS c")).one()._asdict() == {"c": 3}
                    with raw.cursor() as mine, psycopg.Cursor(raw) as plain:
                        for cursor in (mine, plain):
                            cursor.execute("SELECT 1::int2 AS a, now() AS t")
                        assert [tuple(c) for c in mine.description or ()] == \
                            [tuple(c) for c in plain.description or ()]
                        mine.execute("CREATE TEMPORARY TABLE IF NOT EXISTS t (x int)")
                        assert mine.description is None
                assert len(system_db._DESCRIPTIONS) <= 3
        finally:
            engine.dispose()


def test_a_postgresql_server_without_autovacuum_is_warned_of(iam: Iam) -> None:
    """``serve`` logs these at start: PostgreSQL with autovacuum off keeps no statistics
    current, so searches by name degrade as stores grow; the other backends have none."""
    warnings = iam.db.setting_warnings()
    if iam.db.dialect != "postgresql":
        assert warnings == []
        return
    with iam.db.engine.connect() as conn:
        autovacuum = conn.exec_driver_sql("SHOW autovacuum").scalar()
    assert [w.startswith("PostgreSQL runs with autovacuum off") for w in warnings] == \
        ([True] if autovacuum == "off" else [])
