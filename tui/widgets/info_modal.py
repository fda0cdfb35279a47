"""A read-only modal: something to read once (a new token, a dry run), closed by a key."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class InfoModal(ModalScreen[None]):
    DEFAULT_CSS = """
    InfoModal {
        align: center middle;
    }
    InfoModal > #info-box {
        width: 90;
        max-width: 96%;
        height: auto;
        max-height: 90%;
        padding: 0 1;
        border: round $accent;
        background: $surface;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter,q", "dismiss", "Close", id="info.close"),
        Binding("c", "copy", "Copy", id="info.copy", tooltip="Copy to the clipboard"),
    ]

    def __init__(self, title: str, body: Text | str, hint: str = "esc closes", *,
                 copy: str | None = None) -> None:
        """``copy``: text that ``c`` puts on the clipboard (OSC 52, where the terminal
        allows it)."""
        super().__init__()
        self._title = title
        self._body = body
        self._hint = hint
        self._copy = copy

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="info-box") as box:
            box.border_title = self._title
            box.border_subtitle = self._hint
            yield Static(self._body, id="info-body", markup=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self._copy is not None if action == "copy" else True

    def action_copy(self) -> None:
        if self._copy is not None:
            self.app.copy_to_clipboard(self._copy)
            self.notify("Copied (if the terminal lets programs set the clipboard).",
                        title="Clipboard")
