"""``mware-iam user ...``: users of every userstore, through the identity service."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from core.claims import USERNAME
from core.cli.context import (
    KeyValue,
    admin,
    confirm,
    current_iam,
    domain_of,
    is_interactive,
    json_option,
    pairs_to_dict,
    password_from_prompt,
    password_from_stdin,
    short_claims,
    yes_option,
)
from core.cli.output import echo, emit_json, note, record, table
from core.csv_import import import_csv
from core.errors import AlreadyExists, InvalidInput
from core.iam import Iam
from core.identity.service import DEFAULT_PAGE_SIZE, UserView
from core.names import parse_name

#: Claims shown as columns by ``user list`` (every claim is in ``user show`` and ``--json``).
LIST_COLUMNS = (("given name", "givenname"), ("last name", "lastname"),
                ("email", "emailaddress"))


@click.group("user")
def user_group() -> None:
    """Users of every userstore: add, list, show, update, passwd, delete, import.

    NAME is DOMAIN/name; a bare name means PRIMARY (and, when reading, the secondaries
    in their order). Claims are given by short name (emailaddress) or by URI.
    """


def _claims(iam: Iam, user: UserView) -> dict[str, str]:
    """Claims by short name, without the username (it is the user's name)."""
    return short_claims(iam, {uri: v for uri, v in user.claims.items() if uri != USERNAME})


def user_json(iam: Iam, user: UserView, roles: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": user.qualified_name, "domain": user.domain, "username": user.username,
        "id": user.id, "created": user.created, "modified": user.modified,
        "claims": _claims(iam, user),
    }
    if roles is not None:
        data["roles"] = roles
    return data


def _password_source(prompt: bool, stdin: bool, none: bool) -> str:
    """prompt, stdin or none; prompting is the default only on a terminal."""
    chosen = [name for name, on in (("prompt", prompt), ("stdin", stdin), ("none", none)) if on]
    if len(chosen) > 1:
        raise click.UsageError("give only one of --password-prompt, --password-stdin and "
                               "--no-password")
    if chosen:
        return chosen[0]
    if not is_interactive():
        raise InvalidInput("no terminal to prompt for a password: pass --password-stdin "
                           "(and pipe it in) or --no-password")
    return "prompt"


@user_group.command("add")
@click.argument("name")
@click.option("--claim", "claims", type=KeyValue(), multiple=True,
              help="Set a claim, e.g. --claim emailaddress=alice@example.com (repeatable).")
@click.option("--role", "roles", multiple=True,
              help="Join a role: Internal/name or a group of the user's store (repeatable).")
@click.option("--password-prompt", is_flag=True,
              help="Ask for the password twice, hidden (the default on a terminal).")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from stdin, as `docker login` does.")
@click.option("--no-password", is_flag=True,
              help="No password: the user cannot log in until `user passwd`.")
def add_user(name: str, claims: tuple[tuple[str, str], ...], roles: tuple[str, ...],
             password_prompt: bool, password_stdin: bool, no_password: bool) -> None:
    """Add user NAME. The password never goes on the command line."""
    values = pairs_to_dict(claims, "claim")
    source = _password_source(password_prompt, password_stdin, no_password)
    iam = current_iam()
    secret: str | None = None
    if source == "stdin":
        secret = password_from_stdin()
    elif source == "prompt":
        # Refuse a taken name or an unknown domain before asking for a password.
        qn = parse_name(name)
        if iam.stores.store(qn.domain).get_user_by_name(qn.name) is not None:
            raise AlreadyExists(f"user {qn} already exists")
        secret = password_from_prompt(name)
    user = iam.identity.add_user(admin(), name, secret, values, list(roles))
    echo(f"added user {user.qualified_name}")


@user_group.command("list")
@click.option("--domain", default="PRIMARY", show_default=True, help="Userstore domain.")
@click.option("--prefix", help="Only usernames starting with this.")
@click.option("--claim", type=KeyValue(), help="Only users with this exact claim value.")
@click.option("--limit", type=click.IntRange(1, 1000), default=DEFAULT_PAGE_SIZE,
              show_default=True, help="Users per page.")
@click.option("--cursor", help="Continue a listing where the previous page ended.")
@json_option
def list_users(domain: str, prefix: str | None, claim: tuple[str, str] | None, limit: int,
               cursor: str | None, as_json: bool) -> None:
    """One page of a domain's users.

    Paging happens in the userstore: when more users follow, the cursor for the next
    page is printed on stderr (with --json it is the "next_cursor" key).
    """
    iam = current_iam()
    page = iam.identity.list_users(domain_of(iam, domain), limit, cursor, prefix, claim)
    if as_json:
        emit_json({"items": [user_json(iam, u) for u in page.items],
                   "next_cursor": page.next_cursor})
        return
    rows = []
    for u in page.items:
        short = _claims(iam, u)
        rows.append([u.qualified_name, *(short.get(c) for _, c in LIST_COLUMNS)])
    table(["name", *(h for h, _ in LIST_COLUMNS)], rows, "no users found")
    if page.next_cursor:
        note(f"more users: repeat with --cursor {page.next_cursor}")


@user_group.command("show")
@click.argument("name")
@json_option
def show_user(name: str, as_json: bool) -> None:
    """A user's claims (by short name) and roles."""
    iam = current_iam()
    user = iam.identity.get_user(name)
    roles = iam.identity.roles_of(user.qualified_name)
    if as_json:
        emit_json(user_json(iam, user, roles))
        return
    data = user_json(iam, user, roles)
    record([("name", user.qualified_name), ("id", user.id), ("created", user.created),
            ("modified", user.modified), ("claims", data["claims"]), ("roles", roles)])


@user_group.command("update")
@click.argument("name")
@click.option("--set", "set_", type=KeyValue(), multiple=True,
              help="Set a claim: --set CLAIM=VALUE (repeatable).")
@click.option("--unset", multiple=True, metavar="CLAIM", help="Remove a claim (repeatable).")
def update_user(name: str, set_: tuple[tuple[str, str], ...], unset: tuple[str, ...]) -> None:
    """Set or remove claims of user NAME (all in one write)."""
    if not set_ and not unset:
        raise click.UsageError("nothing to change: give --set CLAIM=VALUE or --unset CLAIM")
    values = pairs_to_dict(set_, "claim")
    user = current_iam().identity.update_user(admin(), name, values, list(unset))
    echo(f"updated user {user.qualified_name}")


@user_group.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True,
              help="Read the new password from stdin, as `docker login` does.")
def passwd(name: str, password_stdin: bool) -> None:
    """Set the password of user NAME (asked twice, hidden, unless --password-stdin)."""
    iam = current_iam()
    user = iam.identity.get_user(name)
    secret = password_from_stdin() if password_stdin \
        else password_from_prompt(user.qualified_name)
    iam.identity.set_password(admin(), user.qualified_name, secret)
    echo(f"password of {user.qualified_name} changed")


@user_group.command("delete")
@click.argument("name")
@yes_option
def delete_user(name: str, yes: bool) -> None:
    """Delete user NAME (asks first; without a terminal, --yes is required)."""
    iam = current_iam()
    user = iam.identity.get_user(name)
    confirm(f"delete user {user.qualified_name}", yes, "This cannot be undone.")
    iam.identity.delete_user(admin(), user.qualified_name)
    echo(f"deleted user {user.qualified_name}")


@user_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--domain", help="Domain for usernames without one (default PRIMARY).")
def import_users(file: Path, domain: str | None) -> None:
    """Import users from a CSV file.

    \b
    Header: username (required), password, roles (separated by ;), and any claim by
    short name or URI, e.g.:  username,password,emailaddress,givenname,roles
    An empty cell sets nothing.

    One line is one row (a quoted value cannot span lines; blank lines are ignored).
    Every row ends imported, skipped (the user exists already) or refused; each refused
    row is reported as "line L: reason" on stderr. Exit status: 0 when no row was
    refused (a re-run of the same file skips what it imported and exits 0), 1 when some
    rows were refused (the good ones are imported all the same), 2 when the file itself
    is unusable (bad header, unreadable): then nothing is imported.
    """
    iam = current_iam()
    if domain is not None:
        domain = domain_of(iam, domain)
    with file.open("rb") as fh:
        total = max(sum(1 for _ in fh) - 1, 0)
    with click.progressbar(length=total, label="importing", file=sys.stderr) as bar:
        report = import_csv(iam, file, admin(), domain=domain, progress=bar.update)
    for line, message in report.errors:
        note(f"line {line}: {message}")
    refused = len(report.errors)
    echo(f"imported {report.imported} users; skipped {len(report.skipped)} already present; "
         f"{refused} {'row' if refused == 1 else 'rows'} refused")
    if refused:
        raise click.exceptions.Exit(1)

