"""A worker prepares its batch of jobs with a few queries, and exactly as job by job.

``prepare_many`` reads the mappings of a target, and the users of a domain with their
roles, at once; these tests hold it to what ``prepare`` answers for each job alone, and to
a number of statements that does not grow with the batch.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event

from core.iam import Iam
from core.identity.events import EventType, IdentityEvent, Initiator
from core.identity.service import ImportRow
from core.provisioning import executor, mapping, outbox
from core.provisioning.outbox import Job, JobSpec, JobState, Operation
from tests.peers import PASS, Fault, FaultProxy
from tests.provisioning_helpers import connect, peer_users
from tests.sql_helpers import statements

TARGET = "peer:scim2"
#: Nobody listens here: preparing a job never talks to the target.
NOWHERE = "http://127.0.0.1:9/v2"


def upsert(iam: Iam, name: str, **payload: Any) -> JobSpec:
    user = iam.identity.get_user(name)
    return JobSpec(TARGET, Operation.UPSERT_USER, "user", user.domain, user.id,
                   user.qualified_name, payload)


def enqueued(iam: Iam, specs: Sequence[JobSpec]) -> list[Job]:
    """The jobs, as written (preparing a job does not look at its lease)."""
    with iam.db.transaction() as conn:
        return [outbox.get(conn, outbox.enqueue(conn, spec, "resident")) for spec in specs]


def test_a_batch_is_prepared_as_each_job_alone(sqlite_iam: Iam, admin: Initiator) -> None:
    iam = sqlite_iam
    iam.identity.add_role(admin, "Internal/provisioned")
    for name in ("ann", "ben", "cat", "dan", "eve", "fay"):
        iam.identity.add_user(admin, name, None, {"givenname": name.title(),
                                                  "emailaddress": f"{name}@example.com"})
    iam.identity.assign(admin, "Internal/provisioned", ["ann", "ben", "dan", "eve", "fay"])
    iam.identity.add_role(admin, "engineering", ["ann", "ben"])
    iam.identity.add_role(admin, "ops", ["dan"])
    ann, ben, dan = (iam.identity.get_user(n) for n in ("ann", "ben", "dan"))
    engineering = iam.stores.store("PRIMARY").get_group_by_name("engineering")
    ops = iam.stores.store("PRIMARY").get_group_by_name("ops")
    assert engineering is not None and ops is not None
    connect(iam, NOWHERE, provisioning_roles=("Internal/provisioned",))  # no jobs so far
    with iam.db.transaction() as conn:
        mapping.put_many(conn, [
            mapping.Put(TARGET, "user", "PRIMARY", ann.id, "r-ann", "ann", False, False),
            mapping.Put(TARGET, "user", "PRIMARY", ben.id, "r-ben", "ben", False, False)])
    gone = iam.identity.get_user("fay")
    iam.stores.store("PRIMARY").delete_user(gone.id)  # vanished behind our back
    specs = [
        upsert(iam, "ann"),  # mapped: an update
        upsert(iam, "ben", password=iam.secrets.encrypt("Secret-pa55")),
        upsert(iam, "cat"),  # holds no provisioning role
        JobSpec(TARGET, Operation.UPSERT_USER, "user", "PRIMARY", gone.id, "PRIMARY/fay"),
        upsert(iam, "eve"),  # not provisioned yet: a create
        JobSpec(TARGET, Operation.DEPROVISION_USER, "user", "PRIMARY", ann.id, "PRIMARY/ann",
                {"deleted": False, "username": "ann"}),
        JobSpec(TARGET, Operation.DEPROVISION_USER, "user", "PRIMARY", dan.id, "PRIMARY/dan",
                {"deleted": True, "username": "dan"}),  # never provisioned
        JobSpec(TARGET, Operation.UPSERT_GROUP, "group", "PRIMARY", engineering.id,
                "PRIMARY/engineering"),  # both members mapped
        JobSpec(TARGET, Operation.UPSERT_GROUP, "group", "PRIMARY", ops.id,
                "PRIMARY/ops"),  # dan's own job (above) is open: waits
        JobSpec("gone:scim2", Operation.UPSERT_USER, "user", "PRIMARY", ann.id, "PRIMARY/ann"),
        JobSpec(TARGET, Operation.UPSERT_USER, "user", "NOSUCH", ann.id, "NOSUCH/ann"),
    ]
    jobs = enqueued(iam, specs)

    with iam.db.transaction() as conn:
        together = executor.prepare_many(conn, iam, jobs)
        alone = [executor.prepare(conn, iam, job) for job in jobs]
    assert together == alone
    by_entity = {(p.job.operation, p.job.name, p.job.target): p for p in together}
    first = by_entity[(Operation.UPSERT_USER, "PRIMARY/ann", TARGET)]
    assert first.remote_id == "r-ann" and first.user is not None
    assert first.user.groups == ["engineering"] and first.user.password is None
    second = by_entity[(Operation.UPSERT_USER, "PRIMARY/ben", TARGET)]
    assert second.remote_id == "r-ben" and second.user is not None
    assert second.user.password == "Secret-pa55"
    assert by_entity[(Operation.UPSERT_USER, "PRIMARY/cat", TARGET)].skip == \
        "the user holds none of the provisioning roles"
    assert by_entity[(Operation.UPSERT_USER, "PRIMARY/fay", TARGET)].skip == \
        "the user no longer exists"
    new = by_entity[(Operation.UPSERT_USER, "PRIMARY/eve", TARGET)]
    assert new.remote_id is None and new.user is not None and new.user.username == "eve"
    assert by_entity[(Operation.DEPROVISION_USER, "PRIMARY/ann", TARGET)].action == "delete"
    assert by_entity[(Operation.DEPROVISION_USER, "PRIMARY/dan", TARGET)].skip == \
        "the user was never provisioned to this target"
    group = by_entity[(Operation.UPSERT_GROUP, "PRIMARY/engineering", TARGET)]
    assert group.group is not None and sorted(group.add) == ["r-ann", "r-ben"]
    assert by_entity[(Operation.UPSERT_GROUP, "PRIMARY/ops", TARGET)].wait == \
        "1 member(s) are not provisioned to this target yet"
    unconfigured = by_entity[(Operation.UPSERT_USER, "PRIMARY/ann", "gone:scim2")]
    assert unconfigured.fail is not None and unconfigured.target is None
    assert (by_entity[(Operation.UPSERT_USER, "NOSUCH/ann", TARGET)].wait or "").startswith(
        "userstore unavailable")


def _prepare_statements(iam: Iam, jobs: Sequence[Job]) -> int:
    with iam.db.transaction() as conn, statements(iam) as sent:
        preps = executor.prepare_many(conn, iam, jobs)
    assert all(p.user is not None for p in preps)
    return len(sent)


def test_the_queries_of_a_batch_do_not_grow_with_it(sqlite_iam: Iam, admin: Initiator
                                                    ) -> None:
    iam = sqlite_iam
    for i in range(40):
        iam.identity.add_user(admin, f"user{i:02d}", None, {"givenname": f"G{i}"})
    iam.identity.add_role(admin, "staff", [f"user{i:02d}" for i in range(40)])
    iam.identity.add_role(admin, "Internal/auditors", [f"user{i:02d}" for i in range(40)])
    connect(iam, NOWHERE)
    jobs = enqueued(iam, [upsert(iam, f"user{i:02d}") for i in range(40)])

    few, many = _prepare_statements(iam, jobs[:2]), _prepare_statements(iam, jobs)
    assert many == few <= 7  # target (2), mappings, users, attributes, groups, roles


def _planned(iam: Iam, members: Sequence[Any]) -> tuple[list[JobSpec], int]:
    """What the planner makes of users joining the provisioning role, and its queries."""
    ev = IdentityEvent(EventType.GROUP_MEMBERS_CHANGED, Initiator.admin(), "Internal",
                       "role-id", "Internal/provisioned",
                       {"added": [m.qualified_name for m in members], "removed": [],
                        "added_ids": [[m.domain, m.id] for m in members], "removed_ids": []})
    planner = iam.provisioning.planner
    with iam.db.transaction() as conn:
        _app, [planned] = planner.targets(conn, iam.resident_app().name, jit=False)
        with statements(iam) as sent:
            specs = planner.plan(conn, ev, planned.target)
    return specs, len(sent)


def test_joining_a_provisioning_role_reads_the_roles_of_all_members_at_once(
        sqlite_iam: Iam, admin: Initiator) -> None:
    iam = sqlite_iam
    names = [f"user{i:02d}" for i in range(30)]
    for name in names:
        iam.identity.add_user(admin, name)
    iam.identity.add_role(admin, "Internal/provisioned", names[1:])  # user00 joins none
    iam.identity.add_role(admin, "engineering", names[:10])
    connect(iam, NOWHERE, provisioning_roles=("Internal/provisioned",))
    users = [iam.identity.get_user(n) for n in names]

    few, few_queries = _planned(iam, users[:3])
    many, many_queries = _planned(iam, users)
    assert [s.name for s in few] == ["PRIMARY/user01", "PRIMARY/user02"]  # in scope only
    assert [s.name for s in many] == [f"PRIMARY/{n}" for n in names[1:]]
    assert {s.operation for s in many} == {Operation.UPSERT_USER}
    assert many_queries == few_queries <= 3


def test_a_worker_keeps_one_connection_for_its_many_transactions(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str) -> None:
    iam = sqlite_iam
    connect(iam, scim_peer, concurrency=2)
    for i in range(40):
        iam.identity.add_user(admin, f"user{i:02d}", None, {"givenname": f"G{i}"})
    checked_out: list[str] = []

    def on_checkout(*_: Any) -> None:
        checked_out.append(threading.current_thread().name)

    event.listen(iam.db.engine, "checkout", on_checkout)
    try:
        pool = iam.provisioning.worker_pool(capacity=8)
        try:
            attempts = asyncio.run(pool.drain())
        finally:
            pool.close()
    finally:
        event.remove(iam.db.engine, "checkout", on_checkout)
    assert attempts == 40 and len(peer_users(scim_peer)) == 40
    # One checkout for every transaction of the pool (a connection per transaction would
    # check out for each claim, prepare and settle).
    assert len(checked_out) == 1


def test_a_running_pool_sends_to_a_target_as_configured_now(
        sqlite_iam: Iam, admin: Initiator, scim_server_process: Any) -> None:
    """The pool keeps the targets it built between batches, until an identity provider is
    saved (by any process: the save bumps a version in the database)."""
    iam = sqlite_iam
    first, second = scim_server_process.tenant(), scim_server_process.tenant()
    connect(iam, first)
    pool = iam.provisioning.worker_pool()
    try:
        iam.identity.add_user(admin, "before", None, {})
        assert asyncio.run(pool.drain()) == 1
        connect(iam, second)  # the same identity provider, now pointing elsewhere
        iam.identity.add_user(admin, "after", None, {})
        assert asyncio.run(pool.drain()) == 1
    finally:
        pool.close()
    assert [u["userName"] for u in peer_users(first)] == ["before"]
    assert [u["userName"] for u in peer_users(second)] == ["after"]


def test_an_outcome_is_recorded_within_a_poll_while_other_jobs_run(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    """Outcomes wait for the next lease to be recorded with it, but not past a poll: with
    one job answered and three held by a slow peer (so no lease is due: half the
    capacity is not free), the first is recorded long before the others end."""
    iam = sqlite_iam
    connect(iam, fault_proxy.url(scim_peer), concurrency=4)
    fault_proxy.script(PASS, *[Fault.delay(2)] * 3)
    pool = iam.provisioning.worker_pool(capacity=4, poll_seconds=0.2)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(pool.run(stop),))
    thread.start()
    try:
        iam.identity.import_users(admin, [ImportRow(i + 2, f"user{i}") for i in range(4)])
        states: dict[str, JobState] = {}
        for _ in range(60):  # 1.2 s at most: the slow answer comes after 2 s
            with iam.db.transaction() as conn:
                states = {j.name: j.state for j in outbox.list_jobs(conn)}
            if JobState.SUCCEEDED in states.values():
                break
            threading.Event().wait(0.02)
        assert sorted(states.values()) == [JobState.INFLIGHT] * 3 + [JobState.SUCCEEDED], \
            states
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        loop.close()
        pool.close()


def test_a_running_pool_works_on_its_own_thread_and_keeps_to_the_targets_concurrency(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    """``run`` hands the work to a thread of its own (listeners are called there); a
    target with concurrency 2 never has more than two requests in flight, however many
    jobs the pool leased."""
    iam = sqlite_iam
    connect(iam, fault_proxy.url(scim_peer), concurrency=2)
    fault_proxy.outage(Fault.delay(1.0))
    pool = iam.provisioning.worker_pool(capacity=16, poll_seconds=0.2)
    threads: set[str] = set()
    pool.listeners.append(lambda _job, _state: threads.add(threading.current_thread().name))
    iam.identity.import_users(admin, [ImportRow(i + 2, f"user{i}") for i in range(6)])

    async def watch(stop: asyncio.Event) -> int:
        """Requests seen at the peer half a delay after the first."""
        while not fault_proxy.seen:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        seen = len(fault_proxy.seen)
        fault_proxy.outage(None)
        while len(peer_users(scim_peer)) < 6:
            await asyncio.to_thread(threading.Event().wait, 0.05)
        stop.set()
        return seen

    async def main() -> int:
        stop = asyncio.Event()
        watching = asyncio.create_task(watch(stop))
        await pool.run(stop)
        return await watching

    try:
        seen = asyncio.run(main())
    finally:
        pool.close()
    assert seen == 2, f"{seen} requests in flight at once at a target of concurrency 2"
    assert threads == {"mware-iam-workers"}, threads


def test_a_leased_job_reads_back_as_its_lease_answered(iam: Iam) -> None:
    """The lease builds its jobs from the columns it did not write, ``get`` and
    ``list_jobs`` from the stored row: the same Job either way (one builder)."""
    iam.identity.import_users(Initiator.admin(), [ImportRow(2, "lena")])
    spec = upsert(iam, "lena", password="sealed")
    with iam.db.transaction() as conn:
        outbox.enqueue(conn, spec, "resident", blocking=True)
        leased = outbox.claim(conn, "worker-1", 10, targets=[TARGET])
    assert len(leased) == 1
    job = leased[0]
    assert (job.state, job.attempts, job.blocking, job.payload["password"]) == (
        JobState.INFLIGHT, 1, True, "sealed")
    assert job.lease_owner is not None and job.lease_owner.startswith("worker-1/")
    with iam.db.transaction() as conn:
        assert outbox.get(conn, job.pk) == job
        assert outbox.list_jobs(conn, target=TARGET, entity=spec.entity_id) == [job]


class _Cycle:
    """An object that refers to itself: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_a_starting_pool_collects_the_garbage_and_freezes_what_the_process_holds(
        sqlite_iam: Iam) -> None:
    """Full collections while jobs run walk only what came after the pool started; the
    cycles that were garbage by then are freed first, not kept for ever."""
    pool = sqlite_iam.provisioning.worker_pool()
    gc.disable()  # only the pool collects
    gc.unfreeze()
    try:
        garbage = _Cycle()
        collected = weakref.ref(garbage)
        del garbage
        kept = _Cycle()
        stop = asyncio.Event()
        stop.set()  # start, then stop at once
        asyncio.run(pool.run(stop))
        assert collected() is None
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # frozen: not walked
        assert kept.me is kept
    finally:
        gc.unfreeze()
        gc.enable()
        pool.close()
