"""The ``/`` filter above a list: it applies as the administrator types (once typing pauses),
enter applies at once and goes back to the list, escape clears and hides it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, Label


class FilterInput(Input):
    """An ``Input`` that posts :class:`Settled` once typing pauses for ``DEBOUNCE`` seconds:
    a burst of keys is one query, not one per key."""

    DEBOUNCE: ClassVar[float] = 0.25

    @dataclass
    class Settled(Message):
        input: FilterInput
        value: str

        @property
        def control(self) -> FilterInput:
            return self.input

    _pause: Timer | None = None

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        if event.input is self:
            self._cancel_pending()
            self._pause = self.set_timer(self.DEBOUNCE, self._settled)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.input is self:
            self._cancel_pending()  # enter applies now; nothing more when the timer ends

    def _cancel_pending(self) -> None:
        if self._pause is not None:
            self._pause.stop()
            self._pause = None

    def _settled(self) -> None:
        self._pause = None
        self.post_message(self.Settled(self, self.value))


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
        #: False when enter only confirmed what typing had applied already.
        changed: bool = True
        #: Enter (or escape) ended the filtering: the list takes the focus back.
        done: bool = True

        @property
        def control(self) -> FilterBar:
            return self.bar

    def __init__(self, label: str, placeholder: str = "type to filter, esc clears", *,
                 id: str | None = "filter-bar", input_id: str = "filter") -> None:
        super().__init__(id=id)
        self._label = label
        self._placeholder = placeholder
        self._input_id = input_id
        #: The filter in force (what typing or enter last applied).
        self.value = ""

    def compose(self) -> ComposeResult:
        yield Label(self._label, markup=False)
        yield FilterInput(placeholder=self._placeholder, id=self._input_id, compact=True)

    @property
    def input(self) -> FilterInput:
        return self.query_one(FilterInput)

    @property
    def active(self) -> bool:
        """Open, or closed with a filter still in force."""
        return bool(self.display or self.value)

    def open(self) -> None:
        self.display = True
        self.input.focus()

    def show_value(self, value: str) -> None:
        """Put ``value`` in force and in the open bar without applying it (the caller
        shows what it keeps)."""
        self.value = value
        self.input.value = value
        self.display = True

    def clear(self) -> None:
        """Hide the bar and drop the filter (posts Applied("") if one was in force)."""
        self.input.value = ""
        self.display = False
        if self.value:
            self.value = ""
            self.post_message(self.Applied(self, ""))

    def _apply(self, text: str, done: bool) -> None:
        value = text.strip()
        changed = value != self.value
        if changed or done:
            self.value = value
            self.post_message(self.Applied(self, value, changed=changed, done=done))

    @on(FilterInput.Settled)
    def _settled(self, event: FilterInput.Settled) -> None:
        event.stop()
        self._apply(event.value, done=False)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value.strip():
            had_filter = bool(self.value)
            self.clear()
            if not had_filter:  # nothing to apply: only back to the list
                self.post_message(self.Applied(self, "", changed=False))
            return
        self._apply(event.value, done=True)
