"""``mware-iam idp ...``: identity providers, read-only (edit them with ``config apply``).

Connector secrets are only ever shown masked (``ConnectorConfig.masked``).
"""

from __future__ import annotations

from typing import Any

import click

from core.cli.context import current_iam, json_option, short_claim
from core.cli.output import emit_json, record, table, text
from core.iam import Iam
from core.idps import IdentityProvider


@click.group("idp")
def idp_group() -> None:
    """Identity providers and their outbound connectors."""


def idp_json(iam: Iam, idp: IdentityProvider) -> dict[str, Any]:
    return {
        "name": idp.name, "description": idp.description, "enabled": idp.enabled,
        "claim_mappings": [{"local": short_claim(iam, m.local), "remote": m.remote,
                            "default": m.default} for m in idp.claim_mappings],
        "role_mappings": [{"local": m.local, "remote": m.remote} for m in idp.role_mappings],
        "provisioning_roles": list(idp.provisioning_roles),
        "jit": {"enabled": idp.jit.enabled, "userstore": idp.jit.userstore,
                "scheme": idp.jit.scheme,
                "associate_local_user": idp.jit.associate_local_user},
        "connectors": [{"type": c.type, "enabled": c.enabled, "default": c.default,
                        "properties": dict(sorted(c.masked().items()))}
                       for c in idp.connectors],
    }


@idp_group.command("list")
@json_option
def list_idps(as_json: bool) -> None:
    """Identity providers with their connectors and JIT setting."""
    iam = current_iam()
    idps = [iam.get_idp(n) for n in iam.idp_names()]
    if as_json:
        emit_json({"items": [idp_json(iam, i) for i in idps]})
        return
    table(["name", "enabled", "connectors", "jit"],
          [[i.name, i.enabled, ", ".join(c.type + ("" if c.enabled else " (disabled)")
                                         for c in i.connectors), i.jit.enabled]
           for i in idps], "no identity providers")


@idp_group.command("show")
@click.argument("name")
@json_option
def show_idp(name: str, as_json: bool) -> None:
    """An identity provider: mappings, provisioning roles, JIT, connectors (secrets masked)."""
    iam = current_iam()
    idp = iam.get_idp(name)
    if as_json:
        emit_json(idp_json(iam, idp))
        return
    claims = [f"{short_claim(iam, m.local)} -> {m.remote}"
              + (f"  (default {m.default!r})" if m.default is not None else "")
              for m in idp.claim_mappings]
    record([
        ("name", idp.name), ("description", idp.description), ("enabled", idp.enabled),
        ("claim mappings", claims),
        ("role mappings", [f"{m.local} -> {m.remote}" for m in idp.role_mappings]),
        ("provisioning roles", list(idp.provisioning_roles)),
        ("jit", _jit(idp)),
    ])
    for c in idp.connectors:
        flags = ", ".join(["enabled" if c.enabled else "disabled",
                           *(["default"] if c.default else [])])
        record([(f"connector {c.type} ({flags})",
                 {k: text(v) for k, v in sorted(c.masked().items())})])


def _jit(idp: IdentityProvider) -> str:
    jit = idp.jit
    if not jit.enabled:
        return "no"
    return f"yes, into {jit.userstore}, {jit.scheme}" + (
        ", associates local users" if jit.associate_local_user else "")
