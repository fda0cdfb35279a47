"""``mware-iam serve`` and ``mware-iam worker``: the long-running processes.

Both run a provisioning worker pool until SIGINT or SIGTERM, then let the jobs in flight
finish and exit 0 (a second signal stops at once; the leases of unfinished jobs then
expire and another worker runs them again). ``serve`` also answers HTTP on host:port (the
inbound SCIM API will be mounted here): ``GET /health`` and ``GET /status`` (the JSON of
``provisioning status --json``). The HTTP server (uvicorn) and the workers share one event
loop. Every job outcome is one log line on stderr; requests and secrets are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine, Iterator, MutableMapping
from typing import Any

import click

from core.cli.context import current_iam
from core.cli.provisioning import status_json
from core.errors import IamError, InvalidInput
from core.iam import Iam
from core.identity.events import Face, Initiator
from core.inbound import MOUNT, Limits
from core.provisioning.outbox import Job, JobState

log = logging.getLogger("mware_iam.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("httpx", "httpcore"):  # a line per request: the job lines say enough
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _pool_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--poll", type=click.FloatRange(0.05, 60), default=0.5,
                     show_default=True, metavar="SECONDS",
                     help="How often to look for jobs written by other processes.")(f)
    return click.option("--capacity", type=click.IntRange(1, 10_000), default=32,
                        show_default=True,
                        help="Jobs run at once by this process (each target also has its "
                             "own concurrency limit).")(f)


# ---------------------------------------------------------------- job log
class JobLog:
    """A pool listener: one line per job outcome (the error, for a failure)."""

    def __init__(self, iam: Iam) -> None:
        self.iam = iam

    def __call__(self, job: Job, state: JobState) -> None:
        what = f"job {job.pk} {job.operation.value} {job.name} -> {job.target}"
        if state is JobState.SUCCEEDED:
            log.info("%s: succeeded", what)
            return
        try:
            error = self.iam.provisioning.job(job.pk)[0].last_error
        except IamError as exc:
            error = f"(cannot read the job: {exc})"
        level = logging.ERROR if state is JobState.DEAD else logging.WARNING
        log.log(level, "%s: %s after attempt %d: %s", what, state.value, job.attempts, error)


# ---------------------------------------------------------------- HTTP face
class HttpApp:
    """The ASGI application of ``serve``: the SCIM API under ``/scim2``, ``GET /health``
    and ``GET /status``."""

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
        elif scope["path"] == "/status":
            try:
                rows = await asyncio.to_thread(self.iam.provisioning.status)
            except IamError as exc:
                await _reply(send, 503, {"error": str(exc)})
                return
            await _reply(send, 200, status_json(rows))
        else:
            await _reply(send, 404, {"error": f"no such resource: {scope['path']}"})


async def _reply(send: Send, status: int, body: Any,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    raw = json.dumps(body, default=str).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(raw)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": raw})


def http_server(iam: Iam, tls: tuple[str, str] | None = None,
                limits: Limits | None = None) -> Any:
    """A uvicorn server for :class:`HttpApp` that leaves signals to its caller (this
    process's handlers, or none on a background thread)."""
    import uvicorn  # here, not at the top: the other commands need not load it

    from core.inbound.app import ScimApplication

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    cert, key = tls or (None, None)
    return Server(uvicorn.Config(HttpApp(iam, ScimApplication(iam, limits)), lifespan="off",
                                 log_config=None, access_log=False, server_header=False,
                                 ssl_certfile=cert, ssl_keyfile=key))


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one clear error (port in use, bad host)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise InvalidInput(f"--host {host}: cannot listen there: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        hint = {errno.EADDRINUSE: "; another process listens there: choose another --port",
                errno.EACCES: "; ports below 1024 need privileges: choose another --port",
                errno.EADDRNOTAVAIL: "; this machine has no such address: check --host"}
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror}"
                           f"{hint.get(exc.errno or 0, '')}") from None
    sock.setblocking(False)
    return sock


# ---------------------------------------------------------------- running
async def run_until_signalled(iam: Iam, capacity: int, poll: float,
                              sock: socket.socket | None = None,
                              tls: tuple[str, str] | None = None,
                              limits: Limits | None = None) -> None:
    """Run the workers (and the HTTP server on ``sock``) until SIGINT/SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def first_signal(sig: signal.Signals) -> None:
        log.info("%s received: finishing the jobs in flight (again to stop at once)",
                 sig.name)
        for s in STOP_SIGNALS:  # a second signal takes the default action
            loop.remove_signal_handler(s)
        stop.set()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, first_signal, sig)
    pool = iam.provisioning.worker_pool(capacity, poll)
    pool.listeners.append(JobLog(iam))
    log.info("worker %s started (capacity %d, polling every %g s)", pool.owner, capacity,
             poll)
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(pool.run(stop))
            if sock is not None:
                tasks.create_task(_serve_http(iam, sock, stop, tls, limits))
    finally:
        pool.close()
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
    log.info("worker %s stopped", pool.owner)


async def _serve_http(iam: Iam, sock: socket.socket, stop: asyncio.Event,
                      tls: tuple[str, str] | None = None,
                      limits: Limits | None = None) -> None:
    server = http_server(iam, tls, limits)
    host, port = sock.getsockname()[:2]

    async def stop_when_told() -> None:
        await stop.wait()
        server.should_exit = True

    watcher = asyncio.create_task(stop_when_told())
    scheme = "https" if tls else "http"
    log.info("serving %s://%s:%d (SCIM 2.0 at %s, GET /health, GET /status)", scheme, host,
             port, MOUNT)
    try:
        await server.serve(sockets=[sock])
    finally:
        stop.set()  # the server ended (or failed): the workers stop too
        watcher.cancel()
        server.config.app.close()


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop's event loop (asyncio's own where uvloop is not installed:
    it is not on Windows)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


@click.command("worker")
@_pool_options
def worker(capacity: int, poll: float) -> None:
    """Run provisioning jobs until SIGINT/SIGTERM (jobs in flight finish first).

    Any number of worker processes may share one system database; on PostgreSQL and
    MariaDB they share the queue safely (a job is leased by one worker at a time).
    """
    iam = current_iam()
    _configure_logging()
    _run(run_until_signalled(iam, capacity, poll))


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on (0: any free port, logged at start).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Serve HTTPS with this PEM certificate (with --tls-key).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The PEM private key of --tls-cert.")
@click.option("--scim-rate", type=click.FloatRange(0), default=Limits.rate,
              show_default=True, metavar="PER_SECOND",
              help="SCIM requests a second per application (0: unlimited); more get 429.")
@click.option("--scim-burst", type=click.IntRange(1), default=Limits.burst, show_default=True,
              help="SCIM requests an application may send at once above the rate.")
@click.option("--scim-max-results", type=click.IntRange(1, 1000), default=Limits.max_results,
              show_default=True, help="Most resources one SCIM list or search returns.")
@click.option("--scim-max-bytes", type=click.IntRange(1024), default=Limits.max_payload_bytes,
              show_default=True, help="Largest SCIM request body (Bulk included); more: 413.")
@_pool_options
def serve(host: str, port: int, tls_cert: str | None, tls_key: str | None, scim_rate: float,
          scim_burst: int, scim_max_results: int, scim_max_bytes: int, capacity: int,
          poll: float) -> None:
    """Serve the inbound SCIM 2.0 API (/scim2), GET /health and GET /status, and run
    provisioning workers.

    SCIM clients authenticate as an application (`mware-iam app token APP`): with
    'Authorization: Bearer TOKEN', or HTTP Basic with the application's name and a token.
    Stops on SIGINT/SIGTERM after the jobs in flight finish. Like the console, the first
    start of a deployment seeds sample_config/.
    """
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    tls = (tls_cert, tls_key) if tls_cert and tls_key else None
    iam = current_iam()
    sock = listen(host, port)
    _configure_logging()
    from core.configfile import seed_sample

    changes = seed_sample(iam, Initiator.admin(Face.CONFIG))
    if changes:
        log.info("new deployment: applied the sample configuration (%d changes)", len(changes))
    limits = Limits(rate=scim_rate, burst=scim_burst, max_results=scim_max_results,
                    max_payload_bytes=scim_max_bytes,
                    default_count=min(Limits.default_count, scim_max_results))
    _run(run_until_signalled(iam, capacity, poll, sock, tls, limits))
