"""Token ids (OIDC ``jti`` or ``nonce``, SAML assertion ID) seen before, until they expire.

The cache lives in this process: a second ``serve`` process keeps its own. It is bounded:
past ``MAX_ENTRIES`` live entries a new token is refused rather than letting a flood of
tokens grow it without end.
"""

from __future__ import annotations

import threading
import time

from core.jit.errors import LoginRefused

MAX_ENTRIES = 100_000


class ReplayCache:
    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def check_and_remember(self, issuer: str, token_id: str, expires_at: float) -> None:
        """Refuse ``token_id`` of ``issuer`` if seen and not yet expired; else remember it
        until ``expires_at`` (a Unix time)."""
        now = time.time()
        key = (issuer, token_id)
        with self._lock:
            if self._seen.get(key, 0) > now:
                raise LoginRefused(401, "the token was already used (replay refused)")
            if len(self._seen) >= MAX_ENTRIES:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
                if len(self._seen) >= MAX_ENTRIES:
                    raise LoginRefused(401, "too many logins in flight: try again shortly")
            self._seen[key] = expires_at
