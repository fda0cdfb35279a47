"""Unbegun transactions (``core.ambient``): a SCIM request's transaction on PostgreSQL
sends nothing when it opens, so the read of one user and the last write of a POST or a
PATCH run alone, the audit row carried in the write. What must hold: every write
still comes with its audit row, a refused write leaves nothing, a transaction that
writes more than once (a password with the claims, an application that provisions, a
rollback) stays one transaction, and a write after one that committed alone is a bug
that raises, never a silent half-write."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    Table,
    event,
    func,
    insert,
    select,
)

from core import ambient
from core.ambient import ALONE_READ, ALONE_WRITE
from core.db import SystemDB, insert_later
from core.errors import StoreUnavailable
from core.iam import Iam
from core.identity.events import EventBus, EventType, IdentityEvent, Initiator, Phase
from core.inbound import Limits
from core.inbound.app import ScimApplication
from core.provisioning.planner import JobPlanner
from tests.provisioning_helpers import connect
from tests.scim_api import PATCH, USER, application
from tests.servers import database_url


@pytest.fixture
def pg_iam(tmp_path: Path) -> Iterator[Iam]:
    with database_url("postgresql", str(tmp_path)) as url, \
            Iam.open(home=str(tmp_path / "home"), db=url) as iam:
        yield iam


class Statements:
    """The statements run on an engine: whether each ran alone (autocommit), and its
    first words."""

    def __init__(self, db: SystemDB) -> None:
        self.seen: list[tuple[str, str]] = []
        event.listen(db.engine, "before_cursor_execute", self._record)

    def _record(self, conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        alone = conn.connection.driver_connection.autocommit
        self.seen.append(("alone" if alone else "in transaction",
                          " ".join(statement.split()[:2])))

    def take(self) -> list[tuple[str, str]]:
        seen, self.seen = self.seen, []
        return seen


@contextlib.asynccontextmanager
async def _scim(iam: Iam) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the SCIM app, as the application ``hr``."""
    token = application(iam, "hr")
    scim = ScimApplication(iam, Limits(rate=0))
    try:
        async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=scim), base_url="http://t",
                headers={"Authorization": f"Bearer {token}"}) as client:
            yield client
    finally:
        scim.close()


async def _patched_ann(client: httpx.AsyncClient, statements: Statements,
                       *more: dict[str, str]) -> httpx.Response:
    """ann created, then PATCHed (givenName Anna, and ``more``); the statements of the
    PATCH alone left in ``statements``."""
    created = (await client.post("/Users", json={
        "schemas": [USER], "userName": "ann", "name": {"givenName": "Ann"}})).json()
    statements.take()
    return await client.patch(f"/Users/{created['id']}", json={
        "schemas": [PATCH], "Operations": [
            {"op": "replace", "path": "name.givenName", "value": "Anna"}, *more]})


def _audited(iam: Iam, action: str, target: str) -> int:
    return len(iam.audit_log(action=action, target=target))


async def test_a_post_is_one_statement_that_carries_its_audit_row(pg_iam: Iam) -> None:
    statements = Statements(pg_iam.db)
    async with _scim(pg_iam) as client:
        # the first request reads the application and the planner's targets
        assert (await client.post("/Users", json={"schemas": [USER], "userName": "zed"})
                ).status_code == 201
        statements.take()
        body = {"schemas": [USER], "userName": "ann", "name": {"givenName": "Ann"}}
        assert (await client.post("/Users", json=body)).status_code == 201
        assert statements.take() == [("alone", "WITH new_user")]
        assert _audited(pg_iam, "user.add", "PRIMARY/ann") == 1
        # taken: the statement writes nothing, so neither user nor audit row
        assert (await client.post("/Users", json=body)).status_code == 409
        assert pg_iam.identity.count_users("PRIMARY") == 2
        assert _audited(pg_iam, "user.add", "PRIMARY/ann") == 1


async def test_a_patch_reads_and_writes_alone(pg_iam: Iam) -> None:
    statements = Statements(pg_iam.db)
    async with _scim(pg_iam) as client:
        answer = await _patched_ann(client, statements)
        assert answer.status_code == 204, answer.text  # the change, nothing to answer
        assert [alone for alone, _ in statements.take()] == ["alone", "alone"]
        assert pg_iam.identity.get_user("PRIMARY/ann").claims[
            "http://wso2.org/claims/givenname"] == "Anna"
        assert _audited(pg_iam, "user.update", "PRIMARY/ann") == 1


async def test_a_patch_with_a_password_writes_both_in_one_transaction(pg_iam: Iam) -> None:
    """Claims, then the password: two writes, so neither runs alone (a write after one
    that committed alone would raise: the request would fail with 500)."""
    statements = Statements(pg_iam.db)
    async with _scim(pg_iam) as client:
        answer = await _patched_ann(client, statements, {
            "op": "replace", "path": "password", "value": "N3w-secret-pass!"})
        assert answer.status_code == 204, answer.text
        assert ("in transaction", "WITH touched") in statements.take()
        assert pg_iam.identity.verify_password("PRIMARY/ann", "N3w-secret-pass!") is not None
        assert _audited(pg_iam, "user.update", "PRIMARY/ann") == 1
        assert _audited(pg_iam, "user.password", "PRIMARY/ann") == 1


async def test_an_application_that_provisions_writes_user_and_job_together(
        pg_iam: Iam) -> None:
    """The planner writes the outbox job after the user's insert: the insert runs in
    the transaction, which holds user, audit row and job, or none of them."""
    statements = Statements(pg_iam.db)
    async with _scim(pg_iam) as client:
        connect(pg_iam, "http://127.0.0.1:9/scim", app="hr")  # queued: nobody sends it
        for name in ("ann", "ben"):  # the planner's cache cold, then warm
            answer = await client.post("/Users", json={
                "schemas": [USER], "userName": name, "name": {"givenName": name}})
            assert answer.status_code == 201, answer.text
            assert ("in transaction", "WITH new_user") in statements.take()
            [job] = pg_iam.provisioning.jobs(entity=f"PRIMARY/{name}")
            assert job.operation.name == "UPSERT_USER"
            assert _audited(pg_iam, "user.add", f"PRIMARY/{name}") == 1


async def test_the_planners_cache_expiring_after_it_said_idle_changes_nothing(
        pg_iam: Iam, monkeypatch: pytest.MonkeyPatch) -> None:
    """The planner said it would not write (its cache: no targets), the user's insert
    committed alone, and then, as the event reaches it, the cache has expired: it must
    not read the configuration in the transaction that is over (that raised, a 500)."""
    async with _scim(pg_iam) as client:
        assert (await client.post("/Users", json={"schemas": [USER], "userName": "zed"})
                ).status_code == 201  # the cache filled
        cached = JobPlanner._cached
        asked: list[bool] = []

        def expiring(self: JobPlanner, application: str, jit: bool) -> Any:
            asked.append(True)
            return cached(self, application, jit) if len(asked) == 1 else None
        monkeypatch.setattr(JobPlanner, "_cached", expiring)
        answer = await client.post("/Users", json={
            "schemas": [USER], "userName": "ann", "name": {"givenName": "Ann"}})
        assert answer.status_code == 201, answer.text
        assert len(asked) == 2  # before the write, and as the event came
        assert _audited(pg_iam, "user.add", "PRIMARY/ann") == 1


# ------------------------------------------------------------------ the mechanics
_ROWS = Table("unbegun_rows", MetaData(), Column("n", Integer, nullable=False))


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SystemDB]:
    with database_url(request.param, str(tmp_path)) as url:
        system = SystemDB(url)
        _ROWS.create(system.engine)
        try:
            yield system
        finally:
            system.dispose()


def _rows(db: SystemDB) -> list[int]:
    with db.engine.connect() as conn:
        return sorted(n for (n,) in conn.execute(select(_ROWS.c.n)))


class _Refused(Exception):
    pass


def test_a_rollback_takes_back_every_write_of_an_unbegun_transaction(db: SystemDB) -> None:
    with pytest.raises(_Refused), db.transaction(unbegun=True) as conn:
        db.writes_more()
        conn.execute(insert(_ROWS).execution_options(**ALONE_WRITE), {"n": 1})
        insert_later(conn, _ROWS, ("n",), [(2,)])
        conn.execute(insert(_ROWS), {"n": 3})
        raise _Refused
    assert _rows(db) == []
    with db.transaction(unbegun=True) as conn:
        conn.execute(insert(_ROWS), {"n": 1})
        insert_later(conn, _ROWS, ("n",), [(2,), (3,)])
    assert _rows(db) == [1, 2, 3]


def test_rows_kept_for_the_commit_are_written_there_or_carried(db: SystemDB) -> None:
    with db.transaction(unbegun=True) as conn:
        insert_later(conn, _ROWS, ("n",), [(1,)])
        carried = ambient.carried(conn)
        if db.dialect == "postgresql":
            assert carried is not None and [r.rows for r in carried] == [[(1,)]]
            ambient.carried_done(conn, False)  # it wrote nothing: the row stays pending
        else:
            assert carried is None  # elsewhere a transaction begins as it always did
    assert _rows(db) == [1]


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)  # only there unbegun
def test_a_write_after_one_that_committed_alone_raises(db: SystemDB) -> None:
    with pytest.raises(RuntimeError, match="write_more"), \
            db.transaction(unbegun=True) as conn:
        assert ambient.carried(conn) == []
        conn.execute(insert(_ROWS).execution_options(**ALONE_WRITE), {"n": 1})
        ambient.carried_done(conn, True)
        conn.execute(insert(_ROWS), {"n": 2})
    assert _rows(db) == [1]  # the first had committed: hence the error, loud


def test_the_event_bus_tells_whether_a_handler_will_act() -> None:
    bus = EventBus()
    event_ = IdentityEvent(EventType.USER_ADDED, Initiator.admin(), "PRIMARY", "1", "a")
    assert not bus.wants(Phase.POST, event_)
    bus.subscribe(Phase.POST, lambda _e: None, types=[EventType.USER_DELETED])
    assert not bus.wants(Phase.POST, event_)
    idle = {"now": True}
    bus.subscribe(Phase.POST, lambda _e: None, idle_for=lambda _e: idle["now"])
    assert not bus.wants(Phase.POST, event_)
    idle["now"] = False
    assert bus.wants(Phase.POST, event_)


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_connection_lost_in_an_unbegun_transaction_fails_as_any_lost_one(
        db: SystemDB) -> None:
    """The server drops the connection while the transaction has not begun: the error is
    the one of a lost connection (StoreUnavailable, 503 for SCIM), not a complaint about
    the driver's mode, and the next transaction gets a working connection."""
    with pytest.raises(StoreUnavailable), db.transaction(unbegun=True) as conn:
        pid = conn.execute(select(func.pg_backend_pid()).execution_options(**ALONE_READ)
                           ).scalar()
        with db.engine.connect() as other:
            other.execute(select(func.pg_terminate_backend(pid)))
            other.commit()
        conn.execute(select(_ROWS.c.n).execution_options(**ALONE_READ))  # still unbegun
    with db.transaction(unbegun=True) as conn:
        conn.execute(insert(_ROWS), {"n": 2})
    assert _rows(db) == [2]
