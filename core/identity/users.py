"""The identity service's users: reads, and writes through one transaction each."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from core import audit
from core.claims import USERNAME
from core.errors import InvalidInput, NotFound
from core.identity import internal_roles
from core.identity.base import DEFAULT_PAGE_SIZE, IdentityBase
from core.identity.cursors import span_cursor, span_position
from core.identity.events import EventType, IdentityEvent, Initiator, Phase
from core.identity.views import RoleView, UserView
from core.names import QualifiedName, parse_name
from core.userstores import query as q
from core.userstores.base import NewUser, Page, StoredUser, UserStore


class UserOperations(IdentityBase):
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
        domain, inner = span_position(cursor, domains) if cursor else (domains[0], None)
        items: list[UserView] = []
        for i in range(domains.index(domain), len(domains)):
            if len(items) >= max(1, page_size):
                return Page(items, span_cursor(domains[i], None))
            page = self.list_users(domains[i], max(1, page_size) - len(items), inner, prefix,
                                   claim)
            items.extend(page.items)
            if page.next_cursor is not None:
                return Page(items, span_cursor(domains[i], page.next_cursor))
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
        return q.SearchPage(page.total, [self._view(u) for u in page.items], page.groups)

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
        with self._write(events, undo, send_after_commit=True,
                         compensate=lambda: self.delete_user(initiator.compensating(),
                                                             str(qn))) as conn:
            probe = IdentityEvent(EventType.USER_ADDED, initiator, qn.domain, "", str(qn),
                                  {"claims": self.claims.to_claims(qn.domain, new.attributes),
                                   "roles": list(roles)}, secret=password)
            self.bus.emit(Phase.PRE, probe)
            if role_targets or self.bus.wants(Phase.POST, probe):
                self.db.writes_more()  # after the user's insert
            # Recorded first: the insert may be the transaction's last write, which then
            # carries the audit row (core.ambient).
            audit.record(conn, initiator, "user.add", str(qn),
                         {"claims": sorted(probe.data["claims"]), "roles": list(roles)})
            user = store.add_user(new)
            undo.append(functools.partial(store.delete_user, user.id))
            self._assign_new_user_roles(conn, initiator, store, user, role_targets)
            ev = IdentityEvent(EventType.USER_ADDED, initiator, qn.domain, user.id, str(qn),
                               probe.data, secret=password)
            self.bus.emit(Phase.POST, ev)
            events.append(ev)
        return self._view(user)

    def _prepare_new_user(
        self, store: UserStore, qn: QualifiedName, password: str | None,
        claims: Mapping[str, str], roles: Sequence[str],
        to_attributes: Callable[[Mapping[str, str]], dict[str, str]] | None = None,
    ) -> tuple[NewUser, list[RoleView]]:
        """The user to add and its roles, checked; ``to_attributes``: an
        ``_attribute_writer`` of ``qn``'s domain (a bulk import's)."""
        store.policies.check_username(qn.domain, qn.name)
        if password is not None:
            store.policies.check_password(qn.domain, password)
        attributes = to_attributes(claims) if to_attributes is not None else \
            self.claims.to_attributes(qn.domain, self._resolve_claims(claims))
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
        before = user.claims if isinstance(user, UserView) else \
            catalog.to_claims(user.domain, user.attributes)
        restore = ({u: before[u] for u in [*set_uris, *to_remove_uris] if u in before},
                   [u for u in set_uris if u not in before])
        qn = f"{user.domain}/{user.username}"

        def compensate() -> None:
            self.update_user(initiator.compensating(), qn, *restore)

        with self._write(events, send_after_commit=True, compensate=compensate) as conn:
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
            if any(self.bus.wants(Phase.POST, ev) for ev in evs):
                self.db.writes_more()  # after the user's update
            audit.record(conn, initiator, "user.update", f"{user.domain}/{user.username}",
                         {"set": sorted(set_uris), "removed": to_remove_uris})  # as above
            updated = store.update_attributes(user.id, to_set, to_remove)
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
        # no compensation: the old password is not to be had (see the planner)
        with self._write(events, send_after_commit=True) as conn:
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
        # no compensation: a deleted user cannot be brought back as it was (see the planner)
        with self._write(events, send_after_commit=True) as conn:
            ev = IdentityEvent(EventType.USER_DELETED, initiator, user.domain, user.id, qn,
                               {"claims": self._view(user).claims})
            self.bus.emit(Phase.PRE, ev)
            internal_roles.forget_user(conn, user.domain, user.id)
            store.delete_user(user.id)
            audit.record(conn, initiator, "user.delete", qn)
            self.bus.emit(Phase.POST, ev)
            events.append(ev)

