"""``serve``: in one process, or (``--processes N``) a parent that forks N serving processes
and keeps them running. :func:`serve` is the one call the CLI makes.

Each child binds the same host:port with ``SO_REUSEPORT`` (the kernel spreads new
connections over the children's listening sockets), opens the deployment itself and runs
the HTTP server and a provisioning worker pool (``server.run_until_signalled``). The parent
holds the address bound without listening (so the port stays ours between restarts and
gets no connections itself), serves nothing and opens no database connection.

- A child that exits while the parent is not stopping is started again: at once if it
  ran for ``STABLE_SECONDS``, else after a backoff doubling from ``FIRST_BACKOFF`` up to
  ``MAX_BACKOFF`` (a child that cannot start does not spin).
- SIGTERM or SIGINT is passed to every child, which stops accepting, finishes the requests
  and the jobs in flight (``run_until_signalled``) and exits; the parent then exits. A
  second signal is passed on too (the children then stop at once).
- Each serving process runs on a core of its own (``pin_to_core``; the i-th child on the
  i-th core, a restarted one on its predecessor's), unless ``serve --no-pin``.
- Metrics hook: before the first fork the parent points ``PROMETHEUS_MULTIPROC_DIR`` at a
  fresh directory under the home (prometheus-client's multiprocess mode: each child
  writes its own files there), and calls ``multiprocess.mark_process_dead(pid)`` when a
  child exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from prometheus_client import multiprocess

from core import metrics
from core.event_loops import run_on_uvloop
from core.http.listening import listen
from core.http.server import run_until_signalled
from core.iam import Iam
from core.inbound import Limits

log = logging.getLogger("mware_iam.serve")

#: A child that ran this long before exiting is restarted at once.
STABLE_SECONDS = 10.0
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
#: How often the parent looks for exited children (and due restarts).
TICK_SECONDS = 0.1
#: Where the children's metric files go, under the home (emptied at every start).
METRICS_DIR = "metrics"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class _Slot:
    """One of the N children: its number (a restarted child keeps it), its pid (0 while
    none runs) and its restart backoff."""

    index: int
    pid: int = 0
    started: float = 0.0
    quick_exits: int = 0
    restart_at: float = 0.0


@dataclass(frozen=True)
class Serving:
    """What ``serve`` runs: the address, the number of processes (None: the default for
    the system database), each process's worker pool, TLS and the SCIM limits."""

    host: str
    port: int
    processes: int | None
    capacity: int
    poll: float
    tls: tuple[str, str] | None = None
    limits: Limits | None = None
    #: Each serving process on a core of its own (:func:`pin_to_core`).
    pin: bool = True


def serve(open_iam: Callable[[], Iam], close_iam: Callable[[], None], serving: Serving,
          prepare: Callable[[Iam], None] | None = None) -> None:
    """Serve HTTP and run the workers until SIGINT/SIGTERM, in this process or in
    ``serving.processes`` forked ones under a :class:`Supervisor`.

    ``open_iam`` opens the deployment (again in each child, after ``close_iam`` closed the
    parent's: no connection may be shared by forked processes). ``prepare`` runs once with
    the parent's deployment after the address is bound (a port in use fails before it).
    The default number of processes is the number of cores on PostgreSQL or MariaDB, 1 on
    SQLite (one writer at a time).
    """
    iam = open_iam()
    processes = serving.processes or (1 if iam.db.dialect == "sqlite" else os.cpu_count() or 1)
    sock = listen(serving.host, serving.port, reuse_port=processes > 1,
                  listening=processes == 1)
    if prepare is not None:
        prepare(iam)
    run = serving.capacity, serving.poll
    if processes == 1:
        if serving.pin:
            pin_to_core(0)
        run_on_uvloop(run_until_signalled(iam, *run, sock, serving.tls, serving.limits))
        return
    host, port = sock.getsockname()[:2]  # port 0: the one the kernel chose, for all

    def child(index: int) -> None:
        if serving.pin:
            pin_to_core(index)
        child_iam = open_iam()
        try:
            run_on_uvloop(run_until_signalled(child_iam, *run, listen(host, port, reuse_port=True),
                                              serving.tls, serving.limits))
        finally:
            close_iam()

    metrics_dir(iam.home.path)
    close_iam()
    log.info("listening on %s:%d with %d processes", host, port, processes)
    try:
        Supervisor(processes, child).run()
    finally:
        sock.close()


def pin_to_core(index: int) -> int | None:
    """Keep this process, every thread it has and every one it starts, on one core: the
    ``index``-th of those it may run on (modulo their number). The core, or None where
    there is nothing to choose (one core, or a system without CPU affinity).

    A serving process's Python runs one thread at a time (the interpreter lock), and its
    threads hand the lock to each other several times a request (the event loop, the
    lanes' threads at each database round trip). Across cores each handover wakes a
    thread on the other one; on one core it is a plain switch. On PostgreSQL, one process:
    15 to 30 % less CPU per request with PostgreSQL's, and more requests/s
    (bench/RESULTS.md, 2026-12-04)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None
    core = allowed[index % len(allowed)]
    for thread in os.listdir("/proc/self/task"):  # the affinity is each thread's own
        with contextlib.suppress(ProcessLookupError):  # one that just ended
            os.sched_setaffinity(int(thread), {core})
    log.info("serving process %d on core %d", os.getpid(), core)
    return core


def metrics_dir(home: Path) -> Path:
    """A fresh, empty directory for the children's metric files, counted into from now on."""
    path = home / METRICS_DIR
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700)
    metrics.count_in_files(path)
    return path


class Supervisor:
    """Runs ``child(index)`` in ``count`` forked processes until SIGTERM/SIGINT (see above).

    ``child`` runs in the forked process (``index``: its slot, 0 to count - 1, the same
    for a restarted one) and returns when it stopped; the process then
    exits 0 (1 if it raised). The parent must hold no open database connection or thread
    when :meth:`run` forks.
    """

    def __init__(self, count: int, child: Callable[[int], None]) -> None:
        self.slots = [_Slot(index) for index in range(count)]
        self.child = child
        self._signals: list[signal.Signals] = []

    def run(self) -> None:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in self.slots:
                self._start(slot)
            log.info("supervisor %d: %d serving processes", os.getpid(), len(self.slots))
            while not self._signals:
                self._reap()
                now = time.monotonic()
                for slot in self.slots:
                    if slot.pid == 0 and slot.restart_at <= now and not self._signals:
                        self._start(slot)
                time.sleep(TICK_SECONDS)
            self._stop()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _on_signal(self, signum: int, _frame: object) -> None:
        sig = signal.Signals(signum)
        self._signals.append(sig)
        for slot in self.slots:  # pass it on at once: a second one means "stop now"
            if slot.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, sig)

    def _start(self, slot: _Slot) -> None:
        # A stop signal arriving during the fork waits until the child is in ``slots``
        # (so the handler passes it on) and, in the child, until its own handling is set.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                self._run_child(slot.index)
            slot.pid, slot.started = pid, time.monotonic()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        log.info("serving process %d started", pid)

    def _run_child(self, index: int) -> NoReturn:
        """In the forked process: run ``child(index)`` and exit (never back into the
        loop)."""
        code = 1
        try:
            for s in STOP_SIGNALS:
                signal.signal(s, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            self.child(index)
            code = 0
        except BaseException:
            log.exception("serving process %d failed", os.getpid())
        finally:
            logging.shutdown()
            os._exit(code)

    def _reap(self, block: bool = False) -> bool:
        """Collect exited children; whether any was collected."""
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return False
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
        for slot in self.slots:
            if slot.pid == pid:
                self._exited(slot, pid, status)
        return True

    def _exited(self, slot: _Slot, pid: int, status: int) -> None:
        slot.pid = 0
        ran = time.monotonic() - slot.started
        how = (
            f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
            if os.WIFSIGNALED(status)
            else f"exited with {os.WEXITSTATUS(status)}"
        )
        if self._signals:
            log.info("serving process %d %s", pid, how)
            return
        slot.quick_exits = 0 if ran >= STABLE_SECONDS else slot.quick_exits + 1
        delay = (
            0.0
            if slot.quick_exits == 0
            else min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (slot.quick_exits - 1))
        )
        slot.restart_at = time.monotonic() + delay
        log.warning(
            "serving process %d %s after %.1f s: starting another in %.1f s", pid, how, ran, delay
        )

    def _stop(self) -> None:
        """Wait for every child to finish its requests and jobs and exit."""
        log.info(
            "%s received: the serving processes finish the requests and jobs in "
            "flight (again to stop at once)",
            self._signals[0].name,
        )
        while any(slot.pid for slot in self.slots):
            if not self._reap(block=True):
                break
        log.info("supervisor %d stopped", os.getpid())
