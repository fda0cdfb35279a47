"""The LDAP userstore against a real slapd holding 1,000 and 100,000 users.

Targets (issue 6): with 100,000 entries, the first page of the user list and a search by
uid take at most 2 times what they take with 1,000; listing every page keeps memory flat
(the peak of Python allocations while walking all pages is the same for both sizes, as
only one page is held at a time). The add-user rate through the store is recorded next to
the raw ldap3 add rate of the same entries on one connection, measured in the same run.

Each size gets a slapd of its own (tests/ldap_server.py: mdb, uid/cn/mail indexed, the
memberof and refint overlays), loaded with slapadd before it starts.

    .venv/bin/python bench/ldap.py                       # the issue's sizes
    .venv/bin/python bench/ldap.py --large 20000 --adds 500 --repeat 20   # quick run
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import ldap3
from common import machine_facts, median, record, table
from ldap3 import Connection, Server
from ldap3.utils.hashed import hashed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ldap_server.py

from core.userstores.base import NewUser, Policies
from core.userstores.definitions import validated
from core.userstores.ldap import LdapUserStore
from core.userstores.ldap_schema import settings
from tests.ldap_server import (
    SERVICE_DN,
    SERVICE_PASSWORD,
    SUFFIX,
    LdapTree,
    Slapd,
    find_program,
    running_slapd,
)

TREE = LdapTree(f"ou=bench,{SUFFIX}")
PAGE = 50
PASSWORD = "Correct-horse-9"


def name(i: int) -> str:
    return f"user{i:07d}"


def write_ldif(path: Path, users: int) -> None:
    """The bench subtree and ``users`` inetOrgPerson entries, for slapadd."""
    with path.open("w") as fh:
        for dn, ou in ((TREE.base, "bench"), (TREE.users, "Users"), (TREE.groups, "Groups")):
            fh.write(f"dn: {dn}\nobjectClass: organizationalUnit\nou: {ou}\n\n")
        for i in range(users):
            n = name(i)
            fh.write(f"dn: uid={n},{TREE.users}\nobjectClass: inetOrgPerson\nuid: {n}\n"
                     f"cn: {n}\nsn: Family{i % 1009}\ngivenName: Given{i % 997}\n"
                     f"mail: {n}@example.com\n\n")


@contextmanager
def directory(work: Path, users: int) -> Iterator[Slapd]:
    ldif = work / f"users-{users}.ldif"
    write_ldif(ldif, users)
    started = time.perf_counter()
    with running_slapd(work / f"slapd-{users}", [ldif]) as server:
        print(f"  slapd with {users:,} users loaded and up in "
              f"{time.perf_counter() - started:.1f}s", flush=True)
        yield server


def open_store(server: Slapd) -> LdapUserStore:
    props = validated("BENCH", "ldap", server.properties(TREE))
    return LdapUserStore("BENCH", settings("ldap", props, SERVICE_PASSWORD),
                         Policies(case_insensitive_usernames=True))


def per_call(fns: dict[int, Callable[[], object]], repeat: int) -> dict[int, float]:
    """Median seconds of one call of each function (after a warm-up call). The calls
    alternate between the sizes, so a busy moment of the machine hits both alike."""
    samples: dict[int, list[float]] = {size: [] for size in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeat):
        for size, fn in fns.items():
            started = time.perf_counter()
            fn()
            samples[size].append(time.perf_counter() - started)
    return {size: median(values) for size, values in samples.items()}


def walk_all(store: LdapUserStore) -> int:
    """Users seen listing every page, 100 at a time, through the cursors."""
    seen, cursor = 0, None
    while True:
        page = store.list_users(100, cursor)
        seen += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return seen


def rss() -> int:
    """Resident set size of this process now, in bytes."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def reads(stores: dict[int, LdapUserStore], repeat: int) -> dict[int, dict[str, float]]:
    rng = random.Random(7)
    out: dict[int, dict[str, float]] = {size: {} for size in stores}
    first = per_call({n: (lambda s=s: s.list_users(PAGE)) for n, s in stores.items()}, repeat)
    by_uid = per_call({n: (lambda s=s, n=n: s.get_user_by_name(name(rng.randrange(n))))
                       for n, s in stores.items()}, repeat * 4)
    for size, store in stores.items():
        before = rss()
        started = time.perf_counter()
        seen = walk_all(store)
        elapsed = time.perf_counter() - started
        grown = rss() - before
        assert seen == size, (seen, size)
        tracemalloc.start()  # slows Python down: a walk of its own, for memory only
        walk_all(store)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out[size] = {"first": first[size], "uid": by_uid[size], "peak": peak,
                     "walk": elapsed, "rss": grown}
    return out


def add_rates(server: Slapd, adds: int) -> tuple[float, float]:
    """Users per second: raw ldap3 adds on one connection, then through the store."""
    conn = Connection(Server(server.url), SERVICE_DN, SERVICE_PASSWORD, auto_bind=True,
                      raise_exceptions=True)
    started = time.perf_counter()
    for i in range(adds):
        n = f"raw{i:07d}"
        conn.add(f"uid={n},{TREE.users}", ["inetOrgPerson"],
                 {"uid": n, "cn": n, "sn": n, "mail": f"{n}@example.com",
                  "userPassword": hashed("SALTED_SHA", PASSWORD)})
    raw = adds / (time.perf_counter() - started)
    conn.unbind()
    store = open_store(server)
    try:
        started = time.perf_counter()
        for i in range(adds):
            n = f"new{i:07d}"
            store.add_user(NewUser(n, PASSWORD, {"mail": f"{n}@example.com"}))
        through = adds / (time.perf_counter() - started)
    finally:
        store.close()
    return raw, through


def slapd_version() -> str:
    program = find_program("slapd") or "slapd"
    out = subprocess.run([program, "-VV"], capture_output=True, text=True, check=False)
    line = (out.stderr or out.stdout).strip().splitlines()
    return line[0].split("slapd ")[-1].split(" ")[0] if line else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--adds", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    print(f"# {machine_facts()}, slapd {slapd_version()}, ldap3 {ldap3.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with directory(work, args.small) as small_server, \
                directory(work, args.large) as large_server:
            stores = {args.small: open_store(small_server), args.large: open_store(large_server)}
            try:
                results = reads(stores, args.repeat)
            finally:
                for store in stores.values():
                    store.close()
            raw, through = add_rates(large_server, args.adds)
    small, large = results[args.small], results[args.large]

    def row(label: str, key: str, scale: float, unit: str, target: str) -> list[object]:
        ratio = large[key] / small[key]
        record(__file__, "6", f"slapd {label}: {args.large:,} / {args.small:,} users",
               [ratio], "<= 2")
        return [label, f"{small[key] * scale:.2f} {unit}", f"{large[key] * scale:.2f} {unit}",
                f"{ratio:.2f}x", target, "ok" if ratio <= 2 else "MISSED"]

    print(table(["measure", f"{args.small:,} users", f"{args.large:,} users", "ratio",
                 "target", ""], [
        row(f"first page ({PAGE} users), median", "first", 1000, "ms", "<= 2x"),
        row("search by uid, median", "uid", 1000, "ms", "<= 2x"),
        row("peak Python memory, listing every page (100/page)", "peak", 1 / 1024, "KiB",
            "flat (<= 2x)"),
        ["RSS growth, listing every page", f"{small['rss'] / 2**20:.1f} MiB",
         f"{large['rss'] / 2**20:.1f} MiB", "-", "flat", "info"],
        ["listing every page (100/page), total", f"{small['walk']:.2f} s",
         f"{large['walk']:.2f} s", f"{large['walk'] / small['walk']:.0f}x", "linear", "info"],
    ]))
    print()
    print(table(["add users (one at a time, SSHA password)", "users/s"], [
        [f"raw ldap3 add on one connection ({args.adds:,})", f"{raw:,.0f}"],
        [f"LdapUserStore.add_user ({args.adds:,})", f"{through:,.0f}"],
        ["store / raw", f"{through / raw:.2f}"],
    ]))


if __name__ == "__main__":
    main()
