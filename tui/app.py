"""The console app: one deployment (an open ``Iam``), keyboard first, usable over SSH.

This first console shows the users of PRIMARY; later screens (userstores, roles, identity
providers, applications, provisioning jobs, audit) join it as further ``Screen`` classes.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import App
from textual.binding import Binding, BindingType

from core.iam import Iam
from core.identity.service import DEFAULT_PAGE_SIZE
from tui.messages import EngineFailed
from tui.screens.help import HelpScreen, KeyHelp
from tui.screens.users import UsersScreen
from tui.widgets.header import PRODUCT, describe_deployment
from tui.workers import describe_error


class MwareConsole(App[None]):
    TITLE = PRODUCT
    CSS_PATH = "console.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Leave the console"),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help",
                tooltip="The keys that work here"),
    ]

    def __init__(
        self,
        iam: Iam,
        read_only: bool = False,
        *,
        deployment: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        """``deployment`` overrides the header's home/database line (tests pin it)."""
        super().__init__()
        self.iam = iam
        self.read_only = read_only
        self.deployment = describe_deployment(iam) if deployment is None else deployment
        self.page_size = page_size

    def get_default_screen(self) -> UsersScreen:
        return UsersScreen(self.iam, self.deployment, self.read_only, self.page_size)

    def action_help(self) -> None:
        keys = [KeyHelp(self.get_key_display(b.binding), b.binding.description,
                        b.binding.tooltip)
                for b in self.screen.active_bindings.values()
                if b.enabled and b.binding.description and (b.binding.id or b.binding.show)]
        self.push_screen(HelpScreen(keys))

    @on(EngineFailed)
    def _report_engine_failure(self, message: EngineFailed) -> None:
        self.notify(describe_error(message.error), title=f"{message.task} failed",
                    severity="error", timeout=10)


def run_console(iam: Iam, read_only: bool = False) -> None:
    """Run the console on an open deployment until the administrator quits."""
    MwareConsole(iam, read_only=read_only).run()
