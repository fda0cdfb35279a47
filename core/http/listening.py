"""The listening socket of ``serve``, ``web`` and ``ssh-serve``: one clear error for a port in
use, a privileged port or an address this machine lacks. Kept apart from ``server.py`` so
that ``ssh-serve`` does not import the HTTP application and the engine to listen."""

from __future__ import annotations

import errno
import socket

from core.errors import InvalidInput


def listen(host: str, port: int, reuse_port: bool = False, listening: bool = True
           ) -> socket.socket:
    """A listening socket on host:port, or one clear error (port in use, bad host).

    ``reuse_port``: other sockets with the option may bind the same address (the
    processes of ``serve --processes``); ``listening=False`` only binds it (the parent
    of those processes keeps the port without taking connections).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise InvalidInput(f"--host {host}: cannot listen there: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if listening:
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
