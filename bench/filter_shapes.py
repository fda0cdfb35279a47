"""Memory of a server fed ever new filter shapes (issue 17 item 11): RSS of one process
before and after N searches of distinct shapes of C comparisons each, through the SQLite
store (the statement cache and SQLAlchemy's compiled cache are what grew).

    .venv/bin/python bench/filter_shapes.py 100 900   # C=100 comparisons, N=900 shapes

Run it from two checkouts to compare (``cd OLD && .venv/bin/python /path/to/this``).
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile

sys.path.insert(0, os.getcwd())  # the checkout being measured

from core.iam import Iam
from core.passwords import Argon2Params
from core.userstores import query as q

OPS = [q.Op.EQ, q.Op.SW, q.Op.GT, q.Op.LT, q.Op.CO, q.Op.EW]


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def shape(k: int, comparisons: int) -> q.Query:
    """The k-th distinct shape: its operators spell k in base 6."""
    return q.Or(tuple(q.Compare(q.attribute(f"a{i}"), OPS[(k // 6 ** (i % 4)) % 6], "x")
                      for i in range(comparisons)))


def main(comparisons: int, shapes: int) -> None:
    with tempfile.TemporaryDirectory() as home, \
            Iam.open(home=home, argon2=Argon2Params(1, 1024, 1)) as iam:
        store = iam.stores.store("PRIMARY")
        store.search_users(shape(0, comparisons), 0, 10)
        gc.collect()
        before = rss_mb()
        for k in range(1, shapes + 1):
            store.search_users(shape(k, comparisons), 0, 10)
        gc.collect()
        print(f"{comparisons} comparisons x {shapes} distinct shapes: "
              f"RSS {before:.0f} -> {rss_mb():.0f} MB")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
