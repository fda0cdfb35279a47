"""The outbound provisioning engine against a real SCIM 2.0 peer (scim2-server)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select, update

from core.errors import OperationRefused
from core.iam import Iam
from core.identity.events import Initiator
from core.provisioning import mapping
from core.provisioning.outbox import JobState
from core.schema import prov_jobs, prov_target_state
from tests.peers import Fault, FaultProxy
from tests.provisioning_helpers import connect, drain, peer_groups, peer_users

TARGET = "peer:scim2"


def job_count(iam: Iam) -> int:
    with iam.db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(prov_jobs)).scalar_one())


def test_added_user_reaches_the_peer_with_claims(iam: Iam, admin: Initiator,
                                                 scim_peer: str) -> None:
    connect(iam, scim_peer)
    user = iam.identity.add_user(admin, "alice", "Wonderland1",
                                 {"givenname": "Alice", "lastname": "Liddell",
                                  "emailaddress": "alice@example.com"})
    assert peer_users(scim_peer) == []  # queued, not sent inline
    assert drain(iam) == 1
    [remote] = peer_users(scim_peer, "alice")
    assert remote["name"]["givenName"] == "Alice"
    assert remote["emails"][0]["value"] == "alice@example.com"
    with iam.db.engine.connect() as conn:
        m = mapping.get(conn, TARGET, "user", user.id)
    assert m is not None and m.remote_id == remote["id"] and not m.adopted
    [status] = iam.provisioning.status()
    assert (status.state, status.succeeded, status.queued) == ("healthy", 1, 0)
    job = iam.provisioning.jobs()[0]
    assert job.state is JobState.SUCCEEDED and "password" not in job.payload


def test_updates_coalesce_and_address_the_stored_id(iam: Iam, admin: Initiator,
                                                    scim_peer: str) -> None:
    connect(iam, scim_peer)
    iam.identity.add_user(admin, "bob", None, {"givenname": "Bob"})
    drain(iam)
    for title in ("Engineer", "Senior engineer", "Staff engineer"):
        iam.identity.update_user(admin, "bob", {"title": title})
    assert len(iam.provisioning.jobs(states=["pending"])) == 1
    assert drain(iam) == 1
    [remote] = peer_users(scim_peer, "bob")
    assert remote["title"] == "Staff engineer"


def test_delete_before_delivery_sends_nothing(iam: Iam, admin: Initiator,
                                              scim_peer: str) -> None:
    connect(iam, scim_peer)
    iam.identity.add_user(admin, "carol", None, {})
    iam.identity.delete_user(admin, "carol")
    drain(iam)
    assert peer_users(scim_peer) == []
    states = sorted(j.state.value for j in iam.provisioning.jobs())
    assert states == ["cancelled", "skipped"]


def test_delete_reaches_the_peer(iam: Iam, admin: Initiator, scim_peer: str) -> None:
    connect(iam, scim_peer)
    iam.identity.add_user(admin, "dave", None, {})
    drain(iam)
    assert len(peer_users(scim_peer, "dave")) == 1
    iam.identity.delete_user(admin, "dave")
    drain(iam)
    assert peer_users(scim_peer, "dave") == []


def test_existing_remote_user_is_adopted_not_duplicated(iam: Iam, admin: Initiator,
                                                        scim_peer: str) -> None:
    existing = httpx.post(f"{scim_peer}/Users", json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "erin"},
        timeout=5).json()
    connect(iam, scim_peer)
    user = iam.identity.add_user(admin, "erin", "Pa55word!", {"givenname": "Erin"})
    drain(iam)
    [remote] = peer_users(scim_peer, "erin")
    assert remote["id"] == existing["id"] and remote["name"]["givenName"] == "Erin"
    with iam.db.engine.connect() as conn:
        m = mapping.get(conn, TARGET, "user", user.id)
    assert m is not None and m.adopted and m.remote_id == existing["id"]


def test_provisioning_role_scope(iam: Iam, admin: Initiator, scim_peer: str) -> None:
    iam.identity.add_role(admin, "Internal/provisioned")
    connect(iam, scim_peer, provisioning_roles=("Internal/provisioned",))
    iam.identity.add_user(admin, "frank", None, {})
    drain(iam)
    assert peer_users(scim_peer) == [] and job_count(iam) == 0
    iam.identity.assign(admin, "Internal/provisioned", ["frank"])
    drain(iam)
    assert len(peer_users(scim_peer, "frank")) == 1
    iam.identity.unassign(admin, "Internal/provisioned", ["frank"])
    drain(iam)
    assert peer_users(scim_peer, "frank") == []


def test_new_user_with_a_provisioning_role_is_provisioned(iam: Iam, admin: Initiator,
                                                          scim_peer: str) -> None:
    iam.identity.add_role(admin, "Internal/provisioned")
    connect(iam, scim_peer, provisioning_roles=("Internal/provisioned",))
    iam.identity.add_user(admin, "gina", None, {}, roles=["Internal/provisioned"])
    drain(iam)
    assert len(peer_users(scim_peer, "gina")) == 1  # reference bug #4356 fixed


def test_deprovision_by_disabling(iam: Iam, admin: Initiator, scim_peer: str) -> None:
    iam.identity.add_role(admin, "Internal/provisioned")
    connect(iam, scim_peer, provisioning_roles=("Internal/provisioned",),
            **{"deprovision-action": "disable"})
    iam.identity.add_user(admin, "hank", None, {}, roles=["Internal/provisioned"])
    drain(iam)
    iam.identity.add_user(admin, "hilda", None, {}, roles=["Internal/provisioned"])
    drain(iam)
    iam.identity.unassign(admin, "Internal/provisioned", ["hank"])
    iam.identity.unassign(admin, "Internal/provisioned", ["hilda"])
    drain(iam)
    for name in ("hank", "hilda"):
        [remote] = peer_users(scim_peer, name)
        assert remote["active"] is False
    # the target's ServiceProviderConfig was read once for both, not once per job
    requests = [e["url"] for j in iam.provisioning.jobs(states=["succeeded"])
                for a in iam.provisioning.job(j.pk)[1] for e in a["exchanges"]]
    assert sum(u.endswith("/ServiceProviderConfig") for u in requests) == 1


def test_groups_with_members(iam: Iam, admin: Initiator, scim_peer: str) -> None:
    connect(iam, scim_peer)
    iam.identity.add_user(admin, "ivy", None, {})
    iam.identity.add_user(admin, "jack", None, {})
    iam.identity.add_role(admin, "engineering", ["ivy"])
    drain(iam)
    iam.identity.assign(admin, "engineering", ["jack"])
    drain(iam)
    [group] = peer_groups(scim_peer)
    ids = {u["userName"]: u["id"] for u in peer_users(scim_peer)}
    assert group["displayName"] == "engineering"
    assert sorted(m["value"] for m in group["members"]) == sorted(ids.values())
    iam.identity.rename_role(admin, "engineering", "platform")
    iam.identity.unassign(admin, "platform", ["ivy"])
    drain(iam)
    [group] = peer_groups(scim_peer)
    assert group["displayName"] == "platform"
    assert [m["value"] for m in group["members"]] == [ids["jack"]]
    iam.identity.delete_role(admin, "platform")
    drain(iam)
    assert peer_groups(scim_peer) == []


def test_no_group_jobs_without_a_group_endpoint(iam: Iam, admin: Initiator,
                                                scim_peer: str) -> None:
    connect(iam, scim_peer, **{"scim2-group-ep": ""})
    iam.identity.add_user(admin, "gus", None, {})
    iam.identity.add_role(admin, "engineering", ["gus"])
    assert [j.operation.value for j in iam.provisioning.jobs()] == ["upsert_user"]


def test_permanent_error_is_dead_with_the_peer_detail_then_retried(
        iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    connect(iam, fault_proxy.url(scim_peer))
    fault_proxy.script(Fault.answer(400, {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400",
        "scimType": "invalidValue", "detail": "department is not known here"}))
    iam.identity.add_user(admin, "kim", None, {})
    drain(iam)
    [job] = iam.provisioning.jobs()
    assert job.state is JobState.DEAD and job.last_status == 400
    assert "department is not known here" in (job.last_error or "")
    _job, attempts = iam.provisioning.job(job.pk)
    assert attempts[-1]["status_code"] == 400 and attempts[-1]["exchanges"]
    assert iam.provisioning.retry(admin, dead_of_target=TARGET) == 1
    drain(iam)
    assert len(peer_users(scim_peer, "kim")) == 1


def test_retry_after_is_honoured(iam: Iam, admin: Initiator, scim_peer: str,
                                 fault_proxy: FaultProxy) -> None:
    connect(iam, fault_proxy.url(scim_peer))
    fault_proxy.script(Fault.answer(429, None, **{"Retry-After": "30"}))
    iam.identity.add_user(admin, "lena", None, {})
    before = datetime.now(UTC)
    drain(iam)
    [job] = iam.provisioning.jobs()
    assert job.state is JobState.RETRY
    wait = (job.next_attempt_at - before).total_seconds()
    assert 29 <= wait <= 32


def test_outage_quarantines_then_recovers_and_loses_nothing(
        iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    connect(iam, fault_proxy.url(scim_peer), **{"probe-seconds": 60})
    fault_proxy.script(*[Fault.answer(503) for _ in range(3)])
    for name in ("mia", "noah", "olga"):
        iam.identity.add_user(admin, name, None, {})
    drain(iam, horizon=0)  # one attempt each: three 503s pass the threshold of 3
    [status] = iam.provisioning.status()
    assert status.state == "quarantined" and status.retrying == 3
    assert "503" in (status.last_error or "")
    with iam.db.engine.begin() as conn:  # every job due now: the quarantine still holds
        conn.execute(update(prov_jobs).values(next_attempt_at=datetime.now(UTC)))
    assert drain(iam, horizon=0) == 0
    with iam.db.engine.begin() as conn:  # the probe time has come
        conn.execute(prov_target_state.update().values(
            quarantined_until=datetime.now(UTC)))
    drain(iam, horizon=0)  # the probe succeeds (the proxy passes through now), the rest flows
    assert sorted(u["userName"] for u in peer_users(scim_peer)) == ["mia", "noah", "olga"]
    [status] = iam.provisioning.status()
    assert status.state == "healthy" and status.succeeded == 3 and status.dead == 0


def test_blocking_target_fails_the_write_and_takes_it_back(
        iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    connect(iam, fault_proxy.url(scim_peer), blocking=True, fail_on_blocking_failure=True)
    fault_proxy.script(Fault.answer(400, {"detail": "userName taken by policy"}))
    with pytest.raises(OperationRefused, match="userName taken by policy"):
        iam.identity.add_user(admin, "pia", None, {})
    assert iam.identity.count_users("PRIMARY") == 0
    assert [j.state for j in iam.provisioning.jobs()] == [JobState.CANCELLED]  # its log kept
    iam.identity.add_user(admin, "pia", None, {})  # the peer accepts it now
    assert len(peer_users(scim_peer, "pia")) == 1  # already there: blocking ran inline


def test_editing_the_connector_keeps_the_mappings(iam: Iam, admin: Initiator,
                                                  scim_peer: str) -> None:
    connect(iam, scim_peer)
    iam.identity.add_user(admin, "quinn", None, {})
    drain(iam)
    connect(iam, scim_peer, **{"timeout-seconds": 20})  # edit (reference bug #11343)
    iam.identity.update_user(admin, "quinn", {"givenname": "Quinn"})
    drain(iam)
    [remote] = peer_users(scim_peer)  # updated in place, not created twice
    assert remote["name"]["givenName"] == "Quinn"


def test_preview_sends_and_writes_nothing(iam: Iam, admin: Initiator, scim_peer: str) -> None:
    connect(iam, scim_peer, provisioning_roles=("Internal/provisioned",))
    iam.identity.add_role(admin, "Internal/provisioned")
    iam.identity.add_user(admin, "rosa", "Secret-Pw-1", {"givenname": "Rosa"},
                          roles=["Internal/provisioned"])
    before = job_count(iam)
    [report] = iam.provisioning.preview("rosa")
    assert report.target == TARGET and report.operation == "upsert_user"
    posts = [r for r in report.requests if r["method"] == "POST"]
    assert posts and posts[0]["request_body"]["userName"] == "rosa"
    assert job_count(iam) == before and peer_users(scim_peer) == []


def test_sync_pushes_now_and_reports(iam: Iam, admin: Initiator, scim_peer: str) -> None:
    iam.identity.add_user(admin, "sam", None, {"givenname": "Sam"})
    connect(iam, scim_peer)  # configured after the user existed
    [report] = iam.provisioning.sync(admin, "sam")
    assert report.state == "succeeded" and report.remote_id
    assert peer_users(scim_peer, "sam")[0]["id"] == report.remote_id


def test_jit_changes_only_reach_jit_targets(iam: Iam, scim_peer: str) -> None:
    connect(iam, scim_peer, jit=False)
    jit = Initiator.jit_login("resident", "google")
    iam.identity.add_user(jit, "tara", None, {})
    assert job_count(iam) == 0
    connect(iam, scim_peer, jit=True)
    iam.identity.add_user(jit, "uma", None, {})
    drain(iam)
    assert [u["userName"] for u in peer_users(scim_peer)] == ["uma"]


def test_expired_lease_is_claimed_again(iam: Iam, admin: Initiator, scim_peer: str) -> None:
    connect(iam, scim_peer)
    iam.identity.add_user(admin, "vera", None, {})
    from core.provisioning import outbox

    with iam.db.transaction() as conn:
        assert len(outbox.claim(conn, "crashed-worker", 10)) == 1
    assert drain(iam) == 0  # leased by a worker that died: not yet claimable
    with iam.db.engine.begin() as conn:
        conn.execute(update(prov_jobs).values(lease_until=datetime.now(UTC)))
    assert drain(iam) == 1
    assert len(peer_users(scim_peer, "vera")) == 1
