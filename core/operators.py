"""The console's operators: who may open the console over SSH, with which keys.

An operator is a name, one or more OpenSSH public keys and ``read_only``. They are kept in
``operators.yaml`` in the home (0600), the one source of truth that ``mware-iam
ssh-serve`` reads at every login; ``core.configfile.operators`` reads and writes that
file, for ``mware-iam operator add|list|remove`` and for a configuration file's
``operators:`` section (``config validate|apply|export``). This module holds what needs
no file: the operator, the checks of a name and a key, and who is connected now.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.home import Home

FILE_NAME = "operators.yaml"
#: The SSH sessions open now, written by ``mware-iam ssh-serve`` (``core.sshserve``).
SESSIONS_FILE = "ssh-sessions.json"
#: A name as the audit log shows it: a letter, then letters, digits, ``.``, ``_``, ``-``.
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Operator:
    name: str
    #: OpenSSH public keys, one line each (``ssh-ed25519 AAAA... comment``).
    keys: tuple[str, ...]
    read_only: bool = False


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an operator, or None when it can."""
    if NAME_RE.fullmatch(name):
        return None
    return (
        f"{name!r} is not a valid operator name (a letter, then up to 63 letters, "
        "digits, '.', '_' or '-')"
    )


def key_problem(key: str) -> str | None:
    """Why ``key`` is not an OpenSSH public key, or None when it is one."""
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    try:
        load_ssh_public_key(key.strip().encode())
    except (ValueError, TypeError) as exc:
        return f"not an OpenSSH public key ({exc})"
    except Exception as exc:  # an algorithm cryptography does not support
        return f"not an OpenSSH public key ({type(exc).__name__})"
    return None


def key_blob(key: str) -> str:
    """The key's type and base64 body, without its comment: what identifies it."""
    return " ".join(key.split()[:2])


def path_in(home: Home) -> Path:
    return home.path / FILE_NAME


def by_key(operators: Sequence[Operator], key: str) -> Operator | None:
    """The operator who holds ``key`` (compared without comments), if any."""
    wanted = key_blob(key)
    for op in operators:
        if any(key_blob(k) == wanted for k in op.keys):
            return op
    return None


def connected(home: Home) -> list[str]:
    """The operators with an SSH console session open now, as ``ssh-serve`` last wrote
    them (none when no server runs)."""
    try:
        data = json.loads((home.path / SESSIONS_FILE).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(data, list):
        return []
    return [str(s["operator"]) for s in data if isinstance(s, dict) and "operator" in s]
