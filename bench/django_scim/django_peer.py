"""Start the django-scim2 peer (``scimpeer``, this folder) under gunicorn on a free loopback
port, on a fresh SQLite file; stop it afterwards.

A test dependency only (``pip install -e '.[test]'`` installs django, django-scim2 and
gunicorn). Used by ``bench/scim_inbound.py`` (the inbound benchmark's second peer) and by
``tests/test_django_scim_peer.py``; both put this folder on ``sys.path``. Importing this
module imports no Django: the peer runs in its own processes.

    with django_scim_server("a-token", Path(tmp)) as peer:
        httpx.post(f"{peer.base}/Users", ...)      # Authorization: Bearer a-token
        peer.user_row("alice")                      # what SQLite holds

How it runs: ``python -m django migrate`` creates the database, then ``gunicorn --workers
2 --preload scimpeer.wsgi:application`` (gunicorn's default synchronous workers, one
request at a time each; ``--preload`` loads Django in the master before forking, so both
workers answer at once and no worker's start-up falls into a measured phase). The CPU of
the server is the master's and its workers' (``common.process_cpu`` of ``pid``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from connectors.sandbox.peers import LOOPBACK, PeerUnavailable, free_port, wait_until_answering

PROJECT = Path(__file__).resolve().parent
GUNICORN = Path(sys.executable).with_name("gunicorn")
START_SECONDS = 60.0
INSTALL = "they are in the test extras: pip install -e '.[test]'"


@dataclass(frozen=True)
class UserRow:
    """A user as django-scim2 stored it."""

    scim_id: str
    username: str
    first_name: str
    email: str
    is_active: bool


@dataclass(frozen=True)
class DjangoScim:
    process: subprocess.Popen[bytes]
    origin: str
    database: Path

    @property
    def base(self) -> str:
        """The SCIM base URL."""
        return f"{self.origin}/scim/v2"

    @property
    def pid(self) -> int:
        """gunicorn's master, the parent of the workers."""
        return self.process.pid

    def _read(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with contextlib.closing(sqlite3.connect(f"file:{self.database}?mode=ro",
                                                uri=True)) as conn:
            return conn.execute(sql, params).fetchall()

    def user_count(self) -> int:
        """Users in the peer's SQLite database."""
        return int(str(self._read("SELECT count(*) FROM scimpeer_user")[0][0]))

    def user_row(self, username: str) -> UserRow | None:
        """The stored row of ``username`` (read from the file, not through the peer)."""
        rows = self._read("SELECT scim_id, username, first_name, email, is_active "
                          "FROM scimpeer_user WHERE username = ?", username)
        if not rows:
            return None
        scim_id, name, first, email, active = rows[0]
        return UserRow(str(scim_id), str(name), str(first), str(email), bool(active))


def _environment(token: str, database: Path, port: int) -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "scimpeer.settings",
            "PYTHONPATH": str(PROJECT), "SCIMPEER_DB": str(database),
            "SCIMPEER_TOKEN_SHA256": hashlib.sha256(token.encode()).hexdigest(),
            "SCIMPEER_NETLOC": f"{LOOPBACK}:{port}"}


@contextlib.contextmanager
def django_scim_server(token: str, work: Path, workers: int = 2) -> Iterator[DjangoScim]:
    """django-scim2 under ``gunicorn --workers WORKERS`` on ``work/django-scim2.sqlite3``
    (created and migrated now), accepting ``token``; stopped on exit.

    :raises PeerUnavailable: django-scim2 or gunicorn is not installed, or the peer did
        not start (with the end of its output).
    """
    if importlib.util.find_spec("django_scim") is None or not GUNICORN.exists():
        raise PeerUnavailable(f"django-scim2 or gunicorn is not installed ({INSTALL})")
    database = work / "django-scim2.sqlite3"
    port = free_port()
    env = _environment(token, database, port)
    migrated = subprocess.run([sys.executable, "-m", "django", "migrate", "--noinput",
                               "--verbosity", "0"], cwd=PROJECT, env=env, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=START_SECONDS,
                              check=False)
    if migrated.returncode != 0:
        raise PeerUnavailable(f"django-scim2: migrate failed: {migrated.stderr[-2000:]}")
    origin = f"http://{LOOPBACK}:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [str(GUNICORN), "--workers", str(workers), "--preload", "--bind",
             f"{LOOPBACK}:{port}", "--chdir", str(PROJECT), "scimpeer.wsgi:application"],
            env=env, cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        try:
            wait_until_answering(process, f"{origin}/scim/v2/ServiceProviderConfig", log,
                                 "django-scim2 (gunicorn)", START_SECONDS)
            yield DjangoScim(process, origin, database)
        finally:
            process.terminate()  # SIGTERM: gunicorn stops its workers, then itself
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
