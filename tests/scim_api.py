"""The inbound SCIM API served for tests: a real uvicorn server on a free loopback port,
in a thread, over a test deployment (``core.http.thread``, as ``tui --scim`` runs it)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from core.apps import Application
from core.http.thread import scim_thread
from core.iam import Iam
from core.identity.events import Initiator
from core.inbound import Limits

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@dataclass
class ScimApi:
    iam: Iam
    base: str

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=10)


@contextlib.contextmanager
def served(iam: Iam, limits: Limits | None = None) -> Iterator[ScimApi]:
    with scim_thread(iam, 0, limits=limits) as base:
        yield ScimApi(iam, base)


def application(iam: Iam, name: str, domain: str = "PRIMARY", proxy: bool = False) -> str:
    """Register an application reading and writing ``domain``; returns a new token."""
    admin = Initiator.admin()
    iam.save_app(admin, Application(name=name, inbound_domain=domain, proxy_mode=proxy))
    return iam.issue_token(admin, name)


def new_user(client: httpx.Client, user_name: str, **extra: object) -> dict[str, object]:
    body = {"schemas": [USER], "userName": user_name, **extra}
    response = client.post("/Users", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def patch(client: httpx.Client, path: str, *operations: dict[str, object],
          **headers: str) -> httpx.Response:
    return client.patch(path, json={"schemas": [PATCH], "Operations": list(operations)},
                        headers=headers)
