"""Local entity <-> remote id per target, and each target's health (circuit breaker)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, case, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.db import in_chunks
from core.schema import prov_mappings, prov_target_state


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
    out: dict[str, Mapping] = {}
    for chunk in in_chunks(entity_ids):
        out.update((r.entity_id, _mapping(r)) for r in conn.execute(
            _GET_MANY, {"target": target, "entity_type": entity_type, "ids": chunk}))
    return out


def by_remote_ids(conn: Connection, target: str, entity_type: str, remote_ids: Sequence[str]
                  ) -> dict[str, Mapping]:
    """The mappings of one target holding these remote ids, by remote id (reconciliation
    matches each page of a target's listing with one query)."""
    out: dict[str, Mapping] = {}
    for chunk in in_chunks(remote_ids):
        out.update((r.remote_id, _mapping(r)) for r in conn.execute(
            _BY_REMOTE, {"target": target, "entity_type": entity_type, "ids": chunk}))
    return out


_m = prov_mappings.c
# Statements of the workers' hot path, built once (building one costs more than running it).
_GET_MANY = select(prov_mappings).where(
    _m.target == bindparam("target"), _m.entity_type == bindparam("entity_type"),
    _m.entity_id.in_(bindparam("ids", expanding=True)))
_BY_REMOTE = select(prov_mappings).where(
    _m.target == bindparam("target"), _m.entity_type == bindparam("entity_type"),
    _m.remote_id.in_(bindparam("ids", expanding=True)))
_INSERT = insert(prov_mappings)
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
    if new:
        conn.execute(_INSERT, [
            {"target": p.target, "entity_type": p.entity_type, "entity_domain": p.domain,
             "entity_id": p.entity_id, "adopted": p.adopted, "remote_id": p.remote_id,
             "remote_name": p.remote_name, "last_sync": now, "last_outcome": "succeeded",
             "last_error": None} for p in new])
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


# ---------------------------------------------------------------- target health
HEALTHY, RETRYING, QUARANTINED = "healthy", "retrying", "quarantined"
#: Paused at the connector's word (``TargetPaused``), not for failures: held like a
#: quarantined target until ``quarantined_until``, then probed by one job.
THROTTLED = "throttled"
#: States in which a target gets no jobs until its probe time.
HELD = (QUARANTINED, THROTTLED)


@dataclass(frozen=True)
class TargetHealth:
    target: str
    state: str
    consecutive_failures: int
    quarantined_until: datetime | None
    last_error: str | None
    succeeded_total: int
    failed_total: int
    facts: dict[str, str] | None = None


def health(conn: Connection, target: str) -> TargetHealth:
    r = conn.execute(select(prov_target_state).where(
        prov_target_state.c.target == target)).first()
    if r is None:
        return TargetHealth(target, HEALTHY, 0, None, None, 0, 0)
    return _health(r)


def _health(r: Any) -> TargetHealth:
    return TargetHealth(r.target, r.state, r.consecutive_failures, r.quarantined_until,
                        r.last_error, r.succeeded_total, r.failed_total, r.facts)


def all_health(conn: Connection) -> dict[str, TargetHealth]:
    return {r.target: _health(r) for r in conn.execute(_ALL_HEALTH)}


def _ensure(conn: Connection, target: str) -> None:
    """Create the target's row if missing; safe when workers race to create it."""
    values = {"target": target, "state": HEALTHY, "consecutive_failures": 0,
              "succeeded_total": 0, "failed_total": 0, "updated": _now()}
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(pg_insert(prov_target_state).values(**values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        conn.execute(sqlite_insert(prov_target_state).values(**values)
                     .on_conflict_do_nothing())
    else:
        conn.execute(insert(prov_target_state).values(**values).prefix_with("IGNORE"))


def record_success(conn: Connection, target: str, n: int = 1) -> None:
    """Count ``n`` successes and close the breaker (increments are atomic: workers race
    here)."""
    values = {"tgt": target, "n": n, "at": _now()}
    if conn.execute(_COUNT_SUCCESS, values).rowcount == 0:  # the target's first outcome
        _ensure(conn, target)
        conn.execute(_COUNT_SUCCESS, values)


_t = prov_target_state.c
_ALL_HEALTH = select(prov_target_state)
_COUNT_SUCCESS = update(prov_target_state).where(_t.target == bindparam("tgt")).values(
    state=HEALTHY, consecutive_failures=0, quarantined_until=None,
    succeeded_total=_t.succeeded_total + bindparam("n"), updated=bindparam("at"))


def record_failure(conn: Connection, target: str, error: str, threshold: int,
                   probe_after: timedelta, counts_for_breaker: bool,
                   attempt: bool = True) -> None:
    """Count a failed attempt; past ``threshold`` consecutive failures, quarantine.

    Only failures that say something about the target (network, 5xx, 429) move the
    breaker; a 4xx about one entity's data does not quarantine a healthy target.
    ``attempt``: a job's attempt (counted in ``failed_total``), not a connection probe.
    """
    _ensure(conn, target)
    t = prov_target_state.c
    values: dict[str, Any] = {"failed_total": t.failed_total + int(attempt),
                              "last_error": error, "updated": _now()}
    if counts_for_breaker:
        values["consecutive_failures"] = t.consecutive_failures + 1
        values["state"] = case((t.consecutive_failures + 1 >= threshold, QUARANTINED),
                               else_=RETRYING)
        values["quarantined_until"] = case(
            (t.consecutive_failures + 1 >= threshold, _now() + probe_after),
            else_=t.quarantined_until)
    conn.execute(update(prov_target_state).where(t.target == target).values(**values))


def pause(conn: Connection, target: str, reason: str, until: datetime) -> None:
    """Hold ``target`` (state ``throttled``) until ``until``, for ``reason``; a failure
    count is not touched: the connector asked for the pause, nothing failed."""
    _ensure(conn, target)
    conn.execute(update(prov_target_state).where(prov_target_state.c.target == target).values(
        state=THROTTLED, quarantined_until=until, last_error=reason, updated=_now()))


def set_facts(conn: Connection, target: str, facts: dict[str, str]) -> None:
    """Keep what ``target`` said about itself (``Connector.target_facts``)."""
    t = prov_target_state.c
    if conn.execute(update(prov_target_state).where(t.target == target)
                    .values(facts=facts)).rowcount == 0:
        _ensure(conn, target)
        conn.execute(update(prov_target_state).where(t.target == target).values(facts=facts))
