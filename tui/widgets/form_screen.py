"""A modal that edits one thing through a :class:`PropertyForm` and saves it in a worker.

Save (``ctrl+s``, or enter in a text field) first checks every field locally (the engine's
own ``check`` plus the caller's ``precheck``); only a clean form reaches ``submit``, which
runs the engine call in a thread worker (:class:`~tui.widgets.saving_modal.SavingModal`).
When the engine refuses, its message is placed under the fields it names (or above the
buttons) and the modal stays open with everything that was typed; when it accepts, the
modal closes with what ``submit`` returned.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Input

from core.properties import FieldError, PropertySpec
from tui.widgets.property_form import FieldCheck, FormValues, PropertyForm, errors_from_message
from tui.widgets.saving_modal import SavingModal

R = TypeVar("R")


class FormScreen(SavingModal[FormValues, R]):
    """Dismissed with ``submit``'s result once the engine accepted, or None on cancel."""

    ID_PREFIX = "form"
    DEFAULT_CSS = """
    FormScreen PropertyForm {
        height: auto;
        max-height: 65vh;
        margin-top: 1;
    }
    FormScreen #form-error {
        margin-top: 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="form.save", tooltip="Check the fields and save"),
        Binding("escape", "cancel", "Cancel", id="form.cancel",
                tooltip="Close without saving"),
    ]

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
        super().__init__(title, submit, intro=intro, save_label=save_label)
        self.form = PropertyForm(specs, values, stored_secrets=stored_secrets, checks=checks,
                                 locked=locked, id="form")
        self._precheck = precheck

    def compose_editor(self) -> ComposeResult:
        yield self.form

    def on_mount(self) -> None:
        first = next((w for w in self.form.query(".field-editor") if not w.disabled), None)
        if first is not None:
            first.focus()

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
    @on(Input.Submitted, "#form .field-editor")
    def _submitted(self) -> None:
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
        self.start_save(values)

    def refused(self, message: str) -> None:
        self.form.show_errors(errors_from_message(message, self.form.specs))
        super().refused(message)
