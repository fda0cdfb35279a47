"""The mass-deletion guard: a target's deprovisionings past its ``deletion-threshold`` per
rolling hour wait, in job state ``held``, until an administrator approves or cancels them.

Entra's accidental-deletion threshold is the model: a bad change (a role removed, a
userstore emptied) should not delete half a target's users. Deletions and disables count
alike; a target whose ``deprovision-action`` is ``none`` deletes nothing and is never held;
0 turns the guard off. Once a target has held jobs, its later deprovisionings are held
too (until approval), so that the first of a bad batch do not slip through when the hour
rolls on. Held jobs are rows of the outbox like any other (a crash loses none of them) and
hold back only later jobs of their own user; the target's other jobs keep flowing.

Workers count per batch they prepare, so concurrent workers may each let their batch's
share through: the threshold can be passed by at most one batch per worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, func, select

from core.provisioning import outbox
from core.provisioning.outbox import Job, JobState, Operation
from core.provisioning.targets import Target
from core.schema import prov_attempts, prov_jobs

WINDOW = timedelta(hours=1)


def deletions_in_window(conn: Connection, target: str) -> int:
    """Deprovisionings the target carried out in the last hour."""
    a, j = prov_attempts.c, prov_jobs.c
    since = datetime.now(UTC) - WINDOW
    return int(conn.execute(select(func.count()).select_from(prov_attempts).join(
        prov_jobs, j.pk == a.job_pk).where(
            a.target == target, a.at >= since, a.outcome == "succeeded",
            j.operation == Operation.DEPROVISION_USER.value)).scalar_one())


def held(conn: Connection, deprovisions: Sequence[tuple[Job, Target]]) -> dict[int, str]:
    """Which of these deprovisioning jobs (each with its target; ones that would delete or
    disable) the guard holds, by job pk, with the reason."""
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
        allowed = 0 if waiting else threshold - deletions_in_window(conn, key)
        for job, _target in of_target:
            if allowed > 0:
                allowed -= 1
                continue
            out[job.pk] = (f"held: the deletion threshold of {threshold} per hour at {key} "
                           f"is reached; approve with 'mware-iam provisioning approve {key}' "
                           "or cancel")
    return out
