"""``mware-iam ssh-serve``: the console over SSH, for the operators' keys only."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import click

from core.cli.context import CliState
from core.cli.serve import _configure_logging
from core.configfile.operators import load
from core.home import Home
from core.operators import path_in


@click.command("ssh-serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=2222, show_default=True)
@click.option("--idle-timeout", type=click.IntRange(1, 24 * 60), default=30,
              show_default=True, metavar="MINUTES", help="Close a session idle this long.")
@click.option("--max-sessions", type=click.IntRange(1, 1000), default=16, show_default=True,
              help="Most console sessions open at once.")
def ssh_serve(host: str, port: int, idle_timeout: int, max_sessions: int) -> None:
    """Serve the console over SSH to the operators (`mware-iam operator add`).

    Each session runs its own console, with the operator's name on every write it
    audits; read-only operators get the read-only console. Provisioning jobs are run by a
    `mware-iam serve` or `worker` beside it."""
    from core import sshserve

    state = click.get_current_context().find_object(CliState) or CliState()
    home = Home.resolve(state.home, state.db)
    home.ensure()
    operators = load(path_in(home))  # a malformed file is refused now, at its line
    if not operators:
        click.echo(f"warning: no operators in {path_in(home)}: nobody can log in "
                   "(mware-iam operator add NAME --key-file ~/.ssh/id_ed25519.pub)", err=True)
    _configure_logging()
    key = sshserve.host_key(home)
    click.echo(f"SSH host key fingerprint: {key.get_fingerprint()}")
    serving = (f"serving the console over SSH on {host}:{port} "
               f"({len(operators)} operator{'s' if len(operators) != 1 else ''})")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(sshserve.serve(home, host, port, idle_timeout=idle_timeout * 60.0,
                                   max_sessions=max_sessions,
                                   listening=lambda: click.echo(serving, err=True)))
    logging.getLogger("mware_iam.ssh").info("stopped")
