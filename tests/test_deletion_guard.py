"""The mass-deletion guard (issue 16) against a real SCIM 2.0 peer (scim2-server): past a
target's deletion threshold, deprovisionings are held; approve releases them, cancel drops
them, a restart loses none, and the target's other jobs keep flowing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from connectors.registry import connector_class
from core import audit
from core.iam import Iam
from core.identity.events import Initiator
from core.provisioning import executor, outbox
from core.provisioning.executor import Prepared
from core.provisioning.outbox import JobState
from tests.provisioning_helpers import connect, drain, peer_users
from tests.test_cli import Cli
from tests.test_tui_dashboard import card_text, cards, console
from tests.tui_helpers import settle
from tui.widgets.confirm import ConfirmScreen

TARGET = "peer:scim2"
ROLE = "Internal/provisioned"
NAMES = ("anna", "ben", "cleo", "dan", "eve")


def _five_leave_scope(iam: Iam, scim_peer: str, threshold: int = 2, **props: object) -> None:
    _leave_scope(iam, scim_peer, NAMES, threshold, **props)
    drain(iam)


def _leave_scope(iam: Iam, scim_peer: str, names: tuple[str, ...], threshold: int,
                 **props: object) -> None:
    """``names`` provisioned, then out of scope: a deprovisioning each is queued."""
    admin = Initiator.admin()
    iam.identity.add_role(admin, ROLE)
    connect(iam, scim_peer, provisioning_roles=(ROLE,),
            **{"deletion-threshold": threshold, **props})
    for name in names:
        iam.identity.add_user(admin, name, None, {}, roles=[ROLE])
    drain(iam)
    assert len(peer_users(scim_peer)) == len(names)
    iam.identity.unassign(admin, ROLE, list(names))


def _held(iam: Iam) -> list[str]:
    return sorted(j.name for j in iam.provisioning.jobs(states=["held"]))


def test_past_the_threshold_deletions_are_held_and_other_jobs_flow(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str) -> None:
    iam = sqlite_iam
    _five_leave_scope(iam, scim_peer)
    assert len(peer_users(scim_peer)) == 3, "two deleted, three held"
    assert len(_held(iam)) == 3
    [status] = iam.provisioning.status()
    assert status.held == 3 and status.as_dict()["held"] == 3
    held = iam.provisioning.jobs(states=["held"])[0]
    assert "deletion threshold of 2" in (held.last_error or "")
    # the rest of the target keeps flowing; a later deletion is held too
    iam.identity.add_user(admin, "zoe", None, {}, roles=[ROLE])
    iam.identity.add_user(admin, "yan", None, {}, roles=[ROLE])
    drain(iam)
    assert {"zoe", "yan"} <= {u["userName"] for u in peer_users(scim_peer)}
    iam.identity.delete_user(admin, "yan")
    drain(iam)
    assert len(_held(iam)) == 4 and len(peer_users(scim_peer, "yan")) == 1

    assert iam.provisioning.approve(admin, TARGET) == 4
    drain(iam)
    assert [u["userName"] for u in peer_users(scim_peer)] == ["zoe"]
    assert _held(iam) == []
    with iam.db.transaction() as conn:
        [entry] = [e for e in audit.read(conn, limit=50) if e.action == "provisioning.approve"]
    assert (entry.actor, entry.target, entry.detail["jobs"]) == (admin.actor, TARGET, 4)


@pytest.mark.parametrize("decided", ["in lease order", "in reverse"])
def test_a_burst_leased_in_two_batches_at_once_stays_within_the_threshold(
        iam: Iam, admin: Initiator, scim_peer: str, decided: str) -> None:
    """Two workers (or one worker's next batch while the last is sent) lease deletions one
    after the other, before either sent any: the later batch counts the earlier's in
    flight, whichever is decided first, so no more than the threshold go."""
    names = tuple(f"user{i}" for i in range(8))
    _leave_scope(iam, scim_peer, names, threshold=3)
    batches = []
    for owner in ("worker-a", "worker-b"):
        with iam.db.transaction() as conn:
            batches.append(outbox.claim(conn, owner, 4))
    assert sorted(len(b) for b in batches) == [4, 4]
    preps: list[Prepared] = []
    for jobs in batches if decided == "in lease order" else batches[::-1]:
        with iam.db.transaction() as conn:
            preps += executor.prepare_many(conn, iam, jobs)
    sent = [p for p in preps if not p.hold]
    assert len(sent) == 3, "only the threshold's worth passes"  # 6 if counting sent only

    async def send() -> list[executor.Outcome]:
        async with httpx.AsyncClient(timeout=10) as client:
            return [await executor.perform(
                connector_class(p.target.config.type)(p.target.properties, client), p)
                for p in sent if p.target is not None]
    outcomes = asyncio.run(send())
    with iam.db.transaction() as conn:
        executor.settle_many(conn, [*zip(sent, outcomes, strict=True),
                                    *((p, None) for p in preps if p.hold)])
    assert len(peer_users(scim_peer)) == 5 and len(_held(iam)) == 5
    drain(iam)  # nothing more goes within the hour
    assert len(peer_users(scim_peer)) == 5 and len(_held(iam)) == 5
    assert iam.provisioning.approve(admin, TARGET) == 5
    drain(iam)
    assert peer_users(scim_peer) == []


def test_cancel_drops_held_deletions(sqlite_iam: Iam, admin: Initiator,
                                     scim_peer: str) -> None:
    iam = sqlite_iam
    _five_leave_scope(iam, scim_peer, **{"deprovision-action": "disable"})
    assert sum(u["active"] is False for u in peer_users(scim_peer)) == 2  # disables count
    one = iam.provisioning.jobs(states=["held"])[0]
    iam.provisioning.cancel(admin, one.pk)
    assert iam.provisioning.cancel_held(admin, TARGET) == 2
    drain(iam)
    assert iam.provisioning.jobs(states=["held"]) == []
    assert len(iam.provisioning.jobs(states=["cancelled"])) == 3
    assert sum(u["active"] is False for u in peer_users(scim_peer)) == 2


def test_a_threshold_of_0_holds_nothing(sqlite_iam: Iam, scim_peer: str) -> None:
    _five_leave_scope(sqlite_iam, scim_peer, threshold=0)
    assert peer_users(scim_peer) == [] and _held(sqlite_iam) == []


def test_a_restart_while_held_loses_nothing_and_the_cli_steers(
        tmp_path: Path, scim_peer: str) -> None:
    run = Cli(tmp_path / "home")
    with run.iam() as iam:
        _five_leave_scope(iam, scim_peer)
    # the deployment went away (as a crash would) with three held: nothing was sent for them
    with run.iam() as iam:
        assert len(_held(iam)) == 3 and len(peer_users(scim_peer)) == 3
        drain(iam)
        assert len(_held(iam)) == 3
    listed = json.loads(run.ok("provisioning", "jobs", "--state", "held", "--json").stdout)
    assert len(listed["items"]) == 3
    status = json.loads(run.ok("provisioning", "status", "--json").stdout)
    assert status["targets"][0]["held"] == 3
    header, row = run.ok("provisioning", "status").stdout.splitlines()
    assert row.split()[header.split().index("HELD") - 1] == "3"  # "IN FLIGHT": two words
    assert run.ok("provisioning", "approve", TARGET).stdout.strip() == \
        f"approved 3 held jobs of {TARGET}"
    with run.iam() as iam:
        drain(iam)
        assert peer_users(scim_peer) == []
        assert all(j.state is not JobState.HELD for j in iam.provisioning.jobs())
    assert run("provisioning", "cancel").exit_code == 2


async def test_the_console_shows_held_deletions_and_asks_before_approve_or_cancel(
        sqlite_iam: Iam, scim_peer: str) -> None:
    iam = sqlite_iam
    await asyncio.to_thread(_five_leave_scope, iam, scim_peer, 1)  # drain runs its own loop
    assert len(_held(iam)) == 4
    app = console(iam)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert "4 deletions held" in card_text(cards(app)[TARGET])
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question == "Cancel 4 deletions held at peer:scim2?"
        await pilot.press("n")
        await settle(pilot)
        assert len(_held(iam)) == 4
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question == "Approve 4 deletions held at peer:scim2?"
        await pilot.press("y")
        await settle(pilot)
        await app.workers.wait_for_complete()
    assert _held(iam) == []
    await asyncio.to_thread(drain, iam)
    assert peer_users(scim_peer) == []
