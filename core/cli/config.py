"""``mware-iam config validate|apply|export``: configuration as code (YAML)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import click

from core.cli.context import current_iam
from core.cli.output import echo, note
from core.errors import InvalidInput
from core.files import write_private
from core.identity.events import Face, Initiator

EXIT_INVALID = InvalidInput.exit_code
YamlFile = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group("config")
def config_group() -> None:
    """Configuration as code (YAML): validate, apply, export.

    One file describes userstores, claims, identity providers, applications, and seed
    users and roles.
    """


def _invalid(errors: Iterable[object]) -> click.exceptions.Exit:
    """Print each error as ``file:line:col: message``; the exit to raise."""
    count = 0
    for error in errors:
        note(str(error))
        count += 1
    note(f"{count} error{'s' if count != 1 else ''}; nothing was written")
    return click.exceptions.Exit(EXIT_INVALID)


@config_group.command("validate")
@click.argument("file", type=YamlFile)
def validate(file: Path) -> None:
    """Check FILE on its own: syntax, schema, references within it (no database).

    Each error is printed as FILE:LINE:COLUMN: message; exit 2 when there is any.
    `config apply --dry-run` checks it against the deployment as well.
    """
    from core.configfile.files import check_file

    report = check_file(file)
    for warning in report.warnings:
        note(str(warning))
    errors = report.errors
    if errors:
        raise _invalid(errors)
    echo(f"{file}: valid")


@config_group.command("apply")
@click.argument("file", type=YamlFile)
@click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")
def apply(file: Path, dry_run: bool) -> None:
    """Make the deployment match FILE (idempotent, all or nothing); print what changed."""
    from core.configfile.errors import ConfigInvalid
    from core.configfile.files import apply_file

    try:
        changes = apply_file(current_iam(), file, Initiator.admin(Face.CONFIG),
                             dry_run=dry_run)
    except ConfigInvalid as exc:
        raise _invalid(exc.errors) from None
    for line in changes:
        echo(line)
    if not changes:
        echo("nothing changed")
    if dry_run:
        note("dry run: nothing was written")


@config_group.command("export")
@click.option("--with-users", is_flag=True, help="Include the users and their roles.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (replaced atomically, mode 0600) instead of stdout.")
def export(with_users: bool, output: Path | None) -> None:
    """Print the configuration as YAML; secrets appear as references, never values."""
    from core.configfile.export import export_config

    text = export_config(current_iam(), include_users=with_users)
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    write_atomically(output, text)
    note(f"wrote {output}")


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step: a crash leaves the old file or the new, never half."""
    try:
        write_private(path, text)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be written: {exc.strerror}") from exc
