"""The identity service: the one door for every write of users and roles.

Every face (console, CLI, SCIM, JIT, config apply) calls these methods. Each write:
validates everything first (names, policies, claims, roles), then in one system-DB
transaction emits PRE, calls the store, writes the audit row, emits POST; after the commit
it emits COMMITTED. A failure anywhere rolls back the system DB (and the PRIMARY store,
which lives there), so nothing is left half-written.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import gc
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core import audit
from core.claims import USERNAME, ClaimCatalog
from core.db import SystemDB
from core.errors import AlreadyExists, IamError, InvalidInput, NotFound, ReadOnlyStore
from core.identity import internal_roles
from core.identity.events import EventBus, EventType, IdentityEvent, Initiator, Phase
from core.names import INTERNAL, QualifiedName, parse_name
from core.userstores import query as q
from core.userstores.base import NewUser, Page, StoredGroup, StoredUser, UserStore
from core.userstores.router import UserstoreRouter

DEFAULT_PAGE_SIZE = 50
#: The largest page of role members asked of a store at once.
MEMBER_PAGE_MAX = 500
#: Rows per import transaction: fewer commits rewrite fewer index pages (SQLite WAL).
IMPORT_BATCH_SIZE = 5000
#: Rows with a password per import transaction (each costs an argon2id hash).
PASSWORD_BATCH = 64


@dataclass(frozen=True)
class UserView:
    """A user as the faces see it: claims by local claim URI."""

    id: str
    domain: str
    username: str
    claims: Mapping[str, str]
    created: datetime | None = None
    modified: datetime | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.domain}/{self.username}"


@dataclass(frozen=True)
class RoleView:
    id: str
    domain: str
    name: str
    created: datetime | None = None
    modified: datetime | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.domain}/{self.name}"

    @property
    def internal(self) -> bool:
        return self.domain == INTERNAL


@dataclass(frozen=True)
class ImportRow:
    """One row of a bulk import; ``line`` is what error reports cite."""

    line: int
    username: str
    password: str | None = None
    claims: Mapping[str, str] = field(default_factory=dict)
    roles: Sequence[str] = ()


@dataclass
class ImportReport:
    """What became of every row: imported, skipped (the user exists already) or refused."""

    imported: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    #: Lines of rows whose user already exists: a re-run of a file skips what it imported.
    skipped: list[int] = field(default_factory=list)


class IdentityService:
    def __init__(
        self,
        db: SystemDB,
        stores: UserstoreRouter,
        claims: Callable[[], ClaimCatalog],
        bus: EventBus,
    ) -> None:
        self.db = db
        self.stores = stores
        self._claims = claims
        self.bus = bus

    @property
    def claims(self) -> ClaimCatalog:
        return self._claims()

    # ------------------------------------------------------------------ helpers
    @contextlib.contextmanager
    def _write(self, events: list[IdentityEvent],
               undo: list[Callable[[], None]] | None = None) -> Iterator[Any]:
        """One transaction; COMMITTED events go out only after the outermost commit.

        ``undo``: what takes back writes made outside the system transaction (a secondary
        store has its own database or directory), run newest first when the write fails,
        e.g. when a blocking target refuses it.
        """
        try:
            with self.db.transaction() as conn:
                yield conn
                self.db.after_commit(lambda: self._committed(events))
        except BaseException:
            for step in reversed(undo or []):
                with contextlib.suppress(Exception):  # already gone with the rollback
                    step()
            raise

    def _committed(self, events: list[IdentityEvent]) -> None:
        for ev in events:
            self.bus.emit(Phase.COMMITTED, ev)

    def _view(self, user: StoredUser) -> UserView:
        claims = self.claims.to_claims(user.domain, user.attributes)
        claims[USERNAME] = user.username
        return UserView(user.id, user.domain, user.username, claims, user.created, user.modified)

    def _resolve_claims(self, values: Mapping[str, str]) -> dict[str, str]:
        catalog = self.claims
        out: dict[str, str] = {}
        for name, value in values.items():
            uri = catalog.resolve(name)
            if uri == USERNAME:
                raise InvalidInput("the username claim cannot be set; it is the user's name")
            out[uri] = value
        return out

    def _user(self, name: str) -> StoredUser:
        return self.stores.find_user(name)

    def _writable_store(self, domain: str, groups: bool = False) -> UserStore:
        store = self.stores.store(domain)
        caps = store.capabilities
        if not (caps.writable_groups if groups else caps.writable_users):
            raise ReadOnlyStore(f"userstore {domain} is read-only")
        return store

    # ------------------------------------------------------------------ users: read
    def get_user(self, name: str) -> UserView:
        return self._view(self._user(name))

    def get_user_by_id(self, domain: str, user_id: str) -> UserView:
        user = self.stores.store(domain).get_user(user_id)
        if user is None:
            raise NotFound(f"user {user_id} does not exist in {domain}")
        return self._view(user)

    def get_users_by_id(self, domain: str, user_ids: Sequence[str]) -> dict[str, UserView]:
        """The users of one domain with these store ids that exist, by id (one read of the
        store for all of them where it can: a worker prepares a batch of jobs at once)."""
        return {uid: self._view(u)
                for uid, u in self.stores.store(domain).get_users(user_ids).items()}

    def list_users(
        self,
        domain: str | None,
        page_size: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
        prefix: str | None = None,
        claim: tuple[str, str] | None = None,
    ) -> Page[UserView]:
        """One page of a domain's users, by username prefix or exact claim value.

        ``domain=None`` spans every enabled store in order (PRIMARY first): a page may end
        one store and begin the next, and its cursor says which store it stopped in. A store
        that is down stops the listing there with its ``StoreUnavailable``.
        """
        if domain is None:
            return self._list_every_store(page_size, cursor, prefix, claim)
        store = self.stores.store(parse_name(f"{domain}/x").domain)
        attribute = None
        if claim is not None:
            uri = self.claims.resolve(claim[0])
            if uri == USERNAME:
                user = store.get_user_by_name(claim[1])
                return Page([self._view(user)] if user else [], None)
            attribute = (self.claims.attribute(store.domain, uri), claim[1])
        page = store.list_users(page_size, cursor, prefix=prefix, attribute=attribute)
        return Page([self._view(u) for u in page.items], page.next_cursor)

    def _list_every_store(self, page_size: int, cursor: str | None, prefix: str | None,
                          claim: tuple[str, str] | None) -> Page[UserView]:
        domains = self.stores.domains
        domain, inner = _span_position(cursor, domains) if cursor else (domains[0], None)
        items: list[UserView] = []
        for i in range(domains.index(domain), len(domains)):
            if len(items) >= max(1, page_size):
                return Page(items, _span_cursor(domains[i], None))
            page = self.list_users(domains[i], max(1, page_size) - len(items), inner, prefix,
                                   claim)
            items.extend(page.items)
            if page.next_cursor is not None:
                return Page(items, _span_cursor(domains[i], page.next_cursor))
            inner = None
        return Page(items, None)

    def search_users(self, domain: str, query: q.Query, start: int, count: int,
                     sort: q.Sort | None = None) -> q.SearchPage[UserView]:
        """The users of ``domain`` matching ``query`` (fields name local claims), matches
        ``start`` (0-based) to ``start + count``; the store evaluates the query natively."""
        store = self.stores.store(domain)
        mapping = self.claims.mapping(store.domain)

        def to_attribute(field: q.Field) -> q.Field | None:
            if field.kind is not q.Kind.ATTRIBUTE:
                return field
            if field.name == USERNAME:
                return q.NAME
            attribute = mapping.get(field.name)
            return q.attribute(attribute) if attribute else None

        native = q.simplify(q.map_fields(query, to_attribute))
        sort_field = to_attribute(sort.field) if sort else None
        native_sort = q.Sort(sort_field, sort.descending) if sort and sort_field else None
        if native == q.FALSE:
            return q.SearchPage(0, [])
        page = store.search_users(native, start, count, native_sort)
        return q.SearchPage(page.total, [self._view(u) for u in page.items])

    def count_users(self, domain: str | None = None, prefix: str | None = None) -> int:
        """Users of one domain, or of every enabled store (``domain=None``)."""
        domains = self.stores.domains if domain is None else [domain]
        return sum(self.stores.store(d).count_users(prefix) for d in domains)

    def verify_password(self, name: str, password: str) -> UserView | None:
        qn = parse_name(name)
        domains = [qn.domain] if "/" in name else self.stores.domains
        for domain in domains:
            user = self.stores.store(domain).verify_password(qn.name, password)
            if user is not None:
                return self._view(user)
        return None

    # ------------------------------------------------------------------ users: write
    def add_user(
        self,
        initiator: Initiator,
        name: str,
        password: str | None = None,
        claims: Mapping[str, str] | None = None,
        roles: Sequence[str] = (),
    ) -> UserView:
        qn = parse_name(name)
        store = self._writable_store(qn.domain)
        new, role_targets = self._prepare_new_user(store, qn, password, claims or {}, roles)
        events: list[IdentityEvent] = []
        undo: list[Callable[[], None]] = []
        with self._write(events, undo) as conn:
            probe = IdentityEvent(EventType.USER_ADDED, initiator, qn.domain, "", str(qn),
                                  {"claims": self.claims.to_claims(qn.domain, new.attributes),
                                   "roles": list(roles)}, secret=password)
            self.bus.emit(Phase.PRE, probe)
            user = store.add_user(new)
            undo.append(functools.partial(store.delete_user, user.id))
            self._assign_new_user_roles(conn, initiator, store, user, role_targets)
            ev = IdentityEvent(EventType.USER_ADDED, initiator, qn.domain, user.id, str(qn),
                               probe.data, secret=password)
            audit.record(conn, initiator, "user.add", str(qn),
                         {"claims": sorted(probe.data["claims"]), "roles": list(roles)})
            self.bus.emit(Phase.POST, ev)
            events.append(ev)
        return self._view(user)

    def _prepare_new_user(
        self, store: UserStore, qn: QualifiedName, password: str | None,
        claims: Mapping[str, str], roles: Sequence[str],
    ) -> tuple[NewUser, list[RoleView]]:
        store.policies.check_username(qn.domain, qn.name)
        if password is not None:
            store.policies.check_password(qn.domain, password)
        attributes = self.claims.to_attributes(qn.domain, self._resolve_claims(claims))
        targets = [self._role(r) for r in roles]
        for role in targets:
            if not role.internal and role.domain != qn.domain:
                raise InvalidInput(
                    f"role {role.qualified_name} is in another userstore than {qn}: a user "
                    "can only join groups of its own store, or Internal roles")
        kept = password if store.capabilities.keeps_passwords else None
        return NewUser(qn.name, kept, attributes), targets

    def _assign_new_user_roles(
        self, conn: Any, initiator: Initiator, store: UserStore, user: StoredUser,
        roles: Sequence[RoleView],
    ) -> None:
        for role in roles:
            if role.internal:
                internal_roles.add_members(conn, internal_roles.get(conn, role.name),
                                           [(user.domain, user.id)])
            else:
                store.update_members(role.id, add=[user.id])

    def update_user(
        self,
        initiator: Initiator,
        name: str | UserView,
        set_claims: Mapping[str, str] | None = None,
        remove_claims: Sequence[str] = (),
    ) -> UserView:
        """Set and remove claims of a user, by name or by the view the caller just read
        (which spares looking it up by name again)."""
        user: StoredUser | UserView = name if isinstance(name, UserView) else self._user(name)
        store = self._writable_store(user.domain)
        catalog = self.claims
        to_set = catalog.to_attributes(user.domain, self._resolve_claims(set_claims or {}))
        to_remove_uris = [catalog.resolve(c) for c in remove_claims]
        if USERNAME in to_remove_uris:
            raise InvalidInput("the username claim cannot be removed")
        to_remove = [catalog.attribute(user.domain, u) for u in to_remove_uris]
        both = set(to_set) & set(to_remove)
        if both:
            raise InvalidInput(f"claim(s) both set and removed: {', '.join(sorted(both))}")
        events: list[IdentityEvent] = []
        set_uris = catalog.to_claims(user.domain, to_set)
        with self._write(events) as conn:
            evs = []
            if set_uris:
                evs.append(IdentityEvent(EventType.USER_CLAIMS_CHANGED, initiator, user.domain,
                                         user.id, f"{user.domain}/{user.username}",
                                         {"claims": set_uris}))
            if to_remove_uris:
                evs.append(IdentityEvent(EventType.USER_CLAIMS_REMOVED, initiator, user.domain,
                                         user.id, f"{user.domain}/{user.username}",
                                         {"claims": to_remove_uris}))
            for ev in evs:
                self.bus.emit(Phase.PRE, ev)
            updated = store.update_attributes(user.id, to_set, to_remove)
            audit.record(conn, initiator, "user.update", f"{user.domain}/{user.username}",
                         {"set": sorted(set_uris), "removed": to_remove_uris})
            for ev in evs:
                self.bus.emit(Phase.POST, ev)
            events.extend(evs)
        return self._view(updated)

    def set_password(self, initiator: Initiator, name: str, password: str) -> None:
        user = self._user(name)
        store = self._writable_store(user.domain)
        store.policies.check_password(user.domain, password)
        events: list[IdentityEvent] = []
        qn = f"{user.domain}/{user.username}"
        with self._write(events) as conn:
            ev = IdentityEvent(EventType.PASSWORD_CHANGED, initiator, user.domain, user.id, qn,
                               secret=password)
            self.bus.emit(Phase.PRE, ev)
            if store.capabilities.keeps_passwords:  # a relay only sends it on
                store.set_password(user.id, password)
            audit.record(conn, initiator, "user.password", qn)
            self.bus.emit(Phase.POST, ev)
            events.append(ev)

    def delete_user(self, initiator: Initiator, name: str) -> None:
        user = self._user(name)
        store = self._writable_store(user.domain)
        events: list[IdentityEvent] = []
        qn = f"{user.domain}/{user.username}"
        with self._write(events) as conn:
            ev = IdentityEvent(EventType.USER_DELETED, initiator, user.domain, user.id, qn,
                               {"claims": self._view(user).claims})
            self.bus.emit(Phase.PRE, ev)
            internal_roles.forget_user(conn, user.domain, user.id)
            store.delete_user(user.id)
            audit.record(conn, initiator, "user.delete", qn)
            self.bus.emit(Phase.POST, ev)
            events.append(ev)

    def import_users(
        self,
        initiator: Initiator,
        rows: Iterable[ImportRow],
        domain: str | None = None,
        batch_size: int = IMPORT_BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        """Import many users: bad rows are reported by line, every good row is imported.

        Rows are validated one by one, then inserted a batch at a time (one transaction per
        batch, audit rows and events included). A batch that meets a conflict nobody could
        see during validation is retried row by row, so one bad row never costs its batch.
        A batch also ends after ``PASSWORD_BATCH`` rows with a password: hashing dominates
        those, and progress should keep moving. A user that exists already is skipped, not
        refused: a re-run of a file skips what the first run imported.
        """
        report = ImportReport()
        batch: list[tuple[ImportRow, NewUser, list[RoleView], QualifiedName]] = []
        seen: dict[tuple[str, str], int] = {}
        passwords = 0

        def flush() -> None:
            nonlocal passwords
            if not batch:
                return
            try:
                self._import_batch(initiator, batch)
                report.imported += len(batch)
            except IamError:
                for item in batch:
                    try:
                        self._import_batch(initiator, [item])
                        report.imported += 1
                    except AlreadyExists:
                        report.skipped.append(item[0].line)
                    except IamError as exc:
                        report.errors.append((item[0].line, str(exc)))
            if progress:
                progress(len(batch))
            batch.clear()
            passwords = 0

        with _cycle_collector_paused():
            for row in rows:
                try:
                    qn = parse_name(row.username, domain or "PRIMARY")
                    store = self._writable_store(qn.domain)
                    key = (qn.domain, store.policies.key(qn.name))
                    if key in seen:
                        raise InvalidInput(f"user {qn} appears more than once in the file "
                                           f"(first at line {seen[key]})")
                    new, roles = self._prepare_new_user(store, qn, row.password, row.claims,
                                                        row.roles)
                    seen[key] = row.line
                    batch.append((row, new, roles, qn))
                    passwords += bool(row.password)
                except IamError as exc:
                    report.errors.append((row.line, str(exc)))
                    if progress:
                        progress(1)
                if len(batch) >= batch_size or passwords >= PASSWORD_BATCH:
                    flush()
            flush()
        return report

    def _import_batch(
        self, initiator: Initiator,
        batch: Sequence[tuple[ImportRow, NewUser, list[RoleView], QualifiedName]],
    ) -> None:
        by_domain: dict[str, list[int]] = {}
        for i, (_row, _new, _roles, qn) in enumerate(batch):
            by_domain.setdefault(qn.domain, []).append(i)
        bus = self.bus
        # Events are only built when someone listens; the audit rows are always written.
        wanted = bus.has_subscribers(Phase.POST) or bus.has_subscribers(Phase.COMMITTED)
        events: list[IdentityEvent] = []
        audits: list[tuple[str, Mapping[str, Any]]] = []
        with self._write(events) as conn:
            for domain, idx in by_domain.items():
                store = self.stores.store(domain)
                claims_of = _claims_reader(self.claims, domain)
                if bus.has_subscribers(Phase.PRE):
                    for i in idx:
                        bus.emit(Phase.PRE, self._import_event(
                            initiator, batch[i], "", claims_of(batch[i][1])))
                users = store.add_users([batch[i][1] for i in idx])
                for i, user in zip(idx, users, strict=True):
                    item = batch[i]
                    self._assign_new_user_roles(conn, initiator, store, user, item[2])
                    claims = claims_of(item[1])
                    audits.append((str(item[3]), {"claims": sorted(claims), "import": True}))
                    if wanted:
                        events.append(self._import_event(initiator, item, user.id, claims))
            audit.record_many(conn, initiator, "user.add", audits)
            for ev in events:
                bus.emit(Phase.POST, ev)

    def _import_event(
        self, initiator: Initiator,
        item: tuple[ImportRow, NewUser, list[RoleView], QualifiedName], user_id: str,
        claims: dict[str, str],
    ) -> IdentityEvent:
        row, _new, roles, qn = item
        return IdentityEvent(EventType.USER_ADDED, initiator, qn.domain, user_id, str(qn),
                             {"claims": claims, "roles": [r.qualified_name for r in roles]},
                             secret=row.password)

    # ------------------------------------------------------------------ roles: read
    def _role(self, name: str) -> RoleView:
        qn = parse_name(name)
        if qn.is_internal:
            with self.db.transaction() as conn:
                r = internal_roles.get(conn, qn.name)
            return RoleView(r.id, INTERNAL, r.name)
        group = self.stores.store(qn.domain).get_group_by_name(qn.name)
        if group is None:
            raise NotFound(f"role {qn} does not exist")
        return _role_view(group)

    def get_role(self, name: str) -> RoleView:
        return self._role(name)

    def list_roles(
        self, domain: str | None = None, prefix: str | None = None, limit: int = 1000
    ) -> list[RoleView]:
        """Roles of one domain (``Internal`` included), or of every domain."""
        out: list[RoleView] = []
        domains = [domain] if domain else [INTERNAL, *self.stores.domains]
        for d in domains:
            if d == INTERNAL:
                with self.db.transaction() as conn:
                    names = internal_roles.list_names(conn, prefix, limit)
                    out.extend(RoleView(internal_roles.get(conn, n).id, INTERNAL, n)
                               for n in names)
                continue
            store = self.stores.store(d)
            if not store.capabilities.readable_groups:
                continue
            cursor: str | None = None
            while len(out) < limit:
                page: Page[StoredGroup] = store.list_groups(min(500, limit), cursor, prefix)
                out.extend(_role_view(g) for g in page.items)
                cursor = page.next_cursor
                if cursor is None:
                    break
        return out[:limit]

    def search_roles(self, domain: str, query: q.Query, start: int, count: int
                     ) -> q.SearchPage[RoleView]:
        """The groups of a userstore domain matching ``query`` (by name, id, member)."""
        store = self.stores.store(domain)
        native = q.simplify(query)
        if native == q.FALSE or not store.capabilities.readable_groups:
            return q.SearchPage(0, [])
        page = store.search_groups(native, start, count)
        return q.SearchPage(page.total, [_role_view(g) for g in page.items])

    def get_role_by_id(self, domain: str, role_id: str) -> RoleView:
        group = self.stores.store(domain).get_group(role_id)
        if group is None:
            raise NotFound(f"group {role_id} does not exist in {domain}")
        return _role_view(group)

    def member_page(self, role_name: str, page_size: int = DEFAULT_PAGE_SIZE,
                    cursor: str | None = None) -> Page[UserView]:
        """One page of a role's members (a store's group: in its order; an internal role:
        by domain and user id); pass ``next_cursor`` back for the next page."""
        role = self._role(role_name)
        size = max(1, min(page_size, MEMBER_PAGE_MAX))
        if not role.internal:
            page = self.stores.store(role.domain).members_of(role.id, size, cursor)
            return Page([self._view(u) for u in page.items], page.next_cursor)
        after = _member_position(cursor) if cursor is not None else None
        with self.db.transaction() as conn:
            pairs = internal_roles.members_page(conn, internal_roles.get(conn, role.name),
                                                size + 1, after)
        more, pairs = len(pairs) > size, pairs[:size]
        found = {domain: self.get_users_by_id(domain, [uid for d, uid in pairs if d == domain])
                 for domain in {d for d, _ in pairs} & set(self.stores.domains)}
        # A member whose store is gone, or who was deleted, is left out.
        views = [found[d][uid] for d, uid in pairs if uid in found.get(d, {})]
        return Page(views, _span_cursor(*pairs[-1]) if more else None)

    def members_of(self, role_name: str, limit: int = 1000) -> list[UserView]:
        """The first ``limit`` members of a role (the faces that page use member_page)."""
        out: list[UserView] = []
        cursor: str | None = None
        while len(out) < limit:
            page = self.member_page(role_name, limit - len(out), cursor)
            out.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        return out[:limit]

    def roles_of(self, name: str) -> list[str]:
        user = self._user(name)
        return self.roles_of_id(user.domain, user.id)

    def groups_of_id(self, domain: str, user_id: str) -> list[RoleView]:
        """The userstore groups of a user (not its Internal roles), in one store call."""
        store = self.stores.store(domain)
        if not store.capabilities.readable_groups:
            return []
        return [_role_view(g) for g in store.groups_of(user_id)]

    def groups_of_ids(self, domain: str, user_ids: Sequence[str]) -> dict[str, list[RoleView]]:
        """``groups_of_id`` for many users of one domain, in one store call (an id that is
        no user of the store has none)."""
        store = self.stores.store(domain)
        groups = store.groups_of_users(user_ids) if store.capabilities.readable_groups \
            else {}
        return {uid: [_role_view(g) for g in groups.get(uid, [])] for uid in user_ids}

    def roles_of_id(self, domain: str, user_id: str) -> list[str]:
        """The roles of the user with this store id (when the caller has read the user)."""
        names = [g.qualified_name for g in self.groups_of_id(domain, user_id)]
        with self.db.transaction() as conn:
            names += [f"{INTERNAL}/{n}" for n in internal_roles.roles_of(conn, domain,
                                                                          user_id)]
        return names

    def roles_of_ids(self, domain: str, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """``roles_of_id`` for many users of one domain: one read of the store's groups and
        one of the internal roles for all of them. Users that do not exist have none."""
        groups = self.groups_of_ids(domain, user_ids)
        with self.db.transaction() as conn:
            internal = internal_roles.roles_of_users(conn, domain, user_ids)
        return {uid: [g.qualified_name for g in groups[uid]]
                + [f"{INTERNAL}/{n}" for n in internal.get(uid, [])] for uid in user_ids}

    # ------------------------------------------------------------------ roles: write
    def add_role(self, initiator: Initiator, name: str, members: Sequence[str] = ()) -> RoleView:
        qn = parse_name(name)
        users = [self._user(m) for m in members]
        events: list[IdentityEvent] = []
        with self._write(events) as conn:
            if qn.is_internal:
                _check_internal_role_name(qn.name)
                ev = IdentityEvent(EventType.GROUP_ADDED, initiator, INTERNAL, "", str(qn),
                                   {"members": [_qn(u) for u in users]})
                self.bus.emit(Phase.PRE, ev)
                role = internal_roles.add(conn, qn.name)
                internal_roles.add_members(conn, role, [(u.domain, u.id) for u in users])
                view = RoleView(role.id, INTERNAL, role.name)
            else:
                store = self._writable_store(qn.domain, groups=True)
                store.policies.check_group_name(qn.domain, qn.name)
                _same_store(qn.domain, users)
                ev = IdentityEvent(EventType.GROUP_ADDED, initiator, qn.domain, "", str(qn),
                                   {"members": [_qn(u) for u in users]})
                self.bus.emit(Phase.PRE, ev)
                group = store.add_group(qn.name, [u.id for u in users])
                view = _role_view(group)
            ev = IdentityEvent(EventType.GROUP_ADDED, initiator, view.domain, view.id, str(qn),
                               {"members": [_qn(u) for u in users],
                                "member_ids": [u.id for u in users]})
            audit.record(conn, initiator, "role.add", str(qn),
                         {"members": [_qn(u) for u in users]})
            self.bus.emit(Phase.POST, ev)
            events.append(ev)
        return view

    def rename_role(self, initiator: Initiator, name: str, new_name: str) -> RoleView:
        role = self._role(name)
        new_qn = parse_name(new_name, role.domain)
        if new_qn.domain != role.domain:
            raise InvalidInput(f"a role cannot move between domains ({role.domain} -> "
                               f"{new_qn.domain}); create it in the other domain instead")
        events: list[IdentityEvent] = []
        with self._write(events) as conn:
            ev = IdentityEvent(EventType.GROUP_RENAMED, initiator, role.domain, role.id,
                               str(new_qn), {"old_name": role.qualified_name,
                                             "new_name": str(new_qn)})
            self.bus.emit(Phase.PRE, ev)
            if role.internal:
                _check_internal_role_name(new_qn.name)
                internal_roles.rename(conn, internal_roles.get(conn, role.name), new_qn.name)
            else:
                store = self._writable_store(role.domain, groups=True)
                store.policies.check_group_name(role.domain, new_qn.name)
                store.rename_group(role.id, new_qn.name)
            audit.record(conn, initiator, "role.rename", role.qualified_name,
                         {"new_name": str(new_qn)})
            self.bus.emit(Phase.POST, ev)
            events.append(ev)
        return RoleView(role.id, role.domain, new_qn.name)

    def delete_role(self, initiator: Initiator, name: str) -> None:
        role = self._role(name)
        events: list[IdentityEvent] = []
        with self._write(events) as conn:
            ev = IdentityEvent(EventType.GROUP_DELETED, initiator, role.domain, role.id,
                               role.qualified_name)
            self.bus.emit(Phase.PRE, ev)
            if role.internal:
                internal_roles.remove(conn, internal_roles.get(conn, role.name))
            else:
                self._writable_store(role.domain, groups=True).delete_group(role.id)
            audit.record(conn, initiator, "role.delete", role.qualified_name)
            self.bus.emit(Phase.POST, ev)
            events.append(ev)

    def assign(self, initiator: Initiator, role_name: str, users: Sequence[str]) -> list[str]:
        """Add users to a role; returns the qualified names that were not members yet."""
        return self._change_members(initiator, role_name, add=users, remove=())

    def unassign(self, initiator: Initiator, role_name: str, users: Sequence[str]) -> list[str]:
        """Remove users from a role; returns the qualified names that were members."""
        return self._change_members(initiator, role_name, add=(), remove=users)

    def set_user_roles(self, initiator: Initiator, name: str, add: Sequence[str] = (),
                       remove: Sequence[str] = ()) -> None:
        """Put one user into some roles and out of others, all or nothing (one transaction:
        a role that refuses the change leaves the user's other roles as they were)."""
        with self.db.transaction():
            for role in add:
                self.assign(initiator, role, [name])
            for role in remove:
                self.unassign(initiator, role, [name])

    def _change_members(
        self, initiator: Initiator, role_name: str, add: Sequence[str], remove: Sequence[str]
    ) -> list[str]:
        role = self._role(role_name)
        add_users = list({u.id: u for u in (self._user(n) for n in add)}.values())
        remove_users = list({u.id: u for u in (self._user(n) for n in remove)}.values())
        events: list[IdentityEvent] = []
        with self._write(events) as conn:
            if role.internal:
                current = set(internal_roles.members_of(conn, internal_roles.get(conn,
                                                                                 role.name)))
                is_member = {u.id: (u.domain, u.id) in current for u in [*add_users,
                                                                          *remove_users]}
            else:
                store = self._writable_store(role.domain, groups=True)
                _same_store(role.domain, [*add_users, *remove_users])
                is_member = {u.id: any(g.id == role.id for g in store.groups_of(u.id))
                             for u in [*add_users, *remove_users]}
            added = [u for u in add_users if not is_member[u.id]]
            removed = [u for u in remove_users if is_member[u.id]]
            if not added and not removed:
                return []
            ev = IdentityEvent(
                EventType.GROUP_MEMBERS_CHANGED, initiator, role.domain, role.id,
                role.qualified_name,
                {"added": [_qn(u) for u in added], "removed": [_qn(u) for u in removed],
                 "added_ids": [[u.domain, u.id] for u in added],
                 "removed_ids": [[u.domain, u.id] for u in removed]})
            self.bus.emit(Phase.PRE, ev)
            if role.internal:
                r = internal_roles.get(conn, role.name)
                internal_roles.add_members(conn, r, [(u.domain, u.id) for u in added])
                internal_roles.remove_members(conn, r, [(u.domain, u.id) for u in removed])
            else:
                store.update_members(role.id, add=[u.id for u in added],
                                     remove=[u.id for u in removed])
            audit.record(conn, initiator, "role.members", role.qualified_name,
                         {"added": ev.data["added"], "removed": ev.data["removed"]})
            self.bus.emit(Phase.POST, ev)
            events.append(ev)
        return [_qn(u) for u in [*added, *removed]]


def _role_view(group: StoredGroup) -> RoleView:
    return RoleView(group.id, group.domain, group.name, group.created, group.modified)


def _span_cursor(domain: str, inner: str | None) -> str:
    """The cursor of a listing over every store: where it stopped, and that store's cursor."""
    data = json.dumps({"d": domain, "c": inner}, separators=(",", ":"))
    return base64.urlsafe_b64encode(data.encode()).decode()


def _span_decode(cursor: str) -> tuple[str, object]:
    """The (domain, inner cursor or user id) a ``_span_cursor`` holds."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        domain, inner = data["d"], data["c"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput("the paging cursor is not valid (start the listing again)") from exc
    if not isinstance(domain, str):
        raise InvalidInput("the paging cursor is not valid (start the listing again)")
    return domain, inner


def _span_position(cursor: str, domains: Sequence[str]) -> tuple[str, str | None]:
    domain, inner = _span_decode(cursor)
    if domain not in domains:
        raise InvalidInput(f"the paging cursor continues in userstore {domain}, which is no "
                           "longer listed; start the listing again")
    return domain, inner if isinstance(inner, str) else None


def _member_position(cursor: str) -> tuple[str, str]:
    """The last (domain, user id) a page of an internal role's members ended on."""
    domain, user_id = _span_decode(cursor)
    if not isinstance(user_id, str):
        raise InvalidInput("the paging cursor belongs to another listing")
    return domain, user_id


def _qn(user: StoredUser) -> str:
    return f"{user.domain}/{user.username}"


def _same_store(domain: str, users: Sequence[StoredUser]) -> None:
    others = [_qn(u) for u in users if u.domain != domain]
    if others:
        raise InvalidInput(
            f"group {domain} roles can only hold users of {domain}; not: {', '.join(others)}")


def _check_internal_role_name(name: str) -> None:
    if not name or "/" in name or name != name.strip() or len(name) > 64:
        raise InvalidInput(
            f"internal role name {name!r} must be 1 to 64 characters, without '/' or "
            "surrounding spaces")


def _claims_reader(catalog: ClaimCatalog, domain: str) -> Callable[[NewUser], dict[str, str]]:
    """``catalog.to_claims`` for many users of one domain, worked out once per attribute set."""
    uris: dict[tuple[str, ...], dict[str, str]] = {}

    def claims_of(user: NewUser) -> dict[str, str]:
        names = tuple(user.attributes)
        found = uris.get(names)
        if found is None:
            found = uris[names] = catalog.to_claims(domain, {a: a for a in names})
        return {uri: user.attributes[a] for uri, a in found.items()}

    return claims_of


@contextlib.contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector during a bulk import.

    An import holds a batch of rows, and each full collection would scan them with everything
    else the process holds: a fifth of an import's time. Rows are freed by reference counting
    either way; automatic collection resumes when the import ends.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
