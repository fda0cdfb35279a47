"""Typed errors of the engine. Every face turns these into one readable message.

The message of an ``IamError`` is written for the administrator: it says what was wrong
and where, and never carries a secret or a stack trace.
"""

from __future__ import annotations


class IamError(Exception):
    """Base of every error the engine reports to a face."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(IamError):
    """The caller gave a value that cannot be accepted (bad name, bad claim, bad option)."""

    exit_code = 2


class PolicyViolation(InvalidInput):
    """A userstore policy (username, password or group-name pattern) refused a value."""


class TooManyMatches(InvalidInput):
    """A query matches more entries than the store will process (e.g. sort in memory)."""


class NotFound(IamError):
    """The named user, role, store, application or identity provider does not exist."""

    exit_code = 3


class AlreadyExists(IamError):
    """An object with that name already exists."""

    exit_code = 4


class ReadOnlyStore(IamError):
    """The userstore does not accept writes of that kind."""

    exit_code = 5


class StoreUnavailable(IamError):
    """A userstore or the system database cannot be reached or is locked."""

    exit_code = 6


class OperationRefused(IamError):
    """A subscriber of the identity events refused the write (a pre-event veto)."""

    exit_code = 7
