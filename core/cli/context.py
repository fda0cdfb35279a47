"""What every command shares: the deployment, the initiator, and the admin's inputs.

The deployment is opened lazily, on the first command that needs it, so ``--help`` and
usage errors never touch a database. Passwords come from a hidden prompt (asked twice) or
from stdin with ``--password-stdin``; there is deliberately no option that takes one on the
command line, where it would land in shell history and ``ps``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click

from core.errors import InvalidInput
from core.identity.events import Face, Initiator
from core.names import parse_name

if TYPE_CHECKING:  # the engine is imported when a command first opens the deployment
    from core.iam import Iam
    from core.passwords import Argon2Params

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliState:
    """The deployment selected by ``--home`` / ``--db``; opened on first use."""

    home: str | None = None
    db: str | None = None
    #: Password hashing cost; None means the production defaults (tests pass cheap ones).
    argon2: Argon2Params | None = None
    _iam: Iam | None = field(default=None, repr=False)

    @property
    def iam(self) -> Iam:
        if self._iam is None:
            from core.iam import Iam

            self._iam = Iam.open(self.home, self.db, self.argon2)
        return self._iam

    def close(self) -> None:
        if self._iam is not None:
            self._iam.close()
            self._iam = None


def current_iam() -> Iam:
    state = click.get_current_context().find_object(CliState)
    if state is None:  # only when a command is invoked outside the ``mware-iam`` group
        raise RuntimeError("no CliState on the click context")
    return state.iam


def close_iam() -> None:
    """Close the deployment opened for this command (the next ``current_iam`` reopens
    it): ``serve --processes`` forks with no connection open."""
    state = click.get_current_context().find_object(CliState)
    if state is not None:
        state.close()


def admin() -> Initiator:
    """Writes from the CLI are the OS user's, through the resident application."""
    return Initiator.admin(Face.CLI)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON (stable keys, ISO 8601 times) instead of a table.")(f)


def yes_option(f: F) -> F:
    return click.option("--yes", "-y", is_flag=True,
                        help="Do not ask for confirmation (required without a terminal).")(f)


# click.ParamType is generic in recent click, not in 8.1 (which pyproject allows): a
# subscript here would fail there at import.
class KeyValue(click.ParamType):  # type: ignore[type-arg]
    """``KEY=VALUE`` with a non-empty key and value (remove a value with ``--unset``)."""

    name = "KEY=VALUE"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        key, sep, val = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"{value!r} is not KEY=VALUE (e.g. emailaddress=alice@example.com)",
                      param, ctx)
        if not val:
            self.fail(f"{value!r} has an empty value (use --unset to remove a claim)",
                      param, ctx)
        return key.strip(), val


def pairs_to_dict(pairs: Sequence[tuple[str, str]], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidInput(f"{what} {key!r} is given twice")
        out[key] = value
    return out


def is_interactive() -> bool:
    return sys.stdin.isatty()


def password_from_stdin() -> str:
    """The whole of stdin, without its final line break; one line, not empty."""
    data = sys.stdin.read()
    if data.endswith("\n"):
        data = data[:-1]
    if data.endswith("\r"):
        data = data[:-1]
    if not data:
        raise InvalidInput("--password-stdin: stdin holds no password")
    if "\n" in data or "\r" in data:
        raise InvalidInput("--password-stdin: stdin holds more than one line; "
                           "give the password alone")
    return data


def password_from_prompt(user: str) -> str:
    if not is_interactive():
        raise InvalidInput("no terminal to prompt for the password of "
                           f"{user}: pipe it with --password-stdin")
    value: str = click.prompt(f"Password for {user}", hide_input=True,
                              confirmation_prompt=True, err=True)
    return value


def confirm(action: str, yes: bool, consequence: str = "") -> None:
    """Ask before a destructive write (``action`` like "delete user PRIMARY/bob").

    Without a terminal there is nobody to ask: refuse unless ``--yes`` was given.
    """
    if yes:
        return
    if not is_interactive():
        raise InvalidInput(f"refusing to {action} without confirmation: there is no "
                           "terminal to ask; pass --yes")
    question = f"{action[:1].upper()}{action[1:]}?" + (f" {consequence}" if consequence else "")
    if not click.confirm(question, default=False, err=True):
        click.echo("not confirmed; nothing was changed", err=True)
        raise click.exceptions.Exit(1)


def domain_of(iam: Iam, domain: str) -> str:
    """The canonical spelling of an enabled userstore domain (a clear error otherwise)."""
    canonical = parse_name(f"{domain}/x").domain
    iam.stores.store(canonical)
    return canonical


def short_claim(iam: Iam, uri: str) -> str:
    """``emailaddress`` for ``http://wso2.org/claims/emailaddress``; unknown URIs as given."""
    claim = iam.claims.claims.get(uri)
    return claim.short if claim else uri


def short_claims(iam: Iam, claims: Mapping[str, str]) -> dict[str, str]:
    return dict(sorted((short_claim(iam, uri), v) for uri, v in claims.items()))
