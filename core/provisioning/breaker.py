"""Each target's health: the circuit breaker (healthy, retrying, quarantined, throttled).

Failures that say something about the target count towards quarantine; a quarantined or
throttled target gets no jobs until its probe time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, bindparam, case, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.schema import prov_target_state


def _now() -> datetime:
    return datetime.now(UTC)


class BreakerState(StrEnum):
    """A target's state, stored by its value in ``prov_target_state.state``."""

    HEALTHY = "healthy"
    RETRYING = "retrying"
    QUARANTINED = "quarantined"
    #: Paused at the connector's word (``TargetPaused``), not for failures: held like a
    #: quarantined target until ``quarantined_until``, then probed by one job.
    THROTTLED = "throttled"


#: States in which a target gets no jobs until its probe time.
HELD = (BreakerState.QUARANTINED, BreakerState.THROTTLED)


@dataclass(frozen=True)
class TargetHealth:
    target: str
    state: BreakerState
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
        return TargetHealth(target, BreakerState.HEALTHY, 0, None, None, 0, 0)
    return _health(r)


def _health(r: Any) -> TargetHealth:
    return TargetHealth(r.target, BreakerState(r.state), r.consecutive_failures,
                        r.quarantined_until, r.last_error, r.succeeded_total, r.failed_total,
                        r.facts)


def all_health(conn: Connection) -> dict[str, TargetHealth]:
    return {r.target: _health(r) for r in conn.execute(_ALL_HEALTH)}


def _ensure(conn: Connection, target: str) -> None:
    """Create the target's row if missing; safe when workers race to create it."""
    values = {"target": target, "state": BreakerState.HEALTHY.value, "consecutive_failures": 0,
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
    state=BreakerState.HEALTHY.value, consecutive_failures=0, quarantined_until=None,
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
        values["state"] = case(
            (t.consecutive_failures + 1 >= threshold, BreakerState.QUARANTINED.value),
            else_=BreakerState.RETRYING.value)
        values["quarantined_until"] = case(
            (t.consecutive_failures + 1 >= threshold, _now() + probe_after),
            else_=t.quarantined_until)
    conn.execute(update(prov_target_state).where(t.target == target).values(**values))


def pause(conn: Connection, target: str, reason: str, until: datetime) -> None:
    """Hold ``target`` (state ``throttled``) until ``until``, for ``reason``; a failure
    count is not touched: the connector asked for the pause, nothing failed."""
    _ensure(conn, target)
    conn.execute(update(prov_target_state).where(prov_target_state.c.target == target).values(
        state=BreakerState.THROTTLED.value, quarantined_until=until, last_error=reason,
        updated=_now()))


def set_facts(conn: Connection, target: str, facts: dict[str, str]) -> None:
    """Keep what ``target`` said about itself (``Connector.target_facts``)."""
    t = prov_target_state.c
    if conn.execute(update(prov_target_state).where(t.target == target)
                    .values(facts=facts)).rowcount == 0:
        _ensure(conn, target)
        conn.execute(update(prov_target_state).where(t.target == target).values(facts=facts))
