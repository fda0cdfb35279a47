"""The inbound SCIM API served for tests: a real uvicorn server on a free loopback port,
in a thread, over a test deployment (the same ``HttpApp`` ``mware-iam serve`` runs)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import uvicorn

from core.apps import Application
from core.cli.serve import HttpApp
from core.iam import Iam
from core.identity.events import Initiator
from core.inbound import Limits
from core.inbound.app import ScimApplication

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served(iam: Iam, limits: Limits | None = None) -> Iterator[ScimApi]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        HttpApp(iam, ScimApplication(iam, limits)), host="127.0.0.1", port=port,
        lifespan="off", log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the SCIM test server did not start")
        time.sleep(0.02)
    try:
        yield ScimApi(iam, f"http://127.0.0.1:{port}/scim2")
    finally:
        server.should_exit = True
        thread.join(10)


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
