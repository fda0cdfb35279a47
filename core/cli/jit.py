"""``mware-iam jit login`` (a federated login through the intake's own code path) and
``mware-iam sandbox idp`` (signed test logins by an identity provider whose demo keys it
creates)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from core.cli.context import KeyValue, admin, current_iam, pairs_to_dict
from core.cli.output import echo, emit_json
from core.errors import InvalidInput


@click.group("jit")
def jit_group() -> None:
    """JIT provisioning: federated logins that create, update and link users."""


@jit_group.command("login")
@click.argument("idp")
@click.option("--app", "app", required=True, help="The application logged into.")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="An OIDC ID token (JWS) or a base64 SAML Response.")
def login(idp: str, app: str, token_file: Path) -> None:
    """Log in through identity provider IDP as `POST /jit/IDP` would; print the result."""
    from core.jit.intake import JitIntake

    iam = current_iam()
    iam.get_app(app)  # NotFound names it
    text = token_file.read_text(encoding="utf-8").strip()
    fed = iam.get_idp(idp).federation
    key = "saml_response" if fed is not None and fed.protocol == "saml2" else "id_token"
    emit_json(JitIntake(iam).login(app, idp, {key: text}).to_json())


@click.command("idp")
@click.argument("idp")
@click.option("--username", required=True, help="The login's username claim.")
@click.option("--claim", "claims", type=KeyValue(), multiple=True,
              help="A remote claim: --claim email=a@example.com (repeatable).")
@click.option("--group", "groups", multiple=True, help="A remote group (repeatable).")
@click.option("--app", "audience", default="hr-portal", show_default=True,
              help="The audience (the application logged into).")
@click.option("--recipient", metavar="URL",
              help="SAML 2.0: the intake's URL the assertion names (https://HOST/jit/IDP).")
@click.option("--configure", is_flag=True,
              help="First point IDP's federation at the sandbox keys (OIDC unless IDP "
                   "speaks SAML 2.0 already).")
def sandbox_idp(idp: str, username: str, claims: tuple[tuple[str, str],
                ...], groups: tuple[str, ...], audience: str, recipient: str | None,
                configure: bool) -> None:
    """Print a signed login for identity provider IDP, made with demo keys kept in the
    home (never for production). Feed it to `mware-iam jit login` or `POST /jit/IDP`."""
    from core.jit.sandbox import SandboxIdp

    iam = current_iam()
    current = iam.get_idp(idp)
    fed = current.federation
    issuer = fed.issuer if fed is not None else "https://sandbox-idp.example.test"
    sandbox = SandboxIdp.of_home(iam.home.path, issuer)
    protocol = fed.protocol if fed is not None else "oidc"
    if configure:
        fed = sandbox.federation(protocol, audience)
        iam.save_idp(admin(), dataclasses.replace(current, federation=fed))
    if fed is None:
        raise InvalidInput(f"identity provider {idp} has no federation settings: give "
                           "--configure to use the sandbox's keys")
    fed = dataclasses.replace(fed, audience=(audience,))
    body = sandbox.login_body(fed, username, pairs_to_dict(claims, "claim"), groups,
                              recipient)
    echo(next(iter(body.values())))
