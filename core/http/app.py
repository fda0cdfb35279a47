"""The ASGI application of ``mware-iam serve``: the SCIM API under ``/scim2``,
``GET /health``, ``GET /status`` (the JSON of ``provisioning status --json``) and
``GET /metrics`` (Prometheus text, ``core/http/metrics.py``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from core.errors import IamError
from core.iam import Iam
from core.inbound import MOUNT
from core.provisioning.status import status_json

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class HttpApp:
    """The ASGI application of ``serve``: the SCIM API under ``/scim2``, ``GET /health``,
    ``GET /status`` and ``GET /metrics``."""

    def __init__(self, iam: Iam, scim: Any = None) -> None:
        self.iam = iam
        self.scim = scim
        self.jit: Any = None
        if scim is not None:  # JIT logins authenticate the application as SCIM does
            from core.jit.http import JitApplication
            self.jit = JitApplication(iam, scim)

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
        elif self.jit is not None and path.startswith("/jit/"):
            await self.jit(scope, receive, send)
        elif scope["method"] not in ("GET", "HEAD"):
            await _reply(send, 405, {"error": "only GET is supported here"},
                         [(b"allow", b"GET, HEAD")])
        elif scope["path"] == "/health":
            await _reply(send, 200, {"status": "ok"})
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

    async def _metrics(self, send: Send) -> None:
        from core.http.metrics import scrape  # prometheus-client: only once scraped

        try:
            body, content_type = await asyncio.to_thread(scrape, self.iam)
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
