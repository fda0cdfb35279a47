"""What the console's screens share: the deployment, read-only refusals, confirmation,
engine-error reporting, and the header and footer around their body.

See ``tui/CONTRIBUTING-SCREENS.md`` for the contract between the shell and the screens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from textual.app import ComposeResult, SystemCommand
from textual.dom import DOMNode
from textual.screen import Screen

from core.iam import Iam
from core.identity.events import Face, Initiator
from tui.widgets.chrome import AppHeader, ConsoleFooter
from tui.widgets.confirm import ConfirmScreen
from tui.workers import ReportsEngineErrors

#: Who the console's writes are audited as.
CONSOLE_ADMIN = Initiator.admin(Face.CONSOLE)


def refuse_write(node: DOMNode, what: str) -> bool:
    """In a read-only session, say so and return True; the caller then does nothing."""
    if not getattr(node.app, "read_only", False):
        return False
    node.app.notify(f"Read-only session: cannot {what}.", title="Refused", severity="warning")
    return True


class ConsoleScreen(ReportsEngineErrors, Screen[None]):
    """A section of the console; subclasses implement :meth:`compose_body`."""

    def __init__(self, iam: Iam, read_only: bool) -> None:
        super().__init__()
        self.iam = iam
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        yield AppHeader()
        yield from self.compose_body()
        yield ConsoleFooter()

    def compose_body(self) -> ComposeResult:
        """The widgets between the header and the footer."""
        yield from ()

    def refuse_write(self, what: str) -> bool:
        return refuse_write(self, what)

    def confirm(self, question: str, on_yes: Callable[[], object], *, detail: str = "",
                action: str = "Confirm") -> None:
        """Ask first; ``on_yes`` runs only when the administrator confirms."""
        def answered(yes: bool | None) -> None:
            if yes:
                on_yes()

        self.app.push_screen(ConfirmScreen(question, detail, action=action), answered)

    def palette_commands(self) -> Iterable[SystemCommand]:
        """Commands that make sense on this screen now (the app's palette asks for them)."""
        return ()
