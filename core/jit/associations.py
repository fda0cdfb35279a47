"""Federated associations: (identity provider, subject) -> the local user its logins land on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, insert, select

from core.db import SystemDB
from core.schema import jit_associations as t


@dataclass(frozen=True)
class Association:
    idp: str
    subject: str
    domain: str
    user_id: str
    created: datetime


def _of(row: object) -> Association:
    r = row._mapping  # type: ignore[attr-defined]
    return Association(r["idp"], r["subject"], r["domain"], r["user_id"], r["created"])


def find(conn: Connection, idp: str, subject: str) -> Association | None:
    row = conn.execute(select(t).where(t.c.idp == idp, t.c.subject == subject)).first()
    return _of(row) if row is not None else None


def of_user(conn: Connection, domain: str, user_id: str) -> list[Association]:
    """Every federated subject linked to a user (what ``user show`` lists)."""
    return [_of(r) for r in conn.execute(
        select(t).where(t.c.domain == domain, t.c.user_id == user_id)
        .order_by(t.c.idp, t.c.subject))]


def subjects_of(db: SystemDB, domain: str, user_id: str) -> list[str]:
    """``identity provider: subject`` for each association of a user (``user show`` and
    the console's user detail)."""
    with db.transaction() as conn:
        return [f"{a.idp}: {a.subject}" for a in of_user(conn, domain, user_id)]


def link(conn: Connection, idp: str, subject: str, domain: str, user_id: str) -> None:
    conn.execute(insert(t).values(idp=idp, subject=subject, domain=domain, user_id=user_id,
                                  created=datetime.now(UTC)))


def unlink(conn: Connection, idp: str, subject: str) -> None:
    conn.execute(delete(t).where(t.c.idp == idp, t.c.subject == subject))
