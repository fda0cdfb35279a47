"""Secrets at rest: Fernet (AES-128-CBC + HMAC) with a key kept outside the database.

The key comes from ``$MWARE_IAM_SECRET_KEY`` or from ``secret.key`` in the home, created
with mode 0600 on first use. A value is only ever decrypted to hand it to a connector;
everywhere it is shown it is :func:`mask`-ed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from core.errors import InvalidInput
from core.files import write_private

KEY_ENV = "MWARE_IAM_SECRET_KEY"
MASK = "********"
_REF_RE = re.compile(r"^\$\{(env|file):([^}:]+)(?::-([^}]*))?\}$")


@dataclass(frozen=True)
class SecretValue:
    """A secret in memory (a connector's or a userstore's password, say): its repr never
    shows the value."""

    value: str = field(repr=False)
    #: The reference it was read from (``${env:NAME}``), kept so export can write it back.
    ref: str | None = None


class SecretBox:
    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"the secret key is not a valid Fernet key (from ${KEY_ENV} or secret.key)"
            ) from exc

    @classmethod
    def for_home(cls, key_file: Path) -> SecretBox:
        if env := os.environ.get(KEY_ENV):
            return cls(env.encode())
        if key_file.exists():
            return cls(key_file.read_bytes().strip())
        key = Fernet.generate_key()
        key_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_private(key_file, key, replace=False)
        except FileExistsError:  # another process made it meanwhile: use theirs
            return cls(key_file.read_bytes().strip())
        return cls(key)

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise InvalidInput(
                "a stored secret cannot be decrypted: the secret key changed since it was saved"
            ) from exc


def mask(value: str | None) -> str:
    return MASK if value else ""


def is_reference(text: str) -> bool:
    return bool(_REF_RE.match(text))


def resolve_reference(text: str) -> str | None:
    """The value behind ``${env:NAME}``, ``${env:NAME:-default}`` or ``${file:PATH}``.

    Returns None when the environment variable is unset and has no default.
    """
    m = _REF_RE.match(text)
    if not m:
        raise InvalidInput(f"{text!r} is not a secret reference (use ${{env:NAME}})")
    kind, name, default = m.groups()
    if kind == "env":
        return os.environ.get(name, default)
    path = Path(name).expanduser()
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise InvalidInput(f"secret file {name!r} cannot be read: {exc.strerror}") from exc
