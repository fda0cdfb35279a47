"""The console on a real SQLite deployment: state through Pilot, pictures through snapshots.

Snapshots are deterministic: fixed users and claims, a pinned deployment line (no temporary
path), no clock, and every worker finished before the picture is taken.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Static
from textual.worker import WorkerState

from core.apps import Application
from core.errors import NotFound
from core.iam import Iam
from core.identity.events import Initiator
from core.identity.service import ImportRow
from core.idps import IdentityProvider
from tests.conftest import FAST_ARGON2
from tests.servers import database_url
from tui.app import MwareConsole
from tui.engine_errors import describe_error
from tui.messages import EngineFailed
from tui.screens.help import HelpScreen
from tui.screens.users import UsersScreen
from tui.widgets.header import describe_deployment
from tui.widgets.user_detail import UserDetail, render_user, unwrapped_lines
from tui.widgets.users_table import PageRequest, UsersTable

DEPLOYMENT = "~/demo · SQLite mware-iam.db"


def users_console(iam: Iam, read_only: bool = False, **kw: Any) -> MwareConsole:
    """The console opened on the Users screen, without provisioning workers or timers."""
    return MwareConsole(iam, read_only=read_only, deployment=DEPLOYMENT, workers=False,
                        live=False, screen="users", **kw)

#: username, given name, last name (display name and email follow from them).
DEMO_USERS = (
    ("alice", "Alice", "Adams"), ("alina", "Alina", "Berg"), ("amir", "Amir", "Haddad"),
    ("bob", "Bob", "Brown"), ("carol", "Carol", "Chen"), ("dave", "Dave", "Dubois"),
    ("erin", "Erin", "Evans"), ("frank", "Frank", "Fischer"), ("grace", "Grace", "Hopper"),
    ("heidi", "Heidi", "Schmidt"), ("ivan", "Ivan", "Petrov"), ("judy", "Judy", "Moreau"),
)


def _claims(username: str, given: str, last: str) -> dict[str, str]:
    return {"givenname": given, "lastname": last, "displayname": f"{given} {last}",
            "emailaddress": f"{username}@example.com"}


@pytest.fixture
def demo_iam(tmp_path: Path, admin: Initiator) -> Iterator[Iam]:
    """Twelve users with claims, two roles, a second userstore, an IdP and an application."""
    with Iam.open(home=str(tmp_path / "home"), argon2=FAST_ARGON2) as iam:
        iam.save_userstore(admin, "PARTNERS", "sql", {"url": f"sqlite:///{tmp_path}/p.db"},
                           description="Partner accounts")
        iam.save_idp(admin, IdentityProvider("corp-scim", "Corporate SCIM directory"))
        iam.save_app(admin, Application("hr-portal", "Human resources portal"))
        for username, given, last in DEMO_USERS:
            iam.identity.add_user(admin, username, None, _claims(username, given, last))
        iam.identity.add_role(admin, "admins", ["alice", "bob"])
        iam.identity.add_role(admin, "Internal/auditors", ["alice"])
        yield iam


@pytest.fixture
def many_iam(sqlite_iam: Iam, admin: Initiator) -> Iam:
    """120 users, user000 .. user119 (more than two pages of 50)."""
    rows = [ImportRow(i, f"user{i:03d}", None, _claims(f"user{i:03d}", "Given", f"No{i}"))
            for i in range(120)]
    report = sqlite_iam.identity.import_users(admin, rows)
    assert report.imported == 120 and not report.errors
    return sqlite_iam


async def settle(pilot: Pilot[None]) -> None:
    """Wait until no worker runs and every message the workers posted was handled."""
    app = pilot.app
    for _ in range(50):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in app.workers):
            return
    raise AssertionError("the console's workers never settled")


def keys(table: UsersTable) -> list[str | None]:
    return [row.value for row in table.rows]


def detail_text(app: MwareConsole) -> str:
    return str(app.screen.query_one("#detail-body", Static).content)


# ---------------------------------------------------------------------- behaviour


async def test_first_page_only_and_the_next_page_at_the_end(many_iam: Iam) -> None:
    app = users_console(many_iam, page_size=50)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(UsersTable)
        assert keys(table) == [f"PRIMARY/user{i:03d}" for i in range(50)]
        assert "50 of 120 users" in str(app.screen.query_one("#users-status", Static).content)

        for _ in range(20):  # page down until the cursor reaches the last row
            await pilot.press("pagedown")
            await settle(pilot)
            if table.row_count > 50:
                break
        assert keys(table) == [f"PRIMARY/user{i:03d}" for i in range(100)]

        await pilot.press("end")
        await settle(pilot)
        assert keys(table) == [f"PRIMARY/user{i:03d}" for i in range(120)]
        assert not table.has_more

        await pilot.press("end")  # the last page: nothing more is asked for
        await settle(pilot)
        assert table.row_count == 120
        assert table.cursor_row == 119
        assert str(app.screen.query_one("#users-status", Static).content) == "120 users"


async def test_slash_filters_by_username_prefix_and_escape_clears(demo_iam: Iam) -> None:
    app = users_console(demo_iam)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(UsersTable)
        assert table.row_count == len(DEMO_USERS)

        await pilot.press("slash", "a", "l", "enter")
        await settle(pilot)
        assert keys(table) == ["PRIMARY/alice", "PRIMARY/alina"]
        assert table.prefix == "al" and table.has_focus

        await pilot.press("escape")
        await settle(pilot)
        assert table.prefix is None and table.row_count == len(DEMO_USERS)
        assert not app.screen.query_one("#filter-bar").display


async def test_typing_in_the_filter_never_triggers_bindings(demo_iam: Iam) -> None:
    app = users_console(demo_iam)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("slash", "q", "r", "question_mark", "enter")
        await settle(pilot)
        assert app.return_code is None and isinstance(app.screen, UsersScreen)
        assert app.screen.query_one(UsersTable).prefix == "qr?"
        assert app.screen.query_one(UsersTable).row_count == 0
        assert "No users starting with 'qr?'" in str(app.screen.query_one("#users-status",
                                                                       Static).content)


async def test_the_highlighted_user_shows_in_the_detail_pane(demo_iam: Iam) -> None:
    app = users_console(demo_iam)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        detail = app.screen.query_one(UserDetail)
        assert detail.user is not None and detail.user.username == "alice"
        assert "alice@example.com" in detail_text(app)
        assert "Roles (2): Internal/auditors, PRIMARY/admins" in detail_text(app)

        await pilot.press("down", "down", "down")
        await settle(pilot)
        assert detail.user is not None and detail.user.username == "bob"
        text = detail_text(app)
        assert "bob@example.com" in text and "alice@example.com" not in text
        assert "displayname   Bob Brown" in text
        assert "Roles (1): PRIMARY/admins" in text


async def test_the_detail_pane_fits_each_user_it_shows(demo_iam: Iam) -> None:
    """A user of as many lines is repainted without a layout: the pane must still fit the
    text of every user as they come (more lines, fewer, wrapped at 80 columns)."""
    app = users_console(demo_iam)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        body = app.screen.query_one("#detail-body", Static)
        for _ in range(demo_iam.identity.count_users("PRIMARY")):
            text = app.screen.query_one(UserDetail)
            lines = unwrapped_lines(render_user(text.user, text.roles, text.provisioning,
                                                text.federated), body.content_size.width)
            if lines is not None:
                assert body.size.height == lines, detail_text(app)
            await pilot.press("down")
            await settle(pilot)


def test_unwrapped_lines_counts_lines_that_fit() -> None:
    assert unwrapped_lines(Text("ab\ncd"), 2) == 2
    assert unwrapped_lines(Text("abc\ncd"), 2) is None  # wraps: the height is not known
    assert unwrapped_lines(Text("日本"), 3) is None  # two cells per character
    assert unwrapped_lines(Text("x"), 0) is None


async def test_help_lists_the_bindings_and_q_quits(demo_iam: Iam) -> None:
    app = users_console(demo_iam)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        shown = str(app.screen.query_one("#help-keys", Static).content)
        described = {line.split()[0]: line for line in shown.splitlines() if line.strip()}
        for key, description in (("/", "Filter"), ("r", "Refresh"), ("q", "Quit"),
                                 ("?", "Help"), ("end", "Last user")):
            assert description in described[key]
        assert "esc" not in described  # "Clear filter" only shows while a filter is open
        await pilot.press("q")  # closes the help; does not quit
        assert isinstance(app.screen, UsersScreen) and app.return_code is None
        await pilot.press("q")
        assert app.return_code == 0


async def test_refresh_reads_the_engine_again(demo_iam: Iam, admin: Initiator) -> None:
    app = users_console(demo_iam)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        demo_iam.identity.add_user(admin, "aaron", None, _claims("aaron", "Aaron", "Ames"))
        await pilot.press("r")
        await settle(pilot)
        table = app.screen.query_one(UsersTable)
        assert keys(table)[0] == "PRIMARY/aaron" and table.row_count == len(DEMO_USERS) + 1


async def test_a_page_that_arrives_after_a_newer_search_is_dropped(demo_iam: Iam) -> None:
    app = users_console(demo_iam)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(UsersTable)
        before = keys(table)
        old = demo_iam.identity.list_users("PRIMARY", 50, None, "b")
        table.post_message(UsersTable.PageLoaded(PageRequest("PRIMARY", "b", None, 50), old, 0))
        await settle(pilot)
        assert keys(table) == before and table.total == len(DEMO_USERS)


async def test_read_only_shows_a_badge(demo_iam: Iam) -> None:
    async with users_console(demo_iam).run_test() as pilot:
        assert not pilot.app.screen.query("#read-only")
    async with users_console(demo_iam, read_only=True).run_test() as pilot:
        assert str(pilot.app.screen.query_one("#read-only", Static).content) == "READ-ONLY"


async def test_an_engine_failure_is_reported_and_the_console_keeps_running(
    demo_iam: Iam,
) -> None:
    demo_iam.stores.close()  # the router now knows no userstore: listing users fails
    seen: list[Message] = []
    app = users_console(demo_iam)
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await settle(pilot)
        failures = [m for m in seen if isinstance(m, EngineFailed)]
        assert failures and all(isinstance(f.error, NotFound) for f in failures)
        assert "could not be read" in str(app.screen.query_one("#users-status", Static).content)
        assert app.return_code is None


def test_deployment_line_names_home_and_database(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    home = tmp_path / "iam-home"
    with Iam.open(home=str(home), argon2=FAST_ARGON2) as iam:
        assert describe_deployment(iam) == "~/iam-home · SQLite mware-iam.db"
    url = f"sqlite:///{tmp_path}/elsewhere.db"
    with Iam.open(home=str(home), db=url, argon2=FAST_ARGON2) as iam:
        assert describe_deployment(iam) == f"~/iam-home · {url}"


def test_errors_read_as_the_engine_message_and_never_as_a_trace() -> None:
    assert describe_error(NotFound("user bob does not exist")) == "user bob does not exist"
    unexpected = describe_error(RuntimeError("SELECT secret FROM somewhere"))
    assert "RuntimeError" in unexpected and "secret" not in unexpected


@pytest.mark.server
def test_deployment_line_never_shows_the_database_password(tmp_path: Path) -> None:
    with database_url("postgresql", str(tmp_path)) as url:
        secret_url = url.replace("postgres@", "postgres:hunter2@", 1)
        if secret_url == url:
            pytest.skip("MWARE_TEST_POSTGRES has no 'postgres@' user to add a password to")
        with Iam.open(home=str(tmp_path / "home"), db=secret_url, argon2=FAST_ARGON2) as iam:
            line = describe_deployment(iam)
    assert "hunter2" not in line
    assert "postgres:***@" in line


# ---------------------------------------------------------------------- pictures


def test_snapshot_users_80x24(snap_compare, demo_iam: Iam) -> None:
    app = users_console(demo_iam)
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle)


def test_snapshot_users_120x40_read_only(snap_compare, demo_iam: Iam) -> None:
    app = users_console(demo_iam, read_only=True)
    assert snap_compare(app, terminal_size=(120, 40), run_before=settle)


def test_snapshot_filtered_80x24(snap_compare, demo_iam: Iam) -> None:
    async def filter_al(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("slash", "a", "l", "enter")
        await settle(pilot)

    app = users_console(demo_iam)
    assert snap_compare(app, terminal_size=(80, 24), run_before=filter_al)


def test_snapshot_help_80x24(snap_compare, demo_iam: Iam) -> None:
    async def open_help(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("question_mark")

    app = users_console(demo_iam)
    assert snap_compare(app, terminal_size=(80, 24), run_before=open_help)


def test_snapshot_no_color_80x24(snap_compare, demo_iam: Iam,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = users_console(demo_iam, read_only=True)
    assert app.no_color
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle)
