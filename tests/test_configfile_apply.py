"""``apply_file`` and ``export_config`` on every backend: idempotent, atomic, round-trips,
and secrets never leave as values."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select

from core.apps import OutboundTarget
from core.claims import LOCAL_DIALECT
from core.configfile.errors import ConfigInvalid
from core.configfile.export import export_config
from core.configfile.files import SAMPLE_CONFIG, apply_file, seed_sample, validate_file
from core.iam import Iam
from core.identity.events import Initiator
from core.idps import ConnectorConfig, IdentityProvider
from core.schema import connector_configs
from core.secrets import SecretValue
from tests.conftest import FAST_ARGON2

TOKEN = "tok-7Hq2-partner-secret-value"
SCIM_PEER = """
identity_providers:
  - name: scim-peer
    connectors:
      - type: scim2
        properties:
          scim2-user-ep: http://127.0.0.1:8787/v2/Users
          scim2-authentication-mode: BEARER
          scim2-access-token: ${env:CFG_TEST_TOKEN}
"""


def write(tmp_path: Path, text: str, name: str = "deployment.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def config_audit(iam: Iam) -> list[str]:
    return [e.action for e in iam.audit_log(limit=1000)]


# ---------------------------------------------------------------- the sample
def test_sample_applies_on_a_fresh_deployment_then_changes_nothing(iam: Iam, admin: Initiator
                                                                    ) -> None:
    assert iam.fresh
    lines = seed_sample(iam, admin)
    assert "+ user PRIMARY/alice" in lines
    assert "+ identity provider scim-peer" in lines
    assert "+ application hr-portal" in lines
    assert "~ application resident (outbound)" in lines
    assert iam.identity.count_users("PRIMARY") == 5
    assert "PRIMARY/engineering" in iam.identity.roles_of("alice")
    assert [u.username for u in iam.identity.members_of("Internal/auditors")] == ["erin"]
    peer = iam.get_idp("scim-peer").connector("scim2")
    assert peer.properties["scim2-user-ep"] == "http://127.0.0.1:8787/v2/Users"
    token = iam.get_idp("partner-directory").connector("scim2").secrets["scim2-access-token"]
    assert token == SecretValue("demo-partner-token",
                                "${env:PARTNER_SCIM_TOKEN:-demo-partner-token}")
    assert iam.resident_app().outbound == (OutboundTarget("scim-peer", "scim2"),)
    assert iam.identity.verify_password("alice", "Wonderland-1865") is not None
    audit_rows = len(iam.audit_log(limit=1000))

    assert apply_file(iam, SAMPLE_CONFIG, admin) == []
    assert len(iam.audit_log(limit=1000)) == audit_rows  # nothing was written either


def test_seed_sample_only_seeds_a_fresh_deployment(tmp_path: Path, admin: Initiator) -> None:
    home = str(tmp_path / "home")
    with Iam.open(home=home, argon2=FAST_ARGON2) as iam:
        assert seed_sample(iam, admin)
    with Iam.open(home=home, argon2=FAST_ARGON2) as iam:
        assert not iam.fresh
        iam.identity.delete_user(admin, "bob")
        assert seed_sample(iam, admin) == []
        assert iam.identity.count_users("PRIMARY") == 4


# ---------------------------------------------------------------- idempotency, round trip
def test_export_round_trips(iam: Iam, admin: Initiator, tmp_path: Path) -> None:
    apply_file(iam, SAMPLE_CONFIG, admin)
    # Changes made elsewhere (console, CLI) are exported too.
    iam.identity.add_user(admin, "frank", None, {"givenname": "Frank", "country": "NO"},
                          ["Internal/auditors"])
    iam.save_userstore(admin, "PRIMARY", "sql", {"case_insensitive_usernames": True})
    iam.save_claim(admin, f"{LOCAL_DIALECT}/nickname", "Nickname", regex=None)
    iam.save_idp(admin, IdentityProvider("literal", connectors=(ConnectorConfig(
        "scim2", properties={"scim2-user-ep": "http://127.0.0.1:9/v2/Users",
                             "scim2-authentication-mode": "BASIC", "scim2-username": "u"},
        secrets={"scim2-password": SecretValue("hunter2-literal")}),)))
    for include_users in (False, True):
        text = export_config(iam, include_users=include_users)
        path = write(tmp_path, text, f"export-{include_users}.yaml")
        assert validate_file(path, iam) == []
        assert apply_file(iam, path, admin) == [], text
    assert "${env:MWARE_LITERAL_SCIM2_PASSWORD}" in text
    assert "username: frank" in text and "country: 'NO'" in text
    assert iam.get_idp("literal").connector("scim2").secrets["scim2-password"].value \
        == "hunter2-literal"


def test_applying_twice_prints_nothing_the_second_time(iam: Iam, admin: Initiator,
                                                       tmp_path: Path) -> None:
    path = write(tmp_path, """
        userstores:
          - domain: PRIMARY
            properties: {case_insensitive_usernames: true}
        claims:
          - uri: http://example.com/claims/badge
            display_name: Badge
            mappings: {PRIMARY: badge}
        roles:
          - name: PRIMARY/ops
            members: [alice]
        users:
          - username: alice
            claims: {givenname: Alice, http://example.com/claims/badge: "0042"}
        """)
    first = apply_file(iam, path, admin)
    assert first == ["~ userstore PRIMARY (properties)", "+ claim http://example.com/claims/badge",
                     "+ role PRIMARY/ops", "+ user PRIMARY/alice"]
    assert apply_file(iam, path, admin) == []
    assert iam.identity.get_user("ALICE").claims["http://example.com/claims/badge"] == "0042"
    assert [u.username for u in iam.identity.members_of("PRIMARY/ops")] == ["alice"]


def test_apply_prints_what_changed(iam: Iam, admin: Initiator, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFG_TEST_TOKEN", TOKEN)
    apply_file(iam, SAMPLE_CONFIG, admin)
    path = write(tmp_path, textwrap.dedent("""
        users:
          - username: alice
            password: ignored-once-created
            claims: {givenname: Alicia, lastname: Liddell}
            roles: [PRIMARY/engineering]
        roles:
          - name: Internal/auditors
            members: [bob]
        applications:
          - name: hr-portal
            outbound: []
        """) + SCIM_PEER)
    assert apply_file(iam, path, admin) == [
        "~ user PRIMARY/alice (claims: givenname)",
        "~ role Internal/auditors (members: +PRIMARY/bob, -PRIMARY/erin)",
        "~ role Internal/provisioned (members: -PRIMARY/alice)",
        "~ identity provider scim-peer (connectors)",
        "~ application hr-portal (outbound)",
    ]
    assert iam.identity.verify_password("alice", "Wonderland-1865") is not None
    assert iam.identity.get_user("alice").claims[f"{LOCAL_DIALECT}/department"] == "Engineering"
    # what the file does not mention stays: the other identity provider, its roles
    assert iam.get_idp("scim-peer").role_mappings
    assert apply_file(iam, path, admin) == []


def test_dry_run_writes_nothing(iam: Iam, admin: Initiator) -> None:
    lines = apply_file(iam, SAMPLE_CONFIG, admin, dry_run=True)
    assert "+ user PRIMARY/alice" in lines and "+ claim http://wso2.org/claims/badge" in lines
    assert iam.identity.count_users("PRIMARY") == 0
    assert iam.idp_names() == [] and iam.audit_log() == []
    assert "http://wso2.org/claims/badge" not in iam.claims.claims
    assert apply_file(iam, SAMPLE_CONFIG, admin) == lines


# ---------------------------------------------------------------- all or nothing
def test_a_refused_write_at_the_end_leaves_nothing_written(iam: Iam, admin: Initiator,
                                                           tmp_path: Path) -> None:
    path = write(tmp_path, """
        userstores:
          - domain: PRIMARY
            properties: {case_insensitive_usernames: true}
        roles:
          - name: Internal/provisioned
        users:
          - username: alice
            password: Wonderland-1865
            roles: [Internal/provisioned]
          - username: bob
            password: short
        identity_providers:
          - name: scim-peer
            connectors:
              - {type: scim2, properties: {scim2-user-ep: "http://127.0.0.1:8787/v2/Users"}}
        applications:
          - name: resident
            outbound: [{idp: scim-peer, connector: scim2}]
        """)
    assert validate_file(path, iam) == []  # only the engine knows the password policy
    with pytest.raises(ConfigInvalid, match="Password must be"):
        apply_file(iam, path, admin, dry_run=True)  # a dry run finds it too
    with pytest.raises(ConfigInvalid) as caught:
        apply_file(iam, path, admin)
    assert [(e.line, e.column) for e in caught.value.errors] == [(10, 5)]
    assert "user PRIMARY/bob: PRIMARY: Password must be" in str(caught.value)
    assert "short" not in str(caught.value)
    assert iam.identity.count_users("PRIMARY") == 0
    assert iam.identity.list_roles() == []
    assert config_audit(iam) == []
    assert iam.idp_names() == [] and iam.resident_app().outbound == ()
    # the in-memory state was put back too
    assert iam.stores.store("PRIMARY").policies.case_insensitive_usernames is False


def test_an_invalid_file_writes_nothing_and_names_every_error(iam: Iam, admin: Initiator,
                                                              tmp_path: Path) -> None:
    path = write(tmp_path, """
        roles:
          - name: Internal/provisioned
        users:
          - username: alice
            roles: [Internal/provisioned, PRIMARY/nope]
          - username: NOWHERE/bob
        """)
    with pytest.raises(ConfigInvalid) as caught:
        apply_file(iam, path, admin)
    assert [(e.line, e.column) for e in caught.value.errors] == [(5, 35), (6, 15)]
    assert iam.identity.list_roles() == [] and config_audit(iam) == []


# ---------------------------------------------------------------- memberships
def test_role_lists_are_exact_when_given(iam: Iam, admin: Initiator, tmp_path: Path) -> None:
    for name in ("alice", "bob", "carol"):
        iam.identity.add_user(admin, name)
    iam.identity.add_role(admin, "Internal/a", ["alice", "bob"])
    iam.identity.add_role(admin, "Internal/b", ["alice"])
    path = write(tmp_path, """
        roles:
          - name: Internal/a
            members: [carol]
        users:
          - username: alice
            roles: [Internal/a]
          - username: bob
        """)
    assert apply_file(iam, path, admin) == [
        "~ role Internal/a (members: +PRIMARY/carol, -PRIMARY/bob)",
        "~ role Internal/b (members: -PRIMARY/alice)",
    ]
    assert sorted(u.username for u in iam.identity.members_of("Internal/a")) == ["alice", "carol"]
    assert apply_file(iam, path, admin) == []


# ---------------------------------------------------------------- secrets
def test_secrets_are_encrypted_at_rest_and_never_exported(iam: Iam, admin: Initiator,
                                                          tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setenv("PARTNER_SCIM_TOKEN", TOKEN)
    monkeypatch.setenv("CFG_TEST_TOKEN", TOKEN + "-2")
    apply_file(iam, SAMPLE_CONFIG, admin)
    apply_file(iam, write(tmp_path, SCIM_PEER), admin)
    assert iam.get_idp("partner-directory").connector("scim2").secrets[
        "scim2-access-token"].value == TOKEN
    with iam.db.transaction() as conn:
        rows = [dict(r) for r in conn.execute(select(connector_configs)).mappings()]
    raw = json.dumps(rows, default=str)
    assert len(rows) == 2 and "scim2-access-token" in raw
    assert TOKEN not in raw
    for include_users in (False, True):
        text = export_config(iam, include_users=include_users)
        assert TOKEN not in text
        assert "scim2-access-token: ${env:PARTNER_SCIM_TOKEN:-demo-partner-token}" in text
        assert "scim2-access-token: ${env:CFG_TEST_TOKEN}" in text


def test_an_unset_reference_keeps_the_secret_stored_under_it(iam: Iam, admin: Initiator,
                                                             tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    path = write(tmp_path, SCIM_PEER)
    monkeypatch.setenv("CFG_TEST_TOKEN", TOKEN)
    assert apply_file(iam, path, admin) == ["+ identity provider scim-peer"]
    monkeypatch.delenv("CFG_TEST_TOKEN")
    assert apply_file(iam, path, admin) == []
    secret = iam.get_idp("scim-peer").connector("scim2").secrets["scim2-access-token"]
    assert secret == SecretValue(TOKEN, "${env:CFG_TEST_TOKEN}")
    monkeypatch.setenv("CFG_TEST_TOKEN", "rotated-token")
    assert apply_file(iam, path, admin) == ["~ identity provider scim-peer (connectors)"]
    # a reference the deployment has never seen must resolve
    other = write(tmp_path, SCIM_PEER.replace("CFG_TEST_TOKEN", "CFG_OTHER_TOKEN"), "o.yaml")
    with pytest.raises(ConfigInvalid, match=r"o.yaml:8:31: scim2-access-token: "
                                            r"\$\{env:CFG_OTHER_TOKEN\}: the environment"):
        apply_file(iam, other, admin)
