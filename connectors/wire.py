"""What every HTTP connector does with answers and with what it records: the decoded body,
the Retry-After delay and secrets masked in the exchange log.

One place, so that a secret key masked for one connector is masked for all, and an answer
is shortened the same way in every job's attempt log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

#: What a secret value is replaced by in exchanges and error messages.
MASK = "********"
#: Characters of a non-JSON answer kept (whitespace collapsed) in exchanges and errors.
SHOWN_TEXT = 300
#: Keys whose values are secrets wherever they appear in a body (case-insensitive):
#: passwords, OAuth client secrets, assertions and tokens.
SECRET_KEYS = frozenset(
    {"password", "client_secret", "assertion", "access_token", "id_token", "refresh_token"}
)


def shortened(text: str) -> str:
    """``text`` with whitespace collapsed, at most :data:`SHOWN_TEXT` characters."""
    return " ".join(text.split())[:SHOWN_TEXT]


def decoded_body(response: httpx.Response) -> Any:
    """The answer's body: JSON when it is JSON, else its text :func:`shortened`; None when
    empty."""
    return decoded_json(response)[0]


def decoded_json(response: httpx.Response) -> tuple[Any, str | None]:
    """:func:`decoded_body`, and the JSON text it was decoded from when the answer is
    JSON in UTF-8 (None otherwise): what :func:`shown` takes."""
    content = response.content
    if not content:
        return None, None
    try:
        answer = response.json()
    except ValueError:
        return shortened(response.text), None
    if json.detect_encoding(content) != "utf-8":  # UTF-16 or -32, or a byte order mark
        return answer, None
    try:
        return answer, content.decode("utf-8")
    except UnicodeDecodeError:  # lone surrogates, which json.loads lets pass
        return answer, None


def text_of(response: httpx.Response) -> str:
    """``response.text``, without its reading of the Content-Type through
    ``email.message`` (a third of an SPML exchange's decoding) when the type names UTF-8
    or no charset: then the text is the UTF-8 decoded body, as httpx decodes it."""
    charset = response.headers.get("content-type", "").lower().partition("charset=")[2]
    if charset.split(";", 1)[0].strip().strip("\"'") in ("", "utf-8", "utf8"):
        return response.content.decode("utf-8", "replace")
    return response.text


def parsed_url(memo: dict[str, Any], url: str) -> httpx.URL:
    """``url`` parsed once for every connector sharing a target's ``memo`` (httpx parses
    a string URL on every request, a few percent of a request's work)."""
    known: dict[str, httpx.URL] = memo.setdefault("urls", {})
    parsed = known.get(url)
    if parsed is None:
        parsed = known[url] = httpx.URL(url)
    return parsed


def request_to(client: httpx.AsyncClient, memo: dict[str, Any], method: str, url: httpx.URL,
               headers: Mapping[str, str], content: bytes | None = None) -> httpx.Request:
    """``client.build_request(method, url, headers=headers, content=content)`` for an
    absolute, parsed ``url``, cheaper: the client's own headers merged with ``headers``
    are kept in ``memo`` (per client and headers; a connector sends a few sets), where
    ``build_request`` merged them again for every request (a third of its work). A client
    that holds cookies, whose header is made per request, goes through ``build_request``.
    The client's headers are taken as they are at the first merge (nothing changes them).
    """
    if client.cookies:
        return client.build_request(method, url, headers=headers, content=content)
    known: dict[tuple[Any, ...], httpx.Headers] = memo.setdefault("headers", {})
    key = (client, *headers.items())
    merged = known.get(key)
    if merged is None:
        merged = known[key] = httpx.Headers(client.headers)
        merged.update(headers)
    return httpx.Request(method, url, headers=merged, content=content,
                         extensions={"timeout": client.timeout.as_dict()})


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP-date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def holds_secret(text: str) -> bool:
    """Whether :func:`redact` may mask something in the value of the JSON ``text``: the
    text names a secret key (in any case: also a PATCH path ending in ``password``) or
    holds an escape (``\\u``) that could spell one. False is certain: nothing to mask."""
    low = text.lower()
    return "\\u" in low or any(key in low for key in SECRET_KEYS)


def shown(value: Any, text: str | None) -> tuple[Any, str | None]:
    """``redact(value)`` of a body, and its JSON text, given ``text``: the JSON the body
    was decoded from or encoded to, if known. When that text holds no secret
    (:func:`holds_secret`: the common case), the body and its text as they are, without
    a walk or a copy; otherwise the redacted copy and None (it is encoded when recorded).
    """
    if text is not None and not holds_secret(text):
        return value, text
    return redact(value), None


def redact(value: Any) -> Any:
    """A copy of a request or answer body with every secret masked: values of
    :data:`SECRET_KEYS` at any depth, and the value of a SCIM PATCH operation whose
    ``path`` is a password."""
    if isinstance(value, Mapping):
        path = value.get("path")
        if (
            isinstance(path, str)
            and path.rsplit(":", 1)[-1].lower() == "password"
            and "value" in value
        ):
            value = {**value, "value": MASK}
        return {
            k: MASK if str(k).lower() in SECRET_KEYS and v is not None else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
