"""Internal roles: kept in the system database, assignable to users of any domain."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, delete, func, insert, select, tuple_, update

from core.db import InStatement, in_chunks
from core.errors import AlreadyExists, NotFound
from core.schema import internal_role_members, internal_roles


@dataclass(frozen=True)
class InternalRole:
    pk: int
    id: str
    name: str


def find(conn: Connection, name: str) -> InternalRole | None:
    row = conn.execute(select(internal_roles).where(internal_roles.c.name == name)).first()
    return InternalRole(row.pk, row.role_id, row.name) if row else None


def get(conn: Connection, name: str) -> InternalRole:
    role = find(conn, name)
    if role is None:
        raise NotFound(f"role Internal/{name} does not exist")
    return role


def add(conn: Connection, name: str) -> InternalRole:
    if find(conn, name) is not None:
        raise AlreadyExists(f"role Internal/{name} already exists")
    rid = str(uuid.uuid4())
    pk = conn.execute(insert(internal_roles).values(
        role_id=rid, name=name, created=datetime.now(UTC))).inserted_primary_key[0]  # type: ignore[index]
    return InternalRole(int(pk), rid, name)


def rename(conn: Connection, role: InternalRole, new_name: str) -> None:
    if find(conn, new_name) is not None:
        raise AlreadyExists(f"role Internal/{new_name} already exists")
    conn.execute(update(internal_roles).where(internal_roles.c.pk == role.pk)
                 .values(name=new_name))


def remove(conn: Connection, role: InternalRole) -> None:
    conn.execute(delete(internal_role_members).where(internal_role_members.c.role_pk == role.pk))
    conn.execute(delete(internal_roles).where(internal_roles.c.pk == role.pk))


def list_names(conn: Connection, prefix: str | None = None, limit: int = 1000) -> list[str]:
    q = select(internal_roles.c.name).order_by(internal_roles.c.name).limit(limit)
    if prefix:
        q = q.where(internal_roles.c.name >= prefix, internal_roles.c.name < prefix + "\U0010ffff")
    return list(conn.execute(q).scalars())


def add_members(conn: Connection, role: InternalRole, members: Sequence[tuple[str, str]]) -> list[
        tuple[str, str]]:
    """Add (domain, user id) pairs; returns the pairs that were not members yet."""
    current = set(members_of(conn, role))
    new = [m for m in dict.fromkeys(members) if m not in current]
    if new:
        conn.execute(insert(internal_role_members), [
            {"role_pk": role.pk, "domain": d, "user_id": u} for d, u in new])
    return new


def remove_members(conn: Connection, role: InternalRole, members: Sequence[tuple[str, str]]
                   ) -> list[tuple[str, str]]:
    current = set(members_of(conn, role))
    gone = [m for m in dict.fromkeys(members) if m in current]
    for d, u in gone:
        conn.execute(delete(internal_role_members).where(
            internal_role_members.c.role_pk == role.pk,
            internal_role_members.c.domain == d, internal_role_members.c.user_id == u))
    return gone


def members_of(conn: Connection, role: InternalRole) -> list[tuple[str, str]]:
    rows = conn.execute(
        select(internal_role_members.c.domain, internal_role_members.c.user_id)
        .where(internal_role_members.c.role_pk == role.pk)
        .order_by(internal_role_members.c.domain, internal_role_members.c.user_id))
    return [(domain, user_id) for domain, user_id in rows]


def members_page(conn: Connection, role: InternalRole, limit: int,
                 after: tuple[str, str] | None = None) -> list[tuple[str, str]]:
    """Up to ``limit`` (domain, user id) members after ``after``, in that order."""
    members = internal_role_members.c
    q = (select(members.domain, members.user_id).where(members.role_pk == role.pk)
         .order_by(members.domain, members.user_id).limit(limit))
    if after is not None:
        q = q.where(tuple_(members.domain, members.user_id) > tuple_(*after))
    return [(domain, user_id) for domain, user_id in conn.execute(q)]


def count_members(conn: Connection, role: InternalRole) -> int:
    return int(conn.execute(select(func.count()).select_from(internal_role_members).where(
        internal_role_members.c.role_pk == role.pk)).scalar_one())


def roles_of(conn: Connection, domain: str, user_id: str) -> list[str]:
    return list(conn.execute(
        select(internal_roles.c.name)
        .join(internal_role_members, internal_role_members.c.role_pk == internal_roles.c.pk)
        .where(internal_role_members.c.domain == domain,
               internal_role_members.c.user_id == user_id)
        .order_by(internal_roles.c.name)).scalars())


def roles_of_users(conn: Connection, domain: str, user_ids: Sequence[str]
                   ) -> dict[str, list[str]]:
    """``roles_of`` for many users of one domain in one query; users without internal
    roles are left out."""
    out: dict[str, list[str]] = {}
    for chunk in in_chunks(user_ids):
        for row in _ROLES_OF_USERS.execute(conn, {"domain": domain, "ids": chunk}):
            out.setdefault(row.user_id, []).append(row.name)
    return out


#: Built once: a worker asks for every batch of users it provisions.
_ROLES_OF_USERS = InStatement(lambda ids: (
    select(internal_role_members.c.user_id, internal_roles.c.name)
    .join(internal_role_members, internal_role_members.c.role_pk == internal_roles.c.pk)
    .where(internal_role_members.c.domain == bindparam("domain"), ids)
    .order_by(internal_roles.c.name)), internal_role_members.c.user_id, "ids")


def forget_user(conn: Connection, domain: str, user_id: str) -> None:
    conn.execute(delete(internal_role_members).where(
        internal_role_members.c.domain == domain, internal_role_members.c.user_id == user_id))
