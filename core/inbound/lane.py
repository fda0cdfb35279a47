"""One thread that runs calls one after another for an event loop: the SCIM server's lane
for requests on SQLite (see ``ScimApplication``).

``run_in_executor`` on a one-thread ``ThreadPoolExecutor`` does the same with more work per
call on the event loop's thread: a concurrent future with its condition, the executor's
idle-thread semaphore, a work item, and an asyncio future chained to the concurrent one by
callbacks both ways (together some 5 % of a SCIM request's CPU). Here a call is one queue
item, and its outcome is set on an asyncio future from the loop's own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")

_Call = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any],
              tuple[Any, ...]]


class Lane:
    """Calls run in the order they were made, in one thread started at the first call."""

    def __init__(self, name: str, finish: Callable[[], None] | None = None) -> None:
        """``finish``: called in the lane's thread when it stops (to close what it kept)."""
        self.name = name
        self._finish = finish
        self._queue: SimpleQueue[_Call | None] = SimpleQueue()
        self._thread: threading.Thread | None = None

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``fn(*args)`` in the lane's thread; its result or exception comes in the future
        (of the running event loop). Cancelling the future does not stop a call that has
        begun; its outcome is then dropped."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
            self._thread.start()
        self._queue.put((loop, future, fn, args))
        return future

    def close(self) -> None:
        """Finish the calls already made, then stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            loop, future, fn, args = item
            try:
                outcome: tuple[Any, BaseException | None] = (fn(*args), None)
            except BaseException as exc:  # handed to the caller, as an executor does
                outcome = (None, exc)
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, *outcome)
        if self._finish is not None:
            self._finish()


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
