"""``mware-iam sandbox TYPE``: run one connector's sandbox peer on a loopback port.

The peers stand in for services that cannot run here (Google Workspace, Salesforce, SPML
providers) and enforce their published contracts; demos and tests point connectors at
them. ``SANDBOXES`` names each peer's click command (``"module:command"``), imported only
when it runs.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

#: Sandbox peer commands by name: ``"module:command"``.
SANDBOXES: dict[str, str] = {
    "google": "connectors.sandbox.google:sandbox_command",
    "salesforce": "connectors.sandbox.salesforce:salesforce_command",
    "spml": "connectors.sandbox.spml:sandbox_command",
}


class SandboxGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SANDBOXES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SANDBOXES:
            return None
        module, name = SANDBOXES[cmd_name].split(":")
        command: Any = getattr(importlib.import_module(module), name)
        return command if isinstance(command, click.Command) else None


@click.group("sandbox", cls=SandboxGroup)
def sandbox() -> None:
    """Run a connector's sandbox peer (Google, Salesforce, SPML) on a loopback port."""
