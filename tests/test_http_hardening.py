"""``serve``'s HTTP server against hostile clients: raw sockets on loopback, short limits.

The limits of :mod:`core.http.hardening` are set low here (a fraction of a second) so each
test takes well under a second; the server is the one ``serve`` runs, on a thread.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from core.apps import Application
from core.http import hardening
from core.http.app import HttpApp
from core.http.hardening import EscapingFormatter, Guard
from core.http.thread import scim_thread
from core.iam import Iam
from core.identity.events import Initiator

LIMIT_SECONDS = 0.4


@pytest.fixture
def server(sqlite_iam: Iam, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    monkeypatch.setattr(hardening, "HEADER_SECONDS", LIMIT_SECONDS)
    monkeypatch.setattr(hardening, "BODY_IDLE_SECONDS", LIMIT_SECONDS)
    with scim_thread(sqlite_iam) as url:
        host, port = url.split("//")[1].split("/")[0].split(":")
        yield host, int(port)


def exchange(address: tuple[str, int], request: bytes, wait: float = 3.0
             ) -> tuple[bytes, float]:
    """Send ``request`` raw, read until the server closes; what came back and how long
    the connection stayed open after the request was sent."""
    with socket.create_connection(address, timeout=wait) as sock:
        sock.sendall(request)
        start = time.monotonic()
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return got, time.monotonic() - start


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_a_control_character_in_the_path_is_400_without_a_traceback(
        server: tuple[str, int], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for path in (b"/a%00b", b"/scim2/Users/a%0a%00b", b"/x%0d%0aSet-Cookie:%20y",
                 b"/status%0a"):
        answer, _ = exchange(server, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n"
                                     b"Authorization: Bearer nope\r\nConnection: close\r\n\r\n")
        assert status_of(answer) == 400, path
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {
            "error": "the path contains a control character"}
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_oversized_headers_are_refused_before_they_are_read(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=3) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        sent = 0
        try:
            while sent < 4 * hardening.MAX_HEADER_BYTES:  # the server stops before this
                sock.sendall(b"X-Pad: " + b"a" * 1000 + b"\r\n")
                sent += 1009
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = sock.recv(65536)
    assert status_of(answer) == 431


def test_a_socket_that_sends_nothing_is_closed_after_the_header_time(
        server: tuple[str, int]) -> None:
    answer, held = exchange(server, b"")
    assert status_of(answer) == 408
    assert LIMIT_SECONDS * 0.8 < held < LIMIT_SECONDS + 1.5


def test_a_request_line_sent_slowly_is_cut_at_the_header_time(server: tuple[str, int]) -> None:
    answer, held = exchange(server, b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never ends
    assert status_of(answer) == 408 and held < LIMIT_SECONDS + 1.5


def test_a_lying_content_length_is_cut_after_the_body_pause(server: tuple[str, int]) -> None:
    answer, held = exchange(server, b"POST /scim2/Users HTTP/1.1\r\nHost: x\r\n"
                                    b"Content-Type: application/scim+json\r\n"
                                    b"Content-Length: 1000\r\n\r\n{\"userName\":")
    assert held < LIMIT_SECONDS + 1.5
    assert answer == b"" or status_of(answer) == 408


def test_a_keep_alive_connection_serves_requests_within_the_limits(
        server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=3) as sock:
        for _ in range(2):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = sock.recv(65536)
            assert status_of(answer) == 200
            assert answer.endswith(b'{"status": "ok", "process": %d}' % os.getpid())
            time.sleep(LIMIT_SECONDS * 1.5)  # idle between requests is keep-alive's (5 s)


# ---------------------------------------------------------------- /status
async def call(app: Guard, path: str, server: tuple[str, int],
               headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, Any]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": path, "headers": headers or [],
               "server": server, "client": ("192.0.2.9", 40000)}, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


async def test_status_needs_an_application_token_unless_over_loopback(
        sqlite_iam: Iam) -> None:
    sqlite_iam.save_app(Initiator.admin(), Application(name="crm"))
    token = sqlite_iam.issue_token(Initiator.admin(), "crm")
    app = Guard(HttpApp(sqlite_iam), sqlite_iam)
    public = ("192.0.2.1", 8080)
    assert (await call(app, "/status", ("127.0.0.1", 8080)))[0] == 200
    assert (await call(app, "/status", ("::1", 8080)))[0] == 200
    assert (await call(app, "/status", ("::ffff:127.0.0.1", 8080)))[0] == 200
    assert (await call(app, "/status", ("::ffff:192.0.2.1", 8080)))[0] == 401
    status, body = await call(app, "/status", public)
    assert status == 401 and "application token" in body["error"]
    for bad in (b"Bearer wrong", b"Basic " + token.encode(), b"Bearer "):
        assert (await call(app, "/status", public, [(b"authorization", bad)]))[0] == 401
    status, body = await call(app, "/status", public,
                              [(b"authorization", b"Bearer " + token.encode())])
    assert status == 200 and body == {"targets": []}
    assert (await call(app, "/health", public))[0] == 200  # health stays open
    assert await call(app, "/ready", public) == (200, {"status": "ready"})  # so does ready
    status, body = await call(app, "/metrics", public)
    assert status == 401 and "GET /metrics needs an application token" in body["error"]


# ---------------------------------------------------------------- logs
def test_log_lines_escape_every_control_character() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "unknown attribute %r: %s",
                               ("key", "a\nINFO forged line\r\x00"), None)
    line = EscapingFormatter("%(levelname)s %(message)s").format(record)
    assert line == "WARNING unknown attribute 'key': a\\nINFO forged line\\r\\u0000"
