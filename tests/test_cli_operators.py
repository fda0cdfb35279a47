"""``mware-iam operator add|list|remove`` and ``ssh-serve``'s refusals before it listens."""

from __future__ import annotations

import json
from pathlib import Path

import asyncssh

from core.operators import FILE_NAME
from tests.test_cli import Cli, one_error_line, run  # noqa: F401  (the fixture)


def _key(comment: str) -> str:
    key = asyncssh.generate_private_key("ssh-ed25519")
    return f"{key.export_public_key().decode().strip()} {comment}"


def test_add_list_remove(run: Cli, tmp_path: Path) -> None:  # noqa: F811
    key_file = tmp_path / "id.pub"
    key_file.write_text(_key("bob@laptop") + "\n")
    assert run("operator", "add", "alice", "--key", _key("alice@laptop")).exit_code == 0
    assert run("operator", "add", "bob", "--key-file", str(key_file),
               "--read-only").exit_code == 0
    listed = json.loads(run("operator", "list", "--json").stdout)["items"]
    assert [(o["name"], o["read_only"]) for o in listed] == [("alice", False), ("bob", True)]
    assert (run.home / FILE_NAME).stat().st_mode & 0o777 == 0o600

    again = run("operator", "add", "alice", "--key", _key("x"))
    assert again.exit_code == 4 and "already exists" in one_error_line(again)
    taken = run("operator", "add", "carol", "--key-file", str(key_file))
    assert taken.exit_code == 4 and "is operator 'bob''s already" in one_error_line(taken)
    assert run("operator", "remove", "alice").exit_code == 0
    assert "alice" not in run("operator", "list").stdout
    gone = run("operator", "remove", "alice")
    assert gone.exit_code == 3 and "no operator 'alice'" in one_error_line(gone)


def test_a_malformed_key_is_refused_and_nothing_written(run: Cli) -> None:  # noqa: F811
    result = run("operator", "add", "alice", "--key", "ssh-rsa AAAA-not-a-key")
    assert result.exit_code == 2 and "not an OpenSSH public key" in one_error_line(result)
    assert not (run.home / FILE_NAME).exists()


def test_ssh_serve_refuses_a_malformed_operators_file_at_its_line(run: Cli) -> None:  # noqa: F811
    run.home.mkdir(parents=True)
    (run.home / FILE_NAME).write_text("operators:\n  - name: alice\n    keys: [nope]\n")
    result = run("ssh-serve", "--port", "1")
    assert result.exit_code == 2
    assert f"{FILE_NAME}:3:" in result.stderr and "not an OpenSSH public key" in result.stderr
