"""The ``:`` jump prompt (the k9s habit): a section by name, or straight to what is wanted:
``:users alice`` (the users screen on alice), ``:jobs dead`` (the jobs in that state),
``:target scim-peer`` (that target's jobs).

What is typed is checked before anything moves: an unknown command or argument is said in
the prompt, with what is known, and the prompt stays open. The input suggests as it goes
(commands, job states, targets, and user names read from the engine); tab or right takes
the suggestion.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Input, Label, Static

from core.errors import IamError
from core.iam import Iam
from core.names import PRIMARY
from core.provisioning.outbox import JobState
from tui.commands import go_to_user
from tui.navigation import SECTIONS

TARGET = "target"
#: The commands, sections first (their modes), in the order the suggester tries them.
COMMANDS: tuple[str, ...] = (*(s.mode for s in SECTIONS), TARGET)
STATES: tuple[str, ...] = tuple(s.value for s in JobState)
#: The commands that take an argument, and what it is.
ARGUMENTS = {"users": "a user", "jobs": "a job state", TARGET: "a target"}


class JumpError(Exception):
    """What is wrong with what was typed (shown in the prompt)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Jump:
    #: A section's mode, or ``target``.
    command: str
    #: users: the user; jobs: the state; target: the target's key (``idp:connector``).
    argument: str | None = None


def known_commands() -> str:
    return " ".join(f":{c}" for c in COMMANDS)


def parse_jump(text: str, targets: Sequence[str]) -> Jump:
    """The jump ``text`` asks for (a leading ``:`` is allowed); ``targets`` are the
    provisioning targets' keys. Raises JumpError saying what is wrong."""
    words = text.strip().removeprefix(":").split()
    if not words:
        raise JumpError(f"Type where to go: {known_commands()}")
    command, arguments = words[0].lower(), words[1:]
    if command not in COMMANDS:
        raise JumpError(f"Unknown command :{command}. Known: {known_commands()}")
    what = ARGUMENTS.get(command)
    if arguments and what is None:
        raise JumpError(f":{command} takes nothing after it")
    if len(arguments) > 1:
        raise JumpError(f":{command} takes one word ({what}), not {len(arguments)}")
    argument = arguments[0] if arguments else None
    if command == "jobs" and argument is not None and argument.lower() not in STATES:
        raise JumpError(f"No job state {argument!r}. States: {', '.join(STATES)}")
    if command == TARGET:
        return Jump(TARGET, resolve_target(argument, targets))
    return Jump(command, argument.lower() if command == "jobs" and argument else argument)


def resolve_target(name: str | None, targets: Sequence[str]) -> str:
    """The target named by its key (``scim-peer:scim2``) or by its identity provider alone
    (``scim-peer``) when that has one target."""
    known = ", ".join(targets) or "none yet"
    if name is None:
        raise JumpError(f"Which target? :target NAME (targets: {known})")
    if name in targets:
        return name
    of_idp = [t for t in targets if t.partition(":")[0] == name]
    if len(of_idp) == 1:
        return of_idp[0]
    if of_idp:
        raise JumpError(f"{name} has several targets: {', '.join(of_idp)}; name one")
    raise JumpError(f"No target {name!r}. Targets: {known}")


class JumpSuggester(Suggester):
    """Commands, job states and targets from a list; user names from the engine."""

    def __init__(self, iam: Iam) -> None:
        super().__init__(use_cache=False, case_sensitive=False)
        self._iam = iam
        self.targets: list[str] = []

    def _choices(self) -> list[str]:
        return [*COMMANDS, *(f"jobs {s}" for s in STATES), *(f"{TARGET} {t}" for t in self.targets)]

    async def get_suggestion(self, value: str) -> str | None:
        typed = value.lower()
        if typed.startswith("users ") and len(typed.split()) == 2:
            return await self._user(value)
        return next((c for c in self._choices() if c.startswith(typed)), None)

    async def _user(self, value: str) -> str | None:
        prefix = value.split()[1]
        with contextlib.suppress(IamError):
            page = await asyncio.to_thread(self._iam.identity.list_users, PRIMARY, 1, None, prefix)
            if page.items:
                return f"users {page.items[0].username}"
        return None


class JumpPrompt(ModalScreen[Jump | None]):
    """A one-line prompt at the bottom; dismisses with the checked :class:`Jump`."""

    DEFAULT_CSS = """
    JumpPrompt {
        align: left bottom;
        background: $background 30%;
    }
    JumpPrompt #jump {
        height: auto;
        border: heavy $accent;
        padding: 0 1;
    }
    JumpPrompt #jump-line {
        height: 1;
    }
    JumpPrompt #jump-colon {
        width: 2;
        text-style: bold;
    }
    JumpPrompt #jump-input {
        width: 1fr;
    }
    JumpPrompt #jump-message {
        height: auto;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Close", id="jump.close"),
        Binding("tab", "complete", "Complete", id="jump.complete", tooltip="Take the suggestion"),
    ]

    def __init__(self, iam: Iam) -> None:
        super().__init__()
        self._iam = iam
        self.suggester = JumpSuggester(iam)
        self.targets: list[str] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="jump"):
            with Horizontal(id="jump-line"):
                yield Label(":", id="jump-colon")
                yield Input(
                    placeholder="users alice · jobs dead · target NAME · roles …",
                    suggester=self.suggester,
                    compact=True,
                    id="jump-input",
                )
            yield Static(known_commands(), id="jump-message", markup=False)

    def on_mount(self) -> None:
        self.run_worker(self._read_targets(), group="jump-targets", exit_on_error=False)

    async def _read_targets(self) -> None:
        try:
            statuses = await asyncio.to_thread(self._iam.provisioning.status)
        except IamError:
            statuses = []  # then :target says there is none; the other jumps work
        self.targets = self.suggester.targets = [s.target for s in statuses]

    def action_complete(self) -> None:
        field = self.query_one(Input)
        field.cursor_position = len(field.value)
        field.action_cursor_right()  # at the end, right takes the suggestion

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.targets is None and event.value.strip().lower().startswith(TARGET):
            self._say("Still reading the targets; enter again in a moment.")
            return
        try:
            jump = parse_jump(event.value, self.targets or [])
        except JumpError as exc:
            self._say(exc.message)
            return
        self.dismiss(jump)

    def _say(self, message: str) -> None:
        self.query_one("#jump-message", Static).update(message)


def go(app: App[Any], jump: Jump) -> None:
    """Show what ``jump`` asks for (the screens are asked by duck typing, as the palette
    does: the shell does not import them)."""
    if jump.command == "users" and jump.argument is not None:
        go_to_user(app, jump.argument)
        return

    async def switch() -> None:
        mode = "jobs" if jump.command == TARGET else jump.command
        await app.switch_mode(mode)
        show_jobs = getattr(app.screen, "show_jobs", None)
        if show_jobs is None or jump.argument is None:
            return
        if jump.command == TARGET:
            show_jobs(target=jump.argument)
        elif jump.command == "jobs":
            show_jobs(state=jump.argument)

    app.run_worker(switch(), group="jump", description="Jumping", exit_on_error=False)
