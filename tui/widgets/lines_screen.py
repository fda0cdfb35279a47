"""A modal that edits a list as lines of text (mappings: ``local = remote``).

The caller's ``parse`` turns the text into a value or raises ``InvalidInput`` naming the
line; ``submit`` then saves it in a thread worker
(:class:`~tui.widgets.saving_modal.SavingModal`). A refusal is shown above the buttons and
the text stays as typed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, TypeVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import TextArea

from core.errors import IamError
from tui.widgets.saving_modal import SavingModal

P = TypeVar("P")
R = TypeVar("R")


class LinesScreen(SavingModal[P, R]):
    ID_PREFIX = "lines"
    DEFAULT_CSS = """
    LinesScreen TextArea {
        height: 12;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="lines.save", tooltip="Check the lines and save"),
        Binding("escape", "cancel", "Cancel", id="lines.cancel"),
    ]

    def __init__(self, title: str, text: str, parse: Callable[[str], P],
                 submit: Callable[[P], R], intro: str = "") -> None:
        super().__init__(title, submit, intro=intro)
        self._text, self._parse = text, parse

    def compose_editor(self) -> ComposeResult:
        yield TextArea(self._text, id="lines-text", soft_wrap=False, show_line_numbers=True)

    @property
    def error(self) -> str | None:
        return self.general_error

    def action_save(self) -> None:
        if self.saving:
            return
        try:
            parsed = self._parse(self.query_one(TextArea).text)
        except IamError as exc:
            self.show_general(exc.message)
            return
        self.show_general(None)
        self.start_save(parsed)
