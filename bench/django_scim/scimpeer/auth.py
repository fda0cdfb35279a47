"""The peer's bearer-token check: every request's token is hashed and compared with the
one configured (``SCIMPEER_TOKEN_SHA256``), as ``mware-iam serve`` checks an application
token on every request (its check of a token seen in the last 5 s is a hash and a
dictionary look-up, no database). A request without the token gets an anonymous user, and
django-scim2's own check (``SCIMAuthCheckMiddleware``) answers it 401."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse


class TokenClient:
    """The one client the token stands for: authenticated, no user row behind it."""

    is_authenticated = True
    is_anonymous = False


CLIENT = TokenClient()


class BearerTokenMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.digest = bytes.fromhex(os.environ["SCIMPEER_TOKEN_SHA256"])

    def __call__(self, request: HttpRequest) -> HttpResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        known = scheme.lower() == "bearer" and hmac.compare_digest(
            hashlib.sha256(token.encode()).digest(), self.digest)
        request.user = CLIENT if known else AnonymousUser()  # type: ignore[assignment]
        return self.get_response(request)
