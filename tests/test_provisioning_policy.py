"""What the engine tells about a job is true: the retry policy rides out long outages, a
job that sent nothing is "skipped" (never "succeeded"), preview and sync work for a user
whose job is retrying, and a quarantine is probed even with an empty queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import update

from core.iam import Iam
from core.identity.events import Initiator
from core.provisioning import executor
from core.provisioning.outbox import JobState
from core.provisioning.targets import build_target
from core.schema import prov_jobs, prov_target_state
from tests.peers import Fault, FaultProxy
from tests.provisioning_helpers import connect, drain, peer_users

TARGET = "peer:scim2"


def make_due(iam: Iam) -> None:
    """Every waiting job due now, and any quarantine over (its probe time has come)."""
    now = datetime.now(UTC)
    with iam.db.engine.begin() as conn:
        conn.execute(update(prov_jobs).values(next_attempt_at=now))
        conn.execute(update(prov_target_state).values(quarantined_until=now))


# ---------------------------------------------------------------- the retry policy (5)
def test_default_policy_rides_out_a_long_outage_and_gives_up_after_a_day(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    connect(sqlite_iam, fault_proxy.url(scim_peer))  # max-attempts and give-up: defaults
    fault_proxy.outage(Fault.answer(503))
    sqlite_iam.identity.add_user(admin, "ursula", None, {})
    for _ in range(12):  # the old default (8 attempts) made this job dead after ~90 s
        make_due(sqlite_iam)
        drain(sqlite_iam, horizon=0)
    [job] = sqlite_iam.provisioning.jobs()
    assert job.state is JobState.RETRY and job.attempts == 12
    target = build_target(sqlite_iam.get_idp("peer"), "scim2")
    later = executor.backoff(job.__class__(**{**job.__dict__, "attempts": 40}), target, None)
    wait = (later - datetime.now(UTC)).total_seconds()
    assert 3 * 3600 - 5 <= wait <= 6 * 3600  # the backoff is capped at six hours
    with sqlite_iam.db.engine.begin() as conn:  # a day has passed since the first attempt
        conn.execute(update(prov_jobs).values(created=datetime.now(UTC) - timedelta(hours=25)))
    make_due(sqlite_iam)
    drain(sqlite_iam, horizon=0)
    [job] = sqlite_iam.provisioning.jobs()
    assert job.state is JobState.DEAD
    assert job.last_error is not None and "gave up after 13 attempts over 25.0 h" in \
        job.last_error


def test_recovery_runs_the_retries_without_waiting_out_their_backoff(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    connect(sqlite_iam, fault_proxy.url(scim_peer))
    fault_proxy.outage(Fault.answer(503))
    for name in ("vera", "walt", "xena"):
        sqlite_iam.identity.add_user(admin, name, None, {})
    drain(sqlite_iam, horizon=0)  # three 503s: quarantined (threshold 3)
    with sqlite_iam.db.engine.begin() as conn:  # long into the outage: hours of backoff
        conn.execute(update(prov_jobs).values(
            next_attempt_at=datetime.now(UTC) + timedelta(hours=5)))
        conn.execute(update(prov_target_state).values(quarantined_until=datetime.now(UTC)))
    fault_proxy.outage(None)
    # the probe (a connection test: no job is due) closes the breaker, then the retries run
    drain(sqlite_iam, horizon=0)
    drain(sqlite_iam, horizon=0)
    assert sorted(u["userName"] for u in peer_users(scim_peer)) == ["vera", "walt", "xena"]
    assert {j.state for j in sqlite_iam.provisioning.jobs()} == {JobState.SUCCEEDED}


# ---------------------------------------------------------------- quarantine (8)
def test_an_empty_queue_still_probes_a_quarantined_target(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    connect(sqlite_iam, fault_proxy.url(scim_peer), **{"probe-seconds": 600})
    fault_proxy.outage(Fault.answer(503))
    sqlite_iam.identity.add_user(admin, "yuri", None, {})
    sqlite_iam.identity.add_user(admin, "zoe", None, {})
    sqlite_iam.identity.add_user(admin, "abe", None, {})
    drain(sqlite_iam, horizon=0)
    for job in sqlite_iam.provisioning.jobs():
        sqlite_iam.provisioning.cancel(admin, job.pk)  # nothing queued any more
    [status] = sqlite_iam.provisioning.status()
    assert status.state == "quarantined" and status.queued == status.retrying == 0
    fault_proxy.outage(None)
    with sqlite_iam.db.engine.begin() as conn:  # the probe time has come
        conn.execute(update(prov_target_state).values(quarantined_until=datetime.now(UTC)))
    drain(sqlite_iam, horizon=0)
    [status] = sqlite_iam.provisioning.status()
    assert (status.state, status.quarantined_until) == ("healthy", None)


def test_a_failed_probe_keeps_the_quarantine_and_moves_its_time(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    connect(sqlite_iam, fault_proxy.url(scim_peer), **{"probe-seconds": 600})
    fault_proxy.outage(Fault.answer(503))
    for name in ("bea", "cyd", "dov"):
        sqlite_iam.identity.add_user(admin, name, None, {})
    drain(sqlite_iam, horizon=0)
    for job in sqlite_iam.provisioning.jobs():
        sqlite_iam.provisioning.cancel(admin, job.pk)
    with sqlite_iam.db.engine.begin() as conn:
        conn.execute(update(prov_target_state).values(quarantined_until=datetime.now(UTC)))
    drain(sqlite_iam, horizon=0)
    [status] = sqlite_iam.provisioning.status()
    assert status.state == "quarantined" and status.quarantined_until is not None
    assert status.quarantined_until > datetime.now(UTC) + timedelta(minutes=9)
    assert (status.last_error or "").startswith("probe:") and status.failed == 3


# ---------------------------------------------------------------- skipped (9)
def test_membership_of_a_group_older_than_the_target_is_skipped_with_the_reason(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str) -> None:
    sqlite_iam.identity.add_user(admin, "erin", None, {})
    sqlite_iam.identity.add_role(admin, "ops", ["erin"])  # before the target existed
    connect(sqlite_iam, scim_peer)
    sqlite_iam.identity.add_user(admin, "finn", None, {})
    sqlite_iam.identity.assign(admin, "ops", ["finn"])
    drain(sqlite_iam)
    jobs = {j.operation.value: j for j in sqlite_iam.provisioning.jobs()}
    members = jobs["group_members"]
    assert members.state is JobState.SKIPPED
    assert members.last_error == "the group is not provisioned to this target"
    assert jobs["upsert_user"].state is JobState.SUCCEEDED
    assert [j.pk for j in sqlite_iam.provisioning.jobs(states=["skipped"])] == [members.pk]
    _job, attempts = sqlite_iam.provisioning.job(members.pk)
    assert [a["outcome"] for a in attempts] == ["skipped"]


# ---------------------------------------------------------------- preview, sync, retry (7)
def retrying_user(iam: Iam, admin: Initiator, fault_proxy: FaultProxy, scim_peer: str,
                  name: str) -> None:
    connect(iam, fault_proxy.url(scim_peer), **{"quarantine-threshold": 50})
    fault_proxy.outage(Fault.answer(503))
    iam.identity.add_user(admin, name, None, {"givenname": "Gil"})
    drain(iam, horizon=0)
    [job] = iam.provisioning.jobs()
    assert job.state is JobState.RETRY


def test_preview_of_a_user_whose_job_is_retrying(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    retrying_user(sqlite_iam, admin, fault_proxy, scim_peer, "gil")
    [report] = sqlite_iam.provisioning.preview("gil")
    assert (report.target, report.operation) == (TARGET, "upsert_user")
    assert [r["method"] for r in report.requests][-1] == "POST"
    assert [j.state for j in sqlite_iam.provisioning.jobs()] == [JobState.RETRY]


def test_sync_of_a_user_whose_job_is_retrying_reaches_the_target(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    retrying_user(sqlite_iam, admin, fault_proxy, scim_peer, "hal")
    fault_proxy.outage(None)
    [report] = sqlite_iam.provisioning.sync(admin, "hal")
    assert (report.target, report.state) == (TARGET, "succeeded")
    [remote] = peer_users(scim_peer, "hal")
    assert report.remote_id == remote["id"]
    _sync_job, earlier = sqlite_iam.provisioning.jobs()
    assert (earlier.state, earlier.last_error) == (JobState.CANCELLED, "superseded by a sync")


def test_a_retried_dead_job_keeps_counting_its_attempts(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    connect(sqlite_iam, fault_proxy.url(scim_peer), **{"max-attempts": 3,
                                                       "quarantine-threshold": 50})
    fault_proxy.outage(Fault.answer(503))
    sqlite_iam.identity.add_user(admin, "ivy", None, {})
    for _ in range(3):
        make_due(sqlite_iam)
        drain(sqlite_iam, horizon=0)
    [job] = sqlite_iam.provisioning.jobs()
    assert (job.state, job.attempts) == (JobState.DEAD, 3)
    assert sqlite_iam.provisioning.retry(admin, pk=job.pk) == 1
    drain(sqlite_iam, horizon=0)  # a new round: one more failure does not kill the job
    job, attempts = sqlite_iam.provisioning.job(job.pk)
    assert (job.state, job.attempts, len(attempts)) == (JobState.RETRY, 4, 4)


def test_a_retried_dead_job_of_a_deleted_user_is_skipped_not_succeeded(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    connect(sqlite_iam, fault_proxy.url(scim_peer), **{"max-attempts": 2,
                                                       "quarantine-threshold": 50})
    fault_proxy.outage(Fault.answer(503))
    sqlite_iam.identity.add_user(admin, "jon", None, {})
    for _ in range(2):
        make_due(sqlite_iam)
        drain(sqlite_iam, horizon=0)
    [dead] = sqlite_iam.provisioning.jobs(states=["dead"])
    fault_proxy.outage(None)
    sqlite_iam.identity.delete_user(admin, "jon")
    drain(sqlite_iam, horizon=0)
    sqlite_iam.provisioning.retry(admin, pk=dead.pk)
    drain(sqlite_iam, horizon=0)
    job, attempts = sqlite_iam.provisioning.job(dead.pk)
    assert (job.state, job.last_error) == (JobState.SKIPPED, "the user no longer exists")
    assert job.attempts == len(attempts) == 3


# ---------------------------------------------------------------- dead but delivered (4)
def test_a_create_applied_but_unanswered_then_dead_is_still_deleted(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    connect(sqlite_iam, fault_proxy.url(scim_peer), **{"max-attempts": 1})
    fault_proxy.script(Fault.lose_response())  # the peer creates the user; no answer comes
    sqlite_iam.identity.add_user(admin, "kai", None, {})
    drain(sqlite_iam, horizon=0)
    [job] = sqlite_iam.provisioning.jobs()
    assert job.state is JobState.DEAD and sqlite_iam.provisioning.mappings_of("kai") == []
    assert len(peer_users(scim_peer, "kai")) == 1  # delivered all the same
    sqlite_iam.identity.delete_user(admin, "kai")
    drain(sqlite_iam, horizon=0)
    assert peer_users(scim_peer, "kai") == []
    deprovision = sqlite_iam.provisioning.jobs()[0]
    assert (deprovision.operation.value, deprovision.state) == ("deprovision_user",
                                                                JobState.SUCCEEDED)


def test_a_disable_reaches_a_target_that_never_acknowledged_the_create(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    connect(sqlite_iam, fault_proxy.url(scim_peer), provisioning_roles=("Internal/staff",),
            **{"max-attempts": 1, "deprovision-action": "disable"})
    sqlite_iam.identity.add_role(admin, "Internal/staff")
    sqlite_iam.identity.add_user(admin, "lea", None, {})
    sqlite_iam.identity.assign(admin, "Internal/staff", ["lea"])
    fault_proxy.script(Fault.lose_response())
    drain(sqlite_iam, horizon=0)
    assert [u["active"] for u in peer_users(scim_peer, "lea")] == [True]
    sqlite_iam.identity.unassign(admin, "Internal/staff", ["lea"])
    drain(sqlite_iam, horizon=0)
    [remote] = peer_users(scim_peer, "lea")
    assert remote["active"] is False
    [m] = sqlite_iam.provisioning.mappings_of("lea")  # known from now on
    assert m.remote_id == remote["id"]


def test_the_retry_of_an_unanswered_create_looks_up_then_adopts_in_two_requests(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    connect(sqlite_iam, fault_proxy.url(scim_peer))
    fault_proxy.script(Fault.lose_response())
    sqlite_iam.identity.add_user(admin, "max", "Secret-Pass1", {"givenname": "Max"})
    drain(sqlite_iam, horizon=0)
    [job] = sqlite_iam.provisioning.jobs()
    assert job.state is JobState.RETRY
    fault_proxy.seen.clear()
    make_due(sqlite_iam)
    drain(sqlite_iam, horizon=0)
    assert [s.method for s in fault_proxy.seen] == ["GET", "PUT"]
    [job] = sqlite_iam.provisioning.jobs()
    assert job.state is JobState.SUCCEEDED and dict(job.payload) == {}
    [remote] = peer_users(scim_peer, "max")
    [m] = sqlite_iam.provisioning.mappings_of("max")
    assert m.remote_id == remote["id"]


def test_an_adoption_whose_update_fails_keeps_the_mapping_for_the_next_attempt(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    connect(sqlite_iam, fault_proxy.url(scim_peer))
    httpx.post(f"{scim_peer}/Users", json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "nia"},
        timeout=5).raise_for_status()  # there before us
    fault_proxy.script(Fault.answer(409, {"detail": "exists"}), Fault("pass"),
                       Fault.answer(503, None))
    sqlite_iam.identity.add_user(admin, "nia", None, {"givenname": "Nia"})
    # POST 409, GET passes, PUT 503: the adoption is half done
    drain(sqlite_iam, horizon=0)
    assert len(sqlite_iam.provisioning.mappings_of("nia")) == 1
    fault_proxy.seen.clear()
    make_due(sqlite_iam)
    drain(sqlite_iam, horizon=0)
    assert [s.method for s in fault_proxy.seen] == ["PUT"]
    [remote] = peer_users(scim_peer, "nia")
    assert remote["name"]["givenName"] == "Nia"
