"""The shared harness of the outbound benchmarks: our worker pool draining N queued jobs
into a peer, next to a bare httpx client sending the same requests, side by side.

Each round, for one connector kind (``Kind``):

1. Set-up, not timed: a fresh home with the resident application provisioning to a fresh
   peer (its own process, or a fresh tenant of one), N users imported with no pool
   running, so their N jobs wait in the outbox; the requests the ceiling sends are read
   from ``provisioning preview`` of each user (the exact bodies our connector builds),
   token requests left out.
2. (a) ceiling: a bare ``httpx.AsyncClient`` with the connector's concurrency gets one
   token when the kind needs one, then sends those requests to another fresh peer.
   Timed from its first request to its last answer.
3. (b) ours: a ``WorkerPool`` (as in ``mware-iam serve``) starts on the queued jobs.
   Timed from the pool's start to the moment the last outcome is recorded in the outbox
   (the pool's own listener counts them: no polling), which is stricter than the last
   answer: recording is part of our job.

(a) and (b) alternate in order from round to round, both on uvloop's event loop (the one
``mware-iam serve`` and ``mware-iam worker`` run the pool on). CPU per job is taken over
the timed window only: this process (``time.process_time``: the bare client, or the
pool's event loop and database threads) and the peer's process (``/proc``).
``--profile FILE`` runs py-spy (``pip install py-spy``; not a project dependency) over
(b)'s window: a flame graph when FILE ends in ``.svg``, collapsed stacks otherwise. On a
loaded machine its ``--gil`` samples follow wall time (a thread holding the GIL while the
kernel runs another process is still sampled), so read CPU from the ms/job figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvloop
from common import machine_facts, process_cpu, table
from common import record as record_ratios
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the peers of the test suite

from core.iam import Iam  # noqa: E402
from core.identity.events import Initiator  # noqa: E402
from core.identity.service import ImportRow  # noqa: E402
from core.provisioning.outbox import Job, JobState  # noqa: E402
from core.schema import prov_jobs  # noqa: E402

MWARE_IAM = Path(sys.executable).with_name("mware-iam")
PY_SPY = Path(sys.executable).with_name("py-spy")
DEADLINE = 1800.0  # seconds: a safety net for one run, not a target
#: What follows this line in a results file is written by hand and kept on a new run.
NOTES = "<!-- notes: kept when the benchmark rewrites the numbers above -->"
#: Jobs not yet ended (the states ``ix_prov_jobs_state_next`` leads with).
#: The event loop of both runs: uvloop's, as ``mware-iam serve`` and ``mware-iam worker``
#: run the pool on (``core.event_loops.new_event_loop``).
LOOP: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
OPEN_STATES = (JobState.PENDING.value, JobState.INFLIGHT.value, JobState.RETRY.value)


def user(i: int, prefix: str = "bench") -> tuple[str, dict[str, str]]:
    """User i: its name and claims."""
    name = f"{prefix}{i:06d}"
    return name, {
        "givenname": f"Given{i % 997}",
        "lastname": f"Family{i % 1009}",
        "emailaddress": f"{name}@example.com",
    }


def import_rows(users: int, prefix: str = "bench") -> list[ImportRow]:
    return [
        ImportRow(i + 2, name, claims=claims)
        for i, (name, claims) in ((i, user(i, prefix)) for i in range(users))
    ]


# ---------------------------------------------------------------- peers
@dataclass(frozen=True)
class Peer:
    """One running peer: where our connector's properties point (``base``: an origin, a
    SCIM tenant or an endpoint, as the kind needs) and the process that does its work."""

    base: str
    pid: int
    #: What else the kind needs to reach it (the Google sandbox's key).
    extra: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def peer_process(
    argv: Sequence[str], probe: str, what: str, work: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a peer process until the block ends; ``probe`` answers once it is up."""
    from connectors.sandbox.peers import wait_until_answering

    with (work / f"peer-{os.getpid()}-{time.monotonic_ns()}.log").open("w+b") as log:
        process = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        try:
            wait_until_answering(process, probe, log, what, 30.0)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


# ---------------------------------------------------------------- a connector kind
@dataclass(frozen=True)
class Request:
    """One request of the ceiling: method, path below the peer's ``base``, body."""

    method: str
    path: str
    content: bytes


@dataclass(frozen=True)
class Kind:
    """What the harness needs to know of one connector and its peer."""

    name: str
    #: A fresh peer, for one run.
    peer: Callable[[Path], contextlib.AbstractContextManager[Peer]]
    #: Point the resident application of ``iam`` at the peer, with this concurrency.
    wire: Callable[[Iam, Peer, int], None]
    #: The ceiling's headers: gets a token first when the connector does.
    session: Callable[[httpx.AsyncClient, Peer], Awaitable[dict[str, str]]]
    #: Did the peer accept the request?
    accepted: Callable[[httpx.Response], bool]
    #: A previewed request's body as sent (``None``: not the ceiling's, e.g. a token grant).
    content: Callable[[dict[str, Any]], bytes | None] = lambda exchange: json_body(exchange)


def json_body(exchange: dict[str, Any]) -> bytes:
    """A previewed JSON request body, as the connector sends it."""
    return json.dumps(exchange["request_body"]).encode()


def previewed(iam: Iam, kind: Kind, peer: Peer, names: Sequence[str]) -> list[Request]:
    """The requests our connector would send for each user now (``provisioning preview``)."""
    requests = []
    for name in names:
        for report in iam.provisioning.preview(name):
            for exchange in report.requests:
                content = kind.content(exchange)
                if content is None:
                    continue
                url = exchange["url"]
                if not url.startswith(peer.base):
                    raise RuntimeError(f"{name}: previewed {url}, not at {peer.base}")
                requests.append(Request(exchange["method"], url[len(peer.base) :], content))
    return requests


# ---------------------------------------------------------------- runs
@dataclass(frozen=True)
class Run:
    name: str
    jobs: int
    seconds: float
    #: CPU milliseconds per job over the timed window: this process, the peer's.
    cpu_ms: float
    peer_cpu_ms: float

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds


@dataclass
class _Window:
    """Wall time and CPU (ours and the peer's) between ``start()`` and ``stop()``."""

    peer_pid: int
    began: float = 0.0
    cpu: float = 0.0
    peer_cpu: float = 0.0

    def start(self) -> None:
        self.cpu, self.peer_cpu = time.process_time(), process_cpu(self.peer_pid)
        self.began = time.perf_counter()

    def stop(self, name: str, jobs: int) -> Run:
        seconds = time.perf_counter() - self.began
        cpu = time.process_time() - self.cpu
        peer = process_cpu(self.peer_pid) - self.peer_cpu
        return Run(name, jobs, seconds, cpu * 1000 / jobs, peer * 1000 / jobs)


async def _send_all(
    kind: Kind, peer: Peer, requests: Sequence[Request], concurrency: int, window: _Window
) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    queue = iter(requests)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        window.start()
        headers = await kind.session(client, peer)

        async def lane() -> None:
            for r in queue:
                response = await client.request(
                    r.method, peer.base + r.path, content=r.content, headers=headers
                )
                if not kind.accepted(response):
                    raise RuntimeError(
                        f"ceiling {r.method} {r.path} answered "
                        f"{response.status_code}: {response.text[:300]}"
                    )

        await asyncio.gather(*(lane() for _ in range(concurrency)))


def ceiling(kind: Kind, peer: Peer, requests: Sequence[Request], concurrency: int) -> Run:
    window = _Window(peer.pid)
    with asyncio.Runner(loop_factory=LOOP) as runner:
        runner.run(_send_all(kind, peer, requests, concurrency, window))
    return window.stop("(a) ceiling: bare httpx", len(requests))


def unfinished(iam: Iam) -> int:
    """Jobs not yet ended: a count over the leading column of ``ix_prov_jobs_state_next``."""
    with iam.db.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(prov_jobs)
                .where(prov_jobs.c.state.in_(OPEN_STATES))
            ).scalar_one()
        )


def wait_for(condition: Callable[[], bool], what: str, every: float = 0.5) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {DEADLINE:g} s")
        time.sleep(every)


@contextlib.contextmanager
def profiled(svg: Path | None) -> Iterator[None]:
    """py-spy over the block, sampling this process (every thread), when ``svg`` is given:
    a flame graph (``.svg``) or collapsed stacks (any other name)."""
    if svg is None:
        yield
        return
    spy = subprocess.Popen(
        [
            str(PY_SPY),
            "record",
            "--pid",
            str(os.getpid()),
            "--rate",
            "200",
            "--output",
            str(svg),
            "--nonblocking",
            "--gil",
            "--format",
            "flamegraph" if svg.suffix == ".svg" else "raw",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # attached
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)


def drain(iam: Iam, peer: Peer, jobs: int, svg: Path | None = None) -> Run:
    """(b): a worker pool on the ``jobs`` queued jobs, until each has been recorded."""
    settled: dict[JobState, int] = {}
    done = threading.Event()

    def count(_job: Job, state: JobState) -> None:
        settled[state] = settled.get(state, 0) + 1
        if (
            state in (JobState.SUCCEEDED, JobState.DEAD, JobState.SKIPPED)
            and sum(
                settled.get(s, 0) for s in (JobState.SUCCEEDED, JobState.DEAD, JobState.SKIPPED)
            )
            >= jobs
        ):
            done.set()

    window = _Window(peer.pid)
    with profiled(svg):
        pool = iam.provisioning.worker_pool()
        pool.listeners.append(count)
        loop = LOOP()
        stop = asyncio.Event()
        thread = threading.Thread(
            target=loop.run_until_complete, args=(pool.run(stop),), name="bench-pool"
        )
        window.start()
        thread.start()
        if not done.wait(DEADLINE):
            raise RuntimeError(f"not every job ended within {DEADLINE:g} s: {settled}")
        run = window.stop("(b) ours: WorkerPool", jobs)
    loop.call_soon_threadsafe(stop.set)
    thread.join()
    loop.close()
    pool.close()
    if settled.get(JobState.SUCCEEDED, 0) != jobs or unfinished(iam):
        raise RuntimeError(f"jobs ended {settled}, {unfinished(iam)} still open")
    return run


@dataclass(frozen=True)
class Round:
    ceiling: Run
    ours: Run

    @property
    def ratio(self) -> float:
        return self.ours.rate / self.ceiling.rate


def one_round(
    kind: Kind, n: int, users: int, concurrency: int, work: Path, profile: Path | None = None
) -> Round:
    """Round ``n`` (1-based): set-up, then (a) and (b), (b) first in even rounds."""
    rows = import_rows(users, f"r{n}u")
    home = work / f"{kind.name}-round{n}"
    with (
        kind.peer(work) as ours_peer,
        kind.peer(work) as ceiling_peer,
        Iam.open(home=str(home)) as iam,
    ):
        kind.wire(iam, ours_peer, concurrency)
        report = iam.identity.import_users(Initiator.admin(), rows)
        if report.imported != users:
            raise RuntimeError(f"imported {report.imported} of {users}: {report.errors[:3]}")
        requests = previewed(iam, kind, ours_peer, [r.username for r in rows])
        if len(requests) != users:
            raise RuntimeError(f"preview gave {len(requests)} requests for {users} users")
        runs = {
            "a": lambda: ceiling(kind, ceiling_peer, requests, concurrency),
            "b": lambda: drain(iam, ours_peer, users, profile),
        }
        order = "ab" if n % 2 else "ba"
        done = {k: runs[k]() for k in order}
    result = Round(done["a"], done["b"])
    print(
        f"round {n}: ceiling {result.ceiling.rate:.0f} jobs/s "
        f"({result.ceiling.cpu_ms:.2f} CPU ms/job), ours {result.ours.rate:.0f} jobs/s "
        f"({result.ours.cpu_ms:.2f} CPU ms/job); ratio {result.ratio:.2f}",
        flush=True,
    )
    return result


def rounds(
    kind: Kind, count: int, users: int, concurrency: int, work: Path, profile: Path | None = None
) -> list[Round]:
    return [
        one_round(kind, n, users, concurrency, work, profile if n == 1 else None)
        for n in range(1, count + 1)
    ]


# ---------------------------------------------------------------- the record
def spread(values: Sequence[float], digits: int = 2) -> str:
    return (
        f"median **{statistics.median(values):.{digits}f}** "
        f"(min {min(values):.{digits}f}, max {max(values):.{digits}f})"
    )


def summary(results: Sequence[Round], target: float) -> str:
    ratios = [r.ratio for r in results]
    met = statistics.median(ratios) >= target
    return (
        f"ours / ceiling, jobs/s: {', '.join(f'{x:.2f}' for x in ratios)}; "
        f"{spread(ratios)}; target >= {target:g}: **{'met' if met else 'not met'}**. "
        f"CPU ms per job, this process: ceiling "
        f"{spread([r.ceiling.cpu_ms for r in results])}, ours "
        f"{spread([r.ours.cpu_ms for r in results])}; the peer: ceiling "
        f"{spread([r.ceiling.peer_cpu_ms for r in results])}, ours "
        f"{spread([r.ours.peer_cpu_ms for r in results])}."
    )


def record(
    issue: str,
    title: str,
    peer: str,
    results: Sequence[Round],
    command: str,
    concurrency: int,
    target: float,
    out: Path,
    extra: str = "",
) -> str:
    """Write the results file's measured part (and ``extra`` after it), and the ratios for
    ``bench/run_all`` (``common.record``); what follows ``NOTES`` in ``out`` is kept."""
    record_ratios(sys.argv[0], issue, f"{title}: ours / bare httpx, jobs/s",
                  [r.ratio for r in results], f">= {target:g}")
    rows = [
        [
            n,
            r.name,
            r.jobs,
            f"{r.seconds:.2f}",
            f"{r.rate:.0f}",
            f"{r.cpu_ms:.2f}",
            f"{r.peer_cpu_ms:.2f}",
        ]
        for n, pair in enumerate(results, 1)
        for r in (pair.ceiling, pair.ours)
    ]
    load = os.getloadavg()
    text = "\n".join(
        [
            f"# {title}",
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {machine_facts()}; load average at the end {load[0]:.1f} / {load[1]:.1f} "
            "/ {:.1f} (1 / 5 / 15 min), shared with other engineers' work.".format(load[2]),
            "",
            f"Peer: {peer}; concurrency {concurrency}; system database SQLite in the home. "
            "Harness: `bench/outbound_harness.py` (jobs queued before the clock; (b) timed from "
            "the pool's start to the last outcome recorded; CPU over the timed window only: "
            "this process, and the peer's process).",
            "",
            table(
                ["round", "run", "jobs", "seconds", "jobs/s", "CPU ms/job", "peer CPU ms/job"], rows
            ),
            "",
            summary(results, target),
            "",
            *([extra, ""] if extra else []),
        ]
    )
    notes = out.read_text().partition(NOTES)[2] if out.exists() else ""
    out.write_text(text + "\n" + NOTES + notes if notes else text)
    return text


def main(
    kind: Kind,
    doc: str,
    issue: str,
    title: str,
    peer: str,
    target: float,
    out: Path,
    users: int = 1000,
) -> None:
    """The command line of one connector's benchmark: rounds, then its results file."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=users)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--profile", type=Path, help="py-spy flame graph of round 1's (b)")
    parser.add_argument("--out", type=Path, default=out)
    args = parser.parse_args()
    command = f"python bench/{Path(sys.argv[0]).name} " + " ".join(sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        results = rounds(kind, args.rounds, args.users, args.concurrency, Path(tmp), args.profile)
    print(record(issue, title, peer, results, command, args.concurrency, target, args.out))
