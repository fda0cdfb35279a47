"""The same reconciliation through every registered connector and its sandbox peer
(``ConnectorSpec.contract_peer``): drift made at the peer is reported exactly and repaired."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from connectors.base import OutboundUser
from connectors.registry import connector_class, registry
from connectors.sandbox.contract import ContractPeer
from connectors.sandbox.peers import PeerUnavailable
from core.apps import OutboundTarget
from core.iam import Iam
from core.identity.events import Initiator
from core.idps import ConnectorConfig, IdentityProvider
from core.properties import validate
from core.provisioning import mapping
from core.secrets import SecretValue
from tests.conftest import FAST_ARGON2
from tests.provisioning_helpers import drain
from tests.servers import unavailable


@pytest.fixture(params=sorted(registry()))
def peer(request: pytest.FixtureRequest) -> Iterator[tuple[str, ContractPeer]]:
    spec = registry()[request.param]
    assert spec.contract_peer, f"{spec.type} names no contract peer"
    module, function = spec.contract_peer.split(":")
    try:
        started: AbstractContextManager[ContractPeer] = getattr(
            importlib.import_module(module), function)()
        with started as running:
            yield spec.type, running
    except PeerUnavailable as exc:
        unavailable(f"{spec.type} contract peer: {exc}")


def test_reconcile_reports_and_repairs_drift_at_every_sandbox(
        tmp_path: Path, peer: tuple[str, ContractPeer]) -> None:
    kind, running = peer
    props = running.properties()
    domain = str(props.get("google_prov_domain_name") or "example.org")
    admin = Initiator.admin()
    with Iam.open(home=str(tmp_path / "home"), argon2=FAST_ARGON2) as iam:
        secret = {p.name for p in registry()[kind].all_properties if p.secret}
        iam.save_idp(admin, IdentityProvider(name="peer", connectors=(ConnectorConfig(
            kind, properties={k: v for k, v in props.items() if k not in secret},
            secrets={k: SecretValue(str(v)) for k, v in props.items() if k in secret}),)))
        resident = iam.resident_app()
        iam.save_app(admin, resident.__class__(**{**resident.__dict__, "outbound": (
            OutboundTarget("peer", kind),)}))
        target = f"peer:{kind}"
        names = [f"rc{i}.{tmp_path.name[-6:]}@{domain}".lower() for i in range(4)]
        for name in names:
            iam.identity.add_user(admin, name, None, {
                "givenname": "Recon", "lastname": f"Ciled{name[2]}", "emailaddress": name})
        last = iam.provisioning.jobs(states=["pending"])[0]  # the fourth user's
        iam.provisioning.cancel(admin, last.pk)
        drain(iam)
        running.seed_user(names[3])  # ours by name, never linked: unlinked
        gone = iam.identity.get_user(names[0])
        with iam.db.transaction() as conn:
            m = mapping.get(conn, target, "user", gone.id)
        assert m is not None
        asyncio.run(_delete(kind, props, m.remote_id, names[0]))

        report = iam.provisioning.reconcile(admin, target)
        assert report.missing_remote == [f"PRIMARY/{names[0]}"]
        assert report.unlinked == [f"PRIMARY/{names[3]}"]
        assert report.drifted == []
        iam.provisioning.reconcile(admin, target, repair=True)
        drain(iam)
        after = iam.provisioning.reconcile(admin, target)
        assert (after.missing_remote, after.unlinked, after.drifted) == ([], [], [])


async def _delete(kind: str, props: dict[str, object], remote_id: str, name: str) -> None:
    """At the peer, behind our back: through a connector of our own, as an admin would."""
    spec = registry()[kind]
    typed = validate(spec.all_properties, props, "peer")
    async with httpx.AsyncClient(timeout=5.0) as client:
        await connector_class(kind)(typed, client).delete_user(
            remote_id, OutboundUser(name, "PRIMARY"))
