"""Bulk import of users from CSV: every good row is imported, bad rows reported by line.

The header names the columns: ``username`` (required), ``password`` (optional; empty means
no password), ``roles`` (optional; role names separated by ``;``), and any local claim by
URI or short name (``emailaddress``, ``givenname``...). An empty cell sets nothing.

One line is one row: every line after the header ends imported, skipped (the user exists
already) or refused with its line number, and blank lines are ignored. Each line is decoded
on its own, so a byte that is not UTF-8 refuses its line only; and a quoted value cannot
span lines, so a quote left open refuses its line instead of swallowing the ones after it.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from core.errors import IamError, InvalidInput
from core.iam import Iam
from core.identity.events import Initiator
from core.identity.service import IMPORT_BATCH_SIZE, ImportReport, ImportRow

RESERVED_COLUMNS = ("username", "password", "roles")


class _LineRefused(Exception):
    """The current line cannot be read; the reader carries on with the next one."""


class _Lines:
    """The file's lines for ``csv.reader``, one line per row.

    The reader asks for another line only when a quoted value is still open at the end of
    one: that line is then refused (``_LineRefused`` leaves the reader, which starts its
    next row afresh) and the line after it is not consumed.
    """

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.line = 0
        self._in_row = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._in_row:
            self._in_row = False
            raise _LineRefused("a quoted value is not closed on its line")
        raw = next(self._fh)
        self.line += 1
        if self.line == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        self._in_row = True
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._in_row = False
            raise _LineRefused(f"byte {exc.start + 1} of the line is not UTF-8 "
                               f"({raw[exc.start:exc.start + 1]!r})") from None

    def row_done(self) -> None:
        self._in_row = False


def _next_row(reader: Iterator[list[str]], lines: _Lines) -> list[str] | str:
    """The next row's cells, or why its line is refused; StopIteration at the end."""
    try:
        return next(reader)
    except (_LineRefused, csv.Error) as exc:
        return str(exc)
    finally:
        lines.row_done()


def read_rows(path: Path, iam: Iam, report: ImportReport) -> Iterator[ImportRow]:
    """Rows of the file; rows that cannot even be read go straight into ``report``."""
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be read: {exc.strerror}") from exc
    with fh:
        lines = _Lines(fh)
        reader = csv.reader(lines)
        try:
            first = _next_row(reader, lines)
        except StopIteration:
            raise InvalidInput(f"{path}: the file is empty (expected a header row)") from None
        if isinstance(first, str):
            raise InvalidInput(f"{path}: line 1: {first}")
        header = [h.strip() for h in first]
        if "username" not in header:
            raise InvalidInput(f"{path}: line 1: the header has no 'username' column "
                               f"(got: {', '.join(header)})")
        dupes = {h for h in header if header.count(h) > 1}
        if dupes:
            raise InvalidInput(f"{path}: line 1: column(s) named twice: {', '.join(dupes)}")
        claim_columns: list[tuple[int, str]] = []  # (cell index, claim URI)
        for i, name in enumerate(header):
            if name not in RESERVED_COLUMNS:
                try:
                    claim_columns.append((i, iam.claims.resolve(name)))
                except IamError as exc:
                    raise InvalidInput(f"{path}: line 1: column {name!r}: {exc}") from None
        at = {name: header.index(name) for name in RESERVED_COLUMNS if name in header}
        username, password, roles = at["username"], at.get("password"), at.get("roles")
        while True:
            try:
                cells = _next_row(reader, lines)
            except StopIteration:
                return
            line = lines.line
            if isinstance(cells, str):
                report.errors.append((line, f"unreadable row: {cells}"))
                continue
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                report.errors.append(
                    (line, f"has {len(cells)} cells, the header has {len(header)}"))
                continue
            yield ImportRow(
                line=line,
                username=cells[username].strip(),
                password=(cells[password] or None) if password is not None else None,
                claims={uri: cells[i] for i, uri in claim_columns if cells[i] != ""},
                roles=[r.strip() for r in cells[roles].split(";") if r.strip()]
                if roles is not None else [],
            )


def import_csv(
    iam: Iam, path: Path, initiator: Initiator, domain: str | None = None,
    progress: Callable[[int], None] | None = None, batch_size: int = IMPORT_BATCH_SIZE,
) -> ImportReport:
    """Import a CSV file of users; the report lists bad rows by line, in file order."""
    report = ImportReport()
    result = iam.identity.import_users(
        initiator, read_rows(path, iam, report), domain=domain, batch_size=batch_size,
        progress=progress)
    report.imported = result.imported
    report.skipped = result.skipped
    report.errors = sorted(report.errors + result.errors)
    return report
