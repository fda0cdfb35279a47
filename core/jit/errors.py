"""A refused JIT login: the HTTP status it answers and what was wrong (never a key)."""

from __future__ import annotations

from core.errors import IamError


class LoginRefused(IamError):
    """The login was refused before anything was written.

    ``status``: 401 (the token or the application's credentials did not check out), 403
    (JIT is off, or the identity provider asks for a prompt we cannot show), 404 (no such
    identity provider), 400 (the request is not a login), 502 (a blocking JIT target
    failed; the local write was rolled back).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def bad_token(message: str) -> LoginRefused:
    return LoginRefused(401, message)
