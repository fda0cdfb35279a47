"""The target clients of the worker pool (``core/provisioning/target_clients.py``)."""

from __future__ import annotations

import httpx

from core.provisioning.target_clients import TargetClient


async def test_a_target_client_keeps_the_cookies_an_answer_sets_and_only_those() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/set":
            return httpx.Response(200, headers={"Set-Cookie": "lb=node2; Path=/"})
        return httpx.Response(200, json={"cookie": request.headers.get("Cookie")})

    async with TargetClient(transport=httpx.MockTransport(answer)) as client:
        await client.get("http://127.0.0.1/plain")
        assert not client.cookies
        await client.get("http://127.0.0.1/set")
        assert dict(client.cookies) == {"lb": "node2"}
        echoed = (await client.get("http://127.0.0.1/echo")).json()
    assert echoed == {"cookie": "lb=node2"}
