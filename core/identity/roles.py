"""The identity service's roles: store groups and Internal roles, and their members."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from core import audit
from core.errors import InvalidInput, NotFound
from core.identity import internal_roles
from core.identity.base import DEFAULT_PAGE_SIZE, qualified
from core.identity.cursors import member_position, span_cursor
from core.identity.events import EventType, IdentityEvent, Initiator, Phase
from core.identity.users import UserOperations
from core.identity.views import RoleView, UserView, role_view
from core.names import INTERNAL, parse_name
from core.userstores import query as q
from core.userstores.base import Page, StoredGroup, StoredUser

#: The largest page of role members asked of a store at once.
MEMBER_PAGE_MAX = 500


class RoleOperations(UserOperations):
    """Roles read their members as users (``UserOperations``)."""

    # ------------------------------------------------------------------ roles: read

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
                out.extend(role_view(g) for g in page.items)
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
        return q.SearchPage(page.total, [role_view(g) for g in page.items])

    def get_role_by_id(self, domain: str, role_id: str) -> RoleView:
        group = self.stores.store(domain).get_group(role_id)
        if group is None:
            raise NotFound(f"group {role_id} does not exist in {domain}")
        return role_view(group)

    def member_page(self, role_name: str, page_size: int = DEFAULT_PAGE_SIZE,
                    cursor: str | None = None) -> Page[UserView]:
        """One page of a role's members (a store's group: in its order; an internal role:
        by domain and user id); pass ``next_cursor`` back for the next page."""
        role = self._role(role_name)
        size = max(1, min(page_size, MEMBER_PAGE_MAX))
        if not role.internal:
            page = self.stores.store(role.domain).members_of(role.id, size, cursor)
            return Page([self._view(u) for u in page.items], page.next_cursor)
        after = member_position(cursor) if cursor is not None else None
        with self.db.transaction() as conn:
            pairs = internal_roles.members_page(conn, internal_roles.get(conn, role.name),
                                                size + 1, after)
        more, pairs = len(pairs) > size, pairs[:size]
        found = {domain: self.get_users_by_id(domain, [uid for d, uid in pairs if d == domain])
                 for domain in {d for d, _ in pairs} & set(self.stores.domains)}
        # A member whose store is gone, or who was deleted, is left out.
        views = [found[d][uid] for d, uid in pairs if uid in found.get(d, {})]
        return Page(views, span_cursor(*pairs[-1]) if more else None)

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
        return [role_view(g) for g in store.groups_of(user_id)]

    def user_and_groups_by_id(self, domain: str, user_id: str
                              ) -> tuple[UserView, list[RoleView]]:
        """``get_user_by_id`` and ``groups_of_id`` in one store read where the store can."""
        store = self.stores.store(domain)
        if not store.capabilities.readable_groups:
            return self.get_user_by_id(domain, user_id), []
        found = store.get_user_with_groups(user_id)
        if found is None:
            raise NotFound(f"user {user_id} does not exist in {domain}")
        return self._view(found[0]), [role_view(g) for g in found[1]]

    def groups_of_ids(self, domain: str, user_ids: Sequence[str],
                      read: Mapping[str, Sequence[StoredGroup]] | None = None
                      ) -> dict[str, list[RoleView]]:
        """``groups_of_id`` for many users of one domain, in one store call (an id that is
        no user of the store has none); ``read``: their groups as a search read them with
        the users (``SearchPage.groups``), which makes the store call needless."""
        groups = read
        if groups is None:
            store = self.stores.store(domain)
            groups = store.groups_of_users(user_ids) if store.capabilities.readable_groups \
                else {}
        return {uid: [role_view(g) for g in groups.get(uid, [])] for uid in user_ids}

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
                                   {"members": [qualified(u) for u in users]})
                self.bus.emit(Phase.PRE, ev)
                role = internal_roles.add(conn, qn.name)
                internal_roles.add_members(conn, role, [(u.domain, u.id) for u in users])
                view = RoleView(role.id, INTERNAL, role.name)
            else:
                store = self._writable_store(qn.domain, groups=True)
                store.policies.check_group_name(qn.domain, qn.name)
                _same_store(qn.domain, users)
                ev = IdentityEvent(EventType.GROUP_ADDED, initiator, qn.domain, "", str(qn),
                                   {"members": [qualified(u) for u in users]})
                self.bus.emit(Phase.PRE, ev)
                group = store.add_group(qn.name, [u.id for u in users])
                view = role_view(group)
            ev = IdentityEvent(EventType.GROUP_ADDED, initiator, view.domain, view.id, str(qn),
                               {"members": [qualified(u) for u in users],
                                "member_ids": [u.id for u in users]})
            audit.record(conn, initiator, "role.add", str(qn),
                         {"members": [qualified(u) for u in users]})
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
        changed: list[list[str]] = [[], []]  # added, removed: what a compensation reverses

        def compensate() -> None:
            self._change_members(initiator.compensating(), role_name, add=changed[1],
                                 remove=changed[0])

        with self._write(events, send_after_commit=True, compensate=compensate) as conn:
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
            changed[:] = [[qualified(u) for u in added], [qualified(u) for u in removed]]
            ev = IdentityEvent(
                EventType.GROUP_MEMBERS_CHANGED, initiator, role.domain, role.id,
                role.qualified_name,
                {"added": [qualified(u) for u in added], "removed": [qualified(u) for u in removed],
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
        return [qualified(u) for u in [*added, *removed]]


def _same_store(domain: str, users: Sequence[StoredUser]) -> None:
    others = [qualified(u) for u in users if u.domain != domain]
    if others:
        raise InvalidInput(
            f"group {domain} roles can only hold users of {domain}; not: {', '.join(others)}")


def _check_internal_role_name(name: str) -> None:
    if not name or "/" in name or name != name.strip() or len(name) > 64:
        raise InvalidInput(
            f"internal role name {name!r} must be 1 to 64 characters, without '/' or "
            "surrounding spaces")
