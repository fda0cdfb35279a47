"""How the CLI talks back: aligned tables, key/value records, JSON, and the error boundary.

stdout carries the result (a table, a record, JSON, a token); stderr carries everything a
script should not parse (hints, warnings, progress, errors). Styling is only ever added
through ``click.style`` and written with ``click.echo``, which drops it when the stream is
not a terminal; ``NO_COLOR`` turns it off everywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import click

from core.errors import IamError

DEBUG_ENV = "MWARE_IAM_DEBUG"
#: Exit codes the CLI adds to those of ``core.errors`` (sysexits' EX_SOFTWARE, and SIGINT).
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

Value = str | int | bool | datetime | None
Record = Sequence[tuple[str, Value | list[str] | Mapping[str, Value]]]


def _color() -> bool | None:
    return False if os.environ.get("NO_COLOR") else None


def echo(text: str = "", err: bool = False) -> None:
    click.echo(text, err=err, color=_color())


def note(text: str) -> None:
    """A line for the human at the terminal, never part of the result (stderr)."""
    echo(text, err=True)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC to the second; naive datetimes are taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds")


def text(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return iso(value) or ""
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Value]], empty: str) -> None:
    """Plain aligned columns with a header line; ``empty`` goes to stderr when no rows."""
    cells = [[text(v) for v in row] for row in rows]
    if not cells:
        note(empty)
        return
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    echo(click.style(line([h.upper() for h in headers]), bold=True))
    for row in cells:
        echo(line(row))


def record(fields: Record) -> None:
    """``key  value`` lines; a list value is one indented line per item, a mapping is an
    indented aligned block (an empty one prints ``(none)``)."""
    width = max((len(k) for k, _ in fields), default=0)
    for key, value in fields:
        if isinstance(value, Mapping):
            echo(click.style(key, bold=True))
            inner = max((len(k) for k in value), default=0)
            for k, v in value.items():
                echo(f"  {k.ljust(inner)}  {text(v)}".rstrip())
            if not value:
                echo("  (none)")
        elif isinstance(value, list):
            echo(click.style(key, bold=True))
            for item in value:
                echo(f"  {item}")
            if not value:
                echo("  (none)")
        else:
            echo(f"{click.style(key.ljust(width), bold=True)}  {text(value)}".rstrip())


def _json_default(value: object) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def emit_json(data: object) -> None:
    """The machine-readable result: keys in the order the command built them."""
    click.echo(json.dumps(data, indent=2, default=_json_default, ensure_ascii=False))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@contextlib.contextmanager
def error_boundary() -> Iterator[None]:
    """Turn every failure into one line on stderr and an exit code; never a traceback.

    ``IamError`` -> ``error: <message>`` with its ``exit_code``; click's usage errors and a
    closed stdout (``| head``) are left to click (exit 2, resp. a quiet 1); Ctrl-C -> 130;
    anything else is a bug: one line and exit 70, with the traceback only when
    ``MWARE_IAM_DEBUG=1``.
    """
    try:
        yield
    except IamError as exc:
        note(f"error: {exc}")
        raise click.exceptions.Exit(exc.exit_code) from None
    except (click.ClickException, click.exceptions.Exit, BrokenPipeError):
        raise  # usage errors are click's to print; a closed pipe (| head) is click's too
    except (KeyboardInterrupt, click.Abort):
        note("interrupted; nothing more was done")
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        note(f"internal error: {type(exc).__name__}: {_first_line(exc)}")
        note(f"hint: run again with {DEBUG_ENV}=1 to see the traceback")
        raise click.exceptions.Exit(EXIT_INTERNAL) from None
