"""A SCIM peer that answers every request after a fixed sleep, at almost no CPU.

For ``scale_out.py``: outbound throughput with several worker processes must be bounded by
the workers, not by the peer's CPU, so the peer does the least a SCIM server can: it
answers ``POST .../Users`` with 201 and a fresh id (the userName echoed), anything else
with 200 and an empty list, each after ``--sleep-ms`` on asyncio's timer (no thread, no
store). One process on its own event loop; httptools parses the requests.

    .venv/bin/python bench/sleepy_peer.py --port 9100 --sleep-ms 20
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json

import httptools

_ids = itertools.count(1)
EMPTY_LIST = json.dumps(
    {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "Resources": [],
    }
).encode()


class SleepyProtocol(asyncio.Protocol):
    def __init__(self, sleep: float) -> None:
        self.sleep = sleep
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        self.body = bytearray()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        if method == b"POST":
            sent = json.loads(self.body or b"{}")
            answer = json.dumps(
                {
                    "schemas": sent.get("schemas", []),
                    "id": str(next(_ids)),
                    "userName": sent.get("userName"),
                }
            ).encode()
            status = b"201 Created"
        else:
            answer, status = EMPTY_LIST, b"200 OK"
        response = (
            b"HTTP/1.1 " + status + b"\r\ncontent-type: application/scim+json\r\n"
            b"content-length: " + str(len(answer)).encode() + b"\r\n\r\n" + answer
        )
        asyncio.get_running_loop().call_later(self.sleep, self._send, response)

    def _send(self, response: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(response)


async def serve(port: int, sleep: float) -> None:
    server = await asyncio.get_running_loop().create_server(
        lambda: SleepyProtocol(sleep), "127.0.0.1", port, backlog=256
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sleep-ms", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.sleep_ms / 1000))


if __name__ == "__main__":
    main()
