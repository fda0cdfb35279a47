"""The ``operators:`` section of a configuration file: validated at its lines, applied into
the one store ``ssh-serve`` reads (``operators.yaml`` in the home), exported back."""

from __future__ import annotations

import textwrap
from pathlib import Path

import asyncssh
import pytest

from core.configfile.errors import ConfigInvalid
from core.configfile.export import export_config
from core.configfile.files import apply_file, validate_file
from core.configfile.operators import add, load
from core.iam import Iam
from core.identity.events import Initiator
from core.operators import Operator, path_in


def public_key(comment: str) -> str:
    key = asyncssh.generate_private_key("ssh-ed25519")
    return f"{key.export_public_key().decode().strip()} {comment}"


ALICE, ALICE2, BOB, CAROL = (public_key(c) for c in ("alice@a", "alice@b", "bob@b", "carol@c"))


def write(tmp_path: Path, text: str, name: str = "deployment.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_each_problem_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        operators:
          - name: alice
            keys:
              - "{ALICE}"
              - ssh-ed25519 not-base64 alice@c
          - name: 9lives
            keys: ["{BOB}"]
          - name: carol
            keys: []
            read_only: maybe
          - name: dave
            keys: ["{ALICE}"]
            shell: /bin/sh
          - name: erin
            keys: ["{CAROL}"]
          - name: erin
            keys: ["{ALICE2}"]
        """,
    )
    found = [(e.file, e.line, e.message) for e in validate_file(path)]
    messages = {line: message for _, line, message in found}
    assert {f for f, _, _ in found} == {str(path)}
    assert "not an OpenSSH public key" in messages[5]
    assert "not a valid operator name" in messages[6]
    assert messages[9] == "keys: give at least one"
    assert messages[10] == "read_only: expected true or false, got text"
    assert "unknown key 'shell'" in messages[13]
    assert messages[16] == "operator 'erin' is listed twice"
    assert len(found) == 6, found


def test_a_key_is_one_operators_in_the_file_and_in_the_store(
    tmp_path: Path, sqlite_iam: Iam
) -> None:
    path = write(
        tmp_path,
        f"""
        operators:
          - name: alice
            keys: ["{ALICE}"]
          - name: bob
            keys: ["{ALICE.rsplit(" ", 1)[0]} the same key, another comment"]
        """,
    )
    [error] = validate_file(path)
    assert error.line == 5 and "this key is operator 'alice''s already" in error.message
    add(path_in(sqlite_iam.home), Operator("carol", (CAROL,)))
    path = write(
        tmp_path,
        f"""
        operators:
          - name: dave
            keys: ["{CAROL}"]
        """,
    )
    assert validate_file(path) == []  # offline: the store is not known
    [error] = validate_file(path, sqlite_iam)
    assert error.line == 3 and "operator 'carol''s already" in error.message


def test_apply_makes_the_named_operators_match_and_leaves_the_others(
    tmp_path: Path, iam: Iam, admin: Initiator
) -> None:
    store = path_in(iam.home)
    add(store, Operator("carol", (CAROL,)))
    path = write(
        tmp_path,
        f"""
        operators:
          - name: alice
            keys: ["{ALICE}", "{ALICE2}"]
          - name: bob
            keys: ["{BOB}"]
            read_only: true
        """,
    )
    assert apply_file(iam, path, admin, dry_run=True) == ["+ operator alice", "+ operator bob"]
    assert [o.name for o in load(store)] == ["carol"]  # a dry run writes nothing
    assert apply_file(iam, path, admin) == ["+ operator alice", "+ operator bob"]
    assert load(store) == [
        Operator("carol", (CAROL,)),
        Operator("alice", (ALICE, ALICE2)),
        Operator("bob", (BOB,), read_only=True),
    ]
    assert store.stat().st_mode & 0o777 == 0o600
    assert apply_file(iam, path, admin) == []
    path = write(
        tmp_path,
        f"""
        operators:
          - name: alice
            keys: ["{ALICE2}"]
            read_only: true
          - name: bob
            keys: ["{BOB}"]
        """,
    )
    assert apply_file(iam, path, admin) == ["~ operator alice (keys, read_only)"]
    assert load(store)[1] == Operator("alice", (ALICE2,), read_only=True)
    assert load(store)[2].read_only  # read_only left out: kept
    audited = [
        (e.action, e.target, e.detail)
        for e in iam.audit_log(100)
        if e.action.startswith("operator.")
    ]
    assert audited == [
        ("operator.update", "alice", {"keys": 1, "read_only": True}),
        ("operator.add", "bob", {"keys": 1, "read_only": True}),
        ("operator.add", "alice", {"keys": 2, "read_only": False}),
    ]


def test_a_refused_write_leaves_the_operators_as_they_were(
    tmp_path: Path, iam: Iam, admin: Initiator
) -> None:
    path = write(
        tmp_path,
        f"""
        users:
          - username: bob
            password: short
        operators:
          - name: alice
            keys: ["{ALICE}"]
        """,
    )
    with pytest.raises(ConfigInvalid, match="Password must be"):
        apply_file(iam, path, admin)
    assert not path_in(iam.home).exists()
    assert not [e for e in iam.audit_log(100) if e.action.startswith("operator.")]


def test_export_writes_the_operators_back_and_it_applies_without_a_change(
    tmp_path: Path, sqlite_iam: Iam, admin: Initiator
) -> None:
    add(path_in(sqlite_iam.home), Operator("alice", (ALICE, ALICE2)))
    add(path_in(sqlite_iam.home), Operator("bob", (BOB,), read_only=True))
    text = export_config(sqlite_iam)
    assert ALICE in text and BOB in text and "read_only: true" in text
    exported = write(tmp_path, text, "exported.yaml")
    assert validate_file(exported, sqlite_iam) == []
    assert apply_file(sqlite_iam, exported, admin) == []


def test_a_broken_store_stops_only_a_file_that_names_operators(
    tmp_path: Path, sqlite_iam: Iam, admin: Initiator
) -> None:
    path_in(sqlite_iam.home).write_text("operators:\n  - name: alice\n    keys: [nope]\n")
    roles = write(tmp_path, "roles:\n  - name: Internal/ops\n")
    assert apply_file(sqlite_iam, roles, admin) == ["+ role Internal/ops"]
    named = write(tmp_path, f'operators:\n  - name: bob\n    keys: ["{BOB}"]\n', "ops.yaml")
    with pytest.raises(ConfigInvalid, match=r"operators\.yaml:3:.*not an OpenSSH public key"):
        apply_file(sqlite_iam, named, admin)
