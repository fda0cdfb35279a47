"""Where our CPU per outbound job goes, with the network taken out: the same N queued jobs
and previewed requests as ``outbound_harness`` rounds, but every request answered in
process by the accommodating peer ``provisioning preview`` uses (``httpx.MockTransport``),
so only client-side work is left:

(a) bare httpx: the previewed requests, 8 lanes, one client;
(b) ours: the worker pool draining the jobs (event loop: connector and engine; database
    thread: lease, prepare, record).

Prints CPU microseconds per job of each (this process, ``time.process_time``). (b) - (a)
is what the engine and the connector add per job before any socket is touched; the
database thread's share alone is ``bench/outbox_steps.py``'s figure.

    .venv/bin/python bench/outbound_parts.py salesforce --users 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import outbound_harness as harness
from outbound_harness import Kind, Peer, Request

from connectors.registry import connector_class
from core.iam import Iam
from core.identity.events import Initiator
from core.provisioning import engine, target_clients

KINDS = {"scim2": "provisioning", "google": "google", "salesforce": "salesforce", "spml": "spml"}


def accommodating(connector_type: str) -> httpx.MockTransport:
    """The peer ``provisioning preview`` answers the connector type's requests with."""
    named = connector_class(connector_type).spec.preview_peer
    if named:
        module, function = named.split(":")
        return httpx.MockTransport(getattr(importlib.import_module(module), function))
    return httpx.MockTransport(engine._accommodating_peer)


@contextlib.contextmanager
def answered_in_process(transport: httpx.MockTransport) -> Iterator[None]:
    """The worker pool's target clients send through ``transport``."""
    real = target_clients.TargetClient

    class Client(real):  # type: ignore[misc,valid-type]
        def __init__(self, **kwargs: object) -> None:
            super().__init__(transport=transport, **kwargs)

    target_clients.TargetClient = Client  # type: ignore[misc]
    try:
        yield
    finally:
        target_clients.TargetClient = real  # type: ignore[misc]


async def _bare(requests: list[Request], transport: httpx.MockTransport, base: str) -> None:
    queue = iter(requests)
    async with httpx.AsyncClient(transport=transport) as client:

        async def lane() -> None:
            for r in queue:
                (
                    await client.request(r.method, base + r.path, content=r.content)
                ).raise_for_status()

        await asyncio.gather(*(lane() for _ in range(8)))


def one_round(
    kind: Kind, connector_type: str, n: int, users: int, work: Path
) -> tuple[float, float]:
    transport = accommodating(connector_type)
    rows = harness.import_rows(users, f"p{n}u")
    with kind.peer(work) as peer, Iam.open(home=str(work / f"parts{n}")) as iam:
        kind.wire(iam, peer, 8)
        iam.identity.import_users(Initiator.admin(), rows)
        requests = harness.previewed(iam, kind, peer, [r.username for r in rows])
        cpu = time.process_time()
        with asyncio.Runner(loop_factory=harness.LOOP) as runner:
            runner.run(_bare(requests, transport, peer.base))
        bare = time.process_time() - cpu
        with answered_in_process(transport):
            ours = harness.drain(iam, Peer(peer.base, peer.pid), users).cpu_ms / 1000 * users
    return bare * 1e6 / users, ours * 1e6 / users


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    module = importlib.import_module(KINDS[args.kind])
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if args.kind == "scim2":
            from tests.peers import scim_server

            kind = module.scim_kind(stack.enter_context(scim_server()))
        else:
            kind = module.KIND
        connector_type = {"google": "googleapps"}.get(args.kind, args.kind)
        results = [
            one_round(kind, connector_type, n, args.users, work) for n in range(1, args.rounds + 1)
        ]
    for bare, ours in results:
        print(
            f"bare httpx {bare:.0f} us/job, ours {ours:.0f} us/job, ours - bare "
            f"{ours - bare:.0f} us/job"
        )
    print(
        f"median: bare {statistics.median(b for b, _ in results):.0f}, ours "
        f"{statistics.median(o for _, o in results):.0f} us/job "
        f"(python bench/outbound_parts.py {' '.join(sys.argv[1:])})"
    )


if __name__ == "__main__":
    main()
