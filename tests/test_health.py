"""The deployment's health check (``core/health.py``) behind ``GET /ready`` and
``GET /metrics``: bounded when a store hangs, shared, cached for a moment.

The hung store is a real LDAP store pointed at a loopback socket that accepts connections
(its backlog) and never answers: its ``health()`` blocks for its whole connection timeout.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.health import HealthCheck
from core.http.app import HttpApp
from core.http.hardening import Guard
from core.iam import Iam
from core.identity.events import Initiator
from tests.test_http_hardening import call

LOOPBACK = ("127.0.0.1", 8080)
BOUND = 1.0
#: What an answer may take beyond the bound (thread start-up, a loaded machine).
SLACK = 1.5


@pytest.fixture
def silent() -> Iterator[socket.socket]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock


@pytest.fixture
def hung_iam(sqlite_iam: Iam, silent: socket.socket) -> Iam:
    """A deployment with PRIMARY and SLOW, an LDAP store that never answers, and a health
    check bounded at ``BOUND`` seconds."""
    sqlite_iam.save_userstore(Initiator.admin(), "SLOW", "ldap", {
        "connection_url": f"ldap://127.0.0.1:{silent.getsockname()[1]}",
        "bind_dn": "cn=svc", "bind_password": "pw", "user_search_base": "ou=u,dc=x",
        "connection_timeout": 30})
    sqlite_iam.health = HealthCheck(sqlite_iam.db, sqlite_iam.stores, seconds=BOUND)
    return sqlite_iam


def accepted(silent: socket.socket, kept: list[socket.socket]) -> int:
    """The connections made to ``silent`` so far (accepted, and kept open unanswered)."""
    silent.setblocking(False)
    while True:
        try:
            kept.append(silent.accept()[0])
        except BlockingIOError:
            return len(kept)


async def test_ready_says_not_ready_within_the_bound_when_a_store_hangs(hung_iam: Iam) -> None:
    app = Guard(HttpApp(hung_iam), hung_iam)
    started = time.monotonic()
    status, body = await call(app, "/ready", LOOPBACK)
    took = time.monotonic() - started
    assert status == 503
    assert body == {"status": "unavailable", "failed": {"SLOW": "did not answer within 1 s"}}
    assert BOUND <= took < BOUND + SLACK
    assert (await call(app, "/ready", ("192.0.2.1", 8080)))[1]["failed"] == ["SLOW"]


async def test_metrics_answer_within_the_bound_when_a_store_hangs(hung_iam: Iam) -> None:
    app = Guard(HttpApp(hung_iam), hung_iam)
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    started = time.monotonic()
    await app({"type": "http", "method": "GET", "path": "/metrics", "headers": [],
               "server": LOOPBACK, "client": ("127.0.0.1", 40000)}, receive, send)
    assert time.monotonic() - started < BOUND + SLACK
    assert sent[0]["status"] == 200
    up = {s.labels["domain"]: s.value
          for family in text_string_to_metric_families(sent[1]["body"].decode())  # type: ignore[attr-defined]
          for s in family.samples if s.name == "mware_iam_userstore_up"}
    assert up == {"PRIMARY": 1.0, "SLOW": 0.0}


def test_a_hung_store_is_asked_once_and_answers_are_cached(hung_iam: Iam,
                                                           silent: socket.socket) -> None:
    check, kept = hung_iam.health, []
    first = check.check()
    assert first.failed() == {"SLOW": "did not answer within 1 s"}
    assert first.stores["PRIMARY"].reachable
    assert check.check() is first  # within the cache time: no new check
    assert accepted(silent, kept) == 1  # SLOW's health(), still waiting for an answer
    check.cache_seconds = 0.0
    started = time.monotonic()
    again = [check.check() for _ in range(2)]
    assert time.monotonic() - started < 2 * BOUND + SLACK
    assert [h.failed() for h in again] == [first.failed()] * 2
    assert accepted(silent, kept) == 1  # not asked again while its first check hangs
    for sock in kept:
        sock.close()


def test_concurrent_callers_share_one_check(hung_iam: Iam) -> None:
    answers: list[object] = []
    callers = [threading.Thread(target=lambda: answers.append(hung_iam.health.check()))
               for _ in range(8)]
    started = time.monotonic()
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(BOUND + SLACK + 1)
    assert time.monotonic() - started < BOUND + SLACK
    assert len(answers) == 8 and all(a is answers[0] for a in answers)

