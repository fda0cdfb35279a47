"""A worker process killed with SIGKILL in the middle of a run loses and duplicates nothing.

300 users are queued; a ``mware-iam worker`` process starts on them behind a proxy that
holds the first requests a little, so the run is long enough to be cut. It is killed
while requests are in flight; the proxy still delivers those to the peer, but the answers
reach nobody: the peer created users whose jobs the outbox still has as in flight. When
the dead worker's leases expire (set here to the past: a restarted worker after the lease
time does exactly the same) a new worker runs those jobs again: the create meets 409,
the existing user is adopted, and in the end the peer holds every user exactly once.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from core.iam import Iam
from core.identity.events import Initiator
from core.identity.service import ImportRow
from core.provisioning.outbox import JobState
from core.schema import prov_jobs, prov_mappings
from tests.conftest import FAST_ARGON2
from tests.peers import Fault, FaultProxy
from tests.processes import peer_total, wait_until, worker
from tests.provisioning_helpers import connect, drain, peer_users

USERS = 300
#: The first requests wait this long at the proxy: the run cannot end before the kill.
HELD = Fault.delay(0.1)


def states(iam: Iam) -> dict[str, int]:
    with iam.db.engine.connect() as conn:
        return {s: int(n) for s, n in conn.execute(
            select(prov_jobs.c.state, func.count()).group_by(prov_jobs.c.state))}


def test_sigkilled_worker_resumes_without_losing_or_duplicating(
        tmp_path: Path, scim_peer: str, fault_proxy: FaultProxy) -> None:
    home = tmp_path / "home"
    names = [f"crash{i:03d}" for i in range(USERS)]
    with Iam.open(home=str(home), argon2=FAST_ARGON2) as iam:
        connect(iam, fault_proxy.url(scim_peer), concurrency=4)
        iam.identity.import_users(Initiator.admin(), [
            ImportRow(i + 2, name, claims={"givenname": name}) for i, name in enumerate(names)])
        assert states(iam) == {"pending": USERS}
    fault_proxy.script(*[HELD] * 100)

    first = worker(home, tmp_path / "first.log")
    try:
        wait_until(lambda: peer_total(scim_peer) >= 20, 30, "the first users at the peer")
    finally:
        first.kill()
    time.sleep(HELD.seconds + 0.5)  # requests held at the proxy when it died arrive now
    at_peer = peer_total(scim_peer)
    assert 20 <= at_peer < USERS  # killed mid-run
    with Iam.open(home=str(home), argon2=FAST_ARGON2) as iam:
        cut = states(iam)
        # the users the peer created whose answers were lost with the process
        lost = at_peer - cut.get("succeeded", 0)
        assert cut.get("inflight", 0) >= lost >= 1  # the held requests (concurrency 4)
        with iam.db.engine.begin() as conn:
            conn.execute(update(prov_jobs).where(prov_jobs.c.state == "inflight")
                         .values(lease_until=datetime.now(UTC) - timedelta(seconds=1)))

    second = worker(home, tmp_path / "second.log")
    try:
        with Iam.open(home=str(home), argon2=FAST_ARGON2) as iam:
            wait_until(lambda: states(iam) == {"succeeded": USERS}, 45,
                       "every job to succeed")
    finally:
        assert second.stop(signal.SIGTERM) == 0, second.log()

    remote = Counter(u["userName"] for u in peer_users(scim_peer))
    assert sorted(remote) == names and set(remote.values()) == {1}
    with Iam.open(home=str(home), argon2=FAST_ARGON2) as iam:
        with iam.db.engine.connect() as conn:
            mapped = conn.execute(select(prov_mappings.c.remote_id, prov_mappings.c.adopted)
                                  ).all()
        assert len(mapped) == USERS
        assert {r.remote_id for r in mapped} == {u["id"] for u in peer_users(scim_peer)}
        assert sum(r.adopted for r in mapped) == lost  # each lost answer: a 409, adopted
        assert all(j.state is JobState.SUCCEEDED for j in iam.provisioning.jobs(limit=USERS))


def test_outcomes_wait_while_the_database_is_locked(tmp_path: Path, scim_peer: str,
                                                    fault_proxy: FaultProxy) -> None:
    """An answer that arrives while another process holds SQLite's write lock is kept in
    memory and recorded once the lock is released: the job is not run a second time."""
    home = tmp_path / "home"
    db_file = tmp_path / "system.db"
    with Iam.open(home=str(home), db=f"sqlite:///{db_file}?timeout=0.2",
                  argon2=FAST_ARGON2) as iam:
        connect(iam, fault_proxy.url(scim_peer))
        iam.identity.add_user(Initiator.admin(), "locked", None, {})
        fault_proxy.script(Fault.delay(1.0))  # the answer comes while the lock is held
        released = threading.Event()

        def hold_the_write_lock() -> None:
            wait_until(lambda: fault_proxy.seen, 10, "the request at the proxy", every=0.01)
            other = sqlite3.connect(db_file, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                time.sleep(2.0)
                other.execute("COMMIT")
            finally:
                other.close()
                released.set()

        holder = threading.Thread(target=hold_the_write_lock)
        holder.start()
        try:
            assert drain(iam) == 1
        finally:
            holder.join()
        assert released.is_set()
        [job] = iam.provisioning.jobs()
        _job, attempts = iam.provisioning.job(job.pk)
        assert job.state is JobState.SUCCEEDED and job.attempts == 1
        assert [a["outcome"] for a in attempts] == ["succeeded"]
        assert len(peer_users(scim_peer, "locked")) == 1
