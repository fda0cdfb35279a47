"""``mware-iam userstore ...``: the userstores (domains) of a deployment, and their health.

Secret properties (an LDAP bind password, an SQL URL with a password in it) are only ever
shown masked. They never go on the command line as values: give them from stdin
(``--secret-stdin NAME``), at a prompt, or as a reference (``--set
bind_password='${env:LDAP_PASSWORD}'``), which is resolved now and kept for ``config
export``. An SQL URL without a password may be given as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import click

from core.cli.context import (
    KeyValue,
    admin,
    confirm,
    current_iam,
    is_interactive,
    json_option,
    pairs_to_dict,
    password_from_stdin,
    yes_option,
)
from core.cli.output import echo, emit_json, note, record, table, text
from core.errors import AlreadyExists, InvalidInput, NotFound, StoreUnavailable
from core.iam import Iam
from core.names import validate_domain
from core.properties import PropertySpec
from core.secrets import SecretValue, is_reference, resolve_reference
from core.userstores.base import Health
from core.userstores.definitions import (
    STORE_TYPES,
    StoreDefinition,
    shown_properties,
    specs_for,
    url_without_password,
)


@click.group("userstore")
def userstore_group() -> None:
    """Userstores: list (with health), show, test, add, update, disable, enable, remove.

    Types: sql (any SQLAlchemy URL), ldap (read-write LDAP), ldap_ro (read-only LDAP),
    active_directory. `mware-iam userstore types TYPE` lists a type's properties.
    """


def _definition(iam: Iam, domain: str) -> StoreDefinition:
    canonical = validate_domain(domain)
    for d in iam.userstore_definitions():
        if d.domain == canonical:
            return d
    known = ", ".join(d.domain for d in iam.userstore_definitions())
    raise NotFound(f"userstore {canonical} does not exist (known: {known})")


def _health(iam: Iam, d: StoreDefinition) -> Health | None:
    return iam.stores.probe(d) if d.enabled else None


def _health_json(h: Health | None) -> dict[str, Any] | None:
    if h is None:
        return None
    return {"reachable": h.reachable, "detail": h.detail,
            "latency_ms": round(h.latency_ms, 1) if h.latency_ms is not None else None}


def _health_text(h: Health | None) -> str:
    if h is None:
        return "disabled"
    if not h.reachable:
        return f"DOWN: {h.detail}"
    ms = f" ({h.latency_ms:.0f} ms)" if h.latency_ms is not None else ""
    return f"{h.detail}{ms}"


def store_json(d: StoreDefinition, health: Health | None) -> dict[str, Any]:
    return {"domain": d.domain, "type": d.type, "position": d.position, "enabled": d.enabled,
            "description": d.description, "health": _health_json(health),
            "properties": shown_properties(d)}


@userstore_group.command("list")
@click.option("--no-health", is_flag=True, help="Do not contact the stores.")
@json_option
def list_stores(no_health: bool, as_json: bool) -> None:
    """Every userstore in lookup order, with its health (disabled ones are not contacted)."""
    iam = current_iam()
    rows = [(d, None if no_health else _health(iam, d)) for d in iam.userstore_definitions()]
    if as_json:
        emit_json({"items": [{k: v for k, v in store_json(d, h).items() if k != "properties"}
                             for d, h in rows]})
        return
    table(["domain", "type", "enabled", "health", "description"],
          [[d.domain, d.type, d.enabled, "" if no_health and d.enabled else _health_text(h),
            d.description] for d, h in rows], "no userstores")


@userstore_group.command("show")
@click.argument("domain")
@json_option
def show_store(domain: str, as_json: bool) -> None:
    """A userstore: its health and every property (secrets masked, defaults included)."""
    iam = current_iam()
    d = _definition(iam, domain)
    health = _health(iam, d)
    if as_json:
        emit_json(store_json(d, health))
        return
    record([("domain", d.domain), ("type", d.type), ("position", d.position),
            ("enabled", d.enabled), ("description", d.description),
            ("health", _health_text(health)),
            ("properties", {k: text(v) for k, v in shown_properties(d).items()})])


@userstore_group.command("test")
@click.argument("domain")
def test_store(domain: str) -> None:
    """Connect to a userstore (enabled or not) and read its bases; exit 6 when it is down."""
    iam = current_iam()
    d = _definition(iam, domain)
    health = iam.stores.probe(d)
    if not health.reachable:
        raise StoreUnavailable(health.detail if health.detail.startswith("userstore")
                               else f"userstore {d.domain}: {health.detail}")
    echo(f"userstore {d.domain} is reachable: {_health_text(health)}")


@userstore_group.command("types")
@click.argument("store_type", required=False, metavar="[TYPE]")
@json_option
def list_types(store_type: str | None, as_json: bool) -> None:
    """The userstore types, or one type's properties with their defaults."""
    if store_type is None:
        if as_json:
            emit_json({"items": list(STORE_TYPES)})
        else:
            for name in STORE_TYPES:
                echo(name)
        return
    specs = specs_for(store_type)
    if as_json:
        emit_json({"type": store_type, "properties": [
            {"name": s.name, "label": s.label, "type": s.type.value, "required": s.required,
             "secret": s.secret, "default": s.default, "choices": list(s.choices),
             "help": s.help} for s in specs]})
        return
    table(["property", "type", "default", "notes"],
          [[s.name, s.type.value, s.default, _notes(s)] for s in specs], "no properties")


def _notes(spec: PropertySpec) -> str:
    flags = [f for f, on in (("required", spec.required), ("secret", spec.secret)) if on]
    if spec.choices:
        flags.append("one of " + "/".join(spec.choices))
    return "; ".join([*flags, *([spec.help] if spec.help else [])])


# ---------------------------------------------------------------- writes
def _secret_option(f: Any) -> Any:
    return click.option("--secret-stdin", "secret_stdin", metavar="NAME",
                        help="Read the secret property NAME (e.g. bind_password) from stdin.")(f)


def _properties(store_type: str, current: Mapping[str, Any],
                pairs: Sequence[tuple[str, str]], unset: Sequence[str],
                secret_stdin: str | None) -> dict[str, Any]:
    """The store's properties after the changes given on the command line."""
    specs = {s.name: s for s in specs_for(store_type)}
    given = pairs_to_dict(pairs, "property")
    props = {k: v for k, v in current.items() if k not in unset}
    for name, value in given.items():
        spec = specs.get(name)
        props[name] = _secret(name, value) if spec is not None and spec.secret else value
    if secret_stdin is not None:
        spec = specs.get(secret_stdin)
        if spec is None or not spec.secret:
            secrets = ", ".join(n for n, s in specs.items() if s.secret) or "none"
            raise InvalidInput(f"--secret-stdin: {secret_stdin!r} is not a secret property of "
                               f"type {store_type} (its secrets: {secrets})")
        props[secret_stdin] = SecretValue(password_from_stdin())
    for spec in specs.values():
        if spec.secret and spec.required and not props.get(spec.name) and is_interactive():
            value = click.prompt(f"{spec.label} ({spec.name})", hide_input=True, err=True)
            props[spec.name] = SecretValue(value)
    return props


def _secret(name: str, value: str) -> SecretValue:
    """A secret given with --set: a reference (resolved now), or a URL with no password."""
    if is_reference(value):
        resolved = resolve_reference(value)
        if resolved is None:
            raise InvalidInput(f"{name}: {value} is not set in the environment")
        return SecretValue(resolved, value)
    if name == "url" and url_without_password(value):
        return SecretValue(value)
    raise InvalidInput(f"{name} is a secret: give it with --secret-stdin {name}, at the "
                       f"prompt, or as a reference such as --set {name}='${{env:NAME}}', "
                       "not as a value on the command line")


def _after_save(iam: Iam, domain: str, verb: str) -> None:
    d = _definition(iam, domain)
    echo(f"{verb} userstore {d.domain} ({d.type})")
    health = _health(iam, d)
    if health is not None and not health.reachable:
        note(f"warning: {health.detail}")


@userstore_group.command("add")
@click.argument("domain")
@click.option("--type", "store_type", required=True, type=click.Choice(list(STORE_TYPES)),
              help="The kind of store.")
@click.option("--set", "pairs", multiple=True, type=KeyValue(), metavar="NAME=VALUE",
              help="A property (repeatable); see `userstore types TYPE`.")
@_secret_option
@click.option("--description", default="", help="What the store holds.")
@click.option("--disabled", is_flag=True, help="Add it disabled (hidden until enabled).")
def add_store(domain: str, store_type: str, pairs: tuple[tuple[str, str], ...],
              secret_stdin: str | None, description: str, disabled: bool) -> None:
    """Add a secondary userstore; it is consulted after the existing ones."""
    iam = current_iam()
    canonical = validate_domain(domain)
    if canonical in {d.domain for d in iam.userstore_definitions()}:
        raise AlreadyExists(f"userstore {canonical} already exists (change it with "
                            "`userstore update`)")
    props = _properties(store_type, {}, pairs, (), secret_stdin)
    iam.save_userstore(admin(), canonical, store_type, props, not disabled, description)
    _after_save(iam, canonical, "added")


@userstore_group.command("update")
@click.argument("domain")
@click.option("--set", "pairs", multiple=True, type=KeyValue(), metavar="NAME=VALUE",
              help="A property to change (repeatable).")
@click.option("--unset", multiple=True, metavar="NAME",
              help="A property to return to its default (repeatable).")
@_secret_option
@click.option("--description", default=None, help="A new description.")
def update_store(domain: str, pairs: tuple[tuple[str, str], ...], unset: tuple[str, ...],
                 secret_stdin: str | None, description: str | None) -> None:
    """Change properties of a userstore; the store is reopened at once."""
    iam = current_iam()
    d = _definition(iam, domain)
    specs = {s.name for s in specs_for(d.type)}
    unknown = [n for n in unset if n not in specs]
    if unknown:
        raise InvalidInput(f"--unset: unknown property {', '.join(unknown)} of type {d.type}")
    props = _properties(d.type, d.properties, pairs, unset, secret_stdin)
    iam.save_userstore(admin(), d.domain, d.type, props, d.enabled,
                       d.description if description is None else description)
    _after_save(iam, d.domain, "updated")


def _set_enabled(domain: str, enabled: bool) -> None:
    iam = current_iam()
    d = _definition(iam, domain)
    if d.enabled == enabled:
        note(f"userstore {d.domain} is already {'enabled' if enabled else 'disabled'}")
        return
    iam.save_userstore(admin(), d.domain, d.type, d.properties, enabled, d.description)
    _after_save(iam, d.domain, "enabled" if enabled else "disabled")


@userstore_group.command("disable")
@click.argument("domain")
def disable_store(domain: str) -> None:
    """Hide a userstore (its users and groups stay where they are)."""
    _set_enabled(domain, False)


@userstore_group.command("enable")
@click.argument("domain")
def enable_store(domain: str) -> None:
    """Show a disabled userstore again."""
    _set_enabled(domain, True)


@userstore_group.command("remove")
@click.argument("domain")
@yes_option
def remove_store(domain: str, yes: bool) -> None:
    """Forget a userstore: its definition, claim mappings and Internal role memberships.

    The directory or database itself is left as it is.
    """
    iam = current_iam()
    d = _definition(iam, domain)
    confirm(f"remove userstore {d.domain}", yes,
            "Its users lose their Internal roles here; its directory or database is kept.")
    iam.remove_userstore(admin(), d.domain)
    echo(f"removed userstore {d.domain}")
