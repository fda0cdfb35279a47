"""Running one job: ``prepare`` (read the DB), ``perform`` (talk to the target), ``settle``
(write the outcome). The worker pool and the inline (blocking) path share these three, so a
job behaves the same whoever runs it. ``perform`` never touches the database.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Connection

from connectors.base import (
    ConflictError,
    Connector,
    ConnectorError,
    Exchange,
    OutboundGroup,
    OutboundUser,
    PermanentError,
    RemoteNotFound,
    RemoteRef,
    RetryableError,
    TargetPaused,
)
from core import idps
from core.encoded_json import EncodedJSON
from core.errors import IamError
from core.names import QualifiedName
from core.provisioning import breaker, guard, mapping, outbox
from core.provisioning.host import Host
from core.provisioning.outbox import Job, JobState, Operation
from core.provisioning.scope_rules import in_scope, mapped_group_name, outbound_user
from core.provisioning.targets import Target, build_target, split_key

MEMBER_PAGE = 500
#: How long a job that waits for another entity's job sleeps before it looks again.
WAIT = timedelta(seconds=0.5)


@dataclass
class Prepared:
    job: Job
    target: Target | None
    user: OutboundUser | None = None
    group: OutboundGroup | None = None
    remote_id: str | None = None
    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    action: str = ""
    #: Nothing to send: the job succeeds with this note.
    skip: str | None = None
    #: Not ready yet (e.g. a member not provisioned yet): retry later with this note.
    wait: str | None = None
    #: The job cannot run at all (e.g. its target was removed).
    fail: str | None = None
    #: With ``wait``: held by the mass-deletion guard until approved (``guard``).
    hold: bool = False


@dataclass
class Outcome:
    remote: RemoteRef | None = None
    adopted: bool = False
    forget: bool = False
    #: The remote object this attempt found or made although the attempt failed later
    #: (adopted, then the update failed): its mapping is kept for the next attempt.
    found: RemoteRef | None = None
    #: A create was sent and its fate is unknown (timeout, 5xx, lost answer): the next
    #: attempt looks the user up before it creates one.
    unsure: bool = False
    error: ConnectorError | None = None
    note: str = ""
    exchanges: list[Exchange] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    duration_ms: float = 0.0
    #: What the target said about itself (``Connector.target_facts``); kept per target.
    facts: dict[str, str] = field(default_factory=dict)


def _qualified(domain: str, name: str) -> str:
    return str(QualifiedName(domain, name))


def prepare(conn: Connection, host: Host, job: Job) -> Prepared:
    """Read what ``job`` needs (``prepare_many`` of one job)."""
    return prepare_many(conn, host, [job])[0]


def prepare_many(conn: Connection, host: Host, jobs: Sequence[Job],
                 targets: dict[str, Target] | None = None) -> list[Prepared]:
    """Read what each of ``jobs`` needs, in their order, with one query per table for the
    whole batch where it can: each target's configuration once, the mappings of a target
    at once, and the users of a domain and their roles at once (so a worker's batch of 32
    jobs reads about as much as one job did).

    ``targets``: targets built already, by key (a worker keeps them while the identity
    providers' configuration version stays the same); those built here are added."""
    cache = {} if targets is None else targets
    unavailable: dict[str, str | None] = {}  # domain -> why its store cannot be used
    preps = [_start(conn, host, job, cache, unavailable) for job in jobs]
    live = [p for p in preps if p.fail is None and p.wait is None]
    mappings = _mappings(conn, live)
    users: dict[str, list[Prepared]] = {}
    for prep in live:
        job, m = prep.job, mappings.get(id(prep))
        prep.remote_id = m.remote_id if m else None
        if job.operation is Operation.UPSERT_USER:
            users.setdefault(job.domain, []).append(prep)
        elif job.operation is Operation.DEPROVISION_USER:
            _prepare_deprovision(conn, prep, m)
        else:
            _prepare_group(conn, host, prep, m is not None)
    for domain, of_domain in users.items():
        _prepare_users(host, domain, of_domain)
    _hold(conn, live)
    return preps


def _hold(conn: Connection, preps: Sequence[Prepared]) -> None:
    """Deprovisionings past their target's deletion threshold wait for approval."""
    held = guard.held(conn, [(p.job, p.target) for p in preps
                             if p.job.operation is Operation.DEPROVISION_USER
                             and p.target is not None and p.action in ("delete", "disable")
                             and not (p.skip or p.wait or p.fail)],
                       [p.job.pk for p in preps])
    for p in preps:
        if p.job.pk in held:
            p.hold, p.wait = True, held[p.job.pk]


def _start(conn: Connection, host: Host, job: Job, targets: dict[str, Target],
           unavailable: dict[str, str | None]) -> Prepared:
    """The job with its target, or the reason it cannot run now. ``targets`` and
    ``unavailable`` (whether each domain's store can be used) are filled as seen."""
    target = targets.get(job.target)
    if target is None:
        idp_name, connector_type = split_key(job.target)
        try:
            target = build_target(idps.get(conn, host.secrets, idp_name), connector_type)
        except IamError as exc:
            return Prepared(job, None,
                            fail=f"target {job.target} is not configured any more: {exc}")
        targets[job.target] = target
    if job.domain not in unavailable:
        try:
            host.stores.store(job.domain)
            unavailable[job.domain] = None
        except IamError as exc:
            unavailable[job.domain] = f"userstore unavailable: {exc}"
    return Prepared(job, target, wait=unavailable[job.domain])


def _mappings(conn: Connection, preps: Sequence[Prepared]) -> dict[int, mapping.Mapping]:
    """Each job's mapping (by ``id()`` of its Prepared): one query per target and type."""
    groups: dict[tuple[str, str], list[Prepared]] = {}
    for prep in preps:
        groups.setdefault((prep.job.target, prep.job.entity_type), []).append(prep)
    out: dict[int, mapping.Mapping] = {}
    for (target, entity_type), of_kind in groups.items():
        found = mapping.get_many(conn, target, entity_type, [p.job.entity_id for p in of_kind])
        out.update((id(p), found[p.job.entity_id]) for p in of_kind
                   if p.job.entity_id in found)
    return out


def _prepare_users(host: Host, domain: str, preps: Sequence[Prepared]) -> None:
    """Upserts of users of one domain: the users, then the roles of those that exist."""
    views = host.identity.get_users_by_id(domain, [p.job.entity_id for p in preps])
    roles = host.identity.roles_of_ids(domain, [p.job.entity_id for p in preps
                                               if p.job.entity_id in views])
    for prep in preps:
        job, target = prep.job, prep.target
        assert target is not None
        view = views.get(job.entity_id)
        if view is None:
            prep.skip = "the user no longer exists"
            continue
        user_roles = roles[job.entity_id]
        if not in_scope(target, user_roles):
            prep.skip = "the user holds none of the provisioning roles"
            continue
        secret = job.payload.get("password")
        password = host.secrets.decrypt(secret) if secret else None
        prep.user = outbound_user(target, host.claims, view.username, view.domain, view.claims,
                                  user_roles, password)


def _prepare_deprovision(conn: Connection, prep: Prepared, m: mapping.Mapping | None) -> None:
    """Without a mapping, the target may still hold the user (a create it applied but did
    not acknowledge): the connector then looks the user up by name."""
    job, target = prep.job, prep.target
    assert target is not None
    if m is None and not outbox.may_hold(conn, target.key, job.entity_key, open_jobs=False):
        prep.skip = "the user was never provisioned to this target"
        return
    prep.action = str(job.payload.get("action") or target.prop("deprovision-action"))
    if prep.action == "none":
        prep.skip = "left as is at the target (deprovisioning action: none)"
        return
    username = job.payload.get("username") or (m.remote_name if m else job.name)
    prep.user = OutboundUser(username=str(username), domain=job.domain,
                             claims=job.payload.get("claims", {}), active=False)


def _prepare_group(conn: Connection, host: Host, prep: Prepared, mapped: bool) -> None:
    job, target = prep.job, prep.target
    assert target is not None
    if job.operation is Operation.DELETE_GROUP:
        if not mapped:
            prep.skip = "the group was never provisioned to this target"
        prep.group = OutboundGroup(str(job.payload.get("remote_name", job.name)), job.domain)
        return
    store = host.stores.store(job.domain)
    group = store.get_group(job.entity_id)
    if group is None:
        prep.skip = "the group no longer exists"
        return
    remote_name = mapped_group_name(target, _qualified(group.domain, group.name))
    if remote_name is None:
        prep.skip = "this group is not sent to this target"
        return
    if job.operation is Operation.GROUP_MEMBERS and not mapped:
        prep.skip = "the group is not provisioned to this target"
        return
    if job.operation is Operation.UPSERT_GROUP:
        wanted: list[tuple[str, str]] = []
        cursor: str | None = None
        while True:
            page = store.members_of(group.id, MEMBER_PAGE, cursor)
            wanted += [(u.domain, u.id) for u in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
    else:
        wanted = [(d, i) for d, i in job.payload.get("add", [])]
    members = mapping.get_many(conn, target.key, "user", [i for _d, i in wanted])
    # members whose own provisioning is still on its way: the group waits for them
    pending = outbox.open_entity_keys(conn, target.key, [f"user:{d}:{i}" for d, i in wanted
                                                         if i not in members])
    if pending:
        prep.wait = f"{len(pending)} member(s) are not provisioned to this target yet"
        return
    prep.add = _remote_ids(members, [i for _d, i in wanted])
    if job.operation is Operation.GROUP_MEMBERS:
        removed = [i for _d, i in job.payload.get("remove", [])]
        prep.remove = _remote_ids(mapping.get_many(conn, target.key, "user", removed), removed)
    prep.group = OutboundGroup(remote_name, group.domain, prep.add)


def _remote_ids(mappings: Mapping[str, mapping.Mapping], user_ids: Sequence[str]) -> list[str]:
    """Remote ids of the users provisioned to the target (others are left out, #21042)."""
    return [mappings[uid].remote_id for uid in user_ids if uid in mappings]


async def perform(connector: Connector, prep: Prepared) -> Outcome:
    """Send what ``prep`` says; never raises a ConnectorError (it is in the outcome)."""
    outcome = Outcome()
    began = time.perf_counter()
    try:
        await _dispatch(connector, prep, outcome)
    except ConnectorError as exc:
        outcome.error = exc
    except Exception as exc:  # a connector bug must not kill the worker: retry, recorded
        outcome.error = RetryableError(f"connector failed unexpectedly: {exc!r}")
    outcome.duration_ms = (time.perf_counter() - began) * 1000
    outcome.exchanges = list(connector.exchanges)
    outcome.facts = connector.target_facts()
    return outcome


async def _dispatch(connector: Connector, prep: Prepared, out: Outcome) -> None:
    op, rid = prep.job.operation, prep.remote_id
    if op is Operation.UPSERT_USER:
        assert prep.user is not None
        if rid is not None:
            try:
                out.remote = await connector.update_user(rid, prep.user)
                return
            except RemoteNotFound:
                out.note = "the remote user had been removed; created it again"
        elif prep.job.payload.get("unsure"):  # an earlier create may have been applied
            found = await connector.lookup_user(prep.user)
            if found is not None:
                await _adopt(connector, prep.user, found, out)
                return
        try:
            out.remote = await connector.create_user(prep.user)
        except ConflictError:
            found = await connector.lookup_user(prep.user)
            if found is None:
                raise PermanentError("the target says the user exists, but no user with "
                                     f"userName {prep.user.username!r} can be found") from None
            await _adopt(connector, prep.user, found, out)
        except RetryableError as exc:
            out.unsure = _maybe_applied(exc)
            raise
    elif op is Operation.DEPROVISION_USER:
        assert prep.user is not None
        if rid is None:
            found = await connector.lookup_user(prep.user)
            if found is None:
                out.note, out.forget = "the user is not at the target", True
                return
            rid = found.id
            if prep.action == "disable":
                out.found = found  # kept: the disabled account is known from now on
        if prep.action == "delete":
            try:
                await connector.delete_user(rid, prep.user)
            except RemoteNotFound:
                out.note = "the remote user was already gone"
            out.forget = True
        else:
            await connector.set_active(rid, prep.user, False)
            out.note = "disabled at the target"
    elif op is Operation.UPSERT_GROUP:
        assert prep.group is not None
        if rid is not None:
            out.remote = await connector.rename_group(rid, prep.group)
            return
        try:
            out.remote = await connector.create_group(prep.group)
        except ConflictError:
            found = await connector.lookup_group(prep.group)
            if found is None:
                raise
            await connector.change_members(found.id, prep.group, prep.add, [])
            out.remote, out.adopted = found, True
            out.note = "an existing remote group was adopted"
    elif op is Operation.GROUP_MEMBERS:
        assert prep.group is not None and rid is not None
        await connector.change_members(rid, prep.group, prep.add, prep.remove)
    elif op is Operation.DELETE_GROUP:
        assert prep.group is not None and rid is not None
        try:
            await connector.delete_group(rid, prep.group)
        except RemoteNotFound:
            out.note = "the remote group was already gone"
        out.forget = True


def _maybe_applied(err: RetryableError) -> bool:
    """Whether the target may have applied a request that failed so: yes after a timeout,
    a lost answer or a 5xx; not when no connection was made or the answer was 429."""
    if err.status == 429:
        return False
    cause = err.__context__  # the transport error (a connector raises "from None")
    return not isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout)


async def _adopt(connector: Connector, user: OutboundUser, found: RemoteRef,
                 out: Outcome) -> None:
    """Take over a remote user that exists already: converge its attributes, but never
    overwrite the password of an account that existed before us. Should the update fail,
    the mapping is kept (``Outcome.found``), so the next attempt only updates."""
    out.found, out.adopted, out.note = found, True, "an existing remote user was adopted"
    out.remote = await connector.update_user(found.id, dataclasses.replace(user,
                                                                           password=None))


def backoff(job: Job, target: Target, delay: float | None) -> datetime:
    """Next attempt time: the target's Retry-After, else exponential backoff with jitter."""
    if delay is None:
        base = float(target.prop("retry-base-seconds"))
        cap = float(target.prop("retry-max-seconds"))
        # the exponent is bounded: with no attempt limit a job may try for a day
        doublings = min(max(0, job.round_attempts - 1), 62)
        delay = min(cap, base * 2 ** doublings) * random.uniform(0.5, 1.0)
    return datetime.now(UTC) + timedelta(seconds=delay)


def _exhausted(job: Job, target: Target) -> str:
    """Why the job's round of attempts is over ("" while it may go on): ``max-attempts``
    attempts (0: no limit), or ``give-up-seconds`` since the round's first attempt."""
    limit = int(target.prop("max-attempts"))
    if limit and job.round_attempts >= limit:
        return f"{job.round_attempts} attempts"
    age = (datetime.now(UTC) - job.round_since).total_seconds()
    if age >= int(target.prop("give-up-seconds")):
        return f"{job.round_attempts} attempts over {_duration(age)}"
    return ""


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def settle(conn: Connection, prep: Prepared, outcome: Outcome | None) -> JobState:
    """Write the result of one attempt: job state, attempt row, mapping, target health."""
    job, target = prep.job, prep.target
    payload = _spent_payload(job)
    if prep.fail or target is None:
        outbox.finish(conn, job, JobState.DEAD, error=prep.fail)
        outbox.record_attempt(conn, job, datetime.now(UTC), 0.0, "dead", None, prep.fail, [])
        return JobState.DEAD
    if prep.skip is not None:  # nothing was sent: never "succeeded"
        if job.operation is Operation.DEPROVISION_USER and job.payload.get("deleted"):
            mapping.remove(conn, target.key, job.entity_type, job.entity_id)
        outbox.finish(conn, job, JobState.SKIPPED, error=prep.skip, payload=payload)
        outbox.record_attempt(conn, job, datetime.now(UTC), 0.0, "skipped", None, prep.skip,
                              [])
        return JobState.SKIPPED
    if prep.hold:  # the deletion guard: waits for an administrator, not for time
        outbox.finish(conn, job, JobState.HELD, error=prep.wait, attempts=job.attempts - 1)
        outbox.record_attempt(conn, job, datetime.now(UTC), 0.0, "held", None, prep.wait, [])
        return JobState.HELD
    if prep.wait is not None:  # not a failure: the attempt does not count
        outbox.finish(conn, job, JobState.RETRY, error=prep.wait, attempts=job.attempts - 1,
                      retry_at=datetime.now(UTC) + WAIT)
        outbox.record_attempt(conn, job, datetime.now(UTC), 0.0, "waiting", None, prep.wait,
                              [])
        return JobState.RETRY
    assert outcome is not None
    if _delivered(prep, outcome):
        _record_delivered(conn, [(prep, outcome)])
        return JobState.SUCCEEDED
    exchanges = _recorded(outcome.exchanges)
    err = outcome.error
    if outcome.found is not None and prep.remote_id is None and not outcome.forget:
        mapping.put_many(conn, [mapping.Put(
            job.target, job.entity_type, job.domain, job.entity_id, outcome.found.id,
            outcome.found.name or job.name, outcome.adopted, exists=False)])
    if isinstance(err, TargetPaused):  # not a failure: the job waits with its target
        until = datetime.now(UTC) + timedelta(seconds=err.delay)
        outbox.finish(conn, job, JobState.RETRY, error=err.message, attempts=job.attempts - 1,
                      retry_at=until)
        outbox.record_attempt(conn, job, outcome.started, outcome.duration_ms, "throttled",
                              _last_status(outcome), err.message, exchanges)
        breaker.pause(conn, target.key, err.message, until)
        return JobState.RETRY
    if err is None:
        if outcome.forget:
            mapping.remove(conn, target.key, job.entity_type, job.entity_id)
        else:
            mapping.note_outcome(conn, target.key, job.entity_type, job.entity_id,
                                 "succeeded", None)
        outbox.finish(conn, job, JobState.SUCCEEDED, error=outcome.note or None,
                      payload=payload)
        outbox.record_attempt(conn, job, outcome.started, outcome.duration_ms, "succeeded",
                              _last_status(outcome), outcome.note or None, exchanges)
        breaker.record_success(conn, target.key)
        return JobState.SUCCEEDED
    retryable = isinstance(err, RetryableError)
    exhausted = _exhausted(job, target)
    state = JobState.RETRY if retryable and not exhausted else JobState.DEAD
    message = err.message
    if retryable and exhausted:
        message = f"gave up after {exhausted}: {message}"
    delay = err.delay if isinstance(err, RetryableError) else None
    retry_at = backoff(job, target, delay) if state is JobState.RETRY else None
    outbox.finish(conn, job, state, error=message, status=err.status, retry_at=retry_at,
                  payload={**job.payload, "unsure": True} if outcome.unsure else None)
    outbox.record_attempt(conn, job, outcome.started, outcome.duration_ms,
                          "retry" if state is JobState.RETRY else "dead", err.status, message,
                          exchanges)
    mapping.note_outcome(conn, target.key, job.entity_type, job.entity_id, "failed", message)
    breaker.record_failure(conn, target.key, message,
                           threshold=int(target.prop("quarantine-threshold")),
                           probe_after=timedelta(seconds=int(target.prop("probe-seconds"))),
                           counts_for_breaker=retryable)
    return state


def settle_many(conn: Connection, finished: Sequence[tuple[Prepared, Outcome | None]]
                ) -> list[JobState]:
    """``settle`` for many attempts, in order. Deliveries (the common case: the target
    acknowledged and named the object) are written together, a few statements for the
    whole batch instead of four each; the others one by one, between them, so that each
    target's breaker sees its outcomes in order."""
    states: list[JobState] = []
    delivered: list[tuple[Prepared, Outcome]] = []
    facts = {p.job.target: o.facts for p, o in finished if o is not None and o.facts}
    for target, latest in facts.items():  # the latest word of each target, once a batch
        breaker.set_facts(conn, target, latest)
    for prep, outcome in finished:
        if outcome is not None and _delivered(prep, outcome):
            delivered.append((prep, outcome))
            states.append(JobState.SUCCEEDED)
            continue
        _record_delivered(conn, delivered)
        delivered = []
        states.append(settle(conn, prep, outcome))
    _record_delivered(conn, delivered)
    return states


def _delivered(prep: Prepared, outcome: Outcome) -> bool:
    """The target acknowledged the change and named the object: store the mapping."""
    return (prep.target is not None and not (prep.fail or prep.skip or prep.wait)
            and outcome.error is None and not outcome.forget and outcome.remote is not None)


def _record_delivered(conn: Connection, delivered: Sequence[tuple[Prepared, Outcome]]
                      ) -> None:
    if not delivered:
        return
    mapping.put_many(conn, [
        mapping.Put(p.job.target, p.job.entity_type, p.job.domain, p.job.entity_id,
                    o.remote.id, o.remote.name or p.job.name, o.adopted,
                    exists=p.remote_id is not None)
        for p, o in delivered if o.remote is not None])
    outbox.succeed_many(conn, [(p.job.pk, o.note or None, _spent_or_same(p.job))
                               for p, o in delivered])
    outbox.record_attempts(conn, [
        outbox.Attempt(p.job, o.started, o.duration_ms, "succeeded", _last_status(o),
                       o.note or None, _recorded(o.exchanges))
        for p, o in delivered])
    for target, n in Counter(p.job.target for p, _ in delivered).items():
        breaker.record_success(conn, target, n)


#: What a job's payload loses once the job ended.
_SPENT = ("password", "unsure")


def _spent_payload(job: Job) -> dict[str, Any]:
    """The payload kept once the job ended: its (encrypted) password is not needed again,
    nor the mark of an unsure create."""
    return {k: v for k, v in job.payload.items() if k not in _SPENT}


def _spent_or_same(job: Job) -> dict[str, Any] | None:
    """``_spent_payload``, or None when it equals the stored payload (the common case:
    nothing to write again)."""
    return _spent_payload(job) if any(k in job.payload for k in _SPENT) else None


def _recorded(exchanges: Sequence[Exchange]) -> list[dict[str, Any]]:
    """The exchanges as an attempt row stores them; with their JSON text, stored as it is
    (``EncodedJSON``), when the connector knows every body's text (no body encoded again)."""
    dicts = [e.as_dict() for e in exchanges]
    texts = [e.as_json() for e in exchanges]
    if None in texts:
        return dicts
    return EncodedJSON(dicts, "[" + ", ".join(t for t in texts if t is not None) + "]")


def _last_status(outcome: Outcome) -> int | None:
    return outcome.exchanges[-1].status if outcome.exchanges else None
