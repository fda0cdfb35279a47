"""The CLI for applications, tokens, identity providers and the audit log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.apps import Application, OutboundTarget
from core.cli.context import admin
from core.idps import ConnectorConfig, IdentityProvider, JitConfig
from core.secrets import MASK, SecretValue
from tests.test_cli import Cli, one_error_line

SECRET = "s3cr3t-never-printed"


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "home")
    with cli.iam() as iam:
        iam.save_idp(admin(), IdentityProvider(
            name="crm-idp", description="CRM", jit=JitConfig(enabled=True),
            connectors=(ConnectorConfig("scim2", properties={
                "scim2-user-ep": "http://127.0.0.1:8787/v2/Users",
                "scim2-authentication-mode": "BASIC", "scim2-username": "svc"},
                secrets={"scim2-password": SecretValue(SECRET)}),)))
        iam.save_app(admin(), Application(
            name="crm", description="CRM sync",
            outbound=(OutboundTarget("crm-idp", "scim2", blocking=True),)))
    return cli


def test_app_token_prints_only_a_token_that_authenticates(run: Cli) -> None:
    result = run.ok("app", "token", "crm")
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and result.stdout == lines[0] + "\n"
    token = lines[0]
    assert "shown only once" in result.stderr and token not in result.stderr
    with run.iam() as iam:
        app = iam.authenticate_token(token)
        assert app is not None and app.name == "crm"
        assert iam.authenticate_token(token + "x") is None
    shown = run.ok("app", "show", "crm")
    assert token not in shown.stdout and token[-4:] in shown.stdout
    data = json.loads(run.ok("app", "show", "crm", "--json").stdout)
    assert token not in json.dumps(data)
    assert [t["hint"] for t in data["tokens"]] == [token[-4:]]
    assert data["tokens"][0]["revoked"] is None
    assert data["outbound"] == [{"idp": "crm-idp", "connector": "scim2", "blocking": True,
                                 "jit": False}]

    run.ok("app", "token", "crm", "--revoke", token[-4:])
    with run.iam() as iam:
        assert iam.authenticate_token(token) is None
    again = run("app", "token", "crm", "--revoke", token[-4:])
    assert again.exit_code == 3 and "no live token" in one_error_line(again)


def test_app_token_errors(run: Cli) -> None:
    missing = run("app", "token", "nope")
    assert missing.exit_code == 3 and "'nope' does not exist" in one_error_line(missing)
    resident = run("app", "token", "resident")
    assert resident.exit_code == 2 and "no API tokens" in one_error_line(resident)


def test_app_list(run: Cli) -> None:
    run.ok("app", "token", "crm")
    table = run.ok("app", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "INBOUND", "OUTBOUND", "LIVE", "TOKENS"]
    assert table[2].split() == ["crm", "PRIMARY", "crm-idp:scim2", "1"]
    items = json.loads(run.ok("app", "list", "--json").stdout)["items"]
    assert [(a["name"], a["resident"]) for a in items] == [("resident", True), ("crm", False)]


def test_idp_show_masks_every_secret(run: Cli) -> None:
    out = run.ok("idp", "show", "crm-idp").stdout
    assert SECRET not in out
    assert f"  scim2-password                 {MASK}" in out.splitlines()
    assert "  scim2-username                 svc" in out.splitlines()
    data = json.loads(run.ok("idp", "show", "crm-idp", "--json").stdout)
    props = data["connectors"][0]["properties"]
    assert props["scim2-password"] == MASK and props["scim2-username"] == "svc"
    assert data["jit"]["enabled"] is True
    listed = json.loads(run.ok("idp", "list", "--json").stdout)
    assert SECRET not in json.dumps(listed)
    assert run.ok("idp", "list").stdout.splitlines()[1].split() == [
        "crm-idp", "yes", "scim2", "yes"]
    assert run("idp", "show", "nope").exit_code == 3


def test_audit_shows_cli_writes_newest_first(run: Cli) -> None:
    run.ok("user", "add", "ann", "--no-password")
    run.ok("user", "add", "ben", "--no-password")
    entries = json.loads(run.ok("audit", "--json", "--action", "user.add").stdout)["items"]
    assert [e["target"] for e in entries] == ["PRIMARY/ben", "PRIMARY/ann"]
    assert {e["face"] for e in entries} == {"cli"}
    assert entries[0]["actor"].startswith("os:")
    assert len(json.loads(run.ok("audit", "--json", "--limit", "1").stdout)["items"]) == 1
    table = run.ok("audit", "--target", "PRIMARY/ann").stdout.splitlines()
    assert len(table) == 2 and "user.add" in table[1]
