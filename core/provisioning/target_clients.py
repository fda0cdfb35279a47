"""Connections to targets: per target, as many ``httpx.AsyncClient``s of one connection each
as its ``concurrency`` allows, and one connector memo (what the target announced, e.g. its
SCIM capabilities), rebuilt when the target's configuration changes. Lives in one event
loop.

Why a client per connection rather than one client with a pool of ``concurrency``: an
attempt holds its own client (``lane``), so each client sends one request at a time. A
shared httpcore pool hands its first free connection to every request waiting at that
moment, and all but one of them fail and try again; under a worker pool's bursts that was
three to four tries per request, each one walking every connection (a ``poll`` system call
apiece). One request per client makes every request one try, and the waiting for a free
connection is one queue's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.base import Connector
from connectors.registry import connector_class
from core.provisioning.targets import Target


class _Cookies(httpx.Cookies):
    """A client's cookies, which hand an answer to ``http.cookiejar`` only when it sets
    any: an answer without ``Set-Cookie`` has nothing for the jar, and handing it over
    builds a ``urllib`` request and response first (about a tenth of httpx's work for a
    request)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers or "set-cookie2" in response.headers:
            super().extract_cookies(response)


class TargetClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` whose cookie jar is only consulted for answers that set
    cookies (:class:`_Cookies`); otherwise the same."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cookies = _Cookies(self.cookies)  # where httpx keeps the client's cookies


@dataclass
class _Entry:
    fingerprint: str
    clients: list[httpx.AsyncClient]
    #: The clients no attempt holds now.
    free: asyncio.Queue[httpx.AsyncClient]
    #: What the target's connectors learn about it, shared (``Connector.memo``).
    memo: dict[str, Any] = field(default_factory=dict)


class TargetRuntime:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._retired: list[httpx.AsyncClient] = []
        #: One TLS context for every client (building one reads the CA bundle).
        self._tls: ssl.SSLContext | None = None

    def _entry(self, target: Target) -> _Entry:
        entry = self._entries.get(target.key)
        if entry is None or entry.fingerprint != target.fingerprint:
            if entry is not None:  # closed at shutdown: attempts may still hold them
                self._retired += entry.clients
            if self._tls is None:
                self._tls = httpx.create_ssl_context()
            one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            timeout = httpx.Timeout(float(target.prop("timeout-seconds")))
            clients: list[httpx.AsyncClient] = [
                TargetClient(timeout=timeout, limits=one, verify=self._tls)
                for _ in range(max(1, int(target.prop("concurrency"))))]
            free: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
            for client in clients:
                free.put_nowait(client)
            entry = _Entry(target.fingerprint, clients, free)
            self._entries[target.key] = entry
        return entry

    @contextlib.asynccontextmanager
    async def lane(self, target: Target) -> AsyncIterator[Connector]:
        """A fresh connector (its own exchange log) on one of the target's connections,
        held until the block ends: at most ``concurrency`` blocks of a target run at once,
        the others wait here in turn."""
        entry = self._entry(target)
        client = await entry.free.get()
        try:
            yield connector_class(target.config.type)(target.properties, client, entry.memo)
        finally:
            entry.free.put_nowait(client)

    async def aclose(self) -> None:
        for client in [*(c for e in self._entries.values() for c in e.clients),
                       *self._retired]:
            await client.aclose()
        self._entries.clear()
        self._retired.clear()
