"""``mware-iam ssh-serve``: the console served to SSH clients that hold an operator's key.

Only the public keys listed in ``operators.yaml`` (``core.operators``) get in; passwords
and keyboard-interactive logins are refused. Each session runs its own console, a
``mware-iam tui`` process on a PTY of its own (a process per session: a crash, a hang or
a stuck write in one session touches no other), sized to the client's terminal and
resized with it; the operator's name reaches that console in ``$MWARE_IAM_OPERATOR`` (and
the database URL in ``$MWARE_IAM_DB``, never on its command line), so
its writes are audited as "console operator alice via SSH". A session idle longer than
the idle timeout is closed; a disconnect ends the session's console (SIGHUP, then SIGTERM
and SIGKILL): a write in flight is one transaction, committed whole or rolled back.

The sessions open now are listed in ``ssh-sessions.json`` in the home (0600), which the
dashboard reads to show who is connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import functools
import json
import logging
import os
import pty
import signal
import struct
import sys
import termios
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncssh

from core.configfile.operators import load
from core.console_process import console_argv, console_env
from core.home import Home
from core.http.listening import listen
from core.identity.events import OPERATOR_ENV
from core.operators import SESSIONS_FILE, Operator, by_key, path_in

#: Linux's prctl(2), resolved here: a forked child must not load libraries.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
PR_SET_PDEATHSIG = 1

log = logging.getLogger("mware_iam.ssh")

HOST_KEY_FILE = "ssh_host_ed25519_key"
IDLE_TIMEOUT = 30 * 60.0
MAX_SESSIONS = 16
#: Bytes waiting for a slow client before the console's output is read no more.
OUTPUT_BUFFER = 1 << 20
#: How long a session's console gets to leave after SIGHUP (then SIGTERM, then SIGKILL).
STOP_GRACE = 3.0


def host_key(home: Home) -> asyncssh.SSHKey:
    """The server's host key, created (Ed25519, 0600) on the first start."""
    path = home.path / HOST_KEY_FILE
    if path.exists():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.export_private_key())
    return key


@dataclass(eq=False)
class _Session:
    operator: Operator
    since: float
    last_input: float = field(default_factory=time.monotonic)


class ConsoleServer:
    """The sessions of one ``ssh-serve``: authentication, limits and the console per PTY."""

    def __init__(self, home: Home, *, idle_timeout: float = IDLE_TIMEOUT,
                 max_sessions: int = MAX_SESSIONS,
                 console_args: Sequence[str] = ()) -> None:
        self.home = home
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        #: Extra arguments to each session's ``tui`` (tests: a cheaper password hash).
        self.console_args = list(console_args)
        self.sessions: set[_Session] = set()

    # ------------------------------------------------------------------ listening
    async def listen(self, host: str, port: int) -> asyncssh.SSHAcceptor:
        """Take connections on host:port (0: a port the kernel picks); a port in use, or
        an address this machine lacks, is one clear error (``InvalidInput``)."""
        self.home.ensure()
        self._write_sessions()
        return await asyncssh.create_server(
            lambda: _Auth(self), sock=listen(host, port),
            server_host_keys=[host_key(self.home)],
            process_factory=self._session, encoding=None, line_editor=False,
            allow_scp=False, agent_forwarding=False, x11_forwarding=False)

    def operators(self) -> list[Operator]:
        """Read on every login, so ``mware-iam operator add|remove`` takes effect at once."""
        return load(path_in(self.home))

    def _write_sessions(self) -> None:
        path = self.home.path / SESSIONS_FILE
        rows = [{"operator": s.operator.name, "read_only": s.operator.read_only,
                 "since": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.since))}
                for s in sorted(self.sessions, key=lambda s: s.since)]
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(rows, out)
        os.replace(tmp, path)

    # ------------------------------------------------------------------ a session
    async def _session(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        operator: Operator = process.get_extra_info("operator")
        if process.get_terminal_type() is None:
            process.stderr.write(b"mware-iam: the console needs a terminal; connect with "
                                 b"ssh -t (the CLI's subcommands run on the server)\r\n")
            process.exit(2)
            return
        if len(self.sessions) >= self.max_sessions:
            process.stderr.write(f"mware-iam: {self.max_sessions} console sessions are open, "
                                 "the most allowed; try again later\r\n".encode())
            process.exit(2)
            return
        session = _Session(operator, time.time())
        self.sessions.add(session)
        self._write_sessions()
        log.info("console operator %s connected over SSH", operator.name)
        try:
            await self._run_console(process, session)
        finally:
            self.sessions.discard(session)
            self._write_sessions()
            log.info("console operator %s disconnected", operator.name)

    def _console_command(self, operator: Operator) -> list[str]:
        args = console_argv(self.home.path, [*self.console_args, "tui", "--no-workers"])
        return [*args, "--read-only"] if operator.read_only else args

    def _console_env(self, process: asyncssh.SSHServerProcess[bytes],
                     operator: Operator) -> dict[str, str]:
        keep = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "PYTHONPATH", "NO_COLOR")
        env = console_env(self.home.db_url, {k: v for k, v in os.environ.items() if k in keep})
        env.update(TERM=process.get_terminal_type() or "xterm", **{OPERATOR_ENV: operator.name})
        return env

    async def _run_console(self, process: asyncssh.SSHServerProcess[bytes],
                           session: _Session) -> None:
        master, slave = pty.openpty()
        _set_size(master, process.get_terminal_size())
        try:
            child = await asyncio.create_subprocess_exec(
                *self._console_command(session.operator), stdin=slave, stdout=slave,
                stderr=slave, start_new_session=True,
                preexec_fn=functools.partial(_take_terminal, os.getpid()),
                env=self._console_env(process, session.operator))
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        loop = asyncio.get_running_loop()
        output_done = loop.create_future()
        resuming: set[asyncio.Future[None]] = set()

        async def resume() -> None:
            await process.stdout.drain()
            if not output_done.done():
                loop.add_reader(master, pump_output)

        def pump_output() -> None:
            try:
                data = os.read(master, 65536)
            except BlockingIOError:
                return
            except OSError:  # EIO: the console's end of the PTY is closed
                data = b""
            if data:
                process.stdout.write(data)
                if process.channel.get_write_buffer_size() > OUTPUT_BUFFER:
                    # a slow client: stop reading the console until the channel drains
                    loop.remove_reader(master)
                    resuming.add(asyncio.ensure_future(resume()))
            else:
                loop.remove_reader(master)
                if not output_done.done():
                    output_done.set_result(None)

        loop.add_reader(master, pump_output)
        pump_input = asyncio.create_task(self._pump_input(process, master, session))
        idle = asyncio.create_task(self._watch_idle(process, session))
        try:
            await asyncio.wait([output_done, pump_input, idle],
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump_input, idle, *resuming):
                task.cancel()
            loop.remove_reader(master)
            code = await _stop(child)
            os.close(master)
            with contextlib.suppress(Exception):
                process.exit(max(code, 0))

    @staticmethod
    async def _pump_input(process: asyncssh.SSHServerProcess[bytes], master: int,
                          session: _Session) -> None:
        while True:
            try:
                data = await process.stdin.read(4096)
            except asyncssh.TerminalSizeChanged as change:
                _set_size(master, (change.width, change.height, change.pixwidth,
                                   change.pixheight))
                continue
            except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                continue
            except (asyncssh.Error, OSError):
                return
            if not data:  # the client closed its side
                return
            session.last_input = time.monotonic()
            while data:  # non-blocking: a console that reads nothing stalls only its session
                try:
                    data = data[os.write(master, data):]
                except BlockingIOError:
                    await asyncio.sleep(0.01)

    async def _watch_idle(self, process: asyncssh.SSHServerProcess[bytes],
                          session: _Session) -> None:
        while True:
            left = session.last_input + self.idle_timeout - time.monotonic()
            if left <= 0:
                log.info("console operator %s idle for %g s: closed", session.operator.name,
                         self.idle_timeout)
                return
            await asyncio.sleep(left)


class _Auth(asyncssh.SSHServer):
    """Public keys of operators only: no passwords, no keyboard-interactive."""

    def __init__(self, server: ConsoleServer) -> None:
        self.server = server
        self.conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        try:
            operators = self.server.operators()
        except Exception:  # a broken operators.yaml lets nobody in, and says why in the log
            log.exception("operators file unreadable: every login refused")
            return False
        operator = by_key(operators, key.export_public_key().decode())
        if operator is None:
            log.warning("SSH login as %r refused: key %s is no operator's", username,
                        key.get_fingerprint())
            return False
        assert self.conn is not None
        self.conn.set_extra_info(operator=operator)
        return True


def _take_terminal(server: int) -> None:
    """In the console's process (a new session): make the PTY its controlling terminal,
    so that a resize reaches it as SIGWINCH and a hangup as SIGHUP; and have Linux end it
    with SIGTERM when ``server`` (ssh-serve) ends, however that ends: a console left behind
    has nobody at its terminal and would go on using a core (kill -9 of ssh-serve left every
    session's console running)."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != server:  # ssh-serve ended before the request was made
            os._exit(1)


def _set_size(fd: int, size: tuple[int, int, int, int]) -> None:
    width, height, pixwidth, pixheight = size
    fcntl.ioctl(fd, termios.TIOCSWINSZ,
                struct.pack("HHHH", height or 24, width or 80, pixwidth, pixheight))


async def _stop(child: asyncio.subprocess.Process) -> int:
    """End the session's console and everything it started; its exit code."""
    for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGKILL):
        if child.returncode is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(child.wait(), STOP_GRACE)
    return child.returncode if child.returncode is not None else await child.wait()


async def serve(home: Home, host: str, port: int, *, idle_timeout: float = IDLE_TIMEOUT,
                max_sessions: int = MAX_SESSIONS,
                listening: Callable[[], object] = lambda: None) -> None:
    """Serve until cancelled (SIGINT/SIGTERM in the CLI); ``listening`` is called once
    connections are taken (a client told so earlier could be refused)."""
    server = ConsoleServer(home, idle_timeout=idle_timeout, max_sessions=max_sessions)
    acceptor = await server.listen(host, port)
    listening()
    try:
        await acceptor.wait_closed()
    finally:
        acceptor.close()
        (home.path / SESSIONS_FILE).unlink(missing_ok=True)

