"""The inbound SCIM 2.0 ASGI application: scim2-server's protocol over the identity service.

What this layer adds to scim2-server: authentication as an application (a bearer token
issued to it, or HTTP Basic with the application's name and one of its tokens; a successful
check is remembered for a few seconds, see ``tokencache.py``), the application's userstore
domain and proxy mode for the request, a token bucket per application (429 with
``Retry-After``) and a body size limit on every request (413); ``service.py`` adds the
leniency real clients need (Microsoft Entra's ``emails[type eq "work"].value`` on users
without a work email; its capitalised ops and ``"False"`` booleans scim2-models already
reads). Each request runs in one worker thread: the identity service is synchronous, and
a SCIM operation's reads and writes share one transaction there.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from scim2_models import (
    PreconditionFailedException,
    SCIMException,
    UnauthorizedException,
)
from scim2_server.applications.asgi import ASGIApplication
from scim2_server.applications.base import BaseApplication
from scim2_server.handler import AsyncScimHandler, ScimHandler
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.routing import ROUTES, Operation

from core import metrics
from core.claims import SCIM_DIALECT
from core.db import LANE_CONNECTIONS
from core.errors import IamError
from core.inbound import Limits
from core.inbound.lane import Lane
from core.inbound.ratelimit import SharedTokenBuckets
from core.inbound.resources import ResourceMapper
from core.inbound.schemas import build_provider, mapped_paths, stored_types
from core.inbound.service import IamScimService
from core.inbound.storage import (
    Client,
    IamScimStorage,
    conditional,
    current_client,
    in_lane,
)
from core.inbound.tokencache import TokenCache
from core.inbound.unstored import Unstored
from core.userstores.query_guard import Cancellation, current_cancellation

log = logging.getLogger("mware_iam.scim")

#: How often a write without If-Match that lost a race to another write is served again.
RACE_RETRIES = 5
#: The status a request is counted with when its client left before the answer (nginx's).
CLIENT_GONE = 499
#: Threads of the lane for requests on a SQL store on a database server (see
#: ``ScimApplication``). Against the pool's six threads, under wrk on 2 cores: 10 to 15 %
#: less CPU per request (ours and PostgreSQL's) and 10 to 18 % more requests/s; 2 or 3
#: cost as little, and 4 leave more room beside slow searches (bench/RESULTS.md). Each
#: keeps a connection, which the engine's pool counts in (``core.db.LANE_CONNECTIONS``).
SERVER_LANE_THREADS = LANE_CONNECTIONS
#: The route label of a request that matched no route or no resource type's endpoint.
UNMATCHED = "unmatched"

#: The application rate buckets' file in the home (``ratelimit.SharedTokenBuckets``).
BUCKETS_FILE = "ratelimit.buckets"

Scope = dict[str, Any]
_HEADER_UNSAFE = {c: f"%{c:02X}" for c in [*range(0x20), 0x7F]}


class TooManyRequestsException(SCIMException):
    status = 429

    def __init__(self, wait: float) -> None:
        #: Whole seconds, at least 1: what ``Retry-After`` says, and the detail with it.
        self.retry_after = max(1, math.ceil(wait))
        super().__init__(detail=f"rate limit reached: retry in {self.retry_after} s")


class Request(ScimRequest):
    """A request whose headers are also kept by lower-cased name (``by_name``, repeated
    ones joined with commas as :meth:`ScimRequest.header` joins them)."""

    by_name: dict[str, str]

    def header(self, name: str) -> str | None:
        return self.by_name.get(name.lower())


def _base_url(scope: Scope, raw_host: bytes) -> str:
    """The URL a request's paths are relative to: its ``Host`` header (the server's
    address when it sent none) and the scope's root path."""
    host = raw_host.decode()
    if not host and scope.get("server"):
        host = "{}:{}".format(*scope["server"])
    return f"{scope['scheme']}://{host}{scope.get('root_path', '')}"


class ScimApplication(ASGIApplication):
    """ASGI: serve ``/scim2/...`` for the applications of one deployment."""

    def __init__(self, iam: Any, limits: Limits | None = None) -> None:
        self.iam = iam
        self.limits = limits or Limits()
        external = iam.claims.external_to_local(SCIM_DIALECT)
        provider = build_provider(external, self.limits)
        paths = mapped_paths(external)
        unstored = Unstored(provider.schemas, stored_types(paths))
        BaseApplication.__init__(self, provider, IamScimService(provider, self.limits,
                                                                unstored))
        mapper = ResourceMapper(provider.model_for("User"),  # type: ignore[arg-type]
                                provider.model_for("Group"), paths)  # type: ignore[arg-type]
        self.scim_storage = IamScimStorage(iam.identity, mapper, paths, self.limits, iam.db)
        self.handler = InThreadHandler(ScimHandler(self.service, self.scim_storage),
                                       self._lane)
        #: One bucket per application for every ``serve`` process of this home.
        self.buckets = SharedTokenBuckets(self.limits.rate, self.limits.burst,
                                          iam.home.path / BUCKETS_FILE)
        #: Revoking a token takes effect here within TOKEN_CACHE_SECONDS.
        self.tokens: TokenCache[Client] = TokenCache()
        #: Requests on a SQL userstore run in a lane, never in the event loop's shared
        #: pool: a lane's threads keep their connections and take calls from one queue,
        #: where the pool's six threads and its futures cost more switching than the
        #: work they overlap (:mod:`core.inbound.lane`). On SQLite (with the system
        #: database in SQLite too) the work is CPU-bound under the GIL and SQLite takes one
        #: writer at a time: one thread (15 to 20 % less CPU per request than six). On a
        #: database server a request also waits on the network: SERVER_LANE_THREADS, so a
        #: slow search holds one of them while the others go on (measured in
        #: bench/RESULTS.md). Bulk requests, and requests on LDAP stores, run in the pool.
        self._embedded_lane = Lane("scim-sqlite", finish=self.scim_storage.release)
        self._server_lane = Lane("scim-sql", finish=self.scim_storage.release,
                                 threads=SERVER_LANE_THREADS)
        #: Route templates by what a request matched (bounded: known endpoints only).
        self._routes: dict[tuple[str, Operation, str | None, bool, bool], str] = {}

    def close(self) -> None:
        """Stop the lanes' threads (the requests in them finish first)."""
        self._embedded_lane.close()
        self._server_lane.close()
        self.buckets.close()

    def _lane(self, request: ScimRequest) -> Lane | None:
        """The lane of a request (None: the event loop's shared pool)."""
        client: Client | None = request.subject
        if client is None or self.service.match(request).operation is Operation.bulk:
            return None
        try:
            engine = getattr(self.iam.stores.store(client.domain), "engine", None)
        except IamError:  # a disabled or removed store: the handler answers why
            return None
        if engine is None:  # LDAP
            return None
        embedded = engine.dialect.name == "sqlite" and self.iam.db.dialect == "sqlite"
        return self._embedded_lane if embedded else self._server_lane

    @staticmethod
    def get_base_url(scope: Scope) -> str:
        return _base_url(scope, dict(scope["headers"]).get(b"host", b""))

    async def read_request(self, scope: Scope, receive: Any) -> ScimRequest:
        """scim2-server's reading of an ASGI request (the same fields, the body up to one
        byte more than the service accepts), with the headers decoded once into a
        :class:`Request`, whose :meth:`~Request.header` is a dict lookup instead of a scan
        of every header (four a request), and no query parsing when there is no query."""
        headers: list[tuple[str, str]] = []
        by_name: dict[str, str] = {}
        raw_host = b""
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode(), raw_value.decode()
            headers.append((name, value))
            key = name.lower()
            by_name[key] = value if key not in by_name else f"{by_name[key]}, {value}"
            if raw_name == b"host":
                raw_host = raw_value  # the last one, as get_base_url's dict() takes it
        query_string = scope["query_string"]
        request = Request(
            method=scope["method"],
            base_url=_base_url(scope, raw_host),
            path=self.split_path(self.get_path(scope)),
            query=dict(parse_qsl(query_string.decode(), keep_blank_values=True))
            if query_string else {},
            headers=headers)
        request.by_name = by_name
        limit = self.service.max_body_size(request)
        body = b""
        more_body = True
        while more_body:
            message = await receive()
            if limit is None or len(body) <= limit:
                body += message.get("body", b"")
            more_body = message.get("more_body", False)
        request.body = body if limit is None else body[: limit + 1]
        return request

    # -------------------------------------------------------------- requests
    @staticmethod
    def _credentials(request: ScimRequest) -> tuple[str | None, str]:
        """The application name (HTTP Basic only) and the token a request presents."""
        scheme, _, credentials = (request.header("Authorization") or "").partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return None, credentials.strip()
        if scheme == "basic":
            try:
                name, _, token = base64.b64decode(credentials.strip(), validate=True
                                                  ).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise UnauthorizedException(detail="malformed Basic credentials") from None
            return name, token
        raise UnauthorizedException(
            detail="authenticate with 'Authorization: Bearer <application token>'")

    def remembered(self, request: ScimRequest) -> Client | None:
        """The request's application if its token checked out moments ago (no I/O, so the
        event loop may call it), else None: then :meth:`authenticate` decides."""
        try:
            name, token = self._credentials(request)
        except UnauthorizedException:
            return None
        client = self.tokens.get(token) if token else None
        return client if client is not None and name in (None, client.application) else None

    def authenticate(self, request: ScimRequest) -> Client:
        """The application a request's credentials belong to, or 401."""
        name, token = self._credentials(request)
        client = self.tokens.get(token) if token else None
        if client is None:
            try:
                app = self.iam.authenticate_token(token) if token else None
            except IamError as exc:
                raise UnauthorizedException(detail=str(exc)) from None
            if app is not None:
                client = Client.of(app)
                self.tokens.put(token, client)
        if client is None or (name is not None and name != client.application):
            raise UnauthorizedException(detail="the token is unknown or revoked")
        return client

    # scim2-server's hooks: check_auth (unless needs_auth says the request is open:
    # /ServiceProviderConfig), then get_subject, then the handler (see :meth:`serve`).
    def check_auth(self, request: ScimRequest) -> None:
        """Authenticate the request's application (401) and take its turn in the
        application's token bucket (429). A token not checked in the last seconds was
        looked up in a worker thread by :meth:`serve` before this runs."""
        looked_up = request.subject
        client = (looked_up if isinstance(looked_up, Client)
                  else self.remembered(request) or self.authenticate(request))
        request.subject = client  # a refused request is counted for its application too
        wait = self.admit(client, "scim")
        if wait > 0:
            raise TooManyRequestsException(wait)

    def admit(self, client: Client, face: str) -> float:
        """Take ``client``'s turn in its application's token bucket: 0, or the seconds to
        wait (the refusal counted for ``face``: ``scim`` or ``jit``)."""
        wait = self.buckets.take(client.application)
        if wait > 0:
            metrics.child(metrics.RATE_LIMITED, client.application, face).inc()
        return wait

    async def client_of(self, request: ScimRequest) -> Client:
        """The request's application: remembered, or looked up in a worker thread (a
        database read, never on the event loop that serves every client); 401 if none."""
        remembered = self.remembered(request)
        if remembered is not None:
            return remembered
        return await asyncio.get_running_loop().run_in_executor(
            None, self.authenticate, request)

    async def serve(self, request: ScimRequest) -> ScimResponse:
        """Serve a request; a token the cache does not remember is looked up in a worker
        thread (a database read), never on the event loop that serves every client.

        scim2-server's ``serve`` and ``dispatch_request`` in one: the route is asked once
        whether it needs authentication (they asked again), and any exception is answered
        by :meth:`handle_exception` as theirs."""
        try:
            if self.needs_auth(request):
                request.subject = await self.client_of(request)
                self.check_auth(request)
            request.subject = self.get_subject(request)
            response = await self.handler.handle(request)
        except Exception as exception:
            response = self.handle_exception(request, exception)
        return self.finalize_response(request, response)

    def get_subject(self, request: ScimRequest) -> Client | None:
        """The application :meth:`check_auth` authenticated (None for an open request)."""
        subject: Client | None = request.subject
        return subject

    def handle_exception(self, request: ScimRequest, exception: Exception) -> ScimResponse:
        response = super().handle_exception(request, exception)
        if isinstance(exception, TooManyRequestsException):
            response.headers["Retry-After"] = str(exception.retry_after)
        if not isinstance(exception, SCIMException):
            # A bug, logged with its traceback; the client gets no internals.
            response.body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                             "status": "500", "detail": "internal error (logged)"}
        return response

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Serve a request; a client that disconnects before its answer cancels the store
        searches of its request (``core/userstores/query_guard.py``): nobody would read
        the answer, and a search can hold a database backend for long."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        began = time.perf_counter()
        request = await self.read_request(scope, receive)
        cancellation = Cancellation()
        current_cancellation.set(cancellation)  # copied into the watcher and the thread
        gone = False

        async def cancel_when_gone() -> None:
            nonlocal gone
            await _disconnect(receive)
            gone = True
            # Stopping a statement is I/O (PostgreSQL's cancel request, MariaDB's KILL
            # QUERY on a new connection): not on the loop that serves everyone else.
            await asyncio.get_running_loop().run_in_executor(None, cancellation.cancel)
            log.info("client gone: %s %s cancelled", request.method, scope.get("path"))

        # The request is served in this task; only the watcher is a task of its own (a
        # second task and asyncio.wait per request cost more than the watcher does).
        watcher = asyncio.ensure_future(cancel_when_gone())
        try:
            response = await self.serve(request)
        finally:
            if not gone:
                watcher.cancel()
        if gone:  # the answer has nobody to go to
            await watcher  # the searches cancelled and logged
            self._count(request, CLIENT_GONE, began)
            return
        self._count(request, int(response.status), began)
        await self.send_response(response, send)

    def _count(self, request: ScimRequest, status: int, began: float) -> None:
        """The request in the metrics: by route template, status and application."""
        client: Client | None = request.subject
        metrics.scim_request(self.route_of(request), status,
                             client.application if client else "", time.perf_counter() - began)

    def route_of(self, request: ScimRequest) -> str:
        """A request's route template (``PATCH /Users/{id}``), or ``unmatched`` for a path
        that is no route or endpoint: a metric label, so never the raw path."""
        try:
            target = self.service.match(request)
        except SCIMException:
            return UNMATCHED
        key = (request.method.upper(), target.operation, target.endpoint,
               target.resource_id is not None, target.me)
        route = self._routes.get(key)
        if route is None:
            if target.endpoint is not None and \
                    self.service.get_resource_type_by_endpoint(target.endpoint) is None:
                return UNMATCHED  # not remembered: the client chose that name
            route = self._routes[key] = _template(*key)
        return route

    def finalize_response(self, request: ScimRequest, response: ScimResponse
                          ) -> ScimResponse:
        """scim2-server's headers; control characters of the request's URL (a ``%00`` in
        an id) are sent percent-encoded in ``Location``, as no header may hold them."""
        headers = response.headers
        # BaseApplication.finalize_response's two headers, the URL built only when used.
        if "Location" not in headers:
            headers["Location"] = request.url
        headers.setdefault("Cache-Control", "no-cache")
        # str.translate with a mapping to several characters takes its slow path on every
        # character (some 10 us a response): only for a value that holds a control one.
        for value in headers.values():
            if not value.isprintable():
                response.headers = {name: value.translate(_HEADER_UNSAFE)
                                    for name, value in headers.items()}
                break
        return response

    @staticmethod
    async def send_response(response: ScimResponse, send: Any) -> None:
        body = b"" if response.body is None else json.dumps(response.body).encode()
        headers = [(n.encode(), v.encode()) for n, v in response.headers.items()]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": int(response.status),
                    "headers": headers})
        await send({"type": "http.response.body", "body": body})


class InThreadHandler(AsyncScimHandler):
    """scim2-server's handler hook: each request is served whole by the synchronous handler
    in one worker thread (the identity service is synchronous, and an operation's reads and
    writes share one transaction there), in the lane ``lane`` picks for it (None: the
    event loop's shared pool).

    It has no asynchronous storage: only :meth:`handle` is used, and it calls ``sync``.
    """

    def __init__(self, sync: ScimHandler,
                 lane: Callable[[ScimRequest], Lane | None]) -> None:
        self.service = sync.service
        self.sync = sync
        self.lane = lane

    async def handle(self, request: ScimRequest) -> ScimResponse:
        if request.subject is not None:  # copied into the worker thread's context
            current_client.set(request.subject)
        conditional.set(bool(request.header("If-Match")))
        lane = self.lane(request)
        in_lane.set(lane is not None)
        run = contextvars.copy_context().run
        if lane is not None:
            return await lane.call(run, self._handle, request)
        return await asyncio.get_running_loop().run_in_executor(
            None, run, self._handle, request)

    def _handle(self, request: ScimRequest) -> ScimResponse:
        """Serve a request; a write that lost a race is served again.

        A PUT or PATCH reads the resource, applies the change and writes it if the version
        is still the one it read. Another write in between makes that check fail: with
        the client's own ``If-Match`` that is the client's 412, without one it is ours, so
        the request runs again on the new state (its failed attempt wrote nothing)."""
        retries = 0 if request.header("If-Match") else RACE_RETRIES
        for _ in range(retries):
            try:
                return self.sync.handle(request)
            except PreconditionFailedException:
                continue
        return self.sync.handle(request)  # the last try answers, whatever it is


def _template(method: str, operation: Operation, endpoint: str | None, with_id: bool,
              me: bool) -> str:
    """The pattern of scim2-server's route that matched, its endpoint filled in."""
    for r in ROUTES:
        if r.method == method and r.operation is operation and (r.pattern == "/Me") == me \
                and ("{endpoint}" in r.pattern) == (endpoint is not None) \
                and ("{resource_id}" in r.pattern) == with_id:
            return r.pattern.replace("{endpoint}", endpoint or "").replace(
                "{resource_id}", "{id}")
    return UNMATCHED


async def _disconnect(receive: Any) -> None:
    """Return when the client has disconnected (the body has been read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass
