"""``mware-iam audit``: the audit log, newest first."""

from __future__ import annotations

import json

import click

from core.cli.context import current_iam, json_option
from core.cli.output import emit_json, table
from core.identity.events import describe_actor


@click.command("audit")
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True,
              help="How many entries (newest first).")
@click.option("--action", help="Only this action, e.g. user.add, role.members, app.save.")
@click.option("--target", help="Only this target, e.g. PRIMARY/alice.")
@json_option
def audit(limit: int, action: str | None, target: str | None, as_json: bool) -> None:
    """Who changed what, when, from which face and application."""
    entries = current_iam().audit_log(limit, action, target)
    if as_json:
        emit_json({"items": [{"at": e.at, "actor": e.actor,
                              "by": describe_actor(e.actor, e.face, e.application), "face": e.face,
                              "application": e.application, "action": e.action,
                              "target": e.target, "detail": e.detail} for e in entries]})
        return
    table(["at", "actor", "face", "application", "action", "target", "detail"],
          [[e.at, describe_actor(e.actor, e.face, e.application), e.face, e.application,
            e.action, e.target,
            json.dumps(e.detail, separators=(",", ":"), sort_keys=True) if e.detail else ""]
           for e in entries], "no audit entries")
