"""Versions of configuration that running processes keep in memory (``config_versions``).

A write of such configuration bumps its kind's version in the write's transaction; a
process that holds it reads the version (one primary-key row, at most once a second) and
reloads when it changed, so a running ``serve`` or worker sees what another process wrote.
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, insert, select, update

from core.schema import config_versions

USERSTORES = "userstores"
#: Identity providers and their connectors (worker pools keep the targets built from them).
IDPS = "idps"

_READ = select(config_versions.c.version).where(config_versions.c.kind == bindparam("kind"))


def read(conn: Connection, kind: str) -> int:
    """The kind's version (0 before its first write)."""
    return int(conn.execute(_READ, {"kind": kind}).scalar() or 0)


def bump(conn: Connection, kind: str) -> None:
    """Mark the kind changed, in the caller's transaction (so it is seen with the change)."""
    c = config_versions.c
    if conn.execute(update(config_versions).where(c.kind == kind)
                    .values(version=c.version + 1)).rowcount == 0:
        conn.execute(insert(config_versions).values(kind=kind, version=1))
