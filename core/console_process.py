"""A console started as a child process: each ``ssh-serve`` session, each ``web`` tab.

The system database's URL may hold a password, so it never goes on the child's command
line (``/proc/PID/cmdline``, hence ``ps``, is readable by every local user): it travels in
``$MWARE_IAM_DB`` in the child's environment, which only its own user (and root) can read.
The home's path is no secret and stays an argument.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.home import DB_ENV

#: The CLI's entry point, run by the interpreter of this process (the same venv).
_ENTRY = "from core.cli.main import main; main()"


def console_argv(home: Path | str | None, args: Sequence[str]) -> list[str]:
    """``mware-iam [--home HOME] ARGS...`` as this interpreter runs it, without the URL."""
    return [sys.executable, "-c", _ENTRY, *(["--home", str(home)] if home else []), *args]


def console_env(db_url: str | None, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with the database URL in ``$MWARE_IAM_DB`` (and without one when the home's
    default database is meant: an inherited ``$MWARE_IAM_DB`` would override it)."""
    env = {k: v for k, v in base.items() if k != DB_ENV}
    if db_url:
        env[DB_ENV] = db_url
    return env
