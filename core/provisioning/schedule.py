"""Scheduled reconciliation: targets whose ``reconcile-every`` is set are reconciled by
the workers (``mware-iam serve``, ``worker``, the console's) when their last report is
older than that.

A scheduled run reports and does not repair: what to send (or delete) is the
administrator's call, through ``provisioning reconcile --repair``. The report's summary
goes to the audit log like a manual run's (``reconcile.last_report`` reads it back for
the dashboard and ``provisioning status``); a run that fails (target unreachable) is
recorded with its error, so it is tried again after the interval, not at every check.
Several worker processes may each start a due run in the same minute: reconciling twice
costs time but changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from core import audit
from core.errors import IamError
from core.identity.events import Face, Initiator
from core.provisioning.host import Host
from core.provisioning.reconcile import ACTION, ReconcileReport, last_report, reconcile_target
from core.provisioning.status import configured_targets
from core.provisioning.targets import build_target, split_key

log = logging.getLogger(__name__)

#: The choices of the ``reconcile-every`` connector property.
INTERVALS = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1),
             "6h": timedelta(hours=6), "12h": timedelta(hours=12),
             "24h": timedelta(hours=24)}
#: How often the workers look for a due reconciliation.
CHECK_SECONDS = 60.0
SCHEDULER = Initiator(actor="schedule:reconcile-every", face=Face.CLI)


def due_targets(host: Host) -> list[str]:
    """Enabled targets with a ``reconcile-every`` whose last reconciliation is older."""
    now, due = datetime.now(UTC), []
    with host.db.transaction() as conn:
        for key, enabled in configured_targets(conn, host).items():
            if not enabled:
                continue
            idp, connector_type = split_key(key)
            try:
                every = INTERVALS.get(str(build_target(host.get_idp(idp), connector_type)
                                          .prop("reconcile-every")))
            except IamError:
                continue
            last = last_report(conn, key) if every is not None else None
            if every is not None and (last is None or
                                      now - datetime.fromisoformat(last["at"]) >= every):
                due.append(key)
    return due


def run_due(host: Host) -> list[ReconcileReport]:
    """Reconcile every due target now (report only); the reports."""
    reports = []
    for key in due_targets(host):
        try:
            reports.append(reconcile_target(host, SCHEDULER, key))
        except IamError as exc:
            log.warning("scheduled reconciliation of %s failed: %s", key, exc)
            with host.db.transaction() as conn:
                audit.record(conn, SCHEDULER, ACTION, key, {"error": str(exc)})
    return reports


async def run_schedule(host: Host, stop: asyncio.Event,
                       every: float = CHECK_SECONDS) -> None:
    """Until ``stop``: run due reconciliations (in a thread: they read the database and
    run their own loop), then wait ``every`` seconds."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(run_due, host)
        except Exception:  # a bug here must not stop the workers
            log.exception("scheduled reconciliation failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
