"""Outbound provisioning throughput against a real SCIM 2.0 peer, next to its ceiling.

One ``scim2-server`` process; every run gets a fresh tenant of it. Rounds of the shared
harness (``bench/outbound_harness.py``): N users' jobs queued before the clock, then

(a) ceiling: a bare ``httpx.AsyncClient`` POSTs the exact bodies ``provisioning preview``
    shows for the N users, at the connector's concurrency;
(b) ours: a ``WorkerPool`` of this process drains the N jobs, timed to the last outcome
    recorded.

Target (issue 19): ours / ceiling >= 0.9 at 2,000 users. Optional extra runs, measured as
before this harness (first event to last acknowledgement, from the outbox rows):

(c) crash (``--crash``): the same N users queued, a ``mware-iam worker`` process SIGKILLed
    mid-run, its leases expired (what waiting out the lease would do), a new worker
    started: the peer must hold N users with none twice.
(d) several processes (``--processes K ...``): the pool in K ``mware-iam worker``
    processes, each with the connector's concurrency set to C / K.

    .venv/bin/python bench/provisioning.py --users 2000 --rounds 5
    .venv/bin/python bench/provisioning.py --users 2000 --rounds 1 --profile prof.svg
    .venv/bin/python bench/provisioning.py --users 10000 --rounds 1 --crash --processes 2
    .venv/bin/python bench/provisioning.py --users 2000 --backend postgresql  # local server
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import outbound_harness as harness
from common import process_cpu, table
from outbound_harness import MWARE_IAM, Kind, Peer, Run, import_rows, unfinished, user, wait_for
from sqlalchemy import select, update

from core.home import DB_ENV
from core.iam import Iam
from core.identity.events import Initiator
from core.schema import prov_attempts, prov_jobs
from tests.peers import ScimServer, scim_server
from tests.provisioning_helpers import connect
from tests.servers import database_url

SCIM_JSON = "application/scim+json"
RESULTS = Path(__file__).with_name("provisioning_RESULTS.md")


def scim_kind(server: ScimServer) -> Kind:
    """Our ``scim2`` connector and a fresh tenant of ``server`` per run."""

    async def session(_client: httpx.AsyncClient, _peer: Peer) -> dict[str, str]:
        return {"Content-Type": SCIM_JSON, "Accept": f"{SCIM_JSON}, application/json"}

    return Kind(
        "scim2",
        peer=lambda _work: contextlib.nullcontext(Peer(server.tenant(), server.process.pid)),
        wire=lambda iam, peer, concurrency: connect(iam, peer.base, concurrency=concurrency),
        session=session,
        accepted=lambda response: response.status_code == 201,
    )


# ---------------------------------------------------------------- (c), (d): the outbox rows
def _span(iam: Iam) -> float:
    """Seconds from the first job's creation to the last succeeded attempt's end."""
    with iam.db.engine.connect() as conn:
        rows = conn.execute(
            select(prov_jobs.c.created, prov_attempts.c.at, prov_attempts.c.duration_ms)
            .join(prov_attempts, prov_attempts.c.job_pk == prov_jobs.c.pk)
            .where(prov_attempts.c.outcome == "succeeded")
        ).all()

    def utc(t: datetime) -> datetime:
        return t if t.tzinfo else t.replace(tzinfo=UTC)

    first = min(utc(r.created) for r in rows)
    last = max(utc(r.at) + timedelta(milliseconds=r.duration_ms) for r in rows)
    return (last - first).total_seconds()


def _worker(home: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(
            [str(MWARE_IAM), "--home", str(home), "worker", "--poll", "0.2"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=fh,
        )


def ours_processes(base_url: str, users: int, concurrency: int, work: Path, count: int) -> Run:
    """(d): the import in this process while ``count`` worker processes run, each taking
    ``concurrency / count`` requests at once. CPU: this process and the workers (the
    peer's is left at 0: this run does not measure it; ``bench/scale_out.py`` does)."""
    home = work / f"ours-{count}"
    each = max(1, concurrency // count)
    with Iam.open(home=str(home)) as iam:
        connect(iam, base_url, concurrency=each)
    workers = [_worker(home, work / f"ours-{count}.log") for _ in range(count)]
    try:
        time.sleep(3)  # started and polling (the span starts at the first event anyway)
        own, started = time.process_time(), [process_cpu(w.pid) for w in workers]
        with Iam.open(home=str(home)) as iam:
            report = iam.identity.import_users(Initiator.admin(), import_rows(users))
            assert report.imported == users, report.errors[:3]
            wait_for(lambda: unfinished(iam) == 0, "every job to end")
            worker_cpu = [process_cpu(w.pid) - c for w, c in zip(workers, started, strict=True)]
            cpu = time.process_time() - own + sum(worker_cpu)
            span = _span(iam)
            attempt_ms = _attempt_ms(iam)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        codes = [w.wait(60) for w in workers]
    if any(codes):
        raise RuntimeError(f"worker processes exited with {codes}")
    return Run(
        f"(d) {count} worker process{'es' if count > 1 else ''}, concurrency {each} each; "
        f"worker CPU {' / '.join(f'{c:.1f}' for c in worker_cpu)} s; attempt median "
        f"{attempt_ms:.0f} ms (in flight on average: {users / span * attempt_ms / 1000:.1f})",
        users,
        span,
        cpu * 1000 / users,
        0.0,
    )


def _attempt_ms(iam: Iam) -> float:
    """The median duration of the attempts (the peer's answer as the worker saw it): with
    the rate, how many requests were in flight on average (Little's law)."""
    with iam.db.engine.connect() as conn:
        return statistics.median(conn.execute(select(prov_attempts.c.duration_ms)).scalars())


def _peer_names(base_url: str) -> Counter[str]:
    names: Counter[str] = Counter()
    start = 1
    while True:
        body = httpx.get(
            f"{base_url}/Users",
            timeout=60,
            params={"startIndex": str(start), "count": "1000", "attributes": "userName"},
        ).json()
        page = body.get("Resources", [])
        names.update(r["userName"] for r in page)
        start += len(page)
        if not page or start > int(body["totalResults"]):
            return names


def _peer_total(base_url: str) -> int:
    return int(
        httpx.get(f"{base_url}/Users", params={"count": "0"}, timeout=60).json()["totalResults"]
    )


def crash(base_url: str, users: int, concurrency: int, work: Path) -> list[object]:
    home = work / "crash"
    with Iam.open(home=str(home)) as iam:
        connect(iam, base_url, concurrency=concurrency)
        iam.identity.import_users(Initiator.admin(), import_rows(users))
    began = time.perf_counter()
    first = _worker(home, work / "crash-worker.log")
    wait_for(
        lambda: _peer_total(base_url) >= users // 3, "a third of the users at the peer", every=0.05
    )
    first.kill()
    first.wait()
    time.sleep(0.5)
    killed_at = _peer_total(base_url)
    with Iam.open(home=str(home)) as iam:
        inflight = len(iam.provisioning.jobs(["inflight"], limit=users))
        with iam.db.engine.begin() as conn:
            conn.execute(
                update(prov_jobs)
                .where(prov_jobs.c.state == "inflight")
                .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
            )
        second = _worker(home, work / "crash-worker.log")
        wait_for(lambda: unfinished(iam) == 0, "every job to end")
    second.send_signal(signal.SIGTERM)
    code = second.wait(60)
    seconds = time.perf_counter() - began
    names = _peer_names(base_url)
    twice = sum(1 for n in names.values() if n > 1)
    expected = {user(i)[0] for i in range(users)}
    if set(names) != expected or twice or code != 0:
        raise RuntimeError(
            f"crash run: {len(names)} distinct users at the peer, {twice} "
            f"twice, {len(expected - set(names))} missing, exit {code}"
        )
    return [
        "(c) crash: SIGKILL mid-run, restart",
        users,
        f"{seconds:.1f}",
        "",
        "",
        f"killed with {killed_at} at the peer, {inflight} in flight; end: "
        f"{sum(names.values())} at the peer, {twice} twice",
    ]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--crash", action="store_true", help="also run (c)")
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgresql", "mariadb"),
        default="sqlite",
        help="the system database of our runs",
    )
    parser.add_argument(
        "--processes",
        type=int,
        nargs="*",
        default=[],
        help="also run (d) with this many worker processes (one run each)",
    )
    parser.add_argument("--profile", type=Path, help="py-spy flame graph of round 1's (b)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    command = "python bench/provisioning.py " + " ".join(sys.argv[1:])
    extra: list[list[object]] = []
    with tempfile.TemporaryDirectory() as tmp, scim_server() as server:
        work = Path(tmp)
        with system_db(args.backend, work):
            results = harness.rounds(
                scim_kind(server), args.rounds, args.users, args.concurrency, work, args.profile
            )
        for count in args.processes:
            with system_db(args.backend, work):
                run = ours_processes(server.tenant(), args.users, args.concurrency, work, count)
            extra.append(
                [
                    run.name,
                    run.jobs,
                    f"{run.seconds:.1f}",
                    f"{run.rate:.0f}",
                    f"{run.cpu_ms:.1f}",
                    "import and workers; first event to last ack",
                ]
            )
            print(extra[-1], flush=True)
        if args.crash:
            with system_db(args.backend, work):
                extra.append(crash(server.tenant(), args.users, args.concurrency, work))
            print(extra[-1], flush=True)
    print(
        harness.record(
            "3, 19",
            "Outbound provisioning benchmark (SCIM 2.0)",
            "scim2-server (wsgiref, one process, in memory; a fresh tenant per run)",
            results,
            command,
            args.concurrency,
            0.9,
            args.out,
            table(["run", "users", "seconds", "users/s", "CPU ms/user", "note"], extra)
            if extra
            else "",
        )
    )


if __name__ == "__main__":
    main()
