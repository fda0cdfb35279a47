"""A modal that edits a list as lines of text (mappings: ``local = remote``).

The caller's ``parse`` turns the text into a value or raises ``InvalidInput`` naming the
line; ``submit`` then saves it in a thread worker. A refusal is shown above the buttons and
the text stays as typed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Static, TextArea

from core.errors import IamError
from tui.widgets.form_screen import SAVE_HINT
from tui.workers import ReportsEngineErrors

P = TypeVar("P")
R = TypeVar("R")


class LinesScreen(ReportsEngineErrors, ModalScreen[R | None], Generic[P, R]):
    DEFAULT_CSS = """
    LinesScreen {
        align: center middle;
    }
    LinesScreen > #lines-box {
        width: 90;
        max-width: 96%;
        height: auto;
        max-height: 96%;
        padding: 0 1;
        border: round $accent;
        background: $surface;
    }
    LinesScreen #lines-intro {
        color: $text-muted;
    }
    LinesScreen TextArea {
        height: 12;
    }
    LinesScreen #lines-error {
        display: none;
        color: $text-error;
        text-style: bold;
    }
    LinesScreen #lines-error.-shown {
        display: block;
    }
    LinesScreen #lines-buttons {
        height: 1;
        margin-top: 1;
        align-horizontal: right;
    }
    LinesScreen #lines-buttons Button {
        margin-left: 2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="lines.save", tooltip="Check the lines and save"),
        Binding("escape", "cancel", "Cancel", id="lines.cancel"),
    ]

    @dataclass
    class Saved(Message):
        result: Any

    @dataclass
    class Refused(Message):
        message: str

    def __init__(self, title: str, text: str, parse: Callable[[str], P],
                 submit: Callable[[P], R], intro: str = "") -> None:
        super().__init__()
        self._title, self._text, self._intro = title, text, intro
        self._parse, self._submit_fn = parse, submit

    def compose(self) -> ComposeResult:
        with Vertical(id="lines-box") as box:
            box.border_title = self._title
            box.border_subtitle = SAVE_HINT
            if self._intro:
                yield Static(self._intro, id="lines-intro", markup=False)
            yield TextArea(self._text, id="lines-text", soft_wrap=False, show_line_numbers=True)
            yield Static("", id="lines-error", markup=False)
            with Horizontal(id="lines-buttons"):
                yield Button("Save", id="lines-save", variant="primary", compact=True)
                yield Button("Cancel", id="lines-cancel", compact=True)

    @property
    def error(self) -> str | None:
        line = self.query_one("#lines-error", Static)
        return str(line.content) if line.has_class("-shown") else None

    def _show_error(self, message: str | None) -> None:
        line = self.query_one("#lines-error", Static)
        line.update(message or "")
        line.set_class(bool(message), "-shown")

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#lines-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    @on(Button.Pressed, "#lines-save")
    def action_save(self) -> None:
        try:
            parsed = self._parse(self.query_one(TextArea).text)
        except IamError as exc:
            self._show_error(exc.message)
            return
        self._show_error(None)
        self._save(parsed)

    @work(thread=True, exclusive=True, exit_on_error=False, group="lines-save",
          description="Saving")
    def _save(self, parsed: P) -> None:
        try:
            result = self._submit_fn(parsed)
        except IamError as refused:
            self.post_message(self.Refused(refused.message))
            return
        self.post_message(self.Saved(result))

    @on(Saved)
    def _saved(self, message: Saved) -> None:
        self.dismiss(message.result)

    @on(Refused)
    def _refused(self, message: Refused) -> None:
        self._show_error(f"Not saved: {message.message}")
