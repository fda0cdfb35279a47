"""Outbound provisioning throughput against a real SCIM 2.0 peer, next to its ceiling.

One ``scim2-server`` process serves three fresh tenants, one per run:

(a) ceiling: a bare ``httpx.AsyncClient`` POSTs the same N SCIM User bodies at the same
    concurrency (bodies built before the clock starts). Throughput = N / (last answer -
    first request).
(b) ours: N users written through the identity service (``import_users``, no passwords)
    while a ``WorkerPool`` of this process runs, as under ``mware-iam serve``; the
    resident application provisions to the tenant with the connector's ``concurrency``
    set to the same value. Throughput = N / (last acknowledgement - first event), where
    an event is a job's creation (``prov_jobs.created``) and its acknowledgement the end
    of its succeeded attempt (``prov_attempts.at + duration_ms``); event-to-acknowledged
    latency p50/p95 from the same rows. Target: ours / ceiling >= 0.8.
(c) crash: the same N users queued, a ``mware-iam worker`` process SIGKILLed mid-run, its
    leases expired (what waiting out the lease would do), a new worker started: the peer
    must hold N users with none twice.

(d) several processes: (b) with the pool in K ``mware-iam worker`` processes (default 2),
    each with the connector's concurrency set to 8 / K (the peer still sees at most 8
    requests at once); measured as (b).

    .venv/bin/python bench/provisioning.py --users 10000 --concurrency 8
    .venv/bin/python bench/provisioning.py --users 2000 --no-crash      # quick run
    .venv/bin/python bench/provisioning.py --users 2000 --no-crash --processes 1 2 3
    .venv/bin/python bench/provisioning.py --users 10000 --backend postgresql  # local server

To see where the time goes: ``py-spy record --gil --format raw -o prof.txt -- .venv/bin/python
bench/provisioning.py --users 5000 --no-crash`` (py-spy samples every thread: the pool's
database thread as well as its event loop).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from common import machine_facts, percentile, process_cpu, table
from sqlalchemy import func, select, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the peers of the test suite

from core.home import DB_ENV  # noqa: E402
from core.iam import Iam  # noqa: E402
from core.identity.events import Initiator  # noqa: E402
from core.identity.service import ImportRow  # noqa: E402
from core.schema import prov_attempts, prov_jobs  # noqa: E402
from tests.peers import scim_server  # noqa: E402
from tests.provisioning_helpers import connect  # noqa: E402
from tests.servers import database_url  # noqa: E402

SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SCIM_JSON = "application/scim+json"
RESULTS = Path(__file__).with_name("provisioning_RESULTS.md")
WORKER = Path(sys.executable).with_name("mware-iam")
DEADLINE = 1800.0  # seconds: a safety net for one run, not a target
#: What follows this line in the results file is written by hand and kept on a new run.
NOTES = "<!-- notes: kept when the benchmark rewrites the numbers above -->"


@dataclass(frozen=True)
class Run:
    name: str
    users: int
    seconds: float
    p50_ms: float | None
    p95_ms: float | None
    note: str = ""
    #: CPU milliseconds per user: of this process (client, or import + workers), and of
    #: the peer.
    cpu_ms: float | None = None
    peer_cpu_ms: float | None = None

    @property
    def rate(self) -> float:
        return self.users / self.seconds


def measured(run: Callable[[], Run], peer_pid: int) -> Run:
    """``run()`` with the CPU time the peer spent on it, and this process unless the run
    measured its own (several processes), per user."""
    cpu, peer = time.process_time(), process_cpu(peer_pid)
    result = run()
    own = result.cpu_ms if result.cpu_ms is not None else \
        (time.process_time() - cpu) * 1000 / result.users
    return dataclasses.replace(
        result, cpu_ms=own, peer_cpu_ms=(process_cpu(peer_pid) - peer) * 1000 / result.users)


def user(i: int) -> tuple[str, dict[str, str]]:
    """User i: its name and claims (the same for every run)."""
    name = f"bench{i:06d}"
    return name, {"givenname": f"Given{i % 997}", "lastname": f"Family{i % 1009}",
                  "emailaddress": f"{name}@example.com"}


def scim_body(i: int) -> dict[str, Any]:
    """What our SCIM connector sends for user i (the default SCIM dialect mapping)."""
    name, claims = user(i)
    return {"schemas": [SCIM_USER], "userName": name,
            "name": {"familyName": claims["lastname"], "givenName": claims["givenname"]},
            "active": True, "emails": [{"value": claims["emailaddress"], "type": "work"}]}


# ---------------------------------------------------------------- (a) the ceiling
async def _post_all(url: str, bodies: list[bytes], concurrency: int) -> list[tuple[float, float]]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Content-Type": SCIM_JSON, "Accept": f"{SCIM_JSON}, application/json"}
    spans: list[tuple[float, float]] = []
    queue = iter(bodies)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def lane() -> None:
            for body in queue:
                began = time.perf_counter()
                response = await client.post(url, content=body, headers=headers)
                if response.status_code != 201:
                    raise RuntimeError(f"ceiling POST answered {response.status_code}")
                spans.append((began, time.perf_counter()))

        await asyncio.gather(*(lane() for _ in range(concurrency)))
    return spans


def ceiling(base_url: str, users: int, concurrency: int) -> Run:
    import json

    bodies = [json.dumps(scim_body(i)).encode() for i in range(users)]
    spans = asyncio.run(_post_all(f"{base_url}/Users", bodies, concurrency))
    seconds = max(e for _, e in spans) - min(b for b, _ in spans)
    latencies = [(e - b) * 1000 for b, e in spans]
    return Run("(a) ceiling: bare httpx POSTs", users, seconds, percentile(latencies, 50),
               percentile(latencies, 95), "latency: request to answer")


# ---------------------------------------------------------------- (b) ours
def _rows(users: int) -> list[ImportRow]:
    return [ImportRow(i + 2, name, claims=claims)
            for i, (name, claims) in enumerate(user(i) for i in range(users))]


def _event_to_ack(iam: Iam) -> tuple[list[float], float]:
    """Per succeeded job: seconds from its creation to its acknowledgement; and the span
    from the first event to the last acknowledgement."""
    with iam.db.engine.connect() as conn:
        rows = conn.execute(select(prov_jobs.c.created, prov_attempts.c.at,
                                   prov_attempts.c.duration_ms)
                            .join(prov_attempts, prov_attempts.c.job_pk == prov_jobs.c.pk)
                            .where(prov_attempts.c.outcome == "succeeded")).all()

    def utc(t: datetime) -> datetime:
        return t if t.tzinfo else t.replace(tzinfo=UTC)

    acks = [(utc(r.created), utc(r.at) + timedelta(milliseconds=r.duration_ms)) for r in rows]
    latencies = [(a - c).total_seconds() for c, a in acks]
    span = (max(a for _, a in acks) - min(c for c, _ in acks)).total_seconds()
    return latencies, span


def _states(iam: Iam) -> dict[str, int]:
    with iam.db.engine.connect() as conn:
        return {s: int(n) for s, n in conn.execute(
            select(prov_jobs.c.state, func.count()).group_by(prov_jobs.c.state))}


def _wait_for(condition: Any, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {DEADLINE:g} s")
        time.sleep(every)


def ours(base_url: str, users: int, concurrency: int, work: Path,
         wire: Callable[[Iam], None] | None = None) -> Run:
    """(b); ``wire`` points the resident application at another target than the SCIM
    tenant (the Google benchmark's)."""
    rows = _rows(users)
    with Iam.open(home=str(work / "ours")) as iam:
        if wire is None:
            connect(iam, base_url, concurrency=concurrency)
        else:
            wire(iam)
        pool = iam.provisioning.worker_pool()
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        thread = threading.Thread(target=loop.run_until_complete, args=(pool.run(stop),),
                                  name="bench-pool")
        thread.start()
        began = time.perf_counter()
        report = iam.identity.import_users(Initiator.admin(), rows)
        imported = time.perf_counter() - began
        assert report.imported == users, report.errors[:3]
        _wait_for(lambda: _states(iam).get("succeeded", 0) == users, "every job to succeed")
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        loop.close()
        pool.close()
        latencies, span = _event_to_ack(iam)
    ms = [v * 1000 for v in latencies]
    return Run("(b) ours: import_users + WorkerPool", users, span, percentile(ms, 50),
               percentile(ms, 95), f"latency: event to ack; import alone {imported:.1f} s")


def ours_processes(base_url: str, users: int, concurrency: int, work: Path,
                   processes: int) -> Run:
    """(b) with the pool in ``processes`` ``mware-iam worker`` processes instead of this
    one (as several workers would run beside ``serve``). Each takes ``concurrency /
    processes`` requests at once, so the peer never sees more than ``concurrency``, as
    in the ceiling. CPU: this process (the import) and the workers, per user."""
    home = work / f"ours-{processes}"
    with Iam.open(home=str(home)) as iam:
        connect(iam, base_url, concurrency=max(1, concurrency // processes))
    workers = [_worker(home, work / f"ours-{processes}.log") for _ in range(processes)]
    try:
        time.sleep(3)  # started and polling (the span starts at the first event anyway)
        own, each = time.process_time(), [process_cpu(w.pid) for w in workers]
        with Iam.open(home=str(home)) as iam:
            began = time.perf_counter()
            report = iam.identity.import_users(Initiator.admin(), _rows(users))
            imported = time.perf_counter() - began
            assert report.imported == users, report.errors[:3]
            _wait_for(lambda: _states(iam).get("succeeded", 0) == users, "every job to succeed")
            each = [process_cpu(w.pid) - c for w, c in zip(workers, each, strict=True)]
            cpu = time.process_time() - own + sum(each)
            latencies, span = _event_to_ack(iam)
            attempt_ms = _attempt_ms(iam)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        codes = [w.wait(60) for w in workers]
    if any(codes):
        raise RuntimeError(f"worker processes exited with {codes}")
    ms = [v * 1000 for v in latencies]
    return Run(f"(d) ours: import_users + {processes} worker "
               f"process{'es' if processes > 1 else ''}", users, span,
               percentile(ms, 50), percentile(ms, 95),
               f"latency: event to ack; concurrency {max(1, concurrency // processes)} "
               f"each; import alone {imported:.1f} s; worker CPU "
               f"{' / '.join(f'{c:.1f}' for c in each)} s; attempt median {attempt_ms:.0f} ms "
               f"(in flight on average: {users / span * attempt_ms / 1000:.1f})",
               cpu_ms=cpu * 1000 / users)


def _attempt_ms(iam: Iam) -> float:
    """The median duration of the attempts (the peer's answer as the worker saw it): with
    the rate, how many requests were in flight on average (Little's law)."""
    with iam.db.engine.connect() as conn:
        return statistics.median(conn.execute(select(prov_attempts.c.duration_ms)).scalars())


# ---------------------------------------------------------------- (c) the crash run
def _peer_names(base_url: str) -> Counter[str]:
    names: Counter[str] = Counter()
    start = 1
    while True:
        body = httpx.get(f"{base_url}/Users", timeout=60, params={
            "startIndex": str(start), "count": "1000", "attributes": "userName"}).json()
        page = body.get("Resources", [])
        names.update(r["userName"] for r in page)
        start += len(page)
        if not page or start > int(body["totalResults"]):
            return names


def _peer_total(base_url: str) -> int:
    return int(httpx.get(f"{base_url}/Users", params={"count": "0"}, timeout=60)
               .json()["totalResults"])


def _worker(home: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen([str(WORKER), "--home", str(home), "worker", "--poll", "0.2"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=fh)


def crash(base_url: str, users: int, concurrency: int, work: Path) -> Run:
    home = work / "crash"
    with Iam.open(home=str(home)) as iam:
        connect(iam, base_url, concurrency=concurrency)
        iam.identity.import_users(Initiator.admin(), _rows(users))
    began = time.perf_counter()
    first = _worker(home, work / "crash-worker.log")
    _wait_for(lambda: _peer_total(base_url) >= users // 3, "a third of the users at the peer",
              every=0.05)
    first.kill()
    first.wait()
    time.sleep(0.5)
    killed_at = _peer_total(base_url)
    with Iam.open(home=str(home)) as iam:
        cut = _states(iam)
        with iam.db.engine.begin() as conn:
            conn.execute(update(prov_jobs).where(prov_jobs.c.state == "inflight")
                         .values(lease_until=datetime.now(UTC) - timedelta(seconds=1)))
        second = _worker(home, work / "crash-worker.log")
        _wait_for(lambda: _states(iam) == {"succeeded": users}, "every job to succeed")
    second.send_signal(signal.SIGTERM)
    code = second.wait(60)
    seconds = time.perf_counter() - began
    names = _peer_names(base_url)
    twice = sum(1 for n in names.values() if n > 1)
    expected = {user(i)[0] for i in range(users)}
    if set(names) != expected or twice or code != 0:
        raise RuntimeError(f"crash run: {len(names)} distinct users at the peer, {twice} "
                           f"twice, {len(expected - set(names))} missing, exit {code}")
    return Run("(c) crash: SIGKILL mid-run, restart", users, seconds, None, None,
               f"killed with {killed_at} at the peer, {cut.get('inflight', 0)} in flight, "
               f"{killed_at - cut.get('succeeded', 0)} answers lost (adopted); "
               f"end: {sum(names.values())} at the peer, {twice} twice")


@contextlib.contextmanager
def system_db(backend: str, work: Path) -> Iterator[None]:
    """Each run's system database: SQLite in its home, or a fresh private database on the
    local PostgreSQL or MariaDB (given to worker processes through MWARE_IAM_DB)."""
    if backend == "sqlite":
        yield
        return
    with database_url(backend, str(work)) as url:
        os.environ[DB_ENV] = url
        try:
            yield
        finally:
            del os.environ[DB_ENV]


# ---------------------------------------------------------------- report
def report(runs: list[Run], command: str, concurrency: int, backend: str) -> str:
    backend_label = "SQLite in the home" if backend == "sqlite" else \
        f"{backend} on this machine (a fresh private database per run)"
    def num(value: float | None, digits: int = 0) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    rows = [[r.name, r.users, f"{r.seconds:.1f}", num(r.rate) if r.p50_ms else "",
             num(r.p50_ms), num(r.p95_ms), num(r.cpu_ms, 1), num(r.peer_cpu_ms, 1), r.note]
            for r in runs]
    ceiling_rate = runs[0].rate
    ratios = [f"{r.name.split(': ', 1)[1]}: **{r.rate / ceiling_rate:.2f}**"
              for r in runs if r.name.startswith(("(b)", "(d)"))]
    return "\n".join([
        "# Outbound provisioning benchmark", "",
        f"Command: `{command}`", "",
        f"Machine: {machine_facts()}", "",
        f"Peer: scim2-server (wsgiref, one process, in-memory), concurrency {concurrency}; "
        f"system database: {backend_label}. CPU ms/user: this process (the bare client, "
        "or the import and the worker pool; in (d) the import and the worker processes), "
        "and the peer.", "",
        table(["run", "users", "seconds", "users/s", "p50 ms", "p95 ms", "CPU ms/user",
               "peer CPU ms/user", "note"], rows), "",
        "ours / ceiling: " + "; ".join(ratios) + " (target >= 0.8)", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-crash", action="store_true", help="skip the crash run")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "mariadb"),
                        default="sqlite", help="the system database of (b), (c), (d)")
    parser.add_argument("--processes", type=int, nargs="*", default=[2],
                        help="also run (d): the pool in this many worker processes "
                             "(several values: one run each; none: skip)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    command = "python bench/provisioning.py " + " ".join(sys.argv[1:])
    runs = []
    with tempfile.TemporaryDirectory() as tmp, scim_server() as server:
        work = Path(tmp)
        pid = server.process.pid
        runs.append(measured(lambda: ceiling(server.tenant(), args.users, args.concurrency),
                             pid))
        print(runs[-1], flush=True)
        with system_db(args.backend, work):
            runs.append(measured(lambda: ours(server.tenant(), args.users, args.concurrency,
                                              work), pid))
        print(runs[-1], flush=True)
        for n in args.processes:
            with system_db(args.backend, work):
                runs.append(measured(functools.partial(
                    ours_processes, server.tenant(), args.users, args.concurrency, work, n),
                    pid))
            print(runs[-1], flush=True)
        if not args.no_crash:
            with system_db(args.backend, work):
                runs.append(crash(server.tenant(), args.users, args.concurrency, work))
            print(runs[-1], flush=True)
    text = report(runs, command, args.concurrency, args.backend)
    print(text)
    notes = args.out.read_text().partition(NOTES)[2] if args.out.exists() else ""
    args.out.write_text(text + "\n" + NOTES + notes if notes else text)


if __name__ == "__main__":
    main()
