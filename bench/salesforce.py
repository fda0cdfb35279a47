"""Outbound provisioning to Salesforce (the sandbox org) through our workers, next to a
bare httpx client sending the same requests, side by side in one run.

Rounds of the shared harness (``bench/outbound_harness.py``), each run against a fresh
sandbox org (``mware-iam sandbox salesforce``, its own process): N users' jobs queued
before the clock, then

(a) ceiling: a bare ``httpx.AsyncClient`` gets one token (client credentials) and POSTs
    the User bodies ``provisioning preview`` shows, at the connector's concurrency;
(b) ours: a ``WorkerPool`` of this process drains the N jobs through the ``salesforce``
    connector (its token cached per target, so it too gets one).

Target (issue 13): ours / ceiling >= 0.8.

    .venv/bin/python bench/salesforce.py --users 1000 --rounds 5
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import outbound_harness as harness
from outbound_harness import MWARE_IAM, Kind, Peer

from connectors.sandbox.peers import LOOPBACK, free_port
from connectors.sandbox.salesforce import CLIENT_ID, CLIENT_SECRET, PROFILE_ID
from core.apps import OutboundTarget
from core.iam import Iam
from core.identity.events import Initiator
from core.idps import ConnectorConfig, IdentityProvider, SecretValue

RESULTS = Path(__file__).with_name("salesforce_RESULTS.md")
TOKEN_PATH = "/services/oauth2/token"


@contextlib.contextmanager
def org(work: Path) -> Iterator[Peer]:
    """A fresh sandbox org process on a free loopback port."""
    port = free_port()
    origin = f"http://{LOOPBACK}:{port}"
    argv = [str(MWARE_IAM), "sandbox", "salesforce", "--port", str(port)]
    with harness.peer_process(argv, f"{origin}/services/data/", "the sandbox org", work) as process:
        yield Peer(origin, process.pid)


def wire(iam: Iam, peer: Peer, concurrency: int) -> None:
    admin = Initiator.admin()
    iam.save_idp(
        admin,
        IdentityProvider(
            name="crm",
            connectors=(
                ConnectorConfig(
                    "salesforce",
                    properties={
                        "sf-domain-name": peer.base,
                        "sf-api-version": "v61.0",
                        "sf-token-endpoint": f"{peer.base}{TOKEN_PATH}",
                        "sf-clientid": CLIENT_ID,
                        "sf-profile-id": PROFILE_ID,
                        "sf-prov-domainName": "bench.example.com",
                        "concurrency": concurrency,
                    },
                    secrets={"sf-client-secret": SecretValue(CLIENT_SECRET)},
                ),
            ),
        ),
    )
    resident = iam.resident_app()
    iam.save_app(
        admin,
        type(resident)(**{**resident.__dict__, "outbound": (OutboundTarget("crm", "salesforce"),)}),
    )


async def session(client: httpx.AsyncClient, peer: Peer) -> dict[str, str]:
    """One token, as the connector gets one per target."""
    response = await client.post(
        f"{peer.base}{TOKEN_PATH}",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    return {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Authorization": f"Bearer {response.json()['access_token']}",
    }


def content(exchange: dict[str, Any]) -> bytes | None:
    if exchange["url"].endswith(TOKEN_PATH):
        return None  # the ceiling's session gets its own token
    return harness.json_body(exchange)


KIND = Kind(
    "salesforce",
    peer=org,
    wire=wire,
    session=session,
    content=content,
    accepted=lambda response: response.status_code == 201,
)


def main() -> None:
    harness.main(
        KIND,
        __doc__ or "",
        "13",
        "Salesforce provisioning benchmark",
        "the sandbox org (`mware-iam sandbox salesforce`, threaded http.server, one process), "
        "a fresh one per run",
        0.8,
        RESULTS,
    )


if __name__ == "__main__":
    main()
