"""Workers: asyncio tasks that lease jobs from the outbox and run them.

A running pool works on a thread of its own with its own event loop (``run``), so that its
work never holds up the loop that started it (the SCIM server's, the console's). Network
work runs in that loop, one task per job. Database work runs in the same loop, between the
requests, in steps: each step records every attempt that ended since the last one and
leases new jobs in one transaction, then reads what those need in another. Batching keeps
the database cost per job low, and a single writer per pool means its writes never wait
for each other (SQLite has one writer at a time). One thread for both matters: with the
steps on a second thread, every statement handed the GIL back and forth (about ten thread
switches per job), which cost more CPU than the statements. Jobs written in this process
wake the pool at once; on PostgreSQL so do jobs written by any process (LISTEN/NOTIFY,
``listener.py``), elsewhere they are picked up within ``poll_seconds``.
A quarantined or throttled target gets no jobs until its probe time, then one; with no job
to send, a quarantined target's probe is a connection test, so the breaker's state stays true
with an empty queue. When a target's breaker closes, its retrying jobs run at once instead of
waiting out their backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection

from connectors.base import ConnectorError
from core import config_versions, idps
from core.errors import IamError, StoreUnavailable
from core.event_loops import new_event_loop
from core.identity.events import IdentityEvent, Phase
from core.provisioning import breaker, executor, outbox
from core.provisioning.executor import Outcome, Prepared
from core.provisioning.host import Host
from core.provisioning.listener import LISTENING_POLL_SECONDS, JobListener
from core.provisioning.outbox import Job, JobState
from core.provisioning.schedule import CHECK_SECONDS, run_schedule
from core.provisioning.target_clients import TargetRuntime
from core.provisioning.targets import Target, build_target, split_key

log = logging.getLogger(__name__)

#: Called after every attempt with (job, resulting state): live views subscribe here.
Listener = Callable[[Job, JobState], None]
#: An attempt that ended: what was prepared, and what the target answered (None when
#: there was nothing to send).
Finished = tuple[Prepared, Outcome | None]
T = TypeVar("T")


def _freeze_the_heap() -> None:
    """Collect the cycles there are, then leave what the process holds now (modules,
    configuration, the application's objects) out of every later collection.

    The pool's jobs keep objects alive across the collector's young generations (a batch
    in flight), which pushes them into the oldest one, and a full collection follows for
    each quarter of the oldest generation's size pushed in: one walked the whole heap,
    some 150,000 objects and 70 ms, every thousand jobs (a twentieth of a job's CPU).
    Frozen objects are still freed by reference counting; only a cycle among them that
    becomes garbage later is kept (it was alive when the pool started).
    """
    gc.collect()
    gc.freeze()


def _run_forever(loop: asyncio.AbstractEventLoop) -> None:
    """The pool's thread: its loop, until ``run``'s work is done."""
    try:
        loop.run_forever()
    finally:
        loop.close()


class WorkerPool:
    def __init__(self, host: Host, written: outbox.WrittenFlag, capacity: int = 128,
                 poll_seconds: float = 0.5) -> None:
        self.host = host
        #: Taken after each commit here: set when a job was written (by any pool's planner).
        self.written = written
        self.capacity = capacity
        self.poll_seconds = poll_seconds
        #: How often ``run`` looks for a due scheduled reconciliation (``schedule``).
        self.schedule_seconds = CHECK_SECONDS
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.runtime = TargetRuntime()
        self.listeners: list[Listener] = []
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Attempts that ended and wait to be written by the next database step.
        self._finished: list[Finished] = []
        #: When the oldest of them ended (``time.monotonic()``).
        self._finished_at = 0.0
        #: Attempts being sent now (``_perform``).
        self._sending = 0
        #: The one connection the pool's transactions use (``_transaction``).
        self._conn: Connection | None = None
        #: Where the database steps run (``_in_db``): a thread of their own on a server
        #: database, none (the pool's loop) on SQLite.
        self._db = None if host.db.dialect == "sqlite" else ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="mware-iam-outbox")
        #: Targets whose breaker was open (retrying or quarantined) at the last lease.
        self._unhealthy: set[str] = set()
        #: Quarantined targets due for a probe with no job to carry it (``_claim``), and
        #: those whose connection-test probe runs now.
        self._probe_due: list[str] = []
        self._probing: set[str] = set()
        #: Targets built from the identity providers at ``config_versions.IDPS`` version
        #: ``_targets_version`` (rebuilt when any process changes one).
        self._targets: dict[str, Target] = {}
        self._targets_version = -1
        self._unsubscribe = host.bus.subscribe(Phase.COMMITTED, self._on_commit)

    # ------------------------------------------------------------------ waking
    def _on_commit(self, _event: IdentityEvent) -> None:
        """A change committed here: look at the queue now if it wrote a job (the others,
        e.g. of an application without targets, leave nothing to do)."""
        if self._loop is not None and self.written.take():
            self.wake()  # a pool not running (drain) leaves the flag to one that is

    def wake(self) -> None:
        """Thread-safe: look for work now instead of at the next poll."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # ------------------------------------------------------------------ running
    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; in-flight jobs finish (and are recorded) first.

        The work runs on a thread of its own, with its own event loop (uvloop's where it is
        installed); this coroutine only waits for it. Listeners are called in that thread.
        """
        _freeze_the_heap()
        loop = new_event_loop()
        halt = asyncio.Event()  # waited on in the pool's loop only
        done = asyncio.run_coroutine_threadsafe(self._run(halt), loop)
        done.add_done_callback(lambda _: loop.stop())  # in the pool's thread
        threading.Thread(target=_run_forever, args=(loop,), name="mware-iam-workers",
                         daemon=True).start()
        work = asyncio.wrap_future(done)
        stopping = asyncio.ensure_future(stop.wait())
        waiting: list[asyncio.Future[Any]] = [work, stopping]
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            with contextlib.suppress(RuntimeError):  # the pool's loop has ended already
                loop.call_soon_threadsafe(halt.set)
            await asyncio.shield(work)

    async def _run(self, stop: asyncio.Event) -> None:
        """``run``'s work, in the pool's own loop."""
        self._loop = asyncio.get_running_loop()
        wake = self._wake = asyncio.Event()
        running: set[asyncio.Task[None]] = set()
        stopping = asyncio.create_task(stop.wait())
        stopping.add_done_callback(lambda _: wake.set())
        scheduled = asyncio.create_task(run_schedule(self.host, stop, self.schedule_seconds))
        listener = JobListener(self.host.db.engine, self.wake) \
            if self.host.db.dialect == "postgresql" else None
        if listener is not None:
            listener.start()
        try:
            while not stop.is_set():
                await self._step(running, claim=True)
                if self._finished and not running:
                    continue  # jobs with nothing to send: record them right away
                # woken by new work, a job that ended (``_perform``), or ``stop``
                poll = self.poll_seconds
                if listener is not None and listener.listening.is_set():
                    poll = max(poll, LISTENING_POLL_SECONDS)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), poll)
                wake.clear()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
            await self._step(running, claim=False)
        finally:
            if listener is not None:
                await asyncio.to_thread(listener.close)
            stopping.cancel()
            scheduled.cancel()  # a run in its thread ends on its own
            with contextlib.suppress(asyncio.CancelledError):
                await scheduled
            self._loop = None
            await self.runtime.aclose()
            self._disconnect()  # in the thread that used it

    async def drain(self, horizon: float = 2.0, timeout: float = 60.0) -> int:
        """Run jobs until none is due within ``horizon`` seconds; returns how many attempts
        ran. For tests and one-shot runs."""
        done = 0
        running: set[asyncio.Task[None]] = set()
        async with asyncio.timeout(timeout):
            while True:
                done += await self._step(running, claim=True)
                if running:
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    continue
                if self._finished:
                    continue
                due = await self._in_db(self._next_due)
                if due is None or (due - datetime.now(UTC)).total_seconds() > horizon:
                    return done
                await asyncio.sleep(0.1)

    def close(self) -> None:
        self._unsubscribe()
        self._disconnect()
        if self._db is not None:
            self._db.shutdown(wait=True)

    # ------------------------------------------------------------------ the database
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A transaction on the database thread's own connection, opened on first use and
        dropped after any failure (the next step connects again)."""
        if self._conn is None:
            self._conn = self.host.db.connect()
        try:
            with self.host.db.transaction(on=self._conn) as conn:
                yield conn
        except BaseException:
            self._disconnect()
            raise

    def _disconnect(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):  # a broken connection: nothing to keep
                conn.close()

    # ------------------------------------------------------------------ one step
    async def _in_db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run database work: in this loop on SQLite, whose statements are this
        process's own CPU (on a second thread each statement handed the GIL back and
        forth, which cost more than the statement); in the pool's database thread on
        PostgreSQL and MariaDB, whose round trips are waits that the loop spends on the
        network meanwhile."""
        if self._db is None:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def _step(self, running: set[asyncio.Task[None]], claim: bool) -> int:
        """Record the attempts that ended, lease and prepare new jobs, start them; returns
        how many attempts were recorded.

        Jobs are leased in batches (when half the capacity is free, or none runs), and
        the outcomes of the jobs that ended meanwhile are recorded in the same
        transaction; while jobs run, outcomes are not recorded alone unless half the
        capacity's worth waits or the oldest has waited ``poll_seconds``. So one database
        step serves many jobs, and an outcome is still written within about a poll.
        """
        half = max(1, self.capacity // 2)
        free = self.capacity - len(running)
        if not claim or (running and free < half):
            free = 0
        overdue = time.monotonic() - self._finished_at >= self.poll_seconds
        if free <= 0 and (not self._finished or (
                running and len(self._finished) < half and not overdue)):
            return 0
        finished, self._finished = self._finished, []
        settled, jobs, kept = await self._in_db(self._settle_and_lease, finished, free)
        if kept:  # the database is busy or unreachable: record them at the next step
            if not self._finished:
                self._finished_at = time.monotonic()
            self._finished[:0] = kept
            await asyncio.sleep(self.poll_seconds)
        for job, state in settled:
            self._notify(job, state)
        preps: list[Prepared] = []
        if jobs:
            # the answers that came meanwhile are read first, and the jobs leased before
            # take their connections: a step's two halves hold the loop one at a time
            await asyncio.sleep(0)
            preps = await self._in_db(self._prepare, jobs)
        for target in self._probe_due:
            if target not in self._probing:
                self._probing.add(target)
                task = asyncio.create_task(self._probe(target))
                running.add(task)
                task.add_done_callback(running.discard)
        for prep in preps:
            if prep.target is None or prep.skip or prep.wait or prep.fail:
                self._ended(prep, None)  # nothing to send
            else:
                self._sending += 1
                task = asyncio.create_task(self._perform(prep))
                running.add(task)
                task.add_done_callback(running.discard)
        return len(settled)

    def _settle_and_lease(self, finished: list[Finished], limit: int) -> tuple[
            list[tuple[Job, JobState]], list[Job], list[Finished]]:
        """Write the outcomes and lease up to ``limit`` new jobs, in one transaction.

        Returns what was recorded, the leased jobs, and the outcomes kept for the next
        step because the database is busy (SQLite locked) or unreachable.
        """
        try:
            with self._transaction() as conn:
                states = executor.settle_many(conn, finished)
                jobs = self._claim(conn, limit) if limit > 0 else []
        except StoreUnavailable as exc:  # SQLite locked past its busy timeout, or down
            log.warning("provisioning: %d outcomes wait: %s", len(finished), exc)
            return [], [], finished
        except Exception:
            log.exception("provisioning: recording %d outcomes and leasing jobs failed; "
                          "recording them one by one", len(finished))
            return self._settle_each(finished), [], []
        return [(prep.job, state) for (prep, _), state in zip(finished, states, strict=True)
                ], jobs, []

    def _prepare(self, jobs: list[Job]) -> list[Prepared]:
        """Read what the leased jobs need, in one (read-only) transaction."""
        try:
            with self._transaction() as conn:
                version = config_versions.read(conn, config_versions.IDPS)
                if version != self._targets_version:
                    self._targets, self._targets_version = {}, version
                return executor.prepare_many(conn, self.host, jobs, self._targets)
        except Exception:
            return self._prepare_each(jobs)

    def _prepare_each(self, jobs: list[Job]) -> list[Prepared]:
        """Prepare jobs one by one, so that one that cannot be prepared holds back no
        other; its lease expires and another attempt follows."""
        preps = []
        for job in jobs:
            try:
                with self._transaction() as conn:
                    preps.append(executor.prepare(conn, self.host, job))
            except Exception:
                log.exception("provisioning job %s: preparing it failed", job.pk)
        return preps

    def _settle_each(self, finished: list[Finished]) -> list[tuple[Job, JobState]]:
        settled = []
        for prep, outcome in finished:
            try:
                with self._transaction() as conn:
                    settled.append((prep.job, executor.settle(conn, prep, outcome)))
            except Exception:  # the lease expires and another attempt follows
                log.exception("provisioning job %s: recording its outcome failed",
                              prep.job.pk)
        return settled

    def _next_due(self) -> datetime | None:
        """The earliest time a job may run: a quarantined target's jobs wait for its probe."""
        with self._transaction() as conn:
            held = {t: h.quarantined_until for t, h in breaker.all_health(conn).items()
                    if h.state in breaker.HELD and h.quarantined_until}
            times = [outbox.next_due(conn, exclude=list(held))]
            times += [until for t, until in held.items()
                      if outbox.has_open_target_job(conn, t)]
            return min((t for t in times if t is not None), default=None)

    def _claim(self, conn: Connection, limit: int) -> list[Job]:
        health = breaker.all_health(conn)
        now = datetime.now(UTC)
        unhealthy = {t for t, h in health.items() if h.state != breaker.BreakerState.HEALTHY}
        for target in self._unhealthy - unhealthy:  # recovered: its retries run now
            outbox.hurry(conn, target)
        self._unhealthy = unhealthy
        held = [t for t, h in health.items()
                if h.state in breaker.HELD and h.quarantined_until
                and h.quarantined_until > now]
        probes = [t for t, h in health.items()
                  if h.state in breaker.HELD and t not in held]
        jobs: list[Job] = []
        self._probe_due = []
        for target in probes:  # one probe job per held target that is due
            probe = outbox.claim(conn, self.owner, 1, targets=[target])
            if not probe and health[target].state == breaker.BreakerState.QUARANTINED:
                self._probe_due.append(target)  # nothing to carry it: test the connection
            jobs += probe
        jobs += outbox.claim(conn, self.owner, max(0, limit - len(jobs)),
                             exclude=held + probes)
        return jobs

    async def _probe(self, key: str) -> None:
        """Probe a quarantined target that has no job due: a connection test; its answer
        closes the breaker or keeps the target quarantined until the next probe."""
        try:
            try:
                target = await self._in_db(self._target, key)
            except IamError:
                return  # removed meanwhile: its status says so
            error: str | None = None
            try:
                async with self.runtime.lane(target) as connector:
                    await connector.test_connection()
            except ConnectorError as exc:
                error = f"probe: {exc.message}"
            except Exception as exc:  # a connector bug is a failed probe, not a dead pool
                error = f"probe: the connector failed unexpectedly: {exc!r}"
            await self._in_db(self._settle_probe, target, error)
        except Exception:
            log.exception("provisioning: probing %s failed", key)
        finally:
            self._probing.discard(key)

    def _target(self, key: str) -> Target:
        idp, connector_type = split_key(key)
        with self._transaction() as conn:
            return build_target(idps.get(conn, self.host.secrets, idp), connector_type)

    def _settle_probe(self, target: Target, error: str | None) -> None:
        with self._transaction() as conn:
            if error is None:
                breaker.record_success(conn, target.key, 0)
            else:
                breaker.record_failure(
                    conn, target.key, error, threshold=int(target.prop("quarantine-threshold")),
                    probe_after=timedelta(seconds=int(target.prop("probe-seconds"))),
                    counts_for_breaker=True, attempt=False)

    # ------------------------------------------------------------------ one job
    async def _perform(self, prep: Prepared) -> None:
        assert prep.target is not None
        try:
            async with self.runtime.lane(prep.target) as connector:
                outcome = await executor.perform(connector, prep)
            self._ended(prep, outcome)
        except Exception:  # the lease expires and another attempt follows
            log.exception("provisioning job %s failed in the engine", prep.job.pk)
        finally:
            self._sending -= 1
            if self._wake is not None and self._step_due():
                self._wake.set()

    def _step_due(self) -> bool:
        """Whether a database step has work now that an attempt ended: half the capacity
        is free, half of it waits to be recorded, or the oldest outcome has waited
        ``poll_seconds`` (``_step``'s own tests). Waking the loop for less cost more than
        the step it then skipped, once per job."""
        half = max(1, self.capacity // 2)
        return (self.capacity - self._sending >= half or len(self._finished) >= half
                or time.monotonic() - self._finished_at >= self.poll_seconds)

    def _ended(self, prep: Prepared, outcome: Outcome | None) -> None:
        """An attempt ended: its outcome waits for the next database step."""
        if not self._finished:
            self._finished_at = time.monotonic()
        self._finished.append((prep, outcome))

    def _notify(self, job: Job, state: JobState) -> None:
        for listener in list(self.listeners):
            try:
                listener(job, state)
            except Exception:
                log.exception("provisioning listener failed")
