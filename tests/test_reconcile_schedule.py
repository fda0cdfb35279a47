"""Scheduled reconciliation (issue 16): ``reconcile-every`` targets are reconciled by the
workers, the last report is kept and shown by ``provisioning status`` and the dashboard."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from core.iam import Iam
from core.identity.events import Initiator
from core.provisioning.schedule import due_targets, run_due
from tests.provisioning_helpers import connect, drain, peer_users
from tests.test_cli import Cli
from tests.test_tui_dashboard import card_text, cards, console
from tests.tui_helpers import settle

TARGET = "peer:scim2"


def test_a_due_target_is_reconciled_once_per_interval(sqlite_iam: Iam, admin: Initiator,
                                                      scim_peer: str) -> None:
    iam = sqlite_iam
    connect(iam, scim_peer, **{"reconcile-every": "1h"})
    iam.identity.add_user(admin, "anna", None, {})
    drain(iam)
    [remote] = peer_users(scim_peer, "anna")
    httpx.delete(f"{scim_peer}/Users/{remote['id']}").raise_for_status()
    assert due_targets(iam) == [TARGET]
    [report] = run_due(iam)
    assert report.missing_remote == ["PRIMARY/anna"] and report.jobs_queued == 0
    assert due_targets(iam) == [] and run_due(iam) == []  # the next one in an hour
    [status] = iam.provisioning.status()
    assert status.last_reconcile is not None
    assert status.last_reconcile.endswith(": 1 missing remote")


def test_without_reconcile_every_nothing_is_scheduled(sqlite_iam: Iam, scim_peer: str) -> None:
    connect(sqlite_iam, scim_peer)
    assert due_targets(sqlite_iam) == []


def test_a_failed_run_is_kept_with_its_error(sqlite_iam: Iam) -> None:
    connect(sqlite_iam, "http://127.0.0.1:9/v2", **{"reconcile-every": "15m"})
    assert run_due(sqlite_iam) == []
    [status] = sqlite_iam.provisioning.status()
    assert status.last_reconcile is not None and ": failed: target peer:scim2" in \
        status.last_reconcile
    assert due_targets(sqlite_iam) == []


async def test_the_workers_run_it_and_the_dashboard_shows_it(sqlite_iam: Iam,
                                                             scim_peer: str) -> None:
    iam = sqlite_iam
    connect(iam, scim_peer, **{"reconcile-every": "6h"})
    pool = iam.provisioning.worker_pool()
    pool.schedule_seconds = 0.1
    stop = asyncio.Event()
    running = asyncio.create_task(pool.run(stop))
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            if iam.provisioning.status()[0].last_reconcile:
                break
    finally:
        stop.set()
        await running
        pool.close()
    app = console(iam)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert "in sync" in card_text(cards(app)[TARGET])


def test_status_shows_the_last_reconcile(tmp_path: Path, scim_peer: str) -> None:
    run = Cli(tmp_path / "home")
    with run.iam() as iam:
        connect(iam, scim_peer)
    run("provisioning", "reconcile", TARGET)
    [target] = json.loads(run.ok("provisioning", "status", "--json").stdout)["targets"]
    assert target["last_reconcile"].endswith(": in sync")
