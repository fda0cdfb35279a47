"""The README's inbound SCIM flow against sample_config/, end to end: an HR system creates
a user over SCIM, puts it in the sample's provisioning group, and the user arrives at the
SCIM peer (a real scim2-server)."""

from __future__ import annotations

from pathlib import Path

from core.configfile.files import SAMPLE_CONFIG, apply_file
from core.iam import Iam
from core.identity.events import Initiator
from tests.provisioning_helpers import drain, peer_users
from tests.scim_api import PATCH, USER, served


def test_a_user_created_over_scim_reaches_the_sample_peer(sqlite_iam: Iam, scim_peer: str,
                                                          tmp_path: Path) -> None:
    sample = tmp_path / "mware-iam.yaml"  # the sample, pointed at this test's peer
    sample.write_text(SAMPLE_CONFIG.read_text(encoding="utf-8").replace(
        "http://127.0.0.1:8787/v2", scim_peer), encoding="utf-8")
    apply_file(sqlite_iam, sample, Initiator.admin())
    drain(sqlite_iam)  # the seeded users go out first
    token = sqlite_iam.issue_token(Initiator.admin(), "hr-portal")
    with served(sqlite_iam) as api, api.client(token) as hr:
        # README: create the user ...
        created = hr.post("/Users", json={
            "schemas": [USER], "userName": "ann",
            "emails": [{"value": "ann@example.com", "type": "work"}]})
        assert created.status_code == 201, created.text
        drain(sqlite_iam)
        assert peer_users(scim_peer, "ann") == []  # not in the peer's scope yet
        # ... and put it in the group that scopes the peer.
        groups = hr.get("/Groups", params={"filter": 'displayName eq "employees"'}).json()
        [employees] = groups["Resources"]
        added = hr.patch(f"/Groups/{employees['id']}", json={
            "schemas": [PATCH], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": created.json()["id"]}]}]})
        assert added.status_code in (200, 204), added.text
    drain(sqlite_iam)
    [remote] = peer_users(scim_peer, "ann")
    assert remote["emails"][0]["value"] == "ann@example.com"
