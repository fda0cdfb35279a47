"""Checks shared by every section: names made canonical, and references that must resolve.

A reference resolves when the file declares the object (even in an entry that is itself
invalid: its own error is enough) or the deployment has it. Every check reports at a path
and carries on, so a file's errors all come out in one run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from core.claims import LocalClaim
from core.configfile.deployment import Deployment
from core.configfile.errors import Reporter, YamlPath
from core.configfile.model import ConfigFile
from core.errors import InvalidInput
from core.names import PRIMARY, RESERVED_DOMAINS, QualifiedName, parse_name
from core.names import validate_domain as canonical_domain
from core.properties import PropertySpec, check


def _quiet(fn: Callable[[str], Any], text: str) -> Any:
    try:
        return fn(text)
    except InvalidInput:
        return None


class Checker:
    """What the file declares, and the checks of names against it and the deployment."""

    def __init__(self, config: ConfigFile, deployment: Deployment, report: Reporter) -> None:
        self.config = config
        self.dep = deployment
        self.report = report
        self._collect_names()

    # ------------------------------------------------------------ what the file declares
    def _collect_names(self) -> None:
        unparsed = self.config.unparsed_names
        self.file_domains = self._names(
            [e.entry.domain for e in self.config.userstores] + [*unparsed.get("userstores", ())],
            canonical_domain) - (RESERVED_DOMAINS - {PRIMARY})
        self.file_roles = self._names(
            [e.entry.name for e in self.config.roles] + [*unparsed.get("roles", ())],
            lambda t: str(parse_name(t)))
        self.file_users = self._names(
            [e.entry.username for e in self.config.users] + [*unparsed.get("users", ())],
            lambda t: str(parse_name(t)))
        self.file_idps: dict[str, set[str] | None] = {
            n: None for n in unparsed.get("identity_providers", ())}
        for e in self.config.identity_providers:
            cons = e.entry.connectors
            self.file_idps[e.entry.name] = {c.type for c in cons} if cons is not None else None
        self.file_claims: dict[str, LocalClaim] = {}
        for c in self.config.claims:
            existing = self.dep.claim(c.entry.uri)
            uri = existing.uri if existing else c.entry.uri
            base = existing or LocalClaim(uri, c.entry.display_name or uri, "")
            regex = base.regex if c.entry.regex is None else (c.entry.regex or None)
            claim = LocalClaim(uri, base.display_name, "", regex=regex)
            self.file_claims[uri] = claim
            self.file_claims.setdefault(claim.short.casefold(), claim)

    @staticmethod
    def _names(texts: Iterable[str], canonical: Callable[[str], str]) -> set[str]:
        return {n for n in (_quiet(canonical, t) for t in texts) if n is not None}

    # ------------------------------------------------------------ shared checks
    def _error(self, path: YamlPath, message: str, at_key: bool = False) -> None:
        self.report.add(path, message, at_key)

    def _valid_domain(self, path: YamlPath, text: str, at_key: bool = False) -> str | None:
        try:
            return canonical_domain(text)
        except InvalidInput as exc:
            self._error(path, str(exc), at_key)
            return None

    def _domain(self, path: YamlPath, text: str, at_key: bool = False) -> str | None:
        """A domain that exists in the file or the deployment."""
        domain = self._valid_domain(path, text, at_key)
        if domain is not None and domain not in self.file_domains \
                and not self.dep.has_domain(domain):
            known = sorted({*self.dep.domains(), *self.file_domains})
            self._error(path, f"unknown userstore domain {domain!r} (known: "
                              f"{', '.join(known)})", at_key)
            return None
        return domain

    def _name(self, path: YamlPath, text: str) -> QualifiedName | None:
        try:
            return parse_name(text)
        except InvalidInput as exc:
            self._error(path, str(exc))
            return None

    def _role(self, path: YamlPath, text: str) -> QualifiedName | None:
        qn = self._name(path, text)
        if qn is None:
            return None
        if not qn.is_internal and self._domain(path, qn.domain) is None:
            return None
        if str(qn) not in self.file_roles and not self.dep.has_role(qn):
            self._error(path, f"unknown role {qn}: define it under roles, or use a role "
                              "of the deployment")
            return None
        return qn

    def _user(self, path: YamlPath, text: str) -> QualifiedName | None:
        qn = self._name(path, text)
        if qn is None:
            return None
        if str(qn) not in self.file_users and not self.dep.has_user(qn):
            self._error(path, f"unknown user {qn}: define it under users, or use a user of "
                              "the deployment")
            return None
        return qn

    def _claim(self, path: YamlPath, name: str, at_key: bool = False) -> LocalClaim | None:
        claim = self.file_claims.get(name) or self.file_claims.get(name.casefold()) \
            or self.dep.claim(name)
        if claim is None and self.dep.live:
            self._error(path, f"unknown claim {name!r}: use a local claim URI or short name "
                              "such as emailaddress, or define it under claims", at_key)
        return claim

    def _duplicate(self, seen: dict[str, YamlPath], name: str, path: YamlPath,
                   what: str) -> bool:
        if name in seen:
            line, column = self.report.positions.at(seen[name])
            self._error(path, f"{what} {name} is listed twice (first at line {line}, "
                              f"column {column})")
            return True
        seen[name] = path
        return False

    def _distinct(self, path: YamlPath, items: Iterable[tuple[int, str]], what: str) -> None:
        seen: dict[str, YamlPath] = {}
        for i, name in items:
            self._duplicate(seen, name, (*path, i), what)

    # ------------------------------------------------------------ sections
    def _properties(self, path: YamlPath, specs: Sequence[PropertySpec], values: Mapping[str, Any]
                    ) -> dict[str, Any]:
        """Typed values with defaults; an error at the property (its key when unknown)."""
        typed, errors = check(specs, values)
        known = {s.name for s in specs}
        for err in errors:
            self._error((*path, err.field) if err.field in values else path, str(err),
                        at_key=err.field not in known)
        return typed
