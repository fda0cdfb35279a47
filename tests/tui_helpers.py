"""Shared helpers for the console's tests: waiting on the app, and frozen data for pictures.

Pictures must not depend on the clock, the time zone or random ids: ``utc`` pins the time
zone, ``FixedStatus`` replaces the dashboard's source, and ``freeze_jobs`` rewrites the
timestamps and durations the engine stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from textual.coordinate import Coordinate
from textual.message import Message
from textual.notifications import Notify
from textual.pilot import Pilot
from textual.widgets import DataTable
from textual.worker import WorkerState

from core.iam import Iam
from core.provisioning.outbox import AttemptSummary, Operation
from core.provisioning.status import TargetStatus
from core.schema import prov_attempts, prov_jobs

#: The instant every frozen picture shows (12:00:00 UTC).
NOON = datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)
#: Workers that run for the app's whole life; ``settle`` does not wait for them.
LONG_RUNNING = frozenset({"provisioning-workers"})


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Times render in UTC (the console shows local time)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _busy(pilot: Pilot[Any]) -> bool:
    return any(w.state in (WorkerState.PENDING, WorkerState.RUNNING)
               and w.group not in LONG_RUNNING for w in pilot.app.workers)


async def settle(pilot: Pilot[Any]) -> None:
    """Wait until no short-lived worker runs and every message they posted was handled."""
    for _ in range(100):
        await pilot.pause()
        if not _busy(pilot):
            await pilot.pause()
            if not _busy(pilot):
                return
        await pilot.pause(0.02)
    raise AssertionError("the console's workers never settled")


async def until(pilot: Pilot[Any], condition: Callable[[], Any], what: str,
                seconds: float = 30.0) -> Any:
    """Let the app run until ``condition()`` is truthy (a bound against hangs, not a speed
    assertion); returns its value."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:g} s")
        await pilot.pause(0.1)


# ---------------------------------------------------------------------- frozen status
def target(name: str, state: str = "healthy", **counts: Any) -> TargetStatus:
    values: dict[str, Any] = {"queued": 0, "in_flight": 0, "retrying": 0, "succeeded": 0,
                              "failed": 0, "dead": 0, "per_minute": 0, "latency_p50_ms": None,
                              "latency_p95_ms": None, "last_error": None,
                              "quarantined_until": None}
    values.update(counts)
    return TargetStatus(target=name, state=state, **values)


def attempt(pk: int, target_name: str, name: str, outcome: str = "succeeded",
            status: int | None = 201, operation: Operation = Operation.UPSERT_USER,
            seconds: int = 0, duration: float = 12.0, error: str | None = None
            ) -> AttemptSummary:
    return AttemptSummary(pk, 100 + pk, target_name, operation, name,
                          NOON + timedelta(seconds=seconds), duration, outcome, status, error)


class FixedStatus:
    """A dashboard source that answers from a script: each read takes the next snapshot
    (the last one repeats)."""

    def __init__(self, snapshots: Sequence[tuple[list[TargetStatus], list[AttemptSummary]]]
                 ) -> None:
        self._snapshots = list(snapshots)
        self.reads = 0

    def status(self) -> list[TargetStatus]:
        return self._snapshots[min(self.reads, len(self._snapshots) - 1)][0]

    def activity(self, limit: int = 50) -> list[AttemptSummary]:
        snapshot = self._snapshots[min(self.reads, len(self._snapshots) - 1)]
        self.reads += 1
        return snapshot[1][:limit]


def demo_status() -> FixedStatus:
    """Three targets, one of each live state, with a throughput history and a feed."""
    peer = target("scim-peer:scim2", succeeded=1240, failed=3, per_minute=42,
                  latency_p50_ms=14.0, latency_p95_ms=80.0, queued=2, in_flight=1)
    partner = target("partner-directory:scim2", "quarantined", retrying=4, queued=7,
                     succeeded=310, failed=19, dead=2,
                     last_error="create user 'alice': the target answered HTTP 503: "
                                "Service Unavailable",
                     quarantined_until=NOON + timedelta(seconds=15))
    legacy = target("legacy-ldap:scim2", "disabled", succeeded=12)
    feed = [attempt(1, "scim-peer:scim2", "PRIMARY/alice", seconds=1),
            attempt(2, "partner-directory:scim2", "PRIMARY/alice", "failed", 503, seconds=2,
                    error="HTTP 503"),
            attempt(3, "scim-peer:scim2", "PRIMARY/bob", status=200, seconds=3),
            attempt(4, "scim-peer:scim2", "PRIMARY/carol", status=204,
                    operation=Operation.DEPROVISION_USER, seconds=4),
            attempt(5, "partner-directory:scim2", "PRIMARY/dave", "dead", 400, seconds=5,
                    error="HTTP 400")]
    snapshots = []
    for rate in (0, 6, 18, 30, 24, 36, 42):  # the throughput history, one read each
        statuses = [replace(peer, per_minute=rate), partner, legacy]
        snapshots.append((statuses, feed))
    return FixedStatus(snapshots)


# ---------------------------------------------------------------------- frozen jobs
def freeze_jobs(iam: Iam, duration_ms: float = 25.0) -> None:
    """Every job and attempt at NOON (plus its number in seconds), with one duration."""
    with iam.db.transaction() as conn:
        for pk in conn.execute(prov_jobs.select().with_only_columns(prov_jobs.c.pk)).scalars():
            at = NOON + timedelta(seconds=pk)
            conn.execute(update(prov_jobs).where(prov_jobs.c.pk == pk).values(
                created=at, updated=at, next_attempt_at=at))
        for pk in conn.execute(
                prov_attempts.select().with_only_columns(prov_attempts.c.pk)).scalars():
            conn.execute(update(prov_attempts).where(prov_attempts.c.pk == pk).values(
                at=NOON + timedelta(seconds=pk), duration_ms=duration_ms))


def shown_keys(table: DataTable[Any]) -> list[str | None]:
    """Row keys in the order the table shows them (after sorting)."""
    return [table.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value
            for row in range(table.row_count)]


def notices(seen: Sequence[Message]) -> list[str]:
    """The notifications among the messages a ``message_hook`` collected."""
    return [m.notification.message for m in seen if isinstance(m, Notify)]
