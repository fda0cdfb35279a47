"""Paging cursors of listings that span several userstores (users, role members)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

from core.errors import InvalidInput


def span_cursor(domain: str, inner: str | None) -> str:
    """The cursor of a listing over every store: where it stopped, and that store's cursor."""
    data = json.dumps({"d": domain, "c": inner}, separators=(",", ":"))
    return base64.urlsafe_b64encode(data.encode()).decode()


def span_decode(cursor: str) -> tuple[str, object]:
    """The (domain, inner cursor or user id) a ``_span_cursor`` holds."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        domain, inner = data["d"], data["c"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput("the paging cursor is not valid (start the listing again)") from exc
    if not isinstance(domain, str):
        raise InvalidInput("the paging cursor is not valid (start the listing again)")
    return domain, inner


def span_position(cursor: str, domains: Sequence[str]) -> tuple[str, str | None]:
    domain, inner = span_decode(cursor)
    if domain not in domains:
        raise InvalidInput(f"the paging cursor continues in userstore {domain}, which is no "
                           "longer listed; start the listing again")
    return domain, inner if isinstance(inner, str) else None


def member_position(cursor: str) -> tuple[str, str]:
    """The last (domain, user id) a page of an internal role's members ended on."""
    domain, user_id = span_decode(cursor)
    if not isinstance(user_id, str):
        raise InvalidInput("the paging cursor belongs to another listing")
    return domain, user_id
