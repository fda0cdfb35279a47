"""Bulk sync: queue the desired state of everyone in a target's scope.

``sync_all`` is for a target that is new, or that missed changes (users loaded before it
existed): an upsert job per user in scope and per group sent there, written page by page
(memory flat in the number of users). The jobs go through the normal outbox; a group's
job waits for its members' jobs, so groups land with their members.

``newly_mapped_groups`` covers a role mapping added after its group existed: saving the
identity provider queues the group for its targets (the planner only plans on group
events, so such a group was never sent).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import IamError, NotFound
from core.names import parse_name
from core.provisioning import mapping, outbox
from core.provisioning.host import Host
from core.provisioning.outbox import JobSpec, Operation
from core.provisioning.scope_rules import in_scope, mapped_group_name
from core.provisioning.status import configured_targets
from core.provisioning.targets import Target, build_target, target_key

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from core.idps import IdentityProvider

PAGE = 500


@dataclass(frozen=True)
class SyncCounts:
    users: int
    groups: int


def sync_all(iam: Host, target: Target, application: str) -> SyncCounts:
    """Queue an upsert of every user in ``target``'s scope and of every group sent there."""
    users = groups = 0
    for page in _users_in_scope(iam, target):
        with iam.db.transaction() as conn:
            for domain, user_id, name in page:
                outbox.enqueue(conn, JobSpec(target.key, Operation.UPSERT_USER, "user",
                                             domain, user_id, name), application)
        users += len(page)
    if target.sends_groups:
        for domain in iam.stores.domains:
            groups += _sync_groups(iam, target, application, domain)
    return SyncCounts(users, groups)


def users_in_scope(iam: Host, target: Target) -> int:
    """How many users ``sync_all`` would queue (what the console's offer says), without
    reading every user: a count per store when the target takes everyone, else the
    holders of its provisioning roles, each counted once (memory grows with those, not
    with the deployment)."""
    if not target.provisioning_roles:
        return iam.identity.count_users()
    holders: set[tuple[str, str]] = set()
    for role in target.provisioning_roles:
        holders.update(_holders(iam, role))
    return len(holders)


def _holders(iam: Host, role: str) -> Iterator[tuple[str, str]]:
    """(domain, id) of the users of enabled stores that hold ``role`` as ``in_scope`` names
    it; none for a role that does not exist (or is a group of a store that is disabled or
    keeps no readable groups). A store that is down raises, as the listing would."""
    try:
        view = iam.identity.get_role(role)
        if str(parse_name(view.qualified_name)) != role:
            return  # found by a case-insensitive store: in_scope compares exactly
        if not view.internal and not iam.stores.store(view.domain).capabilities.readable_groups:
            return
    except NotFound:
        return
    cursor: str | None = None
    while True:
        page = iam.identity.member_page(role, PAGE, cursor)
        yield from ((user.domain, user.id) for user in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return


def _users_in_scope(iam: Host, target: Target) -> Iterator[list[tuple[str, str, str]]]:
    """The users in ``target``'s scope, a page at a time: (domain, id, qualified name)."""
    cursor: str | None = None
    while True:
        page = iam.identity.list_users(None, PAGE, cursor)
        by_domain: dict[str, list[tuple[str, str]]] = {}
        for view in page.items:
            by_domain.setdefault(view.domain, []).append((view.id, view.qualified_name))
        found: list[tuple[str, str, str]] = []
        for domain, of_domain in by_domain.items():
            roles = iam.identity.roles_of_ids(domain, [i for i, _n in of_domain])
            found += [(domain, user_id, name) for user_id, name in of_domain
                      if in_scope(target, roles[user_id])]
        yield found
        cursor = page.next_cursor
        if cursor is None:
            return


def _sync_groups(iam: Host, target: Target, application: str, domain: str) -> int:
    store = iam.stores.store(domain)
    if not store.capabilities.readable_groups:
        return 0
    queued, cursor = 0, None
    while True:
        page = store.list_groups(PAGE, cursor)
        with iam.db.transaction() as conn:
            for g in page.items:
                name = f"{g.domain}/{g.name}"
                if mapped_group_name(target, name) is not None:
                    outbox.enqueue(conn, JobSpec(target.key, Operation.UPSERT_GROUP, "group",
                                                 g.domain, g.id, name), application)
                    queued += 1
        cursor = page.next_cursor
        if cursor is None:
            return queued


def newly_mapped_groups(conn: Connection, iam: Host, old: IdentityProvider | None,
                        new: IdentityProvider, application: str) -> int:
    """Queue the groups ``new``'s role mappings send that ``old``'s did not and that have
    no mapping at a target of the identity provider yet; how many jobs were written."""
    queued, used = 0, configured_targets(conn, iam)
    for connector in new.connectors:
        try:
            now = build_target(new, connector.type)
            before = build_target(old, connector.type) if old is not None else None
        except IamError:
            continue
        if not (new.enabled and connector.enabled and now.sends_groups):
            continue
        for m in new.role_mappings:
            qn = parse_name(m.local)
            if before is not None and mapped_group_name(before, str(qn)) is not None:
                continue  # sent already (perhaps under another name: a rename's business)
            if mapped_group_name(now, str(qn)) is None:
                continue
            try:
                group = iam.stores.store(qn.domain).get_group_by_name(qn.name)
            except IamError:
                continue
            key = target_key(new.name, connector.type)
            if not used.get(key) or group is None or \
                    mapping.get(conn, key, "group", group.id) is not None:
                continue
            outbox.enqueue(conn, JobSpec(key, Operation.UPSERT_GROUP, "group", group.domain,
                                         group.id, str(qn)), application)
            queued += 1
    return queued
