"""CPU per job of the worker pool's database steps alone (no network): lease, prepare and
record the outcome of N queued user creations on SQLite, the outcomes made up as the SCIM
peer would answer. This is the engine's own cost per job that the outbound benchmarks
(``provisioning.py``, ``google.py``, ``spml.py``) carry on top of the connector's, measured
without a peer sharing the machine's two cores. Prints the database thread's CPU
microseconds per job for each round (and the import's, planning included); the outcomes
made up between the steps are timed apart (before 2026-12-03 they were counted in).

Run it from two checkouts to compare code side by side (interleave the runs: the machine
is shared and noisy):

    (cd OLD && .venv/bin/python /path/to/bench/outbox_steps.py)
    (cd NEW && .venv/bin/python bench/outbox_steps.py --users 2000 --batch 16 --rounds 3)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.getcwd())  # the checkout being measured

from connectors.base import Exchange, RemoteRef
from core.iam import Iam
from core.identity.events import Initiator
from core.identity.service import ImportRow
from core.provisioning.executor import Outcome, Prepared
from tests.provisioning_helpers import connect

SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
#: Nobody listens here: the steps never talk to the target.
NOWHERE = "http://127.0.0.1:9/v2"


def answered(prep: Prepared) -> Outcome:
    """What a SCIM peer's 201 for the job's user would leave (an exchange with both bodies)."""
    assert prep.user is not None
    body = {"schemas": [SCIM_USER], "userName": prep.user.username,
            "name": {"givenName": "Given", "familyName": "Family"}, "active": True}
    answer = {**body, "id": f"remote-{prep.job.pk}", "meta": {"resourceType": "User"}}
    return Outcome(remote=RemoteRef(f"remote-{prep.job.pk}", prep.user.username),
                   exchanges=[Exchange("POST", f"{NOWHERE}/Users", body, 201, answer)],
                   duration_ms=5.0)


def one_round(users: int, batch: int) -> tuple[float, float, float]:
    """(import, database steps, made-up outcomes) thread CPU microseconds per job. The
    outcomes are made between the steps but are not counted as theirs: a connector makes
    them (their exchanges' redaction is its CPU, not the database's)."""
    rows = [ImportRow(i + 2, f"bench{i:06d}", claims={"givenname": "Given",
                                                      "lastname": "Family"})
            for i in range(users)]
    with tempfile.TemporaryDirectory() as home, Iam.open(home=home) as iam:
        connect(iam, NOWHERE, concurrency=8)
        began = time.thread_time()
        iam.identity.import_users(Initiator.admin(), rows)
        imported = time.thread_time() - began
        pool = iam.provisioning.worker_pool(capacity=2 * batch)
        try:
            finished: list[tuple[Prepared, Outcome | None]] = []
            done = 0
            made = 0.0
            began = time.thread_time()
            while True:  # a step records the last batch's outcomes and leases the next
                settled, jobs, kept = pool._settle_and_lease(finished, batch)
                assert not kept, "the database was busy"
                preps = pool._prepare(jobs) if jobs else []
                done += len(settled)
                making = time.thread_time()
                finished = [(p, answered(p)) for p in preps]
                made += time.thread_time() - making
                if not finished:
                    break
            steps = time.thread_time() - began - made
        finally:
            pool.close()
        if done != users:
            raise RuntimeError(f"{done} of {users} jobs recorded")
    return imported * 1e6 / users, steps * 1e6 / users, made * 1e6 / users


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=16, help="jobs leased per step")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for _ in range(args.rounds):
        imported, steps, made = one_round(args.users, args.batch)
        print(f"import {imported:.0f} us/job, database steps {steps:.0f} us/job "
              f"(made-up outcomes {made:.0f} us/job, not counted)", flush=True)


if __name__ == "__main__":
    main()
