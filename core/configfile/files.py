"""A configuration file against a deployment: validate it, apply it, seed a new deployment
with the sample."""

from __future__ import annotations

from pathlib import Path

import core
from core.configfile.apply import apply_plan
from core.configfile.deployment import Deployment
from core.configfile.errors import ConfigError, Reporter
from core.configfile.loader import MAX_BYTES, load_text
from core.configfile.model import parse
from core.configfile.plan import ConfigPlanner, Plan
from core.errors import InvalidInput
from core.iam import Iam
from core.identity.events import Initiator

#: The commented demo deployment that a fresh deployment is seeded from: package data, so
#: an installed package has it (the repository's ``sample_config/`` links to it).
SAMPLE_CONFIG = Path(core.__file__).parent / "sample" / "mware-iam.yaml"


def _check(path: Path, iam: Iam | None) -> tuple[Plan, Reporter]:
    report = Reporter(str(path))
    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be read: {exc.strerror}") from exc
    if len(raw) > MAX_BYTES:
        report.add_at(1, 1, f"refused: the file is larger than {MAX_BYTES // 2**20} MiB")
        return Plan(), report
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InvalidInput(f"{path}:{line}: is not UTF-8 text (byte {exc.start})") from exc
    document = load_text(text, report)
    if document is None:
        return Plan(), report
    config = parse(document.data, report)
    return ConfigPlanner(config, Deployment(iam), report).plan(), report


def validate_file(path: Path, iam: Iam | None = None) -> list[ConfigError]:
    """Every problem of the file, in file order (empty: valid).

    Without ``iam`` no database is needed: the file is checked on its own, and names it
    takes from outside (a role of the deployment, say) are assumed to exist. With ``iam``
    those are checked against that deployment too.
    """
    return _check(path, iam)[1].errors


def check_file(path: Path, iam: Iam | None = None) -> Reporter:
    """As :func:`validate_file`, with the warnings too (``.errors``, ``.warnings``)."""
    return _check(path, iam)[1]


def apply_file(iam: Iam, path: Path, initiator: Initiator, dry_run: bool = False
               ) -> list[str]:
    """Make ``iam`` match the file, all or nothing; one line per change (empty: none).

    Raises :class:`ConfigInvalid` (every error, with positions) before writing anything
    when the file is invalid for this deployment, and also when the engine refuses a write
    (a password policy, say): then the whole apply is rolled back. ``dry_run`` computes the
    lines and writes nothing.
    """
    plan, report = _check(path, iam)
    report.raise_if_any()
    return apply_plan(iam, plan, initiator, report, dry_run)


def seed_sample(iam: Iam, initiator: Initiator) -> list[str]:
    """Apply the sample deployment to a deployment this start created; else do nothing."""
    if not iam.fresh:
        return []
    return apply_file(iam, SAMPLE_CONFIG, initiator)
