"""``mware-iam tui`` (also what runs without a subcommand): the Textual console.

Textual is imported here, inside the command, so that the rest of the CLI (and ``core``)
never loads it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from core.cli.context import CliState
from core.errors import InvalidInput
from core.identity.events import Face, Initiator

if TYPE_CHECKING:  # opened by the console after its first frame, with the engine's modules
    from core.iam import Iam

F = Callable[..., Any]


def console_options(f: F) -> F:
    """``--theme`` and ``--no-workers``, shared by ``tui``, ``demo`` and ``web``."""
    f = click.option("--no-workers", is_flag=True,
                     help="Do not run provisioning workers in the console (a `mware-iam "
                          "worker` or `serve` runs the jobs).")(f)
    return click.option("--theme", metavar="NAME",
                        help="Colour theme: textual-dark (default), textual-light, nord, "
                             "gruvbox, ansi-dark or ansi-light (the terminal's 16 colours), ...; "
                             "ctrl+p then 'theme' switches live.")(f)


def check_theme(theme: str | None) -> None:
    if theme is None:
        return
    from tui.launch import theme_names

    known = theme_names()
    if theme not in known:
        raise InvalidInput(f"--theme: unknown theme {theme!r} (known: {', '.join(known)})")


def require_terminal() -> None:
    """The console draws on a terminal; under ``mware-iam web`` it draws in a browser."""
    if os.environ.get("TEXTUAL_DRIVER"):
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InvalidInput("the console needs a terminal; in scripts use the subcommands "
                           "(see mware-iam --help)")


def scim_port_option(default: int | None) -> Callable[[F], F]:
    """``--scim-port``: serve the inbound SCIM API from the console's process too."""
    return click.option(
        "--scim-port", type=click.IntRange(1, 65535), default=default,
        show_default=default is not None, metavar="PORT",
        help="Also serve the inbound SCIM 2.0 API on 127.0.0.1:PORT/scim2 while the console "
             "runs (as `mware-iam serve` does).")


@click.command("tui")
@click.option("--read-only", is_flag=True,
              help="Browse only: every write is disabled (and nothing is seeded).")
@scim_port_option(None)
@console_options
def tui(read_only: bool = False, scim_port: int | None = None, theme: str | None = None,
        no_workers: bool = False) -> None:
    """Open the console. The first start of a deployment seeds sample_config/."""
    if read_only and scim_port is not None:
        raise click.UsageError("--scim-port serves writes; it does not go with --read-only")
    require_terminal()
    check_theme(theme)
    state = click.get_current_context().find_object(CliState)
    if state is None:  # only when invoked outside the ``mware-iam`` group
        raise RuntimeError("no CliState on the click context")
    sock = None
    if scim_port is not None:  # (the serving modules load only then: start time)
        from core.http.listening import listen

        sock = listen("127.0.0.1", scim_port)
    with contextlib.ExitStack() as stack:

        def open_deployment() -> Iam:
            """Run by the console in a thread, after its first frame."""
            iam = state.iam
            if not read_only:
                from core.configfile.files import seed_sample

                seed_sample(iam, Initiator.admin(Face.CONFIG))  # audited; the screen shows it
            if sock is not None:
                from core.http.thread import scim_thread

                stack.enter_context(scim_thread(iam, sock=sock))
            return iam

        from core.console_settings import FILE_NAME
        from core.home import Home
        from tui.app import run_console

        home = Home.resolve(state.home, state.db)
        home.ensure()
        run_console(open_deployment, read_only=read_only, workers=not no_workers, theme=theme,
                    settings=home.path / FILE_NAME)
