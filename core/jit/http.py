"""``POST /jit/{idp}``: the JIT intake on serve's HTTP app.

The caller authenticates as the application being logged into, exactly as for SCIM (the
SCIM application's token check, its cache and its per-application rate limit are reused).
Every refusal is JSON ``{"error": ...}`` saying what was wrong, never which key.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from scim2_models import UnauthorizedException

from core import metrics
from core.errors import IamError, StoreUnavailable
from core.jit.errors import LoginRefused
from core.jit.intake import JitIntake

log = logging.getLogger("mware_iam.jit")

MOUNT = "/jit"
MAX_BODY_BYTES = 512 * 1024

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _Headers:
    """The request's headers as the SCIM application's token check reads them."""

    def __init__(self, scope: Scope) -> None:
        self._h = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}

    def header(self, name: str) -> str | None:
        return self._h.get(name.lower())


def _outcome(exc: Exception) -> str:
    """The outcome label of a login the intake did not apply."""
    if isinstance(exc, LoginRefused):
        return "refused"
    if isinstance(exc, StoreUnavailable):
        return "unavailable"
    return "invalid" if isinstance(exc, IamError) else "error"


class JitApplication:
    def __init__(self, iam: Any, scim: Any) -> None:
        self.scim = scim
        self.intake = JitIntake(iam)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, body = await self._serve(scope, receive)
        except LoginRefused as exc:
            status, body = exc.status, {"error": str(exc)}
        except StoreUnavailable as exc:
            status, body = 503, {"error": str(exc)}
        except IamError as exc:
            status, body = 400, {"error": str(exc)}
        except Exception:
            log.exception("JIT login failed")
            status, body = 500, {"error": "internal error (logged)"}
        headers = [(b"retry-after", str(body.pop("retry_after")).encode())] \
            if "retry_after" in body else []
        raw = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(raw)).encode()), *headers]})
        await send({"type": "http.response.body", "body": raw})

    async def _serve(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        idp = unquote(scope["path"][len(MOUNT):].strip("/"))
        if scope["method"] != "POST":
            return 405, {"error": "send the login with POST /jit/{identity provider}"}
        if not idp or "/" in idp:
            return 404, {"error": "the path must be /jit/{identity provider}"}
        request = _Headers(scope)
        try:
            client = await self.scim.client_of(request)
        except UnauthorizedException as exc:
            metrics.JIT_LOGINS.labels("", "unauthenticated").inc()
            return 401, {"error": f"application authentication failed: {exc.detail}"}
        wait = self.scim.admit(client, "jit")
        if wait > 0:
            metrics.JIT_LOGINS.labels("", "rate_limited").inc()
            return 429, {"error": f"rate limit reached: retry in {wait:.1f} s",
                         "retry_after": max(1, int(wait + 0.999))}
        try:
            payload = await self._body(receive)
        except LoginRefused:
            metrics.JIT_LOGINS.labels("", "invalid").inc()
            raise
        recipient = self.scim.get_base_url(scope) + scope["path"]
        try:
            result = await asyncio.to_thread(self.intake.login, client.application, idp,
                                             payload, recipient)
        except Exception as exc:
            # The path's name is a label only once the intake found such a provider.
            known = not (isinstance(exc, LoginRefused) and exc.status == 404)
            metrics.JIT_LOGINS.labels(idp if known else "", _outcome(exc)).inc()
            raise
        metrics.JIT_LOGINS.labels(idp, "created" if result.created else "updated").inc()
        return (201 if result.created else 200), result.to_json()

    @staticmethod
    async def _body(receive: Receive) -> dict[str, Any]:
        raw = bytearray()
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if len(raw) > MAX_BODY_BYTES:
                raise LoginRefused(413, f"the body exceeds {MAX_BODY_BYTES} bytes")
            if not message.get("more_body"):
                break
        try:
            body = json.loads(raw)
        except ValueError:
            raise LoginRefused(400, 'the body must be JSON: {"id_token": ...} or '
                                    '{"saml_response": ...}') from None
        if not isinstance(body, dict):
            raise LoginRefused(400, "the body must be a JSON object")
        return body
