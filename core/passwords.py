"""Password hashing with argon2id; parameters configurable, values never logged."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from core.errors import InvalidInput

ARGON2_ENV = "MWARE_IAM_ARGON2"


@dataclass(frozen=True)
class Argon2Params:
    time_cost: int = 3
    memory_cost: int = 65536  # KiB
    parallelism: int = 4

    @classmethod
    def from_env(cls) -> Argon2Params:
        """Parameters from ``$MWARE_IAM_ARGON2``, e.g. ``time_cost=4,memory_cost=131072``."""
        text = os.environ.get(ARGON2_ENV, "").strip()
        if not text:
            return cls()
        names = {f.name for f in fields(cls)}
        values: dict[str, int] = {}
        for item in text.split(","):
            key, _, raw = item.partition("=")
            key = key.strip()
            if key not in names or not raw.strip().isdigit() or int(raw) < 1:
                raise InvalidInput(
                    f"${ARGON2_ENV}: {item.strip()!r} is not valid; expected NAME=POSITIVE "
                    f"INTEGER with NAME one of {', '.join(sorted(names))}")
            values[key] = int(raw)
        return cls(**values)


class PasswordHashing:
    def __init__(self, params: Argon2Params | None = None) -> None:
        p = params or Argon2Params.from_env()
        self._hasher = PasswordHasher(
            time_cost=p.time_cost, memory_cost=p.memory_cost, parallelism=p.parallelism,
            type=Type.ID,
        )

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        if not password_hash:
            return False
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
