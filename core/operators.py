"""The console's operators: who may open the console over SSH, with which keys.

They live in ``operators.yaml`` in the home (0600), under an ``operators:`` section::

    operators:
      - name: alice
        keys: ["ssh-ed25519 AAAA... alice@laptop"]
        read_only: false

The file is read with the configuration loader (``core.configfile.loader``), so a
malformed key or a misspelt field is reported at its line and column. Keys are OpenSSH
public keys, checked with ``cryptography``; ``mware-iam ssh-serve`` lets in only these.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from core.configfile.errors import Reporter
from core.configfile.loader import MAX_BYTES, load_text
from core.errors import AlreadyExists, InvalidInput, NotFound
from core.home import Home

FILE_NAME = "operators.yaml"
#: The SSH sessions open now, written by ``mware-iam ssh-serve`` (``core.sshserve``).
SESSIONS_FILE = "ssh-sessions.json"
_FIELDS = {"name", "keys", "read_only"}
#: A name as the audit log shows it: a letter, then letters, digits, ``.``, ``_``, ``-``.
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Operator:
    name: str
    #: OpenSSH public keys, one line each (``ssh-ed25519 AAAA... comment``).
    keys: tuple[str, ...]
    read_only: bool = False


def key_problem(key: str) -> str | None:
    """Why ``key`` is not an OpenSSH public key, or None when it is one."""
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


def load(path: Path) -> list[Operator]:
    """The operators in ``path`` (none when it does not exist); every problem found is
    raised at once as ``ConfigInvalid``, each at its line."""
    if not path.exists():
        return []
    if path.stat().st_size > MAX_BYTES:
        raise InvalidInput(f"{path}: larger than {MAX_BYTES:,} bytes")
    report = Reporter(str(path))
    doc = load_text(path.read_text(encoding="utf-8", errors="replace"), report)
    report.raise_if_any()
    data = doc.data if doc is not None else None
    if data is None:
        return []
    if not isinstance(data, dict) or set(data) - {"operators"}:
        report.add((), "expected a mapping with one section, operators:")
        report.raise_if_any()
    entries = data.get("operators") or []
    if not isinstance(entries, list):
        report.add(("operators",), "operators: must be a list")
        report.raise_if_any()
    found: list[Operator] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        op = _operator(entry, ("operators", i), report, seen)
        if op is not None:
            found.append(op)
    report.raise_if_any()
    return found


def _operator(entry: Any, at: tuple[Any, ...], report: Reporter, seen: set[str]
              ) -> Operator | None:
    if not isinstance(entry, dict):
        report.add(at, "an operator is a mapping with name, keys and read_only")
        return None
    for unknown in sorted(set(entry) - _FIELDS, key=str):
        report.add((*at, unknown), f"unknown field {unknown!r} (known: keys, name, "
                                   "read_only)", at_key=True)
    name, keys, read_only = entry.get("name"), entry.get("keys"), entry.get("read_only", False)
    ok = True
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        report.add((*at, "name"), f"name: {name!r} is not a valid name")
        ok = False
    elif name in seen:
        report.add((*at, "name"), f"operator {name!r} is listed twice")
        ok = False
    else:
        seen.add(name)
    if not isinstance(read_only, bool):
        report.add((*at, "read_only"), "read_only: must be true or false")
        ok = False
    if not isinstance(keys, list) or not keys:
        report.add((*at, "keys"), "keys: a list of one or more OpenSSH public keys")
        return None
    for j, key in enumerate(keys):
        problem = key_problem(key) if isinstance(key, str) else "not a string"
        if problem:
            report.add((*at, "keys", j), f"keys[{j}]: {problem}")
            ok = False
    return Operator(str(name), tuple(k.strip() for k in keys), read_only) if ok else None


def save(path: Path, operators: Sequence[Operator]) -> None:
    """Write the file whole (a temporary file renamed over it), mode 0600."""
    data = {"operators": [{"name": o.name, "keys": list(o.keys), "read_only": o.read_only}
                          for o in operators]}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".operators-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yaml.safe_dump(data, out, sort_keys=False, width=1000)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add(path: Path, operator: Operator) -> None:
    for key in operator.keys:
        if problem := key_problem(key):
            raise InvalidInput(f"key of {operator.name!r}: {problem}")
    if not NAME_RE.fullmatch(operator.name):
        raise InvalidInput(f"operator name {operator.name!r} is not a valid name")
    current = load(path)
    if any(o.name == operator.name for o in current):
        raise AlreadyExists(f"operator {operator.name!r} already exists")
    save(path, [*current, operator])


def remove(path: Path, name: str) -> None:
    current = load(path)
    if not any(o.name == name for o in current):
        raise NotFound(f"no operator {name!r}")
    save(path, [o for o in current if o.name != name])


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
