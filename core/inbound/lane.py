"""Threads that run calls for an event loop, taken in the order they were made: the SCIM
server's lanes for requests on SQL stores (see ``ScimApplication``). One thread runs them
one after another (SQLite); a few threads share one queue (PostgreSQL, MariaDB), so a
slow call holds one thread while the others go on.

``run_in_executor`` on a ``ThreadPoolExecutor`` does the same with more work per
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
    """Calls taken in the order they were made by ``threads`` threads, started at the
    first call (with one thread, each call ends before the next begins)."""

    def __init__(self, name: str, finish: Callable[[], None] | None = None,
                 threads: int = 1) -> None:
        """``finish``: called in each of the lane's threads when it stops (to close what
        that thread kept)."""
        if threads < 1:
            raise ValueError(f"a lane needs at least one thread, not {threads}")
        self.name = name
        self.threads = threads
        self._finish = finish
        self._queue: SimpleQueue[_Call | None] = SimpleQueue()
        self._started: list[threading.Thread] = []

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``fn(*args)`` in the lane's thread; its result or exception comes in the future
        (of the running event loop). Cancelling the future does not stop a call that has
        begun; its outcome is then dropped."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._started:
            self._started = [
                threading.Thread(target=self._work, daemon=True,
                                 name=self.name if self.threads == 1 else f"{self.name}-{i}")
                for i in range(1, self.threads + 1)]
            for thread in self._started:
                thread.start()
        self._queue.put((loop, future, fn, args))
        return future

    def close(self) -> None:
        """Finish the calls already made, then stop the threads."""
        for _ in self._started:
            self._queue.put(None)
        for thread in self._started:
            thread.join()
        self._started = []

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
