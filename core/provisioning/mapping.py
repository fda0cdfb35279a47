"""Local entity <-> remote id per target (the remote mappings)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update

from core.db import InStatement, in_chunks, insert_rows
from core.schema import prov_mappings


@dataclass(frozen=True)
class Mapping:
    target: str
    entity_type: str
    domain: str
    entity_id: str
    remote_id: str
    remote_name: str
    adopted: bool
    last_sync: datetime
    last_outcome: str
    last_error: str | None


def _now() -> datetime:
    return datetime.now(UTC)


def _mapping(r: Any) -> Mapping:
    return Mapping(r.target, r.entity_type, r.entity_domain, r.entity_id, r.remote_id,
                   r.remote_name, r.adopted, r.last_sync, r.last_outcome, r.last_error)


def get(conn: Connection, target: str, entity_type: str, entity_id: str) -> Mapping | None:
    r = conn.execute(select(prov_mappings).where(
        prov_mappings.c.target == target, prov_mappings.c.entity_type == entity_type,
        prov_mappings.c.entity_id == entity_id)).first()
    return None if r is None else _mapping(r)


def get_many(conn: Connection, target: str, entity_type: str, entity_ids: Sequence[str]
             ) -> dict[str, Mapping]:
    """``get`` for many entities of one target in one query: the mappings that exist, by
    entity id."""
    return _found(conn, _GET_MANY, "entity_id", target, entity_type, entity_ids)


def by_remote_ids(conn: Connection, target: str, entity_type: str, remote_ids: Sequence[str]
                  ) -> dict[str, Mapping]:
    """The mappings of one target holding these remote ids, by remote id (reconciliation
    matches each page of a target's listing with one query)."""
    return _found(conn, _BY_REMOTE, "remote_id", target, entity_type, remote_ids)


def _found(conn: Connection, statement: InStatement, key: str, target: str,
           entity_type: str, ids: Sequence[str]) -> dict[str, Mapping]:
    """The mappings ``statement`` finds for ``ids``, by their column ``key``."""
    out: dict[str, Mapping] = {}
    for chunk in in_chunks(ids):
        out.update((getattr(r, key), _mapping(r)) for r in statement.execute(
            conn, {"target": target, "entity_type": entity_type, "ids": chunk}))
    return out


def remote_ids(conn: Connection, target: str, entity_type: str, after: int = 0,
               limit: int = 500) -> list[tuple[int, str]]:
    """A page of the remote ids one target's mappings hold, as (key, remote id) in key
    order after the key ``after`` (a listing that can only look objects up walks them)."""
    rows = conn.execute(select(_m.pk, _m.remote_id).where(
        _m.target == target, _m.entity_type == entity_type, _m.pk > after)
        .order_by(_m.pk).limit(limit))
    return [(int(r.pk), str(r.remote_id)) for r in rows]


_m = prov_mappings.c


def _mappings_by(column: Any) -> InStatement:
    """The mappings of one target and entity type whose ``column`` is in the list ``ids``."""
    return InStatement(lambda ids: select(prov_mappings).where(
        _m.target == bindparam("target"), _m.entity_type == bindparam("entity_type"), ids),
        column, "ids")


# Statements of the workers' hot path, built once (building one costs more than running it).
_GET_MANY = _mappings_by(_m.entity_id)
_BY_REMOTE = _mappings_by(_m.remote_id)
#: The columns ``put_many`` writes a new mapping with.
_PUT_COLUMNS = ("target", "entity_type", "entity_domain", "entity_id", "adopted", "remote_id",
                "remote_name", "last_sync", "last_outcome", "last_error")
_UPDATE_KNOWN = update(prov_mappings).where(
    _m.target == bindparam("t"), _m.entity_type == bindparam("et"),
    _m.entity_id == bindparam("eid")).values(
        remote_id=bindparam("rid"), remote_name=bindparam("rname"),
        last_sync=bindparam("synced"), last_outcome="succeeded", last_error=None)


def for_entity(conn: Connection, entity_id: str) -> list[Mapping]:
    """Every target's mapping of one user or group, in one query."""
    rows = conn.execute(select(prov_mappings).where(prov_mappings.c.entity_id == entity_id)
                        .order_by(prov_mappings.c.target, prov_mappings.c.entity_type))
    return [_mapping(r) for r in rows]


@dataclass(frozen=True)
class Put:
    """A mapping to store. ``exists``: whether there is one already (the job read it when
    it was prepared, and no other job of the entity runs meanwhile)."""

    target: str
    entity_type: str
    domain: str
    entity_id: str
    remote_id: str
    remote_name: str
    adopted: bool
    exists: bool


def put_many(conn: Connection, puts: Sequence[Put]) -> None:
    """Store many mappings: new ones in one insert, known ones in one update."""
    now = _now()
    new = [p for p in puts if not p.exists]
    known = [p for p in puts if p.exists]
    if new:  # straight through the driver: a worker stores one a job created
        insert_rows(conn, prov_mappings, _PUT_COLUMNS, [
            (p.target, p.entity_type, p.domain, p.entity_id, p.adopted, p.remote_id,
             p.remote_name, now, "succeeded", None) for p in new])
    if known:
        conn.execute(_UPDATE_KNOWN, [
            {"t": p.target, "et": p.entity_type, "eid": p.entity_id, "rid": p.remote_id,
             "rname": p.remote_name, "synced": now} for p in known])


def note_outcome(conn: Connection, target: str, entity_type: str, entity_id: str,
                 outcome: str, error: str | None) -> None:
    conn.execute(update(prov_mappings).where(
        prov_mappings.c.target == target, prov_mappings.c.entity_type == entity_type,
        prov_mappings.c.entity_id == entity_id).values(
            last_outcome=outcome, last_error=error, last_sync=_now()))


def remove(conn: Connection, target: str, entity_type: str, entity_id: str) -> None:
    conn.execute(delete(prov_mappings).where(
        prov_mappings.c.target == target, prov_mappings.c.entity_type == entity_type,
        prov_mappings.c.entity_id == entity_id))
