"""The planner: turns identity events into provisioning jobs, per outbound target.

It runs as a POST subscriber of the identity service, inside the write's transaction, so a
job is written exactly when the change commits. For each target of the initiating
application (in order): the identity provider and its connector must be enabled; JIT
changes reach only targets with JIT on; users are in scope while they hold one of the
identity provider's provisioning roles (any user when it lists none). Jobs of blocking
targets go to the inline runner (``core/provisioning/inline.py``), which sends them once the
write has committed. A compensation (a write taking back a refused one) is never sent
inline: its jobs go to the workers. A change no compensation can take back is refused up
front (``veto``, a PRE subscriber) where a blocking target would refuse it for good.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from core import apps, idps
from core.apps import OutboundTarget
from core.errors import IamError, NotFound, OperationRefused
from core.identity.events import EventType, IdentityEvent
from core.names import INTERNAL, parse_name
from core.provisioning import mapping, outbox
from core.provisioning.host import Host
from core.provisioning.outbox import JobSpec, Operation
from core.provisioning.scope_rules import in_scope, mapped_group_name
from core.provisioning.targets import Target, build_target

#: Takes the blocking jobs of a write: (the write's connection, job pks, application,
#: event) -> None, raising to refuse the write.
RunInline = Callable[[Connection, Sequence[int], apps.Application, IdentityEvent], None]

CONFIG_TTL = 2.0
#: Changes no compensation can take back: the old password hash, and a deleted user (its
#: id, password and memberships), are not to be had from every store.
IRREVERSIBLE = {EventType.USER_DELETED: "a deletion",
                EventType.PASSWORD_CHANGED: "a password change"}
USER_EVENTS = (EventType.USER_ADDED, EventType.USER_CLAIMS_CHANGED,
               EventType.USER_CLAIMS_REMOVED, EventType.PASSWORD_CHANGED)


@dataclass(frozen=True)
class PlannedTarget:
    outbound: OutboundTarget
    target: Target


class JobPlanner:
    def __init__(self, host: Host, written: outbox.WrittenFlag,
                 run_inline: RunInline | None = None) -> None:
        self.host = host
        #: Set when an event wrote a job: the workers here need waking only then.
        self.written = written
        self.run_inline = run_inline
        self._cache: dict[tuple[str, bool], tuple[float, apps.Application | None,
                                                  list[PlannedTarget]]] = {}

    def invalidate(self) -> None:
        """Forget cached configuration (called on every configuration write here)."""
        self._cache.clear()

    def targets(self, conn: Connection, application: str, jit: bool) -> tuple[
            apps.Application | None, list[PlannedTarget]]:
        """The application and its enabled targets, cached for a few seconds: a bulk import
        plans thousands of events, and configuration changed by another process takes
        effect here within ``CONFIG_TTL`` seconds."""
        hit = self._cached(application, jit)
        if hit is not None:
            return hit
        app, planned = self._load_targets(conn, application, jit)
        self._cache[(application, jit)] = (time.monotonic() + CONFIG_TTL, app, planned)
        return app, planned

    def _cached(self, application: str, jit: bool) -> tuple[
            apps.Application | None, list[PlannedTarget]] | None:
        hit = self._cache.get((application, jit))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1], hit[2]
        return None

    def _load_targets(self, conn: Connection, application: str, jit: bool) -> tuple[
            apps.Application | None, list[PlannedTarget]]:
        try:
            app = apps.get(conn, application)
        except NotFound:
            return None, []
        out = []
        for ot in app.outbound:
            if jit and not ot.jit:
                continue
            try:
                idp = idps.get(conn, self.host.secrets, ot.idp)
                target = build_target(idp, ot.connector)
            except IamError:
                continue  # removed or renamed since: nothing to provision to
            if idp.enabled and target.config.enabled:
                out.append(PlannedTarget(ot, target))
        return app, out

    def idle_for(self, event: IdentityEvent) -> bool:
        """Whether it is known, without reading the database, that the event's
        application provisions nowhere: then nothing is planned (a bulk import without
        targets opens no transaction, a SCIM POST is one statement)."""
        known = self._cached(event.initiator.application, event.initiator.jit)
        return known is not None and (known[0] is None or not known[1])

    def __call__(self, event: IdentityEvent) -> None:
        # After a write that committed alone, idle_for said True before it: the cache
        # may have expired since, or been invalidated; its answer then stands for this
        # event (as stale as the cache may be anyway).
        if self.idle_for(event) or self.host.db.wrote_alone():
            return
        with self.host.db.transaction() as conn:
            app, targets = self.targets(conn, event.initiator.application, event.initiator.jit)
            if app is None or not targets:
                return
            blocking: list[int] = []
            compensation = event.initiator.compensation
            for planned in targets:
                for spec in self.plan(conn, event, planned.target):
                    if compensation and planned.outbound.blocking and \
                            spec.operation is Operation.DEPROVISION_USER:
                        # the inline runner deleted what the refused write created there;
                        # anything else at that target existed before and stays
                        continue
                    pk = outbox.enqueue(conn, spec, app.name, jit=event.initiator.jit,
                                        blocking=planned.outbound.blocking,
                                        fresh=event.type is EventType.USER_ADDED,
                                        written=self.written)
                    if planned.outbound.blocking:
                        blocking.append(pk)
            if blocking and self.run_inline is not None and not compensation:
                self.run_inline(conn, blocking, app, event)

    def veto(self, event: IdentityEvent) -> None:
        """Refuse, before it is made, an irreversible change (``IRREVERSIBLE``) that a
        blocking target of an application with ``fail_on_blocking_failure`` would receive
        (a deletion: where the target holds the user by its mapping): if the target
        refused it, it could not be taken back. A deletion sent only to look the user up
        where a failed create may have left it is let through; it is never refused."""
        what = IRREVERSIBLE.get(event.type)
        if what is None or event.initiator.compensation:
            return
        with self.host.db.transaction() as conn:
            app, targets = self.targets(conn, event.initiator.application, event.initiator.jit)
            if app is None or not app.fail_on_blocking_failure:
                return
            for planned in targets:
                if not planned.outbound.blocking:
                    continue
                if event.type is EventType.USER_DELETED:  # only where it surely is; a
                    # lookup where it may be is sent, and a failure there retries
                    held = mapping.get(conn, planned.target.key, "user",
                                       event.entity_id) is not None
                else:
                    held = bool(self.plan(conn, event, planned.target))
                if held:
                    raise OperationRefused(
                        f"{event.name} was not changed: {what} cannot be taken back if "
                        f"blocking target {planned.target.key} refuses it, and application "
                        f"{app.name} refuses writes its blocking targets do not accept "
                        "(fail_on_blocking_failure); make the change through an "
                        "application without that setting")

    # ------------------------------------------------------------------ per event
    def plan(self, conn: Connection, ev: IdentityEvent, target: Target) -> list[JobSpec]:
        key = target.key
        if ev.type in USER_EVENTS:
            roles = ([str(parse_name(r)) for r in ev.data.get("roles", [])]
                     if ev.type is EventType.USER_ADDED else self.host.identity.roles_of(ev.name))
            if not in_scope(target, roles):
                return []
            payload: dict[str, object] = {}
            if ev.secret and ev.type in (EventType.USER_ADDED, EventType.PASSWORD_CHANGED):
                payload["password"] = self.host.secrets.encrypt(ev.secret)
            jobs = [self._user(key, Operation.UPSERT_USER, ev.domain, ev.entity_id, ev.name,
                               payload)]
            if ev.type is EventType.USER_ADDED and target.sends_groups:
                jobs += self._memberships_of_new_user(ev, target, roles)
            return jobs
        if ev.type is EventType.USER_DELETED:
            return self._deprovision(conn, key, ev.domain, ev.entity_id, ev.name,
                                     deleted=True, claims=ev.data.get("claims", {}))
        if ev.type is EventType.GROUP_MEMBERS_CHANGED:
            return self._members_changed(conn, ev, target)
        if ev.type is EventType.GROUP_ADDED and \
                str(parse_name(ev.name)) in target.provisioning_roles:
            return self._new_provisioning_role_members(ev, target)
        if ev.domain == INTERNAL or not target.sends_groups:
            return []
        if mapped_group_name(target, ev.name if ev.type is not EventType.GROUP_RENAMED
                             else ev.data["new_name"]) is None:
            if ev.type is EventType.GROUP_DELETED:
                return self._group(key, Operation.DELETE_GROUP, ev)
            return []
        if ev.type in (EventType.GROUP_ADDED, EventType.GROUP_RENAMED):
            return self._group(key, Operation.UPSERT_GROUP, ev)
        if ev.type is EventType.GROUP_DELETED:
            return self._group(key, Operation.DELETE_GROUP, ev)
        return []

    def _user(self, key: str, op: Operation, domain: str, user_id: str, name: str,
              payload: dict[str, object] | None = None) -> JobSpec:
        return JobSpec(key, op, "user", domain, user_id, name, payload or {})

    def _group(self, key: str, op: Operation, ev: IdentityEvent,
               payload: dict[str, object] | None = None) -> list[JobSpec]:
        return [JobSpec(key, op, "group", ev.domain, ev.entity_id, ev.name, payload or {})]

    def _deprovision(self, conn: Connection, key: str, domain: str, user_id: str, name: str,
                     deleted: bool, claims: object = None) -> list[JobSpec]:
        entity_key = f"user:{domain}:{user_id}"
        if mapping.get(conn, key, "user", user_id) is None and \
                not outbox.may_hold(conn, key, entity_key):
            return []  # never provisioned here: nothing to take back (skip only this target)
        outbox.cancel_open(conn, key, entity_key, Operation.UPSERT_USER,
                           "superseded by a deprovisioning")
        return [self._user(key, Operation.DEPROVISION_USER, domain, user_id, name,
                           {"deleted": deleted, "username": parse_name(name).name,
                            "claims": claims or {}})]

    def _members_changed(self, conn: Connection, ev: IdentityEvent,
                         target: Target) -> list[JobSpec]:
        key = target.key
        added: list[tuple[str, str]] = [(d, u) for d, u in ev.data.get("added_ids", [])]
        removed: list[tuple[str, str]] = [(d, u) for d, u in ev.data.get("removed_ids", [])]
        names = dict(zip(added + removed, ev.data.get("added", []) + ev.data.get("removed", []),
                         strict=True))
        if str(parse_name(ev.name)) in target.provisioning_roles:
            roles = self._roles_of(added + removed)
            jobs: list[JobSpec] = []
            for domain, uid in added:
                if in_scope(target, roles[(domain, uid)]):
                    jobs.append(self._user(key, Operation.UPSERT_USER, domain, uid,
                                           names[(domain, uid)]))
            for domain, uid in removed:
                if not in_scope(target, roles[(domain, uid)]):
                    jobs += self._deprovision(conn, key, domain, uid, names[(domain, uid)],
                                              deleted=False)
            return jobs
        if ev.domain == INTERNAL or not target.sends_groups or \
                mapped_group_name(target, ev.name) is None:
            return []
        return self._group(key, Operation.GROUP_MEMBERS, ev,
                           {"add": [list(p) for p in added], "remove": [list(p) for p in removed]})

    def _roles_of(self, members: Sequence[tuple[str, str]]
                  ) -> dict[tuple[str, str], list[str]]:
        """The roles of many (domain, user id) members, read per domain at once (a change
        to a provisioning role of thousands of members costs a few queries, not thousands)."""
        ids: dict[str, list[str]] = {}
        for domain, uid in members:
            ids.setdefault(domain, []).append(uid)
        out: dict[tuple[str, str], list[str]] = {}
        for domain, of_domain in ids.items():
            out.update(((domain, uid), roles) for uid, roles in
                       self.host.identity.roles_of_ids(domain, of_domain).items())
        return out

    def _new_provisioning_role_members(self, ev: IdentityEvent,
                                       target: Target) -> list[JobSpec]:
        jobs = []
        for name in ev.data.get("members", []):
            user = self.host.identity.get_user(name)
            jobs.append(self._user(target.key, Operation.UPSERT_USER, user.domain, user.id,
                                   user.qualified_name))
        return jobs

    def _memberships_of_new_user(self, ev: IdentityEvent, target: Target,
                                 roles: Sequence[str]) -> list[JobSpec]:
        jobs = []
        for role in roles:
            qn = parse_name(role)
            if mapped_group_name(target, role) is None:
                continue
            group = self.host.stores.store(qn.domain).get_group_by_name(qn.name)
            if group is not None:
                jobs.append(JobSpec(target.key, Operation.GROUP_MEMBERS, "group", group.domain,
                                    group.id, str(qn),
                                    {"add": [[ev.domain, ev.entity_id]], "remove": []}))
        return jobs
