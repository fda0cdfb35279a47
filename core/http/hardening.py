"""What ``serve``'s HTTP server needs against hostile clients, around uvicorn.

- :class:`GuardedProtocol`: uvicorn's httptools protocol with limits it lacks: request
  headers (request line included) of at most ``MAX_HEADER_BYTES`` (431 beyond, before
  any more is read), complete within ``HEADER_SECONDS`` of the connection or of the
  request's first byte, and a body that never pauses longer than ``BODY_IDLE_SECONDS``
  (a lying Content-Length, a half-open socket); such connections are closed.
- :class:`Guard`: an ASGI wrapper answering 400 to a path with a control character (a
  decoded NUL, CR or LF would reach headers and logs), and requiring an application token
  for ``GET /status`` and ``GET /metrics`` on a connection that is not over loopback.
- :class:`EscapingFormatter`: log lines with every control character of the message
  escaped, so no value from a client (a key with a newline) can forge a log line.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.errors import IamError
from core.iam import Iam

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Largest request line and headers together (SCIM clients send a few hundred bytes).
MAX_HEADER_BYTES = 32 * 1024
#: Seconds a client has to send a complete request line and headers.
HEADER_SECONDS = 10.0
#: Longest pause while sending a request body.
BODY_IDLE_SECONDS = 10.0

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
log = logging.getLogger("mware_iam.serve")


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header size and read time limits (see above)."""

    #: The one timer of the connection, and when what the client owes is late (None:
    #: nothing is owed, the application has the request). Each request moves the deadline
    #: three or more times (its start, its headers, each piece of its body); the timer is
    #: set again only when it fires before the deadline, not created and cancelled on
    #: every move.
    _timer: asyncio.TimerHandle | None = None
    _deadline: float | None = None
    _in_headers = True
    _header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(HEADER_SECONDS)

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._in_headers and self._header_bytes > MAX_HEADER_BYTES \
                and not self.transport.is_closing():
            log.warning("a request's headers exceed %d bytes: refused (431)",
                        MAX_HEADER_BYTES)
            self._refuse(b"431 Request Header Fields Too Large",
                         f"request headers over {MAX_HEADER_BYTES} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(HEADER_SECONDS)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._arm(BODY_IDLE_SECONDS)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._arm(BODY_IDLE_SECONDS)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()  # the application answers in its own time
        self._in_headers, self._header_bytes = True, 0
        super().on_message_complete()

    def _arm(self, seconds: float) -> None:
        self._deadline = deadline = self.loop.time() + seconds
        if self._timer is not None and self._timer.when() > deadline:
            self._timer.cancel()  # a shorter limit than the one the timer is set for
            self._timer = None
        if self._timer is None:
            self._timer = self.loop.call_at(deadline, self._expired)

    def _disarm(self) -> None:
        self._deadline = None  # a pending timer finds nothing owed when it fires

    def _expired(self) -> None:
        self._timer = None
        if self._deadline is None:
            return
        if self.loop.time() < self._deadline:  # moved since the timer was set
            self._timer = self.loop.call_at(self._deadline, self._expired)
            return
        self._deadline = None
        if not self.transport.is_closing():
            log.warning("a client sent no complete request in time: connection closed")
            self._refuse(b"408 Request Timeout", "the request did not arrive in time")

    def _refuse(self, status: bytes, message: str) -> None:
        """Answer ``status`` (unless a response has begun) and close the connection."""
        if self.cycle is None or not self.cycle.response_started:
            body = json.dumps({"error": message}).encode()
            self.transport.write(b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json"
                                 b"\r\nconnection: close\r\ncontent-length: "
                                 + str(len(body)).encode() + b"\r\n\r\n" + body)
        if self.cycle is not None:
            self.cycle.disconnected = True
        self.transport.close()


def is_loopback(address: Any) -> bool:
    """Whether an ASGI ``server`` or ``client`` address is a loopback one."""
    try:
        ip = ipaddress.ip_address(str(address[0]))
    except (TypeError, ValueError, IndexError):
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack socket's view of 127.0.0.1
    return ip.is_loopback


#: What only loopback connections may read without a token: the deployment's targets,
#: errors and queues.
TOKEN_PATHS = frozenset({"/status", "/metrics"})


class Guard:
    """ASGI wrapper: 400 for a path with a control character; a token for a remote
    ``/status`` or ``/metrics``.

    ``GET /status`` and ``GET /metrics`` list targets, their errors and queues: over
    loopback anyone on this
    machine may read it (as ``provisioning status`` does); on any other connection it
    takes a live application token (``Authorization: Bearer TOKEN``), else 401.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]],
                 iam: Iam) -> None:
        self.app = app
        self.iam = iam

    def __getattr__(self, name: str) -> Any:  # close() and the like of the wrapped app
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if _CONTROL.search(scope["path"]):
                await _reply(send, 400, "the path contains a control character")
                return
            if scope["path"] in TOKEN_PATHS and not is_loopback(scope.get("server")) \
                    and not await self._authorized(scope):
                await _reply(send, 401, f"GET {scope['path']} needs an application token "
                                        "(Authorization: Bearer TOKEN) on this connection",
                             [(b"www-authenticate", b'Bearer realm="mware-iam"')])
                return
        await self.app(scope, receive, send)

    async def _authorized(self, scope: Scope) -> bool:
        header = dict(scope.get("headers") or ()).get(b"authorization", b"")
        scheme, _, token = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        try:
            app = await asyncio.to_thread(self.iam.authenticate_token, token.strip())
        except IamError:
            return False
        return app is not None


async def _reply(send: Send, status: int, message: str,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def _escape(match: re.Match[str]) -> str:
    return json.dumps(match.group())[1:-1]


class EscapingFormatter(logging.Formatter):
    """Every control character of a log message escaped (``\\n`` as the two characters
    backslash and n): one record is one line, whatever a client put in a value."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return _CONTROL.sub(_escape, super().formatMessage(record))


def uvicorn_settings() -> dict[str, Any]:
    """The uvicorn.Config settings of a hardened server."""
    return {"http": GuardedProtocol, "timeout_keep_alive": 5}
