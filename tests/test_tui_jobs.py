"""The provisioning jobs screen: filters, the attempt detail (redacted), retry and cancel.

The deterministic deployment provisions to a target nobody listens on (127.0.0.1:9), with
one attempt per job: alice's job is dead after its attempt, bob's is pending, carol's is
cancelled; ``freeze_jobs`` pins their times for the pictures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Input, Select, Static

from core.iam import Iam
from core.identity.events import Initiator
from core.provisioning.outbox import JobState
from tests.conftest import FAST_ARGON2
from tests.provisioning_helpers import connect, drain
from tests.tui_helpers import freeze_jobs, notices, settle, shown_keys, until, utc
from tui.app import MwareConsole
from tui.screens.jobs import JobsScreen, JobsTable, render_job
from tui.widgets.confirm import ConfirmScreen

__all__ = ["utc"]

DEPLOYMENT = "~/demo · SQLite mware-iam.db"
NOWHERE = "http://127.0.0.1:9/v2"  # the discard port: nobody answers


@pytest.fixture
def queue_iam(tmp_path: Path, admin: Initiator) -> Iterator[Iam]:
    with Iam.open(home=str(tmp_path / "home"), argon2=FAST_ARGON2) as iam:
        connect(iam, NOWHERE, idp="nowhere", **{"max-attempts": 1})
        iam.identity.add_user(admin, "alice", None, {"givenname": "Alice",
                                                     "lastname": "Adams"})
        drain(iam)
        iam.identity.add_user(admin, "bob")
        iam.identity.add_user(admin, "carol")
        carol = iam.provisioning.jobs(entity="PRIMARY/carol")[0]
        iam.provisioning.cancel(admin, carol.pk)
        freeze_jobs(iam)
        yield iam


def console(iam: Iam, read_only: bool = False) -> MwareConsole:
    return MwareConsole(iam, read_only=read_only, deployment=DEPLOYMENT, workers=False,
                        live=False, screen="jobs")


def jobs_screen(app: MwareConsole) -> JobsScreen:
    screen = app.screen
    assert isinstance(screen, JobsScreen)
    return screen


def names(app: MwareConsole) -> list[str]:
    table = app.screen.query_one(JobsTable)
    return [table.jobs[str(key)].name for key in shown_keys(table)]


def state_of(iam: Iam, user: str) -> JobState:
    return iam.provisioning.jobs(entity=user)[0].state


async def highlight(pilot: Pilot[Any], user: str) -> None:
    table = pilot.app.screen.query_one(JobsTable)
    for key, job in table.jobs.items():
        if job.name == user:
            table.move_cursor(row=table.get_row_index(key))
    await settle(pilot)


# ---------------------------------------------------------------------- behaviour


async def test_filters_by_state_target_and_name(queue_iam: Iam) -> None:
    app = console(queue_iam)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert names(app) == ["PRIMARY/carol", "PRIMARY/bob", "PRIMARY/alice"]
        screen = jobs_screen(app)

        screen.query_one("#filter-state", Select).value = "dead"
        await settle(pilot)
        assert names(app) == ["PRIMARY/alice"]
        assert str(screen.query_one("#jobs-status", Static).content) == \
            "1 job (state dead)"

        screen.query_one("#filter-state", Select).clear()
        target = screen.query_one("#filter-target", Select)
        target.value = "nowhere:scim2"
        await settle(pilot)
        assert len(names(app)) == 3

        await pilot.press("slash", *"bob", "enter")
        await settle(pilot)
        assert screen.filter.name == "bob"
        assert names(app) == ["PRIMARY/bob"]

        await pilot.press("escape", "slash", *"ARO")  # part of a name, in any case
        await until(pilot, lambda: names(app) == ["PRIMARY/carol"], "carol alone, as typed")
        await pilot.press("enter", "slash", "ctrl+u", *"primary/_", "enter")
        await settle(pilot)  # "_" is itself, not LIKE's any-character
        assert names(app) == []

        await pilot.press("escape")
        await settle(pilot)
        assert names(app) == ["PRIMARY/carol", "PRIMARY/bob", "PRIMARY/alice"]
        assert screen.query_one("#filter-name", Input).value == ""


async def test_the_detail_shows_every_attempt_and_its_request(queue_iam: Iam) -> None:
    app = console(queue_iam)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await highlight(pilot, "PRIMARY/alice")
        screen = jobs_screen(app)
        assert screen.detail is not None and screen.detail.job.name == "PRIMARY/alice"
        text = str(screen.query_one("#job-body", Static).content)
        assert "state DEAD · 1 attempt(s)" in text
        assert "Attempt 1 · 12:00:01 · dead" in text
        assert "last error:" in text


async def test_requests_and_payloads_never_show_a_password(tmp_path: Path, admin: Initiator,
                                                           scim_peer: str) -> None:
    with Iam.open(home=str(tmp_path / "home"), argon2=FAST_ARGON2) as iam:
        connect(iam, scim_peer, **{"scim2-enable-pwd-provisioning": True})
        iam.identity.add_user(admin, "alice", "Secret-Sauce-42")
        await asyncio.to_thread(drain, iam)
        job = iam.provisioning.jobs(entity="PRIMARY/alice")[0]
        shown = str(render_job(*iam.provisioning.job(job.pk)))
        assert "POST" in shown and '"userName": "alice"' in shown
        assert "Secret-Sauce-42" not in shown
        assert '"password": "********"' in shown


async def test_retry_and_cancel_ask_first(queue_iam: Iam) -> None:
    seen: list[Message] = []
    app = console(queue_iam)
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await settle(pilot)
        await highlight(pilot, "PRIMARY/alice")
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # declined: nothing happens
        await settle(pilot)
        assert state_of(queue_iam, "PRIMARY/alice") is JobState.DEAD

        await pilot.press("r")
        await pilot.press("y")
        await settle(pilot)
        assert state_of(queue_iam, "PRIMARY/alice") is JobState.PENDING
        assert "Job 1 will run again now." in notices(seen)

        await highlight(pilot, "PRIMARY/bob")
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")  # the focused button is Cancel: a stray enter keeps it
        await settle(pilot)
        assert state_of(queue_iam, "PRIMARY/bob") is JobState.PENDING
        await pilot.press("c", "y")
        await settle(pilot)
        assert state_of(queue_iam, "PRIMARY/bob") is JobState.CANCELLED
        table = app.screen.query_one(JobsTable)
        bob = next(j for j in table.jobs.values() if j.name == "PRIMARY/bob")
        assert bob.state is JobState.CANCELLED  # the row was updated in place


async def test_a_refused_retry_reads_as_the_engine_says(queue_iam: Iam) -> None:
    seen: list[Message] = []
    app = console(queue_iam)
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await settle(pilot)
        await highlight(pilot, "PRIMARY/bob")  # pending: nothing to retry
        await pilot.press("r", "y")
        await settle(pilot)
        assert "job 2 is pending; only dead, retrying or cancelled jobs can be retried" \
            in notices(seen)
        assert app.return_code is None


async def test_a_read_only_session_refuses_retry_and_cancel(queue_iam: Iam) -> None:
    seen: list[Message] = []
    app = console(queue_iam, read_only=True)
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await settle(pilot)
        await highlight(pilot, "PRIMARY/alice")
        await pilot.press("r")
        assert not isinstance(app.screen, ConfirmScreen)
        await highlight(pilot, "PRIMARY/bob")
        await pilot.press("c")
        assert not isinstance(app.screen, ConfirmScreen)
        assert notices(seen) == ["Read-only session: cannot retry job 1.",
                                 "Read-only session: cannot cancel job 2."]
        assert state_of(queue_iam, "PRIMARY/alice") is JobState.DEAD
        assert state_of(queue_iam, "PRIMARY/bob") is JobState.PENDING


async def test_show_job_clears_a_filter_that_hides_it(queue_iam: Iam) -> None:
    app = console(queue_iam)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = jobs_screen(app)
        screen.query_one("#filter-state", Select).value = "cancelled"
        await settle(pilot)
        alice = queue_iam.provisioning.jobs(entity="PRIMARY/alice")[0]
        screen.show_job(alice.pk)
        await settle(pilot)
        assert len(names(app)) == 3
        highlighted = app.screen.query_one(JobsTable).highlighted
        assert highlighted is not None and highlighted.pk == alice.pk


# ---------------------------------------------------------------------- pictures


async def _on_alice(pilot: Pilot[Any]) -> None:
    await settle(pilot)
    await highlight(pilot, "PRIMARY/alice")


@pytest.mark.usefixtures("utc")
def test_snapshot_jobs_80x24(snap_compare: Any, queue_iam: Iam) -> None:
    assert snap_compare(console(queue_iam), terminal_size=(80, 24), run_before=_on_alice)


@pytest.mark.usefixtures("utc")
def test_snapshot_jobs_120x40(snap_compare: Any, queue_iam: Iam) -> None:
    assert snap_compare(console(queue_iam), terminal_size=(120, 40), run_before=_on_alice)


@pytest.mark.usefixtures("utc")
def test_snapshot_retry_confirmation_80x24(snap_compare: Any, queue_iam: Iam) -> None:
    async def ask(pilot: Pilot[Any]) -> None:
        await _on_alice(pilot)
        await pilot.press("r")
        await settle(pilot)

    assert snap_compare(console(queue_iam), terminal_size=(80, 24), run_before=ask)
