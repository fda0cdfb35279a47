"""The deployment as a configuration file that applies back without a change.

Only what differs from a new deployment is written (a default property, a built-in claim
left as it was, a false flag are left out), so the file reads like one written by hand.
Secrets are written as references, never as values (see :mod:`core.configfile.refs`).
Users are left out unless asked for: they are seed data, not configuration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from connectors.registry import spec_for
from core import __version__
from core.apps import Application
from core.claims import DEFAULT_LOCAL_CLAIMS, USERNAME, ClaimCatalog, LocalClaim
from core.configfile.deployment import claim_mappings
from core.configfile.operators import load as load_operators
from core.configfile.refs import reference_for
from core.errors import IamError
from core.iam import Iam
from core.idps import ConnectorConfig, IdentityProvider, JitConfig
from core.names import PRIMARY
from core.operators import Operator, path_in
from core.properties import PropertySpec
from core.secrets import SecretValue
from core.userstores.definitions import STORE_TYPES, StoreDefinition, exported_value

_DEFAULT_CLAIMS = {c.uri: c for c in DEFAULT_LOCAL_CLAIMS}
_PAGE = 500


def export_config(iam: Iam, include_users: bool = False) -> str:
    """YAML text; ``include_users`` adds every user with its claims and roles."""
    catalog = iam.claims
    sections: dict[str, list[dict[str, Any]]] = {
        "userstores": [_userstore(d) for d in iam.userstore_definitions()],
        "claims": _claims(catalog, claim_mappings(iam)),
        "roles": [{"name": r.qualified_name} for r in iam.identity.list_roles(limit=10**9)],
        "users": _users(iam, catalog) if include_users else [],
        "identity_providers": [_idp(catalog, iam.get_idp(n)) for n in iam.idp_names()],
        "applications": [_app(iam.get_app(n)) for n in iam.app_names()],
        "operators": [_operator(o) for o in load_operators(path_in(iam.home))],
    }
    header = (f"# mware-iam {__version__} configuration export. Secrets are references "
              "(${env:NAME}); set them\n# in the environment before applying this file "
              "elsewhere. See sample_config/mware-iam.yaml.\n")
    body = {k: v for k, v in sections.items() if v}
    if not body:
        return header + "{}\n"
    return header + yaml.dump(body, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                              default_flow_style=False, width=100)


class _Dumper(yaml.SafeDumper):
    """Indents list items under their key, as people write YAML."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _non_default(specs: Sequence[PropertySpec], values: Mapping[str, Any]) -> dict[str, Any]:
    defaults = {s.name: s.default for s in specs}
    return {k: v for k, v in values.items() if v is not None and v != defaults.get(k)}


def _operator(o: Operator) -> dict[str, Any]:
    """Public keys are no secret: written as they are."""
    out: dict[str, Any] = {"name": o.name, "keys": list(o.keys)}
    if o.read_only:
        out["read_only"] = True
    return out


def _userstore(d: StoreDefinition) -> dict[str, Any]:
    out: dict[str, Any] = {"domain": d.domain, "type": d.type}
    if d.description:
        out["description"] = d.description
    if not d.enabled:
        out["enabled"] = False
    props = _non_default(STORE_TYPES.get(d.type, ()), d.properties)
    props.update({k: exported_value(d.domain, k, v) for k, v in d.properties.items()
                  if isinstance(v, SecretValue)})  # a reference, never the value
    if props or d.domain != PRIMARY:
        out["properties"] = props
    return out


def _short(catalog: ClaimCatalog, uri: str) -> str:
    """The short name when it resolves back to ``uri``, else the URI."""
    short = uri.rsplit("/", 1)[-1]
    try:
        return short if catalog.resolve(short) == uri else uri
    except IamError:
        return uri


def _claims(catalog: ClaimCatalog, mappings: Mapping[str, Mapping[str, str]]
            ) -> list[dict[str, Any]]:
    out = []
    for uri, claim in sorted(catalog.claims.items()):
        default = _DEFAULT_CLAIMS.get(uri)
        base = default or LocalClaim(uri, "", "")
        entry: dict[str, Any] = {"uri": uri}
        if default is None or claim.display_name != default.display_name:
            entry["display_name"] = claim.display_name
        if claim.description != base.description:
            entry["description"] = claim.description
        if claim.regex != base.regex:
            entry["regex"] = claim.regex or ""
        stored = mappings.get(uri, {})
        moved = {d: a for d, a in sorted(stored.items())
                 if default is None or d != PRIMARY or a != default.attribute}
        if moved:
            entry["mappings"] = moved
        if len(entry) > 1:
            out.append(entry)
    return out


def _users(iam: Iam, catalog: ClaimCatalog) -> list[dict[str, Any]]:
    out = []
    for domain in iam.stores.domains:
        cursor: str | None = None
        while True:
            page = iam.identity.list_users(domain, _PAGE, cursor)
            for user in page.items:
                name = user.username if domain == PRIMARY else user.qualified_name
                entry: dict[str, Any] = {"username": name}
                claims = {_short(catalog, uri): v for uri, v in sorted(user.claims.items())
                          if uri != USERNAME and not catalog.claims[uri].read_only}
                if claims:
                    entry["claims"] = claims
                entry["roles"] = sorted(iam.identity.roles_of(user.qualified_name))
                out.append(entry)
            cursor = page.next_cursor
            if cursor is None:
                break
    return out


def _connector(idp: str, c: ConnectorConfig) -> dict[str, Any]:
    spec = spec_for(c.type)
    out: dict[str, Any] = {"type": c.type}
    if not c.enabled:
        out["enabled"] = False
    if c.default:
        out["default"] = True
    props = _non_default(spec.all_properties, c.properties)
    props.update({k: reference_for(idp, k, v) for k, v in sorted(c.secrets.items())})
    out["properties"] = props
    return out


def _idp(catalog: ClaimCatalog, idp: IdentityProvider) -> dict[str, Any]:
    out: dict[str, Any] = {"name": idp.name}
    if idp.description:
        out["description"] = idp.description
    if not idp.enabled:
        out["enabled"] = False
    if idp.claim_mappings:
        out["claim_mappings"] = [
            {"local": _short(catalog, m.local), "remote": m.remote,
             **({"default": m.default} if m.default is not None else {})}
            for m in idp.claim_mappings]
    if idp.role_mappings:
        out["role_mappings"] = [{"local": m.local, "remote": m.remote}
                                for m in idp.role_mappings]
    if idp.provisioning_roles:
        out["provisioning_roles"] = list(idp.provisioning_roles)
    if idp.jit != JitConfig():
        out["jit"] = dataclasses.asdict(idp.jit)
    if idp.federation is not None:
        fed = {k: v for k, v in idp.federation.to_json().items()
               if v is not None and not (k == "groups_claim" and v == "groups")}
        if len(fed["audience"]) == 1:
            fed["audience"] = fed["audience"][0]
        out["federation"] = fed
    if idp.connectors:
        out["connectors"] = [_connector(idp.name, c) for c in idp.connectors]
    return out


def _app(app: Application) -> dict[str, Any]:
    out: dict[str, Any] = {"name": app.name}
    if app.description:
        out["description"] = app.description
    inbound = {"userstore": app.inbound_domain, "proxy_mode": app.proxy_mode}
    if inbound != {"userstore": PRIMARY, "proxy_mode": False}:
        out["inbound"] = inbound
    if app.fail_on_blocking_failure:
        out["fail_on_blocking_failure"] = True
    if app.outbound:
        out["outbound"] = [{"idp": t.idp, "connector": t.connector, "blocking": t.blocking,
                            "jit": t.jit} for t in app.outbound]
    return out
