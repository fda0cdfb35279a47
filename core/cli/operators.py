"""``mware-iam operator add|list|remove``: who may open the console over SSH."""

from __future__ import annotations

from pathlib import Path

import click

from core.cli.context import CliState, json_option
from core.cli.output import emit_json, table
from core.configfile.operators import add, load, remove
from core.errors import InvalidInput
from core.home import Home
from core.operators import Operator, path_in


def operators_path() -> Path:
    state = click.get_current_context().find_object(CliState) or CliState()
    home = Home.resolve(state.home, state.db)
    home.ensure()
    return path_in(home)


@click.group("operator")
def operator_group() -> None:
    """Operators: the people `mware-iam ssh-serve` lets in, each by their SSH public keys."""


@operator_group.command("add")
@click.argument("name")
@click.option("--key", "keys", multiple=True, metavar="PUBLIC_KEY",
              help="An OpenSSH public key line (ssh-ed25519 AAAA... comment); repeatable.")
@click.option("--key-file", "key_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file of OpenSSH public keys (e.g. ~/.ssh/id_ed25519.pub); repeatable.")
@click.option("--read-only", is_flag=True, help="The operator gets the read-only console.")
def operator_add(name: str, keys: tuple[str, ...], key_files: tuple[Path, ...],
                 read_only: bool) -> None:
    """Add operator NAME with one or more public keys."""
    every = [*keys]
    for f in key_files:
        every += [line.strip() for line in f.read_text(errors="replace").splitlines()
                  if line.strip() and not line.startswith("#")]
    if not every:
        raise InvalidInput("give at least one --key or --key-file")
    add(operators_path(), Operator(name, tuple(every), read_only))
    click.echo(f"operator {name} added ({len(every)} key{'s' if len(every) > 1 else ''}"
               f"{', read-only' if read_only else ''})")


@operator_group.command("list")
@json_option
def operator_list(as_json: bool) -> None:
    """The operators, their keys' fingerprints-free types and whether read-only."""
    ops = load(operators_path())
    if as_json:
        emit_json({"items": [{"name": o.name, "keys": list(o.keys), "read_only": o.read_only}
                             for o in ops]})
        return
    table(["name", "keys", "read_only"],
          [[o.name, ", ".join(" ".join(k.split()[::2][:2]) for k in o.keys),
            "yes" if o.read_only else "no"] for o in ops], "no operators")


@operator_group.command("remove")
@click.argument("name")
def operator_remove(name: str) -> None:
    """Remove operator NAME (their open sessions run on until they leave)."""
    remove(operators_path(), name)
    click.echo(f"operator {name} removed")
