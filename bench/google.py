"""Outbound provisioning to Google Workspace (the sandbox peer) next to its ceiling.

Rounds of the shared harness (``bench/outbound_harness.py``), each run against a fresh
``mware-iam sandbox google`` process (its own in-memory directory, every body checked
against the discovery document): N users' jobs queued before the clock, then

(a) ceiling: a bare ``httpx.AsyncClient`` mints one access token (the same JWT bearer
    grant) and POSTs the Directory API User bodies ``provisioning preview`` shows (the
    redacted password replaced by a random one, as the connector makes), at the
    connector's concurrency;
(b) ours: a ``WorkerPool`` of this process drains the N jobs through the ``googleapps``
    connector (which caches its token, so it too mints one).

Target (issue 12): ours / ceiling >= 0.8.

    .venv/bin/python bench/google.py --users 1000 --rounds 5
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import outbound_harness as harness
from outbound_harness import MWARE_IAM, Kind, Peer

from connectors.google import JWT_BEARER, USER_SCOPE, load_private_key
from connectors.sandbox.google import ACCOUNT
from connectors.sandbox.peers import LOOPBACK, free_port
from core.apps import OutboundTarget
from core.iam import Iam
from core.identity.events import Initiator
from core.idps import ConnectorConfig, IdentityProvider, SecretValue

RESULTS = Path(__file__).with_name("google_RESULTS.md")
DOMAIN = "example.com"  # the benchmark users' email claims are there (outbound_harness.user)
USERS_PATH = "/admin/directory/v1/users"


@contextlib.contextmanager
def sandbox(work: Path) -> Iterator[Peer]:
    """A fresh ``mware-iam sandbox google`` process on a free loopback port."""
    port, key = free_port(), work / f"key-{secrets.token_hex(4)}.pem"
    origin = f"http://{LOOPBACK}:{port}"
    argv = [
        str(MWARE_IAM),
        "sandbox",
        "google",
        "--port",
        str(port),
        "--domain",
        DOMAIN,
        "--key-out",
        str(key),
    ]
    with harness.peer_process(argv, origin, "the Google sandbox", work) as process:
        deadline = time.monotonic() + 30
        while not (key.exists() and key.stat().st_size):
            if time.monotonic() > deadline:
                raise RuntimeError("the Google sandbox wrote no key")
            time.sleep(0.1)
        yield Peer(origin, process.pid, {"key": key.read_text()})


def wire(iam: Iam, peer: Peer, concurrency: int) -> None:
    admin = Initiator.admin()
    iam.save_idp(
        admin,
        IdentityProvider(
            "gws",
            connectors=(
                ConnectorConfig(
                    "googleapps",
                    properties={
                        "google_prov_domain_name": DOMAIN,
                        "google_prov_service_acc_email": ACCOUNT,
                        "google_prov_admin_email": f"admin@{DOMAIN}",
                        "google_prov_api_url": peer.base,
                        "google_prov_token_url": f"{peer.base}/token",
                        "concurrency": concurrency,
                    },
                    secrets={"google_prov_private_key": SecretValue(peer.extra["key"])},
                ),
            ),
        ),
    )
    resident = iam.resident_app()
    iam.save_app(
        admin,
        type(resident)(**{**resident.__dict__, "outbound": (OutboundTarget("gws", "googleapps"),)}),
    )


async def session(client: httpx.AsyncClient, peer: Peer) -> dict[str, str]:
    """One access token, as the connector mints one per target."""
    token_url, now = f"{peer.base}/token", int(time.time())
    assertion = jwt.encode(
        {
            "iss": ACCOUNT,
            "sub": f"admin@{DOMAIN}",
            "scope": USER_SCOPE,
            "aud": token_url,
            "iat": now,
            "exp": now + 3600,
        },
        load_private_key(peer.extra["key"]),
        algorithm="RS256",
    )
    response = await client.post(token_url, data={"grant_type": JWT_BEARER, "assertion": assertion})
    return {
        "Authorization": f"Bearer {response.json()['access_token']}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }


def content(exchange: dict[str, Any]) -> bytes | None:
    """A user POST as sent: preview redacts the random password the connector makes."""
    if not exchange["url"].endswith(USERS_PATH):
        return None  # the token grant: the ceiling's session gets its own
    body = dict(exchange["request_body"])
    body["password"] = secrets.token_urlsafe(24)
    return json.dumps(body).encode()


KIND = Kind(
    "google",
    peer=sandbox,
    wire=wire,
    session=session,
    content=content,
    accepted=lambda response: response.status_code == 200,
)


def main() -> None:
    harness.main(
        KIND,
        __doc__ or "",
        "12",
        "Google Workspace provisioning benchmark",
        "`mware-iam sandbox google` (a threaded http.server process, in memory, checking "
        "every body against the discovery document), a fresh one per run",
        0.8,
        RESULTS,
    )


if __name__ == "__main__":
    main()
