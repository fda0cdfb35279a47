"""Serving: the uvicorn server of :class:`HttpApp` on a socket from ``listening.py``, and
the provisioning workers with it on one event loop until SIGINT or SIGTERM.

A first signal lets the jobs in flight finish, then returns; a second stops at once (the
leases of unfinished jobs then expire and another worker runs them again). Every job
outcome is one log line; requests and secrets are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from typing import Any

from core.errors import IamError
from core.http.app import HttpApp
from core.iam import Iam
from core.inbound import MOUNT, Limits
from core.provisioning.outbox import Job, JobState

log = logging.getLogger("mware_iam.serve")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
        level = {JobState.DEAD: logging.ERROR, JobState.SKIPPED: logging.INFO}.get(
            state, logging.WARNING)
        log.log(level, "%s: %s after attempt %d: %s", what, state.value, job.attempts, error)


def http_server(iam: Iam, tls: tuple[str, str] | None = None,
                limits: Limits | None = None) -> Any:
    """A uvicorn server for :class:`HttpApp` that leaves signals to its caller (this
    process's handlers, or none on a background thread)."""
    import uvicorn  # here, not at the top: the other commands need not load it

    from core.http.hardening import Guard, uvicorn_settings
    from core.inbound.app import ScimApplication

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    cert, key = tls or (None, None)
    return Server(uvicorn.Config(Guard(HttpApp(iam, ScimApplication(iam, limits)), iam),
                                 lifespan="off", log_config=None, access_log=False,
                                 server_header=False, ssl_certfile=cert, ssl_keyfile=key,
                                 **uvicorn_settings()))




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
    log.info("serving %s://%s:%d (SCIM 2.0 at %s, GET /health, /ready, /status)", scheme, host,
             port, MOUNT)
    try:
        await server.serve(sockets=[sock])
    finally:
        stop.set()  # the server ended (or failed): the workers stop too
        watcher.cancel()
        server.config.app.close()
