"""CPU and Python calls per SCIM GET by filter (or POST of a user: ``--operation post``)
through ``serve``'s ASGI app, in process (no HTTP, no load generator sharing the cores):
``Guard(HttpApp(iam, ScimApplication(iam)))`` on a fresh SQLite home with 200 users, the
request served whole as under uvicorn.

The count of Python calls (every thread, ``sys.setprofile``) is deterministic: it resolves
a change of a few microseconds that the HTTP benchmarks' noise hides. Run it from each
checkout to compare (the ``core`` imported is the one of the venv that runs it):

    .venv/bin/python bench/scim_asgi_cost.py --requests 300
    (cd OLD && .venv/bin/python /path/to/bench/scim_asgi_cost.py --requests 300)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import threading
import time
from types import FrameType
from typing import Any

from core.apps import Application
from core.http.app import HttpApp
from core.http.hardening import Guard
from core.iam import Iam
from core.identity.events import Initiator
from core.inbound import Limits
from core.inbound.app import ScimApplication
from core.passwords import Argon2Params

USERS = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="CPU rounds (after the count)")
    parser.add_argument("--operation", choices=("get", "post"), default="get",
                        help="GET /Users by userName filter, or POST /Users of a new user")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        iam = Iam.open(home=tmp, argon2=Argon2Params(time_cost=1, memory_cost=1024,
                                                     parallelism=1))
        iam.save_app(Initiator.admin(), Application(name="crm"))
        token = iam.issue_token(Initiator.admin(), "crm")
        for i in range(USERS):
            iam.identity.add_user(Initiator.admin(), f"user{i}", None, {})
        scim = ScimApplication(iam, Limits(rate=0))
        try:
            asyncio.run(measure(Guard(HttpApp(iam, scim), iam), scim, token, args))
        finally:
            scim.close()
            iam.close()


async def measure(app: Any, scim: ScimApplication, token: str,
                  args: argparse.Namespace) -> None:
    headers = [(b"host", b"127.0.0.1"), (b"authorization", b"Bearer " + token.encode()),
               (b"content-type", b"application/scim+json")]
    created = itertools.count()

    async def one(i: int) -> None:
        sent: list[dict[str, Any]] = []
        posting = args.operation == "post"
        body = json.dumps(_new_user(next(created))).encode() if posting else b""
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # the client stays until its answer
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app({"type": "http", "method": "POST" if posting else "GET",
                   "path": "/scim2/Users", "root_path": "", "scheme": "http",
                   "headers": headers, "server": ("127.0.0.1", 8080),
                   "client": ("127.0.0.1", 50000),
                   "query_string": b"" if posting else
                   f'filter=userName eq "user{i % USERS}"'.encode()},
                  receive, send)
        assert sent[0]["status"] == (201 if posting else 200), sent

    for i in range(USERS):  # warm: caches, the lane's thread
        await one(i)
    calls = 0

    def count(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    lane: Any = scim._embedded_lane

    async def on_lane(*call: Any) -> None:
        """In the SQLite lane's thread (a ``Lane``; before it, a one-thread executor)."""
        if hasattr(lane, "call"):
            await lane.call(*call)
        else:
            await asyncio.get_running_loop().run_in_executor(lane, *call)

    await on_lane(sys.setprofile, count)
    threading.setprofile(count)  # type: ignore[arg-type]
    sys.setprofile(count)  # type: ignore[arg-type]
    for i in range(args.requests):
        await one(i)
    sys.setprofile(None)
    threading.setprofile(None)  # type: ignore[arg-type]
    await on_lane(sys.setprofile, None)
    cpu = []
    for _ in range(args.rounds):
        started = time.process_time()
        for i in range(args.requests):
            await one(i)
        cpu.append((time.process_time() - started) / args.requests * 1e6)
    print(f"{sys.prefix}: Python calls per request {calls / args.requests:.0f}"
          + (f"; CPU µs per request {' '.join(f'{c:.0f}' for c in cpu)} (min {min(cpu):.0f})"
             if cpu else ""))


def _new_user(i: int) -> dict[str, Any]:
    """The POST body of ``scim_inbound.py``'s users."""
    name = f"load{i:07d}"
    return {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name,
            "name": {"givenName": f"Given{i % 997}", "familyName": f"Family{i % 1009}"},
            "emails": [{"value": f"{name}@example.com", "type": "work"}], "active": True}


if __name__ == "__main__":
    main()
