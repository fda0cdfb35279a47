"""The SCIM API on a background thread, for the console and the demo (``--scim PORT``) and
for tests: the same ``HttpApp`` ``mware-iam serve`` runs, on its own event loop."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from core.errors import StoreUnavailable
from core.inbound import MOUNT, Limits

START_SECONDS = 10.0


@contextlib.contextmanager
def scim_thread(iam: Any, port: int = 0, host: str = "127.0.0.1",
                limits: Limits | None = None, sock: socket.socket | None = None
                ) -> Iterator[str]:
    """Serve ``iam``'s SCIM API on host:port (port 0: any free one), or on ``sock`` already
    listening, until the block ends; yields its base URL."""
    from core.http.listening import listen
    from core.http.server import http_server

    if sock is None:
        sock = listen(host, port)  # a clear error for a port in use, before any thread
    host = sock.getsockname()[0]
    server = http_server(iam, limits=limits)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="scim-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_SECONDS
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            sock.close()
            raise StoreUnavailable(f"the SCIM server on {host}:{port} did not start")
        time.sleep(0.02)
    bound = sock.getsockname()[1]
    try:
        yield f"http://{host}:{bound}{MOUNT}"
    finally:
        server.should_exit = True
        thread.join(START_SECONDS)
        sock.close()
        server.config.app.close()
