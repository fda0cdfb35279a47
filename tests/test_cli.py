"""The CLI through click's runner on a real SQLite deployment: users, roles, errors.

Each command runs against a temporary ``--home``; assertions open the same deployment
with ``Iam`` and check what the engine holds afterwards, not just what was printed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from core.claims import LOCAL_DIALECT
from core.cli.context import CliState, admin
from core.cli.main import IamGroup, cli
from core.errors import NotFound
from core.iam import Iam
from tests.conftest import FAST_ARGON2

EMAIL = f"{LOCAL_DIALECT}/emailaddress"
GIVEN = f"{LOCAL_DIALECT}/givenname"
UNREACHABLE_DB = "postgresql://nobody@127.0.0.1:1/x"


class Cli:
    """Runs ``mware-iam --home HOME ...`` in-process; opens the same deployment to check."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def __call__(self, *args: str, input: str | None = None) -> Result:
        runner = CliRunner(env={"MWARE_IAM_HOME": None, "MWARE_IAM_DB": None,
                                "MWARE_IAM_DEBUG": None, "NO_COLOR": None})
        return runner.invoke(cli, ["--home", str(self.home), *args], input=input,
                             obj=CliState(argon2=FAST_ARGON2), catch_exceptions=False)

    @contextmanager
    def iam(self) -> Iterator[Iam]:
        with Iam.open(home=str(self.home), argon2=FAST_ARGON2) as deployment:
            yield deployment

    def ok(self, *args: str, input: str | None = None) -> Result:
        result = self(*args, input=input)
        assert result.exit_code == 0, result.output
        return result


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")


def one_error_line(result: Result) -> str:
    """The single ``error: ...`` line a failing command prints, and nothing on stdout."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    assert result.stdout == ""
    return lines[0]


# ---------------------------------------------------------------- user add and passwords
def test_user_add_with_claims_roles_and_password_from_stdin(run: Cli) -> None:
    run.ok("role", "add", "Internal/auditors")
    result = run.ok("user", "add", "alice", "--claim", "emailaddress=alice@example.com",
                    "--claim", f"{GIVEN}=Alice", "--role", "Internal/auditors",
                    "--password-stdin", input="correct-horse\n")
    assert result.stdout == "added user PRIMARY/alice\n"
    with run.iam() as iam:
        user = iam.identity.get_user("alice")
        assert user.claims[EMAIL] == "alice@example.com" and user.claims[GIVEN] == "Alice"
        assert iam.identity.roles_of("alice") == ["Internal/auditors"]
        assert iam.identity.verify_password("alice", "correct-horse") is not None
        assert iam.identity.verify_password("alice", "correct-horse\n") is None


def test_there_is_no_option_that_takes_a_password(run: Cli) -> None:
    for args in (["user", "add", "bob", "--password", "s3cretpass"],
                 ["user", "add", "bob", "--password=s3cretpass"],
                 ["user", "passwd", "bob", "--password", "s3cretpass"]):
        result = run(*args)
        assert result.exit_code == 2
        assert "No such option" in result.stderr
    with run.iam() as iam, pytest.raises(NotFound):
        iam.identity.get_user("bob")


def test_without_a_terminal_the_password_source_must_be_explicit(run: Cli) -> None:
    message = one_error_line(run("user", "add", "bob"))
    assert "--password-stdin" in message and "--no-password" in message
    assert run("user", "add", "bob", "--password-prompt").exit_code == 2
    both = run("user", "add", "bob", "--password-stdin", "--no-password", input="pw-pw-pw-pw\n")
    assert both.exit_code == 2 and "only one of" in both.stderr
    run.ok("user", "add", "bob", "--no-password")
    with run.iam() as iam:
        assert iam.identity.get_user("bob").username == "bob"
        assert iam.identity.count_users("PRIMARY") == 1


@pytest.mark.parametrize("stdin", ["", "\n", "first-line\nsecond-line\n"])
def test_password_stdin_must_hold_exactly_one_line(run: Cli, stdin: str) -> None:
    result = run("user", "add", "bob", "--password-stdin", input=stdin)
    assert result.exit_code == 2
    assert "--password-stdin" in one_error_line(result)
    with run.iam() as iam:
        assert iam.identity.count_users("PRIMARY") == 0


def test_passwd_from_stdin_replaces_the_password(run: Cli) -> None:
    run.ok("user", "add", "alice", "--password-stdin", input="old-password\n")
    run.ok("user", "passwd", "alice", "--password-stdin", input="new-password\r\n")
    with run.iam() as iam:
        assert iam.identity.verify_password("alice", "new-password") is not None
        assert iam.identity.verify_password("alice", "old-password") is None
    assert run("user", "passwd", "alice").exit_code == 2  # no terminal to prompt
    assert run("user", "passwd", "nobody", "--password-stdin",
               input="whatever-pass\n").exit_code == 3


def test_policy_violations_are_one_message_and_write_nothing(run: Cli) -> None:
    result = run("user", "add", "bob", "--password-stdin", input="short\n")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "Password must be" in line and "short" not in line.split("Password")[0]
    assert "Username must be" in one_error_line(run("user", "add", "x", "--no-password"))
    bad_email = run("user", "add", "bob", "--no-password", "--claim", "emailaddress=nope")
    assert bad_email.exit_code == 2 and "emailaddress" in one_error_line(bad_email)
    with run.iam() as iam:
        assert iam.identity.count_users("PRIMARY") == 0


def test_duplicate_user_exits_4_and_keeps_the_first(run: Cli) -> None:
    run.ok("user", "add", "bob", "--no-password", "--claim", "givenname=Bob")
    result = run("user", "add", "bob", "--no-password", "--claim", "givenname=Other")
    assert result.exit_code == 4
    assert one_error_line(result) == "error: user PRIMARY/bob already exists"
    with run.iam() as iam:
        assert iam.identity.get_user("bob").claims[GIVEN] == "Bob"


def test_unknown_domain_is_named_in_one_message(run: Cli) -> None:
    for args in (["user", "add", "NOPE/bob", "--no-password"],
                 ["user", "list", "--domain", "nope"],
                 ["user", "show", "NOPE/bob"]):
        result = run(*args)
        assert result.exit_code == 3
        assert "userstore domain 'NOPE' does not exist" in one_error_line(result)
    bad = run("user", "list", "--domain", "9bad")
    assert bad.exit_code == 2 and "domain '9bad' is not valid" in one_error_line(bad)


def test_bad_arguments_are_usage_errors(run: Cli) -> None:
    assert run("user", "add", "bob", "--claim", "novalue").exit_code == 2
    assert run("user", "add", "bob", "--claim", "givenname=").exit_code == 2
    assert run("user", "list", "--limit", "0").exit_code == 2
    twice = run("user", "add", "bob", "--no-password", "--claim", "givenname=A",
                "--claim", "givenname=B")
    assert twice.exit_code == 2 and "given twice" in one_error_line(twice)
    unknown = run("user", "add", "bob", "--no-password", "--claim", "shoe=42")
    assert unknown.exit_code == 2 and "unknown claim 'shoe'" in one_error_line(unknown)
    with run.iam() as iam:
        assert iam.identity.count_users("PRIMARY") == 0


# ---------------------------------------------------------------- user read, update, delete
def test_user_show_prints_short_claim_names_and_roles(run: Cli) -> None:
    run.ok("user", "add", "alice", "--no-password", "--claim", "emailaddress=a@example.com")
    run.ok("role", "add", "Internal/auditors", "--member", "alice")
    out = run.ok("user", "show", "alice").stdout
    assert "emailaddress  a@example.com" in out
    assert "Internal/auditors" in out and LOCAL_DIALECT not in out
    data = json.loads(run.ok("user", "show", "alice", "--json").stdout)
    assert data["name"] == "PRIMARY/alice" and data["username"] == "alice"
    assert data["claims"] == {"emailaddress": "a@example.com"}
    assert data["roles"] == ["Internal/auditors"]
    assert datetime.fromisoformat(data["created"]).tzinfo is not None
    assert run("user", "show", "nobody").exit_code == 3


def test_user_list_pages_on_the_server_and_prints_the_cursor(run: Cli) -> None:
    with run.iam() as iam:
        for i in range(5):
            iam.identity.add_user(admin(), f"user{i}", None,
                                  {"emailaddress": f"u{i}@example.com"})
        iam.identity.add_user(admin(), "other", None, {"givenname": "Zed"})
    first = run.ok("user", "list", "--limit", "2")
    assert first.stdout.splitlines()[0].split() == ["NAME", "GIVEN", "NAME", "LAST", "NAME",
                                                     "EMAIL"]
    assert len(first.stdout.splitlines()) == 3
    assert "--cursor" in first.stderr
    names: list[str] = []
    cursor: str | None = None
    while True:
        args = ["user", "list", "--limit", "2", "--json"]
        page = json.loads(run.ok(*args, *(["--cursor", cursor] if cursor else [])).stdout)
        names += [u["name"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(names) == ["PRIMARY/other", *(f"PRIMARY/user{i}" for i in range(5))]
    prefixed = json.loads(run.ok("user", "list", "--prefix", "user", "--json").stdout)
    assert len(prefixed["items"]) == 5
    by_claim = json.loads(run.ok("user", "list", "--claim", "givenname=Zed", "--json").stdout)
    assert [u["name"] for u in by_claim["items"]] == ["PRIMARY/other"]
    assert by_claim["items"][0]["claims"] == {"givenname": "Zed"}


def test_user_update_sets_and_removes_claims_in_one_write(run: Cli) -> None:
    run.ok("user", "add", "alice", "--no-password", "--claim", "emailaddress=a@example.com")
    run.ok("user", "update", "alice", "--set", "givenname=Alice", "--unset", "emailaddress")
    with run.iam() as iam:
        claims = iam.identity.get_user("alice").claims
        assert claims[GIVEN] == "Alice" and EMAIL not in claims
    assert run("user", "update", "alice").exit_code == 2
    both = run("user", "update", "alice", "--set", "title=CTO", "--unset", "title")
    assert both.exit_code == 2
    with run.iam() as iam:
        assert f"{LOCAL_DIALECT}/title" not in iam.identity.get_user("alice").claims


def test_delete_without_yes_and_without_a_terminal_refuses(run: Cli) -> None:
    run.ok("user", "add", "bob", "--no-password")
    result = run("user", "delete", "bob")
    assert result.exit_code == 2
    assert "--yes" in one_error_line(result)
    with run.iam() as iam:
        assert iam.identity.get_user("bob").username == "bob"
    assert run.ok("user", "delete", "bob", "--yes").stdout == "deleted user PRIMARY/bob\n"
    with run.iam() as iam, pytest.raises(NotFound):
        iam.identity.get_user("bob")
    assert run("user", "delete", "bob", "--yes").exit_code == 3


# ---------------------------------------------------------------- user import
def test_import_reports_bad_rows_by_line_and_imports_every_good_row(
        run: Cli, tmp_path: Path) -> None:
    run.ok("user", "add", "taken", "--no-password")
    run.ok("role", "add", "Internal/staff")
    csv_file = tmp_path / "users.csv"
    csv_file.write_text(
        "username,password,emailaddress,givenname,roles\n"   # line 1
        "ann,ann-password,ann@example.com,Ann,Internal/staff\n"  # 2 good
        "x,,,,\n"                                            # 3 username policy
        "ben,,not-an-email,Ben,\n"                           # 4 bad email
        "taken,,,,\n"                                        # 5 exists
        "cat,,cat@example.com\n"                             # 6 too few cells
        "\n"                                                 # 7 blank: skipped
        "dan,,dan@example.com,Dan,Internal/nope\n"           # 8 unknown role
        "eve,,eve@example.com,Eve,\n"                        # 9 good
        "ann,,,,\n"                                          # 10 twice in the file
    )
    result = run("user", "import", str(csv_file))
    assert result.exit_code == 1
    assert result.stdout == "imported 2 users; skipped 1 already present; 5 rows refused\n"
    refused = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert [int(line.split(":")[0].split()[1]) for line in refused] == [3, 4, 6, 8, 10]
    assert "Username must be" in refused[0] and "emailaddress" in refused[1]
    assert "cells" in refused[2] and "first at line 2" in refused[4]
    with run.iam() as iam:
        assert iam.identity.count_users("PRIMARY") == 3
        assert iam.identity.get_user("eve").claims[EMAIL] == "eve@example.com"
        assert iam.identity.roles_of("ann") == ["Internal/staff"]
        assert iam.identity.verify_password("ann", "ann-password") is not None


def test_import_of_a_clean_file_exits_0_and_a_bad_header_imports_nothing(
        run: Cli, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("username,givenname\nann,Ann\nben,Ben\n")
    assert run.ok("user", "import", str(good)).stdout == \
        "imported 2 users; skipped 0 already present; 0 rows refused\n"
    bad = tmp_path / "bad.csv"
    bad.write_text("login,givenname\ncat,Cat\n")
    result = run("user", "import", str(bad))
    assert result.exit_code == 2 and "no 'username' column" in result.stderr
    missing = run("user", "import", str(tmp_path / "missing.csv"))
    assert missing.exit_code == 2
    unknown = run("user", "import", str(good), "--domain", "NOPE")
    assert unknown.exit_code == 3
    with run.iam() as iam:
        assert iam.identity.count_users("PRIMARY") == 2


def import_outcome(stdout: str) -> tuple[int, int, int]:
    words = stdout.split()
    return int(words[1]), int(words[4]), int(words[7])


def test_import_accounts_for_every_line_despite_bad_bytes_and_an_open_quote(
        run: Cli, tmp_path: Path) -> None:
    rows = [f"user{i:04d},User {i}\n".encode() for i in range(3000)]
    rows[1500] = b"user1500,Caf\xe9\n"         # line 1502: one byte that is not UTF-8
    rows[2000] = b'user2000,"never closed\n'  # line 2002: a quote left open
    csv_file = tmp_path / "users.csv"
    csv_file.write_bytes(b"username,givenname\n" + b"".join(rows))
    result = run("user", "import", str(csv_file))
    assert result.exit_code == 1
    assert import_outcome(result.stdout) == (2998, 0, 2)
    refused = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert refused == [
        "line 1502: unreadable row: byte 13 of the line is not UTF-8 (b'\\xe9')",
        "line 2002: unreadable row: a quoted value is not closed on its line"]
    with run.iam() as iam:
        assert iam.identity.count_users("PRIMARY") == 2998
        assert iam.identity.get_user("user2001").username == "user2001"

    again = run("user", "import", str(csv_file))
    assert again.exit_code == 1 and import_outcome(again.stdout) == (0, 2998, 2)
    good = tmp_path / "good.csv"
    good.write_bytes(b"username,givenname\n" + b"".join(rows[:10]))
    assert import_outcome(run.ok("user", "import", str(good)).stdout) == (0, 10, 0)


def test_import_reads_a_bom_crlf_lines_and_quoted_values(run: Cli, tmp_path: Path) -> None:
    csv_file = tmp_path / "excel.csv"
    csv_file.write_bytes(b'\xef\xbb\xbfusername,givenname\r\nann,Ann\r\n"ben","Be""n, Jr"\r\n'
                         b'\r\ncat,"open\r\ndan,Dan\r\n')
    result = run("user", "import", str(csv_file))
    assert import_outcome(result.stdout) == (3, 0, 1)
    assert "line 5: unreadable row: a quoted value is not closed" in result.stderr
    with run.iam() as iam:
        assert iam.identity.get_user("ben").claims[GIVEN] == 'Be"n, Jr'


# ---------------------------------------------------------------- roles
def test_roles_add_show_assign_rename_delete(run: Cli) -> None:
    for name in ("ann", "ben"):
        run.ok("user", "add", name, "--no-password")
    assert run.ok("role", "add", "devs", "--member", "ann").stdout == \
        "added group PRIMARY/devs\n"
    run.ok("role", "add", "Internal/auditors")
    listed = json.loads(run.ok("role", "list", "--json").stdout)["items"]
    assert [(r["name"], r["internal"]) for r in listed] == [
        ("Internal/auditors", True), ("PRIMARY/devs", False)]
    assert run.ok("role", "assign", "devs", "ben", "ann").stdout == \
        "added to PRIMARY/devs: PRIMARY/ben\n"
    assert "nothing changed" in run.ok("role", "assign", "devs", "ben").stderr
    assert json.loads(run.ok("role", "show", "devs", "--json").stdout)["members"] == [
        "PRIMARY/ann", "PRIMARY/ben"]
    run.ok("role", "unassign", "devs", "ann")
    run.ok("role", "rename", "devs", "developers")
    with run.iam() as iam:
        assert [u.username for u in iam.identity.members_of("developers")] == ["ben"]
        assert iam.identity.roles_of("ann") == []
    assert run("role", "delete", "developers").exit_code == 2  # no terminal, no --yes
    run.ok("role", "delete", "developers", "--yes")
    with run.iam() as iam, pytest.raises(NotFound):
        iam.identity.get_role("developers")


def test_role_errors_change_nothing(run: Cli) -> None:
    run.ok("user", "add", "ann", "--no-password")
    run.ok("role", "add", "devs")
    dup = run("role", "add", "devs")
    assert dup.exit_code == 4 and "already exists" in one_error_line(dup)
    missing = run("role", "assign", "devs", "ann", "ghost")
    assert missing.exit_code == 3 and "ghost" in one_error_line(missing)
    assert run("role", "show", "nope").exit_code == 3
    assert run("role", "assign", "devs").exit_code == 2  # USERS is required
    with run.iam() as iam:
        assert iam.identity.members_of("devs") == []


# ---------------------------------------------------------------- the error boundary
def test_unreachable_database_exits_6_with_one_line(run: Cli) -> None:
    result = run("--db", UNREACHABLE_DB, "user", "list")
    assert result.exit_code == 6
    line = one_error_line(result)
    assert "system database postgresql://nobody@127.0.0.1:1/x is unreachable" in line


def test_locked_sqlite_database_exits_6_and_writes_nothing(run: Cli) -> None:
    run.ok("user", "list")  # creates the deployment
    locker = sqlite3.connect(run.home / "mware-iam.db", isolation_level=None)
    try:
        locker.execute("BEGIN IMMEDIATE")  # another process is writing
        result = run("user", "add", "bob", "--no-password")
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert result.exit_code == 6
    assert "locked" in one_error_line(result)
    with run.iam() as iam:
        assert iam.identity.count_users("PRIMARY") == 0
        assert [e.action for e in iam.audit_log()] == []


def _group_with(callback: Callable[[], None]) -> click.Group:
    group = IamGroup("t")
    group.add_command(click.Command("go", callback=callback))
    return group


def test_unexpected_errors_are_one_line_unless_debugging() -> None:
    def boom() -> None:
        raise RuntimeError("kaboom\nsecond line")

    runner = CliRunner(env={"MWARE_IAM_DEBUG": None})
    result = runner.invoke(_group_with(boom), ["go"])
    assert result.exit_code == 70
    assert result.stderr.splitlines() == [
        "internal error: RuntimeError: kaboom",
        "hint: run again with MWARE_IAM_DEBUG=1 to see the traceback"]
    debug = CliRunner(env={"MWARE_IAM_DEBUG": "1"}).invoke(_group_with(boom), ["go"])
    assert isinstance(debug.exception, RuntimeError)


def test_interrupt_exits_130() -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    result = CliRunner().invoke(_group_with(interrupted), ["go"])
    assert result.exit_code == 130 and "interrupted" in result.stderr


def test_console_needs_a_terminal_and_is_the_default(run: Cli) -> None:
    for args in ([], ["--read-only"], ["tui"], ["tui", "--read-only"]):
        result = run(*args)
        assert result.exit_code == 2
        assert "needs a terminal" in one_error_line(result)
    assert not (run.home / "mware-iam.db").exists()  # refused before opening anything


def test_read_only_before_a_command_is_refused(run: Cli) -> None:
    result = run("--read-only", "audit")
    assert result.exit_code == 2 and "give it to the command" in result.stderr


def test_version_and_help() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.stdout == "mware-iam 0.1.0\n"
    help_text = CliRunner().invoke(cli, ["--help"]).stdout
    assert "MWARE_IAM_HOME" in help_text and "MWARE_IAM_DB" in help_text
    for group in ("config", "user", "role", "app", "idp", "audit", "tui"):
        assert f"  {group} " in help_text


def test_help_lists_every_command_though_they_load_lazily() -> None:
    commands = CliRunner().invoke(cli, ["--help"]).stdout.split("Commands:\n")[1]
    commands = commands.split("\n\n")[0]  # the epilog (exit status) follows
    listed = [line.split()[0] for line in commands.splitlines() if line.startswith("  ")]
    assert listed == ["app", "audit", "config", "demo", "idp", "operator", "provisioning",
                      "role", "sandbox", "serve", "ssh-serve", "tui", "user", "userstore", "web",
                      "worker"]
    for name in listed:  # each loads, and answers its own --help
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and result.stdout.startswith(f"Usage: cli {name} ")
