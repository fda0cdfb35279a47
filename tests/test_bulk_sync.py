"""Bulk sync (issue 16): everyone in a target's scope, and groups whose role mapping came
after them, reach a real SCIM 2.0 peer (scim2-server)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from core.iam import Iam
from core.identity.events import Initiator
from core.idps import RoleMapping
from tests.provisioning_helpers import connect, drain, peer_groups, peer_users
from tests.test_cli import Cli

TARGET = "peer:scim2"


def test_sync_all_sends_users_loaded_before_the_target_existed(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str) -> None:
    iam = sqlite_iam
    iam.identity.add_role(admin, "Internal/provisioned")
    for name in ("anna", "ben", "cleo"):
        iam.identity.add_user(admin, name, None, {"givenname": name.title()},
                              roles=["Internal/provisioned"] if name != "cleo" else [])
    iam.identity.add_role(admin, "engineering", ["anna", "ben"])
    connect(iam, scim_peer, provisioning_roles=("Internal/provisioned",))
    assert drain(iam) == 0 and peer_users(scim_peer) == []  # nothing planned them
    counts = iam.provisioning.sync_all(admin, TARGET)
    assert (counts.users, counts.groups) == (2, 1)
    drain(iam)
    assert sorted(u["userName"] for u in peer_users(scim_peer)) == ["anna", "ben"]
    [group] = peer_groups(scim_peer)
    assert group["displayName"] == "engineering" and len(group["members"]) == 2
    assert iam.provisioning.reconcile(admin, TARGET).in_sync


def test_a_role_mapping_added_after_its_group_sends_the_group(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str) -> None:
    iam = sqlite_iam
    connect(iam, scim_peer)
    idp = iam.get_idp("peer")
    iam.save_idp(admin, dataclasses.replace(
        idp, role_mappings=(RoleMapping("PRIMARY/engineering", "Engineering"),)))
    iam.identity.add_user(admin, "anna", None, {})
    iam.identity.add_role(admin, "sales", ["anna"])  # not mapped: not sent
    drain(iam)
    assert peer_groups(scim_peer) == []
    iam.save_idp(admin, dataclasses.replace(idp, role_mappings=(
        RoleMapping("PRIMARY/engineering", "Engineering"), RoleMapping("PRIMARY/sales", "Sales"))))
    drain(iam)
    [group] = peer_groups(scim_peer)
    assert group["displayName"] == "Sales" and len(group["members"]) == 1


def test_cli_sync_all(tmp_path: Path, scim_peer: str) -> None:
    run = Cli(tmp_path / "home")
    run.ok("user", "add", "anna", "--no-password")
    with run.iam() as iam:
        connect(iam, scim_peer)
    assert "queued 1 user and 0 groups for peer:scim2" in run.ok(
        "provisioning", "sync", "--all", TARGET).stdout
    assert json.loads(run.ok("provisioning", "sync", "--all", TARGET, "--json").stdout) == {
        "target": TARGET, "users": 1, "groups": 0}
    assert run("provisioning", "sync", "--all", TARGET, "--app", "x").exit_code == 2
    with run.iam() as iam:
        drain(iam)
    assert [u["userName"] for u in peer_users(scim_peer)] == ["anna"]


def test_the_offer_counts_the_users_in_scope_without_listing_everyone(
        sqlite_iam: Iam, admin: Initiator, tmp_path: Path) -> None:
    """The count (the console's offer) is the number sync_all then queues: holders of a
    provisioning role (an internal role or a store's group), each once, in enabled stores
    only, deleted users gone; everyone when the target has no provisioning roles."""
    iam = sqlite_iam
    iam.identity.add_role(admin, "Internal/provisioned")
    iam.save_userstore(admin, "SEC", "sql", {"url": f"sqlite:///{tmp_path}/sec.db"})
    iam.save_userstore(admin, "OFF", "sql", {"url": f"sqlite:///{tmp_path}/off.db"})
    held = ["Internal/provisioned"]
    for name, roles in (("anna", held), ("ben", []), ("cleo", []), ("dora", held),
                        ("eve", held), ("SEC/fred", held), ("SEC/gina", []),
                        ("OFF/hugo", held)):
        iam.identity.add_user(admin, name, None, {}, roles=roles)
    iam.identity.add_role(admin, "engineering", ["anna", "ben"])  # anna holds both
    iam.identity.add_role(admin, "sales", ["cleo"])  # not a provisioning role
    iam.identity.delete_user(admin, "eve")
    iam.save_userstore(admin, "OFF", "sql", {"url": f"sqlite:///{tmp_path}/off.db"},
                       enabled=False)
    connect(iam, "http://127.0.0.1:9", provisioning_roles=(
        "Internal/provisioned", "PRIMARY/engineering", "PRIMARY/absent"))
    assert iam.provisioning.users_in_scope(TARGET) == 4  # anna, ben, dora, SEC/fred
    assert iam.provisioning.sync_all(admin, TARGET).users == 4
    connect(iam, "http://127.0.0.1:9")  # no provisioning roles: everyone
    assert iam.provisioning.users_in_scope(TARGET) == 6
    assert iam.provisioning.sync_all(admin, TARGET).users == 6
