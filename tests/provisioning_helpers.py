"""Wiring a deployment to SCIM peers, and reading what the peer holds."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from core.apps import Application, OutboundTarget
from core.iam import Iam
from core.identity.events import Initiator
from core.idps import ConnectorConfig, IdentityProvider


def connect(
    iam: Iam, base_url: str, idp: str = "peer", blocking: bool = False, jit: bool = False,
    provisioning_roles: tuple[str, ...] = (), app: str | None = None,
    fail_on_blocking_failure: bool = False, extra_targets: tuple[OutboundTarget, ...] = (),
    **props: Any,
) -> None:
    """Make the resident application (or ``app``) provision to a SCIM 2.0 peer."""
    admin = Initiator.admin()
    properties = {"scim2-user-ep": f"{base_url}/Users", "scim2-group-ep": f"{base_url}/Groups",
                  "retry-base-seconds": 1, "quarantine-threshold": 3, "probe-seconds": 1,
                  **props}
    iam.save_idp(admin, IdentityProvider(
        name=idp, provisioning_roles=provisioning_roles,
        connectors=(ConnectorConfig("scim2", properties=properties),)))
    current = iam.get_app(app) if app else iam.resident_app()
    iam.save_app(admin, Application(
        name=current.name, description=current.description, resident=current.resident,
        inbound_domain=current.inbound_domain, proxy_mode=current.proxy_mode,
        fail_on_blocking_failure=fail_on_blocking_failure,
        outbound=(*extra_targets, OutboundTarget(idp, "scim2", blocking, jit))))


def drain(iam: Iam, horizon: float = 2.0) -> int:
    """Run jobs as a worker would, until none is due within ``horizon`` seconds."""
    pool = iam.provisioning.worker_pool()
    try:
        return asyncio.run(pool.drain(horizon=horizon))
    finally:
        pool.close()


def peer_users(base_url: str, user_name: str | None = None) -> list[dict[str, Any]]:
    params = {"filter": f'userName eq "{user_name}"'} if user_name else {"count": "1000"}
    body = httpx.get(f"{base_url}/Users", params=params, timeout=5).json()
    return list(body.get("Resources", []))


def peer_groups(base_url: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{base_url}/Groups", params={"count": "1000"}, timeout=5).json()
    return list(body.get("Resources", []))
