"""ScimApplication.read_request reads an ASGI request as scim2-server's ASGIApplication
does (the same method, base URL, path, query, headers and body), and its requests' header()
answers as ScimRequest.header does, with headers repeated or in any case; its
finalize_response sets the headers it set before its shortcuts."""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scim2_server.applications.asgi import ASGIApplication
from scim2_server.applications.base import BaseApplication
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse

from core.inbound.app import ScimApplication

_NAMES = st.sampled_from([b"host", b"Host", b"authorization", b"content-type", b"If-Match",
                          b"if-match", b"x-other", b"accept"])
_VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=12
                  ).map(str.encode)
_QUERIES = st.sampled_from([b"", b'filter=userName eq "a"', b"count=5&startIndex=2",
                            b"attributes=&x=1&x=2", b"a=%20b+c"])
_PATHS = st.sampled_from(["/scim2/Users", "/scim2/v2/Users/abc", "/scim2/Users/x.scim",
                          "/scim2/Bulk", "/scim2/nowhere/a/b", "/scim2"])


def _read(app: Any, reader: Any, scope: dict[str, Any], chunks: list[bytes]) -> Any:
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                for i, c in enumerate(chunks)]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    return asyncio.run(reader(app, scope, receive))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(headers=st.lists(st.tuples(_NAMES, _VALUES), max_size=6), query=_QUERIES,
       path=_PATHS, chunks=st.lists(st.binary(max_size=8), min_size=1, max_size=3),
       server=st.sampled_from([("127.0.0.1", 8080), None]))
def test_a_request_reads_as_scim2_servers(sqlite_iam, headers, query, path, chunks,
                                          server) -> None:
    app = _app(sqlite_iam)
    scope = {"type": "http", "method": "POST", "path": path, "root_path": "/scim2",
             "scheme": "http", "headers": headers, "query_string": query, "server": server}
    ours = _read(app, ScimApplication.read_request, scope, chunks)
    theirs = _read(app, ASGIApplication.read_request, scope, chunks)
    # scim2-server's base URL adds /v2, which ScimApplication.get_base_url leaves out.
    theirs.base_url = ScimApplication.get_base_url(scope)
    assert (ours.method, ours.base_url, ours.path, ours.query, ours.headers, ours.body) == \
        (theirs.method, theirs.base_url, theirs.path, theirs.query, theirs.headers,
         theirs.body)
    for name in ["Host", "host", "If-Match", "AUTHORIZATION", "Content-Type", "X-Other",
                 "absent"]:
        assert ours.header(name) == theirs.header(name)


_APPS: dict[int, ScimApplication] = {}


def _app(iam: Any) -> ScimApplication:
    """One application per home (hypothesis calls the test many times with one fixture)."""
    app = _APPS.get(id(iam))
    if app is None:
        _APPS.clear()
        app = _APPS[id(iam)] = ScimApplication(iam)
    return app


_HEADER_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=10)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=_HEADER_TEXT, headers=st.dictionaries(
    st.sampled_from(["Location", "ETag", "Content-Location", "Cache-Control", "X"]),
    _HEADER_TEXT, max_size=4))
def test_a_response_is_finalized_as_before(sqlite_iam, path, headers) -> None:
    """The headers scim2-server's finalize_response sets, then every control character
    percent-encoded (what ScimApplication.finalize_response did for every response)."""
    app = _app(sqlite_iam)
    request = ScimRequest(method="GET", base_url="http://h/scim2", path="/Users/" + path)
    expected = BaseApplication.finalize_response(
        app, request, ScimResponse(HTTPStatus.OK, None, dict(headers))).headers
    expected = {n: "".join(f"%{ord(c):02X}" if ord(c) < 0x20 or ord(c) == 0x7F else c
                           for c in v) for n, v in expected.items()}
    ours = app.finalize_response(request, ScimResponse(HTTPStatus.OK, None, dict(headers)))
    assert list(ours.headers.items()) == list(expected.items())
