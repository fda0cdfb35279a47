"""The console's shell: navigation, help, the palette's commands, read-only, errors, themes,
and the ``tui`` / ``demo`` / ``web`` commands."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Label, Static
from textual.widgets._footer import FooterKey

from core.cli.console import check_theme
from core.cli.demo import demo_header
from core.cli.main import cli
from core.errors import InvalidInput, StoreUnavailable
from core.iam import Iam
from core.identity.events import Initiator
from core.provisioning.outbox import JobState
from tests.conftest import FAST_ARGON2
from tests.peers import free_port
from tests.processes import console_processes
from tests.provisioning_helpers import connect, drain
from tests.tui_helpers import FixedStatus, notices, settle, target, until
from tui.app import MwareConsole
from tui.messages import EngineFailed
from tui.navigation import SECTIONS
from tui.screens.dashboard import DashboardScreen
from tui.screens.help import HelpScreen
from tui.screens.start import StartScreen
from tui.screens.users import UsersScreen
from tui.widgets.chrome import FittingFooter, NavigationLine, render_navigation
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.header import InboundAccess
from tui.widgets.info_modal import InfoModal

DEPLOYMENT = "~/demo · SQLite mware-iam.db"
NOWHERE = "http://127.0.0.1:9/v2"


@pytest.fixture
def shell_iam(tmp_path: Path, admin: Initiator) -> Iterator[Iam]:
    """Two users, and a target with one dead job (nobody listens on 127.0.0.1:9)."""
    with Iam.open(home=str(tmp_path / "home"), argon2=FAST_ARGON2) as iam:
        connect(iam, NOWHERE, idp="nowhere", **{"max-attempts": 1})
        iam.identity.add_user(admin, "alice")
        drain(iam)
        iam.identity.add_user(admin, "alina")
        yield iam


def console(iam: Iam, read_only: bool = False, **kw: Any) -> MwareConsole:
    return MwareConsole(iam, read_only=read_only, deployment=DEPLOYMENT, workers=False,
                        live=False, **kw)


async def palette(pilot: Pilot[Any], query: str) -> None:
    """Open the command palette, type, and run the first hit."""
    await pilot.press("ctrl+p")
    await settle(pilot)
    await pilot.press(*query)
    await pilot.pause(0.5)  # the palette searches its providers as one types
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)


def dead_jobs(iam: Iam) -> list[int]:
    return [j.pk for j in iam.provisioning.jobs(["dead"])]


# ---------------------------------------------------------------------- navigation


async def test_number_keys_reach_every_section_and_keep_each_screen(shell_iam: Iam) -> None:
    app = console(shell_iam)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        built = {}
        for section in SECTIONS:
            await pilot.press(section.key)
            await settle(pilot)
            assert app.current_mode == section.mode
            assert type(app.screen).__name__ == section.screen
            built[section.mode] = app.screen
        for section in SECTIONS:  # a section's screen is built once and kept
            await pilot.press(section.key)
            assert app.screen is built[section.mode]


async def test_the_navigation_line_marks_the_section_and_takes_clicks(shell_iam: Iam) -> None:
    app = console(shell_iam)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        line = render_navigation("JobsScreen")
        assert line.plain == " 1 Dash  2 Jobs  3 Users  4 Roles  5 Stores  6 IdPs  7 Apps " \
                             " 8 Audit "
        reversed_text = [line.plain[s.start:s.end] for s in line.spans if s.style == "reverse"]
        assert reversed_text == [" 2 Jobs "]  # legible without colour
        await pilot.click(NavigationLine, offset=(10, 0))  # " 2 Jobs " is at 8..15
        await settle(pilot)
        assert app.current_mode == "jobs"


@pytest.mark.parametrize("width", [80, 120])
async def test_the_footer_shows_only_keys_that_fit_and_always_help(shell_iam: Iam,
                                                                   width: int) -> None:
    app = console(shell_iam)
    async with app.run_test(size=(width, 24)) as pilot:
        for section in SECTIONS:
            await pilot.press(section.key)
            await settle(pilot)
            footer = app.screen.query_one(FittingFooter)
            keys = list(footer.query(FooterKey))
            palette_key = next(k for k in keys if k.has_class("-command-palette"))
            shown = [k for k in keys if k is not palette_key]
            assert {"q", "question_mark"} <= {k.key for k in shown}, section.mode
            assert all(k.region.right <= palette_key.region.x for k in shown), \
                (section.mode, [(k.key, k.region) for k in shown])
            assert palette_key.region.right <= width


async def test_help_lists_the_screen_keys_then_the_keys_that_work_everywhere(
        shell_iam: Iam) -> None:
    app = console(shell_iam)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-keys", Static).content)
        here, everywhere = text.split("\nEverywhere\n")
        assert here.startswith("On this screen\n")
        assert "r  Refresh · Read the provisioning status now" in here
        assert "p  Pause" in here and "⏎  Open job" in here
        assert "q  Quit · Leave the console" in everywhere
        for section in SECTIONS:
            assert f"{section.key}  {section.title} · {section.tooltip}" in everywhere
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_given_an_opener_the_console_paints_first_and_opens_behind(
        shell_iam: Iam) -> None:
    opened: list[str] = []

    def open_deployment() -> Iam:
        opened.append("now")
        return shell_iam

    app = MwareConsole(open_deployment, deployment=DEPLOYMENT, workers=False, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen),
                    "the dashboard after opening")
        await settle(pilot)
        assert opened == ["now"] and app.iam is shell_iam


async def test_a_deployment_that_cannot_open_says_why(shell_iam: Iam) -> None:
    def open_deployment() -> Iam:
        raise StoreUnavailable("database is locked")

    seen: list[Message] = []
    app = MwareConsole(open_deployment, deployment=DEPLOYMENT, workers=False, live=False)
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, StartScreen) and not app.started
        status = str(app.screen.query_one("#start-status", Static).content)
        assert "could not be opened: database is locked" in status
        await pilot.press("2")  # nothing to navigate to
        assert isinstance(app.screen, StartScreen)
        await pilot.press("q")
        assert app.return_code == 0


# ---------------------------------------------------------------------- the demo's token


#: As long as a temporary home's path gets: the header cuts it at 80 and 120 columns.
TOKEN_FILE = Path("/tmp/mware-iam-demo-k2v9x0qz/a/much/longer/path/than/the/header/has/room"
                  "/for/hr-portal.token")
INBOUND = InboundAccess("http://127.0.0.1:8080/scim2", TOKEN_FILE, "hr-portal")


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_demo_token_file_is_shown_in_full(shell_iam: Iam,
                                                    size: tuple[int, int]) -> None:
    long_line = f"demo · SCIM in {INBOUND.url} (token: ? or ctrl+p) · peer {NOWHERE}"
    app = MwareConsole(shell_iam, deployment=long_line, workers=False, live=False,
                       inbound=INBOUND)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        header = app.screen.query_one("#deployment", Label)
        assert str(TOKEN_FILE) in str(header.tooltip)  # whole in its tooltip
        await pilot.press("question_mark")
        about = str(app.screen.query_one("#help-about", Static).content)
        assert long_line in about and f"hr-portal's token file: {TOKEN_FILE}" in about
        await pilot.press("escape")
        await palette(pilot, "show the demo's token file")
        assert isinstance(app.screen, InfoModal)
        body = str(app.screen.query_one("#info-body", Static).content)
        assert str(TOKEN_FILE) in body and f"$(cat {TOKEN_FILE})" in body


async def test_without_a_token_file_the_palette_offers_none(shell_iam: Iam) -> None:
    app = console(shell_iam)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Show the demo's token file" not in titles and "Go to Users" in titles


def test_the_demo_header_names_the_inbound_api_and_where_its_token_is() -> None:
    env = SimpleNamespace(scim_url="http://127.0.0.1:8080/scim2",
                          peer_url="http://127.0.0.1:8787/v2")
    line = demo_header(env)  # type: ignore[arg-type]
    assert line == ("demo · SCIM in http://127.0.0.1:8080/scim2 (token: ? or ctrl+p) · "
                    "peer http://127.0.0.1:8787/v2")
    # the part a walkthrough needs first fits beside the product name at 80 columns
    assert len("MWARE IAM " + line.split(" · peer")[0]) <= 80


# ---------------------------------------------------------------------- the palette


async def test_the_palette_goes_to_a_user(shell_iam: Iam) -> None:
    app = console(shell_iam)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await palette(pilot, "go to user alin")
        assert app.current_mode == "users" and isinstance(app.screen, UsersScreen)
        await until(pilot, lambda: app.screen.table.highlighted_user is not None,
                    "the user to be shown")
        user = app.screen.table.highlighted_user
        assert user is not None and user.qualified_name == "PRIMARY/alina"


async def test_the_palette_retries_the_dead_jobs_of_a_target_after_asking(
        shell_iam: Iam) -> None:
    assert len(dead_jobs(shell_iam)) == 1
    seen: list[Message] = []
    app = console(shell_iam)
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await settle(pilot)
        await palette(pilot, "retry the 1 dead")
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question == "Retry the 1 dead jobs of nowhere:scim2?"
        await pilot.press("y")
        await settle(pilot)
        await until(pilot, lambda: "1 job(s) of nowhere:scim2 will run again now."
                    in notices(seen), "the retry to be reported")
        assert dead_jobs(shell_iam) == []
        assert shell_iam.provisioning.jobs(entity="PRIMARY/alice")[0].state is \
            JobState.PENDING


async def test_a_read_only_palette_refuses_to_retry(shell_iam: Iam) -> None:
    seen: list[Message] = []
    app = console(shell_iam, read_only=True)
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await settle(pilot)
        await palette(pilot, "retry the 1 dead")
        assert not isinstance(app.screen, ConfirmScreen)
        assert "Read-only session: cannot retry the dead jobs of nowhere:scim2." in \
            notices(seen)
        assert len(dead_jobs(shell_iam)) == 1


async def test_the_palette_tests_a_connector(tmp_path: Path, scim_peer: str) -> None:
    seen: list[Message] = []
    with Iam.open(home=str(tmp_path / "home"), argon2=FAST_ARGON2) as iam:
        connect(iam, scim_peer)
        app = console(iam)
        async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
            await settle(pilot)
            await palette(pilot, "test connector peer")
            found = await until(pilot, lambda: [n for n in notices(seen)
                                                if n.startswith("SCIM 2.0 target at")],
                                "the connector's answer")
            assert scim_peer in found[0] and "users endpoint answers" in found[0]


def test_an_unreachable_connector_fails_with_its_reason(shell_iam: Iam) -> None:
    with pytest.raises(StoreUnavailable, match=r"target nowhere:scim2: .*cannot reach"):
        shell_iam.provisioning.test_connection("nowhere:scim2")


# ---------------------------------------------------------------------- errors, themes


class BrokenStatus(FixedStatus):
    """The first read fails as an unreachable database would; later reads work."""

    def status(self) -> list[Any]:
        if self.reads == 0:
            self.reads += 1
            raise StoreUnavailable("the system database is locked")
        return super().status()


async def test_a_failed_read_is_reported_and_the_next_one_works(shell_iam: Iam) -> None:
    seen: list[Message] = []
    source = BrokenStatus([([target("x:scim2")], [])])
    app = console(shell_iam, status_source=source)
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await settle(pilot)
        # the message bubbles from the screen to the app: the hook sees it on both
        failures = list({id(m): m for m in seen if isinstance(m, EngineFailed)}.values())
        assert [(f.task, str(f.error)) for f in failures] == [
            ("Reading the provisioning status", "the system database is locked")]
        await pilot.press("r")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DashboardScreen) and list(screen.cards) == ["x:scim2"]


async def test_a_theme_is_applied(shell_iam: Iam) -> None:
    app = console(shell_iam, theme="ansi-dark")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.theme == "ansi-dark"


def test_an_unknown_theme_names_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match=r"unknown theme 'neon'.*textual-dark"):
        check_theme("neon")
    check_theme("nord")
    check_theme(None)


# ---------------------------------------------------------------------- commands


def test_the_console_commands_need_a_terminal(tmp_path: Path) -> None:
    runner = CliRunner()
    for args in (["tui"], ["demo"]):
        result = runner.invoke(cli, ["--home", str(tmp_path / "h"), *args])
        assert result.exit_code == 2, result.output
        assert "the console needs a terminal" in result.output


def test_web_explains_a_missing_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)  # as if not installed
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "h"), "web"])
    assert result.exit_code == 2
    assert "pip install 'mware-iam[web]'" in result.output


def test_web_refuses_a_busy_port_and_activity_without_demo(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["--home", str(tmp_path / "h"), "web", "--port",
                                          str(port)])
    assert result.exit_code == 2 and f"127.0.0.1:{port} is in use" in result.output
    result = CliRunner().invoke(cli, ["web", "--activity"])
    assert result.exit_code == 2 and "--activity only works with --demo" in result.output


def test_web_refuses_to_listen_beyond_loopback(tmp_path: Path) -> None:
    """textual-serve has no login: only the machine's own users may reach the console."""
    for host in ("0.0.0.0", "::", "192.0.2.7", "example.com", ""):
        result = CliRunner().invoke(cli, ["--home", str(tmp_path / "h"), "web", "--host",
                                          host])
        assert result.exit_code == 2, (host, result.output)
        assert "not a loopback address" in result.output and "ssh-serve" in result.output
    assert not (tmp_path / "h").exists()  # refused before anything was opened
    with socket.socket() as busy:  # a loopback address other than the default is taken
        busy.bind(("127.0.0.2", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["--home", str(tmp_path / "h"), "web", "--host",
                                          "127.0.0.2", "--port", str(port)])
    assert result.exit_code == 2 and f"127.0.0.2:{port} is in use" in result.output


def test_web_serves_the_console_on_loopback(tmp_path: Path) -> None:
    port = free_port()
    script = Path(sys.executable).with_name("mware-iam")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MWARE_IAM_")}
    db = f"sqlite:///{tmp_path}/pa55word.db"  # a URL as secret as one with a password
    process = subprocess.Popen([str(script), "--home", str(tmp_path / "h"), "--db", db, "web",
                                "--port", str(port)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        page = None
        deadline = time.monotonic() + 30  # a bound against a hang, not a speed assertion
        while page is None and time.monotonic() < deadline and process.poll() is None:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            except httpx.TransportError:
                time.sleep(0.2)
        assert page is not None and page.status_code == 200, process.poll()
        assert "MWARE IAM" in page.text
        consoles: dict[int, bytes] = {}
        screen = asyncio.run(_browser_session(port, lambda: consoles.update(
            console_processes(db))))
        assert b"Queue depth" in screen  # the dashboard, drawn for the browser
        assert consoles  # the tab's console, given the URL in its environment
        for cmdline in consoles.values():  # and not where `ps` shows it to every user
            assert b"pa55word" not in cmdline and b"--db" not in cmdline, cmdline
        assert (tmp_path / "pa55word.db").exists()
    finally:
        process.terminate()
        process.wait(10)


async def _browser_session(port: int, on_dashboard: Callable[[], object],
                           seconds: float = 30.0) -> bytes:
    """What a browser tab receives: textual-serve starts a console for the websocket;
    ``on_dashboard`` runs once the dashboard is drawn, while the tab's console runs."""
    import aiohttp  # textual-serve's own dependency

    received = b""
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(f"ws://127.0.0.1:{port}/ws") as ws:
        await ws.send_json(["resize", {"width": 100, "height": 30}])
        deadline = time.monotonic() + seconds  # a bound, not a speed assertion
        while b"Queue depth" not in received and time.monotonic() < deadline:
            try:
                message = await asyncio.wait_for(ws.receive(), 1.0)
            except TimeoutError:
                continue
            if message.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                break
            data = message.data
            received += data if isinstance(data, bytes) else data.encode()
        if b"Queue depth" in received:
            on_dashboard()
    return received


# ---------------------------------------------------------------------- pictures


def test_snapshot_help_80x24(snap_compare: Any, shell_iam: Iam) -> None:
    async def open_help(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)

    source = FixedStatus([([target("nowhere:scim2", dead=1)], [])])
    assert snap_compare(console(shell_iam, status_source=source), terminal_size=(80, 24),
                        run_before=open_help)


def test_the_readme_pictures_show_the_demo_with_activity() -> None:
    """``docs/pictures.py`` takes them; this checks what they must show."""
    root = Path(__file__).parent.parent
    readme = (root / "README.md").read_text()
    for picture, must_show in (("console-dashboard.svg", ("QUARANTINED", "HEALTHY",
                                                          "partner-directory", "scim-peer",
                                                          "spml-provider", "salesforce-org",
                                                          "Recent activity")),
                               ("console-jobs.svg", ("Provisioning jobs", "succeeded",
                                                     "PRIMARY/"))):
        assert f"](docs/{picture})" in readme
        svg = (root / "docs" / picture).read_text().replace("&#160;", " ")
        for text in must_show:
            assert text in svg, (picture, text)
    assert "docs/pictures.py" in readme


def test_every_section_names_a_console_screen_in_its_module() -> None:
    import importlib

    from tui.screens.base import ConsoleScreen

    for section in SECTIONS:
        screen = getattr(importlib.import_module(section.module), section.screen)
        assert issubclass(screen, ConsoleScreen), section
