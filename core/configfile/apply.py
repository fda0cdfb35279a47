"""Make the deployment match a plan: compare, write only the differences, say what changed.

Everything runs in one system-database transaction (the engine's writes join it), so a
failure half-way leaves nothing written; each write still goes through the engine's own
door (validation, events, audit). An error the engine raises is reported at the entry that
caused it. Order: userstores, claims, roles, users, memberships, identity providers,
applications (each may refer to the ones before it), operators.

The operators live in ``operators.yaml`` in the home, not in the database
(``core.configfile.operators``): their changes are audited in the transaction, and the
file is written whole (renamed over) as its last step, once every other write has
succeeded and before the commit; a dry run or a failure leaves it as it was.

The file is not the whole truth: objects it does not name are left alone. What it names is
made to match: for users, the claims listed are set (others untouched) and, when ``roles``
is given, exactly those roles are kept; for roles, when ``members`` is given, exactly those
members (plus users that list the role) are kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from core import audit
from core.apps import Application
from core.claims import LocalClaim
from core.configfile.deployment import claim_mappings
from core.configfile.errors import ConfigInvalid, Reporter, YamlPath
from core.configfile.operators import load as load_operators
from core.configfile.operators import save as save_operators
from core.configfile.plan import Plan
from core.errors import IamError, NotFound
from core.iam import Iam
from core.identity.events import Initiator
from core.idps import IdentityProvider
from core.operators import Operator, path_in
from core.userstores.router import StoreDefinition

#: How many members of one role are compared when a role lists its members exactly.
MEMBER_LIMIT = 1_000_000


class _DryRun(Exception):
    """Raised at the end of a dry run to roll the transaction back."""


def apply_plan(iam: Iam, plan: Plan, initiator: Initiator, report: Reporter,
               dry_run: bool = False) -> list[str]:
    """Apply ``plan`` atomically; the lines that describe each change (empty: no change)."""
    applier = _Applier(iam, initiator, report)
    try:
        with iam.db.transaction():
            applier.run(plan)
            if dry_run:
                raise _DryRun
            applier.save_operators()
    except BaseException as exc:
        # The rollback undid the writes; the caches read during them must forget them too.
        iam.stores.load()
        iam.reload_claims()
        if not isinstance(exc, _DryRun):
            raise
    return applier.lines


def _changed(current: Any, wanted: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(current)
            if getattr(current, f.name) != getattr(wanted, f.name)]


class _Applier:
    def __init__(self, iam: Iam, initiator: Initiator, report: Reporter) -> None:
        self.iam = iam
        self.id = iam.identity
        self.initiator = initiator
        self.report = report
        self.lines: list[str] = []
        #: The operators' store as the file makes it, when the file changes it.
        self.operators: list[Operator] | None = None

    @contextlib.contextmanager
    def _at(self, path: YamlPath, what: str) -> Iterator[None]:
        """An engine error here is reported at ``path`` (and stops the apply)."""
        try:
            yield
        except ConfigInvalid:
            raise
        except IamError as exc:
            self.report.add(path, f"{what}: {exc}")
            self.report.raise_if_any()

    def _line(self, sign: str, what: str, changed: list[str] | None = None) -> None:
        self.lines.append(f"{sign} {what}" + (f" ({', '.join(changed)})" if changed else ""))

    def run(self, plan: Plan) -> None:
        self._userstores(plan)
        self._claims(plan)
        self._roles(plan)
        self._users(plan)
        self._memberships(plan)
        self._identity_providers(plan)
        self._applications(plan)
        self._operators(plan)

    # ------------------------------------------------------------------ config objects
    def _userstores(self, plan: Plan) -> None:
        current = {d.domain: d for d in self.iam.userstore_definitions()}
        for p in plan.userstores:
            cur = current.get(p.name)
            base = cur or StoreDefinition(p.name, "sql", len(current), True, "", {})
            new = dataclasses.replace(base, **p.fields)
            if cur is not None and new == cur:
                continue
            what = f"userstore {p.name}"
            with self._at(p.path, what):
                self.iam.save_userstore(self.initiator, p.name, new.type, new.properties,
                                        new.enabled, new.description)
            self._line("+" if cur is None else "~", what, _changed(cur, new) if cur else None)

    def _claims(self, plan: Plan) -> None:
        if not plan.claims:
            return
        catalog = self.iam.claims
        mappings = claim_mappings(self.iam)
        for p in plan.claims:
            cur = catalog.claims.get(p.name)
            base = cur or LocalClaim(p.name, p.name, "")
            new = dataclasses.replace(base, **p.fields)
            stored = mappings.get(p.name, {})
            changed_map = {d: a for d, a in p.mappings.items() if stored.get(d) != a}
            if cur is None:
                changed = None
            else:
                changed = _changed(cur, new) + (["mappings"] if changed_map else [])
                if not changed:
                    continue
            what = f"claim {p.name}"
            with self._at(p.path, what):
                self.iam.save_claim(self.initiator, p.name, new.display_name, new.description,
                                    new.regex, changed_map)
            self._line("+" if cur is None else "~", what, changed)

    def _identity_providers(self, plan: Plan) -> None:
        for p in plan.identity_providers:
            try:
                cur: IdentityProvider | None = self.iam.get_idp(p.name)
            except NotFound:
                cur = None
            new = dataclasses.replace(cur or IdentityProvider(p.name), **p.fields)
            if new == cur:
                continue
            what = f"identity provider {p.name}"
            with self._at(p.path, what):
                self.iam.save_idp(self.initiator, new)
            self._line("+" if cur is None else "~", what, _changed(cur, new) if cur else None)

    def _applications(self, plan: Plan) -> None:
        for p in plan.applications:
            try:
                cur: Application | None = self.iam.get_app(p.name)
            except NotFound:
                cur = None
            new = dataclasses.replace(cur or Application(p.name), **p.fields)
            if new == cur:
                continue
            what = f"application {p.name}"
            with self._at(p.path, what):
                self.iam.save_app(self.initiator, new)
            self._line("+" if cur is None else "~", what, _changed(cur, new) if cur else None)

    def _operators(self, plan: Plan) -> None:
        if not plan.operators:
            return
        current = load_operators(path_in(self.iam.home))
        wanted = list(current)
        for p in plan.operators:
            cur = next((o for o in current if o.name == p.name), None)
            new = p.operator(cur)
            if new == cur:
                continue
            if cur is None:
                wanted.append(new)
            else:
                wanted[wanted.index(cur)] = new
            with self.iam.db.transaction() as conn:
                audit.record(conn, self.initiator,
                             "operator.add" if cur is None else "operator.update", p.name,
                             {"keys": len(new.keys), "read_only": new.read_only})
            self._line("+" if cur is None else "~", f"operator {p.name}",
                       _changed(cur, new) if cur else None)
        if wanted != current:
            self.operators = wanted

    def save_operators(self) -> None:
        if self.operators is not None:
            save_operators(path_in(self.iam.home), self.operators)

    # ------------------------------------------------------------------ roles and users
    def _roles(self, plan: Plan) -> None:
        for p in plan.roles:
            try:
                self.id.get_role(p.name)
            except NotFound:
                with self._at(p.path, f"role {p.name}"):
                    self.id.add_role(self.initiator, p.name)
                self._line("+", f"role {p.name}")

    def _wanted_roles(self, plan: Plan) -> dict[str, set[str]]:
        """user -> the roles the file gives it (its own list and the roles listing it)."""
        wanted: dict[str, set[str]] = {u.name: set(u.roles or ()) for u in plan.users}
        for r in plan.roles:
            for member in r.members or ():
                wanted.setdefault(member, set()).add(r.name)
        return wanted

    def _users(self, plan: Plan) -> None:
        wanted = self._wanted_roles(plan)
        for p in plan.users:
            what = f"user {p.name}"
            try:
                view = self.id.get_user(p.name)
            except NotFound:
                with self._at(p.path, what):
                    self.id.add_user(self.initiator, p.name, p.password, p.claims,
                                     sorted(wanted[p.name]))
                self._line("+", what)
                continue
            changed = {uri: v for uri, v in p.claims.items() if view.claims.get(uri) != v}
            if changed:
                with self._at(p.path, what):
                    self.id.update_user(self.initiator, p.name, changed)
                names = sorted(self.iam.claims.claims[uri].short for uri in changed)
                self._line("~", what, ["claims: " + ", ".join(names)])

    def _memberships(self, plan: Plan) -> None:
        """Add the memberships the file gives and remove those an exact list leaves out."""
        role_name = _Canonical(lambda n: self.id.get_role(n).qualified_name)
        user_name = _Canonical(lambda n: self.id.get_user(n).qualified_name)
        add: dict[str, set[str]] = {}
        remove: dict[str, set[str]] = {}
        paths: dict[str, YamlPath] = {}
        exact_users = {u.name for u in plan.users if u.roles is not None}
        for user, roles in self._wanted_roles(plan).items():
            name = user_name(user)
            want = {role_name(r) for r in roles}
            have = set(self.id.roles_of(name))
            for r in want - have:
                add.setdefault(r, set()).add(name)
            if user in exact_users:
                for r in have - want:
                    remove.setdefault(r, set()).add(name)
        for p in plan.roles:
            paths[role_name(p.name)] = p.path
            if p.members is None:
                continue
            role = role_name(p.name)
            want = {user_name(u) for u in p.members}
            want |= {user_name(u.name) for u in plan.users if p.name in (u.roles or ())}
            have = {u.qualified_name for u in self.id.members_of(role, limit=MEMBER_LIMIT)}
            for u in have - want:
                remove.setdefault(role, set()).add(u)
        user_paths = {user_name(u.name): u.path for u in plan.users}
        for role in sorted({*add, *remove}):
            plus, minus = sorted(add.get(role, ())), sorted(remove.get(role, ()))
            path = paths.get(role) or user_paths.get((plus or minus)[0], ())
            with self._at(path, f"role {role}"):
                if plus:
                    self.id.assign(self.initiator, role, plus)
                if minus:
                    self.id.unassign(self.initiator, role, minus)
            self._line("~", f"role {role}",
                       ["members: " + ", ".join([*(f"+{u}" for u in plus),
                                                 *(f"-{u}" for u in minus)])])


class _Canonical:
    """Names as the deployment spells them (a case-insensitive store may differ), cached."""

    def __init__(self, lookup: Callable[[str], str]) -> None:
        self._lookup = lookup
        self._seen: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        if name not in self._seen:
            self._seen[name] = self._lookup(name)
        return self._seen[name]
