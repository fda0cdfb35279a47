"""The audit log: one row for every write, written in the write's own transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, select

from core.db import insert_later
from core.schema import audit_log

_COLUMNS = ("at", "actor", "face", "application", "action", "target", "detail")


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    face: str
    application: str
    action: str
    target: str
    detail: Mapping[str, Any]
    #: The row's number: later rows have higher ones.
    pk: int = 0


class Initiator(Protocol):
    """Who made a change, as the log records it: ``core.identity.events.Initiator`` (a
    protocol, so the log, which identity writes to, does not import identity back)."""

    @property
    def actor(self) -> str: ...

    @property
    def face(self) -> str: ...

    @property
    def application(self) -> str: ...

    @property
    def compensation(self) -> bool: ...


def record(
    conn: Connection, initiator: Initiator, action: str, target: str,
    detail: Mapping[str, Any] | None = None,
) -> None:
    record_many(conn, initiator, action, [(target, detail or {})])


def record_many(
    conn: Connection, initiator: Initiator, action: str,
    entries: Sequence[tuple[str, Mapping[str, Any]]],
) -> None:
    now = datetime.now(UTC)
    who = (now, initiator.actor, str(initiator.face), initiator.application, action)
    rows = [(*who, target[:512], {**detail, "compensation": True} if initiator.compensation
             else dict(detail)) for target, detail in entries]
    # now, or in an unbegun transaction (a SCIM request's) carried by its write
    insert_later(conn, audit_log, _COLUMNS, rows)


def read(
    conn: Connection, limit: int = 100, action: str | None = None, target: str | None = None
) -> list[AuditEntry]:
    q = select(audit_log).order_by(audit_log.c.pk.desc()).limit(limit)
    if action:
        q = q.where(audit_log.c.action == action)
    if target:
        q = q.where(audit_log.c.target == target)
    return [
        AuditEntry(r["at"], r["actor"], r["face"], r["application"], r["action"], r["target"],
                   r["detail"], r["pk"])
        for r in conn.execute(q).mappings()
    ]
