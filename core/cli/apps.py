"""``mware-iam app ...``: applications, their outbound targets and their API tokens.

A token value is printed exactly once, by ``app token NAME``, alone on stdout so that
``TOKEN=$(mware-iam app token crm)`` captures it; everywhere else a token is its hint (the
last four characters).
"""

from __future__ import annotations

from typing import Any

import click

from core.apps import TOKEN_PREFIX, Application, TokenInfo
from core.cli.context import admin, current_iam, json_option
from core.cli.output import echo, emit_json, iso, note, record, table
from core.iam import Iam
from core.inbound.tokencache import TOKEN_CACHE_SECONDS


@click.group("app")
def app_group() -> None:
    """Applications: inbound settings, outbound targets, API tokens.

    The resident application stands for the console and this CLI; it takes no tokens.
    """


def _hint(token: TokenInfo) -> str:
    return f"{TOKEN_PREFIX}…{token.hint}"


def app_json(app: Application, tokens: list[TokenInfo]) -> dict[str, Any]:
    return {
        "name": app.name, "description": app.description, "resident": app.resident,
        "inbound_domain": app.inbound_domain, "proxy_mode": app.proxy_mode,
        "fail_on_blocking_failure": app.fail_on_blocking_failure,
        "outbound": [{"idp": t.idp, "connector": t.connector, "blocking": t.blocking,
                      "jit": t.jit} for t in app.outbound],
        "tokens": [{"hint": t.hint, "created": t.created, "revoked": t.revoked}
                   for t in tokens],
    }


def _apps(iam: Iam) -> list[tuple[Application, list[TokenInfo]]]:
    return [(iam.get_app(n), iam.app_tokens(n)) for n in iam.app_names()]


@app_group.command("list")
@json_option
def list_apps(as_json: bool) -> None:
    """Applications with their inbound domain, outbound targets and live tokens."""
    apps = _apps(current_iam())
    if as_json:
        emit_json({"items": [app_json(a, t) for a, t in apps]})
        return
    table(["name", "inbound", "outbound", "live tokens"],
          [[a.name, a.inbound_domain, ", ".join(f"{t.idp}:{t.connector}" for t in a.outbound),
            sum(1 for t in tokens if t.revoked is None)] for a, tokens in apps],
          "no applications")


@app_group.command("show")
@click.argument("name")
@json_option
def show_app(name: str, as_json: bool) -> None:
    """An application: inbound, ordered outbound targets, tokens by hint (never values)."""
    iam = current_iam()
    app, tokens = iam.get_app(name), iam.app_tokens(name)
    if as_json:
        emit_json(app_json(app, tokens))
        return
    targets = [f"{i}. {t.idp}:{t.connector}" + ("  blocking" if t.blocking else "")
               + ("  jit" if t.jit else "") for i, t in enumerate(app.outbound, 1)]
    token_lines = [f"{_hint(t)}  created {iso(t.created)}  "
                   + (f"revoked {iso(t.revoked)}" if t.revoked else "live") for t in tokens]
    record([("name", app.name), ("description", app.description),
            ("resident", app.resident), ("inbound domain", app.inbound_domain),
            ("proxy mode", app.proxy_mode),
            ("fail on blocking failure", app.fail_on_blocking_failure),
            ("outbound", targets), ("tokens", token_lines)])


@app_group.command("token")
@click.argument("name")
@click.option("--revoke", metavar="HINT",
              help="Revoke the live tokens ending in HINT (see `app show`) instead; a "
                   f"running SCIM server refuses them within {TOKEN_CACHE_SECONDS:g} seconds.")
def token(name: str, revoke: str | None) -> None:
    """Issue a new inbound API token for application NAME.

    Only the token is printed on stdout; it is shown this once and stored as a digest.
    """
    iam = current_iam()
    if revoke is not None:
        hint = revoke.rsplit("…", 1)[-1]
        n = iam.revoke_token(admin(), name, hint)
        echo(f"revoked {n} token{'s' if n != 1 else ''} of {name} ending in {hint}")
        return
    value = iam.issue_token(admin(), name)
    echo(value)
    note(f"warning: this token is shown only once; store it now. Revoke it with: "
         f"mware-iam app token {name} --revoke {value[-4:]}")
