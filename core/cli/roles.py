"""``mware-iam role ...``: Internal roles and the groups of each userstore."""

from __future__ import annotations

from typing import Any

import click

from core.cli.context import admin, confirm, current_iam, json_option, yes_option
from core.cli.output import echo, emit_json, note, record, table
from core.identity.service import RoleView


@click.group("role")
def role_group() -> None:
    """Internal roles and userstore groups, and their members.

    Internal/NAME is an internal role (it may hold users of any store); any other NAME
    is a group of that userstore (a bare name means PRIMARY).
    """


def role_json(role: RoleView, members: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"name": role.qualified_name, "domain": role.domain,
                            "id": role.id, "internal": role.internal}
    if members is not None:
        data["members"] = members
    return data


def _kind(role: RoleView) -> str:
    return "internal role" if role.internal else "group"


@role_group.command("add")
@click.argument("name")
@click.option("--member", "members", multiple=True, help="A user to add (repeatable).")
def add_role(name: str, members: tuple[str, ...]) -> None:
    """Add role NAME, optionally with members."""
    role = current_iam().identity.add_role(admin(), name, list(members))
    echo(f"added {_kind(role)} {role.qualified_name}")


@role_group.command("list")
@click.option("--domain", help="Only this domain (Internal, PRIMARY, ...).")
@click.option("--prefix", help="Only names starting with this.")
@click.option("--limit", type=click.IntRange(1, 10000), default=1000, show_default=True)
@json_option
def list_roles(domain: str | None, prefix: str | None, limit: int, as_json: bool) -> None:
    """Roles of every domain (Internal first), or of one."""
    roles = current_iam().identity.list_roles(domain, prefix, limit)
    if as_json:
        emit_json({"items": [role_json(r) for r in roles]})
        return
    table(["name", "kind"], [[r.qualified_name, _kind(r)] for r in roles], "no roles found")


@role_group.command("show")
@click.argument("name")
@json_option
def show_role(name: str, as_json: bool) -> None:
    """A role and its members."""
    iam = current_iam()
    role = iam.identity.get_role(name)
    members = [u.qualified_name for u in iam.identity.members_of(role.qualified_name)]
    if as_json:
        emit_json(role_json(role, members))
        return
    record([("name", role.qualified_name), ("kind", _kind(role)), ("id", role.id),
            ("members", members)])


@role_group.command("assign")
@click.argument("role")
@click.argument("users", nargs=-1, required=True)
def assign(role: str, users: tuple[str, ...]) -> None:
    """Add USERS to ROLE (users already in it are left as they are)."""
    iam = current_iam()
    changed = iam.identity.assign(admin(), role, list(users))
    _report_members(iam.identity.get_role(role), changed, "added to")


@role_group.command("unassign")
@click.argument("role")
@click.argument("users", nargs=-1, required=True)
def unassign(role: str, users: tuple[str, ...]) -> None:
    """Remove USERS from ROLE (users not in it are left as they are)."""
    iam = current_iam()
    changed = iam.identity.unassign(admin(), role, list(users))
    _report_members(iam.identity.get_role(role), changed, "removed from")


def _report_members(role: RoleView, changed: list[str], verb: str) -> None:
    if not changed:
        note("nothing changed")
        return
    for user in changed:
        echo(f"{verb} {role.qualified_name}: {user}")


@role_group.command("rename")
@click.argument("old")
@click.argument("new")
def rename_role(old: str, new: str) -> None:
    """Rename role OLD to NEW (within its domain; members stay)."""
    iam = current_iam()
    before = iam.identity.get_role(old)
    after = iam.identity.rename_role(admin(), old, new)
    echo(f"renamed {_kind(before)} {before.qualified_name} to {after.qualified_name}")


@role_group.command("delete")
@click.argument("name")
@yes_option
def delete_role(name: str, yes: bool) -> None:
    """Delete role NAME (its members lose it; the users stay)."""
    iam = current_iam()
    role = iam.identity.get_role(name)
    count = len(iam.identity.members_of(role.qualified_name))
    confirm(f"delete {_kind(role)} {role.qualified_name}", yes,
            f"Its {count} member{'s' if count != 1 else ''} will lose it.")
    iam.identity.delete_role(admin(), role.qualified_name)
    echo(f"deleted {_kind(role)} {role.qualified_name}")
