"""Three ``mware-iam worker`` processes share one PostgreSQL outbox.

The queue is claimed with ``FOR UPDATE SKIP LOCKED``: every job is run by exactly one
worker, once, and the peer receives every user exactly once.
"""

from __future__ import annotations

import re
import signal
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from core.iam import Iam
from core.identity.events import Initiator
from core.identity.service import ImportRow
from core.schema import prov_attempts, prov_jobs
from tests.conftest import FAST_ARGON2
from tests.processes import MwareProcess, wait_until, worker
from tests.provisioning_helpers import connect, peer_users
from tests.servers import database_url

USERS = 200
WORKERS = 3
DONE_LINE = re.compile(r"job (\d+) upsert_user \S+ -> peer:scim2: succeeded")


def open_jobs(iam: Iam) -> int:
    with iam.db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(prov_jobs).where(
            prov_jobs.c.state != "succeeded")).scalar_one())


def test_workers_share_the_queue_and_run_each_job_once(tmp_path: Path,
                                                       scim_peer: str) -> None:
    home = tmp_path / "home"
    names = [f"pg{i:03d}" for i in range(USERS)]
    with database_url("postgresql", str(tmp_path)) as url, \
            Iam.open(home=str(home), db=url, argon2=FAST_ARGON2) as iam:
        connect(iam, scim_peer, concurrency=4)
        workers: list[MwareProcess] = []
        try:
            for n in range(WORKERS):
                workers.append(worker(home, tmp_path / f"worker{n}.log", "--capacity", "8",
                                      db=url))
            for w in workers:
                w.wait_started()
            # all three are polling: the users arrive now, in one go
            iam.identity.import_users(Initiator.admin(), [
                ImportRow(i + 2, name) for i, name in enumerate(names)])
            wait_until(lambda: open_jobs(iam) == 0, 45, "every job to succeed")
        finally:
            codes = [w.stop(signal.SIGTERM) for w in workers]
        assert codes == [0] * WORKERS, [w.log() for w in workers]

        remote = Counter(u["userName"] for u in peer_users(scim_peer))
        assert sorted(remote) == names and set(remote.values()) == {1}
        with iam.db.engine.connect() as conn:
            jobs = conn.execute(select(prov_jobs.c.pk, prov_jobs.c.attempts)).all()
            runs = Counter(conn.execute(select(prov_attempts.c.job_pk).where(
                prov_attempts.c.outcome == "succeeded")).scalars())
        assert len(jobs) == USERS and all(j.attempts == 1 for j in jobs)
        assert runs == Counter({j.pk: 1 for j in jobs})  # one succeeded attempt per job
        by_worker = [{int(pk) for pk in DONE_LINE.findall(w.log())} for w in workers]
        assert sum(len(done) for done in by_worker) == USERS  # disjoint ...
        assert set().union(*by_worker) == {j.pk for j in jobs}  # ... and complete
        assert sum(1 for done in by_worker if done) >= 2  # the work was shared
