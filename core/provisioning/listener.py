"""On PostgreSQL, a worker pool wakes when a job is written by any process: a thread
holds its own connection LISTENing on ``outbox.CHANNEL`` (which the writing transaction
NOTIFYs at its commit) and wakes the pool on each notification. The pool still looks at
the queue every ``LISTENING_POLL_SECONDS`` for what no notification announces: retries
whose backoff ended, leases of workers that died.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from core.provisioning.outbox import CHANNEL

log = logging.getLogger(__name__)

#: How often a listening pool still looks at the queue (retries due, expired leases).
LISTENING_POLL_SECONDS = 2.0
#: How often the thread checks whether it should stop (and reconnects after a failure).
CHECK_SECONDS = 0.5
#: The least time between two wakes: the notifications of a burst of commits (a POST
#: each, in every serving process) wake the pool once per gap, so it leases them in
#: batches instead of racing every other pool for each job alone.
WAKE_GAP_SECONDS = 0.05


class JobListener:
    """LISTEN on ``CHANNEL`` over ``engine``'s database; ``wake()`` on notifications (at
    most once per ``WAKE_GAP_SECONDS``)."""

    def __init__(self, engine: Engine, wake: Callable[[], None]) -> None:
        self.engine = engine
        self.wake = wake
        #: Set while the connection listens: the pool may poll less often.
        self.listening = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mware-iam-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(CHECK_SECONDS * 4)

    def _connect(self) -> Any:
        import psycopg  # PostgreSQL's driver: only a PostgreSQL deployment reaches here

        args, params = self.engine.dialect.create_connect_args(self.engine.url)
        conn = psycopg.connect(*args, **{**params, "autocommit": True})
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with contextlib.closing(self._connect()) as conn:
                    self.wake()  # jobs written before the LISTEN took effect
                    self.listening.set()  # after that wake: from here on, only notifications
                    while not self._stop.is_set():
                        if list(conn.notifies(timeout=CHECK_SECONDS, stop_after=1)):
                            self._wake_in_gaps(conn)
            except Exception as exc:  # the database went away: poll until it is back
                if self.listening.is_set():
                    log.warning(
                        "provisioning: LISTEN connection lost (%s); polling",
                        str(exc).splitlines()[0] if str(exc) else exc,
                    )
                self.listening.clear()  # the pool polls at its own pace meanwhile
                self._stop.wait(CHECK_SECONDS * 4)
            finally:
                self.listening.clear()

    def _wake_in_gaps(self, conn: Any) -> None:
        """Wake the pool, then once per ``WAKE_GAP_SECONDS`` while notifications came in
        the gap before (those that did are read and dropped together)."""
        notified = True
        while notified and not self._stop.is_set():
            self.wake()
            self._stop.wait(WAKE_GAP_SECONDS)
            notified = bool(list(conn.notifies(timeout=0.001)))
