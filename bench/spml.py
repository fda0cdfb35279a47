"""SPML provisioning throughput through our workers, next to a bare httpx client.

Rounds of the shared harness (``bench/outbound_harness.py``), each run against a fresh
sandbox provider (``mware-iam sandbox spml``, its own process, validating every request
against the OASIS schemas): N users' jobs queued before the clock, then

(a) ceiling: a bare ``httpx.AsyncClient`` POSTs the addRequest envelopes ``provisioning
    preview`` shows, at the connector's concurrency;
(b) ours: a ``WorkerPool`` of this process drains the N jobs through the SPML connector.

Target (issue 14): ours / ceiling >= 0.8.

    .venv/bin/python bench/spml.py --users 1000 --rounds 5
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
from connectors.sandbox.spml import OBJECT_CLASS
from connectors.spml_xml import SOAP_CONTENT_TYPE
from core.apps import OutboundTarget
from core.iam import Iam
from core.identity.events import Initiator
from core.idps import ClaimMapping, ConnectorConfig, IdentityProvider

RESULTS = Path(__file__).with_name("spml_RESULTS.md")
#: Local claim -> DSML attribute, for the users of ``outbound_harness.user``.
MAPPINGS = (("givenname", "givenName"), ("lastname", "sn"), ("emailaddress", "mail"))


@contextlib.contextmanager
def provider(work: Path) -> Iterator[Peer]:
    """A fresh sandbox provider process on a free loopback port."""
    port = free_port()
    url = f"http://{LOOPBACK}:{port}/spml"
    argv = [str(MWARE_IAM), "sandbox", "spml", "--port", str(port)]
    with harness.peer_process(argv, url, "the SPML sandbox", work) as process:
        yield Peer(url, process.pid)


def wire(iam: Iam, peer: Peer, concurrency: int) -> None:
    admin = Initiator.admin()
    iam.save_idp(
        admin,
        IdentityProvider(
            name="provider",
            claim_mappings=tuple(ClaimMapping(*m) for m in MAPPINGS),
            connectors=(
                ConnectorConfig(
                    "spml",
                    properties={
                        "spml-ep": peer.base,
                        "spml-oc": OBJECT_CLASS,
                        "concurrency": concurrency,
                    },
                ),
            ),
        ),
    )
    resident = iam.resident_app()
    iam.save_app(
        admin,
        type(resident)(**{**resident.__dict__, "outbound": (OutboundTarget("provider", "spml"),)}),
    )


async def session(_client: httpx.AsyncClient, _peer: Peer) -> dict[str, str]:
    return {"Content-Type": SOAP_CONTENT_TYPE, "SOAPAction": '"addRequest"', "Accept": "text/xml"}


def content(exchange: dict[str, Any]) -> bytes:
    """The envelope as sent (preview keeps it as text)."""
    return str(exchange["request_body"]).encode()


KIND = Kind(
    "spml",
    peer=provider,
    wire=wire,
    session=session,
    content=content,
    accepted=lambda response: b'status="success"' in response.content,
)


def main() -> None:
    harness.main(
        KIND,
        __doc__ or "",
        "14",
        "SPML provisioning benchmark",
        "the SPML sandbox provider (`mware-iam sandbox spml`, one process, http.server "
        "threads, every request validated against the OASIS schemas), a fresh one per run",
        0.8,
        RESULTS,
    )


if __name__ == "__main__":
    main()
