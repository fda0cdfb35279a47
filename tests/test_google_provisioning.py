"""Provisioning to Google Workspace through the engine and its workers, against the sandbox:
users, role-mapped groups, deprovisioning, permanent job errors, preview, ``${file:}``
secrets in the configuration language."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from connectors.sandbox.google import GoogleSandbox, google_sandbox
from core.apps import OutboundTarget
from core.configfile.export import export_config
from core.configfile.files import apply_file, validate_file
from core.iam import Iam
from core.identity.events import Initiator
from core.idps import ConnectorConfig, IdentityProvider, RoleMapping
from core.secrets import SecretValue
from tests.peers import PeerUnavailable
from tests.provisioning_helpers import drain
from tests.servers import unavailable

TARGET = "gws:googleapps"
KEY = "google_prov_private_key"


@pytest.fixture(scope="module")
def peer() -> Iterator[GoogleSandbox]:
    try:
        with google_sandbox() as sandbox:
            yield sandbox
    except PeerUnavailable as exc:
        unavailable(str(exc))


def connect(iam: Iam, peer: GoogleSandbox, **props: object) -> None:
    admin = Initiator.admin()
    properties = {k: v for k, v in peer.properties().items() if k != KEY}
    iam.save_idp(admin, IdentityProvider(
        name="gws", role_mappings=(RoleMapping("PRIMARY/engineering", "eng-gws"),),
        connectors=(ConnectorConfig("googleapps", properties={
            **properties, "retry-base-seconds": 1, "timeout-seconds": 2, **props},
            secrets={KEY: SecretValue(peer.private_key_pem)}),)))
    resident = iam.resident_app()
    iam.save_app(admin, dataclasses.replace(
        resident, outbound=(OutboundTarget("gws", "googleapps", False, False),)))


def test_users_groups_and_deprovisioning_through_the_workers(sqlite_iam: Iam, peer):
    iam, admin = sqlite_iam, Initiator.admin()
    connect(iam, peer, **{"deprovision-action": "disable"})
    iam.identity.add_user(admin, "vera", "Vera-Secret-1",
                          {"givenname": "Vera", "lastname": "Rubin",
                           "emailaddress": "vera@elsewhere.com"})
    iam.identity.add_role(admin, "engineering", ["vera"])
    drain(iam)
    held = peer.user_by_email("vera@example.org")  # the pattern {UN}: at the domain
    assert held is not None and held["name"]["familyName"] == "Rubin"
    group = peer.group_by_email("eng-gws@example.org")
    assert group is not None and peer.group_members(group["id"]) == {held["id"]}
    iam.identity.unassign(admin, "engineering", ["vera"])  # role changes move memberships
    drain(iam)
    assert peer.group_members(group["id"]) == set()
    iam.identity.delete_user(admin, "vera")
    drain(iam)
    assert peer.remote_user(held["id"]).active is False  # suspended, not deleted
    _job, attempts = iam.provisioning.job(iam.provisioning.jobs(target=TARGET)[0].pk)
    assert "Vera-Secret-1" not in str(attempts)


def test_a_user_google_refuses_is_a_dead_job_naming_user_and_field(sqlite_iam: Iam, peer):
    iam, admin = sqlite_iam, Initiator.admin()
    connect(iam, peer)
    iam.identity.add_user(admin, "wes", None, {"givenname": "Wes"})
    drain(iam)
    [job] = iam.provisioning.jobs(states=["dead"], target=TARGET)
    assert "user 'wes' has no familyName" in (job.last_error or "")
    assert peer.user_by_email("wes@example.org") is None


def test_preview_shows_the_exact_google_requests(sqlite_iam: Iam, peer):
    iam, admin = sqlite_iam, Initiator.admin()
    connect(iam, peer)
    before = peer.api_requests
    iam.identity.add_user(admin, "xia", "Xia-Secret-1", {"givenname": "Xia", "lastname": "Li"})
    iam.provisioning.cancel(admin, iam.provisioning.jobs(target=TARGET)[0].pk)
    [report] = iam.provisioning.preview("xia")
    token, create = report.requests
    assert token["url"] == peer.token_url and token["request_body"]["assertion"] == "********"
    assert create["method"] == "POST" and create["url"].endswith("/admin/directory/v1/users")
    assert create["request_body"] == {"primaryEmail": "xia@example.org", "suspended": False,
                                      "name": {"givenName": "Xia", "familyName": "Li"},
                                      "password": "********"}
    assert peer.api_requests == before and peer.user_by_email("xia@example.org") is None


def test_file_reference_for_the_key_is_applied_and_exported_back(sqlite_iam: Iam, peer,
                                                                 tmp_path: Path):
    key_file = tmp_path / "key.pem"
    key_file.write_text(peer.private_key_pem)
    connector = {"type": "googleapps", "properties": {
        **{k: v for k, v in peer.properties().items() if k != KEY},
        KEY: f"${{file:{key_file}}}"}}
    config = tmp_path / "gws.yaml"
    config.write_text(yaml.safe_dump({"identity_providers": [
        {"name": "gws", "connectors": [connector]}]}))
    assert validate_file(config, sqlite_iam) == []
    apply_file(sqlite_iam, config, Initiator.admin())
    stored = sqlite_iam.get_idp("gws").connector("googleapps").secrets[KEY]
    assert stored.value == peer.private_key_pem.strip()
    exported = export_config(sqlite_iam)
    assert f"${{file:{key_file}}}" in exported and "PRIVATE KEY" not in exported
    assert "acting for admin@example.org" in sqlite_iam.provisioning.test_connection(
        "gws:googleapps")


def test_config_validate_names_each_bad_property(sqlite_iam: Iam, peer, tmp_path: Path):
    props = {k: v for k, v in peer.properties().items() if k != KEY}
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"identity_providers": [{"name": "gws", "connectors": [{
        "type": "googleapps", "properties": {
            **props, KEY: "${env:NO_SUCH_GOOGLE_KEY:-not-a-key}",
            "google_prov_admin_email": "boss@other.org",
            "google_prov_pattern": "{UN, USER}"}}]}]}))
    errors = "\n".join(map(str, validate_file(config, sqlite_iam)))
    assert "google_prov_private_key: not a readable private key" in errors
    assert "google_prov_admin_email: 'boss@other.org' is not at the domain" in errors
    assert "google_prov_pattern: unknown placeholder 'USER'" in errors


def test_the_demo_provisions_its_users_to_the_google_sandbox() -> None:
    from core.demo.deployment import demo_deployment
    from tests.conftest import FAST_ARGON2

    with demo_deployment(peer_port=None, argon2=FAST_ARGON2) as env:
        [alice] = [m for m in env.iam.provisioning.mappings_of("alice")
                   if m.target == "google-workspace:googleapps"]
        assert alice.remote_name == "alice@example.com" and alice.last_outcome == "succeeded"
        stored = env.iam.get_idp("google-workspace").connector("googleapps").secrets[KEY]
        assert stored.ref == f"${{file:{env.home / 'google-service-account.pem'}}}"


def test_an_existing_account_is_adopted_without_its_password(sqlite_iam: Iam, peer):
    iam, admin = sqlite_iam, Initiator.admin()
    connect(iam, peer)
    existing = peer.seed_user("yan")
    passwords = len(peer.passwords)
    iam.identity.add_user(admin, "yan", "Yan-Secret-1", {"givenname": "Yan", "lastname": "Ng"})
    drain(iam)
    [mapped] = [m for m in iam.provisioning.mappings_of("yan") if m.target == TARGET]
    assert mapped.remote_id == existing and mapped.adopted
    assert peer.remote_user(existing).attributes["name"]["familyName"] == "Ng"
    # the create's password reached Google and was refused (409); the adopting update
    # sends none: the account keeps its own
    assert len(peer.passwords) == passwords + 1


def test_cli_provisioning_test_mints_a_token_and_reads_the_admin(sqlite_iam: Iam, peer,
                                                                 tmp_path: Path) -> None:
    from click.testing import CliRunner

    from core.cli.main import cli

    connect(sqlite_iam, peer)
    home = str(tmp_path / "home")
    result = CliRunner().invoke(cli, ["--home", home, "provisioning", "test", TARGET])
    assert result.exit_code == 0, result.output
    assert "a token was issued to" in result.output and "acting for admin@example.org" in \
        result.output
    connect(sqlite_iam, peer, google_prov_admin_email="nobody@example.org")
    result = CliRunner().invoke(cli, ["--home", home, "provisioning", "test", TARGET])
    assert result.exit_code != 0 and "unauthorized_client" in result.output
    assert "Traceback" not in result.output
