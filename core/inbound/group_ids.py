"""The ``externalId`` clients give groups, which userstores have no place for.

Kept in the system database by (domain, group id), like the reference server's
``IDN_SCIM_GROUP``; users keep theirs as the ``externalid`` claim.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, insert, select, update

from core.schema import scim_groups


def of(conn: Connection, domain: str, group_ids: Sequence[str]) -> dict[str, str]:
    """group id -> externalId, for those of ``group_ids`` that have one."""
    if not group_ids:
        return {}
    rows = conn.execute(select(scim_groups.c.group_id, scim_groups.c.external_id).where(
        scim_groups.c.domain == domain, scim_groups.c.group_id.in_(list(group_ids))))
    return {r.group_id: r.external_id for r in rows}


def groups_with(conn: Connection, domain: str, external_id: str) -> list[str]:
    """The ids of the groups of ``domain`` with this externalId."""
    return list(conn.execute(select(scim_groups.c.group_id).where(
        scim_groups.c.domain == domain, scim_groups.c.external_id == external_id)).scalars())


def put(conn: Connection, domain: str, group_id: str, external_id: str | None) -> None:
    """Set (or, with None, forget) a group's externalId."""
    where = (scim_groups.c.domain == domain, scim_groups.c.group_id == group_id)
    if external_id is None:
        conn.execute(delete(scim_groups).where(*where))
    elif conn.execute(select(scim_groups.c.pk).where(*where)).first():
        conn.execute(update(scim_groups).where(*where).values(external_id=external_id))
    else:
        conn.execute(insert(scim_groups).values(domain=domain, group_id=group_id,
                                                external_id=external_id))
