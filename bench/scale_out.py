"""Scale-out on PostgreSQL (issue 19): ``serve --processes 2`` vs ``--processes 1``, and 2
``mware-iam worker`` processes vs 1, side by side in one run.

(a) inbound: two ``serve`` deployments, each on its own fresh PostgreSQL database, one
    with ``--processes 1`` and one with ``--processes 2``; the load of ``wrk`` (below;
    GET by userName filter, POST /Users) against each in turn, AB then BA, several
    rounds. Server CPU per request:
    the serving processes (the parent and its children) plus every PostgreSQL backend of
    the machine during the phase (other sessions' queries land there too: an upper bound).
    Targets: 2 / 1 requests/s >= 1.6 for GET by filter and >= 1.4 for POST. Also
    reported: the cores each deployment keeps busy (its CPU, PostgreSQL's and wrk's per
    second), and the most 2 / 1 can be on this machine, cores / cores busy with one
    process: one serving process already keeps more than a core busy, since PostgreSQL's
    backends and wrk run on the other core, and two cannot use more than every core even
    if a request cost them no more than it costs one.
(b) outbound: N users imported into a deployment whose resident application provisions
    to ``sleepy_peer.py`` (an asyncio process answering every request after a fixed
    20 ms at almost no CPU), the jobs run by 1 or 2 ``mware-iam worker`` processes
    (``provisioning.py``'s (d) run, the connector's concurrency split between them: the
    peer's sleep, not its CPU, bounds nothing at that concurrency). Jobs/s = N / (first
    job written to last acknowledged); CPU per job: this process's import and the
    workers. Target: 2 / 1 jobs/s >= 1.5. Rounds alternate which goes first.

    .venv/bin/python bench/scale_out.py --rounds 3 --seconds 10 --users 2000

The inbound load comes from ``wrk`` (``apt-get install -y wrk``; bench only) with
``scale_out.lua``: GET by a ``userName eq`` filter over the ``--seed`` users imported into
each deployment, and POSTs of a userName unique per request, on ``--connections``
connections from ``--threads`` threads, the same for both deployments; wrk's own CPU per
request is reported beside ours. ``--load python`` uses ``scim_inbound.py``'s asyncio
client instead (it costs about a millisecond of CPU per request on the same cores).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import scim_inbound
from common import REPORT_ONLY, children, machine_facts, process_cpu, record, table
from outbound_harness import Run, import_rows
from provisioning import ours_processes, system_db
from scim_inbound import OPERATIONS, Phase, our_server, throughput

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.sandbox.peers import free_port, wait_until_answering  # noqa: E402
from core.home import DB_ENV  # noqa: E402
from core.iam import Iam  # noqa: E402
from core.identity.events import Initiator  # noqa: E402
from tests.servers import database_url  # noqa: E402

RESULTS = Path(__file__).with_name("scale_out_RESULTS.md")
ONE, TWO = "1 process", "2 processes"
TARGETS = {"POST": 1.4, "GET filter": 1.6}
WRK_SCRIPT = Path(__file__).with_name("scale_out.lua")
WRK_MISSING = ("wrk is not installed: it drives the load of this benchmark (a bench-only "
               "tool, not needed by the tests): apt-get install -y wrk, or pass --load python")
JOBS_TARGET = 1.5
#: The cores this benchmark's processes may run on.
CORES = len(os.sched_getaffinity(0))


# ---------------------------------------------------------------- CPU
def _comm(pid: int | str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _postmasters() -> list[int]:
    """The machine's PostgreSQL servers: ``postgres`` processes whose parent is not one."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _comm(entry.name) == "postgres":
            with contextlib.suppress(OSError):
                parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                if _comm(parent) != "postgres":
                    found.append(int(entry.name))
    return found


def served_cpu(pid: int) -> float:
    """CPU seconds of a ``serve`` process with its children, and of the machine's
    PostgreSQL servers with their backends, live and ended (``process_cpu``): what a
    request costs on the server side, database included."""
    return process_cpu(pid) + sum(process_cpu(p) for p in _postmasters())


# ---------------------------------------------------------------- (a) inbound
@contextlib.contextmanager
def serving(
    work: Path, concurrency: int, processes: int, name: str, seed: int = 0
) -> Iterator[scim_inbound.Server]:
    """``serve --processes N`` on a home of its own, on a fresh PostgreSQL database, with
    ``seed`` users ``bench000000``.. imported first."""
    home = work / name.replace(" ", "-")
    with database_url("postgresql", str(work)) as url:
        os.environ[DB_ENV] = url  # read by add_clients and by the serve it starts
        try:
            if seed:
                with Iam.open(home=str(home)) as iam:
                    report = iam.identity.import_users(Initiator.admin(), import_rows(seed))
                    assert report.imported == seed, report.errors[:3]
            with our_server(
                home,
                concurrency,
                name=name,
                extra=("--processes", str(processes), "--scim-rate", "0"),
            ) as server:
                time.sleep(5)  # every child listening (/health answered for the first)
                yield server
        finally:
            os.environ.pop(DB_ENV, None)  # the other server set its own meanwhile


def inbound(work: Path, rounds: int, requests: int, concurrency: int) -> list[tuple[int, Phase]]:
    scim_inbound.process_cpu = served_cpu  # the phases' server CPU: see served_cpu
    with serving(work, concurrency, 1, ONE) as one, serving(work, concurrency, 2, TWO) as two:
        return asyncio.run(throughput([one, two], rounds, requests, concurrency))


@dataclasses.dataclass(frozen=True)
class WrkPhase:
    """One operation against one deployment in one round, the load from ``wrk``."""

    server: str
    operation: str
    requests: int
    seconds: float
    server_cpu: float  # serve (parent and children) + PostgreSQL, seconds
    wrk_cpu: float  # seconds
    #: CPU seconds of each serving process (the supervisor's children): both busy?
    split: tuple[float, ...]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cores_busy(self) -> float:
        """Cores kept busy by the deployment, its PostgreSQL backends and wrk."""
        return (self.server_cpu + self.wrk_cpu) / self.seconds


def wrk_phase(server: scim_inbound.Server, operation: str, seconds: float, connections: int,
              threads: int, users: int, tag: str) -> WrkPhase:
    """``wrk`` for ``seconds`` on one connection count; every answer checked by the Lua
    script (201 for POST, one hit for GET by filter). wrk's CPU: this process's reaped
    children's, before and after (wrk is the only child that ends meanwhile)."""
    mode, arg = ("post", tag) if operation == "POST" else ("get", str(users))
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s",
               "-s", str(WRK_SCRIPT), f"{server.base}/Users", "--", mode, server.tokens[0], arg]
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = served_cpu(server.pid)
    serving_before = {child: process_cpu(child) for child in children(server.pid)}
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    server_cpu = served_cpu(server.pid) - before
    split = tuple(process_cpu(child) - cpu for child, cpu in serving_before.items())
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in done.stdout.splitlines() if x.startswith("SCALE_OUT ")), None)
    if done.returncode or line is None:
        raise SystemExit(f"wrk failed ({done.returncode}): "
                         f"{done.stderr[-500:]} {done.stdout[-500:]}")
    result = json.loads(line.split(" ", 1)[1])
    if result["bad"] or result["socket_errors"]:
        raise SystemExit(f"{server.name} {operation}: {result['bad']} wrong answers, "
                         f"{result['socket_errors']} socket errors, e.g. {result['example']}")
    wrk_cpu = (after.ru_utime + after.ru_stime) - (reaped.ru_utime + reaped.ru_stime)
    return WrkPhase(server.name, operation, result["requests"], result["micros"] / 1e6,
                    server_cpu, wrk_cpu, split)


WRK_OPERATIONS = ("GET filter", "POST")


def inbound_wrk(work: Path, rounds: int, seconds: float, connections: int, threads: int,
                users: int) -> list[tuple[int, WrkPhase]]:
    """Rounds alternating which deployment goes first; a warm-up GET phase on each
    (not counted) before the first round."""
    if shutil.which("wrk") is None:
        raise SystemExit(WRK_MISSING)
    phases = []
    with serving(work, 1, 1, ONE, seed=users) as one, \
            serving(work, 1, 2, TWO, seed=users) as two:
        for server in (one, two):
            wrk_phase(server, "GET filter", 3, connections, threads, users, "warm")
        for number in range(1, rounds + 1):
            for operation in WRK_OPERATIONS:
                for server in (one, two) if number % 2 else (two, one):
                    tag = f"r{number}"
                    phase = wrk_phase(server, operation, seconds, connections, threads, users,
                                      tag)
                    phases.append((number, phase))
                    print(f"round {number} {operation:10} {server.name:11} {phase.rate:7.1f} "
                          f"req/s, ours+PG {phase.server_cpu * 1000 / phase.requests:.2f} "
                          f"ms/req, wrk {phase.wrk_cpu * 1000 / phase.requests:.3f} ms/req",
                          flush=True)
    return phases


def inbound_wrk_report(phases: list[tuple[int, WrkPhase]]) -> str:
    by = {(n, p.operation, p.server): p for n, p in phases}
    rounds = sorted({n for n, _ in phases})
    rows = []
    for operation in WRK_OPERATIONS:
        ratios = [by[(n, operation, TWO)].rate / by[(n, operation, ONE)].rate for n in rounds]
        median = statistics.median(ratios)

        def med(server: str, value: Callable[[WrkPhase], float],
                op: str = operation) -> float:
            return statistics.median(value(by[(n, op, server)]) for n in rounds)

        def per_request(server: str, what: str) -> float:
            return med(server, lambda p: getattr(p, what) * 1000 / p.requests)

        # What 2 processes could give at most: one already keeps more than a core busy
        # (its own, PostgreSQL's backends and wrk on the other), and 2 cannot use more
        # than the machine's cores, even if a request cost them no more than it costs 1.
        ceilings = [CORES / by[(n, operation, ONE)].cores_busy for n in rounds]
        target = TARGETS[operation]
        record(__file__, "19", f"scale-out on PostgreSQL, {operation}: serve --processes 2 / 1, "
               "req/s (load from wrk)", ratios, f">= {target}")
        record(__file__, "19", f"scale-out on PostgreSQL, {operation}: the most 2 / 1 can be "
               f"here ({CORES} cores / cores busy with 1 process)", ceilings, REPORT_ONLY)
        rows.append([
            operation,
            f"{med(ONE, lambda p: p.rate):.1f}",
            f"{med(TWO, lambda p: p.rate):.1f}",
            f"**{median:.2f}** ({min(ratios):.2f} to {max(ratios):.2f})",
            f"{per_request(ONE, 'server_cpu'):.2f} / {per_request(TWO, 'server_cpu'):.2f}",
            f"{per_request(ONE, 'wrk_cpu'):.3f} / {per_request(TWO, 'wrk_cpu'):.3f}",
            f"{med(ONE, lambda p: p.cores_busy):.2f} / {med(TWO, lambda p: p.cores_busy):.2f}",
            f"{statistics.median(ceilings):.2f}",
            f">= {target}",
            "pass" if median >= target else "**not met**",
        ])
    summary = table(["operation", "1 process req/s", "2 processes req/s",
                     "2 / 1 req/s: median (spread)", "serve+PG CPU ms/req 1 / 2",
                     "wrk CPU ms/req 1 / 2", "cores busy 1 / 2",
                     f"at most ({CORES} cores / busy 1)", "target", ""], rows)
    detail = table(
        ["round", "operation", "deployment", "requests", "s", "req/s", "serve+PG CPU ms/req",
         "wrk CPU ms/req", "cores busy", "CPU s of each serving process"],
        [[n, p.operation, p.server, p.requests, f"{p.seconds:.1f}", f"{p.rate:.1f}",
          f"{p.server_cpu * 1000 / p.requests:.2f}", f"{p.wrk_cpu * 1000 / p.requests:.3f}",
          f"{p.cores_busy:.2f}",
          " / ".join(f"{c:.1f}" for c in p.split)]
         for n, p in phases])
    return f"{summary}\n\nEvery phase:\n\n{detail}"


def inbound_report(phases: list[tuple[int, Phase]]) -> tuple[str, dict[str, float]]:
    by = {(n, p.operation, p.server): p for n, p in phases}
    rounds = sorted({n for n, _ in phases})
    rows, medians = [], {}
    for operation in OPERATIONS:
        ratios = [by[(n, operation, TWO)].rate / by[(n, operation, ONE)].rate for n in rounds]
        medians[operation] = statistics.median(ratios)

        def med(server: str, what: str, op: str = operation) -> float:
            phases_of = [by[(n, op, server)] for n in rounds]
            if what == "rate":
                return statistics.median(p.rate for p in phases_of)
            return statistics.median(p.server_cpu * 1000 / p.requests for p in phases_of)

        target = TARGETS.get(operation)
        if target is not None:
            record(__file__, "19", f"scale-out on PostgreSQL, {operation}: serve --processes "
                   "2 / 1, req/s (Python clients)", ratios, f">= {target}")
        verdict = (
            "recorded"
            if target is None
            else ("pass" if medians[operation] >= target else "**not met**")
        )
        rows.append(
            [
                operation,
                f"{med(ONE, 'rate'):.1f}",
                f"{med(TWO, 'rate'):.1f}",
                f"**{medians[operation]:.2f}** ({min(ratios):.2f} to {max(ratios):.2f})",
                f"{med(ONE, 'cpu'):.2f} / {med(TWO, 'cpu'):.2f}",
                f">= {target}" if target else "-",
                verdict,
            ]
        )
    return table(
        [
            "operation",
            "1 process req/s",
            "2 processes req/s",
            "2 / 1 req/s: median (spread)",
            "server+PG CPU ms/req 1 / 2",
            "target",
            "",
        ],
        rows,
    ), medians


# ---------------------------------------------------------------- (b) outbound
@contextlib.contextmanager
def sleepy_peer(sleep_ms: float) -> Iterator[tuple[str, int]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}/scim/v2"
    with tempfile.TemporaryFile() as log:
        peer = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("sleepy_peer.py")),
                "--port",
                str(port),
                "--sleep-ms",
                str(sleep_ms),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        try:
            wait_until_answering(peer, f"{base}/Users", log, "sleepy peer", 30)
            yield base, peer.pid
        finally:
            peer.terminate()
            peer.wait(10)


def outbound(
    work: Path, rounds: int, users: int, concurrency: int, sleep_ms: float
) -> list[tuple[int, int, Run]]:
    runs = []
    with sleepy_peer(sleep_ms) as (base, peer_pid):
        for number in range(1, rounds + 1):
            for processes in (1, 2) if number % 2 else (2, 1):
                where = work / f"out-{number}-{processes}"
                where.mkdir()
                peer = process_cpu(peer_pid)
                with system_db("postgresql", where):
                    run = ours_processes(base, users, concurrency, where, processes)
                peer_ms = (process_cpu(peer_pid) - peer) * 1000 / users
                runs.append((number, processes, dataclasses.replace(run, peer_cpu_ms=peer_ms)))
                print(
                    f"round {number} {processes} worker process(es): {run.rate:7.1f} jobs/s, "
                    f"{run.cpu_ms:.2f} CPU ms/job, peer {peer_ms:.3f}; {run.name}",
                    flush=True,
                )
    return runs


def outbound_report(runs: list[tuple[int, int, Run]]) -> tuple[str, float]:
    by = {(n, k): r for n, k, r in runs}
    rounds = sorted({n for n, _, _ in runs})
    ratios = [by[(n, 2)].rate / by[(n, 1)].rate for n in rounds]
    record(__file__, "19", "scale-out on PostgreSQL: 2 worker processes / 1, jobs/s (a peer "
           "sleeping a fixed time per request)", ratios, f">= {JOBS_TARGET}")
    rows = [
        [
            n,
            f"{by[(n, 1)].rate:.1f}",
            f"{by[(n, 2)].rate:.1f}",
            f"{ratio:.2f}",
            f"{by[(n, 1)].cpu_ms:.2f} / {by[(n, 2)].cpu_ms:.2f}",
            f"{by[(n, 1)].peer_cpu_ms:.3f} / {by[(n, 2)].peer_cpu_ms:.3f}",
        ]
        for n, ratio in zip(rounds, ratios, strict=True)
    ]
    median = statistics.median(ratios)
    rows.append(
        [
            "median",
            f"{statistics.median(by[(n, 1)].rate for n in rounds):.1f}",
            f"{statistics.median(by[(n, 2)].rate for n in rounds):.1f}",
            f"**{median:.2f}** ({min(ratios):.2f} to {max(ratios):.2f})",
            f"{statistics.median(by[(n, 1)].cpu_ms or 0 for n in rounds):.2f} / "
            f"{statistics.median(by[(n, 2)].cpu_ms or 0 for n in rounds):.2f}",
            "",
        ]
    )
    return table(
        [
            "round",
            "1 worker jobs/s",
            "2 workers jobs/s",
            "2 / 1",
            "CPU ms/job 1 / 2 (import + workers)",
            "peer CPU ms/job 1 / 2",
        ],
        rows,
    ), median


# ---------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--requests",
        type=int,
        default=300,
        help="inbound requests per operation, per server, per round",
    )
    parser.add_argument("--concurrency", type=int, default=8,
                        help="inbound clients (--load python)")
    parser.add_argument("--load", choices=("wrk", "python"), default="wrk",
                        help="inbound load generator: wrk (default) or this process (httpx)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="wrk: seconds per phase (operation, deployment, round)")
    parser.add_argument("--connections", type=int, default=16, help="wrk: connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk: threads")
    parser.add_argument("--seed", type=int, default=2000,
                        help="wrk: users imported into each deployment before the load")
    parser.add_argument("--users", type=int, default=2000, help="outbound jobs per run")
    parser.add_argument(
        "--outbound-concurrency",
        type=int,
        default=128,
        help="the connector's concurrency (split between the workers); large enough "
        "that one worker is bound by its CPU, not by slots x the peer's sleep",
    )
    parser.add_argument("--sleep-ms", type=float, default=20.0)
    parser.add_argument("--skip", choices=("inbound", "outbound"), default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    facts = machine_facts()
    print(facts, flush=True)
    load = os.getloadavg()
    sections = [
        f"# Scale-out on PostgreSQL (issue 19)\n\n{facts}; load average at start "
        f"{load[0]:.1f}.\n\n    .venv/bin/python bench/scale_out.py "
        + " ".join(sys.argv[1:])
        + "\n"
    ]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.skip != "inbound" and args.load == "wrk":
            wrk_phases = inbound_wrk(work, args.rounds, args.seconds, args.connections,
                                     args.threads, args.seed)
            text = inbound_wrk_report(wrk_phases)
            sections.append(
                f"## (a) serve --processes 2 vs 1, wrk: {args.connections} connections, "
                f"{args.threads} threads, {args.rounds} rounds of {args.seconds:g} s per "
                f"operation and deployment, {args.seed} users seeded\n\n{text}\n")
            print(text, flush=True)
        elif args.skip != "inbound":
            phases = inbound(work, args.rounds, args.requests, args.concurrency)
            text, _ = inbound_report(phases)
            sections.append(
                f"## (a) serve --processes 2 vs 1, {args.concurrency} clients, "
                f"{args.rounds} rounds of {args.requests} requests per "
                f"operation\n\n{text}\n"
            )
            print(text, flush=True)
        if args.skip != "outbound":
            runs = outbound(work, args.rounds, args.users, args.outbound_concurrency, args.sleep_ms)
            text, _ = outbound_report(runs)
            sections.append(
                f"## (b) 2 worker processes vs 1, {args.users} users to a peer "
                f"sleeping {args.sleep_ms:g} ms per request, connector "
                f"concurrency {args.outbound_concurrency} (split)\n\n{text}\n"
            )
            print(text, flush=True)
    sections.append(f"Load average at the end: {os.getloadavg()[0]:.1f}.\n")
    notes = ""
    if args.out.exists() and scim_inbound.NOTES in args.out.read_text():
        notes = args.out.read_text().split(scim_inbound.NOTES, 1)[1]
    args.out.write_text("\n".join(sections) + f"\n{scim_inbound.NOTES}{notes}")


if __name__ == "__main__":
    main()
