"""Reconciliation: compare a target's users with what it should hold, and queue repairs.

Users, then (when the target takes groups) every group sent there with its members. Both
sides are streamed: the target's listing (``Connector.list_users``) is read page by
page and each page is matched to our mappings and users in a few queries; then our users
are walked page by page for those the target lacks. What is kept between the two passes is
the ids of the remote objects we found mapped, as 8-byte hashes in one sorted array (800 KB
at 100,000 users, twice that while it is merged from the batches' sorted runs), so memory
stays nearly flat in the number of users; only the drift found is collected.

The four kinds of drift (issue 16): ``missing_remote`` (in scope here, absent there),
``extra_remote`` (there, but not ours, or ours and out of scope or deleted here),
``drifted`` (ours and in scope, with attributes whose values differ: names only, never
values) and ``unlinked`` (a remote object with the natural key of one of our users in
scope that has no mapping). On a target that cannot delete users
(``ConnectorSpec.deletes_users`` false: Salesforce deactivates instead), an inactive remote
user counts as deleted: missing when it is one of ours that should be active (the repair's
update reactivates it), and never extra (we deprovisioned it, or it was never ours and is
off). Repairs go through the normal outbox: an upsert job per
missing, drifted or unlinked user (an unlinked one is adopted on the create's conflict),
and with ``delete_extra`` a deprovisioning job (action ``delete``) per extra object we
have a mapping for. Remote objects that were never ours are reported, never deleted.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import heapq
from array import array
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx

from connectors.base import Connector, ConnectorError, RemoteObject
from connectors.registry import connector_class
from core import audit
from core.errors import InvalidInput, NotFound, StoreUnavailable
from core.identity.events import Initiator
from core.names import parse_name
from core.provisioning import mapping, outbox
from core.provisioning.host import Host
from core.provisioning.outbox import JobSpec, Operation
from core.provisioning.scope_rules import in_scope, mapped_group_name, outbound_user
from core.provisioning.targets import Target, build_target, split_key

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from core.userstores.base import StoredGroup

T = TypeVar("T")

#: Remote objects matched per round of queries, and local users read per page.
BATCH = 500
#: The page size the target's listing asks for. Larger than the connectors' default
#: (``LIST_PAGE``): a peer that pages in time growing with its size (scim2-server sorts
#: every user per page) costs far less in fewer, larger pages. A peer bounds it by its
#: own maximum (SCIM ``maxResults``, Google's 500) and the listing follows what it gets.
LIST_PAGE_SIZE = 1000
#: The audit action a reconciliation is recorded under (its report's summary).
ACTION = "provisioning.reconcile"
KINDS = ("missing_remote", "extra_remote", "drifted", "unlinked")
#: Names of each kind kept in the summary.
SUMMARY_NAMES = 20


@dataclass(frozen=True)
class Drifted:
    user: str
    attributes: list[str]


@dataclass
class Drift:
    """The four kinds of drift of one entity type (names: ``DOMAIN/name`` for ours, the
    target's name for objects that are not)."""

    missing_remote: list[str] = field(default_factory=list)
    extra_remote: list[str] = field(default_factory=list)
    drifted: list[Drifted] = field(default_factory=list)
    unlinked: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"missing_remote": self.missing_remote, "extra_remote": self.extra_remote,
                "drifted": [{"name": d.user, "attributes": d.attributes}
                            for d in self.drifted],
                "unlinked": self.unlinked}

    @property
    def empty(self) -> bool:
        return not (self.missing_remote or self.extra_remote or self.drifted
                    or self.unlinked)


@dataclass
class ReconcileReport(Drift):
    """Users' drift (the fields of :class:`Drift`), and the mapped groups' in ``groups``."""

    target: str = ""
    groups: Drift = field(default_factory=Drift)
    remote_users: int = 0
    local_users: int = 0
    jobs_queued: int = 0
    finished: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        users = super().as_dict()
        users["drifted"] = [{"user": d.user, "attributes": d.attributes}
                            for d in self.drifted]
        return {**users, "groups": self.groups.as_dict(), "target": self.target,
                "remote_users": self.remote_users, "local_users": self.local_users,
                "jobs_queued": self.jobs_queued,
                "finished": self.finished.isoformat() if self.finished else None}

    @property
    def in_sync(self) -> bool:
        return self.empty and self.groups.empty

    def summary(self, repair: bool, delete_extra: bool) -> dict[str, Any]:
        """What the audit log keeps: counts of each kind, the first names of each."""
        out: dict[str, Any] = {"repair": repair, "delete_extra": delete_extra,
                               "jobs": self.jobs_queued, "local_users": self.local_users,
                               "remote_users": self.remote_users}
        for prefix, drift in (("", self), ("group_", self.groups)):
            for kind, names in Drift.as_dict(drift).items():
                out[f"{prefix}{kind}"] = len(names)
                out[f"{prefix}{kind}_names"] = [n if isinstance(n, str) else n["name"]
                                                for n in names[:SUMMARY_NAMES]]
        return out


def _hash(remote_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(remote_id.encode(), digest_size=8).digest(),
                          "big", signed=True)


class SeenIds:
    """Remote ids as 8-byte hashes: a sorted run per batch while a pass adds them, merged
    into one sorted array for look-ups (``seal``). No list of Python ints is ever built
    (36 bytes an id), so the peak is 16 bytes an id: the runs and the merged array."""

    def __init__(self) -> None:
        self._runs: list[array[int]] = []
        self._sorted: array[int] = array("q")

    def add(self, remote_ids: Iterable[str]) -> None:
        self._runs.append(array("q", sorted(_hash(i) for i in remote_ids)))

    def seal(self) -> None:
        merged: array[int] = array("q")
        merged.extend(heapq.merge(*self._runs))
        self._runs, self._sorted = [], merged

    def __contains__(self, remote_id: object) -> bool:
        h = _hash(str(remote_id))
        i = bisect.bisect_left(self._sorted, h)
        return i < len(self._sorted) and self._sorted[i] == h


class Reconciler:
    """One run against one target (``run`` once)."""

    def __init__(self, iam: Host, target: Target, application: str, repair: bool = False,
                 delete_extra: bool = False) -> None:
        if delete_extra and not repair:
            raise InvalidInput("--delete-extra deletes through the repair: give --repair too")
        self.iam, self.target = iam, target
        self.application = application
        self.repair, self.delete_extra = repair, delete_extra
        self.report = ReconcileReport(target=target.key)
        self._seen = SeenIds()  # the mapped remote ids the target listed
        self._unlinked: set[str] = set()  # local ids of unlinked users (drift: few)

    async def run(self, client: httpx.AsyncClient) -> ReconcileReport:
        connector = connector_class(self.target.config.type)(self.target.properties, client)
        await self._remote_pass(connector)
        self._seen.seal()
        self._local_pass()
        if self.target.sends_groups:
            self._seen = SeenIds()
            self._unlinked.clear()
            await self._remote_groups(connector)
            self._seen.seal()
            self._local_groups()
        self.report.finished = datetime.now(UTC)
        return self.report

    # ------------------------------------------------------------ the target's side
    async def _remote_pass(self, connector: Connector) -> None:
        """Each batch is matched in a thread while the next page is read, so the compare
        overlaps the target's answering instead of adding to it."""
        async for batch in _read_ahead(_batches(connector.list_users(
            LIST_PAGE_SIZE, known=self._known_users()), BATCH)):
            await asyncio.to_thread(self._match_users, connector, batch)

    def _match_users(self, connector: Connector, batch: Sequence[RemoteObject]) -> None:
        self.report.remote_users += len(batch)
        with self.iam.db.transaction() as conn:
            known = mapping.by_remote_ids(conn, self.target.key, "user", [o.id for o in batch])
            self._mapped(conn, connector, [(o, known[o.id]) for o in batch if o.id in known])
            for o in batch:
                if o.id not in known:
                    self._unmapped(conn, o)

    def _known_users(self) -> Iterator[str]:
        """The remote ids of the users mapped to the target, page by page (for a target
        that can only look users up, not list them)."""
        after = 0
        while True:
            with self.iam.db.transaction() as conn:
                page = mapping.remote_ids(conn, self.target.key, "user", after, BATCH)
            yield from (remote_id for _, remote_id in page)
            if len(page) < BATCH:
                return
            after = page[-1][0]

    def _mapped(self, conn: Connection, connector: Connector,
                pairs: Sequence[tuple[RemoteObject, mapping.Mapping]]) -> None:
        by_domain: dict[str, list[tuple[RemoteObject, mapping.Mapping]]] = {}
        self._seen.add(o.id for o, _m in pairs)
        for o, m in pairs:
            by_domain.setdefault(m.domain, []).append((o, m))
        identity = self.iam.identity
        for domain, of_domain in by_domain.items():
            ids = [m.entity_id for _, m in of_domain]
            views = identity.get_users_by_id(domain, ids)
            roles = identity.roles_of_ids(domain, [i for i in ids if i in views])
            for o, m in of_domain:
                view = views.get(m.entity_id)
                if view is None or not in_scope(self.target, roles[m.entity_id]):
                    if self._deleted_there(o):
                        continue  # deprovisioned already, as the target deletes
                    self.report.extra_remote.append(o.name)
                    if self.delete_extra:
                        self._queue(conn, Operation.DEPROVISION_USER, m.domain, m.entity_id,
                                    view.qualified_name if view else f"{m.domain}/{o.name}",
                                    {"deleted": view is None, "username": o.name,
                                     "action": "delete"})
                    continue
                wanted = outbound_user(self.target, self.iam.claims, view.username,
                                       view.domain, view.claims, roles[m.entity_id])
                if wanted.active and self._deleted_there(o):
                    self.report.missing_remote.append(view.qualified_name)
                    self._upsert(conn, view.domain, view.id, view.qualified_name)
                    continue
                differ = connector.drift(o, wanted)
                if differ:
                    self.report.drifted.append(Drifted(view.qualified_name, differ))
                    self._upsert(conn, view.domain, view.id, view.qualified_name)

    def _unmapped(self, conn: Connection, o: RemoteObject) -> None:
        """A remote object without a mapping: one of our users in scope (unlinked), or
        not ours."""
        for domain in self.iam.stores.domains:
            user = self.iam.stores.store(domain).get_user_by_name(o.name)
            if user is None:
                continue
            roles = self.iam.identity.roles_of_ids(domain, [user.id]).get(user.id, [])
            if in_scope(self.target, roles) and \
                    mapping.get(conn, self.target.key, "user", user.id) is None:
                name = f"{domain}/{user.username}"
                self.report.unlinked.append(name)
                self._unlinked.add(user.id)
                self._upsert(conn, domain, user.id, name)
                return
        if not self._deleted_there(o):
            self.report.extra_remote.append(o.name)

    def _deleted_there(self, o: RemoteObject) -> bool:
        """A target that cannot delete users (Salesforce) deactivates them instead: there
        an inactive user is a deleted one (missing when it should be ours, never extra)."""
        return not self.target.spec.deletes_users and not o.active

    # ------------------------------------------------------------ our side
    def _local_pass(self) -> None:
        identity, cursor = self.iam.identity, None
        while True:
            page = identity.list_users(None, BATCH, cursor)
            with self.iam.db.transaction() as conn:
                by_domain: dict[str, list[Any]] = {}
                for view in page.items:
                    by_domain.setdefault(view.domain, []).append(view)
                for domain, views in by_domain.items():
                    ids = [v.id for v in views]
                    roles = identity.roles_of_ids(domain, ids)
                    known = mapping.get_many(conn, self.target.key, "user", ids)
                    for v in views:
                        if not in_scope(self.target, roles[v.id]) or v.id in self._unlinked:
                            continue
                        self.report.local_users += 1
                        m = known.get(v.id)
                        if m is None or m.remote_id not in self._seen:
                            self.report.missing_remote.append(v.qualified_name)
                            self._upsert(conn, v.domain, v.id, v.qualified_name)
            cursor = page.next_cursor
            if cursor is None:
                return

    # ------------------------------------------------------------ groups
    async def _remote_groups(self, connector: Connector) -> None:
        drift = self.report.groups
        async for batch in _batches(connector.list_groups(LIST_PAGE_SIZE), BATCH):
            with self.iam.db.transaction() as conn:
                known = mapping.by_remote_ids(conn, self.target.key, "group",
                                              [o.id for o in batch])
                self._seen.add(o.id for o in batch if o.id in known)
                for o in batch:
                    m = known.get(o.id)
                    if m is None:
                        self._unmapped_group(conn, o)
                        continue
                    group = self._store_group(m.domain, m.entity_id)
                    name = self._group_name(group)
                    if group is None or name is None:
                        drift.extra_remote.append(o.name)
                        if self.delete_extra:
                            self._queue(conn, Operation.DELETE_GROUP, m.domain, m.entity_id,
                                        f"{m.domain}/{o.name}", {"remote_name": o.name},
                                        "group")
                        continue
                    self._compare_group(conn, o, group, name)

    def _compare_group(self, conn: Connection, o: RemoteObject, group: StoredGroup,
                       name: str) -> None:
        """Name and members of a mapped group; a repair renames it and changes the
        members that are ours (remote members we do not know stay)."""
        qualified = f"{group.domain}/{group.name}"
        members = self._local_members(group)
        linked = mapping.get_many(conn, self.target.key, "user", [i for _d, i in members])
        remote = set(o.members)
        add = [[d, i] for d, i in members if i in linked and linked[i].remote_id not in remote]
        ours = {i for _d, i in members}
        remove = [[m.domain, m.entity_id] for m in mapping.by_remote_ids(
            conn, self.target.key, "user", list(remote)).values() if m.entity_id not in ours]
        differ = (["displayName"] if o.name != name else []) + \
            (["members"] if add or remove else [])
        if not differ:
            return
        self.report.groups.drifted.append(Drifted(qualified, differ))
        if o.name != name:
            self._queue(conn, Operation.UPSERT_GROUP, group.domain, group.id, qualified, {},
                        "group")
        if add or remove:
            self._queue(conn, Operation.GROUP_MEMBERS, group.domain, group.id, qualified,
                        {"add": add, "remove": remove}, "group")

    def _unmapped_group(self, conn: Connection, o: RemoteObject) -> None:
        local = {str(parse_name(m.local)): m.remote for m in self.target.idp.role_mappings}
        wanted = [parse_name(k) for k, v in local.items() if v == o.name] if local else \
            [parse_name(f"{d}/{o.name}") for d in self.iam.stores.domains]
        for qn in wanted:
            group = self._store_group_named(qn.domain, qn.name)
            if group is not None and self._group_name(group) == o.name and \
                    mapping.get(conn, self.target.key, "group", group.id) is None:
                self.report.groups.unlinked.append(str(qn))
                self._unlinked.add(group.id)
                self._queue(conn, Operation.UPSERT_GROUP, group.domain, group.id, str(qn), {},
                            "group")
                return
        self.report.groups.extra_remote.append(o.name)

    def _local_groups(self) -> None:
        for domain in self.iam.stores.domains:
            store = self.iam.stores.store(domain)
            if not store.capabilities.readable_groups:
                continue
            cursor: str | None = None
            while True:
                page = store.list_groups(BATCH, cursor)
                sent = [g for g in page.items if self._group_name(g) is not None
                        and g.id not in self._unlinked]
                with self.iam.db.transaction() as conn:
                    known = mapping.get_many(conn, self.target.key, "group",
                                             [g.id for g in sent])
                    for g in sent:
                        m = known.get(g.id)
                        if m is not None and m.remote_id in self._seen:
                            continue
                        if m is not None and self.repair:  # gone there: link anew
                            mapping.remove(conn, self.target.key, "group", g.id)
                        qualified = f"{g.domain}/{g.name}"
                        self.report.groups.missing_remote.append(qualified)
                        self._queue(conn, Operation.UPSERT_GROUP, g.domain, g.id, qualified,
                                    {}, "group")
                cursor = page.next_cursor
                if cursor is None:
                    break

    def _group_name(self, group: StoredGroup | None) -> str | None:
        """The group's remote name at this target; None when it is not sent there."""
        return None if group is None else \
            mapped_group_name(self.target, f"{group.domain}/{group.name}")

    def _store_group(self, domain: str, group_id: str) -> StoredGroup | None:
        try:
            return self.iam.stores.store(domain).get_group(group_id)
        except NotFound:
            return None

    def _store_group_named(self, domain: str, name: str) -> StoredGroup | None:
        try:
            return self.iam.stores.store(domain).get_group_by_name(name)
        except NotFound:
            return None

    def _local_members(self, group: StoredGroup) -> list[tuple[str, str]]:
        store, cursor = self.iam.stores.store(group.domain), None
        out: list[tuple[str, str]] = []
        while True:
            page = store.members_of(group.id, BATCH, cursor)
            out += [(u.domain, u.id) for u in page.items]
            cursor = page.next_cursor
            if cursor is None:
                return out

    # ------------------------------------------------------------ repairs
    def _upsert(self, conn: Connection, domain: str, user_id: str, name: str) -> None:
        self._queue(conn, Operation.UPSERT_USER, domain, user_id, name, {})

    def _queue(self, conn: Connection, op: Operation, domain: str, entity_id: str,
               name: str, payload: dict[str, Any], entity_type: str = "user") -> None:
        if not self.repair:
            return
        outbox.enqueue(conn, JobSpec(self.target.key, op, entity_type, domain, entity_id,
                                     name, payload), self.application)
        self.report.jobs_queued += 1


def reconcile_target(host: Host, initiator: Initiator, target: str, repair: bool = False,
                     delete_extra: bool = False) -> ReconcileReport:
    """Reconcile ``target`` (``idp:connector``) now, in a loop of its own, and keep the
    report's summary in the audit log (where ``last_report`` reads it). A target that
    cannot be listed is StoreUnavailable with its own words."""
    idp, connector_type = split_key(target)
    built = build_target(host.get_idp(idp), connector_type)
    run = Reconciler(host, built, host.resident_app().name, repair, delete_extra)
    try:
        report = asyncio.run(_run(run, built))
    except ConnectorError as exc:
        raise StoreUnavailable(f"target {target}: {exc.message}") from exc
    with host.db.transaction() as conn:
        audit.record(conn, initiator, ACTION, target, report.summary(repair, delete_extra))
    return report


async def _run(run: Reconciler, target: Target) -> ReconcileReport:
    timeout = httpx.Timeout(float(target.prop("timeout-seconds")))
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await run.run(client)


def last_report(conn: Connection, target: str) -> dict[str, Any] | None:
    """The summary of the target's latest reconciliation, with when it ran; None if none."""
    found = audit.read(conn, limit=1, action=ACTION, target=target)
    return {**found[0].detail, "at": found[0].at.isoformat()} if found else None


def describe(summary: Mapping[str, Any]) -> str:
    """One line for a card or a status table: ``in sync`` or the counts of each drift."""
    kinds = [(k, int(summary.get(k, 0)) + int(summary.get(f"group_{k}", 0)))
             for k in KINDS]
    found = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in kinds if n)
    return found or "in sync"


async def _batches(items: AsyncIterator[RemoteObject], size: int
                   ) -> AsyncIterator[list[RemoteObject]]:
    batch: list[RemoteObject] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _read_ahead(items: AsyncIterator[T]) -> AsyncIterator[T]:
    """``items``, with the next one read while the caller works on the last (one item
    ahead: memory stays bounded). The reader's error is raised to the caller."""
    queue: asyncio.Queue[tuple[bool, T | BaseException | None]] = asyncio.Queue(maxsize=1)

    async def read() -> None:
        try:
            async for item in items:
                await queue.put((True, item))
            await queue.put((False, None))
        except Exception as exc:  # handed to the caller, raised there
            await queue.put((False, exc))

    reader = asyncio.create_task(read())
    try:
        while True:
            more, got = await queue.get()
            if not more:
                if isinstance(got, BaseException):
                    raise got
                return
            yield cast(T, got)
    finally:
        reader.cancel()
