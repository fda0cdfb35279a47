"""The mass-deletion guard: a target's deprovisionings past its ``deletion-threshold`` per
rolling hour wait, in job state ``held``, until an administrator approves or cancels them.

Entra's accidental-deletion threshold is the model: a bad change (a role removed, a
userstore emptied) should not delete half a target's users. Deletions and disables count
alike; a target whose ``deprovision-action`` is ``none`` deletes nothing and is never held;
0 turns the guard off. Once a target has held jobs, its later deprovisionings are held
too (until approval), so that the first of a bad batch do not slip through when the hour
rolls on. Held jobs are rows of the outbox like any other (a crash loses none of them) and
hold back only later jobs of their own user; the target's other jobs keep flowing.

The count is of the target's deprovisionings that succeeded in the last hour and of those
on their way: retrying after a failed attempt, or leased by a worker no later than the batch
being decided (its jobs carry their lease time in ``updated``). So a burst leased in several
batches at once (one worker's next batch while the last is sent, or several workers) cannot
slip past the threshold: of two batches the later-leased counts the earlier's jobs whichever
is decided first, and batches leased in the same instant count each other's (they may then
hold more than they must; those wait for approval, as the rest of a bad batch does).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, and_, func, or_, select

from core.provisioning import outbox
from core.provisioning.outbox import Job, JobState, Operation
from core.provisioning.targets import Target
from core.schema import prov_jobs

WINDOW = timedelta(hours=1)


def deletions_counted(conn: Connection, target: str, besides: Sequence[int] = (),
                      leased_by: datetime | None = None) -> int:
    """The target's deprovisionings that succeeded in the last hour, are retrying, or are
    leased (by ``leased_by``, when given), leaving out the jobs ``besides`` (the batch
    being decided). Ranges of ``ix_prov_jobs_target_operation_state_updated``."""
    j = prov_jobs.c
    since = datetime.now(UTC) - WINDOW
    leased = j.state == JobState.INFLIGHT.value
    if leased_by is not None:
        leased = and_(leased, j.updated <= leased_by)
    q = select(func.count()).select_from(prov_jobs).where(
        j.target == target, j.operation == Operation.DEPROVISION_USER.value,
        or_(and_(j.state == JobState.SUCCEEDED.value, j.updated >= since),
            j.state == JobState.RETRY.value, leased))
    if besides:
        q = q.where(j.pk.not_in(list(besides)))
    return int(conn.execute(q).scalar_one())


def held(conn: Connection, deprovisions: Sequence[tuple[Job, Target]],
         batch: Sequence[int] = ()) -> dict[int, str]:
    """Which of these deprovisioning jobs (each with its target; ones that would delete or
    disable) the guard holds, by job pk, with the reason. ``batch``: the pks of every job
    leased with them (theirs are left out of the count of those in flight)."""
    by_target: dict[str, list[tuple[Job, Target]]] = {}
    for job, target in deprovisions:
        if not job.payload.get("approved"):
            by_target.setdefault(job.target, []).append((job, target))
    out: dict[int, str] = {}
    for key, of_target in by_target.items():
        threshold = int(of_target[0][1].prop("deletion-threshold"))
        if threshold <= 0:
            continue
        waiting = outbox.counts_of(conn, key).get(JobState.HELD.value, 0)
        besides = sorted({*batch, *(job.pk for job, _target in of_target)})
        leased_by = max(job.updated for job, _target in of_target)
        allowed = 0 if waiting else \
            threshold - deletions_counted(conn, key, besides, leased_by)
        for job, _target in of_target:
            if allowed > 0:
                allowed -= 1
                continue
            out[job.pk] = (f"held: the deletion threshold of {threshold} per hour at {key} "
                           f"is reached; approve with 'mware-iam provisioning approve {key}' "
                           "or cancel")
    return out
