"""The dashboard: cards per target updated in place, the feed, the live source, pictures.

Pictures read a fixed status source (``tests.tui_helpers.demo_status``) with the timer off,
so every read is one press of ``r``; behaviour tests read the real engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Sparkline, Static

from core.iam import Iam
from core.identity.events import Initiator
from core.idps import IdentityProvider, JitConfig
from core.jit.intake import JitIntake
from core.jit.sandbox import SandboxIdp
from core.provisioning.outbox import Job, JobState, Operation
from tests.conftest import FAST_ARGON2
from tests.provisioning_helpers import connect, drain
from tests.tui_helpers import (
    NOON,
    FixedStatus,
    attempt,
    demo_status,
    settle,
    shown_keys,
    target,
    utc,
)
from tui.app import MwareConsole
from tui.messages import JobAttempted
from tui.screens.dashboard import (
    ActivityFeed,
    DashboardScreen,
    TargetCard,
    ThroughputHistory,
    counts_line,
    summary_line,
)
from tui.screens.jobs import JobsScreen

__all__ = ["utc"]  # the fixture, used by name below

DEPLOYMENT = "~/demo · SQLite mware-iam.db"


def console(iam: Iam, source: Any = None, **kw: Any) -> MwareConsole:
    return MwareConsole(iam, deployment=DEPLOYMENT, workers=False, live=False,
                        status_source=source, **kw)


@pytest.fixture
def quiet_iam(tmp_path: Path) -> Iterator[Iam]:
    with Iam.open(home=str(tmp_path / "home"), argon2=FAST_ARGON2) as iam:
        yield iam


def cards(app: MwareConsole) -> dict[str, TargetCard]:
    screen = app.screen
    assert isinstance(screen, DashboardScreen)
    return screen.cards


def card_text(card: TargetCard) -> str:
    return "\n".join(str(s.content) for s in card.query(Static))


async def read(pilot: Pilot[Any], times: int = 1) -> None:
    for _ in range(times):
        await pilot.press("r")
        await settle(pilot)


# ---------------------------------------------------------------------- behaviour


@pytest.mark.usefixtures("utc")
async def test_cards_and_feed_show_the_source_and_update_in_place(quiet_iam: Iam) -> None:
    source = demo_status()
    app = console(quiet_iam, source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        first = dict(cards(app))
        assert list(first) == ["scim-peer:scim2", "partner-directory:scim2",
                               "legacy-ldap:scim2"]
        partner = first["partner-directory:scim2"]
        assert partner.has_class("-quarantined") and not partner.has_class("-healthy")
        text = card_text(partner)
        assert "✖ QUARANTINED  next probe 12:00:15" in text
        assert "queued 7 · in flight 0 · retry 4" in text and "dead 2" in text
        assert "HTTP 503: Service Unavailable" in text
        assert "○ DISABLED" in card_text(first["legacy-ldap:scim2"])
        summary = str(app.screen.query_one("#dash-summary", Static).content)
        assert summary == "Queue depth 14 · dead 2 · targets: 1 healthy, 1 quarantined, " \
                          "1 disabled"
        assert app.screen.query_one("#activity-pane").border_subtitle == "workers: elsewhere"

        feed = app.screen.query_one(ActivityFeed)
        assert shown_keys(feed) == ["5", "4", "3", "2", "1"]  # newest first
        rows_before = dict(feed.rows)

        await read(pilot, 6)
        assert cards(app) == first  # the same card objects: updated, never rebuilt
        assert all(cards(app)[k] is first[k] for k in first)
        assert dict(feed.rows) == rows_before
        peer = first["scim-peer:scim2"]
        assert "42/min" in card_text(peer)
        spark = peer.query_one(Sparkline).data
        assert spark is not None and list(spark)[-7:] == [0, 6, 18, 30, 24, 36, 42]
        assert source.reads == 7


async def test_targets_come_and_go_and_the_feed_keeps_its_rows(quiet_iam: Iam) -> None:
    one = [target("a:scim2")]
    two = [target("a:scim2"), target("b:scim2", "retrying", retrying=1)]
    old, new = attempt(1, "a:scim2", "PRIMARY/x"), attempt(2, "b:scim2", "PRIMARY/y")
    source = FixedStatus([(one, [old]), (two, [new, old]), (one, [new])])
    app = console(quiet_iam, source)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        a_card = cards(app)["a:scim2"]
        feed = app.screen.query_one(ActivityFeed)
        await read(pilot)
        assert list(cards(app)) == ["a:scim2", "b:scim2"]
        assert cards(app)["b:scim2"].has_class("-retrying")
        assert shown_keys(feed) == ["2", "1"]
        await read(pilot)
        assert list(cards(app)) == ["a:scim2"] and cards(app)["a:scim2"] is a_card
        assert shown_keys(feed) == ["2"]
        assert not app.screen.query_one("#no-targets").display


async def test_the_feed_shows_jit_logins_from_the_audit(quiet_iam: Iam) -> None:
    sso = SandboxIdp.create()
    quiet_iam.save_idp(Initiator.admin(), IdentityProvider(
        name="corp-sso", federation=sso.federation("oidc", "hr-portal"),
        jit=JitConfig(enabled=True)))
    intake = JitIntake(quiet_iam)

    def login(sub: str, username: str) -> None:
        token = sso.id_token("hr-portal", {"sub": sub, "preferred_username": username})
        intake.login("hr-portal", "corp-sso", {"id_token": token})

    login("s-1", "alice")
    source = FixedStatus([([target("a:scim2")], [attempt(1, "a:scim2", "PRIMARY/x")])])
    app = console(quiet_iam, source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        feed = app.screen.query_one(ActivityFeed)
        first = quiet_iam.audit_log(1, "jit.login")[0].pk
        assert shown_keys(feed) == [f"login:{first}", "1"]  # the login is the newer
        assert [str(cell) for cell in feed.get_row(f"login:{first}")[1:5]] == [
            "corp-sso", "JIT login", "PRIMARY/alice", "created"]
        login("s-1", "alice")
        await read(pilot)
        second = quiet_iam.audit_log(1, "jit.login")[0].pk
        assert shown_keys(feed) == [f"login:{second}", f"login:{first}", "1"]
        assert str(feed.get_row(f"login:{second}")[4]) == "signed in"
        await pilot.press("enter")  # a login has no job: the dashboard stays
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)


async def test_no_target_says_so(quiet_iam: Iam) -> None:
    app = console(quiet_iam)  # the engine itself: a fresh deployment has no target
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.screen.query_one("#no-targets").display
        summary = str(app.screen.query_one("#dash-summary", Static).content)
        assert summary == "Queue depth 0 · dead 0 · targets: none"


async def test_an_attempt_of_the_console_workers_reads_at_once(quiet_iam: Iam) -> None:
    source = demo_status()
    app = console(quiet_iam, source)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        reads = source.reads
        job = Job(1, "scim-peer:scim2", Operation.UPSERT_USER, "user", "PRIMARY", "id",
                  "PRIMARY/alice", {}, JobState.SUCCEEDED, 1, NOON, "resident", False, False,
                  None, 201, NOON, NOON)
        app.post_message(JobAttempted(job, JobState.SUCCEEDED))
        await settle(pilot)
        assert source.reads == reads + 1


async def test_pause_stops_the_live_refresh_and_enter_opens_the_job(
        quiet_iam: Iam, admin: Initiator, scim_peer: str) -> None:
    connect(quiet_iam, scim_peer)
    quiet_iam.identity.add_user(admin, "alice")
    await asyncio.to_thread(drain, quiet_iam)  # drain runs its own event loop
    app = MwareConsole(quiet_iam, deployment=DEPLOYMENT, workers=False)  # live: timer on
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        await pilot.press("p")
        await settle(pilot)
        assert screen.paused and "PAUSED" in str(screen.query_one("#dash-summary",
                                                                  Static).content)
        await pilot.press("p")
        assert not screen.paused
        feed = screen.query_one(ActivityFeed)
        assert feed.row_count == 1
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, JobsScreen)
        assert app.screen.detail is not None
        assert app.screen.detail.job.name == "PRIMARY/alice"


def test_throughput_is_sampled_at_most_every_period() -> None:
    history = ThroughputHistory(every=5.0, keep=4)
    for now, rate in ((0.0, 1), (1.0, 2), (5.0, 3), (9.0, 4), (10.0, 5), (15.0, 6), (20.0, 7)):
        history.offer([target("t", per_minute=rate)], now)
    assert history.series("t") == [0.0, 3, 5, 6, 7]  # led by zero, the last four samples
    assert history.series("unknown") == [0.0] * 5


def test_lines_read_without_colour() -> None:
    s = target("t", queued=1, in_flight=2, retrying=3, succeeded=4000, failed=5, dead=6)
    assert counts_line(s) == ("queued 1 · in flight 2 · retry 3\n"
                              "ok 4,000 · failed 5 · dead 6")
    assert summary_line([s, target("u", "quarantined", queued=10)]) == (
        "Queue depth 16 · dead 6 · targets: 1 healthy, 1 quarantined")


# ---------------------------------------------------------------------- pictures


async def _history(pilot: Pilot[Any]) -> None:
    await settle(pilot)
    await read(pilot, 6)


@pytest.mark.usefixtures("utc")
def test_snapshot_dashboard_80x24(snap_compare: Any, quiet_iam: Iam) -> None:
    assert snap_compare(console(quiet_iam, demo_status()), terminal_size=(80, 24),
                        run_before=_history)


@pytest.mark.usefixtures("utc")
def test_snapshot_dashboard_120x40(snap_compare: Any, quiet_iam: Iam) -> None:
    assert snap_compare(console(quiet_iam, demo_status()), terminal_size=(120, 40),
                        run_before=_history)


@pytest.mark.usefixtures("utc")
def test_snapshot_dashboard_no_color_80x24(snap_compare: Any, quiet_iam: Iam,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = console(quiet_iam, demo_status(), read_only=True)
    assert app.no_color
    assert snap_compare(app, terminal_size=(80, 24), run_before=_history)


@pytest.mark.usefixtures("utc")
def test_snapshot_dashboard_16_colours_120x40(snap_compare: Any, quiet_iam: Iam) -> None:
    app = console(quiet_iam, demo_status(), theme="ansi-dark")
    assert snap_compare(app, terminal_size=(120, 40), run_before=_history)


async def test_the_palette_lists_the_operators_and_who_is_connected(quiet_iam: Iam) -> None:
    import asyncssh
    from textual.message import Message

    from core.configfile.operators import add
    from core.operators import SESSIONS_FILE, Operator, path_in
    from tests.test_tui_shell import palette
    from tests.tui_helpers import notices, until

    def key(comment: str) -> str:
        k = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
        return f"{k.strip()} {comment}"

    add(path_in(quiet_iam.home), Operator("alice", (key("alice@laptop"), key("alice@desk"))))
    add(path_in(quiet_iam.home), Operator("bob", (key("bob@b"),), read_only=True))
    (quiet_iam.home.path / SESSIONS_FILE).write_text('[{"operator": "alice"}]')
    seen: list[Message] = []
    async with console(quiet_iam, FixedStatus([([], [])])).run_test(
            size=(120, 40), message_hook=seen.append) as pilot:
        await settle(pilot)
        await palette(pilot, "show the operators")
        shown = await until(pilot, lambda: [n for n in notices(seen) if "bob" in n],
                            "the operators to be listed")
    assert shown[0].splitlines()[:2] == ["alice (connected): alice@laptop, alice@desk",
                                         "bob (read-only): bob@b"]
