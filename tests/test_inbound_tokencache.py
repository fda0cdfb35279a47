"""The SCIM server's memory of token checks: how long a revoked token still works."""

from __future__ import annotations

import asyncio
import base64
import threading

import pytest
from scim2_models import UnauthorizedException
from scim2_server.requests import ScimRequest

from core.apps import Application
from core.identity.events import Initiator
from core.inbound.app import ScimApplication
from core.inbound.tokencache import TokenCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_value_is_kept_for_ttl_seconds_only() -> None:
    clock = Clock()
    cache: TokenCache[str] = TokenCache(ttl=5, clock=clock)
    cache.put("tok-a", "hr")
    assert cache.get("tok-a") == "hr"
    assert cache.get("tok-b") is None
    clock.now += 4.9
    assert cache.get("tok-a") == "hr"
    clock.now += 0.1
    assert cache.get("tok-a") is None


def test_a_full_cache_drops_expired_then_oldest_entries() -> None:
    clock = Clock()
    cache: TokenCache[int] = TokenCache(ttl=5, size=2, clock=clock)
    cache.put("old", 1)
    clock.now += 6
    cache.put("a", 2)
    cache.put("b", 3)  # full: "old" has expired and goes
    assert (cache.get("a"), cache.get("b")) == (2, 3)
    cache.put("c", 4)  # full of live entries: the oldest, "a", goes
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, 3, 4)


def test_no_ttl_keeps_nothing() -> None:
    cache: TokenCache[int] = TokenCache(ttl=0)
    cache.put("tok", 1)
    assert cache.get("tok") is None


def _request(token: str) -> ScimRequest:
    return ScimRequest(method="GET", base_url="http://127.0.0.1/scim2", path="/Users",
                       headers={"Authorization": f"Bearer {token}"})


def test_a_revoked_token_is_refused_once_its_check_expires(sqlite_iam) -> None:
    admin = Initiator.admin()
    sqlite_iam.save_app(admin, Application(name="hr", inbound_domain="PRIMARY"))
    token = sqlite_iam.issue_token(admin, "hr")
    app = ScimApplication(sqlite_iam)
    clock = Clock()
    app.tokens = TokenCache(ttl=5, clock=clock)
    assert app.authenticate(_request(token)).application == "hr"

    sqlite_iam.revoke_token(admin, "hr", token[-4:])
    clock.now += 4
    assert app.authenticate(_request(token)).domain == "PRIMARY"  # remembered
    clock.now += 1
    with pytest.raises(UnauthorizedException, match="unknown or revoked"):
        app.authenticate(_request(token))
    with pytest.raises(UnauthorizedException, match="unknown or revoked"):
        app.authenticate(_request("mwi_not-a-token"))


def test_a_remembered_token_is_known_without_the_database(sqlite_iam) -> None:
    admin = Initiator.admin()
    sqlite_iam.save_app(admin, Application(name="hr", inbound_domain="PRIMARY"))
    token = sqlite_iam.issue_token(admin, "hr")
    app = ScimApplication(sqlite_iam)
    assert app.remembered(_request(token)) is None  # never checked yet
    app.authenticate(_request(token))
    remembered = app.remembered(_request(token))
    assert remembered is not None and remembered.application == "hr"

    def basic(name: str) -> ScimRequest:
        raw = base64.b64encode(f"{name}:{token}".encode()).decode()
        return ScimRequest(method="GET", base_url="http://127.0.0.1/scim2", path="/Users",
                           headers={"Authorization": f"Basic {raw}"})

    assert app.remembered(basic("hr")) == remembered
    assert app.remembered(basic("crm")) is None  # the name must match the token's
    with pytest.raises(UnauthorizedException):
        app.authenticate(basic("crm"))
    assert app.remembered(_request("mwi_unknown")) is None


def test_a_token_lookup_runs_off_the_event_loop(sqlite_iam, monkeypatch) -> None:
    """The database read of a token not remembered must not stall every other client."""
    admin = Initiator.admin()
    sqlite_iam.save_app(admin, Application(name="hr", inbound_domain="PRIMARY"))
    token = sqlite_iam.issue_token(admin, "hr")
    app = ScimApplication(sqlite_iam)
    lookups: list[threading.Thread] = []
    authenticate_token = sqlite_iam.authenticate_token

    def recorded(presented: str) -> Application | None:
        lookups.append(threading.current_thread())
        return authenticate_token(presented)

    monkeypatch.setattr(sqlite_iam, "authenticate_token", recorded)

    async def serve(presented: str) -> tuple[int, threading.Thread]:
        response = await app.serve(_request(presented))
        return int(response.status), threading.current_thread()

    status, loop_thread = asyncio.run(serve(token))
    assert status == 200
    bad_status, _ = asyncio.run(serve("mwi_not-a-token"))
    assert bad_status == 401
    assert len(lookups) == 2 and loop_thread not in lookups
    status, _ = asyncio.run(serve(token))  # remembered: no second read
    assert status == 200 and len(lookups) == 2
