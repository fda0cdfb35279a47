"""Reconciliation (issue 16) against a real SCIM 2.0 peer (scim2-server): drift made on the
peer directly is reported exactly, and repaired through the outbox."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from core.errors import InvalidInput
from core.iam import Iam
from core.identity.events import Initiator
from core.provisioning.reconcile import Drifted
from tests.provisioning_helpers import connect, drain, peer_groups, peer_users
from tests.test_cli import Cli

TARGET = "peer:scim2"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _provisioned(iam: Iam, admin: Initiator, scim_peer: str, *names: str) -> None:
    connect(iam, scim_peer)
    for name in names:
        iam.identity.add_user(admin, name, None, {"givenname": name.title(),
                                                  "lastname": "Tester"})
    drain(iam)


def _remote_id(scim_peer: str, name: str) -> str:
    [user] = peer_users(scim_peer, name)
    return str(user["id"])


def test_a_target_in_sync_reports_nothing(iam: Iam, admin: Initiator, scim_peer: str) -> None:
    _provisioned(iam, admin, scim_peer, "anna", "ben")
    report = iam.provisioning.reconcile(admin, TARGET)
    assert report.in_sync, report
    assert (report.local_users, report.remote_users) == (2, 2)


def test_drift_made_on_the_peer_is_reported_exactly_and_repaired(
        iam: Iam, admin: Initiator, scim_peer: str) -> None:
    _provisioned(iam, admin, scim_peer, "anna", "ben", "cleo", "dan")
    # on the peer directly: one user deleted, one changed, one added that is ours by
    # name but unlinked, and one that is nobody's
    httpx.delete(f"{scim_peer}/Users/{_remote_id(scim_peer, 'ben')}").raise_for_status()
    cleo = peer_users(scim_peer, "cleo")[0]
    cleo["name"]["givenName"] = "Changed"
    httpx.put(f"{scim_peer}/Users/{cleo['id']}", json=cleo).raise_for_status()
    iam.identity.add_user(admin, "eve", None, {})
    iam.provisioning.cancel(admin, iam.provisioning.jobs(states=["pending"])[0].pk)
    for stranger in ("eve", "zed"):
        httpx.post(f"{scim_peer}/Users", json={"schemas": [CORE_USER], "userName": stranger}
                   ).raise_for_status()

    report = iam.provisioning.reconcile(admin, TARGET)
    assert report.missing_remote == ["PRIMARY/ben"]
    assert report.extra_remote == ["zed"]
    assert report.drifted == [Drifted("PRIMARY/cleo", ["name.givenName"])]
    assert report.unlinked == ["PRIMARY/eve"]
    assert report.jobs_queued == 0 and not iam.provisioning.jobs(states=["pending"])

    repaired = iam.provisioning.reconcile(admin, TARGET, repair=True)
    assert repaired.jobs_queued == 3
    drain(iam)
    assert peer_users(scim_peer, "cleo")[0]["name"]["givenName"] == "Cleo"
    after = iam.provisioning.reconcile(admin, TARGET)
    assert (after.missing_remote, after.drifted, after.unlinked) == ([], [], [])
    assert after.extra_remote == ["zed"]  # never ours: reported, not deleted
    assert len(peer_users(scim_peer, "eve")) == 1  # adopted, not duplicated


def test_delete_extra_takes_back_only_our_users_out_of_scope(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str) -> None:
    iam = sqlite_iam
    iam.identity.add_role(admin, "Internal/provisioned")
    connect(iam, scim_peer, provisioning_roles=("Internal/provisioned",))
    iam.identity.add_user(admin, "anna", None, {}, roles=["Internal/provisioned"])
    iam.identity.add_user(admin, "ben", None, {}, roles=["Internal/provisioned"])
    drain(iam)
    # ben leaves scope while the workers are away and his deprovisioning is lost
    iam.identity.unassign(admin, "Internal/provisioned", ["ben"])
    iam.provisioning.cancel(admin, iam.provisioning.jobs(states=["pending"])[0].pk)
    httpx.post(f"{scim_peer}/Users", json={"schemas": [CORE_USER], "userName": "zed"}
               ).raise_for_status()
    with pytest.raises(InvalidInput, match="--repair"):
        iam.provisioning.reconcile(admin, TARGET, delete_extra=True)
    report = iam.provisioning.reconcile(admin, TARGET, repair=True, delete_extra=True)
    assert sorted(report.extra_remote) == ["ben", "zed"] and report.jobs_queued == 1
    drain(iam)
    assert sorted(u["userName"] for u in peer_users(scim_peer)) == ["anna", "zed"]


def test_cli_prints_the_drift_as_json_and_exits_1(tmp_path: Path, scim_peer: str) -> None:
    run = Cli(tmp_path / "home")
    with run.iam() as iam:
        _provisioned(iam, Initiator.admin(), scim_peer, "anna", "ben")
    httpx.delete(f"{scim_peer}/Users/{_remote_id(scim_peer, 'anna')}").raise_for_status()
    result = run("provisioning", "reconcile", TARGET, "--json")
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout) == {"missing_remote": ["PRIMARY/anna"],
                                         "extra_remote": [], "drifted": [], "unlinked": [],
                                         "groups": {"missing_remote": [], "extra_remote": [],
                                                    "drifted": [], "unlinked": []},
                                         "jobs_queued": 0}
    shown = run("provisioning", "reconcile", TARGET, "--repair")
    assert "missing_remote" in shown.stdout and "PRIMARY/anna" in shown.stdout
    assert "1 job queued" in shown.stdout
    assert run("provisioning", "reconcile", "nobody:scim2").exit_code != 0


def test_a_target_with_groups(sqlite_iam: Iam, admin: Initiator, scim_peer: str) -> None:
    iam = sqlite_iam
    _provisioned(iam, admin, scim_peer, "anna", "ben")
    iam.identity.add_role(admin, "engineering", ["anna", "ben"])
    iam.identity.add_role(admin, "design", ["ben"])
    drain(iam)
    # on the peer: ben taken out of engineering, design renamed, a group of nobody's
    groups = {g["displayName"]: g for g in peer_groups(scim_peer)}
    anna = _remote_id(scim_peer, "anna")
    eng = groups["engineering"]
    httpx.put(f"{scim_peer}/Groups/{eng['id']}", json={
        "schemas": [CORE_GROUP], "displayName": "engineering", "members": [{"value": anna}]}
        ).raise_for_status()
    httpx.patch(f"{scim_peer}/Groups/{groups['design']['id']}", json={
        "schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "path": "displayName", "value": "Design"}]}).raise_for_status()
    httpx.post(f"{scim_peer}/Groups", json={"schemas": [CORE_GROUP], "displayName": "sales"}
               ).raise_for_status()
    # and here: a group whose job was lost
    iam.identity.add_role(admin, "ops", ["anna"])
    iam.provisioning.cancel(admin, iam.provisioning.jobs(states=["pending"])[0].pk)

    report = iam.provisioning.reconcile(admin, TARGET)
    assert report.empty, "the users are in sync"
    assert report.groups.missing_remote == ["PRIMARY/ops"]
    assert report.groups.extra_remote == ["sales"]
    assert sorted(report.groups.drifted, key=lambda d: d.user) == [
        Drifted("PRIMARY/design", ["displayName"]), Drifted("PRIMARY/engineering", ["members"])]
    iam.provisioning.reconcile(admin, TARGET, repair=True)
    drain(iam)
    after = iam.provisioning.reconcile(admin, TARGET)
    assert after.empty and after.groups.extra_remote == ["sales"]
    assert (after.groups.missing_remote, after.groups.drifted) == ([], [])
    groups = {g["displayName"]: g for g in peer_groups(scim_peer)}
    assert sorted(groups) == ["design", "engineering", "ops", "sales"]
    assert {m["value"] for m in groups["engineering"]["members"]} == {
        anna, _remote_id(scim_peer, "ben")}
