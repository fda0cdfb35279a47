"""Blocking targets: a write's jobs there are sent before the write answers its client.

A write that opens its own transaction (every user write of the identity service) commits
first, its blocking jobs leased to this runner in the same transaction (so no worker takes
them meanwhile, and a crash leaves them to the workers once the lease expires); they are
sent after the commit, holding no database lock during the peer's round trip. With the
application's ``fail_on_blocking_failure``, a failure refuses the write: remote objects this
write created are deleted again (never ones that existed before and were adopted), the
write's open blocking jobs are cancelled, and ``OperationRefused`` makes the identity
service take the local change back (a compensation). A deletion or a password change cannot
be taken back: the planner refuses them up front (``JobPlanner.veto``). A write inside a wider
transaction (``config apply``), and the role and import writes, send inside it, and a
refusal rolls everything back.

The connector call runs on a private event loop thread (the identity service is
synchronous); the outbox is read and written in the caller's thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection

from connectors.base import ConnectorError
from core.apps import Application
from core.errors import OperationRefused
from core.identity.events import IdentityEvent, after_commit_sends
from core.provisioning import executor, mapping, outbox
from core.provisioning.executor import Outcome, Prepared
from core.provisioning.host import Host
from core.provisioning.outbox import DONE, Job, JobState, Operation
from core.provisioning.planner import IRREVERSIBLE
from core.provisioning.target_clients import TargetRuntime

OWNER = "inline"
T = TypeVar("T")


class LoopThread:
    """An event loop on a daemon thread, to run coroutines from synchronous code."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self.runtime = TargetRuntime()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="mware-iam-inline",
                                 daemon=True).start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        if self._loop is not None:
            self.run(self.runtime.aclose())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None


@dataclass(frozen=True)
class Result:
    job: Job
    state: JobState
    prep: Prepared
    outcome: Outcome | None

    @property
    def created(self) -> bool:
        """This run created the remote object (it did not exist, and was not adopted)."""
        o = self.outcome
        return bool(self.state is JobState.SUCCEEDED and o and o.remote and not o.adopted
                    and self.prep.remote_id is None)


class InlineExecutor:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.loop = LoopThread()

    async def _perform(self, prep: Prepared) -> Outcome:
        assert prep.target is not None
        async with self.loop.runtime.lane(prep.target) as connector:
            return await executor.perform(connector, prep)

    def execute(self, pks: Sequence[int], stop_on_failure: bool = False) -> list[Result]:
        """Lease the given jobs (those runnable now) and send them."""
        with self.host.db.transaction() as conn:
            jobs = outbox.claim(conn, OWNER, len(pks), pks=pks)
        return self.run(jobs, stop_on_failure)

    def run(self, jobs: Sequence[Job], stop_on_failure: bool = False) -> list[Result]:
        """Send leased jobs, one after the other. Each is read and settled in a short
        transaction of its own (or in the ambient one); none is open while it is sent."""
        results: list[Result] = []
        for job in jobs:
            with self.host.db.transaction() as conn:
                prep = executor.prepare(conn, self.host, job)
            outcome = None
            if prep.target is not None and not (prep.skip or prep.wait or prep.fail):
                outcome = self.loop.run(self._perform(prep))
            with self.host.db.transaction() as conn:
                state = executor.settle_many(conn, [(prep, outcome)])[0]
                results.append(Result(outbox.get(conn, job.pk), state, prep, outcome))
            if stop_on_failure and state not in DONE:
                break
        return results

    def __call__(self, conn: Connection, pks: Sequence[int], app: Application,
                 event: IdentityEvent) -> None:
        """The planner's hook for the blocking jobs of a write, inside its transaction."""
        sends = after_commit_sends.get()
        if sends is None:  # inside a wider transaction: send now, a refusal rolls back
            refuse = app.fail_on_blocking_failure
            self._send(self.execute(pks, refuse), refuse)
            return
        # what no compensation takes back (JobPlanner.veto let it through: the target may
        # not even hold the user) is not refused after the commit: a failure retries
        refuse = app.fail_on_blocking_failure and event.type not in IRREVERSIBLE
        jobs = outbox.claim(conn, OWNER, len(pks), pks=pks)
        sends.append(functools.partial(self._send_leased, jobs, refuse))

    def _send_leased(self, jobs: Sequence[Job], refuse: bool) -> None:
        self._send(self.run(jobs, refuse), refuse, jobs)

    def _send(self, results: Sequence[Result], refuse: bool,
              leased: Sequence[Job] = ()) -> None:
        failed = [r for r in results if r.state not in DONE]
        if not failed or not refuse:
            return  # a failed job retries as any other
        self._compensate([r for r in results if r.created])
        job = failed[0].job
        reason = f"provisioning to {job.target} failed, so the change was not made"
        with self.host.db.transaction() as conn:
            outbox.cancel_jobs(conn, [j.pk for j in leased] or [r.job.pk for r in results],
                               f"{reason} (taken back)")
        raise OperationRefused(f"{reason}: {job.last_error}")

    def _compensate(self, created: Sequence[Result]) -> None:
        """Undo the creates of this write, newest first; best effort, never adopted ones."""
        for result in reversed(created):
            prep = dataclasses.replace(result.prep, remote_id=result.outcome.remote.id)  # type: ignore[union-attr]
            assert prep.target is not None
            try:
                if not self.loop.run(self._undo(prep)):
                    continue
            except ConnectorError:
                continue  # the refusal still stands; the orphan is in the attempt log
            with self.host.db.transaction() as conn:
                job = prep.job
                mapping.remove(conn, prep.target.key, job.entity_type, job.entity_id)

    async def _undo(self, prep: Prepared) -> bool:
        """Delete the remote user or group ``prep`` created; False when it is neither."""
        assert prep.target is not None
        async with self.loop.runtime.lane(prep.target) as connector:
            if prep.job.operation is Operation.UPSERT_USER and prep.user is not None:
                await connector.delete_user(str(prep.remote_id), prep.user)
            elif prep.job.operation is Operation.UPSERT_GROUP and prep.group is not None:
                await connector.delete_group(str(prep.remote_id), prep.group)
            else:
                return False
        return True

    def close(self) -> None:
        self.loop.close()

