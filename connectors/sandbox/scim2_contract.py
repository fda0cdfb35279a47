"""The SCIM 2.0 connector's contract peer: ``scim2-server`` behind a :class:`FaultProxy`.

The connector reaches the peer through the proxy with a bearer token and a default
password (both secrets the contract suite looks for in exchanges and errors); the peer's
own reads (:meth:`Scim2ContractPeer.remote_user`...) go straight to ``scim2-server``.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from typing import Any

import httpx

from connectors.sandbox.contract import Fault, RemoteUser
from connectors.sandbox.peers import Fault as ProxyFault
from connectors.sandbox.peers import FaultProxy, fault_proxy, free_port, scim_server

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
#: The connector's timeout; a "timeout" fault holds the request this much longer.
TIMEOUT_SECONDS = 1
_SCIM_JSON = {"Content-Type": "application/scim+json"}


class Scim2ContractPeer:
    """One ``scim2-server`` tenant, reached by the connector through a fault proxy."""

    def __init__(self, proxy: FaultProxy, tenant: str, token: str) -> None:
        self._tenant = tenant
        self._proxy = proxy
        self._token = token
        self._password = "Default-" + secrets.token_urlsafe(12)
        self._http = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=5.0)

    def _endpoints(self, base: str) -> dict[str, Any]:
        return {"scim2-user-ep": f"{base}/Users", "scim2-group-ep": f"{base}/Groups",
                "scim2-authentication-mode": "BEARER", "scim2-access-token": self._token,
                "scim2-default-pwd": self._password, "timeout-seconds": TIMEOUT_SECONDS}

    def properties(self) -> dict[str, Any]:
        return self._endpoints(self._proxy.url(self._tenant))

    def attribute_names(self) -> dict[str, str]:
        return {"givenname": "name.givenName", "lastname": "name.familyName",
                "emailaddress": 'emails[type eq "work"].value'}

    def refusing_properties(self) -> dict[str, Any]:
        return self._endpoints(f"http://127.0.0.1:{free_port()}/v2")

    def secrets(self) -> list[str]:
        return [self._token, self._password]

    def fail_next(self, fault: Fault, count: int = 1) -> None:
        self._proxy.script(*[_proxy_fault(fault)] * count)

    def seed_user(self, username: str) -> str:
        response = self._http.post(f"{self._tenant}/Users", headers=_SCIM_JSON,
                                   json={"schemas": [CORE_USER], "userName": username})
        response.raise_for_status()
        return str(response.json()["id"])

    def _get(self, url: str) -> dict[str, Any] | None:
        response = self._http.get(url)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def remote_user(self, remote_id: str) -> RemoteUser | None:
        body = self._get(f"{self._tenant}/Users/{remote_id}")
        if body is None:
            return None
        return RemoteUser(str(body["id"]), str(body["userName"]), body.get("active") is not False,
                          body)

    def group_members(self, remote_id: str) -> set[str] | None:
        body = self._get(f"{self._tenant}/Groups/{remote_id}")
        if body is None:
            return None
        return {str(m["value"]) for m in body.get("members") or []}

    def close(self) -> None:
        self._http.close()


def _proxy_fault(fault: Fault) -> ProxyFault:
    if fault == "drop":
        return ProxyFault.drop()
    if fault == "timeout":
        return ProxyFault.delay(TIMEOUT_SECONDS + 2)
    status = int(fault)
    body = {"schemas": [ERROR], "status": fault, "detail": f"contract fault {fault}"}
    if status == 429:
        return ProxyFault.answer(status, body, retry_after="1")
    return ProxyFault.answer(status, body)


@contextlib.contextmanager
def contract_peer() -> Iterator[Scim2ContractPeer]:
    """A running peer; raises ``PeerUnavailable`` when ``scim2-server`` cannot start."""
    token = "contract-" + secrets.token_urlsafe(16)
    with scim_server(bearer_tokens=[token]) as server:
        tenant = server.tenant()
        with fault_proxy(tenant) as proxy:
            peer = Scim2ContractPeer(proxy, tenant, token)
            try:
                yield peer
            finally:
                peer.close()
