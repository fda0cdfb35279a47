"""The keys of an administrator's first hour: ``j``/``k``/``g``/``G`` in every list, ``/``
filtering as one types (one query per burst of keys), ``escape`` back to the previous
section, and the ``:`` jump prompt; on the deployment ``tests/test_tui_screens.py`` seeds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static
from textual.widgets._footer import FooterKey

from core.iam import Iam
from core.identity.events import Face, Initiator
from core.names import parse_name
from core.provisioning.outbox import JobState
from tests.conftest import FAST_ARGON2
from tests.provisioning_helpers import connect, drain
from tests.test_tui_jobs import queue_iam
from tests.test_tui_screens import console, demo, press, still
from tests.tui_helpers import settle, shown_keys, until
from tui.app import MwareConsole
from tui.jump import Jump, JumpError, JumpPrompt, parse_jump
from tui.messages import JobAttempted
from tui.screens.apps import ApplicationsScreen
from tui.screens.base import ListDetailScreen
from tui.screens.jobs import JobFilter, JobsScreen, JobsTable
from tui.screens.roles import RolesScreen
from tui.screens.users import UsersScreen
from tui.widgets.chrome import FittingFooter
from tui.widgets.filter_bar import FilterBar, FilterInput
from tui.widgets.form_screen import FormScreen
from tui.widgets.list_keys import MovingTable
from tui.widgets.tables import ListTable
from tui.widgets.user_detail import UserDetail
from tui.widgets.users_table import UsersTable

__all__ = ["demo", "queue_iam"]

ADMIN = Initiator("os:admin", Face.CLI)
#: The seeded users of PRIMARY, in the order the users screen lists them.
PRIMARY_USERS = [
    "PRIMARY/alice",
    "PRIMARY/amir",
    "PRIMARY/bob",
    "PRIMARY/carol",
    "PRIMARY/dave",
    "PRIMARY/erin",
]


def cursor_key(table: Any) -> str | None:
    return shown_keys(table)[table.cursor_row]


# ---------------------------------------------------------------------- j k g G
async def test_j_k_g_G_move_in_the_users_list(demo: Iam) -> None:
    app = console(demo, "users")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(UsersTable)
        assert shown_keys(table) == PRIMARY_USERS
        await press(pilot, "j", "j")
        assert cursor_key(table) == "PRIMARY/bob"
        await press(pilot, "k")
        assert cursor_key(table) == "PRIMARY/amir"
        await press(pilot, "G")
        assert cursor_key(table) == "PRIMARY/erin"
        await press(pilot, "g")
        assert cursor_key(table) == "PRIMARY/alice"
        assert isinstance(app.screen, UsersScreen)  # g no longer opens the roles form


@pytest.mark.parametrize("screen", ["users", "roles", "idps"])
async def test_a_move_keeps_the_footer_unless_its_keys_change(demo: Iam, screen: str) -> None:
    """Each move of the cursor refreshes the screen's bindings (a row may enable or disable
    keys); the footer keeps its key widgets while they would draw the same keys, and is
    built anew when they change (the filter opened: escape's "Clear filter" comes)."""
    app = console(demo, screen)
    async with app.run_test(size=(200, 40)) as pilot:
        await settle(pilot)
        table = app.screen.focused
        assert isinstance(table, DataTable)
        footer = app.screen.query_one(FittingFooter)
        keys = list(footer.query(FooterKey))
        await press(pilot, "j")
        assert table.cursor_row == 1
        assert list(footer.query(FooterKey)) == keys
        await press(pilot, "slash")
        assert "Clear filter" in {key.description for key in footer.query(FooterKey)}


@pytest.mark.parametrize("screen", ["roles", "apps", "userstores", "idps", "audit"])
async def test_j_and_G_move_in_every_list_screen(demo: Iam, screen: str) -> None:
    app = console(demo, screen)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        table = app.screen.focused
        assert isinstance(table, ListTable) and table.row_count >= 2
        await press(pilot, "j")
        assert table.cursor_row == 1
        await press(pilot, "G")
        assert table.cursor_row == table.row_count - 1
        await press(pilot, "g")
        assert table.cursor_row == 0
        assert not isinstance(app.screen, FormScreen)


async def test_j_k_g_G_move_in_the_jobs_list(queue_iam: Iam) -> None:
    app = console(queue_iam, "jobs")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(JobsTable)
        assert app.screen.focused is table and table.row_count == 3
        await press(pilot, "G")
        assert table.cursor_row == 2
        await press(pilot, "k")
        assert table.cursor_row == 1
        await press(pilot, "g", "j")
        assert table.cursor_row == 1


async def test_the_old_meanings_of_g_and_k_moved_to_o_and_x(demo: Iam) -> None:
    app = console(demo, "users")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "o")
        pick = app.screen
        assert isinstance(pick, FormScreen)
        assert pick.form.collect().values["Internal/auditors"] is True  # alice's roles
    app = console(demo, "apps")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        assert app.screen.active_bindings["k"].binding.id == "list.up"
        keys = {b.id: b.key for b in ApplicationsScreen.BINDINGS if isinstance(b, Binding)}
        assert keys["apps.revoke"] == "x"


# ---------------------------------------------------------------------- / as you type
def counting(monkeypatch: pytest.MonkeyPatch, obj: object, name: str) -> list[tuple[Any, ...]]:
    """Record each call of ``obj.name`` (the real method still runs)."""
    calls: list[tuple[Any, ...]] = []
    real: Callable[..., Any] = getattr(obj, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, spy)
    return calls


async def test_the_users_filter_applies_as_one_types_with_one_query_per_burst(
    demo: Iam, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = console(demo, "users")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        calls = counting(monkeypatch, demo.identity, "list_users")
        # A pause longer than the 250 ms, so that a loaded machine still types a burst.
        monkeypatch.setattr(FilterInput, "DEBOUNCE", 1.0)
        table = app.screen.query_one(UsersTable)
        await pilot.press("slash", "a", "m")  # a burst: quicker than the pause
        await until(pilot, lambda: shown_keys(table) == ["PRIMARY/amir"], "amir alone")
        await settle(pilot)
        assert [c[3] for c in calls] == ["am"]  # one server-side query, with the whole prefix
        assert isinstance(app.screen.focused, FilterInput)  # typing goes on
        await pilot.press("backspace")
        await until(pilot, lambda: len(shown_keys(table)) == 2, "alice and amir")
        await press(pilot, "enter")
        assert app.screen.focused is table
        assert [c[3] for c in calls] == ["am", "a"]  # enter applied what typing had


async def test_a_client_side_filter_applies_as_one_types(demo: Iam) -> None:
    app = console(demo, "roles")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#roles", ListTable)
        assert len(shown_keys(table)) > 1
        await pilot.press("slash", *"eng")
        await until(pilot, lambda: shown_keys(table) == ["PRIMARY/engineers"], "engineers alone")
        await press(pilot, "escape")  # clears the filter, stays on the screen
        assert isinstance(app.screen, RolesScreen) and len(shown_keys(table)) > 1
        assert not app.screen.query_one(FilterBar).display


async def test_the_jobs_name_filter_applies_as_one_types(queue_iam: Iam) -> None:
    app = console(queue_iam, "jobs")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        table = screen.query_one(JobsTable)
        assert table.row_count == 3
        await press(pilot, "slash")
        await pilot.press(*"bo")  # a part of the name is enough
        await until(pilot, lambda: screen.filter.name == "bo", "filtered")
        await settle(pilot)
        assert [j.name for j in table.jobs.values()] == ["PRIMARY/bob"]


# ---------------------------------------------------------------------- escape
async def test_escape_goes_back_through_the_sections_seen(demo: Iam) -> None:
    app = console(demo, "users")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "4")
        await press(pilot, "7")
        assert isinstance(app.screen, ApplicationsScreen)
        await press(pilot, "escape")
        assert isinstance(app.screen, RolesScreen)
        await press(pilot, "slash", "x")  # an open filter: escape closes it first
        await press(pilot, "escape")
        assert isinstance(app.screen, RolesScreen)
        await press(pilot, "escape")
        assert isinstance(app.screen, UsersScreen)
        await press(pilot, "escape")  # nothing before: stays
        assert isinstance(app.screen, UsersScreen)


async def test_escape_closes_a_dialog_before_going_back(demo: Iam) -> None:
    app = console(demo, "users")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "4", "a")
        assert isinstance(app.screen, FormScreen)
        await press(pilot, "escape")
        assert isinstance(app.screen, RolesScreen)


# ---------------------------------------------------------------------- : jump
def test_a_jump_is_checked_before_anything_moves() -> None:
    targets = ["corp-scim:scim2", "multi:scim2", "multi:google"]
    assert parse_jump(":users alice", targets) == Jump("users", "alice")
    assert parse_jump("jobs DEAD", targets) == Jump("jobs", "dead")
    assert parse_jump("target corp-scim", targets) == Jump("target", "corp-scim:scim2")
    assert parse_jump("target multi:google", targets) == Jump("target", "multi:google")
    assert parse_jump("Roles", targets) == Jump("roles")
    for text, says in [
        ("", "Type where to go"),
        ("usr", "Unknown command :usr. Known: "),
        ("roles admins", "takes nothing after it"),
        ("jobs dead now", "takes one word"),
        ("jobs sleeping", "No job state 'sleeping'. States: pending"),
        ("target", "Which target?"),
        ("target multi", "several targets"),
        ("target nowhere", "No target 'nowhere'. Targets: corp-scim:scim2"),
    ]:
        with pytest.raises(JumpError, match=says):
            parse_jump(text, targets)


async def jump(pilot: Pilot[Any], text: str) -> None:
    await press(pilot, "colon")
    assert isinstance(pilot.app.screen, JumpPrompt)
    await pilot.press(*text)
    await press(pilot, "enter")


async def test_jump_to_a_user(demo: Iam) -> None:
    app = console(demo, "dashboard")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await jump(pilot, "users carol")
        await settle(pilot)
        assert isinstance(app.screen, UsersScreen)
        assert app.screen.highlighted is not None
        assert app.screen.highlighted.qualified_name == "PRIMARY/carol"


async def test_jump_to_the_jobs_of_a_state_and_of_a_target(queue_iam: Iam) -> None:
    app = console(queue_iam, "users")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await jump(pilot, "jobs dead")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        assert [j.name for j in screen.query_one(JobsTable).jobs.values()] == ["PRIMARY/alice"]
        assert screen.query_one("#filter-state", Select).value == JobState.DEAD.value
        await jump(pilot, "target nowhere")
        await settle(pilot)
        assert screen.filter == JobFilter(target="nowhere:scim2")
        assert screen.query_one("#filter-target", Select).value == "nowhere:scim2"
        assert len(screen.query_one(JobsTable).jobs) == 3


async def test_a_bad_jump_says_why_and_stays_open(demo: Iam) -> None:
    app = console(demo, "users")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await jump(pilot, "usrs")
        prompt = app.screen
        assert isinstance(prompt, JumpPrompt)
        message = str(prompt.query_one("#jump-message", Static).content)
        assert message.startswith("Unknown command :usrs. Known: :dashboard :jobs :users")
        await press(pilot, "escape")
        assert isinstance(app.screen, UsersScreen)


async def test_the_jump_prompt_suggests_and_tab_completes(demo: Iam) -> None:
    app = console(demo, "users")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "colon")
        field = app.screen.query_one(Input)
        await pilot.press(*"jobs de")
        await settle(pilot)
        await press(pilot, "tab")
        assert field.value == "jobs dead"
        field.value = ""
        await pilot.press(*"users ca")
        await settle(pilot)
        await press(pilot, "tab")
        assert field.value == "users carol"  # read from the engine


async def test_a_read_only_console_still_refuses_writes_after_a_jump(demo: Iam) -> None:
    app = console(demo, "dashboard", read_only=True)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await jump(pilot, "users bob")
        await settle(pilot)
        await press(pilot, "d")
        assert isinstance(app.screen, UsersScreen)  # no confirmation: refused
    assert demo.identity.get_user("PRIMARY/bob") is not None


# ---------------------------------------------------------------------- the live user detail
@pytest.fixture
def peer_iam(tmp_path: Path, scim_peer: str) -> Iterator[Iam]:
    """The resident application provisions to a real SCIM peer; alice and bob are waiting
    (their jobs are pending: no worker runs until the test drains the queue)."""
    with Iam.open(home=str(tmp_path / "home"), argon2=FAST_ARGON2) as iam:
        connect(iam, scim_peer)
        for name, given in (("alice", "Alice"), ("bob", "Bob")):
            iam.identity.add_user(
                ADMIN,
                name,
                None,
                {
                    "givenname": given,
                    "lastname": "Example",
                    "displayname": f"{given} Example",
                    "emailaddress": f"{name}@example.com",
                    "telephone": "+1 555 0100",
                },
            )
        yield iam


def detail_text(app: MwareConsole) -> str:
    return str(app.screen.query_one("#detail-body", Static).content)


async def test_the_user_detail_follows_the_consoles_own_attempts(peer_iam: Iam) -> None:
    app = console(peer_iam, "users")  # no timer: only the attempt's message refreshes it
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "j")  # bob
        assert "Provisioned to: no target" in detail_text(app)
        await asyncio.to_thread(drain, peer_iam)
        await settle(pilot)
        assert "Provisioned to: no target" in detail_text(app)  # nothing said it changed
        job = peer_iam.provisioning.jobs(entity="PRIMARY/bob")[0]
        app.post_message(JobAttempted(job, job.state))  # what the console's pool posts
        await until(pilot, lambda: "\n  peer:scim2  id " in detail_text(app), "bob provisioned")
        assert "succeeded" in detail_text(app)


async def test_the_user_detail_reads_workers_elsewhere_and_keeps_cursor_and_scroll(
    peer_iam: Iam,
) -> None:
    app = MwareConsole(peer_iam, deployment="demo", workers=False, live=True, screen="users")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "j")  # bob
        detail = app.screen.query_one(UserDetail)
        detail.scroll_end(animate=False)
        await pilot.pause()
        scrolled = detail.scroll_y
        assert scrolled > 0 and "Provisioned to: no target" in detail_text(app)
        await asyncio.to_thread(drain, peer_iam)  # as `mware-iam serve`'s workers would
        await until(pilot, lambda: "\n  peer:scim2  id " in detail_text(app), "bob provisioned")
        assert detail.scroll_y == scrolled
        assert app.screen.query_one(UsersTable).cursor_row == 1


def test_snapshot_a_bad_jump_80x24(snap_compare: Any, demo: Iam) -> None:
    async def mistype(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await jump(pilot, "usrs")
        await still(pilot)

    assert snap_compare(console(demo, "users"), terminal_size=(80, 24), run_before=mistype)


async def hold(pilot: Pilot[Any], monkeypatch: pytest.MonkeyPatch, *keys: str) -> None:
    """Press ``keys`` as a key held down does: sooner than the cursor rests between them
    (``REST_SECONDS`` made longer than the pause, so that a loaded machine still presses a
    burst)."""
    monkeypatch.setattr(MovingTable, "REST_SECONDS", 1.0)
    await pilot.press(*keys)


async def test_the_roles_screen_reads_only_the_members_of_the_role_the_cursor_rests_on(
    demo: Iam, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = console(demo, "roles")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RolesScreen) and screen.role_table.row_count >= 3
        reads = counting(monkeypatch, demo.identity, "member_page")
        await hold(pilot, monkeypatch, "j", "j")  # a key held down: a role passed over
        assert reads == []
        await settle(pilot)
        rested = screen.highlighted_role
        assert rested == shown_keys(screen.role_table)[2]
        assert [args[0] for args in reads] == [rested]  # the one it rests on, once
        assert screen.query_one("#members-pane").border_title == f"Members of {rested}"


@pytest.mark.parametrize("section", ["apps", "userstores", "idps", "audit"])
async def test_a_detail_pane_shows_only_the_row_the_cursor_rests_on(
    demo: Iam, monkeypatch: pytest.MonkeyPatch, section: str
) -> None:
    app = console(demo, section)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ListDetailScreen) and screen.table.row_count >= 2
        shown = counting(monkeypatch, screen, "show_detail")
        await hold(pilot, monkeypatch, "j", "k")  # the second row passed over, back on the first
        assert shown == []
        await settle(pilot)
        assert screen.table.cursor_row == 0
        assert shown == [()]  # the row it rests on, once


async def test_the_user_detail_reads_only_the_user_the_cursor_rests_on(
    demo: Iam, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = console(demo, "users")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(UsersTable)
        reads = counting(monkeypatch, demo.identity, "roles_of")
        await hold(pilot, monkeypatch, "j", "j", "j")  # a key held down: three users passed over
        assert reads == []  # nothing read while the cursor moves
        await settle(pilot)
        rested = cursor_key(table)
        assert rested == PRIMARY_USERS[3]
        assert reads == [(rested,)]  # the one it rests on, once
        assert parse_name(rested).name in detail_text(app)
