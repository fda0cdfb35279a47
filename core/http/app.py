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

from sqlalchemy import text

from core.errors import IamError
from core.http.hardening import is_loopback
from core.iam import Iam
from core.inbound import MOUNT
from core.provisioning.status import status_json

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The longest ``/ready`` waits for its checks: a store that does not answer by then fails.
READY_SECONDS = 5.0
#: The system database's name among ``/ready``'s checks.
SYSTEM_DB = "system-db"


class HttpApp:
    """The ASGI application of ``serve``: the SCIM API under ``/scim2``, ``GET /health``,
    ``GET /ready``, ``GET /status`` and ``GET /metrics``."""

    def __init__(self, iam: Iam, scim: Any = None) -> None:
        self.iam = iam
        self.scim = scim
        #: ``POST /jit/{idp}``, built at the first JIT login (see :meth:`_jit`).
        self.jit: Any = None
        #: The ``/ready`` check running now (its answer goes to every request waiting).
        self._readiness: asyncio.Future[dict[str, str]] | None = None

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

    async def _ready(self, scope: Scope, send: Send) -> None:
        """200 when every check passes, else 503 naming the failed ones (with why over
        loopback only: the details name hosts, which a remote prober need not learn).
        Requests that arrive while a check runs share its answer, so a prober hammering a
        hung store ties up no more threads."""
        if self._readiness is None or self._readiness.done():
            self._readiness = asyncio.ensure_future(self._failed_checks())
        failed = await asyncio.shield(self._readiness)
        if not failed:
            await _reply(send, 200, {"status": "ready"})
            return
        await _reply(send, 503, {"status": "unavailable",
                                 "failed": failed if is_loopback(scope.get("server"))
                                 else sorted(failed)})

    async def _failed_checks(self) -> dict[str, str]:
        """The system database or each enabled userstore that does not answer within
        ``READY_SECONDS`` (together), and why."""
        late = f"did not answer within {READY_SECONDS:g} s"
        deadline = asyncio.get_running_loop().time() + READY_SECONDS
        try:
            domains = await asyncio.wait_for(asyncio.to_thread(self._enabled_domains),
                                             READY_SECONDS)
        except IamError as exc:
            return {SYSTEM_DB: str(exc)}
        except TimeoutError:
            return {SYSTEM_DB: late}
        checks = {d: asyncio.ensure_future(asyncio.to_thread(self._store_failure, d))
                  for d in domains}
        if not checks:
            return {}
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        await asyncio.wait(checks.values(), timeout=remaining)
        failed: dict[str, str] = {}
        for domain, check in checks.items():
            if not check.done():
                check.cancel()  # its thread ends with the store's own timeout
                failed[domain] = late
            elif reason := check.result():
                failed[domain] = reason
        return failed

    def _enabled_domains(self) -> list[str]:
        """The enabled userstores, after a query proves the system database answers."""
        with self.iam.db.transaction() as conn:
            conn.execute(text("SELECT 1"))
        return self.iam.stores.domains

    def _store_failure(self, domain: str) -> str | None:
        """Why ``domain``'s store does not answer (None: it does)."""
        try:
            health = self.iam.stores.store(domain).health()
        except IamError:  # removed or disabled meanwhile: not a failure
            return None
        return None if health.reachable else health.detail or "does not answer"

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
