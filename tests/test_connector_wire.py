"""The answer and exchange-log helpers every HTTP connector shares (``connectors/wire.py``)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, Table, create_engine, insert, select

from connectors.base import Exchange
from connectors.wire import (
    MASK,
    SHOWN_TEXT,
    decoded_body,
    decoded_json,
    holds_secret,
    redact,
    request_to,
    shown,
    text_of,
)
from core.db import make_engine
from core.encoded_json import EncodedJSON
from tests.servers import database_url


def test_redact_masks_every_secret_key_at_any_depth_and_a_password_patch() -> None:
    body = {
        "userName": "ada",
        "Password": "s3cret",
        "nested": [{"access_token": "tok"}],
        "Operations": [{"op": "replace", "path": "password", "value": "p4ss"}],
        "client_secret": "cs",
        "assertion": "jwt",
        "refresh_token": None,
    }
    shown = redact(body)
    assert shown["userName"] == "ada"
    assert shown["Password"] == shown["client_secret"] == shown["assertion"] == MASK
    assert shown["nested"] == [{"access_token": MASK}]
    assert shown["Operations"] == [{"op": "replace", "path": "password", "value": MASK}]
    assert shown["refresh_token"] is None  # nothing to hide
    assert body["Password"] == "s3cret", "the original is left alone"


def test_decoded_body_is_json_or_shortened_text_or_none() -> None:
    assert decoded_body(httpx.Response(200, json={"a": 1})) == {"a": 1}
    assert decoded_body(httpx.Response(204)) is None
    text = decoded_body(httpx.Response(502, text="bad\n\n gateway " + "x" * 1000))
    assert text.startswith("bad gateway x") and len(text) == SHOWN_TEXT


def test_text_of_decodes_as_httpx_does() -> None:
    body = "café ✓".encode()
    for content_type in (None, "text/xml; charset=utf-8", 'text/xml; Charset="UTF-8"',
                         "text/xml; charset=utf-8; q=1", "text/xml; charset=latin-1",
                         "text/plain; charset=iso-8859-5"):
        headers = {"Content-Type": content_type} if content_type else {}
        for content in (body, body + b"\xff", "café".encode("latin-1"),
                        "café".encode("utf-16")):
            response = httpx.Response(200, content=content, headers=headers)
            assert text_of(response) == response.text, (content_type, content)


SECRET_TEXTS = [
    '{"userName": "ada", "Password": "s3cret"}',
    '{"nested": [{"ACCESS_TOKEN": "t"}]}',
    '{"Operations": [{"op": "replace", "path": "urn:x:User:password", "value": "p"}]}',
    '{"pass\\u0077ord": "s3cret"}',  # an escape that spells a secret key
    '{"access_to\u212aen": "t"}',  # the Kelvin sign, whose lower case is "k"
]


@pytest.mark.parametrize("text", SECRET_TEXTS)
def test_shown_masks_what_redact_masks_when_the_text_may_hold_a_secret(text: str) -> None:
    value = json.loads(text)
    assert holds_secret(text)
    masked, masked_text = shown(value, text)
    assert masked == redact(value) and masked_text is None
    assert MASK in json.dumps(masked), "every text here holds a secret"


def test_shown_keeps_a_body_without_secrets_and_its_text() -> None:
    body = {"userName": "ada", "emails": [{"value": "ada@example.com"}], "note": "token"}
    text = json.dumps(body)
    assert not holds_secret(text)
    assert shown(body, text) == (body, text) and redact(body) == body
    assert shown(body, None) == (body, None), "no text: walked, nothing to record as is"


def test_decoded_json_gives_the_text_of_utf8_json_answers_only() -> None:
    answer = {"id": "1", "name": "café"}
    assert decoded_json(httpx.Response(201, json=answer)) == (
        answer, httpx.Response(201, json=answer).content.decode())
    assert decoded_json(httpx.Response(204)) == (None, None)
    assert decoded_json(httpx.Response(502, text="bad gateway")) == ("bad gateway", None)
    utf16 = json.dumps(answer).encode("utf-16")
    assert decoded_json(httpx.Response(200, content=utf16)) == (answer, None)
    bom = b"\xef\xbb\xbf" + json.dumps(answer).encode()
    assert decoded_json(httpx.Response(200, content=bom)) == (answer, None)


def _exchanges() -> list[Exchange]:
    body = {"userName": "ada", "active": True}
    answer = {"id": "x1", "userName": "ada", "meta": {"version": 'W/"1"'}}
    return [Exchange("POST", "https://t.example/Users", body, 201, answer,
                     json.dumps(body), json.dumps(answer, indent=1)),
            Exchange("DELETE", "https://t.example/Users/x1", None, 204, None)]


def test_an_exchange_as_json_is_its_dict() -> None:
    for exchange in _exchanges():
        text = exchange.as_json()
        assert text is not None and json.loads(text) == exchange.as_dict()
    assert Exchange("GET", "https://t.example/Users", None, 200, {"a": 1}).as_json() is None


@pytest.mark.parametrize(("backend", "serializer"), [
    ("sqlite", "ours"), ("sqlite", "json.dumps"), ("postgresql", "ours"), ("mariadb", "ours")])
def test_a_json_column_stores_an_encoded_value_as_its_items(
        backend: str, serializer: str, tmp_path: Path) -> None:
    """The engine's serializer stores the text; any other stores the items: the same."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(database_url(backend, str(tmp_path)))
        engine = make_engine(url) if serializer == "ours" else create_engine(url)
        stack.callback(engine.dispose)
        _store_encoded(engine)


def _store_encoded(engine: Any) -> None:
    rows = Table("t", MetaData(), Column("pk", Integer, primary_key=True),
                 Column("value", JSON))
    rows.create(engine)
    exchanges = _exchanges()
    dicts = [e.as_dict() for e in exchanges]
    value: Any = EncodedJSON(dicts, "[" + ", ".join(str(e.as_json()) for e in exchanges)
                             + "]")
    with engine.begin() as conn:
        conn.execute(insert(rows), {"pk": 1, "value": value})
        assert conn.execute(select(rows.c.value)).scalar_one() == dicts


def test_request_to_builds_what_build_request_builds() -> None:
    client = httpx.AsyncClient(timeout=7.0, headers={"X-Client": "1"})
    url = httpx.URL("https://t.example/v2/Users")
    memo: dict[str, Any] = {}
    for headers, content in [({"Accept": "a/b"}, None), ({"Accept": "a/b", "X-Client": "2"},
                                                         b'{"userName": "ada"}')] * 2:
        ours = request_to(client, memo, "POST", url, headers, content)
        theirs = client.build_request("POST", url, headers=headers, content=content)
        assert (ours.method, ours.url, ours.headers.raw, ours.content, ours.extensions) == (
            theirs.method, theirs.url, theirs.headers.raw, theirs.content, theirs.extensions)
    assert len(memo["headers"]) == 2, "merged once per set of headers"
    client.cookies.set("session", "s1", domain="t.example")
    with_cookie = request_to(client, memo, "GET", url, {"Accept": "a/b"})
    assert with_cookie.headers["Cookie"] == "session=s1"
