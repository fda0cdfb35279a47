"""One thread that stops the statements still running at their deadline.

A search in an unbegun transaction (``core.ambient``) runs alone, outside any transaction,
so PostgreSQL's ``SET LOCAL statement_timeout`` has nothing to hold to; setting the
session's and taking it back would be two round trips more than the search itself. Its
deadline is kept here instead, and the driver's cancel request stops it when it comes.

Deadlines are checked every ``GRANULARITY`` seconds at most, so the thread wakes a few
times a second under any load, not once per search; a search whose statement ended is
dropped from the watch as it leaves, and its entry when it comes due.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

log = logging.getLogger("mware_iam.store")

#: How late past its deadline a statement may be stopped.
GRANULARITY = 0.25


class Deadlines:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, Callable[[], None]]] = []  # a heap
        self._watched: set[int] = set()
        self._numbers = itertools.count()
        self._thread_pid = 0

    @contextlib.contextmanager
    def watching(self, deadline: float, stop: Callable[[], None]) -> Iterator[None]:
        """Run the block; ``stop()`` is called (once, from the thread) if it is still
        running at ``deadline`` (``time.monotonic()``)."""
        number = next(self._numbers)
        with self._cond:
            self._ensure_thread()
            heapq.heappush(self._due, (deadline, number, stop))
            self._watched.add(number)
            if self._due[0][1] == number:
                self._cond.notify()  # the thread sleeps until a later one, or for good
        try:
            yield
        finally:
            with self._cond:  # not while the thread stops it (it holds the lock then)
                self._watched.discard(number)

    def _ensure_thread(self) -> None:
        """A thread in this process (a serving process forked from one that had one does
        not have it)."""
        if self._thread_pid != os.getpid():
            self._thread_pid = os.getpid()
            threading.Thread(target=self._run, name="statement-deadlines",
                             daemon=True).start()

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._due and self._due[0][0] <= now:
                    _, number, stop = heapq.heappop(self._due)
                    if number in self._watched:
                        self._watched.discard(number)
                        try:
                            stop()
                        except Exception:  # the statement may have ended meanwhile
                            log.debug("stopping a statement past its deadline failed",
                                      exc_info=True)
                wait = max(self._due[0][0] - now, GRANULARITY) if self._due else None
                self._cond.wait(wait)


#: The process's deadlines.
DEADLINES = Deadlines()
