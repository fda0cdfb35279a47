"""Every theme stays readable with ``NO_COLOR``: the text's colour is never its
background's (an ANSI theme keeps the terminal's own colours; another is made grey)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.color import Color as RichColor
from rich.segment import Segment
from textual.color import Color
from textual.geometry import Region
from textual.theme import BUILTIN_THEMES
from textual.widget import Widget

from core.iam import Iam
from core.identity.events import Initiator
from tests.conftest import FAST_ARGON2
from tests.tui_helpers import settle
from tui.app import MwareConsole

#: The four ways a theme is drawn under NO_COLOR: ANSI or true colour, dark or light.
FAMILIES = ("ansi-dark", "ansi-light", "textual-dark", "textual-light")
#: The least difference in brightness (0..1) between a text and its background when both
#: are grey levels.
MIN_CONTRAST = 0.2
#: What each check reads: the header, the list and detail panes (their titles), the footer.
READ = ("#product", "#deployment", "#users-pane", "#users", "#detail", "#navigation",
        "FittingFooter")


@pytest.fixture
def users_iam(tmp_path: Path, admin: Initiator) -> Iterator[Iam]:
    with Iam.open(home=str(tmp_path / "home"), argon2=FAST_ARGON2) as iam:
        for name, given in (("alice", "Alice"), ("bob", "Bob"), ("carol", "Carol")):
            iam.identity.add_user(admin, name, None, {
                "givenname": given, "emailaddress": f"{name}@example.com"})
        yield iam


def console(iam: Iam, theme: str) -> MwareConsole:
    return MwareConsole(iam, deployment="~/demo · SQLite mware-iam.db", workers=False,
                        live=False, screen="users", theme=theme)


def unreadable(widget: Widget) -> list[str]:
    """The text (letters, digits; not the borders' lines) the widget draws in its
    background's colour, or too close to it."""
    found = []
    for strip in widget.render_lines(Region(0, 0, widget.size.width, widget.size.height)):
        for segment in strip:
            if any(c.isalnum() for c in segment.text) and not _readable(segment):
                found.append(f"{segment.text.strip()!r} {segment.style}")
    return found


def _readable(segment: Segment) -> bool:
    style = segment.style
    if style is None or style.reverse:
        return True
    fg, bg = style.color, style.bgcolor
    if fg is None or bg is None or fg.is_default or bg.is_default:
        return fg is None or bg is None or (fg.is_default and bg.is_default)
    return abs(_brightness(fg) - _brightness(bg)) >= MIN_CONTRAST


def _brightness(color: RichColor) -> float:
    return Color.from_rich_color(color).brightness


async def test_every_theme_is_readable_with_no_color(users_iam: Iam,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = console(users_iam, "textual-dark")
    assert app.no_color
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        problems = {}
        for theme in sorted(BUILTIN_THEMES):
            app.theme = theme
            await settle(pilot)
            found = [p for selector in READ for p in unreadable(app.screen.query_one(selector))]
            if found:
                problems[theme] = found[:3]
        assert problems == {}


@pytest.mark.parametrize("theme", FAMILIES)
def test_snapshot_no_color_per_theme_family_80x24(snap_compare: Any, users_iam: Iam,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  theme: str) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(console(users_iam, theme), terminal_size=(80, 24), run_before=settle)
