"""Live status per target: state, job counts, throughput, latency, last error.

Everything here reads indexed rows bounded by the backlog or by the last minute, so the
console can poll it every second from another process.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from core import apps, idps
from core.errors import IamError
from core.provisioning import breaker, outbox
from core.provisioning.host import Host
from core.provisioning.reconcile import describe, last_report
from core.provisioning.targets import target_key
from core.schema import prov_attempts

LATENCY_SAMPLE = 200


@dataclass(frozen=True)
class TargetStatus:
    target: str
    state: str  # healthy | retrying | quarantined | throttled | disabled
    queued: int
    in_flight: int
    retrying: int
    succeeded: int
    failed: int
    dead: int
    per_minute: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    last_error: str | None
    quarantined_until: datetime | None
    #: What the target said about itself (e.g. ``{"api usage": "10018/100000 (90 % left)"}``).
    facts: dict[str, str] = field(default_factory=dict)
    #: Deprovisionings held by the deletion guard, waiting for approval.
    held: int = 0
    #: The latest reconciliation: when, and ``in sync`` or what drifted (one line).
    last_reconcile: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["quarantined_until"] = self.quarantined_until.isoformat() \
            if self.quarantined_until else None
        return d


def configured_targets(conn: Connection, host: Host) -> dict[str, bool]:
    """Every target some application provisions to -> whether it is enabled."""
    out: dict[str, bool] = {}
    for name in apps.names(conn):
        for t in apps.get(conn, name).outbound:
            key = target_key(t.idp, t.connector)
            try:
                idp = idps.get(conn, host.secrets, t.idp)
                enabled = idp.enabled and idp.connector(t.connector).enabled
            except IamError:
                enabled = False
            out[key] = out.get(key, False) or enabled
    return out


def _latencies(conn: Connection, target: str) -> list[float]:
    rows = conn.execute(select(prov_attempts.c.duration_ms).where(
        prov_attempts.c.target == target, prov_attempts.c.outcome == "succeeded")
        .order_by(prov_attempts.c.at.desc()).limit(LATENCY_SAMPLE)).scalars()
    return sorted(float(v) for v in rows)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def target_status(conn: Connection, host: Host) -> list[TargetStatus]:
    targets = configured_targets(conn, host)
    counts = outbox.counts(conn)
    health = breaker.all_health(conn)
    since = datetime.now(UTC) - timedelta(minutes=1)
    per_minute: dict[str, int] = dict(conn.execute(
        select(prov_attempts.c.target, func.count()).where(
            prov_attempts.c.at >= since, prov_attempts.c.outcome == "succeeded")
        .group_by(prov_attempts.c.target)).all())
    out = []
    for key in sorted(set(targets) | set(counts) | set(health)):
        c = counts.get(key, {})
        h = health.get(key) or breaker.health(conn, key)
        lat = _latencies(conn, key)
        state = h.state if targets.get(key, False) else "disabled"
        out.append(TargetStatus(
            target=key, state=state, queued=c.get("pending", 0),
            in_flight=c.get("inflight", 0), retrying=c.get("retry", 0),
            succeeded=h.succeeded_total, failed=h.failed_total, dead=c.get("dead", 0),
            per_minute=int(per_minute.get(key, 0)), latency_p50_ms=_percentile(lat, 0.50),
            latency_p95_ms=_percentile(lat, 0.95), last_error=h.last_error,
            quarantined_until=h.quarantined_until, facts=dict(h.facts or {}),
            held=c.get("held", 0), last_reconcile=_reconciled(conn, key)))
    return out


def _reconciled(conn: Connection, target: str) -> str | None:
    summary = last_report(conn, target)
    if summary is None:
        return None
    at = datetime.fromisoformat(summary["at"]).strftime("%Y-%m-%d %H:%M")
    if summary.get("error"):
        return f"{at}: failed: {summary['error']}"
    return f"{at}: {describe(summary)}"


def status_json(rows: Sequence[TargetStatus]) -> dict[str, Any]:
    """What ``provisioning status --json`` prints and ``serve`` answers on GET /status."""
    return {"targets": [s.as_dict() for s in rows]}
