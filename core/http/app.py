"""The ASGI application of ``mware-iam serve``: the SCIM API under ``/scim2``,
``GET /health`` (liveness: this process answers), ``GET /ready`` (readiness: the system
database and every enabled userstore answer; 503 naming those that do not), ``GET /status``
(the JSON of ``provisioning status --json``) and ``GET /metrics`` (Prometheus text,
``core/http/metrics.py``)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from core.errors import IamError
from core.health import DeploymentHealth
from core.http.hardening import is_loopback
from core.iam import Iam
from core.inbound import MOUNT
from core.provisioning.status import status_json

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

class HttpApp:
    """The ASGI application of ``serve``: the SCIM API under ``/scim2``, ``GET /health``,
    ``GET /ready``, ``GET /status`` and ``GET /metrics``."""

    def __init__(self, iam: Iam, scim: Any = None) -> None:
        self.iam = iam
        self.scim = scim
        #: ``POST /jit/{idp}``, built at the first JIT login (see :meth:`_jit`).
        self.jit: Any = None
        #: The health check running now (its answer goes to every request waiting).
        self._checking: asyncio.Future[DeploymentHealth] | None = None

    def _jit(self) -> Any:
        """The JIT intake (JIT logins authenticate the application as SCIM does), built
        when first asked: a serve without JIT logins never loads the token and XML
        signature libraries (some 75 modules, 0.15 s)."""
        if self.jit is None:
            from core.jit.http import JitApplication
            self.jit = JitApplication(self.iam, self.scim)
        return self.jit

    def close(self) -> None:
        """Stop the SCIM application's own thread, once the server has stopped."""
        if self.scim is not None:
            self.scim.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if self.scim is not None and (path == MOUNT or path.startswith(MOUNT + "/")):
            await self.scim({**scope, "root_path": scope.get("root_path", "") + MOUNT},
                            receive, send)
        elif self.scim is not None and path.startswith("/jit/"):
            await self._jit()(scope, receive, send)
        elif scope["method"] not in ("GET", "HEAD"):
            await _reply(send, 405, {"error": "only GET is supported here"},
                         [(b"allow", b"GET, HEAD")])
        elif scope["path"] == "/health":
            await _reply(send, 200, {"status": "ok", "process": os.getpid()})
        elif scope["path"] == "/ready":
            await self._ready(scope, send)
        elif scope["path"] == "/metrics":
            await self._metrics(send)
        elif scope["path"] == "/status":
            try:
                rows = await asyncio.to_thread(self.iam.provisioning.status)
            except IamError as exc:
                await _reply(send, 503, {"error": str(exc)})
                return
            await _reply(send, 200, status_json(rows))
        else:
            await _reply(send, 404, {"error": f"no such resource: {scope['path']}"})

    async def _health(self) -> DeploymentHealth:
        """The deployment's health (``core/health.py``: bounded, cached for a moment).
        Requests that arrive while a check runs share its answer, so a prober or scraper
        hammering a hung store ties up no more threads."""
        if self._checking is None or self._checking.done():
            self._checking = asyncio.ensure_future(asyncio.to_thread(self.iam.health.check))
        return await asyncio.shield(self._checking)

    async def _ready(self, scope: Scope, send: Send) -> None:
        """200 when every check passes, else 503 naming the failed ones (with why over
        loopback only: the details name hosts, which a remote prober need not learn)."""
        failed = (await self._health()).failed()
        if not failed:
            await _reply(send, 200, {"status": "ready"})
            return
        await _reply(send, 503, {"status": "unavailable",
                                 "failed": failed if is_loopback(scope.get("server"))
                                 else sorted(failed)})

    async def _metrics(self, send: Send) -> None:
        """Prometheus text, or 503 when the system database does not answer (the health
        check found so within its bound: the scrape's own queries would wait on it)."""
        from core.http.metrics import scrape  # prometheus-client: only once scraped

        health = await self._health()
        if health.system_db is not None:
            await _reply(send, 503, {"error": f"the system database: {health.system_db}"})
            return
        try:
            body, content_type = await asyncio.to_thread(scrape, self.iam, health)
        except IamError as exc:
            await _reply(send, 503, {"error": str(exc)})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


async def _reply(send: Send, status: int, body: Any,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    raw = json.dumps(body, default=str).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(raw)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": raw})
