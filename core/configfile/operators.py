"""The operators' store (``operators.yaml`` in the home) and a configuration file's
``operators:`` section: one schema (``model.OperatorEntry``) and one set of checks.

One source of truth: ``operators.yaml`` (0600) is what ``mware-iam ssh-serve`` reads at
every login. ``mware-iam operator add|remove`` edit it; ``config apply`` applies a file's
``operators:`` section into it (``core.configfile.apply``): the operators the file names
are made to match it (their keys exactly as listed, ``read_only`` when given), the others
are left alone, as with every other section; ``config export`` writes it back out. A
problem is reported at its line, in either file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from core.configfile.errors import Reporter, YamlPath
from core.configfile.loader import MAX_BYTES, load_text
from core.configfile.model import Located, OperatorEntry, parse
from core.errors import AlreadyExists, InvalidInput, NotFound
from core.operators import Operator, by_key, key_blob, key_problem, name_problem


@dataclass(frozen=True)
class OperatorPlan:
    """An operator as a file gives it; ``read_only`` None: as stored (a new one: false)."""

    path: YamlPath
    name: str
    keys: tuple[str, ...]
    read_only: bool | None

    def operator(self, stored: Operator | None) -> Operator:
        read_only = (
            self.read_only if self.read_only is not None else bool(stored and stored.read_only)
        )
        return Operator(self.name, self.keys, read_only)


def plan_operators(
    entries: Sequence[Located[OperatorEntry]], report: Reporter, stored: Sequence[Operator]
) -> list[OperatorPlan]:
    """The entries (each valid on its own: ``model.OperatorEntry``) that agree with each
    other and the store; each problem goes to ``report`` at its path: a name given twice,
    a key that is another operator's (in the file, or in ``stored`` and not named by the
    file): a key logs in one person."""
    named = {e.entry.name for e in entries}
    holder = {key_blob(k): o.name for o in stored if o.name not in named for k in o.keys}
    seen: set[str] = set()
    out: list[OperatorPlan] = []
    for e in entries:
        name, ok = e.entry.name, e.entry.name not in seen
        if not ok:
            report.add((*e.path, "name"), f"operator {name!r} is listed twice")
        seen.add(name)
        for i, key in enumerate(e.entry.keys):
            if (other := holder.setdefault(key_blob(key), name)) != name:
                report.add(
                    (*e.path, "keys", i),
                    f"this key is operator {other!r}'s already; a key logs in one operator",
                )
                ok = False
        if ok:
            keys = tuple(dict.fromkeys(k.strip() for k in e.entry.keys))
            out.append(OperatorPlan(e.path, name, keys, e.entry.read_only))
    return out


# ---------------------------------------------------------------------- the store
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
    plans = plan_operators(parse(data, report).operators, report, ())
    report.raise_if_any()
    return [p.operator(None) for p in plans]


def save(path: Path, operators: Sequence[Operator]) -> None:
    """Write the file whole (a temporary file renamed over it), mode 0600."""
    data = {
        "operators": [
            {"name": o.name, "keys": list(o.keys), "read_only": o.read_only} for o in operators
        ]
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".operators-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yaml.safe_dump(data, out, sort_keys=False, width=1000)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add(path: Path, operator: Operator) -> None:
    if problem := name_problem(operator.name):
        raise InvalidInput(f"operator name: {problem}")
    for key in operator.keys:
        if problem := key_problem(key):
            raise InvalidInput(f"key of {operator.name!r}: {problem}")
    current = load(path)
    if any(o.name == operator.name for o in current):
        raise AlreadyExists(f"operator {operator.name!r} already exists")
    for key in operator.keys:
        if (holder := by_key(current, key)) is not None:
            raise AlreadyExists(
                f"key {key_blob(key)[:40]}... is operator {holder.name!r}'s "
                "already; a key logs in one operator"
            )
    save(path, [*current, operator])


def remove(path: Path, name: str) -> None:
    current = load(path)
    if not any(o.name == name for o in current):
        raise NotFound(f"no operator {name!r}")
    save(path, [o for o in current if o.name != name])
