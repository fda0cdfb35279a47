"""``mware-iam tui`` (also what runs without a subcommand): the Textual console.

Textual is imported here, inside the command, so that the rest of the CLI (and ``core``)
never loads it.
"""

from __future__ import annotations

import sys

import click

from core.cli.context import current_iam
from core.errors import InvalidInput
from core.identity.events import Face, Initiator


@click.command("tui")
@click.option("--read-only", is_flag=True,
              help="Browse only: every write is disabled (and nothing is seeded).")
def tui(read_only: bool) -> None:
    """Open the console. The first start of a deployment seeds sample_config/."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InvalidInput("the console needs a terminal; in scripts use the subcommands "
                           "(see mware-iam --help)")
    iam = current_iam()
    if not read_only:
        from core.configfile import seed_sample

        seed_sample(iam, Initiator.admin(Face.CONFIG))  # audited; the screen shows it
    from tui.app import run_console

    run_console(iam, read_only=read_only)
