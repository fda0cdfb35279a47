"""The ``/`` filter above a list: enter applies what was typed, escape clears and hides it."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Label


class FilterBar(Horizontal):
    """Hidden until :meth:`open`; posts :class:`Applied` (empty text clears)."""

    DEFAULT_CSS = """
    FilterBar {
        display: none;
        height: 1;
    }
    FilterBar > Label {
        padding: 0 1;
        text-style: bold;
    }
    FilterBar > Input {
        width: 1fr;
    }
    """

    @dataclass
    class Applied(Message):
        bar: FilterBar
        #: The filter now in force ("" when cleared).
        value: str

        @property
        def control(self) -> FilterBar:
            return self.bar

    def __init__(self, label: str, placeholder: str = "enter applies, esc clears", *,
                 id: str | None = "filter-bar", input_id: str = "filter") -> None:
        super().__init__(id=id)
        self._label = label
        self._placeholder = placeholder
        self._input_id = input_id
        #: The filter in force (what enter last applied).
        self.value = ""

    def compose(self) -> ComposeResult:
        yield Label(self._label, markup=False)
        yield Input(placeholder=self._placeholder, id=self._input_id, compact=True)

    @property
    def input(self) -> Input:
        return self.query_one(Input)

    @property
    def active(self) -> bool:
        """Open, or closed with a filter still in force."""
        return bool(self.display or self.value)

    def open(self) -> None:
        self.display = True
        self.input.focus()

    def clear(self) -> None:
        """Hide the bar and drop the filter (posts Applied("") if one was in force)."""
        self.input.value = ""
        self.display = False
        if self.value:
            self.value = ""
            self.post_message(self.Applied(self, ""))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value.strip()
        if not value:
            self.clear()
            return
        self.value = value
        self.post_message(self.Applied(self, value))
