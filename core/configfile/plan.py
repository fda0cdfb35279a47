"""From valid entries to a plan: the checks that need more than the schema, with positions.

Names are made canonical (``alice`` -> ``PRIMARY/alice``, claim short names -> URIs),
references are checked against the file and the deployment, secrets are resolved, and
property values are typed by their schemas. The result says, per object, only what the
file gives: a field missing from ``fields`` keeps the deployment's value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.registry import spec_for
from core.apps import OutboundTarget
from core.claims import USERNAME, validate_claim_value
from core.configfile import refs
from core.configfile.checks import Checker
from core.configfile.errors import YamlPath
from core.configfile.model import (
    SECTIONS,
    ApplicationEntry,
    ClaimEntry,
    ConnectorEntry,
    IdentityProviderEntry,
    Located,
    RoleEntry,
    UserEntry,
    UserstoreEntry,
)
from core.configfile.operators import OperatorPlan, plan_operators
from core.errors import InvalidInput
from core.idps import (
    JIT_SCHEMES,
    ClaimMapping,
    ConnectorConfig,
    Federation,
    IdentityProvider,
    JitConfig,
    RoleMapping,
    connector_errors,
    normalized,
)
from core.jit.federation import attribute_sync_problem, federation_problems, scheme_warning
from core.names import PRIMARY, RESERVED_DOMAINS
from core.properties import secret_names
from core.secrets import SecretValue
from core.userstores.definitions import STORE_TYPES, reference_name, typed_properties


@dataclass(frozen=True)
class Planned:
    """One object the file describes: ``fields`` are named as on the core dataclass."""

    path: YamlPath
    name: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class ClaimPlan(Planned):
    mappings: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RolePlan(Planned):
    members: tuple[str, ...] | None = None


@dataclass(frozen=True)
class UserPlan(Planned):
    password: str | None = field(default=None, repr=False)
    claims: Mapping[str, str] = field(default_factory=dict)
    roles: tuple[str, ...] | None = None


@dataclass
class Plan:
    userstores: list[Planned] = field(default_factory=list)
    claims: list[ClaimPlan] = field(default_factory=list)
    roles: list[RolePlan] = field(default_factory=list)
    users: list[UserPlan] = field(default_factory=list)
    identity_providers: list[Planned] = field(default_factory=list)
    applications: list[Planned] = field(default_factory=list)
    operators: list[OperatorPlan] = field(default_factory=list)


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class ConfigPlanner(Checker):
    """Turns the valid entries into a :class:`Plan`; errors go to ``report``."""

    def plan(self) -> Plan:
        c = self.config
        return Plan(
            userstores=self._each("userstores", c.userstores, self._userstore, "userstore"),
            claims=self._each("claims", c.claims, self._claim_entry, "claim"),
            roles=self._each("roles", c.roles, self._role_entry, "role"),
            users=self._each("users", c.users, self._user_entry, "user"),
            identity_providers=self._each("identity_providers", c.identity_providers,
                                          self._idp, "identity provider"),
            applications=self._each("applications", c.applications, self._app,
                                    "application"),
            operators=plan_operators(c.operators, self.report,
                                     self.dep.operators() if c.operators else []),
        )

    def _each(self, section: str, entries: list[Located[Any]],
              build: Callable[[YamlPath, Any], Any], what: str) -> list[Any]:
        """Plan every entry; an entry naming the same object as an earlier one is an error."""
        key = SECTIONS[section][1]
        out: list[Any] = []
        seen: dict[str, YamlPath] = {}
        for e in entries:
            planned = build(e.path, e.entry)
            if planned is not None and not self._duplicate(seen, planned.name,
                                                           (*e.path, key), what):
                out.append(planned)
        return out

    def _userstore(self, path: YamlPath, e: UserstoreEntry) -> Planned | None:
        domain = self._valid_domain((*path, "domain"), e.domain)
        if domain is None:
            return None
        if domain in RESERVED_DOMAINS - {PRIMARY}:
            self._error((*path, "domain"), f"domain {domain} is reserved")
            return None
        specs = STORE_TYPES.get(e.type)
        if specs is None:
            self._error((*path, "type"), f"userstore type {e.type!r} is not supported "
                                         f"(supported: {', '.join(STORE_TYPES)})")
            return None
        props = None
        if e.properties is not None:
            props = self._store_properties((*path, "properties"), domain, e.type, e.properties)
        elif domain != PRIMARY and self.dep.live and not self.dep.has_domain(domain):
            self._error(path, f"userstore {domain} is new: give its properties")
        if domain == PRIMARY and e.enabled is False:
            self._error((*path, "enabled"), "userstore PRIMARY cannot be disabled")
        return Planned(path, domain, _given(type=e.type, description=e.description,
                                            enabled=e.enabled, properties=props))

    def _store_properties(self, path: YamlPath, domain: str, store_type: str,
                          given: Mapping[str, Any]) -> dict[str, Any]:
        """Typed store properties; secrets resolved (a reference kept for export) and each
        error at its property."""
        stored = self.dep.iam.stores.definitions.get(domain) if self.dep.iam else None
        values = dict(given)
        unresolved: set[str] = set()
        for name in secret_names(STORE_TYPES[store_type]) & given.keys():
            if given[name] is None or given[name] == "":
                continue
            current = stored.properties.get(name) if stored else None
            try:
                values[name] = refs.resolve(
                    str(given[name]), current if isinstance(current, SecretValue) else None,
                    reference_name(domain, name))
            except InvalidInput as exc:
                self._error((*path, name), f"{name}: {exc}")
                values.pop(name)
                unresolved.add(name)
        typed, errors = typed_properties(domain, store_type, values)
        known = {s.name for s in STORE_TYPES[store_type]}
        for err in errors:
            if err.field in unresolved:
                continue
            where = (*path[:-1], "type") if err.field == "type" else \
                (*path, err.field) if err.field in given else path
            self._error(where, str(err), at_key=err.field not in known and err.field != "type")
        return typed

    def _claim_entry(self, path: YamlPath, e: ClaimEntry) -> ClaimPlan | None:
        existing = self.dep.claim(e.uri)
        uri = existing.uri if existing else e.uri
        if existing is None and self.dep.live:  # offline it may be a claim of the deployment
            if ":" not in e.uri:
                self._error((*path, "uri"), f"unknown claim {e.uri!r}: a new claim needs a "
                                            "full URI such as http://wso2.org/claims/badge")
                return None
            if e.display_name is None:
                self._error(path, f"claim {uri} is new: give its display_name")
        if e.regex:
            try:
                re.compile(e.regex)
            except re.error as exc:
                self._error((*path, "regex"), f"not a valid regular expression ({exc})")
        mappings = {}
        for domain_text, attribute in e.mappings.items():
            domain = self._domain((*path, "mappings", domain_text), domain_text, at_key=True)
            if domain is not None:
                mappings[domain] = attribute
        regex = None if e.regex is None else (e.regex or None)
        fields = _given(display_name=e.display_name, description=e.description)
        if e.regex is not None:
            fields["regex"] = regex
        return ClaimPlan(path, uri, fields, mappings)

    def _role_entry(self, path: YamlPath, e: RoleEntry) -> RolePlan | None:
        qn = self._name((*path, "name"), e.name)
        if qn is None or (not qn.is_internal and self._domain((*path, "name"), qn.domain)
                          is None):
            return None
        members = None
        if e.members is not None:
            found = [(i, self._user((*path, "members", i), m)) for i, m in enumerate(e.members)]
            members = tuple(str(u) for _, u in found if u is not None)
            self._distinct((*path, "members"), [(i, str(u)) for i, u in found if u], "member")
            if not qn.is_internal:
                for i, u in found:
                    if u is not None and u.domain != qn.domain:
                        self._error((*path, "members", i), f"group {qn} can only hold users "
                                                           f"of {qn.domain}, not {u}")
        return RolePlan(path, str(qn), {}, members)

    def _user_entry(self, path: YamlPath, e: UserEntry) -> UserPlan | None:
        qn = self._name((*path, "username"), e.username)
        if qn is None:
            return None
        if qn.is_internal:
            self._error((*path, "username"), "the Internal domain holds roles only, not users")
            return None
        self._domain((*path, "username"), qn.domain)
        password = None
        if e.password is not None:
            try:
                password = refs.resolve(e.password, None).value
            except InvalidInput as exc:
                if not (self.dep.live and self.dep.has_user(qn)):  # only used on creation
                    self._error((*path, "password"), f"password: {exc}")
        claims: dict[str, str] = {}
        for name, value in e.claims.items():
            cpath = (*path, "claims", name)
            claim = self._claim(cpath, name, at_key=True)
            if claim is None:
                claims[name] = value  # offline, and not a built-in claim: left to apply
                continue
            if claim.uri == USERNAME:
                self._error(cpath, "the username claim cannot be set; it is the user's name",
                            at_key=True)
                continue
            if claim.uri in claims:
                self._error(cpath, f"claim {claim.short} is given twice", at_key=True)
            try:
                validate_claim_value(claim, value)
            except InvalidInput as exc:
                self._error(cpath, str(exc))
            claims[claim.uri] = value
        roles = None
        if e.roles is not None:
            found = [(i, self._role((*path, "roles", i), r)) for i, r in enumerate(e.roles)]
            self._distinct((*path, "roles"), [(i, str(r)) for i, r in found if r], "role")
            for i, r in found:
                if r is not None and not r.is_internal and r.domain != qn.domain:
                    self._error((*path, "roles", i), f"role {r} is a group of another "
                                f"userstore than {qn}: a user joins groups of its own store "
                                "or Internal roles")
            roles = tuple(str(r) for _, r in found if r is not None)
        return UserPlan(path, str(qn), {}, password, claims, roles)

    def _idp(self, path: YamlPath, e: IdentityProviderEntry) -> Planned | None:
        fields = _given(description=e.description, enabled=e.enabled)
        if e.claim_mappings is not None:
            mappings = []
            for i, m in enumerate(e.claim_mappings):
                claim = self._claim((*path, "claim_mappings", i, "local"), m.local)
                mappings.append(ClaimMapping(claim.uri if claim else m.local, m.remote,
                                             m.default))
            fields["claim_mappings"] = tuple(mappings)
        if e.role_mappings is not None:
            fields["role_mappings"] = tuple(
                RoleMapping(str(r), m.remote) for i, m in enumerate(e.role_mappings)
                if (r := self._role((*path, "role_mappings", i, "local"), m.local)))
        if e.provisioning_roles is not None:
            found = [(i, self._role((*path, "provisioning_roles", i), r))
                     for i, r in enumerate(e.provisioning_roles)]
            self._distinct((*path, "provisioning_roles"), [(i, str(r)) for i, r in found if r],
                           "provisioning role")
            fields["provisioning_roles"] = tuple(str(r) for _, r in found if r is not None)
        if e.jit is not None:
            jpath = (*path, "jit")
            userstore = self._domain((*jpath, "userstore"), e.jit.userstore) or PRIMARY
            if e.jit.scheme not in JIT_SCHEMES:
                self._error((*jpath, "scheme"), f"scheme: expected one of "
                            f"{', '.join(JIT_SCHEMES)}, got {e.jit.scheme!r}")
            if (problem := attribute_sync_problem(e.jit.attribute_sync)) is not None:
                self._error((*jpath, "attribute_sync"), problem)
            if e.jit.enabled and (warning := scheme_warning(e.jit.scheme)) is not None:
                self.report.warn((*jpath, "scheme"), warning)
            fields["jit"] = JitConfig(e.jit.enabled, userstore, e.jit.scheme,
                                      e.jit.associate_local_user, e.jit.attribute_sync)
        if e.federation is not None:
            f = e.federation
            audience = (f.audience,) if isinstance(f.audience, str) else tuple(f.audience)
            fed = Federation(f.protocol, f.issuer, audience, f.jwks, f.jwks_uri,
                             f.certificate, f.username_claim, f.groups_claim)
            for key, problem in federation_problems(fed):
                self._error((*path, "federation", key), problem)
            fields["federation"] = fed
        if e.connectors is not None:
            stored = self.dep.idp(e.name)
            built = [self._connector((*path, "connectors", i), e.name, c, stored)
                     for i, c in enumerate(e.connectors)]
            self._distinct((*path, "connectors"),
                           [(i, c.type) for i, c in enumerate(e.connectors)], "connector type")
            fields["connectors"] = tuple(sorted((c for c in built if c is not None),
                                                key=lambda c: c.type))
        return Planned(path, e.name, fields)

    def _connector(self, path: YamlPath, idp: str, e: ConnectorEntry,
                   stored_idp: IdentityProvider | None) -> ConnectorConfig | None:
        try:
            spec = spec_for(e.type)
        except InvalidInput as exc:
            self._error((*path, "type"), str(exc))
            return None
        secret_props = secret_names(spec.all_properties)
        stored = next((c.secrets for c in (stored_idp.connectors if stored_idp else ())
                       if c.type == e.type), {})
        props: dict[str, Any] = {}
        secrets: dict[str, SecretValue] = {}
        ok = True
        for name, value in e.properties.items():
            if name not in secret_props:
                props[name] = value
            elif value is not None and value != "":
                try:
                    secrets[name] = refs.resolve(str(value), stored.get(name),
                                                 refs.generated_reference(idp, name))
                except InvalidInput as exc:
                    self._error((*path, "properties", name), f"{name}: {exc}")
                    secrets[name] = SecretValue("unresolved")  # keeps "is required" quiet
                    ok = False
        config = ConnectorConfig(e.type, e.enabled, e.default, props, secrets)
        known = {s.name for s in spec.all_properties}
        for err in connector_errors(config):
            where: tuple[Hashable, ...] = ("properties", err.field) \
                if err.field in e.properties else ("properties",)
            self._error((*path, *where), str(err), at_key=err.field not in known)
            ok = False
        return normalized(config) if ok else None

    def _app(self, path: YamlPath, e: ApplicationEntry) -> Planned | None:
        fields = _given(description=e.description,
                        fail_on_blocking_failure=e.fail_on_blocking_failure)
        if e.inbound is not None:
            if e.inbound.userstore is not None:
                domain = self._domain((*path, "inbound", "userstore"), e.inbound.userstore)
                fields["inbound_domain"] = domain or e.inbound.userstore
            if e.inbound.proxy_mode is not None:
                fields["proxy_mode"] = e.inbound.proxy_mode
        if e.outbound is not None:
            targets = []
            for i, t in enumerate(e.outbound):
                self._target((*path, "outbound", i), t.idp, t.connector)
                targets.append(OutboundTarget(t.idp, t.connector, t.blocking, t.jit))
            self._distinct((*path, "outbound"),
                           [(i, f"{t.idp} {t.connector}") for i, t in enumerate(targets)],
                           "outbound target")
            fields["outbound"] = tuple(targets)
        return Planned(path, e.name, fields)

    def _target(self, path: YamlPath, idp: str, connector: str) -> None:
        """An outbound target names an identity provider and one of its connectors."""
        if idp not in self.file_idps and not self.dep.has_idp(idp):
            self._error((*path, "idp"), f"unknown identity provider {idp!r}: define it under "
                                        "identity_providers, or use one of the deployment")
            return
        types = self.file_idps.get(idp)
        if types is None and (stored := self.dep.idp(idp)) is not None:
            types = {c.type for c in stored.connectors}
        if types is not None and connector not in types:
            have = ", ".join(sorted(types)) or "none"
            self._error((*path, "connector"), f"identity provider {idp} has no {connector!r} "
                                              f"connector (it has: {have})")

