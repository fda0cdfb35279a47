"""The SQLite lane's own system database connection: the SCIM requests it serves run on
one connection it keeps between them (a failed write leaves it usable), and closing the
application closes it."""

from __future__ import annotations

import httpx

from core.iam import Iam
from core.inbound import Limits
from core.inbound.app import ScimApplication
from tests.scim_api import USER, application


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
