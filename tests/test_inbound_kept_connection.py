"""The lanes' own system database connections: the SCIM requests a lane's thread serves
run on one connection it keeps between them (a failed write leaves it usable), one the
server dropped is replaced, and closing the application closes them."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from core import db as system_db
from core.iam import Iam
from core.inbound import Limits
from core.inbound import app as app_module
from core.inbound.app import ScimApplication
from tests.scim_api import USER, application
from tests.servers import database_url


async def test_the_lane_keeps_one_connection_and_closes_it(sqlite_iam: Iam) -> None:
    token = application(sqlite_iam, "hr")
    scim = ScimApplication(sqlite_iam, Limits(rate=0))
    pool = sqlite_iam.db.engine.pool
    idle = pool.checkedout()  # type: ignore[attr-defined]
    try:
        async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=scim), base_url="http://t",
                headers={"Authorization": f"Bearer {token}"}) as client:
            statuses = []
            for name in ("ann", "ann", "ben"):  # the second one is refused (409)
                answer = await client.post("/Users", json={"schemas": [USER],
                                                           "userName": name})
                statuses.append(answer.status_code)
                assert pool.checkedout() == idle + 1  # type: ignore[attr-defined]
            assert statuses == [201, 409, 201]
            found = await client.get("/Users", params={"filter": 'userName eq "ben"'})
            assert found.json()["totalResults"] == 1
    finally:
        scim.close()
    assert pool.checkedout() == idle  # type: ignore[attr-defined]
    assert sqlite_iam.identity.count_users("PRIMARY") == 2


_BACKEND_PID = {"postgresql": "SELECT pg_backend_pid()", "mariadb": "SELECT CONNECTION_ID()"}
_KILL = {"postgresql": "SELECT pg_terminate_backend({})", "mariadb": "KILL {}"}


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
async def test_a_lane_replaces_a_kept_connection_the_server_dropped(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a database server, the lane's threads keep their connections too; one that the
    server dropped while it sat unused (a restart, an idle timeout) is found by a ping and
    replaced, so the next request is served, not answered 503."""
    with database_url(backend, str(tmp_path)) as url, \
            Iam.open(home=str(tmp_path / "home"), db=url) as iam:
        token = application(iam, "hr")
        monkeypatch.setattr(app_module, "SERVER_LANE_THREADS", 1)  # one kept connection
        scim = ScimApplication(iam, Limits(rate=0))
        try:
            async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=scim), base_url="http://t",
                    headers={"Authorization": f"Bearer {token}"}) as client:
                assert (await client.post("/Users", json={"schemas": [USER],
                                                          "userName": "ann"})).status_code == 201
                lane = scim._server_lane  # the lane under test
                storage = scim.scim_storage

                def kept_pid() -> int:  # in the lane's thread: the connection it keeps
                    conn = storage._kept.conn
                    with conn.begin():
                        return int(conn.execute(text(_BACKEND_PID[backend])).scalar())

                dropped = await lane.call(kept_pid)
                with iam.db.engine.connect() as other:
                    other.execute(text(_KILL[backend].format(dropped)))
                    other.commit()
                monkeypatch.setattr(system_db, "IDLE_PING_SECONDS", 0.0)
                answer = await client.post("/Users", json={"schemas": [USER],
                                                           "userName": "ben"})
                assert answer.status_code == 201, answer.text
                assert await lane.call(kept_pid) != dropped
        finally:
            scim.close()
        assert iam.identity.count_users("PRIMARY") == 2
