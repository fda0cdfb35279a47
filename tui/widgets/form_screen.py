"""A modal that edits one thing through a :class:`PropertyForm` and saves it in a worker.

Save (``ctrl+s``, or enter in a text field) first checks every field locally (the engine's
own ``check`` plus the caller's ``precheck``); only a clean form reaches ``submit``, which
runs the engine call in a thread worker. When the engine refuses, its message is placed
under the fields it names (or above the buttons) and the modal stays open with everything
that was typed; when it accepts, the modal closes with what ``submit`` returned.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static
from textual.worker import Worker, WorkerState

from core.errors import IamError
from core.properties import FieldError, PropertySpec
from tui.widgets.property_form import FieldCheck, FormValues, PropertyForm, errors_from_message
from tui.workers import ReportsEngineErrors

R = TypeVar("R")

SAVE_HINT = "ctrl+s saves · esc cancels"


class FormScreen(ReportsEngineErrors, ModalScreen[R | None], Generic[R]):
    """Dismissed with ``submit``'s result once the engine accepted, or None on cancel."""

    DEFAULT_CSS = """
    FormScreen {
        align: center middle;
    }
    FormScreen > #form-box {
        width: 90;
        max-width: 96%;
        height: auto;
        max-height: 96%;
        padding: 0 1;
        border: round $accent;
        background: $surface;
    }
    FormScreen #form-intro {
        color: $text-muted;
    }
    FormScreen PropertyForm {
        height: auto;
        max-height: 65vh;
        margin-top: 1;
    }
    FormScreen #form-error {
        display: none;
        margin-top: 1;
        color: $text-error;
        text-style: bold;
    }
    FormScreen #form-error.-shown {
        display: block;
    }
    FormScreen #form-buttons {
        height: 1;
        margin-top: 1;
        align-horizontal: right;
    }
    FormScreen #form-buttons Button {
        margin-left: 2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="form.save", tooltip="Check the fields and save"),
        Binding("escape", "cancel", "Cancel", id="form.cancel",
                tooltip="Close without saving"),
    ]

    @dataclass
    class Saved(Message):
        result: Any

    @dataclass
    class Refused(Message):
        message: str

    def __init__(
        self,
        title: str,
        specs: Sequence[PropertySpec],
        submit: Callable[[FormValues], R],
        *,
        values: Mapping[str, Any] | None = None,
        stored_secrets: Mapping[str, str | None] | None = None,
        checks: Mapping[str, FieldCheck] | None = None,
        locked: Collection[str] = (),
        precheck: Callable[[FormValues], list[FieldError]] | None = None,
        intro: str = "",
        save_label: str = "Save",
    ) -> None:
        super().__init__()
        self.title_text = title
        self.form = PropertyForm(specs, values, stored_secrets=stored_secrets, checks=checks,
                                 locked=locked, id="form")
        self._submit_fn = submit
        self._precheck = precheck
        self._intro = intro
        self._save_label = save_label
        #: True while the engine works on a save (a second save waits for its answer).
        self.saving = False

    def compose(self) -> ComposeResult:
        with Vertical(id="form-box") as box:
            box.border_title = self.title_text
            box.border_subtitle = SAVE_HINT
            if self._intro:
                yield Static(self._intro, id="form-intro", markup=False)
            yield self.form
            yield Static("", id="form-error", markup=False)
            with Horizontal(id="form-buttons"):
                yield from self.extra_buttons()
                yield Button(self._save_label, id="form-save", variant="primary", compact=True)
                yield Button("Cancel", id="form-cancel", compact=True)

    def extra_buttons(self) -> ComposeResult:
        """Buttons a subclass puts before Save (for example "Test connection")."""
        yield from ()

    def on_mount(self) -> None:
        first = next((w for w in self.form.query(".field-editor") if not w.disabled), None)
        if first is not None:
            first.focus()

    # ------------------------------------------------------------------ state
    @property
    def general_error(self) -> str | None:
        line = self.query_one("#form-error", Static)
        return str(line.content) if line.has_class("-shown") else None

    def show_general(self, message: str | None) -> None:
        line = self.query_one("#form-error", Static)
        line.update(message or "")
        line.set_class(bool(message), "-shown")

    def show_problems(self, errors: Sequence[FieldError], general: str | None = None) -> None:
        """Place errors under their fields; the rest (and ``general``) above the buttons."""
        unplaced = self.form.show_errors(errors)
        lines = [f"{self.form.label_of(e.field)}: {e.message}" for e in unplaced]
        if general:
            lines.insert(0, general)
        placed = len(errors) - len(unplaced)
        if placed and not general:
            names = ", ".join(f"{self.form.label_of(e.field)} ({e.field})"
                              for e in errors if e not in unplaced)
            lines.insert(0, f"Not saved: check {names}.")
        self.show_general("\n".join(lines) or None)

    # ------------------------------------------------------------------ saving
    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#form-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    @on(Button.Pressed, "#form-save")
    @on(Input.Submitted, "#form .field-editor")
    def _save_requested(self) -> None:
        self.action_save()

    def action_save(self) -> None:
        if self.saving:
            return
        values = self.form.collect()
        errors = self.form.errors()
        if not errors and self._precheck is not None:
            errors = self._precheck(values)
        if errors:
            self.show_problems(errors)
            return
        self.form.clear_errors()
        self.show_general(None)
        self.saving = True
        self._save(values)

    @work(thread=True, exclusive=True, exit_on_error=False, group="form-save",
          description="Saving")
    def _save(self, values: FormValues) -> None:
        try:
            result = self._submit_fn(values)
        except IamError as refused:
            self.post_message(self.Refused(refused.message))
            return
        self.post_message(self.Saved(result))

    @on(Saved)
    def _saved(self, message: Saved) -> None:
        self.saving = False
        self.dismiss(message.result)

    @on(Refused)
    def _refused(self, message: Refused) -> None:
        self.saving = False
        placed = errors_from_message(message.message, self.form.specs)
        self.form.show_errors(placed)
        self.show_general(f"Not saved: {message.message}")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)
        if event.state is WorkerState.ERROR and event.worker.group == "form-save":
            self.saving = False
