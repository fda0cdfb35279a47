"""Local peers to provision to: the third-party ``scim2-server`` and a scriptable proxy.

The tests use them (``tests/peers.py`` re-exports this module) and so does
``mware-iam demo``, which starts a SCIM peer and puts a proxy in front of one target to
show a failing and recovering target.

``ScimServer`` runs ``scim2-server`` (in-memory, from the venv) as a subprocess on a
loopback port (a free one unless given), by default with dynamic tenants: every
``tenant()`` is a fresh, empty SCIM service under ``/<tenant>/v2``, so one process serves
many tests without state leaking between them.

``FaultProxy`` is a small threaded HTTP reverse proxy in front of a peer. Tests script what
it does with the next requests (answer a status, delay, drop the connection, lose the
response after forwarding), or declare an outage that every request meets until it is
over; other requests pass through. Loopback only, bounded in the number of scripted
faults and in delay.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

LOOPBACK = "127.0.0.1"
SCIM2_SERVER = Path(sys.executable).with_name("scim2-server")  # the venv's, else PATH's
if not SCIM2_SERVER.exists() and shutil.which("scim2-server"):
    SCIM2_SERVER = Path(str(shutil.which("scim2-server")))
START_SECONDS = 30.0  # a bound against a hang: a loaded machine starts a peer slowly
MAX_FAULTS = 100
#: Requests remembered by a proxy (tests read ``seen``; the demo's proxy runs for hours).
MAX_SEEN = 10_000
MAX_DELAY_SECONDS = 30.0
#: Headers the proxy does not pass on (hop-by-hop, or its own).
_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host",
                  "content-encoding", "proxy-connection", "te", "trailer", "upgrade",
                  "date", "server"})


class PeerUnavailable(RuntimeError):
    """The peer program is not installed or did not start."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Nobody listens on ``port`` (a socket in TIME_WAIT does not count, as for a server)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


# ---------------------------------------------------------------- scim2-server
class ScimServer:
    """One running ``scim2-server`` process; ``tenant()`` hands out fresh, empty services."""

    def __init__(self, process: subprocess.Popen[bytes], port: int,
                 bearer_tokens: Sequence[str]) -> None:
        self.process = process
        self.port = port
        self.origin = f"http://{LOOPBACK}:{port}"
        self.bearer_tokens = tuple(bearer_tokens)

    def tenant(self) -> str:
        """The SCIM base URL (…/v2) of a new, empty tenant."""
        return f"{self.origin}/t{uuid.uuid4().hex[:12]}/v2"


@contextlib.contextmanager
def scim_server(*args: str, bearer_tokens: Sequence[str] = (), port: int | None = None,
                tenants: bool = True) -> Iterator[ScimServer]:
    """Start ``scim2-server`` with ``args``; stop it afterwards. Raises PeerUnavailable.

    Without ``tenants`` the one service is at ``http://127.0.0.1:<port>/v2``.
    """
    if not SCIM2_SERVER.exists():
        raise PeerUnavailable(f"{SCIM2_SERVER} is not installed (pip install scim2-server)")
    tokens = [a for t in bearer_tokens for a in ("--bearer-token", t)]
    if port is None:
        port = free_port()
    elif not port_is_free(port):
        raise PeerUnavailable(f"port {port} on {LOOPBACK} is in use (another demo, or "
                              "another scim2-server, is running)")
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [str(SCIM2_SERVER), "--hostname", LOOPBACK, "--port", str(port),
             *(["--dynamic-tenants"] if tenants else []), *tokens, *args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_until_answering(process, f"http://{LOOPBACK}:{port}/v2/ServiceProviderConfig",
                                  log)
            yield ScimServer(process, port, bearer_tokens)
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def wait_until_answering(process: subprocess.Popen[bytes], url: str, log: Any,
                         what: str = "scim2-server", seconds: float = START_SECONDS) -> None:
    """Poll ``url`` until any HTTP answer, for at most ``seconds``.

    :raises PeerUnavailable: when ``process`` exits first (with the end of ``log``, the
        file its output goes to) or nothing answers in time.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            output = log.read().decode(errors="replace")[-2000:]
            raise PeerUnavailable(f"{what} exited with {process.returncode}: {output}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise PeerUnavailable(f"{what} did not answer {url} within {seconds:g} s")


# ---------------------------------------------------------------- fault proxy
@dataclass(frozen=True)
class Fault:
    """What the proxy does with one request."""

    kind: str  # "answer", "delay", "drop", "lose-response"
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    seconds: float = 0.0

    @classmethod
    def answer(cls, status: int, body: Any = None, **headers: str) -> Fault:
        """Answer ``status`` (a JSON ``body``; ``retry_after="2"`` -> Retry-After: 2)."""
        raw = b"" if body is None else json.dumps(body).encode()
        pairs = tuple((k.replace("_", "-").title(), v) for k, v in headers.items())
        if raw:
            pairs += (("Content-Type", "application/scim+json"),)
        return cls("answer", status=status, headers=pairs, body=raw)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait, then pass the request on (a slow peer; the client times out first)."""
        return cls("delay", seconds=min(seconds, MAX_DELAY_SECONDS))

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without an answer; the peer never sees the request."""
        return cls("drop")

    @classmethod
    def lose_response(cls) -> Fault:
        """Pass the request on, then close the connection instead of answering."""
        return cls("lose-response")


PASS = Fault("pass")


@dataclass(frozen=True)
class Seen:
    """A request as it reached the proxy (before any fault)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FaultProxy:
    """A reverse proxy on a free loopback port in front of ``upstream`` (an origin URL)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.hostname != LOOPBACK:
            raise ValueError("the fault proxy only fronts loopback peers")
        self.upstream = f"{parts.scheme}://{parts.netloc}"
        self.seen: list[Seen] = []
        self._faults: deque[Fault] = deque()
        self._outage: Fault | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._client = httpx.Client(base_url=self.upstream, timeout=MAX_DELAY_SECONDS)
        self._server = _ProxyServer((LOOPBACK, 0), _ProxyHandler, self)
        self.origin = f"http://{LOOPBACK}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    def url(self, upstream_url: str) -> str:
        """``upstream_url`` as reached through the proxy."""
        parts = urlsplit(upstream_url)
        return self.origin + parts.path + (f"?{parts.query}" if parts.query else "")

    def script(self, *faults: Fault) -> None:
        """The next requests meet these faults, in order; later ones pass through."""
        with self._lock:
            if len(self._faults) + len(faults) > MAX_FAULTS:
                raise ValueError(f"at most {MAX_FAULTS} scripted faults")
            self._faults.extend(faults)

    def outage(self, fault: Fault | None) -> None:
        """Every request (after the scripted ones) meets ``fault`` until ``outage(None)``."""
        with self._lock:
            self._outage = fault

    @property
    def out(self) -> bool:
        return self._outage is not None

    def _next(self, seen: Seen) -> Fault:
        with self._lock:
            if len(self.seen) >= MAX_SEEN:
                del self.seen[:MAX_SEEN // 2]  # a long-running demo proxy stays bounded
            self.seen.append(seen)
            if self._faults:
                return self._faults.popleft()
            return self._outage or PASS

    def forward(self, method: str, path: str, headers: Any, body: bytes) -> httpx.Response:
        passed = {k: v for k, v in headers.items() if k.lower() not in _HOP}
        return self._client.request(method, path, headers=passed, content=body)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when the proxy is stopping."""
        return self._stopping.wait(seconds)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._client.close()


@contextlib.contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream).start()
    try:
        yield proxy
    finally:
        proxy.stop()


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 proxy: FaultProxy) -> None:
        super().__init__(address, handler)
        self.proxy = proxy


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _ProxyServer

    def _handle(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = proxy._next(Seen(self.command, self.path, dict(self.headers.items()), body))
        if fault.kind == "drop":
            self.close_connection = True
            return
        if fault.kind == "answer":
            self._reply(fault.status, fault.headers, fault.body)
            return
        if fault.kind == "delay" and proxy.wait(fault.seconds):
            self.close_connection = True  # the proxy is stopping
            return
        try:
            answer = proxy.forward(self.command, self.path, self.headers, body)
        except httpx.HTTPError:
            self._reply(502, (), b"")
            return
        if fault.kind == "lose-response":
            self.close_connection = True
            return
        headers = tuple((k, v) for k, v in answer.headers.items() if k.lower() not in _HOP)
        self._reply(answer.status_code, headers, answer.content)

    def _reply(self, status: int, headers: Sequence[tuple[str, str]], body: bytes) -> None:
        try:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (timed out) meanwhile
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass
