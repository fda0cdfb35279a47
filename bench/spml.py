"""SPML provisioning throughput through our workers, next to a bare httpx client.

Each round starts a fresh sandbox provider (``mware-iam sandbox spml``, its own process,
validating every request against the OASIS schemas) for each of two runs, side by side:

(a) ceiling: a bare ``httpx.AsyncClient`` POSTs the N addRequest envelopes our connector
    sends for N users (made by the connector itself before the clock starts, against the
    preview peer) at the same concurrency. Throughput = N / (last answer - first request).
(b) ours: the N users written through the identity service (``import_users``) while a
    ``WorkerPool`` of this process runs and provisions them to the provider through the
    SPML connector (``concurrency`` set to the same value). Throughput = N / (last
    acknowledgement - first event), as in ``bench/provisioning.py``.

Rounds alternate (a) and (b); the table gives each run, then the median and spread of
ours / ceiling over the rounds. CPU ms per user: this process, and the provider.

    .venv/bin/python bench/spml.py --users 1000 --rounds 3 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from common import machine_facts, percentile, record, table
from provisioning import WORKER, Run, _event_to_ack, _states, _wait_for, measured, user

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.base import OutboundUser  # noqa: E402
from connectors.sandbox.peers import free_port, wait_until_answering  # noqa: E402
from connectors.sandbox.spml import OBJECT_CLASS, accommodating_answer  # noqa: E402
from connectors.spml import SPEC, SpmlConnector  # noqa: E402
from connectors.spml_xml import SOAP_CONTENT_TYPE  # noqa: E402
from core.apps import OutboundTarget  # noqa: E402
from core.iam import Iam  # noqa: E402
from core.identity.events import Initiator  # noqa: E402
from core.identity.service import ImportRow  # noqa: E402
from core.idps import ClaimMapping, ConnectorConfig, IdentityProvider  # noqa: E402
from core.properties import validate  # noqa: E402

RESULTS = Path(__file__).with_name("spml_RESULTS.md")
NOTES = "<!-- notes: kept when the benchmark rewrites the numbers above -->"
#: Local claim -> DSML attribute, for the users of ``provisioning.user``.
MAPPINGS = (("givenname", "givenName"), ("lastname", "sn"), ("emailaddress", "mail"))


@contextlib.contextmanager
def provider(work: Path) -> Iterator[tuple[str, int]]:
    """A fresh sandbox provider process: its endpoint and pid."""
    port = free_port()
    with (work / "provider.log").open("w+b") as log:
        process = subprocess.Popen([str(WORKER), "sandbox", "spml", "--port", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/spml"
            wait_until_answering(process, url, log, "the SPML sandbox", 30.0)
            yield url, process.pid
        finally:
            process.terminate()
            process.wait(10)


def named(prefix: str, i: int) -> tuple[str, dict[str, str]]:
    name, claims = user(i)
    return f"{prefix}{name}", claims


# ---------------------------------------------------------------- (a) the ceiling
async def _envelopes(url: str, prefix: str, users: int) -> list[bytes]:
    """What our connector sends to add each user (captured against the preview peer)."""
    sent: list[bytes] = []

    def keep(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        return accommodating_answer(request)

    props = validate(SPEC.all_properties, {"spml-ep": url, "spml-oc": OBJECT_CLASS}, "bench")
    async with httpx.AsyncClient(transport=httpx.MockTransport(keep)) as client:
        connector = SpmlConnector(props, client)
        for i in range(users):
            name, claims = named(prefix, i)
            await connector.create_user(OutboundUser(name, "PRIMARY", attributes={
                remote: claims[local] for local, remote in MAPPINGS}))
    return sent


async def _post_all(url: str, envelopes: list[bytes], concurrency: int
                    ) -> list[tuple[float, float]]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Content-Type": SOAP_CONTENT_TYPE, "SOAPAction": '"addRequest"',
               "Accept": "text/xml"}
    spans: list[tuple[float, float]] = []
    queue = iter(envelopes)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def lane() -> None:
            for body in queue:
                began = time.perf_counter()
                response = await client.post(url, content=body, headers=headers)
                if b'status="success"' not in response.content:
                    raise RuntimeError(f"ceiling POST answered {response.text[:300]}")
                spans.append((began, time.perf_counter()))

        await asyncio.gather(*(lane() for _ in range(concurrency)))
    return spans


def envelopes(users: int, prefix: str) -> list[bytes]:
    """The addRequest envelopes of N users (built before any clock starts)."""
    sent = asyncio.run(_envelopes("http://127.0.0.1:9/spml", prefix, users))
    return [e for e in sent if b"addRequest" in e]


def ceiling(url: str, envelopes: list[bytes], concurrency: int) -> Run:
    users = len(envelopes)
    spans = asyncio.run(_post_all(url, envelopes, concurrency))
    seconds = max(e for _, e in spans) - min(b for b, _ in spans)
    latencies = [(e - b) * 1000 for b, e in spans]
    return Run("(a) ceiling: bare httpx POSTs", users, seconds, percentile(latencies, 50),
               percentile(latencies, 95), "latency: request to answer")


# ---------------------------------------------------------------- (b) ours
def ours(url: str, users: int, concurrency: int, work: Path, prefix: str) -> Run:
    rows = [ImportRow(i + 2, name, claims=claims)
            for i, (name, claims) in enumerate(named(prefix, i) for i in range(users))]
    with Iam.open(home=str(work / f"ours-{prefix}")) as iam:
        admin = Initiator.admin()
        iam.save_idp(admin, IdentityProvider(
            name="provider", claim_mappings=tuple(ClaimMapping(*m) for m in MAPPINGS),
            connectors=(ConnectorConfig("spml", properties={
                "spml-ep": url, "spml-oc": OBJECT_CLASS, "concurrency": concurrency}),)))
        app = iam.resident_app()
        iam.save_app(admin, app.__class__(
            name=app.name, description=app.description, resident=app.resident,
            inbound_domain=app.inbound_domain, proxy_mode=app.proxy_mode,
            outbound=(OutboundTarget("provider", "spml", False, False),)))
        pool = iam.provisioning.worker_pool()
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        thread = threading.Thread(target=loop.run_until_complete, args=(pool.run(stop),),
                                  name="bench-pool")
        thread.start()
        report = iam.identity.import_users(admin, rows)
        assert report.imported == users, report.errors[:3]
        _wait_for(lambda: _states(iam).get("succeeded", 0) == users, "every job to succeed")
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        loop.close()
        pool.close()
        latencies, span = _event_to_ack(iam)
    ms = [v * 1000 for v in latencies]
    return Run("(b) ours: import_users + WorkerPool", users, span, percentile(ms, 50),
               percentile(ms, 95), "latency: event to ack")


# ---------------------------------------------------------------- report
def report(rounds: list[tuple[Run, Run]], command: str, concurrency: int) -> str:
    def num(value: float | None, digits: int = 0) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    rows = [[n + 1, r.name, r.users, f"{r.seconds:.2f}", num(r.rate), num(r.p50_ms, 1),
             num(r.p95_ms, 1), num(r.cpu_ms, 2), num(r.peer_cpu_ms, 2), r.note]
            for n, pair in enumerate(rounds) for r in pair]
    ratios = [b.rate / a.rate for a, b in rounds]
    cpu = [b.cpu_ms / a.cpu_ms for a, b in rounds if a.cpu_ms and b.cpu_ms]
    spread = f"{min(ratios):.2f} to {max(ratios):.2f}"
    record(__file__, "14", "to the SPML sandbox provider: ours / bare httpx", ratios, ">= 0.8")
    return "\n".join([
        "# SPML provisioning benchmark", "",
        f"Command: `{command}`", "",
        f"Machine: {machine_facts()} (shared with other engineers' work: noisy)", "",
        f"Peer: the SPML sandbox provider (`mware-iam sandbox spml`, one process, "
        f"http.server threads, every request validated against the OASIS schemas), a fresh "
        f"one per run; concurrency {concurrency}. CPU ms/user: this process (the bare "
        "client, or the import and the worker pool) and the provider.", "",
        table(["round", "run", "users", "seconds", "users/s", "p50 ms", "p95 ms",
               "CPU ms/user", "peer CPU ms/user", "note"], rows), "",
        f"ours / ceiling (jobs/s): median **{statistics.median(ratios):.2f}** over "
        f"{len(ratios)} rounds (spread {spread}; target >= 0.8)."
        + (f" Our CPU per user / the bare client's: median {statistics.median(cpu):.1f}x."
           if cpu else ""), ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    command = "python bench/spml.py " + " ".join(sys.argv[1:])
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in range(args.rounds):
            bodies = envelopes(args.users, f"a{n}x")
            with provider(work) as (url, pid):
                a = measured(functools.partial(ceiling, url, bodies, args.concurrency), pid)
            print(a, flush=True)
            with provider(work) as (url, pid):
                b = measured(functools.partial(ours, url, args.users, args.concurrency, work,
                                               f"b{n}x"), pid)
            print(b, flush=True)
            rounds.append((a, b))
    text = report(rounds, command, args.concurrency)
    print(text)
    notes = args.out.read_text().partition(NOTES)[2] if args.out.exists() else ""
    args.out.write_text(text + "\n" + NOTES + notes if notes else text)


if __name__ == "__main__":
    main()
