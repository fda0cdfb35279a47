"""``mware-iam config validate|apply|export`` on a real deployment."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from core.errors import NotFound
from tests.test_cli import Cli

CONFIG = """\
roles:
  - name: Internal/auditors
users:
  - username: alice
    password: ${env:ALICE_PASSWORD}
    claims:
      emailaddress: alice@example.com
    roles: [Internal/auditors]
identity_providers:
  - name: crm-idp
    connectors:
      - type: scim2
        properties:
          scim2-user-ep: http://127.0.0.1:8787/v2/Users
          scim2-authentication-mode: BASIC
          scim2-username: svc
          scim2-password: ${env:CRM_PASSWORD}
applications:
  - name: crm
    outbound:
      - idp: crm-idp
        connector: scim2
"""
SECRET = "crm-secret-value"


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("ALICE_PASSWORD", "alice-password")
    monkeypatch.setenv("CRM_PASSWORD", SECRET)
    return Cli(tmp_path / "home")


def write(tmp_path: Path, text: str, name: str = "iam.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.endswith("nothing was written")]


def test_validate_checks_the_file_alone(run: Cli, tmp_path: Path) -> None:
    good = write(tmp_path, CONFIG)
    assert run.ok("config", "validate", str(good)).stdout == f"{good}: valid\n"
    bad = write(tmp_path, "users:\n  - username: bob\n    shoe: 42\nfruit: []\n", "bad.yaml")
    result = run("config", "validate", str(bad))
    assert result.exit_code == 2
    errors = error_lines(result.stderr)
    assert [e.split(":")[:3] for e in errors] == [[str(bad), "3", "5"], [str(bad), "4", "1"]]
    assert "shoe" in errors[0] and "fruit" in errors[1]
    assert result.stderr.splitlines()[-1] == "2 errors; nothing was written"
    assert not (run.home / "mware-iam.db").exists()  # no deployment needed or created


def test_a_hostile_file_is_exit_2_with_its_line_not_an_internal_error(
        run: Cli, tmp_path: Path) -> None:
    for text, line in (("users:\n  - username: a\x00b\n", "2"),
                       ("a: " + "[" * 5000 + "]" * 5000 + "\n", "1")):
        path = write(tmp_path, text, "hostile.yaml")
        result = run("config", "validate", str(path))
        assert result.exit_code == 2, result.stderr
        assert error_lines(result.stderr)[0].split(":")[:2] == [str(path), line]


def test_malformed_yaml_points_at_the_place(run: Cli, tmp_path: Path) -> None:
    broken = write(tmp_path, "users:\n  - username: [bob\n", "broken.yaml")
    for command in ("validate", "apply"):
        result = run("config", command, str(broken))
        assert result.exit_code == 2
        errors = error_lines(result.stderr)
        assert len(errors) == 1 and errors[0].startswith(f"{broken}:")
        assert "Traceback" not in result.output


def test_apply_dry_run_then_apply_then_nothing_changed(run: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG)
    dry = run.ok("config", "apply", str(path), "--dry-run")
    assert dry.stdout.strip() and "dry run: nothing was written" in dry.stderr
    with run.iam() as iam:
        with pytest.raises(NotFound):
            iam.identity.get_user("alice")
        assert iam.idp_names() == []

    applied = run.ok("config", "apply", str(path))
    assert applied.stdout.strip().splitlines() == dry.stdout.strip().splitlines()
    assert SECRET not in applied.output
    with run.iam() as iam:
        assert iam.identity.verify_password("alice", "alice-password") is not None
        assert iam.identity.roles_of("alice") == ["Internal/auditors"]
        assert iam.get_app("crm").outbound[0].idp == "crm-idp"
        assert iam.audit_log(limit=1)[0].face == "config"
    assert run.ok("config", "apply", str(path)).stdout == "nothing changed\n"


def test_apply_refuses_the_whole_file_when_one_entry_is_bad(run: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "users:\n  - username: ann\n  - username: ben\n"
                           "    roles: [Internal/nope]\n")
    result = run("config", "apply", str(path))
    assert result.exit_code == 2
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and errors[0].startswith(f"{path}:4:")
    assert "Internal/nope" in errors[0]
    with run.iam() as iam:
        assert iam.identity.count_users("PRIMARY") == 0


def test_export_round_trips_without_secret_values(run: Cli, tmp_path: Path) -> None:
    run.ok("config", "apply", str(write(tmp_path, CONFIG)))
    exported = run.ok("config", "export").stdout
    assert SECRET not in exported and "${env:CRM_PASSWORD}" in exported
    data = yaml.safe_load(exported)
    assert "users" not in data
    assert [a["name"] for a in data["applications"]] == ["resident", "crm"]

    out = tmp_path / "export.yaml"
    result = run.ok("config", "export", "--with-users", "-o", str(out))
    assert result.stdout == "" and f"wrote {out}" in result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with_users = yaml.safe_load(out.read_text())
    assert [u["username"] for u in with_users["users"]] == ["alice"]
    assert run.ok("config", "apply", str(out)).stdout == "nothing changed\n"


def test_export_to_an_unwritable_place_is_one_error(run: Cli, tmp_path: Path) -> None:
    result = run("config", "export", "-o", str(tmp_path / "no" / "such" / "dir.yaml"))
    assert result.exit_code == 2
    assert "cannot be written" in result.stderr and result.stdout == ""
    assert not (tmp_path / "no").exists()
