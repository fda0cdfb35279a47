"""What every screen shows around its body: the header, and the footer with the screen's
keys under a navigation line (``1 Dash  2 Jobs  3 Users ...``; a click switches too)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Footer, Static

from tui.navigation import SECTIONS
from tui.widgets.header import AppHeader

__all__ = ["AppHeader", "ConsoleFooter", "NavigationLine"]


class NavigationLine(Static):
    """The sections by key; the current one in reverse video (legible without colour)."""

    def on_mount(self) -> None:
        self.update(render_navigation(type(self.screen).__name__))


def render_navigation(current_screen: str) -> Content:
    parts: list[Content] = []
    for section in SECTIONS:
        label = Content.assemble((section.key, "bold"), " ", section.short)
        style = "reverse" if section.screen == current_screen else ""
        action = f"app.go({section.mode!r})"
        parts.append(Content.assemble(" ", label, " ").stylize(style).stylize(
            f"@click={action}"))
    return Content("").join(parts)


class ConsoleFooter(Vertical):
    """The navigation line above Textual's footer (the active screen's bindings)."""

    DEFAULT_CSS = """
    ConsoleFooter {
        dock: bottom;
        height: 2;
    }
    ConsoleFooter NavigationLine {
        height: 1;
        background: $panel;
        color: $text;
    }
    """

    def compose(self) -> ComposeResult:
        yield NavigationLine(id="navigation")
        yield Footer(compact=True)
