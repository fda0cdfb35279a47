"""What the console shows while it opens the deployment (its first frame)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Static

from tui.widgets.chrome import AppHeader, ConsoleFooter


class StartScreen(Screen[None]):
    def compose(self) -> ComposeResult:
        yield AppHeader()
        yield Static("Opening the deployment…", id="start-status", markup=False)
        yield ConsoleFooter()

    def failed(self, reason: str) -> None:
        self.query_one("#start-status", Static).update(
            f"The deployment could not be opened: {reason}\nq quits.")
