"""The console app: one deployment (an ``Iam``), keyboard first, usable over SSH.

Each section (dashboard, jobs, users, roles, ...) is a Textual *mode* whose screen is built
on first visit and keeps its state while another is shown; ``1``..``8`` switch (the
footer's navigation line shows them), ``?`` lists the keys, ``ctrl+p`` opens the palette.
Unless told otherwise the console runs the provisioning workers itself (``tui.pool``).

Given a function that opens the deployment instead of an open one (what ``mware-iam tui``
does), the console paints its first frame at once and opens the deployment, with the
engine's modules, in a thread behind it: nothing of ``core`` but its errors is imported
before that frame.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.command import Provider
from textual.filter import LineFilter, Monochrome, NoColor
from textual.message import Message
from textual.screen import Screen
from textual.signal import Signal
from textual.widget import AwaitMount

from tui.engine_errors import ReportsEngineErrors, describe_error
from tui.messages import EngineFailed, JobAttempted
from tui.navigation import BY_MODE, FIRST, SECTIONS, Section
from tui.screens.start import StartScreen
from tui.widgets.header import PRODUCT, describe_deployment
from tui.widgets.header import InboundAccess as InboundAccess  # for the demo command

if TYPE_CHECKING:
    from core.iam import Iam
    from tui.pool import ConsoleWorkers
    from tui.screens.base import ConsoleScreen, StatusSource

OPENING = "Opening the deployment"
#: Sections remembered for going back.
HISTORY = 20
_NO_COLOR, _MONOCHROME = NoColor(), Monochrome()


@dataclass
class DeploymentOpened(Message):
    iam: Iam


def console_commands() -> type[Provider]:
    """The palette's console commands, imported when the palette first opens."""
    from tui.commands import ConsoleCommands

    return ConsoleCommands


def _section_bindings() -> list[BindingType]:
    return [Binding(s.key, f"go({s.mode!r})", s.title, show=False, id=f"app.go.{s.mode}",
                    tooltip=s.tooltip) for s in SECTIONS]


class MwareConsole(ReportsEngineErrors, App[None]):
    TITLE = PRODUCT
    #: Absolute, so that a subclass defined elsewhere (a test, a benchmark) finds it too.
    CSS_PATH = Path(__file__).with_name("console.tcss")
    COMMANDS: ClassVar = App.COMMANDS | {console_commands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Leave the console"),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help",
                tooltip="The keys that work here"),
        Binding("colon", "jump", "Jump", key_display=":", show=False, id="app.jump",
                tooltip="Go by name: :users alice, :jobs dead, :target NAME, :roles …"),
        Binding("escape", "previous_section", "Back", show=False, id="app.back",
                tooltip="Back to the screen shown before (when no filter is open)"),
        *_section_bindings(),
    ]

    def __init__(
        self,
        iam: Iam | Callable[[], Iam],
        read_only: bool = False,
        *,
        deployment: str | None = None,
        page_size: int | None = None,
        workers: bool = True,
        screen: str = FIRST,
        theme: str | None = None,
        live: bool = True,
        status_source: StatusSource | None = None,
        settings: Path | None = None,
        inbound: InboundAccess | None = None,
    ) -> None:
        """``iam`` is an open deployment, or a function that opens one (called in a
        thread after the first frame); ``deployment`` overrides the header's home/database
        line (tests pin it); ``workers=False`` leaves provisioning to other processes;
        ``screen`` is the section shown first; ``live=False`` stops the live views' timers
        and ``status_source`` replaces ``iam.provisioning`` as the dashboard's source (both
        for pictures); ``settings`` is the file that keeps the chosen theme between starts
        (``core.console_settings``); ``inbound`` is the SCIM API served beside the console
        and its token file (the demo's), shown in full by the header's tooltip, ``?`` and
        the palette."""
        super().__init__()
        self._opener = iam if callable(iam) else None
        self.iam: Iam = None if callable(iam) else iam  # type: ignore[assignment]
        self.read_only = read_only
        self.deployment = deployment or ""
        self._deployment_given = deployment is not None
        self.page_size = page_size
        self.live = live
        self.status_source = status_source
        self.first_screen = screen
        self._run_workers = workers and not read_only  # read-only: no job state is written
        #: Every attempt the console's own workers finish (``JobAttempted``).
        self.provisioning_signal: Signal[JobAttempted] = Signal(self, "provisioning")
        self.workers_pool: ConsoleWorkers | None = None
        self.settings = settings
        self.inbound = inbound
        if theme is None and settings is not None:
            from core.console_settings import saved_theme

            theme = saved_theme(settings)
        if theme is not None and theme in self.available_themes:
            self.theme = theme
        for section in SECTIONS:
            self.add_mode(section.mode, section_screen(self, section))
        #: The sections shown before this one, the latest last (``escape`` goes back).
        self.visited: list[str] = []

    # ------------------------------------------------------------------ starting
    def get_default_screen(self) -> Screen[Any]:
        return StartScreen()

    def get_line_filters(self) -> Sequence[LineFilter]:
        """Under ``NO_COLOR``, Textual picks its filter once, for the theme it starts with
        (``Monochrome``, which maps an ANSI theme's colours, the terminal's "default"
        included, to black on black); pick it for the current theme: an ANSI theme keeps
        the terminal's own colours (``NoColor``), another is made grey (``Monochrome``)."""
        filters = super().get_line_filters()
        if not self.no_color:
            return filters
        wanted = _NO_COLOR if self.native_ansi_color else _MONOCHROME
        return [wanted if isinstance(f, NoColor | Monochrome) else f for f in filters]

    def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._keep_theme)
        if self._opener is None:
            self._start(self.iam)
        else:  # after the first frame: the opening thread would compete with painting it
            self.call_after_refresh(self._open, self._opener)

    def _keep_theme(self, theme: Any) -> None:
        if self.settings is not None:
            from core.console_settings import save_theme

            try:
                save_theme(self.settings, theme.name)
            except OSError as exc:
                self.notify(f"The theme is not kept for the next start: {exc.strerror}",
                            severity="warning")

    @work(thread=True, exit_on_error=False, group="open", description=OPENING)
    def _open(self, opener: Callable[[], Iam]) -> None:
        self.post_message(DeploymentOpened(opener()))

    @on(DeploymentOpened)
    def _opened(self, message: DeploymentOpened) -> None:
        self._start(message.iam)

    def _start(self, iam: Iam) -> None:
        from core.identity.service import DEFAULT_PAGE_SIZE
        from tui.pool import ConsoleWorkers

        self.iam = iam
        if not self._deployment_given:
            self.deployment = describe_deployment(iam)
        self.page_size = self.page_size or DEFAULT_PAGE_SIZE
        if self._run_workers:
            self.workers_pool = ConsoleWorkers(self, iam)
            self.workers_pool.start()
        self.switch_mode(self.first_screen)

    @property
    def started(self) -> bool:
        return self.iam is not None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "previous_section":
            return bool(self.visited)
        return self.started or action in ("quit", "help")

    def action_go(self, mode: str) -> None:
        if self.current_mode != mode:
            self.switch_mode(mode)

    def switch_mode(self, mode: str) -> AwaitMount:
        """Switch section, remembering the one left for ``escape``."""
        if mode != self.current_mode and self.current_mode in BY_MODE:
            self.visited = [*self.visited, self.current_mode][-HISTORY:]
        return super().switch_mode(mode)

    def action_previous_section(self) -> None:
        if self.visited:
            *self.visited, previous = self.visited
            super().switch_mode(previous)

    def action_jump(self) -> None:
        from tui.jump import JumpPrompt, go

        self.push_screen(JumpPrompt(self.iam),
                         lambda jump: go(self, jump) if jump is not None else None)

    # ------------------------------------------------------------------ help, palette
    def action_help(self) -> None:
        from tui.screens.help import HelpScreen, KeyHelp
        from tui.widgets.list_keys import LIST_KEYS

        screen_keys: list[KeyHelp] = []
        list_keys: list[KeyHelp] = []  # j/k/g/G: after what the screen does
        app_keys: list[KeyHelp] = []
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not (active.enabled and binding.description and (binding.id or binding.show)):
                continue
            keys = app_keys if active.node is self else \
                list_keys if (binding.id or "").startswith(LIST_KEYS) else screen_keys
            keys.append(KeyHelp(self.get_key_display(binding), binding.description,
                                binding.tooltip))
        about = self.deployment + (f"\n{self.inbound.describe()}" if self.inbound else "")
        self.push_screen(HelpScreen([*screen_keys, *list_keys], app_keys, about=about))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        for section in SECTIONS:
            yield SystemCommand(f"Go to {section.title}", section.tooltip,
                                lambda mode=section.mode: self.action_go(mode))
        commands: Callable[[], Iterable[SystemCommand]] | None = \
            getattr(screen, "palette_commands", None)
        if commands is not None:
            yield from commands()
        if self.inbound is not None:
            yield SystemCommand("Show the demo's token file",
                                f"The {self.inbound.application} token for the SCIM API, "
                                "and its file in full", self._show_token_file)
        yield from super().get_system_commands(screen)

    def _show_token_file(self) -> None:
        from tui.widgets.info_modal import InfoModal

        if self.inbound is not None:
            self.push_screen(InfoModal("The demo's token file", self.inbound.describe(),
                                       "c copies the path · esc closes",
                                       copy=str(self.inbound.token_file)))

    # ------------------------------------------------------------------ provisioning
    @on(JobAttempted)
    def _job_attempted(self, message: JobAttempted) -> None:
        self.provisioning_signal.publish(message)

    async def action_quit(self) -> None:
        if self.workers_pool is not None:
            self.notify("Waiting for the provisioning attempts in flight…", timeout=2)
            await self.workers_pool.stop()
        self.exit()

    def on_unmount(self) -> None:
        if self.workers_pool is not None:
            self.workers_pool.close()

    # ------------------------------------------------------------------ errors
    @on(EngineFailed)
    def _report_engine_failure(self, message: EngineFailed) -> None:
        self.notify(describe_error(message.error), title=f"{message.task} failed",
                    severity="error", timeout=10)
        if message.task == OPENING and isinstance(self.screen, StartScreen):
            self.screen.failed(describe_error(message.error))


def section_screen(app: MwareConsole, section: Section) -> Callable[[], Screen[None]]:
    """The section's screen, built on first visit; its module (and the engine's modules
    it needs) is imported then, not when the console starts."""
    def build() -> Screen[None]:
        screen: type[ConsoleScreen] = getattr(importlib.import_module(section.module),
                                              section.screen)
        return screen.for_console(app)

    return build


def run_console(iam: Iam | Callable[[], Iam], read_only: bool = False, *,
                workers: bool = True, theme: str | None = None,
                deployment: str | None = None, settings: Path | None = None,
                inbound: InboundAccess | None = None) -> None:
    """Run the console until the administrator quits (``iam``: see MwareConsole)."""
    MwareConsole(iam, read_only=read_only, workers=workers, theme=theme,
                 deployment=deployment, settings=settings, inbound=inbound).run()
