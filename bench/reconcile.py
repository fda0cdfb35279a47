"""Reconciliation against a scim2-server peer: time against a bare paged listing, memory
at two sizes (issue 16).

Targets: reconcile of N users at most 1.5x a bare ``httpx`` listing of the same peer
(``GET /Users?startIndex&count``, every page parsed), measured side by side in one run;
the reconcile's own memory at N at most 1.3x that at N/10.

Both sides page by ``count`` = the peer's ``maxResults`` (1000), the reconcile's own page
size (``LIST_PAGE_SIZE``), and wait up to ``TIMEOUT_SECONDS`` for a page. Each measurement
runs in a fresh process that only lists or only reconciles; rounds alternate. Memory is
the reconcile's own, two ways: the Python heap's peak during the reconcile above its start
(``tracemalloc``, in a run of its own per size before the rounds, since tracing slows the
process), and the process's peak RSS above its RSS just before the reconcile (in the
timed runs).

Setup (not measured): one scim2-server peer process (the package's WSGI application and
threaded server, as its command line builds them) holding a tenant per size, seeded
directly in its in-memory storage before it serves (the ids derived from the user
names); a SQLite deployment per size with the same users imported and linked (mappings
written directly), so that the reconcile finds no drift and compares every user.

    .venv/bin/python bench/reconcile.py --users 100000 --small 10000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.common import machine_facts, median, record  # noqa: E402
from core.iam import Iam  # noqa: E402
from core.identity.events import Initiator  # noqa: E402
from core.identity.service import ImportRow  # noqa: E402
from core.provisioning import mapping  # noqa: E402
from core.provisioning.reconcile import BATCH, LIST_PAGE_SIZE  # noqa: E402
from tests.peers import LOOPBACK, free_port  # noqa: E402
from tests.provisioning_helpers import connect  # noqa: E402

TARGET = "peer:scim2"
#: Users of the deployment each reconciling process reconciles first, unmeasured, so
#: that what is measured is the reconcile, not the modules, TLS context and caches a
#: process's first reconcile loads.
WARM = 10
IDS = uuid.UUID("6f1d0a52-3c57-4a34-9d8e-2b7f5c1e0a91")  # namespace of the peer's ids


def name(i: int) -> str:
    return f"user{i:06d}"


def remote_id(i: int) -> str:
    return uuid.uuid5(IDS, name(i)).hex


def tenant(size: int) -> str:
    return f"t{size}"


# ---------------------------------------------------------------- the peer (a child)
def serve_peer(port: int, sizes: list[int]) -> None:
    """scim2-server's application and server as its command line builds them (default
    schemas, resource types and configuration, a tenant per size), the users created
    in the storage directly; prints ``ready`` once serving."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from scim2_models import ScimProvider, User
    from scim2_server.applications.wsgi import TenantDispatcher
    from scim2_server.memory import InMemoryStorage
    from scim2_server.service import ScimService
    from scim2_server.testserver.application import BearerTokenApplication
    from scim2_server.testserver.cli import ThreadingWSGIServer
    from scim2_server.utils import (
        load_default_resource_types,
        load_default_schemas,
        load_default_service_provider_config,
    )

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """No line per request."""

    class Seeded(InMemoryStorage):
        def generate_id(self, resource_type: Any, resource: Any) -> str:
            return uuid.uuid5(IDS, str(resource.user_name)).hex

    types = load_default_resource_types()
    provider = ScimProvider.from_discovery(
        load_default_schemas().values(),
        types.values(),
        config=load_default_service_provider_config(),
    )
    service = ScimService(provider, secret=uuid.uuid4().hex)
    dispatcher = TenantDispatcher(lambda _tenant: None)
    for size in sizes:
        storage = Seeded()
        for i in range(size):
            storage.create(types["User"], User(user_name=name(i), active=True))
        dispatcher.applications[tenant(size)] = BearerTokenApplication(
            storage, provider, service=service
        )
    with make_server(LOOPBACK, port, dispatcher, ThreadingWSGIServer, Quiet) as server:
        print("ready", flush=True)
        server.serve_forever()


@contextmanager
def peer(sizes: list[int]) -> Iterator[str]:
    """The peer's origin while it runs."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), *map(str, sizes)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise SystemExit(f"the peer exited with {process.wait()}")
        yield f"http://{LOOPBACK}:{port}"
    finally:
        process.terminate()
        process.wait(10)


# ---------------------------------------------------------------- our side (setup)
def load_home(home: Path, base: str, users: int) -> None:
    with Iam.open(home=str(home)) as iam:
        iam.identity.import_users(
            Initiator.admin(), (ImportRow(i + 2, name(i)) for i in range(users))
        )
        connect(iam, base, **{"timeout-seconds": TIMEOUT_SECONDS})
        views = {}
        cursor = None
        while True:
            page = iam.identity.list_users("PRIMARY", 1000, cursor)
            views.update((v.username, v.id) for v in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        with iam.db.transaction() as conn:
            for start in range(0, users, 5000):
                mapping.put_many(
                    conn,
                    [
                        mapping.Put(
                            TARGET,
                            "user",
                            "PRIMARY",
                            views[name(i)],
                            remote_id(i),
                            name(i),
                            False,
                            exists=False,
                        )
                        for i in range(start, min(users, start + 5000))
                    ],
                )


# ---------------------------------------------------------------- measured (children)
def child_list(base: str) -> dict[str, Any]:
    async def run() -> int:
        seen, index = 0, 1
        async with httpx.AsyncClient(timeout=float(TIMEOUT_SECONDS)) as client:
            while True:
                body = (
                    await client.get(
                        f"{base}/Users",
                        params={"startIndex": str(index), "count": str(LIST_PAGE_SIZE)},
                    )
                ).json()
                page = body.get("Resources") or []
                seen += len(page)
                index += len(page)
                if not page or index > body["totalResults"]:
                    return seen

    return _measure(lambda: asyncio.run(run()), trace=False)


def child_reconcile(home: str, trace: bool) -> dict[str, Any]:
    with Iam.open(home=str(Path(home).with_name(f"home{WARM}"))) as iam:
        assert iam.provisioning.reconcile(Initiator.admin(), TARGET).in_sync
    with Iam.open(home=home) as iam:

        def run() -> int:
            report = iam.provisioning.reconcile(Initiator.admin(), TARGET)
            assert report.in_sync, report.as_dict()
            return report.remote_users

        return _measure(run, trace)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _measure(run: Callable[[], int], trace: bool) -> dict[str, Any]:
    """Time, CPU and memory of ``run``: the process's peak RSS above its RSS before it
    (the process has only imported and opened the deployment by then, so its peak so
    far is about that RSS), and with ``trace`` the Python heap's peak above its start."""
    before = _rss_mb()
    if trace:
        tracemalloc.start()
        heap = tracemalloc.get_traced_memory()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    n = run()
    got = {
        "n": n,
        "wall": time.perf_counter() - wall,
        "cpu": time.process_time() - cpu,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before,
    }
    if trace:
        got["heap_mb"] = (tracemalloc.get_traced_memory()[1] - heap) / 2**20
        tracemalloc.stop()
    return got


def spawn(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=ROOT
    )
    if out.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# ---------------------------------------------------------------- main
#: (label, kind) of each timed round: alternating, side by side.
ROUND = (("list", "list"), ("reconcile", "reconcile"), ("reconcile-small", "reconcile"))
#: Traced runs (slower: not timed against the listing), once each before the rounds.
TRACED = (("heap-small", "traced"), ("heap", "traced"))
#: The bench's target waits as long as the bare listing does for a page (the peer takes
#: seconds per page at 100,000 users, more on a busy machine).
TIMEOUT_SECONDS = 600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--serve", nargs="+", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_peer(args.serve[0], args.serve[1:])
        return
    if args.child:
        kind, where = args.child
        print(
            json.dumps(
                child_list(where)
                if kind == "list"
                else child_reconcile(where, trace=kind == "traced")
            )
        )
        return
    print(f"# {machine_facts()}; reconcile batch {BATCH}, page {LIST_PAGE_SIZE}", flush=True)
    sizes = [WARM, args.small, args.users]
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        with peer(sizes) as origin:
            print(f"peer seeded: {time.perf_counter() - began:.0f} s", flush=True)
            homes: dict[int, str] = {}
            for size in sizes:
                began = time.perf_counter()
                homes[size] = str(Path(tmp) / f"home{size}")
                load_home(Path(homes[size]), f"{origin}/{tenant(size)}/v2", size)
                print(f"home {size}: {time.perf_counter() - began:.0f} s", flush=True)
            runs: dict[str, list[dict[str, Any]]] = {}
            plan = [(0, TRACED)] + [(r + 1, ROUND) for r in range(args.rounds)]
            for r, of_round in plan:
                for label, kind in of_round:
                    size = args.small if label.endswith("small") else args.users
                    where = f"{origin}/{tenant(size)}/v2" if kind == "list" else homes[size]
                    got = spawn(kind, where)
                    runs.setdefault(label, []).append(got)
                    print(f"round {r} {label} ({size}): {json.dumps(got)}", flush=True)
    report(runs, args.users, args.small)


def report(runs: dict[str, list[dict[str, Any]]], users: int, small: int) -> None:
    def mid(label: str, key: str) -> float:
        return median([g[key] for g in runs[label]])

    print(
        "\n| run | users | wall s (median, min-max) | CPU s | CPU us/user "
        "| RSS above start MB | heap peak MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, got in runs.items():
        walls = [g["wall"] for g in got]
        n = got[0]["n"]
        heap = f"{mid(label, 'heap_mb'):.1f}" if "heap_mb" in got[0] else "-"
        print(
            f"| {label} | {n} | {median(walls):.1f} ({min(walls):.1f}-{max(walls):.1f}) | "
            f"{mid(label, 'cpu'):.1f} | {mid(label, 'cpu') / n * 1e6:.0f} | "
            f"{mid(label, 'rss_mb'):.1f} | {heap} |"
        )
    ratios = [
        rc["wall"] / ls["wall"] for rc, ls in zip(runs["reconcile"], runs["list"], strict=True)
    ]
    print(
        f"\ntime ratio reconcile/list at {users}: median {median(ratios):.2f} "
        f"(rounds {', '.join(f'{x:.2f}' for x in ratios)}; target <= 1.5)"
    )
    print(
        f"memory ratio {users}/{small}: heap peak "
        f"{mid('heap', 'heap_mb') / mid('heap-small', 'heap_mb'):.2f}, RSS above start "
        f"{mid('reconcile', 'rss_mb') / mid('reconcile-small', 'rss_mb'):.2f} "
        "(target <= 1.3)"
    )
    record(__file__, "16", f"reconcile / bare paged listing of the peer, {users:,} users (wall)",
           ratios, "<= 1.5")
    record(__file__, "16", f"reconcile heap peak, {users:,} / {small:,} users",
           [mid("heap", "heap_mb") / mid("heap-small", "heap_mb")], "<= 1.3")


if __name__ == "__main__":
    main()
