"""``mware-iam``: the command-line face of the engine.

Every command calls ``core``; none holds a business rule. Errors of the engine become one
line on stderr and the exit code of their type (see ``mware-iam --help``).
"""

from __future__ import annotations

from typing import Any

import click

from core import __version__
from core.cli.apps import app_group
from core.cli.audit import audit
from core.cli.config import config_group
from core.cli.console import tui
from core.cli.context import CliState
from core.cli.demo import demo, web
from core.cli.idps import idp_group
from core.cli.output import error_boundary
from core.cli.provisioning import provisioning_group
from core.cli.roles import role_group
from core.cli.serve import serve, worker
from core.cli.users import user_group
from core.cli.userstores import userstore_group
from core.home import DB_ENV, HOME_ENV

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


@click.group(cls=IamGroup, invoke_without_command=True, epilog=EPILOG,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--home", type=click.Path(file_okay=False), envvar=HOME_ENV, show_envvar=True,
              help="Home directory of the deployment (default: the XDG data dir).")
@click.option("--db", envvar=DB_ENV, show_envvar=True, metavar="URL",
              help="System database URL (default: SQLite in the home).")
@click.version_option(__version__, "--version", prog_name="mware-iam",
                      message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, home: str | None, db: str | None) -> None:
    """MWARE IAM: identity administration and provisioning.

    Without a command, opens the console (same as `mware-iam tui`).
    """
    state = ctx.ensure_object(CliState)
    state.home, state.db = home, db
    ctx.call_on_close(state.close)
    if ctx.invoked_subcommand is None:
        ctx.invoke(tui)


for command in (tui, config_group, userstore_group, user_group, role_group, app_group, idp_group,
                provisioning_group, serve, worker, audit, demo, web):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="mware-iam")
