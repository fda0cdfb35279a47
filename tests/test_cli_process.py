"""The installed ``mware-iam`` script as a real process (pipes, and a terminal via a pty).

These run the console script that ``pip install -e .`` put next to the interpreter, so
they also prove the entry point ``core.cli.main:main`` is wired up.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from core.iam import Iam

SCRIPT = Path(sys.executable).with_name("mware-iam")
#: A safety net for a hung child, not a speed assertion.
DEADLINE_S = 120


@pytest.fixture(scope="module", autouse=True)
def _installed() -> None:
    assert SCRIPT.exists(), f"{SCRIPT} is missing: run `.venv/bin/pip install -e . --no-deps`"


def mware(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MWARE_IAM_")}
    return subprocess.run([str(SCRIPT), *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=DEADLINE_S, check=False)


def test_version() -> None:
    result = mware("--version")
    assert result.returncode == 0 and result.stdout == "mware-iam 0.1.0\n"


def test_password_from_stdin_and_token_on_stdout(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    added = mware("--home", home, "user", "add", "alice", "--password-stdin",
                  "--claim", "emailaddress=alice@example.com", stdin="piped-password\n")
    assert added.returncode == 0, added.stderr
    with Iam.open(home=home) as iam:
        assert iam.identity.verify_password("alice", "piped-password") is not None
        from core.apps import Application
        from core.cli.context import admin

        iam.save_app(admin(), Application(name="crm"))
    token = mware("--home", home, "app", "token", "crm")
    assert token.returncode == 0 and len(token.stdout.splitlines()) == 1
    with Iam.open(home=home) as iam:
        assert iam.authenticate_token(token.stdout.strip()) is not None


def test_unreachable_database_is_one_line_and_exit_6(tmp_path: Path) -> None:
    result = mware("--home", str(tmp_path), "--db", "postgresql://nobody@127.0.0.1:1/x",
                   "user", "list")
    assert result.returncode == 6
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: system database postgresql://nobody@")


def test_a_closed_stdout_ends_quietly(tmp_path: Path) -> None:
    """``mware-iam app list | head -1``: no internal error when the reader goes away."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write of the child now fails with EPIPE
    env = {k: v for k, v in os.environ.items() if not k.startswith("MWARE_IAM_")}
    with os.fdopen(write_end, "wb") as stdout:
        result = subprocess.run([str(SCRIPT), "--home", str(tmp_path), "app", "list"],
                                stdout=stdout, stderr=subprocess.PIPE, text=True, env=env,
                                timeout=DEADLINE_S, check=False)
    assert result.returncode == 1
    assert result.stderr == ""


def test_unknown_option_is_a_usage_error() -> None:
    result = mware("user", "add", "bob", "--password", "hunter22")
    assert result.returncode == 2 and "No such option '--password'" in result.stderr


# ---------------------------------------------------------------- on a terminal
class Terminal:
    """A child process on a pseudo-terminal: read until a prompt, then answer it."""

    def __init__(self, *args: str, term: str = "dumb") -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MWARE_IAM_")}
        env["TERM"] = term
        pid, fd = pty.fork()
        if pid == 0:  # the child: its stdin, stdout, stderr and /dev/tty are the pty
            os.execve(str(SCRIPT), [str(SCRIPT), *args], env)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        self.pid, self.fd, self.seen = pid, fd, ""

    def expect(self, text: str) -> None:
        deadline = time.monotonic() + DEADLINE_S  # a live screen keeps printing: bound it
        while text not in self.seen:
            assert time.monotonic() < deadline, f"no {text!r} in {DEADLINE_S} s: {self.seen!r}"
            ready, _, _ = select.select([self.fd], [], [], DEADLINE_S)
            assert ready, f"no {text!r} from the child; it printed {self.seen!r}"
            try:
                chunk = os.read(self.fd, 1024)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, f"child ended before {text!r}; it printed {self.seen!r}"
            self.seen += chunk.decode(errors="replace")

    def send(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")

    def press(self, key: str) -> None:
        os.write(self.fd, key.encode())

    def wait(self) -> int:
        while True:  # drain, so the child never blocks on a full terminal buffer
            try:
                chunk = os.read(self.fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            self.seen += chunk.decode(errors="replace")
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


def test_password_prompt_and_delete_confirmation_on_a_terminal(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    term = Terminal("--home", home, "user", "add", "bob")
    term.expect("Password for bob: ")
    term.send("typed-password")
    term.expect("Repeat for confirmation: ")
    term.send("typed-password")
    assert term.wait() == 0, term.seen
    assert "typed-password" not in term.seen  # the prompt does not echo
    with Iam.open(home=home) as iam:
        assert iam.identity.verify_password("bob", "typed-password") is not None

    declined = Terminal("--home", home, "user", "delete", "bob")
    declined.expect("Delete user PRIMARY/bob? This cannot be undone. [y/N]: ")
    declined.send("n")
    assert declined.wait() == 1
    with Iam.open(home=home) as iam:
        assert iam.identity.get_user("bob").username == "bob"

    confirmed = Terminal("--home", home, "user", "delete", "bob")
    confirmed.expect("[y/N]: ")
    confirmed.send("y")
    assert confirmed.wait() == 0, confirmed.seen
    with Iam.open(home=home) as iam:
        assert iam.identity.count_users("PRIMARY") == 0


def test_the_console_is_the_default_and_seeds_a_fresh_deployment(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    term = Terminal("--home", home, term="xterm-256color")
    term.expect("MWARE IAM")
    term.expect("scim-peer")  # the dashboard shows a target of the sample deployment
    term.press("q")
    assert term.wait() == 0, term.seen
    with Iam.open(home=home) as iam:
        assert "hr-portal" in iam.app_names()
        assert iam.identity.get_user("alice").username == "alice"
        assert {e.face for e in iam.audit_log(limit=1000)} == {"config"}


@pytest.mark.parametrize("args", [["tui", "--read-only"], ["--read-only"]])
def test_the_read_only_console_seeds_nothing(tmp_path: Path, args: list[str]) -> None:
    home = str(tmp_path / "home")
    term = Terminal("--home", home, *args, term="xterm-256color")
    term.expect("MWARE IAM")
    term.press("q")
    assert term.wait() == 0, term.seen
    with Iam.open(home=home) as iam:
        assert iam.app_names() == ["resident"]
        assert iam.identity.count_users("PRIMARY") == 0
