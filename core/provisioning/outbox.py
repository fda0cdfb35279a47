"""The durable outbox: provisioning jobs in the system database.

States: ``pending`` -> ``inflight`` (leased) -> ``succeeded`` | ``skipped`` (nothing had to
be sent; the reason is kept) | ``retry`` (scheduled) | ``dead``; or ``cancelled``. A retry by
hand starts a new round of attempts; the attempt count keeps counting. Jobs of one (target,
entity) run one at a time in ``pk`` order: a job is claimable only when no earlier job of
its key is still open. A lease that expires (its worker crashed) makes the job claimable
again. Pending updates of one entity coalesce into one job, because a job carries *what* to
bring up to date, not the data: the executor reads the current state when it runs.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import aliased

from core import metrics
from core.db import InStatement, in_chunks, insert_row, insert_rows
from core.errors import InvalidInput, NotFound
from core.schema import prov_attempts, prov_jobs

LEASE = timedelta(seconds=120)


class JobState(StrEnum):
    PENDING = "pending"
    INFLIGHT = "inflight"
    SUCCEEDED = "succeeded"
    #: Ended without sending anything (the reason is the job's ``last_error``).
    SKIPPED = "skipped"
    RETRY = "retry"
    DEAD = "dead"
    CANCELLED = "cancelled"
    #: A deprovisioning past the target's deletion threshold, waiting for approval
    #: (``core.provisioning.guard``); it holds back later jobs of its entity only.
    HELD = "held"


OPEN_STATES = (JobState.PENDING, JobState.RETRY, JobState.INFLIGHT, JobState.HELD)
#: Ended as it should: the change was sent, or there was nothing to send.
DONE = (JobState.SUCCEEDED, JobState.SKIPPED)


class Operation(StrEnum):
    UPSERT_USER = "upsert_user"
    DEPROVISION_USER = "deprovision_user"
    UPSERT_GROUP = "upsert_group"
    GROUP_MEMBERS = "group_members"
    DELETE_GROUP = "delete_group"


#: Operations whose pending jobs of one entity merge into one.
COALESCING = (Operation.UPSERT_USER, Operation.UPSERT_GROUP)


@dataclass(frozen=True)
class JobSpec:
    """What the planner asks for: an operation on one entity at one target."""

    target: str
    operation: Operation
    entity_type: str  # "user" | "group"
    domain: str
    entity_id: str
    name: str
    payload: Mapping[str, Any] = field(default_factory=dict)

    @property
    def entity_key(self) -> str:
        return f"{self.entity_type}:{self.domain}:{self.entity_id}"


@dataclass(frozen=True)
class Job:
    pk: int
    target: str
    operation: Operation
    entity_type: str
    domain: str
    entity_id: str
    name: str
    payload: Mapping[str, Any]
    state: JobState
    attempts: int
    next_attempt_at: datetime
    application: str
    jit: bool
    blocking: bool
    last_error: str | None
    last_status: int | None
    created: datetime
    updated: datetime
    lease_owner: str | None = None
    #: Attempts made before the current round (a retry by hand starts a new one).
    round_base: int = 0
    round_started: datetime | None = None

    @property
    def entity_key(self) -> str:
        return f"{self.entity_type}:{self.domain}:{self.entity_id}"

    @property
    def round_attempts(self) -> int:
        """Attempts of the current round (what the retry policy counts)."""
        return self.attempts - self.round_base

    @property
    def round_since(self) -> datetime:
        """When the current round began (what the retry policy's age counts from)."""
        return self.round_started or self.created


def _now() -> datetime:
    return datetime.now(UTC)


class WrittenFlag:
    """Set each time ``enqueue`` writes a job with it: a worker pool that takes it
    after a commit knows there is work to look for, and need not look after the other
    commits. A rolled-back job leaves it set too, which costs one look at the queue."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def take(self) -> bool:
        """Whether a job was written since the last take."""
        written = self._event.is_set()
        self._event.clear()
        return written


#: The PostgreSQL channel a transaction that makes a job runnable notifies (at its commit:
#: a rolled-back job wakes nobody); worker pools LISTEN on it (``listener.py``).
CHANNEL = "mware_iam_jobs"
_NOTIFY = text(f"NOTIFY {CHANNEL}")
_NOTIFIED = "mware_iam_notified"


def announce(conn: Connection) -> None:
    """On PostgreSQL, NOTIFY the worker pools when this transaction commits (once per
    transaction, however many jobs it writes); elsewhere they poll."""
    if conn.dialect.name != "postgresql":
        return
    transaction = conn.get_transaction()
    if conn.info.get(_NOTIFIED) is not transaction:
        conn.execute(_NOTIFY)
        conn.info[_NOTIFIED] = transaction


def enqueue(
    conn: Connection, spec: JobSpec, application: str, jit: bool = False,
    blocking: bool = False, fresh: bool = False, written: WrittenFlag | None = None,
) -> int:
    """Write a job (or fold it into an equal pending one); returns the job's pk.

    ``fresh``: the entity was created by this very write, so it has no earlier job to fold
    into (a bulk import then spends no query looking for one). ``written`` is set.
    """
    if written is not None:
        written.set()
    announce(conn)
    now = _now()
    if spec.operation in COALESCING and not fresh:
        row = conn.execute(select(prov_jobs.c.pk, prov_jobs.c.payload).where(
            prov_jobs.c.target == spec.target, prov_jobs.c.entity_key == spec.entity_key,
            prov_jobs.c.operation == spec.operation.value,
            prov_jobs.c.state == JobState.PENDING.value,
        ).order_by(prov_jobs.c.pk.desc()).limit(1)).first()
        later = row is not None and conn.execute(select(prov_jobs.c.pk).where(
            prov_jobs.c.target == spec.target, prov_jobs.c.entity_key == spec.entity_key,
            prov_jobs.c.pk > row.pk).limit(1)).first()
        if row is not None and not later:
            payload = {**row.payload, **spec.payload}
            conn.execute(update(prov_jobs).where(prov_jobs.c.pk == row.pk).values(
                payload=payload, entity_name=spec.name, updated=now,
                blocking=prov_jobs.c.blocking | blocking))
            return int(row.pk)
    result = conn.execute(_INSERT, {
        "target": spec.target, "entity_type": spec.entity_type, "entity_domain": spec.domain,
        "entity_id": spec.entity_id, "entity_name": spec.name, "entity_key": spec.entity_key,
        "operation": spec.operation.value, "payload": dict(spec.payload),
        "state": JobState.PENDING.value, "attempts": 0, "next_attempt_at": now,
        "application": application, "jit": jit, "blocking": blocking, "created": now,
        "updated": now})
    return int(result.inserted_primary_key[0])  # type: ignore[index]


#: Built once: the planner writes a job for every user of a bulk import (building a
#: statement costs more than running it).
_INSERT = insert(prov_jobs)


#: What makes a job runnable, in the order claims take them: leases of workers that died,
#: then due retries, then new work.
_READY_KINDS = 3


def _ready(kind: int) -> tuple[Any, Any]:
    """Runnable jobs of one kind (``:now`` the time of the claim), and their order. Each
    walks ``ix_prov_jobs_state_next`` in order and stops at the limit, so a claim costs
    the same with ten or a million jobs queued."""
    c, now = prov_jobs.c, bindparam("now", type_=prov_jobs.c.next_attempt_at.type)
    return [
        (and_(c.state == JobState.INFLIGHT.value, c.lease_until < now), c.lease_until),
        (and_(c.state == JobState.RETRY.value, c.next_attempt_at <= now), c.next_attempt_at),
        (and_(c.state == JobState.PENDING.value, c.next_attempt_at <= now),
         c.next_attempt_at),
    ][kind]


def _first_of_key() -> Any:
    """No earlier job of the same (target, entity) is still open."""
    earlier = aliased(prov_jobs)
    return ~exists().where(
        earlier.c.target == prov_jobs.c.target, earlier.c.entity_key == prov_jobs.c.entity_key,
        earlier.c.pk < prov_jobs.c.pk,
        earlier.c.state.in_([s.value for s in OPEN_STATES]))


@functools.cache
def _candidates(kind: int, targets: bool, exclude: bool, pks: bool, lock: bool) -> Any:
    """The statement choosing up to ``:n`` jobs of one kind, built once per variant: a
    worker claims many times a second, and building this statement cost more than
    running it."""
    c = prov_jobs.c
    ready, order = _ready(kind)
    scope = [ready, _first_of_key()]
    if targets:
        scope.append(c.target.in_(bindparam("targets", expanding=True)))
    if exclude:
        scope.append(c.target.not_in(bindparam("exclude", expanding=True)))
    if pks:
        scope.append(c.pk.in_(bindparam("pks", expanding=True)))
    # in the index's own order only: a tie-break on pk made PostgreSQL sort every runnable
    # job (and test each against the others) before taking the first few
    q = select(c.pk).where(*scope).order_by(order).limit(bindparam("n"))
    return q.with_for_update(skip_locked=True, of=prov_jobs) if lock else q


_c = prov_jobs.c
#: Lease the chosen jobs that are still runnable (a lost race leases nothing).
_LEASE = update(prov_jobs).where(
    _c.pk.in_(bindparam("chosen", expanding=True)),
    or_(_c.state.in_([JobState.PENDING.value, JobState.RETRY.value]),
        and_(_c.state == JobState.INFLIGHT.value,
             _c.lease_until < bindparam("expired_before", type_=_c.lease_until.type))),
).values(state=JobState.INFLIGHT.value, lease_owner=bindparam("token"),
         lease_until=bindparam("until"), attempts=_c.attempts + 1,
         updated=bindparam("leased_at"))
#: What a lease reads of each leased job: the columns it did not write itself (the lease
#: knows its state, owner and time; each column read costs its conversion, a time's the most).
_LEASE_READS = (_c.pk, _c.target, _c.operation, _c.entity_type, _c.entity_domain,
                _c.entity_id, _c.entity_name, _c.payload, _c.attempts, _c.next_attempt_at,
                _c.application, _c.jit, _c.blocking, _c.last_error, _c.last_status,
                _c.created, _c.round_base, _c.round_started)
#: The same, answering the leased rows where the database can (SQLite, PostgreSQL): they
#: need not be read again.
_LEASE_RETURNING = _LEASE.returning(*_LEASE_READS)
_LEASED = select(*_LEASE_READS).where(_c.pk.in_(bindparam("chosen", expanding=True)),
                                      _c.lease_owner == bindparam("token")).order_by(_c.pk)
_OPERATIONS = {o.value: o for o in Operation}
#: Every column a job is built from (``_stored``).
_JOB_READS = (*_LEASE_READS, _c.state, _c.updated, _c.lease_owner)


def _job(row: Sequence[Any], state: JobState, updated: datetime,
         lease_owner: str | None) -> Job:
    """The job of a row that starts with the ``_LEASE_READS`` columns, in a state, last
    written and leased as given (the one way a row becomes a Job)."""
    (pk, target, operation, entity_type, domain, entity_id, name, payload, attempts,
     next_attempt_at, application, jit, blocking, last_error, last_status, created,
     round_base, round_started) = row[:len(_LEASE_READS)]
    return Job(pk, target, _OPERATIONS[operation], entity_type, domain, entity_id, name,
               payload, state, attempts, next_attempt_at, application, jit, blocking,
               last_error, last_status, created, updated, lease_owner, round_base,
               round_started)


def _stored(row: Any) -> Job:
    """The job of a row of ``_JOB_READS``, as stored."""
    return _job(row, JobState(row.state), row.updated, row.lease_owner)


def claim(
    conn: Connection, owner: str, limit: int, targets: Sequence[str] | None = None,
    exclude: Sequence[str] = (), pks: Sequence[int] | None = None,
) -> list[Job]:
    """Lease up to ``limit`` runnable jobs for ``owner`` (of ``targets``, not of
    ``exclude``; or exactly the jobs ``pks`` when they are runnable).

    PostgreSQL and MariaDB lock the chosen rows with ``FOR UPDATE SKIP LOCKED`` so that
    several worker processes share the queue; SQLite has one writer at a time, and the
    conditional UPDATE below makes a lost race harmless on every backend.
    """
    if targets is not None and not targets:
        return []
    now = _now()
    params: dict[str, Any] = {"now": now, "targets": list(targets or ()),
                              "exclude": list(exclude), "pks": list(pks or ())}
    lock = conn.dialect.name != "sqlite"
    chosen: list[int] = []
    for kind in range(_READY_KINDS):
        if len(chosen) >= limit:
            break
        q = _candidates(kind, targets is not None, bool(exclude), pks is not None, lock)
        chosen += conn.execute(q, {**params, "n": limit - len(chosen)}).scalars()
    if not chosen:
        return []
    token = f"{owner}/{uuid.uuid4().hex[:8]}"
    lease = {"chosen": chosen, "expired_before": now, "token": token, "until": now + LEASE,
             "leased_at": now}
    rows: Sequence[Any]
    if conn.dialect.update_returning:
        rows = sorted(conn.execute(_LEASE_RETURNING, lease).all(), key=lambda r: r[0])
    else:  # MariaDB: UPDATE has no RETURNING
        conn.execute(_LEASE, lease)
        rows = conn.execute(_LEASED, {"chosen": chosen, "token": token}).all()
    return [_job(row, JobState.INFLIGHT, now, token) for row in rows]


def get(conn: Connection, pk: int) -> Job:
    row = conn.execute(select(*_JOB_READS).where(prov_jobs.c.pk == pk)).first()
    if row is None:
        raise NotFound(f"job {pk} does not exist")
    return _stored(row)


def finish(
    conn: Connection, job: Job, state: JobState, error: str | None = None,
    status: int | None = None, retry_at: datetime | None = None,
    payload: Mapping[str, Any] | None = None, attempts: int | None = None,
) -> None:
    values: dict[str, Any] = {"state": state.value, "last_error": error, "last_status": status,
                              "updated": _now(), "lease_owner": None, "lease_until": None}
    if attempts is not None:
        values["attempts"] = attempts
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    if payload is not None:
        values["payload"] = dict(payload)
    conn.execute(update(prov_jobs).where(prov_jobs.c.pk == job.pk).values(**values))


def succeed_many(conn: Connection,
                 done: Sequence[tuple[int, str | None, Mapping[str, Any] | None]]) -> None:
    """``finish`` as succeeded for many jobs at once: (pk, note, new payload or None to
    keep the job's own) each. A kept payload is not written again (nor encoded as JSON);
    the jobs that keep theirs are written with one statement per note (nearly always
    none), by primary key."""
    now = _now()
    kept: dict[str | None, list[int]] = {}
    for pk, note, payload in done:
        if payload is None:
            kept.setdefault(note, []).append(pk)
    changed = [{"job_pk": pk, "note": note, "new_payload": dict(payload), "done_at": now}
               for pk, note, payload in done if payload is not None]
    for note, pks in kept.items():
        _SUCCEED_ALL.execute(conn, {"pks": pks, "note": note, "done_at": now})
    if changed:
        conn.execute(_SUCCEED_WITH_PAYLOAD, changed)


_SUCCEEDED: dict[str, Any] = {
    "state": JobState.SUCCEEDED.value, "last_error": bindparam("note"), "last_status": None,
    "updated": bindparam("done_at"), "lease_owner": None, "lease_until": None}
_SUCCEED_ALL = InStatement(lambda pks: update(prov_jobs).where(pks).values(**_SUCCEEDED),
                           prov_jobs.c.pk, "pks")
_SUCCEED_WITH_PAYLOAD = update(prov_jobs).where(prov_jobs.c.pk == bindparam("job_pk")).values(
    **_SUCCEEDED, payload=bindparam("new_payload", type_=prov_jobs.c.payload.type))


@dataclass(frozen=True)
class Attempt:
    """One attempt to record (``prov_attempts``)."""

    job: Job
    started: datetime
    duration_ms: float
    outcome: str
    status: int | None
    error: str | None
    exchanges: Sequence[Mapping[str, Any]]


def record_attempt(
    conn: Connection, job: Job, started: datetime, duration_ms: float, outcome: str,
    status: int | None, error: str | None, exchanges: Sequence[Mapping[str, Any]],
) -> None:
    record_attempts(conn, [Attempt(job, started, duration_ms, outcome, status, error,
                                   exchanges)])


#: The columns an attempt row is written with (``record_attempts``).
_ATTEMPT_COLUMNS = ("job_pk", "target", "at", "duration_ms", "outcome", "status_code", "error",
                    "exchanges")


def record_attempts(conn: Connection, attempts: Sequence[Attempt]) -> None:
    """Write the attempt rows: one a job's attempt, in one ``executemany`` straight
    through the driver (a worker writes one per job; Core's per-row parameter handling
    cost more than the insert)."""
    rows = [(a.job.pk, a.job.target, a.started, a.duration_ms, a.outcome, a.status, a.error,
             a.exchanges if isinstance(a.exchanges, list) else list(a.exchanges))
            for a in attempts]  # a list as it is: an EncodedJSON keeps its text
    if len(rows) == 1:
        insert_row(conn, prov_attempts, _ATTEMPT_COLUMNS, rows[0])
    else:
        insert_rows(conn, prov_attempts, _ATTEMPT_COLUMNS, rows)
    for a in attempts:
        metrics.child(metrics.ATTEMPTS, a.job.target, a.outcome).inc()
        if a.duration_ms > 0:  # something was sent (a skip, hold or wait sends nothing)
            metrics.child(metrics.ATTEMPT_SECONDS, a.job.target).observe(a.duration_ms / 1000)


def attempts(conn: Connection, job_pk: int) -> list[dict[str, Any]]:
    rows = conn.execute(select(prov_attempts).where(prov_attempts.c.job_pk == job_pk)
                        .order_by(prov_attempts.c.pk)).mappings()
    return [dict(r) for r in rows]


@dataclass(frozen=True)
class AttemptSummary:
    """One attempt, with the job it belongs to (the console's activity feed)."""

    pk: int
    job_pk: int
    target: str
    operation: Operation
    entity_name: str
    at: datetime
    duration_ms: float
    outcome: str
    status_code: int | None
    error: str | None
    #: The job came from a JIT login (the dashboard marks it).
    jit: bool = False


def recent_attempts(conn: Connection, limit: int = 50) -> list[AttemptSummary]:
    """The latest attempts at every target, newest first (bounded by ``limit``)."""
    a, j = prov_attempts.c, prov_jobs.c
    rows = conn.execute(select(a.pk, a.job_pk, a.target, j.operation, j.entity_name, a.at,
                               a.duration_ms, a.outcome, a.status_code, a.error, j.jit)
                        .join(prov_jobs, j.pk == a.job_pk)
                        .order_by(a.pk.desc()).limit(limit))
    return [AttemptSummary(r.pk, r.job_pk, r.target, Operation(r.operation), r.entity_name,
                           r.at, r.duration_ms, r.outcome, r.status_code, r.error, r.jit)
            for r in rows]


def open_entity_keys(conn: Connection, target: str, entity_keys: Sequence[str]) -> set[str]:
    """Which of ``entity_keys`` have an open job at ``target`` (one query)."""
    c = prov_jobs.c
    found: set[str] = set()
    for chunk in in_chunks(entity_keys):
        found.update(conn.execute(select(c.entity_key).distinct().where(
            c.target == target, c.entity_key.in_(chunk),
            c.state.in_([s.value for s in OPEN_STATES]))).scalars())
    return found


def may_hold(conn: Connection, target: str, entity_key: str, open_jobs: bool = True) -> bool:
    """Whether ``target`` may hold the user although no mapping says so: a create was
    attempted and never acknowledged (the target may have applied it), or (``open_jobs``)
    a job of the user there is still open. A deprovisioning then looks the user up."""
    c = prov_jobs.c
    attempted = and_(c.operation == Operation.UPSERT_USER.value, c.attempts > 0,
                     c.state.in_([JobState.DEAD.value, JobState.CANCELLED.value]))
    if open_jobs:
        attempted = or_(attempted, c.state.in_([s.value for s in OPEN_STATES]))
    return conn.execute(select(c.pk).where(
        c.target == target, c.entity_key == entity_key, attempted).limit(1)).first() is not None


def has_open_target_job(conn: Connection, target: str) -> bool:
    return conn.execute(select(prov_jobs.c.pk).where(
        prov_jobs.c.target == target,
        prov_jobs.c.state.in_([s.value for s in OPEN_STATES])).limit(1)).first() is not None


def cancel_open(conn: Connection, target: str, entity_key: str, operation: Operation,
                reason: str) -> int:
    """Cancel not-yet-running jobs of one entity (a deprovision supersedes its updates)."""
    result = conn.execute(update(prov_jobs).where(
        prov_jobs.c.target == target, prov_jobs.c.entity_key == entity_key,
        prov_jobs.c.operation == operation.value,
        prov_jobs.c.state.in_([JobState.PENDING.value, JobState.RETRY.value]),
    ).values(state=JobState.CANCELLED.value, last_error=reason, updated=_now()))
    return int(result.rowcount)


def list_jobs(
    conn: Connection, states: Sequence[str] = (), target: str | None = None,
    entity: str | None = None, limit: int = 100, name_contains: str | None = None,
) -> list[Job]:
    """The newest jobs first. ``entity``: exactly one user or group (its qualified name or
    id); ``name_contains``: any whose qualified name contains the text, in any case (what an
    administrator types in a filter: ``ali`` finds ``PRIMARY/alice``; ``%`` and ``_`` are
    plain characters)."""
    q = select(*_JOB_READS).order_by(prov_jobs.c.pk.desc()).limit(limit)
    if states:
        bad = set(states) - {s.value for s in JobState}
        if bad:
            raise InvalidInput(f"unknown job state(s) {', '.join(sorted(bad))} (known: "
                               + ", ".join(s.value for s in JobState) + ")")
        q = q.where(prov_jobs.c.state.in_(list(states)))
    if target:
        q = q.where(prov_jobs.c.target == target)
    if entity:
        q = q.where(or_(prov_jobs.c.entity_name == entity, prov_jobs.c.entity_id == entity))
    if name_contains:
        q = q.where(prov_jobs.c.entity_name.icontains(name_contains, autoescape=True))
    return [_stored(r) for r in conn.execute(q)]


def reschedule(conn: Connection, pks: Sequence[int]) -> int:
    """Make dead / retrying / cancelled jobs pending again, to run now, in a new round of
    attempts (the attempt count and history keep the earlier ones)."""
    now = _now()
    result = conn.execute(update(prov_jobs).where(
        prov_jobs.c.pk.in_(list(pks)),
        prov_jobs.c.state.in_([JobState.DEAD.value, JobState.RETRY.value,
                               JobState.CANCELLED.value]),
    ).values(state=JobState.PENDING.value, next_attempt_at=now,
             round_base=prov_jobs.c.attempts, round_started=now, updated=now))
    announce(conn)
    return int(result.rowcount)


def hurry(conn: Connection, target: str) -> int:
    """Make the target's retrying jobs due now (its breaker closed: the outage is over, so
    nobody has to wait out a long backoff or retry them by hand)."""
    now = _now()
    result = conn.execute(update(prov_jobs).where(
        prov_jobs.c.target == target, prov_jobs.c.state == JobState.RETRY.value,
        prov_jobs.c.next_attempt_at > now).values(next_attempt_at=now))
    return int(result.rowcount)


def cancel(conn: Connection, pk: int) -> None:
    job = get(conn, pk)
    if job.state not in (JobState.PENDING, JobState.RETRY, JobState.DEAD, JobState.HELD):
        raise InvalidInput(f"job {pk} is {job.state}; only pending, retrying or dead jobs "
                           "can be cancelled (and held ones)")
    finish(conn, job, JobState.CANCELLED, error="cancelled by an administrator")


def held_jobs(conn: Connection, target: str) -> list[tuple[int, dict[str, Any]]]:
    """The held jobs of a target: (pk, payload) each."""
    return [(r.pk, dict(r.payload)) for r in conn.execute(
        select(prov_jobs.c.pk, prov_jobs.c.payload).where(
            prov_jobs.c.target == target, prov_jobs.c.state == JobState.HELD.value))]


def release_held(conn: Connection, target: str, approved_by: str) -> int:
    """Make the held jobs of a target pending again, marked approved (the guard lets them
    pass); how many."""
    held = held_jobs(conn, target)
    if held:
        conn.execute(_RELEASE, [{"job_pk": pk, "approved": {**payload,
                                                            "approved": approved_by},
                                 "now": _now()} for pk, payload in held])
        announce(conn)
    return len(held)


_RELEASE = update(prov_jobs).where(prov_jobs.c.pk == bindparam("job_pk"),
                                   prov_jobs.c.state == JobState.HELD.value).values(
    state=JobState.PENDING.value, next_attempt_at=bindparam("now"), last_error=None,
    updated=bindparam("now"), payload=bindparam("approved", type_=prov_jobs.c.payload.type))


def cancel_held(conn: Connection, target: str) -> int:
    """Cancel every held job of a target; how many."""
    result = conn.execute(update(prov_jobs).where(
        prov_jobs.c.target == target, prov_jobs.c.state == JobState.HELD.value,
    ).values(state=JobState.CANCELLED.value, last_error="cancelled by an administrator",
             updated=_now()))
    return int(result.rowcount)


def counts_of(conn: Connection, target: str) -> dict[str, int]:
    """Open and dead jobs of one target per state (``counts`` for one target)."""
    rows = conn.execute(select(prov_jobs.c.state, func.count()).where(
        prov_jobs.c.target == target,
        prov_jobs.c.state.in_([*[s.value for s in OPEN_STATES], JobState.DEAD.value]))
        .group_by(prov_jobs.c.state))
    return {str(state): int(n) for state, n in rows}


def next_due(conn: Connection, exclude: Sequence[str] = ()) -> datetime | None:
    """When the earliest waiting job (not of ``exclude``) becomes runnable, if any."""
    q = select(func.min(prov_jobs.c.next_attempt_at)).where(
        prov_jobs.c.state.in_([JobState.PENDING.value, JobState.RETRY.value]))
    if exclude:
        q = q.where(prov_jobs.c.target.not_in(list(exclude)))
    return conn.execute(q).scalar()


def counts(conn: Connection) -> dict[str, dict[str, int]]:
    """Open and dead jobs per target and state (bounded by the backlog, not the history)."""
    rows = conn.execute(select(prov_jobs.c.target, prov_jobs.c.state, func.count())
                        .where(prov_jobs.c.state.in_([*[s.value for s in OPEN_STATES],
                                                      JobState.DEAD.value]))
                        .group_by(prov_jobs.c.target, prov_jobs.c.state))
    out: dict[str, dict[str, int]] = {}
    for target, state, n in rows:
        out.setdefault(target, {})[state] = int(n)
    return out


def waiting(conn: Connection) -> dict[str, tuple[int, datetime]]:
    """Per target: the jobs waiting to run (pending or scheduled for a retry) and when the
    oldest of them was written (bounded by the backlog, not the history)."""
    rows = conn.execute(select(prov_jobs.c.target, func.count(), func.min(prov_jobs.c.created))
                        .where(prov_jobs.c.state.in_([JobState.PENDING.value,
                                                      JobState.RETRY.value]))
                        .group_by(prov_jobs.c.target))
    return {target: (int(n), oldest) for target, n, oldest in rows}


def cancel_jobs(conn: Connection, pks: Sequence[int], reason: str) -> int:
    """Cancel these jobs where they have not ended well (a refused write's jobs: it was
    taken back, so they have nothing left to do)."""
    result = conn.execute(update(prov_jobs).where(
        prov_jobs.c.pk.in_(list(pks)),
        prov_jobs.c.state.not_in([s.value for s in DONE]),
    ).values(state=JobState.CANCELLED.value, last_error=reason, lease_owner=None,
             lease_until=None, updated=_now()))
    return int(result.rowcount)
