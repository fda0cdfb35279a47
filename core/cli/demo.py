"""``mware-iam demo`` and ``mware-iam web``: the console as a walkthrough, and in a browser.

``demo`` needs no deployment: it makes a throwaway one with local peers
(``core.demo.deployment``). ``web`` serves the console through textual-serve (the
optional ``web`` extra) on a loopback address only: every browser tab runs its own console
process on the selected deployment (or on a demo one, with ``--demo``). textual-serve has
no login, so anyone who reaches the port has the console; beyond this machine the console
is served by ``mware-iam ssh-serve``, where each operator logs in with their key.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shlex
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from core.cli.console import check_theme, console_options, require_terminal, scim_port_option
from core.cli.context import CliState
from core.console_process import console_argv
from core.errors import InvalidInput, StoreUnavailable
from core.home import DB_ENV

if TYPE_CHECKING:
    from core.demo.deployment import Demo

WEB_HOST = "127.0.0.1"
WEB_PORT = 8000
DEMO_SCIM_PORT = 8080


def _activity_option(f: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--activity", is_flag=True,
        help="Generate activity: users are created, changed and deleted every 2 s, and the "
             "partner-directory target fails for 30 s of every 2 minutes, then recovers.")(f)


@contextlib.contextmanager
def _demo(activity: bool, scim_port: int | None = None) -> Iterator[Demo]:
    from connectors.sandbox.peers import PeerUnavailable
    from core.demo.deployment import demo_deployment

    try:
        with demo_deployment(activity, scim_port=scim_port) as demo:
            yield demo
    except PeerUnavailable as exc:
        raise StoreUnavailable(f"the demo's SCIM peer could not start: {exc}") from exc


@click.command("demo")
@_activity_option
@scim_port_option(DEMO_SCIM_PORT)
@click.option("--no-scim", is_flag=True, help="Do not serve the inbound SCIM API.")
@console_options
def demo(activity: bool, scim_port: int, no_scim: bool, theme: str | None,
         no_workers: bool) -> None:
    """Try the console on a throwaway deployment seeded from sample_config/.

    A local SCIM peer (scim2-server on 127.0.0.1:8787) and a Google Workspace sandbox
    (127.0.0.1:8788, with the sandbox extra) receive the provisioning, and the
    inbound SCIM API is served on 127.0.0.1:8080/scim2 (the HR portal's token is in
    hr-portal.token in the demo's home: `?` or the palette's "Show the demo's token file"
    name it); the deployment, the peer and their data are gone when the console closes.
    """
    require_terminal()
    check_theme(theme)
    with _demo(activity, None if no_scim else scim_port) as env:
        from tui.app import InboundAccess, run_console

        inbound = None
        if env.scim_url and env.token_file:
            inbound = InboundAccess(env.scim_url, env.token_file, env.application)
        run_console(env.iam, workers=not no_workers, theme=theme,
                    deployment=demo_header(env), inbound=inbound)


def demo_header(env: Demo) -> str:
    """The header's deployment line: what a walkthrough needs first, short enough for 80
    columns; the token file's path (long: a temporary directory) is in ``?`` and ctrl+p."""
    inbound = f"SCIM in {env.scim_url} (token: ? or ctrl+p) · " if env.scim_url else ""
    return f"demo · {inbound}peer {env.peer_url}"


@click.command("web")
@click.option("--host", default=WEB_HOST, show_default=True,
              help="A loopback address to listen on: the browser console has no login, so it "
                   "is never served beyond this machine (use ssh-serve or an SSH tunnel).")
@click.option("--port", type=click.IntRange(1, 65535), default=WEB_PORT, show_default=True)
@click.option("--read-only", is_flag=True, help="Browse only: every write is disabled.")
@click.option("--demo", "demo_mode", is_flag=True,
              help="Serve the demo deployment (as `mware-iam demo`) instead.")
@_activity_option
@console_options
@click.pass_obj
def web(state: CliState, host: str, port: int, read_only: bool, demo_mode: bool,
        activity: bool, theme: str | None, no_workers: bool) -> None:
    """Serve the console in a browser (needs the `web` extra: pip install 'mware-iam[web]')."""
    from tui.launch import browser_serving_available, serve_in_browser

    if not browser_serving_available():
        raise InvalidInput("the browser console needs textual-serve: pip install "
                           "'mware-iam[web]' (or pip install textual-serve)")
    check_theme(theme)
    if activity and not demo_mode:
        raise InvalidInput("--activity only works with --demo")
    _check_loopback(host)
    _check_port(host, port)
    flags = [*(["--read-only"] if read_only else []), *(["--no-workers"] if no_workers else []),
             *(["--theme", theme] if theme else [])]
    with contextlib.ExitStack() as stack:
        if demo_mode:
            home: str | None = str(stack.enter_context(_demo(activity)).home)
            db = None
        else:
            home, db = state.home, state.db
        # textual-serve hands each tab's console this process's environment: the URL goes
        # there, never on the console's command line (core.console_process says why)
        os.environ.pop(DB_ENV, None)
        if db:
            os.environ[DB_ENV] = db
        command = shlex.join(console_argv(home, ["tui", *flags]))
        click.echo(f"Serving the console on http://{_url_host(host)}:{port} (ctrl+c stops)")
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per demo request
        serve_in_browser(command, host, port, "MWARE IAM")


def _check_loopback(host: str) -> None:
    """Refuse an address beyond this machine: nothing but the port guards the console."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise InvalidInput(
            f"--host: {host!r} is not a loopback address; the browser console has no "
            "operator login, so it listens on this machine only (127.0.0.1, ::1, localhost). "
            "Serve operators elsewhere with `mware-iam ssh-serve` (each logs in with their "
            "key), or reach this one through an SSH tunnel (ssh -L).")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            raise InvalidInput(f"--port: {_url_host(host)}:{port} is in use; choose another "
                               "port") from None
