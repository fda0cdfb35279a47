"""The provisioning workers a console runs itself (unless ``--no-workers``).

A ``WorkerPool`` is asyncio: it runs as an async worker on the app's event loop, so adding
a user in the console provisions it without a separate ``mware-iam worker``. Every attempt
it finishes is posted to the app as a :class:`~tui.messages.JobAttempted` message.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from tui.messages import JobAttempted

if TYPE_CHECKING:
    from core.iam import Iam
    from core.provisioning.outbox import Job, JobState
    from core.provisioning.workers import WorkerPool

#: How long quitting waits for the attempts in flight before it abandons them (their lease
#: then expires and another worker takes them over).
STOP_SECONDS = 10.0


class ConsoleWorkers:
    def __init__(self, app: App[Any], iam: Iam) -> None:
        self._app = app
        self._iam = iam
        self.pool: WorkerPool | None = None
        self._stop = asyncio.Event()
        self._worker: Worker[None] | None = None

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.is_finished

    def start(self) -> None:
        pool = self._iam.provisioning.worker_pool()
        pool.listeners.append(self._attempted)
        self.pool = pool
        self._worker = self._app.run_worker(
            pool.run(self._stop), name="provisioning-workers", group="provisioning-workers",
            description="Provisioning workers", exit_on_error=False)

    def _attempted(self, job: Job, state: JobState) -> None:
        # Called in whichever thread runs the pool (today: the app's loop); post_message is
        # thread-safe, so this holds if the pool ever moves to a thread of its own.
        self._app.post_message(JobAttempted(job, state))

    async def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Let the attempts in flight finish (up to ``timeout``), then stop."""
        self._stop.set()
        if self._worker is not None and not self._worker.is_finished:
            with contextlib.suppress(TimeoutError, WorkerCancelled, WorkerFailed):
                await asyncio.wait_for(self._worker.wait(), timeout)
        self.close()

    def close(self) -> None:
        """Stop at once (idempotent); an unfinished attempt's lease expires."""
        self._stop.set()
        if self._worker is not None and not self._worker.is_finished:
            self._worker.cancel()
        if self.pool is not None:
            self.pool.close()
            self.pool = None
