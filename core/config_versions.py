"""Versions of configuration that running processes keep in memory (``config_versions``).

A write of such configuration bumps its kind's version in the write's transaction; a
process that holds it reads the version (one primary-key row, at most once a second) and
reloads when it changed, so a running ``serve`` or worker sees what another process wrote.
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from core.schema import config_versions

USERSTORES = "userstores"


def read(conn: Connection, kind: str) -> int:
    """The kind's version (0 before its first write)."""
    value = conn.execute(select(config_versions.c.version).where(
        config_versions.c.kind == kind)).scalar()
    return int(value or 0)


def bump(conn: Connection, kind: str) -> None:
    """Mark the kind changed, in the caller's transaction (so it is seen with the change)."""
    c = config_versions.c
    if conn.execute(update(config_versions).where(c.kind == kind)
                    .values(version=c.version + 1)).rowcount == 0:
        conn.execute(insert(config_versions).values(kind=kind, version=1))
