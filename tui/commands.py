"""The command palette's console commands (``ctrl+p``), built from what is true now.

- "Go to user PRIMARY/alice": users whose name starts with what is typed (``DOMAIN/``
  narrows to a userstore), read from the engine as you type.
- "Retry the N dead jobs of <target>": only for targets that have dead jobs.
- "Test connector <target>": every provisioning target; the answer is a notification.

Screens add their own commands through ``palette_commands()`` (see
``tui/CONTRIBUTING-SCREENS.md``); the app yields those as system commands.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, cast

from textual.app import App
from textual.command import DiscoveryHit, Hit, Hits, Provider

from core.errors import IamError
from tui.widgets.confirm import ConfirmScreen

if TYPE_CHECKING:
    from core.iam import Iam
    from core.provisioning.status import TargetStatus


class Console(Protocol):
    """What the palette reads of the console app (``tui.app.MwareConsole``, which imports
    this module: a protocol, so this module does not import it back)."""

    iam: Iam

#: Users offered per query.
USER_HITS = 8


class ConsoleCommands(Provider):
    async def startup(self) -> None:
        self._statuses: list[TargetStatus] = []
        with contextlib.suppress(IamError):  # then no target commands; the palette works
            self._statuses = await asyncio.to_thread(self.iam.provisioning.status)

    @property
    def iam(self) -> Iam:
        return cast(Console, self.app).iam

    def _target_commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        commands: list[tuple[str, str, Callable[[], Any]]] = []
        for s in self._statuses:
            if s.dead:
                commands.append((f"Retry the {s.dead} dead jobs of {s.target}",
                                 "Run them again now (asks first)",
                                 partial(retry_dead, self.app, self.iam, s.target, s.dead)))
        for s in self._statuses:
            commands.append((f"Test connector {s.target}",
                             f"Ask the target whether it answers (now {s.state})",
                             partial(test_connector, self.app, self.iam, s.target)))
        return commands

    async def discover(self) -> Hits:
        for title, help_text, command in self._target_commands():
            yield DiscoveryHit(title, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, command in self._target_commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), command, help=help_text)
        for name in await self._users(query):
            title = f"Go to user {name}"
            yield Hit(max(matcher.match(title), 0.5), matcher.highlight(title),
                      partial(go_to_user, self.app, name), text=title,
                      help="Show the user on the Users screen")

    async def _users(self, query: str) -> list[str]:
        text = query.strip()
        for word in ("go to user", "go to", "user"):
            if text.lower().startswith(word):
                text = text[len(word):].strip()
                break
        if not text or " " in text:
            return []
        from core.names import PRIMARY, SEPARATOR

        domain, sep, prefix = text.rpartition(SEPARATOR)
        identity = self.iam.identity
        try:
            page = await asyncio.to_thread(identity.list_users, domain if sep else PRIMARY,
                                           USER_HITS, None, prefix or None)
        except IamError:
            return []  # e.g. an unknown domain typed so far
        return [u.qualified_name for u in page.items]


# ---------------------------------------------------------------------- the commands
def go_to_user(app: App[Any], name: str) -> None:
    async def go() -> None:
        await app.switch_mode("users")
        show_user: Callable[[str], object] | None = getattr(app.screen, "show_user", None)
        if show_user is None:
            app.notify(f"Find {name} with / on this screen.", title="Go to user")
        else:
            show_user(name)

    app.run_worker(go(), group="palette", description="Going to a user", exit_on_error=False)


def retry_dead(app: App[Any], iam: Iam, target: str, dead: int) -> None:
    from tui.screens.base import CONSOLE_ADMIN, refuse_write

    if refuse_write(app, f"retry the dead jobs of {target}"):
        return

    async def retry() -> None:
        n = await asyncio.to_thread(iam.provisioning.retry, CONSOLE_ADMIN,
                                    dead_of_target=target)
        app.notify(f"{n} job(s) of {target} will run again now.", title="Retry")

    def answered(yes: bool | None) -> None:
        if yes:
            app.run_worker(retry(), group="palette",
                           description=f"Retrying the dead jobs of {target}",
                           exit_on_error=False)

    app.push_screen(ConfirmScreen(f"Retry the {dead} dead jobs of {target}?",
                                  "They run again at once, from their first attempt.",
                                  action="Retry"), answered)


def test_connector(app: App[Any], iam: Iam, target: str) -> None:
    async def test() -> None:
        app.notify(f"Asking {target}…", title="Test connector", timeout=2)
        found = await asyncio.to_thread(iam.provisioning.test_connection, target)
        app.notify(found, title=f"{target} answers", timeout=10)

    app.run_worker(test(), group="palette", description=f"Testing connector {target}",
                   exit_on_error=False)
