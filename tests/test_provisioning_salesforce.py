"""Provisioning to the sandbox Salesforce org through the engine: delivery, deprovisioning
and reactivation, adoption, groups, a user with no last name, the API budget kept in the
status and the target throttled below the reserve, preview."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.sandbox.salesforce import SalesforcePeer, salesforce_peer
from core.apps import Application, OutboundTarget
from core.iam import Iam
from core.identity.events import Initiator
from core.idps import ClaimMapping, ConnectorConfig, IdentityProvider, RoleMapping
from core.provisioning import mapping
from core.provisioning.outbox import JobState
from core.secrets import SecretValue
from tests.provisioning_helpers import drain

TARGET = "crm:salesforce"
SECRET_KEYS = ("sf-client-secret", "sf-password", "sf-jwt-private-key")


@pytest.fixture(scope="module")
def org() -> Iterator[SalesforcePeer]:
    with salesforce_peer() as peer:
        yield peer


def connect(iam: Iam, org: SalesforcePeer, flow: str = "client_credentials",
            claim_mappings: tuple[ClaimMapping, ...] = (),
            role_mappings: tuple[RoleMapping, ...] = (), **extra: Any) -> None:
    props = {**org.properties(flow), "retry-base-seconds": 1, "probe-seconds": 1, **extra}
    secrets = {k: SecretValue(str(props.pop(k))) for k in SECRET_KEYS if k in props}
    admin = Initiator.admin()
    iam.save_idp(admin, IdentityProvider(
        name="crm", claim_mappings=claim_mappings, role_mappings=role_mappings,
        connectors=(ConnectorConfig("salesforce", properties=props, secrets=secrets),)))
    app = iam.resident_app()
    iam.save_app(admin, Application(
        name=app.name, description=app.description, resident=app.resident,
        inbound_domain=app.inbound_domain, proxy_mode=app.proxy_mode,
        outbound=(OutboundTarget("crm", "salesforce"),)))


def remote_id(iam: Iam, user_id: str) -> str:
    with iam.db.engine.connect() as conn:
        found = mapping.get(conn, TARGET, "user", user_id)
    assert found is not None
    return found.remote_id


def person(name: str, **claims: str) -> dict[str, str]:
    return {"givenname": name.title(), "lastname": "Tester",
            "emailaddress": f"{name}@example.com", **claims}


def test_user_lifecycle_reaches_the_org_and_delete_deactivates(
        sqlite_iam: Iam, admin: Initiator, org: SalesforcePeer) -> None:
    connect(sqlite_iam, org, **{"deprovision-action": "delete"})
    user = sqlite_iam.identity.add_user(admin, "engie", "Secret-pass1", person("engie"))
    drain(sqlite_iam)
    rid = remote_id(sqlite_iam, user.id)
    remote = org.user(rid)
    assert remote is not None and remote["Username"] == "engie@sandbox.example.com"
    assert (remote["LastName"], remote["IsActive"]) == ("Tester", True)
    sqlite_iam.identity.update_user(admin, "engie", {"lastname": "Changed"})
    drain(sqlite_iam)
    assert org.user(rid)["LastName"] == "Changed"  # type: ignore[index]
    sqlite_iam.identity.delete_user(admin, "engie")
    drain(sqlite_iam)
    assert org.user(rid)["IsActive"] is False  # type: ignore[index]  # kept, inactive
    # the same name again: the org refuses the duplicate, the engine adopts and reactivates
    again = sqlite_iam.identity.add_user(admin, "engie", None, person("engie"))
    drain(sqlite_iam)
    assert remote_id(sqlite_iam, again.id) == rid
    assert org.user(rid)["IsActive"] is True  # type: ignore[index]
    [job] = [j for j in sqlite_iam.provisioning.jobs() if j.entity_id == again.id]
    assert job.state is JobState.SUCCEEDED and "adopted" in (job.last_error or "")


def test_no_last_name_is_a_dead_job_naming_user_and_field(
        sqlite_iam: Iam, admin: Initiator, org: SalesforcePeer) -> None:
    connect(sqlite_iam, org)
    sqlite_iam.identity.add_user(admin, "nolast", None, {"emailaddress": "n@example.com"})
    drain(sqlite_iam)
    [job] = sqlite_iam.provisioning.jobs()
    assert job.state is JobState.DEAD
    assert "user 'nolast' has no LastName" in (job.last_error or "")


def test_claim_mappings_name_salesforce_fields_with_defaults(
        sqlite_iam: Iam, admin: Initiator, org: SalesforcePeer) -> None:
    connect(sqlite_iam, org, claim_mappings=(
        ClaimMapping("lastname", "LastName", "Unknown"), ClaimMapping("emailaddress", "Email"),
        ClaimMapping("department", "Department")))
    user = sqlite_iam.identity.add_user(admin, "mapped", None, {
        "emailaddress": "m@example.com", "department": "Sales"})
    drain(sqlite_iam)
    remote = org.user(remote_id(sqlite_iam, user.id))
    assert remote is not None
    assert (remote["LastName"], remote["Department"]) == ("Unknown", "Sales")


def test_groups_become_public_groups_with_members(
        sqlite_iam: Iam, admin: Initiator, org: SalesforcePeer) -> None:
    connect(sqlite_iam, org, role_mappings=(RoleMapping("PRIMARY/sales", "Sales Team"),))
    member = sqlite_iam.identity.add_user(admin, "seller", None, person("seller"))
    group = sqlite_iam.identity.add_role(admin, "sales", ["seller"])
    drain(sqlite_iam)
    with sqlite_iam.db.engine.connect() as conn:
        found = mapping.get(conn, TARGET, "group", group.id)
    assert found is not None
    assert org.org.groups[found.remote_id]["Name"] == "Sales Team"
    assert org.group_members(found.remote_id) == {remote_id(sqlite_iam, member.id)}


@pytest.fixture
def fresh_org() -> Iterator[SalesforcePeer]:
    """An org of the test's own (one test runs on every database backend)."""
    with salesforce_peer() as peer:
        yield peer


def test_api_usage_is_in_the_status_and_a_low_budget_throttles_the_target(
        iam: Iam, admin: Initiator, fresh_org: SalesforcePeer) -> None:
    org = fresh_org
    connect(iam, org, **{"probe-seconds": 2})
    pool = iam.provisioning.worker_pool()

    async def scenario() -> None:
        iam.identity.add_user(admin, "first", None, person("first"))
        await pool.drain(horizon=0.5)  # the answer says the budget is nearly spent
        [status] = iam.provisioning.status()
        assert status.state == "healthy"
        assert status.facts["api usage"].startswith(f"{org.limit - 9}/{org.limit} ")
        iam.identity.add_user(admin, "second", None, person("second"))
        iam.identity.add_user(admin, "third", None, person("third"))
        await pool.drain(horizon=0.5)
        [status] = iam.provisioning.status()
        assert status.state == "throttled"
        assert "sf-api-reserve" in (status.last_error or "")
        assert status.quarantined_until is not None
        waiting = [j for j in iam.provisioning.jobs() if j.state is JobState.RETRY]
        assert len(waiting) == 2 and all(j.attempts == 0 for j in waiting)  # none spent
        org.set_usage(100)  # the rolling day moved on
        await pool.drain(horizon=5)

    org.set_usage(org.limit - 10)
    try:
        asyncio.run(scenario())
    finally:
        pool.close()
    [status] = iam.provisioning.status()
    assert status.state == "healthy" and status.queued == status.retrying == 0
    assert status.facts["api usage"].startswith("1")
    assert {j.state for j in iam.provisioning.jobs()} == {JobState.SUCCEEDED}


def test_preview_shows_the_token_request_masked_and_the_user_post(
        sqlite_iam: Iam, admin: Initiator, org: SalesforcePeer) -> None:
    connect(sqlite_iam, org, "password")
    sqlite_iam.identity.add_user(admin, "peek", None, person("peek"))
    before = org.tokens_issued
    [report] = sqlite_iam.provisioning.preview("peek")
    shown = json.dumps(report.requests)
    assert [(r["method"], r["url"].rsplit("/services/", 1)[1]) for r in report.requests] == [
        ("POST", "oauth2/token"), ("POST", "data/v61.0/sobjects/User/")]
    assert '"Username": "peek@sandbox.example.com"' in shown
    assert "sandbox-consumer-secret" not in shown and "********" in shown
    assert org.tokens_issued == before  # nothing was sent


def test_the_demo_provisions_its_seeded_users_to_the_sandbox_org() -> None:
    from core.demo.deployment import demo_deployment
    from tests.conftest import FAST_ARGON2

    with demo_deployment(peer_port=None, argon2=FAST_ARGON2) as env:
        reports = env.iam.provisioning.status()
        org_status = [s for s in reports if s.target == "salesforce-org:salesforce"]
        assert org_status and org_status[0].state == "healthy"
        assert "api usage" in org_status[0].facts
        jobs = [j for j in env.iam.provisioning.jobs() if j.target == "salesforce-org:salesforce"]
        assert jobs and all(j.state is JobState.SUCCEEDED for j in jobs)


def test_cli_status_shows_the_api_usage_and_the_throttled_state(
        tmp_path, org: SalesforcePeer) -> None:
    from tests.test_cli import Cli

    run = Cli(tmp_path / "home")
    with run.iam() as iam:
        connect(iam, org, **{"probe-seconds": 600})
        admin = Initiator.admin()
        pool = iam.provisioning.worker_pool()

        async def scenario() -> None:
            iam.identity.add_user(admin, "cli1", None, person("cli1"))
            await pool.drain(horizon=0.5)
            org.set_usage(org.limit - 10)
            iam.identity.add_user(admin, "cli2", None, person("cli2"))
            await pool.drain(horizon=0.5)  # answered: the reading is low now
            iam.identity.add_user(admin, "cli3", None, person("cli3"))
            await pool.drain(horizon=0.5)  # paused without a request

        try:
            asyncio.run(scenario())
        finally:
            org.set_usage(0)
            pool.close()
    shown = run.ok("provisioning", "status").stdout
    assert "throttled until" in shown and f"api usage {org.limit - 9}/{org.limit}" in shown
    [target] = json.loads(run.ok("provisioning", "status", "--json").stdout)["targets"]
    assert target["state"] == "throttled"
    assert target["facts"]["api usage"].startswith(f"{org.limit - 9}/")
    assert "sf-api-reserve" in target["last_error"]


def test_the_sandbox_command_is_listed() -> None:
    from click.testing import CliRunner

    from core.cli.main import cli

    shown = CliRunner().invoke(cli, ["sandbox", "--help"]).output
    assert "salesforce" in shown
    usage = CliRunner().invoke(cli, ["sandbox", "salesforce", "--help"]).output
    assert "--port" in usage and "--token-seconds" in usage


def test_reconcile_counts_a_deactivated_user_as_deleted(sqlite_iam: Iam,
                                                        admin: Initiator) -> None:
    """Salesforce cannot delete users: one we deprovisioned (deactivated) is not extra, one
    of ours deactivated behind our back is missing (and reactivated by the repair), an
    inactive user that was never ours is not extra, an active one is."""
    with salesforce_peer(max_batch=2) as fresh:
        connect(sqlite_iam, fresh, **{"deprovision-action": "delete"})
        kept = sqlite_iam.identity.add_user(admin, "kept", None, person("kept"))
        sqlite_iam.identity.add_user(admin, "gone", None, person("gone"))
        drain(sqlite_iam)
        sqlite_iam.identity.delete_user(admin, "gone")
        drain(sqlite_iam)
        fresh.seed_user("stranger@sandbox.example.com")
        fresh.seed_user("retired@sandbox.example.com", IsActive=False)
        rid = remote_id(sqlite_iam, kept.id)
        fresh.org.users[rid]["IsActive"] = False  # an administrator of the org did this

        report = sqlite_iam.provisioning.reconcile(admin, TARGET)
        assert report.remote_users == 4
        assert report.missing_remote == ["PRIMARY/kept"]
        assert report.extra_remote == ["stranger"]
        assert (report.drifted, report.unlinked) == ([], [])
        sqlite_iam.provisioning.reconcile(admin, TARGET, repair=True)
        drain(sqlite_iam)
        assert fresh.user(rid)["IsActive"] is True  # type: ignore[index]
        after = sqlite_iam.provisioning.reconcile(admin, TARGET)
        assert (after.missing_remote, after.extra_remote) == ([], ["stranger"])
