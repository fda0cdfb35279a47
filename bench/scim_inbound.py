"""The inbound SCIM 2.0 server under load, next to scim2-server, and at 1,000,000 users.

(1) Throughput. Two server processes on loopback: ours (``mware-iam --home TMP serve --processes
    1``, SQLite in a fresh home, or with ``--backend postgresql`` a fresh schema on the local
    PostgreSQL, whose backends' CPU counts as ours; one serving process as the peer has one,
    where ``serve`` would start one per core on PostgreSQL: two on these two cores, shared with
    PostgreSQL and the load generator, cost 10 to 40 % more CPU per request, and
    ``scale_out.py`` measures what a second one adds) and scim2-server (``scim2-server
    --hostname 127.0.0.1 --port P --bearer-token T``, in memory, wsgiref). One load generator
    (this process: asyncio, one ``httpx.AsyncClient`` per server, ``--concurrency`` clients each
    sending its next request as soon as the last is answered) sends the same requests to both,
    in rounds: each round runs POST /Users (no password), GET /Users?filter=userName eq "..." (a
    user created earlier), then PATCH /Users/{id} (replace name.givenName and active), each
    operation against both servers side by side, in the order AB then BA, so machine noise hits
    both; 4 rounds x 500 POSTs make 2,000 users. Target (issue 19): server CPU per request ours
    / scim2-server at most 0.8 on SQLite and 1.0 on PostgreSQL for each operation (median of the
    rounds' ratios); requests/s ours / theirs is reported beside. A third server takes its turn
    in each round with the same requests, reported only (no target): django-scim2, a persisting
    provider (Django on SQLite, ``bench/django_scim/``) under ``gunicorn --workers 2``, its CPU
    the master's and the workers'. Every answer is checked (status, the one user a filter must
    find, by name); any other answer fails the run, with the count of such answers in the phase.
    After the rounds, django-scim2's SQLite file must hold every user POSTed and a sample of the
    PATCHed ones with their patched values.
(2) Scale. Two ``mware-iam serve`` processes on the 10,000 and the 1,000,000-user
    databases of ``list_users.py`` (built with bare Core, cached in ``bench/.data/``); one
    client alternates single requests between them: GET /Users?filter=userName eq "<a
    random existing user>" and emails.value eq "<its email>". These two serve without a
    rate limit (``--scim-rate 0``): one client asking as fast as they answer outruns one
    application's bucket. Target: p95 at 1,000,000 at most 2 times p95 at 10,000.

Our server is the real ``serve``: the provisioning worker pool runs beside the HTTP
server, and every write goes through the identity service (audit row, events, the
planner). The applications here have no outbound targets, so the planner queues no job
(the run checks that the outbox stays empty). The rate limit is per application (100
requests/s by default), so each client of the load generator authenticates as its own
application; a 429 fails the run, as does any unexpected answer.

    .venv/bin/python bench/scim_inbound.py                               # full run
    .venv/bin/python bench/scim_inbound.py --requests 200 --rounds 2 --large 100000 \
        --lookups 200                                                    # quick run
    .venv/bin/python bench/scim_inbound.py --part throughput --backend postgresql

To see where our server's time goes, ``--profile DIR`` runs ours under ``py-spy record``
(``pip install py-spy`` in the venv) and leaves its samples of each server (collapsed
stacks, ``--gil``: the time spent holding the interpreter) in DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import scim_clients
from common import (
    REPORT_ONLY,
    machine_facts,
    median,
    percentile,
    process_cpu,
    record,
    table,
    target_met,
)
from list_users import deployment, email, username
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the peers of the test suite

from connectors.sandbox.peers import (  # noqa: E402
    PeerUnavailable,
    free_port,
    scim_server,
    wait_until_answering,
)
from core.iam import Iam  # noqa: E402
from core.schema import prov_jobs  # noqa: E402
from tests.servers import database_url  # noqa: E402

sys.path.insert(0, str(ROOT / "bench" / "django_scim"))  # the django-scim2 peer
from django_peer import DjangoScim, django_scim_server  # noqa: E402

SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
RESULTS = Path(__file__).with_name("scim_inbound_RESULTS.md")
PG_RESULTS = Path(__file__).with_name("scim_inbound_postgresql_RESULTS.md")
MWARE_IAM = Path(sys.executable).with_name("mware-iam")
PY_SPY = Path(sys.executable).with_name("py-spy")
START_SECONDS = 60.0
#: What follows this line in the results file is written by hand and kept on a new run.
NOTES = "<!-- notes: kept when the benchmark rewrites the numbers above -->"
OPERATIONS = ("POST", "GET filter", "PATCH")
OURS, THEIRS, DJANGO = "ours", "scim2-server", "django-scim2"
#: The servers ours is compared with, in the report's order.
PEERS = (THEIRS, DJANGO)
#: The targets of server CPU per request, ours / scim2-server, per system database.
CPU_TARGETS = {"sqlite": 0.8, "postgresql": 1.0}
#: Our system database as the measures name it.
BACKENDS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
APPLICATION_NAME = "mware-bench-inbound"


# ---------------------------------------------------------------- servers
#: The answer each operation expects. A PATCH that asks for no attributes answers 204
#: (RFC 7644 §3.5.2) on ours and scim2-server; django-scim2 answers 200 with the user.
EXPECTED = {"POST": 201, "GET filter": 200, "PATCH": 204}


@dataclass
class State:
    """What a server holds so far: user index -> its id there; the users PATCHed."""

    ids: dict[int, str] = field(default_factory=dict)
    patched: set[int] = field(default_factory=set)


@dataclass
class Server:
    name: str
    base: str  # the SCIM base URL
    tokens: list[str]  # one per client of the load generator (theirs: the same one)
    pid: int
    #: Ours on PostgreSQL: the URL of its system database, whose backends (found by the
    #: ``application_name`` the URL sets) count as our server's CPU.
    db: str | None = None
    expected: dict[str, int] = field(default_factory=lambda: dict(EXPECTED))
    state: State = field(default_factory=State)

    def cpu(self) -> float:
        """CPU seconds used so far by the server process and, on PostgreSQL, by the
        database backends serving it right now."""
        return process_cpu(self.pid) + (backends_cpu(self.db) if self.db else 0.0)


def backends_cpu(url: str) -> float:
    """CPU seconds of the PostgreSQL backends connected with this URL's application name
    (the pool keeps them for the whole run, so a phase's difference is theirs)."""
    name = make_url(url).query.get("application_name", APPLICATION_NAME)
    engine = create_engine(url.split("?")[0], poolclass=NullPool)
    try:
        with engine.connect() as conn:
            pids = conn.execute(text("SELECT pid FROM pg_stat_activity "
                                     "WHERE application_name = :name"),
                                {"name": name}).scalars().all()
    finally:
        engine.dispose()
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):  # a backend that just ended
            total += process_cpu(int(pid))
    return total


@contextlib.contextmanager
def system_database(backend: str, work: Path, name: str = APPLICATION_NAME
                    ) -> Iterator[str | None]:
    """Our system database: None (SQLite in the home) or a fresh private PostgreSQL schema,
    its connections named ``name`` (``backends_cpu``)."""
    if backend == "sqlite":
        yield None
        return
    with database_url(backend, str(work)) as url:
        yield f"{url}&application_name={name}"


def add_clients(home: Path, clients: int, executable: Path = MWARE_IAM,
                db: str | None = None) -> list[str]:
    """``scim_clients.add_clients``, by the build of ``executable`` (its venv's Python):
    a home (and its system database ``db``) is created and migrated by the build that
    serves it."""
    if executable == MWARE_IAM:
        return scim_clients.add_clients(home, clients, db)
    done = subprocess.run([str(executable.with_name("python")),
                           str(Path(__file__).with_name("scim_clients.py")), str(home),
                           str(clients), *([db] if db else [])],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{executable}: the clients were not added: {done.stderr.strip()}")
    return done.stdout.split()


@contextlib.contextmanager
def our_server(home: Path, clients: int, profile: Path | None = None,
               extra: tuple[str, ...] = (), executable: Path = MWARE_IAM,
               name: str = OURS, db: str | None = None) -> Iterator[Server]:
    """``mware-iam --home HOME [--db DB] serve [EXTRA]`` on a free loopback port (under
    py-spy if asked); ``executable``: another build's ``mware-iam`` (``scim_inbound_ab.py``)."""
    tokens = add_clients(home, clients, executable, db)
    port = free_port()
    command = [str(executable), "--home", str(home), *(["--db", db] if db else []), "serve",
               "--port", str(port), *extra]
    if profile is not None:
        command = [str(PY_SPY), "record", "--subprocesses", "--gil", "--rate", "250",
                   "--format", "raw",
                   "-o", str(profile), "--", *command]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        try:
            origin = f"http://127.0.0.1:{port}"
            try:
                wait_until_answering(process, f"{origin}/health", log, "mware-iam serve",
                                     START_SECONDS)
            except PeerUnavailable as exc:
                raise SystemExit(str(exc)) from None
            pid = process.pid if profile is None else _child_pid(process.pid)
            yield Server(name, f"{origin}/scim2", tokens, pid, db)
        finally:
            process.send_signal(2)  # SIGINT: serve stops, py-spy writes its profile
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            if process.returncode not in (0, -2):
                log.seek(0)
                print(log.read().decode(errors="replace")[-3000:], file=sys.stderr)


def _child_pid(pid: int) -> int:
    """The server process py-spy started (its only child)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0])


def outbox_jobs(home: Path, db: str | None = None) -> int:
    """Provisioning jobs queued in the home (none expected: no outbound targets)."""
    with Iam.open(home=str(home), db=db) as iam, iam.db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(prov_jobs)).scalar_one())


# ---------------------------------------------------------------- requests
def user_body(i: int) -> dict[str, Any]:
    """User i, as both servers receive it (the shape our SCIM connector sends)."""
    name = f"load{i:07d}"
    return {"schemas": [SCIM_USER], "userName": name,
            "name": {"givenName": f"Given{i % 997}", "familyName": f"Family{i % 1009}"},
            "emails": [{"value": f"{name}@example.com", "type": "work"}], "active": True}


def patch_body(i: int) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "name.givenName", "value": f"Patched{i}"},
        {"op": "replace", "path": "active", "value": i % 2 == 0}]}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str] | None = None
    body: dict[str, Any] | None = None
    user: int = 0  # the index of the user the request is about


@dataclass
class Phase:
    """One operation against one server in one round."""

    server: str
    operation: str
    requests: int
    seconds: float
    latencies: list[float]
    server_cpu: float
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def check(server: Server, request: Request, response: httpx.Response,
          operation: str) -> str | None:
    """What is wrong with the answer (None: it is the one expected); notes a created id
    and a PATCHed user in the server's state."""
    where = f"{request.method} {request.path} {request.params or ''}"
    if response.status_code != server.expected[operation]:
        return f"{where} answered {response.status_code}: {response.text[:500]}"
    if operation == "POST":
        server.state.ids[request.user] = response.json()["id"]
    elif operation == "PATCH":
        server.state.patched.add(request.user)
    elif operation == "GET filter":
        found = [r.get("userName") for r in response.json().get("Resources", [])]
        if found != [user_body(request.user)["userName"]]:
            return f"{where} found {found}"
    return None


async def run_phase(client: httpx.AsyncClient, server: Server, operation: str,
                    requests: list[Request], concurrency: int) -> Phase:
    work = iter(requests)
    latencies: list[float] = []
    wrong: list[str] = []

    async def worker(token: str) -> None:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
        for request in work:
            started = time.perf_counter()
            response = await client.request(request.method, server.base + request.path,
                                            params=request.params, json=request.body,
                                            headers=headers)
            latencies.append(time.perf_counter() - started)
            problem = check(server, request, response, operation)
            if problem is not None:
                wrong.append(problem)

    cpu, server_cpu = time.process_time(), server.cpu()
    started = time.perf_counter()
    await asyncio.gather(*(worker(server.tokens[w % len(server.tokens)])
                           for w in range(concurrency)))
    seconds = time.perf_counter() - started
    if wrong:
        raise SystemExit(f"{server.name}: {len(wrong)} of {len(requests)} {operation} "
                         f"answers were not the expected ones; the first: {wrong[0]}")
    return Phase(server.name, operation, len(requests), seconds, latencies,
                 server.cpu() - server_cpu, time.process_time() - cpu)


def round_requests(operation: str, first: int, count: int, created: int,
                   rng: random.Random) -> list[Request]:
    """The requests of one phase, the same for both servers (PATCH ids are filled in per
    server from the POST answers)."""
    if operation == "POST":
        return [Request("POST", "/Users", body=user_body(i), user=i)
                for i in range(first, first + count)]
    if operation == "GET filter":
        return [Request("GET", "/Users",
                        params={"filter": f'userName eq "{user_body(i)["userName"]}"'}, user=i)
                for i in (rng.randrange(created) for _ in range(count))]
    # Distinct users: two PATCHes of one user at once may answer 412 on our server (its
    # read-modify-write is not serialized; see the notes), which is not what is measured.
    return [Request("PATCH", "", body=patch_body(i), user=i)
            for i in rng.sample(range(created), count)]


def with_ids(requests: list[Request], state: State) -> list[Request]:
    return [Request(r.method, f"/Users/{state.ids[r.user]}", r.params, r.body, r.user)
            if r.method == "PATCH" else r for r in requests]


async def throughput(servers: list[Server], rounds: int, per_round: int,
                     concurrency: int) -> list[tuple[int, Phase]]:
    rng = random.Random(7)
    # uvicorn closes a connection idle for 5 s (while the other server has its turn): the
    # client must not reuse one that old, or the close races the next request.
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency,
                          keepalive_expiry=2.0)
    clients = {s.name: httpx.AsyncClient(limits=limits, timeout=120) for s in servers}
    phases: list[tuple[int, Phase]] = []
    try:
        for number in range(rounds):
            order = servers if number % 2 == 0 else servers[::-1]
            for operation in OPERATIONS:
                requests = round_requests(operation, number * per_round, per_round,
                                          (number + 1) * per_round, rng)
                for server in order:
                    phase = await run_phase(clients[server.name], server, operation,
                                            with_ids(requests, server.state), concurrency)
                    phases.append((number + 1, phase))
                    print(f"round {number + 1} {operation:10} {server.name:12} "
                          f"{phase.rate:7.1f} req/s", flush=True)
    finally:
        for client in clients.values():
            await client.aclose()
    return phases


# ---------------------------------------------------------------- scale
def lookups(servers: dict[int, Server], count: int) -> dict[tuple[int, str], list[float]]:
    """Single requests alternating between the servers: n -> operation -> latencies."""
    rng = random.Random(11)
    queries = {"userName eq": lambda i: f'userName eq "{username(i)}"',
               "emails.value eq": lambda i: f'emails.value eq "{email(i)}"'}
    times: dict[tuple[int, str], list[float]] = {(n, q): [] for n in servers for q in queries}
    clients = {n: httpx.Client(base_url=s.base, timeout=60,
                               limits=httpx.Limits(keepalive_expiry=2.0),
                               headers={"Authorization": f"Bearer {s.tokens[0]}"})
               for n, s in servers.items()}
    try:
        for rep in range(count + count // 10):  # the first tenth warms up, not counted
            order = list(servers) if rep % 2 == 0 else list(servers)[::-1]
            for name, query in queries.items():
                for n in order:
                    i = rng.randrange(n)
                    started = time.perf_counter()
                    response = clients[n].get("/Users", params={"filter": query(i)})
                    elapsed = time.perf_counter() - started
                    found = response.json().get("Resources", [])
                    if response.status_code != 200 or len(found) != 1 \
                            or found[0]["userName"] != username(i):
                        raise SystemExit(f"{n:,} users, {query(i)}: {response.status_code} "
                                         f"{response.text[:300]}")
                    if rep >= count // 10:
                        times[(n, name)].append(elapsed)
    finally:
        for client in clients.values():
            client.close()
    return times


# ---------------------------------------------------------------- report
def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def spread(values: list[float]) -> str:
    """Median and range of per-round ratios."""
    return f"**{median(values):.2f}** ({min(values):.2f}-{max(values):.2f})"


def throughput_report(phases: list[tuple[int, Phase]], concurrency: int,
                      backend: str) -> tuple[str, dict[str, dict[str, float]]]:
    """The phases, and per peer and operation the ratios ours / theirs of each round
    (requests/s and server CPU per request; against scim2-server the median is what the
    target is about, against django-scim2 it is recorded only). Returns, per peer and
    operation, the median CPU per request ratio."""
    cpu_target = CPU_TARGETS[backend]
    rows = [[number, p.operation, p.server, p.requests, f"{p.seconds:.2f}", f"{p.rate:.1f}",
             ms(percentile(p.latencies, 50)), ms(percentile(p.latencies, 95)),
             f"{p.server_cpu * 1000 / p.requests:.2f}", f"{p.client_cpu * 1000 / p.requests:.2f}"]
            for number, p in phases]
    peers = [name for name in PEERS if any(p.server == name for _, p in phases)]
    summary: list[list[str]] = []
    ratios: dict[str, dict[str, float]] = {peer: {} for peer in peers}
    for operation in OPERATIONS:
        by = {name: [p for _, p in phases if p.operation == operation and p.server == name]
              for name in (OURS, *peers)}
        rate = {name: sum(p.requests for p in ps) / sum(p.seconds for p in ps)
                for name, ps in by.items()}
        lat = {name: f"{ms(percentile([x for p in ps for x in p.latencies], 50))} / "
                     f"{ms(percentile([x for p in ps for x in p.latencies], 95))}"
               for name, ps in by.items()}
        cpu = {name: sum(p.server_cpu for p in ps) * 1000 / sum(p.requests for p in ps)
               for name, ps in by.items()}
        for peer in peers:
            # Rounds pair the phases: by[...][i] of each server ran in round i + 1.
            pairs = list(zip(by[OURS], by[peer], strict=True))
            rps = [o.rate / t.rate for o, t in pairs]
            cpus = [(o.server_cpu / o.requests) / (t.server_cpu / t.requests)
                    for o, t in pairs]
            ratios[peer][operation] = median(cpus)
            verdict = record_ratios(operation, peer, backend, rps, cpus)
            summary.append([operation, peer, f"{rate[OURS]:.1f}", f"{rate[peer]:.1f}",
                            spread(rps), lat[OURS], lat[peer],
                            f"{cpu[OURS]:.2f} / {cpu[peer]:.2f}", spread(cpus), verdict])
    text = "\n".join([
        f"### (1) Throughput and CPU per request, concurrency {concurrency}", "",
        "Every phase (CPU ms/request: of the server process, ours with its PostgreSQL "
        "backends when on PostgreSQL, django-scim2's gunicorn master with its workers; and "
        "of the load generator):", "",
        table(["round", "operation", "server", "requests", "seconds", "req/s", "p50 ms",
               "p95 ms", "server CPU ms/req", "client CPU ms/req"], rows), "",
        "All rounds (requests/s = all requests / all phase seconds; latency p50 / p95 over "
        "every request; ratios ours / theirs per round, median (min-max)); the target is "
        f"about scim2-server (CPU <= {cpu_target:g}), django-scim2 is reported only:", "",
        table(["operation", "theirs", "ours req/s", "theirs req/s", "req/s ours / theirs",
               "ours p50 / p95 ms", "theirs p50 / p95 ms", "server CPU ms/req ours / theirs",
               "CPU/req ours / theirs", "target"], summary)])
    return text, ratios


def record_ratios(operation: str, peer: str, backend: str, rps: list[float],
                  cpus: list[float]) -> str:
    """Record one operation's per-round ratios against one peer (``common.record``);
    the verdict of its CPU target for the report."""
    ours = BACKENDS[backend]
    # A run on a server database keeps its own results file: it must not replace SQLite's.
    part = "" if backend == "sqlite" else backend
    if peer == THEIRS:
        target = f"<= {CPU_TARGETS[backend]:g}"
        record(__file__, "5", f"SCIM {operation}, requests/s ours / scim2-server ({ours})",
               rps, ">= 1", part=part)
        record(__file__, "19", f"SCIM {operation}, server CPU per request ours / "
               f"scim2-server ({ours})", cpus, target, part=part)
        return "met" if target_met(median(cpus), target) else "**not met**"
    record(__file__, "19", f"SCIM {operation}, requests/s ours ({ours}) / django-scim2 "
           "(SQLite, gunicorn 2 workers)", rps, REPORT_ONLY, part=part)
    record(__file__, "19", f"SCIM {operation}, server CPU per request ours ({ours}) / "
           "django-scim2 (gunicorn master + 2 workers)", cpus, REPORT_ONLY, part=part)
    return "no target"


def scale_report(times: dict[tuple[int, str], list[float]], small: int,
                 large: int) -> tuple[str, float]:
    rows, worst = [], 0.0
    for name in dict.fromkeys(q for _, q in times):
        s, g = times[(small, name)], times[(large, name)]
        ratio = percentile(g, 95) / percentile(s, 95)
        worst = max(worst, ratio)
        record(__file__, "5, 19", f"SCIM GET filter={name}, p95 {large:,} / {small:,} users",
               [ratio], "<= 1.5")
        rows.append([f"filter={name}", len(s), ms(percentile(s, 50)), ms(percentile(s, 95)),
                     ms(percentile(g, 50)), ms(percentile(g, 95)), f"**{ratio:.2f}**"])
    text = "\n".join([
        f"### (2) GET by filter, {small:,} vs {large:,} users", "",
        "One request at a time, alternating between the two servers, a random existing user "
        "each time (latency: request to answer, through HTTP):", "",
        table(["query", "requests each", f"{small:,} p50 ms", f"{small:,} p95 ms",
               f"{large:,} p50 ms", f"{large:,} p95 ms", "p95 ratio"], rows), "",
        f"**worst p95 ratio {worst:.2f}** (target <= 2): {'pass' if worst <= 2 else 'not met'}"])
    return text, worst


# ---------------------------------------------------------------- main
def run_throughput(args: argparse.Namespace) -> tuple[str, dict[str, dict[str, float]], int]:
    """Part (1): its report, the median CPU ratio ours / theirs per peer and operation, the
    jobs queued."""
    token = "bench-token"
    with tempfile.TemporaryDirectory() as tmp, \
            system_database(args.backend, Path(tmp)) as db:
        home = Path(tmp) / "home"
        add_clients(home, 0, db=db)  # create the deployment now, so serve seeds no sample
        try:
            with our_server(home, args.concurrency,
                            args.profile and args.profile / "throughput.txt", db=db,
                            extra=("--processes", str(args.processes))) as ours, \
                    scim_server(bearer_tokens=[token], tenants=False) as peer, \
                    django_scim_server(token, Path(tmp)) as django:
                theirs = Server(THEIRS, f"{peer.origin}/v2", [token], peer.process.pid)
                # django-scim2 answers a PATCH 200 with the user, asked for or not.
                persisting = Server(DJANGO, django.base, [token], django.pid,
                                    expected={**EXPECTED, "PATCH": 200})
                phases = asyncio.run(throughput([ours, theirs, persisting], args.rounds,
                                                args.requests, args.concurrency))
                check_stored(django, persisting.state, args.rounds * args.requests)
        except PeerUnavailable as exc:
            raise SystemExit(str(exc)) from None
        jobs = outbox_jobs(home, db)
    if jobs:
        raise SystemExit(f"{jobs} provisioning jobs were queued; expected none")
    return (*throughput_report(phases, args.concurrency, args.backend), jobs)


def check_stored(django: DjangoScim, state: State, created: int, sample: int = 50) -> None:
    """django-scim2 persisted what it answered: every user POSTed is a row of its SQLite
    file, and a sample of the PATCHed users hold the patched values (read from the file)."""
    rows = django.user_count()
    if rows != created or len(state.ids) != created:
        raise SystemExit(f"{DJANGO}: {rows} users stored, {len(state.ids)} created answered, "
                         f"{created} POSTed")
    rng = random.Random(13)
    for i in rng.sample(sorted(state.patched), min(sample, len(state.patched))):
        body, row = patch_body(i), django.user_row(user_body(i)["userName"])
        want = (body["Operations"][0]["value"], body["Operations"][1]["value"])
        if row is None or row.scim_id != state.ids[i] or (row.first_name, row.is_active) != want:
            raise SystemExit(f"{DJANGO}: user {i} PATCHed to {want} is stored as {row}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=500,
                        help="requests per operation, per server, per round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=400,
                        help="GET-by-filter requests per query and store")
    parser.add_argument("--part", choices=("both", "throughput", "scale"), default="both")
    parser.add_argument("--backend", choices=tuple(CPU_TARGETS), default="sqlite",
                        help="our system database in the throughput part: SQLite in the "
                             "home, or a fresh schema on the local PostgreSQL "
                             "(MWARE_TEST_POSTGRES, as the tests)")
    parser.add_argument("--processes", type=int, default=1,
                        help="our serve's processes in the throughput part (default 1, as "
                             "the peers' one server process)")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="run our servers under py-spy; the samples go to DIR")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"default {RESULTS.name} (SQLite), {PG_RESULTS.name} (PostgreSQL)")
    args = parser.parse_args()
    args.out = args.out or (RESULTS if args.backend == "sqlite" else PG_RESULTS)
    command = " ".join([".venv/bin/python bench/scim_inbound.py", *sys.argv[1:]])
    facts = machine_facts()
    print(facts, flush=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    part1, ratios, jobs = "", {}, 0
    if args.part != "scale":
        part1, ratios, jobs = run_throughput(args)
        print(part1, flush=True)

    part2, worst = "", None
    if args.part != "throughput":
        with contextlib.ExitStack() as stack:
            # One client asks as fast as the servers answer: no rate limit (it measures
            # latency, and the bucket of one application would answer 429).
            servers = {n: stack.enter_context(our_server(
                deployment(n, rebuild=False), 1,
                args.profile and args.profile / f"scale_{n}.txt", ("--scim-rate", "0")))
                for n in (args.small, args.large)}
            times = lookups(servers, args.lookups)
        part2, worst = scale_report(times, args.small, args.large)
        print(part2, flush=True)

    text = "\n".join([
        "# Inbound SCIM 2.0 server benchmark", "",
        f"Command: `{command}`", "",
        f"Machine: {facts}; run took {time.perf_counter() - started:.0f} s", "",
        "Ours: `mware-iam --home TMP serve` (uvicorn, "
        + ("SQLite in the home" if args.backend == "sqlite" else
           "`--db` a fresh schema on the local PostgreSQL, its backends' CPU added to ours")
        + ", the provisioning "
        "worker pool running; no outbound targets, so the planner queued "
        f"{jobs} jobs in the throughput part). Theirs: `scim2-server --hostname 127.0.0.1 "
        "--bearer-token T` "
        "(wsgiref, threaded, in memory), and django-scim2 (`bench/django_scim/`: Django "
        "on a SQLite file in WAL mode, connections kept, under `gunicorn --workers 2 "
        "--preload`, sync workers, one bearer token hashed and compared per request; its "
        "CPU: master and workers; every POSTed user found in its SQLite file after the "
        "rounds, a sample of the PATCHed ones with their values). Load generator: this "
        "process, asyncio + httpx, each client authenticated as its own application (our "
        "rate limit is per application).", "",
        part1, "", part2, ""])
    notes = args.out.read_text().partition(NOTES)[2] if args.out.exists() else ""
    args.out.write_text(text + "\n" + NOTES + notes if notes else text)
    for peer, by_operation in ratios.items():
        summary = ", ".join(f"{op} {r:.2f}" for op, r in by_operation.items())
        print(f"server CPU per request ours / {peer}, median: {summary}")
    if worst is not None:
        print(f"GET filter p95 {args.large:,} / {args.small:,} users: {worst:.2f}")


if __name__ == "__main__":
    main()
