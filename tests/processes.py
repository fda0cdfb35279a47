"""``mware-iam worker`` / ``serve`` as real processes, for the tests that need a process
(to signal it, kill it, or run several on one database), and bounded waiting."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from tests.test_cli_process import SCRIPT

#: A safety net for a hung process, not a speed assertion.
STOP_SECONDS = 30.0


def clean_env() -> dict[str, str]:
    """This environment without the deployment selectors, so only the flags count."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MWARE_IAM_")}


def wait_until(condition: Callable[[], Any], seconds: float, what: str,
               every: float = 0.1) -> Any:
    """Poll ``condition`` until it is truthy (returned), for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:g} s")
        time.sleep(every)


def console_processes(db_url: str) -> dict[int, bytes]:
    """The live processes given ``db_url`` in ``$MWARE_IAM_DB``: pid -> command line (NUL
    separated, as every local user can read it in ``/proc/PID/cmdline``)."""
    wanted = f"MWARE_IAM_DB={db_url}".encode()
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if wanted in environ.split(b"\0") and cmdline:
            found[int(pid)] = cmdline
    return found


class MwareProcess:
    """One long-running ``mware-iam`` command; its stderr (the log) goes to a file."""

    def __init__(self, home: Path, args: Sequence[str], log: Path, db: str | None = None
                 ) -> None:
        self.log_path = log
        self._log: IO[bytes] = log.open("wb")
        selector = ["--home", str(home), *(["--db", db] if db else [])]
        self.process = subprocess.Popen(
            [str(SCRIPT), *selector, *args], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self._log, env=clean_env())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_started(self, seconds: float = 30.0) -> None:
        wait_until(lambda: " started " in self.log() or self.process.poll() is not None,
                   seconds, "the worker to start")
        assert self.process.poll() is None, self.log()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send ``sig`` and wait for the exit; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(STOP_SECONDS)
        finally:
            self.close()

    def kill(self) -> None:
        """SIGKILL: the process dies where it stands (no cleanup at all)."""
        self.process.kill()
        self.process.wait(STOP_SECONDS)
        self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_SECONDS)
        self._log.close()


def worker(home: Path, log: Path, *args: str, db: str | None = None) -> MwareProcess:
    return MwareProcess(home, ["worker", "--poll", "0.2", *args], log, db)


def peer_total(base_url: str) -> int:
    """How many users the SCIM peer holds."""
    body = httpx.get(f"{base_url}/Users", params={"count": "0"}, timeout=10).json()
    return int(body["totalResults"])
