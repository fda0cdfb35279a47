"""``mware-iam``: the command-line face of the engine.

Every command calls ``core``; none holds a business rule. Errors of the engine become one
line on stderr and the exit code of their type (see ``mware-iam --help``).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from core import __version__
from core.cli.context import CliState
from core.cli.output import error_boundary
from core.home import DB_ENV, HOME_ENV

#: Every command, by name: the module and object that define it. A command's module (and
#: the engine it imports) loads only when that command runs, or for ``--help``, so that
#: ``mware-iam tui`` paints the console without importing the rest of the CLI.
COMMANDS = {
    "app": "core.cli.apps:app_group",
    "audit": "core.cli.audit:audit",
    "config": "core.cli.config:config_group",
    "demo": "core.cli.demo:demo",
    "idp": "core.cli.idps:idp_group",
    "operator": "core.cli.operators:operator_group",
    "provisioning": "core.cli.provisioning:provisioning_group",
    "role": "core.cli.roles:role_group",
    "sandbox": "core.cli.sandbox:sandbox",
    "serve": "core.cli.serve:serve",
    "ssh-serve": "core.cli.sshserve:ssh_serve",
    "tui": "core.cli.console:tui",
    "user": "core.cli.users:user_group",
    "userstore": "core.cli.userstores:userstore_group",
    "web": "core.cli.demo:web",
    "worker": "core.cli.serve:worker",
}

EPILOG = """\b
Exit status:
  0    success
  1    failed (e.g. some import rows refused, confirmation declined)
  2    invalid input or usage (also a policy violation, an invalid config file)
  3    not found          4  already exists     5  read-only userstore
  6    a database or userstore is unreachable or locked
  7    refused by a provisioning rule
  70   internal error (set MWARE_IAM_DEBUG=1 for the traceback)
  130  interrupted
"""


class IamGroup(click.Group):
    """A group whose commands all run inside the one error boundary."""

    def invoke(self, ctx: click.Context) -> Any:
        with error_boundary():
            return super().invoke(ctx)


class LazyIamGroup(IamGroup):
    """The ``mware-iam`` group: its commands are imported on first use (click's
    documented "lazily loading subcommands" pattern), named by ``COMMANDS``."""

    def __init__(self, *args: Any, lazy_commands: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            module, name = self.lazy_commands[cmd_name].split(":")
            command = getattr(importlib.import_module(module), name)
            if not isinstance(command, click.Command) or command.name != cmd_name:
                raise TypeError(f"{self.lazy_commands[cmd_name]} is not the {cmd_name!r} "
                                "command")
            self.add_command(command)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyIamGroup, lazy_commands=COMMANDS, invoke_without_command=True, epilog=EPILOG,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--home", type=click.Path(file_okay=False), envvar=HOME_ENV, show_envvar=True,
              help="Home directory of the deployment (default: the XDG data dir).")
@click.option("--db", envvar=DB_ENV, show_envvar=True, metavar="URL",
              help="System database URL (default: SQLite in the home).")
@click.option("--read-only", is_flag=True,
              help="With no command: open the console browse-only (as `tui --read-only`).")
@click.version_option(__version__, "--version", prog_name="mware-iam",
                      message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, home: str | None, db: str | None, read_only: bool) -> None:
    """MWARE IAM: identity administration and provisioning.

    Without a command, opens the console (same as `mware-iam tui`).
    """
    state = ctx.ensure_object(CliState)
    state.home, state.db = home, db
    ctx.call_on_close(state.close)
    if ctx.invoked_subcommand is None:
        from core.cli.console import tui

        ctx.invoke(tui, read_only=read_only)
    elif read_only:
        raise click.UsageError("--read-only before a command opens the console read-only; "
                               "give it to the command instead (e.g. `tui --read-only`)")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="mware-iam")
