"""The console's main journeys, with its own provisioning workers and a real SCIM peer.

Each test asserts what the administrator sees (dashboard cards, the feed, the jobs table)
and what happened (the peer's users, the messages the console handled). ``until`` bounds
the waits against hangs; nothing here measures speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from textual.message import Message

from core.configfile.files import SAMPLE_CONFIG
from core.demo import deployment as demo_module
from core.demo.deployment import ActivityGenerator, demo_deployment
from core.iam import Iam
from core.identity.events import Initiator
from core.provisioning.outbox import JobState, Operation
from tests.conftest import FAST_ARGON2
from tests.peers import Fault, FaultProxy
from tests.provisioning_helpers import connect, peer_users
from tests.tui_helpers import settle, until
from tui.app import MwareConsole
from tui.messages import JobAttempted
from tui.screens.dashboard import ActivityFeed, DashboardScreen, TargetCard
from tui.screens.jobs import JobsScreen, JobsTable

DEPLOYMENT = "~/demo · SQLite mware-iam.db"
PROVISIONED = "Internal/provisioned"


@pytest.fixture
def live_iam(tmp_path: Path) -> Iterator[Iam]:
    with Iam.open(home=str(tmp_path / "home"), argon2=FAST_ARGON2) as iam:
        yield iam


def live_console(iam: Iam) -> MwareConsole:
    """The console as an administrator runs it: its own workers, live refresh."""
    return MwareConsole(iam, deployment=DEPLOYMENT)


def card(app: MwareConsole, target: str) -> TargetCard | None:
    return _dashboard(app).cards.get(target)


def _dashboard(app: MwareConsole) -> DashboardScreen:
    screen = app.screen
    assert isinstance(screen, DashboardScreen)
    return screen


def card_says(app: MwareConsole, target: str, state: str) -> bool:
    c = card(app, target)
    return c is not None and c.has_class(f"-{state}")


def feed_names(app: MwareConsole) -> list[tuple[str, str]]:
    feed = _dashboard(app).query_one(ActivityFeed)
    return [(str(feed.get_row(key)[3]), str(feed.get_row(key)[4])) for key in feed.rows]


async def in_thread(call: Any, *args: Any) -> Any:
    """Engine writes from the test run off the app's loop, as another face's would."""
    return await asyncio.to_thread(call, *args)


# ---------------------------------------------------------------------- journeys


async def test_a_user_added_while_the_console_runs_reaches_the_peer(
        live_iam: Iam, admin: Initiator, scim_peer: str) -> None:
    connect(live_iam, scim_peer)
    seen: list[Message] = []
    app = live_console(live_iam)
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await settle(pilot)
        assert app.workers_pool is not None and app.workers_pool.running
        await in_thread(live_iam.identity.add_user, admin, "alice", None,
                        {"givenname": "Alice", "lastname": "Adams"})
        await until(pilot, lambda: peer_users(scim_peer, "alice"), "alice at the peer")
        attempted = await until(pilot, lambda: [m for m in seen
                                                if isinstance(m, JobAttempted)],
                                "the pool's listener to report the attempt")
        assert [(m.job.name, m.state) for m in attempted] == [
            ("PRIMARY/alice", JobState.SUCCEEDED)]
        await until(pilot, lambda: ("PRIMARY/alice", "succeeded") in feed_names(app),
                    "the attempt in the feed")
        peer = card(app, "peer:scim2")
        assert peer is not None and "ok 1 · failed 0 · dead 0" in str(
            peer.query_one(".card-counts").render())


async def test_a_provisioning_role_provisions_and_its_removal_deprovisions(
        live_iam: Iam, admin: Initiator, scim_peer: str) -> None:
    connect(live_iam, scim_peer, provisioning_roles=(PROVISIONED,))
    live_iam.identity.add_role(admin, PROVISIONED)
    live_iam.identity.add_user(admin, "bob")
    assert live_iam.provisioning.jobs(entity="PRIMARY/bob") == []  # not in scope yet
    app = live_console(live_iam)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await in_thread(live_iam.identity.assign, admin, PROVISIONED, ["bob"])
        await until(pilot, lambda: peer_users(scim_peer, "bob"), "bob provisioned")

        await in_thread(live_iam.identity.unassign, admin, PROVISIONED, ["bob"])
        await until(pilot, lambda: not peer_users(scim_peer, "bob"), "bob deprovisioned")

        await pilot.press("2")
        await settle(pilot)
        assert isinstance(app.screen, JobsScreen)

        def bob_jobs() -> list[tuple[Operation, JobState]]:
            table = app.screen.query_one(JobsTable)
            return sorted((j.operation, j.state) for j in table.jobs.values())

        await until(pilot, lambda: bob_jobs() == [
            (Operation.DEPROVISION_USER, JobState.SUCCEEDED),
            (Operation.UPSERT_USER, JobState.SUCCEEDED)], "both jobs on the jobs screen")


async def test_a_failing_target_shows_quarantined_then_recovers(
        live_iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    connect(live_iam, fault_proxy.url(scim_peer))  # quarantine after 3, probe every 1 s
    fault_proxy.outage(Fault.answer(503, {"detail": "down for the test"}))
    app = live_console(live_iam)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await in_thread(live_iam.identity.add_user, admin, "carol")
        await until(pilot, lambda: card_says(app, "peer:scim2", "quarantined"),
                    "the card to show the quarantine")
        c = card(app, "peer:scim2")
        assert c is not None and "QUARANTINED" in str(c.query_one(".card-state").render())
        assert "503" in str(c.query_one(".card-error").render())

        fault_proxy.outage(None)
        await until(pilot, lambda: card_says(app, "peer:scim2", "healthy"),
                    "the card to show the recovery")
        # the breaker may close on a connection-test probe; the retry then runs at once
        await until(pilot, lambda: bool(peer_users(scim_peer, "carol")),
                    "carol to reach the peer")
        assert card(app, "peer:scim2") is c  # the same card all along


async def test_quitting_stops_the_console_workers(live_iam: Iam) -> None:
    app = live_console(live_iam)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        workers = app.workers_pool
        assert workers is not None and workers.running and workers.pool is not None
        await pilot.press("q")
        await until(pilot, lambda: not workers.running, "the workers to stop")
        assert workers.pool is None and app.return_code == 0


async def test_a_read_only_console_runs_no_workers(live_iam: Iam) -> None:
    app = MwareConsole(live_iam, read_only=True, deployment=DEPLOYMENT)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.workers_pool is None
        assert _dashboard(app).query_one("#activity-pane").border_subtitle == \
            "workers: elsewhere"


# ---------------------------------------------------------------------- the demo


def test_the_demo_provisions_its_seeded_users_to_two_separate_directories() -> None:
    with demo_deployment(peer_port=None, argon2=FAST_ARGON2) as env:
        # the peer answers at the /v2 base sample_config/ and the README name
        answer = httpx.get(f"{env.peer.origin}/v2/Users", params={"count": "1000"},
                           timeout=5)
        assert answer.status_code == 200, answer.text
        at_peer = {u["userName"] for u in answer.json()["Resources"]}
        assert env.peer_url == f"{env.peer.origin}/v2"
        sample = yaml.safe_load(SAMPLE_CONFIG.read_text())
        in_sample = next(i for i in sample["identity_providers"] if i["name"] == "scim-peer")
        wired = env.iam.get_idp("scim-peer").connectors[0].properties["scim2-user-ep"]
        assert urlsplit(str(wired)).path == \
            urlsplit(in_sample["connectors"][0]["properties"]["scim2-user-ep"]).path
        at_partner = {u["userName"] for u in peer_users(env.partner_url)}
        assert {"alice", "bob"} <= at_peer and "carol" not in at_peer  # provisioning roles
        assert at_partner == {"carol"}
        assert env.activity is None and not env.proxy.out
        home = env.home
        assert home.exists()
    assert not home.exists()  # a throwaway home


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_activity_generator_is_bounded_and_the_outage_ends() -> None:
    with demo_deployment(peer_port=None, argon2=FAST_ARGON2) as env:
        clock = FakeClock()
        generator = ActivityGenerator(env.iam, env.proxy, clock=clock, seed=7)
        outages = []
        for _ in range(64):
            clock.now += 5.0
            generator.step()
            outages.append(env.proxy.out)
        assert generator.changes == 64
        assert demo_module.MIN_USERS <= len(generator.users) <= demo_module.MAX_USERS
        jobs = env.iam.provisioning.jobs(limit=1000)
        operations = {j.operation for j in jobs}
        assert {Operation.UPSERT_USER, Operation.DEPROVISION_USER} <= operations
        assert {j.target for j in jobs} == {"scim-peer:scim2", "partner-directory:scim2",
                                            "google-workspace:googleapps", "spml-provider:spml",
                                            "salesforce-org:salesforce"}
        # 320 s of fake time: out for 30 s of every 120 s, from 40 s into each cycle
        assert sum(outages) == 18 and outages[-1] is False  # 6 ticks in each of 3 cycles
        generator.stop()
        assert not env.proxy.out
