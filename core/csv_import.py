"""Bulk import of users from CSV: every good row is imported, bad rows reported by line.

The header names the columns: ``username`` (required), ``password`` (optional; empty means
no password), ``roles`` (optional; role names separated by ``;``), and any local claim by
URI or short name (``emailaddress``, ``givenname``...). An empty cell sets nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path

from core.errors import IamError, InvalidInput
from core.iam import Iam
from core.identity.events import Initiator
from core.identity.service import IMPORT_BATCH_SIZE, ImportReport, ImportRow

RESERVED_COLUMNS = ("username", "password", "roles")


def read_rows(path: Path, iam: Iam, report: ImportReport) -> Iterator[ImportRow]:
    """Rows of the file; rows that cannot even be read go straight into ``report``."""
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be read: {exc.strerror}") from exc
    with fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise InvalidInput(f"{path}: the file is empty (expected a header row)") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{path}: line 1: {exc}") from exc
        if "username" not in header:
            raise InvalidInput(f"{path}: line 1: the header has no 'username' column "
                               f"(got: {', '.join(header)})")
        dupes = {h for h in header if header.count(h) > 1}
        if dupes:
            raise InvalidInput(f"{path}: line 1: column(s) named twice: {', '.join(dupes)}")
        claim_columns: dict[str, str] = {}
        for name in header:
            if name not in RESERVED_COLUMNS:
                try:
                    claim_columns[name] = iam.claims.resolve(name)
                except IamError as exc:
                    raise InvalidInput(f"{path}: line 1: column {name!r}: {exc}") from None
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                report.errors.append((reader.line_num, f"unreadable row: {exc}"))
                continue
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                report.errors.append(
                    (line, f"has {len(cells)} cells, the header has {len(header)}"))
                continue
            row = dict(zip(header, cells, strict=True))
            yield ImportRow(
                line=line,
                username=row["username"].strip(),
                password=row.get("password") or None,
                claims={uri: row[col] for col, uri in claim_columns.items() if row[col] != ""},
                roles=[r.strip() for r in (row.get("roles") or "").split(";") if r.strip()],
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
    report.errors = sorted(report.errors + result.errors)
    return report
