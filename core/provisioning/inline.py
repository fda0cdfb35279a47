"""Blocking targets: run their jobs inside the write's transaction, before it commits.

The connector call runs on a private event loop thread (the identity service is
synchronous); reading and writing the outbox stays in the caller's thread, on the ambient
transaction. With the application's ``fail_on_blocking_failure``, a failure refuses the
write: remote objects this write created are deleted again (never ones that existed before
and were adopted), and the whole transaction, jobs included, rolls back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from connectors.base import ConnectorError
from core.apps import Application
from core.errors import OperationRefused
from core.provisioning import executor, outbox
from core.provisioning.executor import Outcome, Prepared
from core.provisioning.host import Host
from core.provisioning.outbox import DONE, Job, JobState, Operation
from core.provisioning.target_clients import TargetRuntime

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
        return await executor.perform(self.loop.runtime.connector(prep.target), prep)

    def execute(self, pks: Sequence[int], stop_on_failure: bool = False) -> list[Result]:
        """Run the given jobs now, in the caller's (ambient) transaction."""
        results: list[Result] = []
        with self.host.db.transaction() as conn:
            for job in outbox.claim(conn, "inline", len(pks), pks=pks):
                prep = executor.prepare(conn, self.host, job)
                outcome = None
                if prep.target is not None and not (prep.skip or prep.wait or prep.fail):
                    outcome = self.loop.run(self._perform(prep))
                state = executor.settle_many(conn, [(prep, outcome)])[0]
                results.append(Result(outbox.get(conn, job.pk), state, prep, outcome))
                if stop_on_failure and state not in DONE:
                    break
        return results

    def __call__(self, pks: Sequence[int], app: Application) -> None:
        """The planner's hook for blocking targets."""
        results = self.execute(pks, stop_on_failure=app.fail_on_blocking_failure)
        failed = [r for r in results if r.state not in DONE]
        if failed and app.fail_on_blocking_failure:
            self._compensate([r for r in results if r.created])
            job = failed[0].job
            raise OperationRefused(
                f"provisioning to {job.target} failed, so the change was not made: "
                f"{job.last_error}")

    def _compensate(self, created: Sequence[Result]) -> None:
        """Undo the creates of this write, newest first; best effort, never adopted ones."""
        for result in reversed(created):
            prep = dataclasses.replace(result.prep, remote_id=result.outcome.remote.id)  # type: ignore[union-attr]
            assert prep.target is not None
            connector = self.loop.runtime.connector(prep.target)
            try:
                if prep.job.operation is Operation.UPSERT_USER and prep.user is not None:
                    self.loop.run(connector.delete_user(str(prep.remote_id), prep.user))
                elif prep.job.operation is Operation.UPSERT_GROUP and prep.group is not None:
                    self.loop.run(connector.delete_group(str(prep.remote_id), prep.group))
            except ConnectorError:
                pass  # the refusal still stands; the orphan is in the attempt log

    def close(self) -> None:
        self.loop.close()

