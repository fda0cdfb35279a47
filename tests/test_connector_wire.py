"""The answer and exchange-log helpers every HTTP connector shares (``connectors/wire.py``)."""

from __future__ import annotations

import httpx

from connectors.wire import MASK, SHOWN_TEXT, decoded_body, redact, text_of


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
