"""CPU per store search on the path of a SCIM GET by filter (no HTTP): ``userName eq`` and
``emails eq`` through the identity service on SQLite, 200 users, rounds of 2,000 searches
each; prints CPU microseconds per search for each round.

Run it from two checkouts to compare code side by side (interleave the runs: the machine
is shared and noisy):

    (cd OLD && .venv/bin/python /path/to/bench/store_search.py)
    (cd NEW && .venv/bin/python bench/store_search.py)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

sys.path.insert(0, os.getcwd())  # the checkout being measured

from core.iam import Iam
from core.identity.events import Initiator
from core.passwords import Argon2Params
from core.userstores import query as q

EMAIL = "http://wso2.org/claims/emailaddress"


def main(rounds: int = 5, per_round: int = 2000) -> None:
    with tempfile.TemporaryDirectory() as home, Iam.open(
            home=home, argon2=Argon2Params(time_cost=1, memory_cost=1024,
                                           parallelism=1)) as iam:
        for i in range(200):
            iam.identity.add_user(Initiator.admin(), f"user{i}", None,
                                  {"emailaddress": f"u{i}@x.com"})

        def run(n: int) -> float:
            started = time.process_time()
            for i in range(n):
                iam.identity.search_users(
                    "PRIMARY", q.Compare(q.NAME, q.Op.EQ, f"user{i % 200}"), 0, 100)
                iam.identity.search_users(
                    "PRIMARY", q.Compare(q.attribute(EMAIL), q.Op.EQ, f"u{i % 200}@x.com"),
                    0, 100)
            return (time.process_time() - started) / (2 * n) * 1e6

        run(200)  # warm up
        print(" ".join(f"{run(per_round):.1f}" for _ in range(rounds)))


if __name__ == "__main__":
    main()
