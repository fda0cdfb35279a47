"""A few seconds' memory of the bearer tokens that authenticated.

Checking a token reads the system database (the token, then its application) in its own
transaction: on SQLite a third of a simple request's time. A client sends many requests
with one token, so the outcome is kept for ``ttl`` seconds. The price: revoking a token,
or changing its application's inbound domain or proxy mode, takes effect for the SCIM
server within ``ttl`` seconds instead of at once. Only successes are kept (an unknown token
is checked every time), under the token's SHA-256 digest rather than the token itself.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")

#: How long an authentication is trusted without asking the database again.
TOKEN_CACHE_SECONDS = 5.0


class TokenCache(Generic[V]):
    def __init__(self, ttl: float = TOKEN_CACHE_SECONDS, size: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._entries: dict[bytes, tuple[float, V]] = {}  # digest -> (expires, value)
        self._lock = threading.Lock()

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, token: str) -> V | None:
        """What ``token`` authenticated as less than ``ttl`` seconds ago, else None."""
        key = self._key(token)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._entries[key]
                return None
            return entry[1]

    def put(self, token: str, value: V) -> None:
        if self.ttl <= 0:
            return
        key, now = self._key(token), self._clock()
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
                while len(self._entries) >= self.size:  # still full: drop the oldest
                    del self._entries[next(iter(self._entries))]
            self._entries[key] = (now + self.ttl, value)
