"""Outbound provisioning to Google Workspace (the sandbox peer) next to its ceiling.

Each round starts a fresh ``mware-iam sandbox google`` process (its own in-memory
directory) for each of two runs, side by side:

(a) ceiling: a bare ``httpx.AsyncClient`` mints one access token (the same JWT bearer
    grant) and POSTs the same N Directory API User bodies our connector sends, at the same
    concurrency (bodies built before the clock starts). Throughput = N / (last answer -
    first request).
(b) ours: N users written through the identity service (``import_users``) while a
    ``WorkerPool`` of this process runs, the resident application provisioning to the
    sandbox through the ``googleapps`` connector with ``concurrency`` set to the same value
    (the connector caches its token, so it too mints one). Measured as in
    ``bench/provisioning.py`` (first event to last acknowledgement).

(c) the connector alone: the same N users through ``GoogleConnector.create_user`` at the
    same concurrency, without the engine (what the connector itself adds to bare httpx).

Several rounds; median and spread of ours / ceiling, CPU ms per job of this process (the
client, or the import and the workers) and of the sandbox. Target: >= 0.8.

    .venv/bin/python bench/google.py --users 1000 --rounds 3 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
from common import machine_facts, record, table
from provisioning import WORKER, Run, measured, ours, user

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.google import JWT_BEARER, USER_SCOPE, load_private_key  # noqa: E402
from connectors.sandbox.google import ACCOUNT  # noqa: E402
from connectors.sandbox.peers import LOOPBACK, free_port  # noqa: E402
from core.apps import OutboundTarget  # noqa: E402
from core.iam import Iam  # noqa: E402
from core.identity.events import Initiator  # noqa: E402
from core.idps import ConnectorConfig, IdentityProvider, SecretValue  # noqa: E402

RESULTS = Path(__file__).with_name("google_RESULTS.md")
DOMAIN = "example.com"  # the benchmark users' email claims are there (bench/provisioning.py)
NOTES = "<!-- notes: kept when the benchmark rewrites the numbers above -->"


@dataclass(frozen=True)
class Sandbox:
    process: subprocess.Popen[bytes]
    origin: str
    key_pem: str

    @property
    def token_url(self) -> str:
        return f"{self.origin}/token"


@contextlib.contextmanager
def sandbox(work: Path) -> Iterator[Sandbox]:
    """A fresh ``mware-iam sandbox google`` process on a free loopback port."""
    port, key = free_port(), work / f"key-{secrets.token_hex(4)}.pem"
    process = subprocess.Popen(
        [str(WORKER), "sandbox", "google", "--port", str(port), "--domain", DOMAIN,
         "--key-out", str(key)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    origin = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError, OSError):
                if key.exists() and key.stat().st_size and httpx.get(origin, timeout=1):
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the Google sandbox did not start")
            time.sleep(0.1)
        yield Sandbox(process, origin, key.read_text())
    finally:
        process.terminate()
        process.wait(10)


def body(i: int) -> dict[str, object]:
    """What our connector sends for user i (email claim at the domain, a random password)."""
    _name, claims = user(i)
    return {"primaryEmail": claims["emailaddress"],
            "name": {"givenName": claims["givenname"], "familyName": claims["lastname"]},
            "suspended": False, "password": secrets.token_urlsafe(24)}


async def _post_all(peer: Sandbox, bodies: list[bytes], concurrency: int
                    ) -> list[tuple[float, float]]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    spans: list[tuple[float, float]] = []
    queue = iter(bodies)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        now = int(time.time())
        assertion = jwt.encode({"iss": ACCOUNT, "sub": f"admin@{DOMAIN}", "scope": USER_SCOPE,
                                "aud": peer.token_url, "iat": now, "exp": now + 3600},
                               load_private_key(peer.key_pem), algorithm="RS256")
        began = time.perf_counter()
        token = (await client.post(peer.token_url, data={
            "grant_type": JWT_BEARER, "assertion": assertion})).json()["access_token"]
        spans.append((began, time.perf_counter()))
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                   "Accept": "application/json"}
        url = f"{peer.origin}/admin/directory/v1/users"

        async def lane() -> None:
            for content in queue:
                began = time.perf_counter()
                response = await client.post(url, content=content, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"ceiling POST answered {response.status_code}: "
                                       f"{response.text[:200]}")
                spans.append((began, time.perf_counter()))

        await asyncio.gather(*(lane() for _ in range(concurrency)))
    return spans


def ceiling(peer: Sandbox, users: int, concurrency: int) -> Run:
    bodies = [json.dumps(body(i)).encode() for i in range(users)]
    spans = asyncio.run(_post_all(peer, bodies, concurrency))
    seconds = max(e for _, e in spans) - min(b for b, _ in spans)
    return Run("(a) ceiling: bare httpx (token + POSTs)", users, seconds, None, None)


def connector_alone(peer: Sandbox, users: int, concurrency: int) -> Run:
    """(c): the ``googleapps`` connector itself, as the workers build it (one per job on a
    shared client and memo), without the engine: what the connector adds to bare httpx."""
    from connectors.base import OutboundUser
    from connectors.google import SPEC, GoogleConnector
    from core.claims import LOCAL_DIALECT
    from core.properties import validate

    props = validate(SPEC.all_properties, {
        "google_prov_domain_name": DOMAIN, "google_prov_service_acc_email": ACCOUNT,
        "google_prov_admin_email": f"admin@{DOMAIN}", "google_prov_private_key": peer.key_pem,
        "google_prov_api_url": peer.origin, "google_prov_token_url": peer.token_url}, "bench")
    people = [OutboundUser(name, "PRIMARY", {f"{LOCAL_DIALECT}/{k}": v for k, v in c.items()})
              for name, c in (user(i) for i in range(users))]

    async def run() -> float:
        limits = httpx.Limits(max_connections=concurrency,
                              max_keepalive_connections=concurrency)
        memo: dict[str, object] = {}
        queue = iter(people)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            async def lane() -> None:
                for person in queue:
                    await GoogleConnector(props, client, memo).create_user(person)

            began = time.perf_counter()
            await asyncio.gather(*(lane() for _ in range(concurrency)))
            return time.perf_counter() - began

    return Run("(c) the connector alone (no engine)", users, asyncio.run(run()), None, None)


def wire(peer: Sandbox, concurrency: int):  # type: ignore[no-untyped-def]
    def connect(iam: Iam) -> None:
        admin = Initiator.admin()
        iam.save_idp(admin, IdentityProvider("gws", connectors=(ConnectorConfig(
            "googleapps", properties={
                "google_prov_domain_name": DOMAIN, "google_prov_service_acc_email": ACCOUNT,
                "google_prov_admin_email": f"admin@{DOMAIN}",
                "google_prov_api_url": peer.origin, "google_prov_token_url": peer.token_url,
                "concurrency": concurrency},
            secrets={"google_prov_private_key": SecretValue(peer.key_pem)}),)))
        resident = iam.resident_app()
        iam.save_app(admin, type(resident)(**{
            **resident.__dict__, "outbound": (OutboundTarget("gws", "googleapps"),)}))
    return connect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    command = "python bench/google.py " + " ".join(sys.argv[1:])
    rows: list[list[object]] = []
    ratios: list[float] = []
    alone: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for r in range(1, args.rounds + 1):
            with sandbox(work) as peer:
                a = measured(lambda: ceiling(peer, args.users, args.concurrency),
                             peer.process.pid)
            with sandbox(work) as peer:
                (work / f"round{r}").mkdir()
                b = measured(functools.partial(ours, "", args.users, args.concurrency,
                                               work / f"round{r}",
                                               wire=wire(peer, args.concurrency)),
                             peer.process.pid)
            with sandbox(work) as peer:
                c = measured(lambda: connector_alone(peer, args.users, args.concurrency),
                             peer.process.pid)
            ratios.append(b.rate / a.rate)
            alone.append(c.rate / a.rate)
            for run in (a, b, c):
                rows.append([r, run.name, run.users, f"{run.seconds:.2f}", f"{run.rate:.0f}",
                             f"{run.cpu_ms:.2f}", f"{run.peer_cpu_ms:.2f}"])
            print(f"round {r}: ceiling {a.rate:.0f}/s, ours {b.rate:.0f}/s, connector alone "
                  f"{c.rate:.0f}/s; ratios {ratios[-1]:.2f}, {alone[-1]:.2f}", flush=True)
    text = "\n".join([
        "# Google Workspace provisioning benchmark", "",
        f"Command: `{command}`", "",
        f"Machine: {machine_facts()}; shared with other engineers' test runs (noisy: "
        "compare the ratios of one round, not absolute rates).", "",
        f"Peer: `mware-iam sandbox google` (a threaded http.server process, in memory, "
        f"checking every body against the discovery document), a fresh one per run; "
        f"concurrency {args.concurrency}. CPU ms/job: this process (the bare client, or the "
        "import and the worker pool), and the sandbox.", "",
        table(["round", "run", "jobs", "seconds", "jobs/s", "CPU ms/job",
               "peer CPU ms/job"], rows), "",
        f"ours / ceiling per round: {', '.join(f'{x:.2f}' for x in ratios)}; median "
        f"**{statistics.median(ratios):.2f}**, spread {min(ratios):.2f} to "
        f"{max(ratios):.2f} (target >= 0.8)", "",
        f"connector alone / ceiling per round: {', '.join(f'{x:.2f}' for x in alone)}; "
        f"median **{statistics.median(alone):.2f}**", ""])
    record(__file__, "12", "to the Google sandbox: ours / bare httpx", ratios, ">= 0.8")
    print(text)
    notes = args.out.read_text().partition(NOTES)[2] if args.out.exists() else ""
    args.out.write_text(text + "\n" + NOTES + notes if notes else text)


if __name__ == "__main__":
    main()
