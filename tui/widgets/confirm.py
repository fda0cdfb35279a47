"""The confirmation asked before a destructive action (delete, cancel, retry many).

``ConfirmScreen`` is a ``ModalScreen[bool]``: ``y`` or the action button confirms, ``n``,
``escape`` or the Cancel button declines. Cancel has the focus when the modal opens, so a
stray ``enter`` never destroys anything.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
    }
    ConfirmScreen #confirm {
        width: 60;
        max-width: 90%;
        height: auto;
        padding: 0 1;
        border: heavy $error;
        background: $surface;
    }
    ConfirmScreen #confirm-question {
        text-style: bold;
        margin-bottom: 1;
    }
    ConfirmScreen #confirm-detail {
        color: $text-muted;
        margin-bottom: 1;
    }
    ConfirmScreen #confirm-buttons {
        height: auto;
        align-horizontal: right;
    }
    ConfirmScreen Button {
        margin-left: 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes", tooltip="Go ahead"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no",
                tooltip="Leave everything as it is"),
    ]

    def __init__(self, question: str, detail: str = "", *, action: str = "Confirm") -> None:
        super().__init__()
        self.question = question
        self.detail = detail
        self.action_label = action

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm") as box:
            box.border_title = "Confirm"
            box.border_subtitle = "y yes · n no"
            yield Static(self.question, id="confirm-question", markup=False)
            if self.detail:
                yield Static(self.detail, id="confirm-detail", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button("Cancel", id="confirm-cancel")
                yield Button(f"{self.action_label} (y)", id="confirm-ok", variant="error")

    def on_mount(self) -> None:
        self.query_one("#confirm-cancel", Button).focus()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed, "#confirm-ok")
    def _ok(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#confirm-cancel")
    def _cancel(self) -> None:
        self.dismiss(False)
