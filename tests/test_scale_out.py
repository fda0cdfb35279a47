"""``serve --processes N``: several serving processes, one deployment (issue 19 item 1).

Real processes on a real PostgreSQL (the default's SQLite case too): they share a port,
a killed one comes back, SIGTERM lets a slow request finish, the rate bucket and token
revocation hold across processes, a userstore added by another process is seen at once,
``/ready`` names a store that does not answer, and a job written anywhere wakes a worker
(LISTEN/NOTIFY). A connection stays on the process that accepted it, so a test that must
reach each process holds one client (one keep-alive connection) per process.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.apps import Application
from core.http.supervisor import STABLE_SECONDS, Supervisor
from core.iam import Iam
from core.identity.events import Initiator
from core.inbound.ratelimit import SharedTokenBuckets
from core.inbound.tokencache import TOKEN_CACHE_SECONDS
from core.provisioning import outbox
from core.provisioning.listener import JobListener
from core.provisioning.outbox import JobSpec, JobState, Operation
from tests.conftest import FAST_ARGON2
from tests.peers import Fault, FaultProxy, free_port
from tests.processes import MwareProcess, wait_until
from tests.provisioning_helpers import connect, peer_users
from tests.scim_api import USER
from tests.servers import database_url
from tests.test_cli_process import mware

pytestmark = pytest.mark.server

#: Generous bounds for a loaded 2-core machine: safety nets, not speed assertions.
START_SECONDS = 60.0


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    with database_url("postgresql", str(tmp_path)) as url:
        yield url


class Deployment:
    """A home on ``db`` with an application ``crm`` and a token for it."""

    def __init__(self, tmp_path: Path, db: str) -> None:
        self.home, self.db, self.tmp = tmp_path / "home", db, tmp_path
        with Iam.open(str(self.home), db, FAST_ARGON2) as iam:
            iam.save_app(Initiator.admin(), Application(name="crm"))
            self.token = iam.issue_token(Initiator.admin(), "crm")

    def serve(self, *args: str) -> tuple[MwareProcess, str]:
        port = free_port()
        proc = MwareProcess(
            self.home,
            ["serve", "--port", str(port), "--poll", "0.2", *args],
            self.tmp / "serve.log",
            self.db,
        )
        origin = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: proc.process.poll() is not None or _answers(origin),
            START_SECONDS,
            "serve to answer",
        )
        assert proc.process.poll() is None, proc.log()
        return proc, origin

    def cli(self, *args: str, stdin: str | None = None) -> str:
        result = mware("--home", str(self.home), "--db", self.db, *args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout


def _answers(origin: str) -> bool:
    try:
        return httpx.get(f"{origin}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _pid(client: httpx.Client) -> int:
    return int(client.get("/health").json()["process"])


def clients_per_process(
    origin: str, count: int, token: str | None = None
) -> dict[int, httpx.Client]:
    """One client (one kept-alive connection) on each of ``count`` serving processes
    (waiting for those still starting to listen)."""
    found: dict[int, httpx.Client] = {}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + START_SECONDS
    while len(found) < count:  # the kernel hashes each new connection onto a process
        if time.monotonic() > deadline:
            for client in found.values():
                client.close()
            raise AssertionError(f"connections reached only processes {sorted(found)}")
        client = httpx.Client(base_url=origin, headers=headers, timeout=30)
        pid = _pid(client)
        if pid in found:
            client.close()
        else:
            found[pid] = client
    return found


def children(parent: int) -> set[int]:
    path = Path(f"/proc/{parent}/task/{parent}/children")
    return {int(pid) for pid in path.read_text().split()}


def cores(pid: int) -> set[frozenset[int]]:
    """The cores each thread of a process may run on (one set when all agree)."""
    return {frozenset(os.sched_getaffinity(int(thread)))
            for thread in os.listdir(f"/proc/{pid}/task")}


#: Pinning needs two cores to choose from (on one it changes nothing).
MACHINE_CORES = frozenset(os.sched_getaffinity(0))
needs_two_cores = pytest.mark.skipif(len(MACHINE_CORES) < 2,
                                     reason="pinning to a core needs two cores or more")


# ---------------------------------------------------------------- processes
def test_processes_share_the_port_and_a_killed_one_is_restarted(
    tmp_path: Path, pg_url: str
) -> None:
    deployment = Deployment(tmp_path, pg_url)
    proc, origin = deployment.serve("--processes", "2")
    try:
        clients = clients_per_process(origin, 2)
        assert set(clients) == children(proc.process.pid)
        victim, survivor = sorted(clients)
        placed = {pid: cores(pid) for pid in clients}
        for client in clients.values():
            client.close()
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: len(children(proc.process.pid) - {victim, survivor}) == 1,
            START_SECONDS,
            "a new serving process",
        )
        again = clients_per_process(origin, 2)  # two processes answer again
        for client in again.values():
            client.close()
        [successor] = set(again) - {survivor}
        placed_again = cores(successor)
    finally:
        code = proc.stop(signal.SIGTERM)
    log = proc.log()
    assert code == 0, log
    assert victim not in again and survivor in again
    assert f"serving process {victim} was killed by SIGKILL" in log
    assert "Traceback" not in log
    if len(MACHINE_CORES) >= 2:  # each on a core of its own; the restarted one on its own
        assert all(len(found) == 1 and len(next(iter(found))) == 1
                   for found in placed.values()), placed
        assert placed[victim] != placed[survivor]
        assert placed_again == placed[victim]


def test_on_sqlite_serve_runs_one_process_unless_asked(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path, f"sqlite:///{tmp_path}/system.db")
    proc, origin = deployment.serve()
    try:
        assert children(proc.process.pid) == set()  # it serves itself
        assert httpx.get(f"{origin}/health", timeout=5).json() == {
            "status": "ok",
            "process": proc.process.pid,
        }
    finally:
        assert proc.stop(signal.SIGTERM) == 0


@needs_two_cores
def test_a_serving_process_runs_on_one_core_unless_told_not_to(tmp_path: Path) -> None:
    """Every thread of it, those started to serve requests included, on the first core;
    with --no-pin, wherever the kernel puts them."""
    deployment = Deployment(tmp_path, f"sqlite:///{tmp_path}/system.db")
    for args, expected in (((), {frozenset({min(MACHINE_CORES)})}),
                           (("--no-pin",), {MACHINE_CORES})):
        proc, origin = deployment.serve(*args)
        try:
            answer = httpx.post(f"{origin}/scim2/Users", timeout=10,
                                headers={"Authorization": f"Bearer {deployment.token}"},
                                json={"schemas": [USER], "userName": f"user{len(args)}"})
            assert answer.status_code == 201, answer.text  # the lane's thread has started
            assert cores(proc.process.pid) == expected
        finally:
            assert proc.stop(signal.SIGTERM) == 0


def test_sigterm_lets_an_in_flight_slow_request_finish(tmp_path: Path, pg_url: str) -> None:
    deployment = Deployment(tmp_path, pg_url)
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        deployment.cli(
            "userstore",
            "add",
            "SLOW",
            "--type",
            "ldap",
            "--set",
            f"connection_url=ldap://127.0.0.1:{silent.getsockname()[1]}",
            "--set",
            "bind_dn=cn=svc",
            "--set",
            "user_search_base=ou=u,dc=x",
            "--secret-stdin",
            "bind_password",
            stdin="pw\n",
        )
        proc, origin = deployment.serve("--processes", "2")
        answer: list[httpx.Response] = []
        slow = threading.Thread(
            target=lambda: answer.append(httpx.get(f"{origin}/ready", timeout=30))
        )
        try:
            slow.start()
            time.sleep(1.0)  # the request waits on the silent store (up to 5 s)
            assert not answer
            proc.process.send_signal(signal.SIGTERM)
            slow.join(30)
        finally:
            code = (
                proc.stop(signal.SIGTERM) if proc.process.poll() is None else proc.process.wait(30)
            )
            proc.close()
    assert code == 0, proc.log()
    [response] = answer
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "failed": {"SLOW": "did not answer within 5 s"},
    }
    assert "Traceback" not in proc.log()


def test_sigterm_lets_a_job_in_flight_finish(
    tmp_path: Path, pg_url: str, scim_peer: str, fault_proxy: FaultProxy
) -> None:
    """A job written by another process wakes a serving process's worker (NOTIFY); a
    SIGTERM while the peer holds its request lets it finish and be recorded."""
    deployment = Deployment(tmp_path, pg_url)
    with Iam.open(str(deployment.home), pg_url, FAST_ARGON2) as iam:
        connect(iam, fault_proxy.url(scim_peer))
    fault_proxy.script(Fault.delay(3.0))
    proc, _ = deployment.serve("--processes", "2", "--poll", "30")  # only NOTIFY is prompt
    try:
        deployment.cli("user", "add", "olly", "--no-password")
        wait_until(lambda: fault_proxy.seen, 10, "the job's request at the peer")
        proc.process.send_signal(signal.SIGTERM)
        code = proc.process.wait(60)
    finally:
        proc.close()
    log = proc.log()
    assert code == 0, log
    assert "upsert_user PRIMARY/olly -> peer:scim2: succeeded" in log
    assert len(peer_users(scim_peer, "olly")) == 1
    with Iam.open(str(deployment.home), pg_url, FAST_ARGON2) as iam:
        [job] = iam.provisioning.jobs()
    assert job.state == JobState.SUCCEEDED  # recorded before the exit, not left leased


# ---------------------------------------------------------------- one deployment
def test_the_rate_bucket_is_one_for_all_processes(tmp_path: Path, pg_url: str) -> None:
    deployment = Deployment(tmp_path, pg_url)
    proc, origin = deployment.serve("--processes", "2", "--scim-rate", "0.01", "--scim-burst", "6")
    try:
        clients = clients_per_process(origin, 2, deployment.token)
        codes = [
            client.get("/scim2/Users", params={"count": "1"}).status_code
            for _ in range(5)
            for client in clients.values()
        ]
        for client in clients.values():
            client.close()
    finally:
        assert proc.stop(signal.SIGTERM) == 0
    # 6 in the burst for the application, whichever process served them; 0.01/s refills
    # nothing in the few seconds this takes
    assert codes[:6] == [200] * 6 and codes[6:] == [429] * 4


def test_a_revoked_token_is_refused_by_every_process(tmp_path: Path, pg_url: str) -> None:
    deployment = Deployment(tmp_path, pg_url)
    proc, origin = deployment.serve("--processes", "2")
    try:
        clients = clients_per_process(origin, 2, deployment.token)
        for client in clients.values():  # each process now remembers the token
            assert client.get("/scim2/Users", params={"count": "1"}).status_code == 200
        deployment.cli("app", "token", "crm", "--revoke", deployment.token[-4:])
        revoked = time.monotonic()
        refused: dict[int, float] = {}
        while len(refused) < 2 and time.monotonic() - revoked < TOKEN_CACHE_SECONDS + 30:
            for pid, client in clients.items():
                if (
                    pid not in refused
                    and client.get("/scim2/Users", params={"count": "1"}).status_code == 401
                ):
                    refused[pid] = time.monotonic() - revoked
            time.sleep(0.2)  # the connections stay alive (the server keeps them 5 s)
        for client in clients.values():
            client.close()
    finally:
        assert proc.stop(signal.SIGTERM) == 0
    assert set(refused) == set(clients)
    # the cache keeps a check 5 s; the rest is generous room for a loaded machine's latency
    assert max(refused.values()) <= TOKEN_CACHE_SECONDS + 10.0


def test_a_userstore_added_by_another_process_is_seen_by_every_process(
    tmp_path: Path, pg_url: str
) -> None:
    deployment = Deployment(tmp_path, pg_url)
    proc, origin = deployment.serve("--processes", "2")
    try:
        clients = clients_per_process(origin, 2)
        for client in clients.values():
            assert client.get("/ready").json() == {"status": "ready"}
        deployment.cli(
            "userstore",
            "add",
            "DOWN",
            "--type",
            "ldap",
            "--set",
            f"connection_url=ldap://127.0.0.1:{free_port()}",
            "--set",
            "bind_dn=cn=svc",
            "--set",
            "user_search_base=ou=u,dc=x",
            "--secret-stdin",
            "bind_password",
            stdin="pw\n",
        )
        added = time.monotonic()
        for client in clients.values():  # a closed port: refused at once
            wait_until(
                lambda c=client: c.get("/ready").status_code == 503, 30, "the new store in /ready"
            )
        seen = time.monotonic() - added
        bodies = [client.get("/ready").json() for client in clients.values()]
        for client in clients.values():
            client.close()
    finally:
        assert proc.stop(signal.SIGTERM) == 0
    assert seen < 10.0  # a second by design (REFRESH_SECONDS); room for a loaded machine
    for body in bodies:
        assert body["status"] == "unavailable" and list(body["failed"]) == ["DOWN"]
        assert "unreachable" in body["failed"]["DOWN"]


# ---------------------------------------------------------------- LISTEN/NOTIFY
def test_a_committed_job_wakes_a_listening_worker(tmp_path: Path, pg_url: str) -> None:
    with Iam.open(str(tmp_path / "home"), pg_url, FAST_ARGON2) as iam:
        woken = threading.Event()
        listener = JobListener(iam.db.engine, woken.set)
        listener.start()
        try:
            wait_until(listener.listening.is_set, 10, "the LISTEN")
            woken.clear()  # the wake that covers jobs written before the LISTEN
            spec = JobSpec(
                target="peer:scim2",
                entity_type="user",
                domain="PRIMARY",
                entity_id="u1",
                name="u1",
                operation=Operation.UPSERT_USER,
                payload={},
            )
            with iam.db.transaction() as conn:
                outbox.enqueue(conn, spec, "resident")
                outbox.enqueue(conn, spec, "resident", fresh=True)
                time.sleep(0.5)
                assert not woken.is_set()  # nothing before the commit
            assert woken.wait(10), "no notification within 10 s of the commit"
            woken.clear()
            with pytest.raises(RuntimeError), iam.db.transaction() as conn:
                outbox.enqueue(conn, spec, "resident", fresh=True)
                raise RuntimeError("rolled back")
            assert not woken.wait(1.0)  # a rolled-back job wakes nobody
        finally:
            listener.close()


def test_shared_buckets_are_one_per_key_across_openers(tmp_path: Path) -> None:
    """Two openers of one file (as two processes are) draw on the same bucket per key."""
    first = SharedTokenBuckets(0.001, 3, tmp_path / "buckets")
    second = SharedTokenBuckets(0.001, 3, tmp_path / "buckets")
    try:
        taken = [b.take("crm") for b in (first, second, first, second)]
        assert taken[:3] == [0.0, 0.0, 0.0] and taken[3] > 0  # 3 in the burst, shared
        assert second.take("hr") == 0.0  # another application has its own bucket
    finally:
        first.close()
        second.close()


def test_a_process_that_keeps_failing_is_restarted_ever_more_slowly() -> None:
    supervisor = Supervisor(1, lambda _index: None)
    [slot] = supervisor.slots
    delays = []
    for _ in range(8):  # it failed right after each start
        slot.started = time.monotonic()
        supervisor._exited(slot, 4242, 1 << 8)  # exit status 1
        delays.append(round(slot.restart_at - time.monotonic(), 1))
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    slot.started = time.monotonic() - STABLE_SECONDS  # this one ran long enough
    supervisor._exited(slot, 4243, signal.SIGKILL)  # killed by a signal
    assert slot.restart_at <= time.monotonic() and slot.quick_exits == 0
