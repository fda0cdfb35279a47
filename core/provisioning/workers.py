"""Workers: asyncio tasks that lease jobs from the outbox and run them.

Database work runs in threads (``asyncio.to_thread``), network work in the loop. Jobs
written by any process are picked up within ``poll_seconds``; jobs written in this process
wake the pool at once. A quarantined target gets no jobs until its probe time, then one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from core.identity.events import IdentityEvent, Phase
from core.provisioning import executor, mapping, outbox
from core.provisioning.executor import Prepared
from core.provisioning.outbox import Job, JobState
from core.provisioning.runtime import TargetRuntime

if TYPE_CHECKING:
    from core.iam import Iam

log = logging.getLogger(__name__)

#: Called after every attempt with (job, resulting state): live views subscribe here.
Listener = Callable[[Job, JobState], None]


class WorkerPool:
    def __init__(self, iam: Iam, capacity: int = 32, poll_seconds: float = 0.5) -> None:
        self.iam = iam
        self.capacity = capacity
        self.poll_seconds = poll_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.runtime = TargetRuntime()
        self.listeners: list[Listener] = []
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe = iam.bus.subscribe(Phase.COMMITTED, self._on_commit)

    # ------------------------------------------------------------------ waking
    def _on_commit(self, _event: IdentityEvent) -> None:
        self.wake()

    def wake(self) -> None:
        """Thread-safe: look for work now instead of at the next poll."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # ------------------------------------------------------------------ running
    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; in-flight jobs finish first."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        running: set[asyncio.Task[None]] = set()
        try:
            while not stop.is_set():
                free = self.capacity - len(running)
                if free > 0:
                    for job in await asyncio.to_thread(self._claim, free):
                        task = asyncio.create_task(self._run(job))
                        running.add(task)
                        task.add_done_callback(running.discard)
                waiters = [asyncio.create_task(self._wake.wait()),
                           asyncio.create_task(stop.wait()), *running]
                await asyncio.wait(waiters, timeout=self.poll_seconds,
                                   return_when=asyncio.FIRST_COMPLETED)
                for w in waiters[:2]:
                    w.cancel()
                self._wake.clear()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        finally:
            self._loop = None
            await self.runtime.aclose()

    async def drain(self, horizon: float = 2.0, timeout: float = 60.0) -> int:
        """Run jobs until none is due within ``horizon`` seconds; returns how many attempts
        ran. For tests and one-shot runs."""
        done = 0
        async with asyncio.timeout(timeout):
            while True:
                jobs = await asyncio.to_thread(self._claim, self.capacity)
                if jobs:
                    await asyncio.gather(*(self._run(j) for j in jobs))
                    done += len(jobs)
                    continue
                due = await asyncio.to_thread(self._next_due)
                if due is None or (due - datetime.now(UTC)).total_seconds() > horizon:
                    return done
                await asyncio.sleep(0.1)

    def _next_due(self) -> datetime | None:
        """The earliest time a job may run: a quarantined target's jobs wait for its probe."""
        with self.iam.db.transaction() as conn:
            held = {t: h.quarantined_until for t, h in mapping.all_health(conn).items()
                    if h.state == mapping.QUARANTINED and h.quarantined_until}
            times = [outbox.next_due(conn, exclude=list(held))]
            times += [until for t, until in held.items()
                      if outbox.has_open_target_job(conn, t)]
            return min((t for t in times if t is not None), default=None)

    def close(self) -> None:
        self._unsubscribe()

    # ------------------------------------------------------------------ one job
    def _claim(self, limit: int) -> list[Job]:
        with self.iam.db.transaction() as conn:
            health = mapping.all_health(conn)
            now = datetime.now(UTC)
            held = [t for t, h in health.items()
                    if h.state == mapping.QUARANTINED and h.quarantined_until
                    and h.quarantined_until > now]
            probes = [t for t, h in health.items()
                      if h.state == mapping.QUARANTINED and t not in held]
            jobs = []
            for target in probes:  # one probe job per quarantined target that is due
                jobs += outbox.claim(conn, self.owner, 1, targets=[target])
            jobs += outbox.claim(conn, self.owner, max(0, limit - len(jobs)),
                                 exclude=held + probes)
            return jobs

    def _prepare(self, job: Job) -> Prepared:
        with self.iam.db.transaction() as conn:
            return executor.prepare(conn, self.iam, job)

    def _settle(self, prep: Prepared, outcome: executor.Outcome | None) -> JobState:
        with self.iam.db.transaction() as conn:
            return executor.settle(conn, prep, outcome)

    async def _run(self, job: Job) -> None:
        try:
            prep = await asyncio.to_thread(self._prepare, job)
            outcome = None
            if prep.target is not None and not (prep.skip or prep.wait or prep.fail):
                async with self.runtime.limit(prep.target):
                    outcome = await executor.perform(self.runtime.connector(prep.target), prep)
            state = await asyncio.to_thread(self._settle, prep, outcome)
        except Exception:  # the lease expires and another attempt follows
            log.exception("provisioning job %s failed in the engine", job.pk)
            return
        for listener in list(self.listeners):
            try:
                listener(job, state)
            except Exception:
                log.exception("provisioning listener failed")
