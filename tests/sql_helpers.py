"""What tests watch of the SQL a system database is sent."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from core.iam import Iam


@contextmanager
def statements(iam: Iam) -> Iterator[list[str]]:
    """The SQL statements sent to the system database meanwhile."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(iam.db.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(iam.db.engine, "before_cursor_execute", record)
