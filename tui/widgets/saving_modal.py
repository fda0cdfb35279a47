"""What the console's editing modals share: a centred box (title, an optional intro, the
editor, an error line, Save and Cancel) and a save that runs the engine call in a thread
worker.

A subclass yields its editor (:meth:`SavingModal.compose_editor`), checks what was typed in
``action_save`` and hands it to :meth:`SavingModal.start_save`. When the engine refuses,
the modal stays open with everything typed and says why (:meth:`SavingModal.refused`); when
it accepts, the modal closes with what the call returned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Static
from textual.worker import Worker, WorkerState

from core.errors import IamError
from tui.engine_errors import ReportsEngineErrors

P = TypeVar("P")
R = TypeVar("R")

SAVE_HINT = "ctrl+s saves · esc cancels"
SAVE_GROUP = "modal-save"


class SavingModal(ReportsEngineErrors, ModalScreen[R | None], Generic[P, R]):
    """Dismissed with the save's result once the engine accepted, or None on cancel."""

    #: Leads the ids of the box's parts (``form``: ``#form-box``, ``#form-error``, ...).
    ID_PREFIX: ClassVar[str] = "modal"

    DEFAULT_CSS = """
    SavingModal {
        align: center middle;
    }
    SavingModal > .modal-box {
        width: 90;
        max-width: 96%;
        height: auto;
        max-height: 96%;
        padding: 0 1;
        border: round $accent;
        background: $surface;
    }
    SavingModal .modal-intro {
        color: $text-muted;
    }
    SavingModal .modal-error {
        display: none;
        color: $text-error;
        text-style: bold;
    }
    SavingModal .modal-error.-shown {
        display: block;
    }
    SavingModal .modal-buttons {
        height: 1;
        margin-top: 1;
        align-horizontal: right;
    }
    SavingModal .modal-buttons Button {
        margin-left: 2;
    }
    """

    @dataclass
    class Saved(Message):
        result: Any

    @dataclass
    class Refused(Message):
        message: str

    def __init__(self, title: str, submit: Callable[[P], R], *, intro: str = "",
                 save_label: str = "Save") -> None:
        super().__init__()
        self.title_text = title
        self._submit_fn = submit
        self._intro = intro
        self._save_label = save_label
        #: True while the engine works on a save (a second save waits for its answer).
        self.saving = False

    def compose(self) -> ComposeResult:
        prefix = self.ID_PREFIX
        with Vertical(id=f"{prefix}-box", classes="modal-box") as box:
            box.border_title = self.title_text
            box.border_subtitle = SAVE_HINT
            if self._intro:
                yield Static(self._intro, id=f"{prefix}-intro", classes="modal-intro",
                             markup=False)
            yield from self.compose_editor()
            yield Static("", id=f"{prefix}-error", classes="modal-error", markup=False)
            with Horizontal(id=f"{prefix}-buttons", classes="modal-buttons"):
                yield from self.extra_buttons()
                yield Button(self._save_label, id=f"{prefix}-save", classes="modal-save",
                             variant="primary", compact=True)
                yield Button("Cancel", id=f"{prefix}-cancel", classes="modal-cancel",
                             compact=True)

    def compose_editor(self) -> ComposeResult:
        """What the modal edits, between the intro and the error line."""
        yield from ()

    def extra_buttons(self) -> ComposeResult:
        """Buttons a subclass puts before Save (for example "Test connection")."""
        yield from ()

    # ------------------------------------------------------------------ the error line
    @property
    def general_error(self) -> str | None:
        line = self.query_one(".modal-error", Static)
        return str(line.content) if line.has_class("-shown") else None

    def show_general(self, message: str | None) -> None:
        line = self.query_one(".modal-error", Static)
        line.update(message or "")
        line.set_class(bool(message), "-shown")

    # ------------------------------------------------------------------ saving
    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, ".modal-cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    @on(Button.Pressed, ".modal-save")
    def _save_pressed(self) -> None:
        self.action_save()

    def action_save(self) -> None:
        """Check what was typed; a clean value goes to :meth:`start_save`."""
        raise NotImplementedError

    def start_save(self, value: P) -> None:
        self.saving = True
        self._save(value)

    @work(thread=True, exclusive=True, exit_on_error=False, group=SAVE_GROUP,
          description="Saving")
    def _save(self, value: P) -> None:
        try:
            result = self._submit_fn(value)
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
        self.refused(message.message)

    def refused(self, message: str) -> None:
        """The engine said no: say why, keep everything typed."""
        self.show_general(f"Not saved: {message}")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # ReportsEngineErrors reports the failure: Textual runs its handler too.
        if event.state is WorkerState.ERROR and event.worker.group == SAVE_GROUP:
            self.saving = False
