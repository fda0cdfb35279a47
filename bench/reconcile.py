"""Reconciliation against a scim2-server peer: time against a bare paged listing, memory
at two sizes (issue 16).

Targets: reconcile of N users at most 1.5x a bare ``httpx`` listing of the same peer
(``GET /Users?startIndex&count``, the same page size, every page parsed), measured side by
side in one run; peak memory (max RSS) of a reconcile of N users at most 1.3x that of
N/10. Each measurement runs in a fresh process (max RSS is per process), rounds alternate.

Setup (not measured): a scim2-server tenant per size, loaded by SCIM Bulk requests; a
SQLite deployment per size with the same users imported and linked (mappings written
directly), so that the reconcile finds no drift and compares every user.

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
from core.provisioning.reconcile import BATCH  # noqa: E402
from tests.peers import scim_server  # noqa: E402
from tests.provisioning_helpers import connect  # noqa: E402

SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
TARGET = "peer:scim2"
#: The page size of both sides (the connector's ``LIST_PAGE``).
PAGE = 200


def name(i: int) -> str:
    return f"user{i:06d}"


# ---------------------------------------------------------------- setup
async def load_peer(base: str, users: int) -> list[str]:
    """Create the users at the peer by Bulk requests; their ids in order."""
    async with httpx.AsyncClient(timeout=120.0) as client:
        config = (await client.get(f"{base}/ServiceProviderConfig")).json()
        per = min(1000, int(config.get("bulk", {}).get("maxOperations") or 0) or 1000)
        ids: list[str] = []
        for start in range(0, users, per):
            ops = [{"method": "POST", "path": "/Users", "bulkId": str(i),
                    "data": {"schemas": [SCIM_USER], "userName": name(i), "active": True}}
                   for i in range(start, min(users, start + per))]
            answer = await client.post(f"{base}/Bulk", json={
                "schemas": [BULK_REQUEST], "Operations": ops})
            answer.raise_for_status()
            ids += [op["location"].rstrip("/").rsplit("/", 1)[-1]
                    for op in answer.json()["Operations"]]
        return ids


def load_home(home: Path, base: str, ids: list[str]) -> None:
    with Iam.open(home=str(home)) as iam:
        iam.identity.import_users(Initiator.admin(), (
            ImportRow(i + 2, name(i)) for i in range(len(ids))))
        connect(iam, base)
        views = {}
        cursor = None
        while True:
            page = iam.identity.list_users("PRIMARY", 1000, cursor)
            views.update((v.username, v.id) for v in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        with iam.db.transaction() as conn:
            for start in range(0, len(ids), 5000):
                mapping.put_many(conn, [
                    mapping.Put(TARGET, "user", "PRIMARY", views[name(i)], ids[i], name(i),
                                False, exists=False)
                    for i in range(start, min(len(ids), start + 5000))])


# ---------------------------------------------------------------- measured (children)
def child_list(base: str) -> dict[str, Any]:
    async def run() -> int:
        seen, index = 0, 1
        async with httpx.AsyncClient(timeout=60.0) as client:
            while True:
                body = (await client.get(f"{base}/Users", params={
                    "startIndex": str(index), "count": str(PAGE)})).json()
                page = body.get("Resources") or []
                seen += len(page)
                index += len(page)
                if not page or index > body["totalResults"]:
                    return seen
    return _measure(lambda: asyncio.run(run()))


def child_reconcile(home: str) -> dict[str, Any]:
    with Iam.open(home=home) as iam:
        def run() -> int:
            report = iam.provisioning.reconcile(Initiator.admin(), TARGET)
            assert report.in_sync, report.as_dict()
            return report.remote_users
        return _measure(run)


def _measure(run: Any) -> dict[str, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    n = run()
    return {"n": n, "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def spawn(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True,
                         capture_output=True, text=True, cwd=ROOT)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# ---------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, where = args.child
        print(json.dumps(child_list(where) if kind == "list" else child_reconcile(where)))
        return
    print(f"# {machine_facts()}; reconcile batch {BATCH}, page {PAGE}")
    with tempfile.TemporaryDirectory() as tmp, scim_server() as server:
        setups: dict[int, tuple[str, str]] = {}
        for size in (args.small, args.users):
            began = time.perf_counter()
            base = server.tenant()
            ids = asyncio.run(load_peer(base, size))
            home = Path(tmp) / f"home{size}"
            load_home(home, base, ids)
            setups[size] = (base, str(home))
            print(f"setup {size}: {time.perf_counter() - began:.0f} s", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {}
        for r in range(args.rounds):
            for label, kind, size in (("list", "list", args.users),
                                      ("reconcile", "reconcile", args.users),
                                      ("reconcile-small", "reconcile", args.small)):
                base, home = setups[size]
                got = spawn(kind, base if kind == "list" else home)
                runs.setdefault(label, []).append(got)
                print(f"round {r + 1} {label} ({size}): {got['wall']:.1f} s wall, "
                      f"{got['cpu']:.1f} s CPU, {got['max_rss_mb']:.0f} MB", flush=True)
    print("\n| run | users | wall s (median, min-max) | CPU s | CPU us/user | max RSS MB |")
    print("|---|---|---|---|---|---|")
    for label, got in runs.items():
        walls = [g["wall"] for g in got]
        n = got[0]["n"]
        print(f"| {label} | {n} | {median(walls):.1f} ({min(walls):.1f}-{max(walls):.1f}) | "
              f"{median([g['cpu'] for g in got]):.1f} | "
              f"{median([g['cpu'] for g in got]) / n * 1e6:.0f} | "
              f"{median([g['max_rss_mb'] for g in got]):.0f} |")
    ratios = [rc["wall"] / ls["wall"] for rc, ls in zip(runs["reconcile"], runs["list"],
                                                         strict=True)]
    mem = median([g["max_rss_mb"] for g in runs["reconcile"]]) / \
        median([g["max_rss_mb"] for g in runs["reconcile-small"]])
    print(f"\ntime ratio reconcile/list at {args.users}: median {median(ratios):.2f} "
          f"(rounds {', '.join(f'{x:.2f}' for x in ratios)}; target <= 1.5)")
    print(f"memory ratio {args.users}/{args.small}: {mem:.2f} (target <= 1.3)")
    record(__file__, "16", f"reconcile / bare paged listing of the peer, {args.users:,} "
           "users (wall)", ratios, "<= 1.5")
    record(__file__, "16", f"reconcile max RSS, {args.users:,} / {args.small:,} users",
           [mem], "<= 1.3")


if __name__ == "__main__":
    main()
