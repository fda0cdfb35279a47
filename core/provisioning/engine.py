"""The provisioning engine of one deployment, and the operations the faces call.

``Iam`` creates one at start: it subscribes the planner to the identity events, so every
write from every face plans its provisioning. Workers are separate (``worker_pool()``):
they run in ``mware-iam serve``, ``mware-iam worker`` or the console.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Connection

from connectors.base import ConnectorError
from connectors.registry import connector_class
from core import audit
from core.errors import InvalidInput, StoreUnavailable
from core.identity.events import Initiator, Phase
from core.idps import IdentityProvider
from core.provisioning import bulk, mapping, outbox
from core.provisioning.bulk import SyncCounts
from core.provisioning.executor import perform, prepare
from core.provisioning.host import Host
from core.provisioning.inline import InlineExecutor, Result
from core.provisioning.outbox import Job, JobSpec, JobState, Operation
from core.provisioning.planner import IRREVERSIBLE, JobPlanner
from core.provisioning.reconcile import ReconcileReport, reconcile_target
from core.provisioning.scope_rules import in_scope
from core.provisioning.status import TargetStatus, target_status
from core.provisioning.targets import Target, build_target, split_key
from core.provisioning.workers import WorkerPool

PLANNER_ORDER = 30  # the reference server's provisioning listener order


@dataclass(frozen=True)
class TargetReport:
    """What ``sync`` or ``preview`` did (or would do) at one target."""

    target: str
    operation: str
    state: str
    remote_id: str | None
    message: str | None
    requests: list[dict[str, Any]]


class _DryRun(Exception):
    def __init__(self, reports: list[TargetReport]) -> None:
        super().__init__("dry run")
        self.reports = reports


class ProvisioningEngine:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.inline = InlineExecutor(host)
        self.written = outbox.WrittenFlag()
        self.planner = JobPlanner(host, self.written, self.inline)
        self._unsubscribe = [
            host.bus.subscribe(Phase.PRE, self.planner.veto, order=PLANNER_ORDER,
                               types=IRREVERSIBLE),
            host.bus.subscribe(Phase.POST, self.planner, order=PLANNER_ORDER,
                               idle_for=self.planner.idle_for)]

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self.inline.close()

    def worker_pool(self, capacity: int = 128, poll_seconds: float = 0.5) -> WorkerPool:
        return WorkerPool(self.host, self.written, capacity, poll_seconds)

    # ------------------------------------------------------------------ reading
    def status(self) -> list[TargetStatus]:
        with self.host.db.transaction() as conn:
            return target_status(conn, self.host)

    def jobs(self, states: Sequence[str] = (), target: str | None = None,
             entity: str | None = None, limit: int = 100,
             name_contains: str | None = None) -> list[Job]:
        with self.host.db.transaction() as conn:
            return outbox.list_jobs(conn, states, target, entity, limit, name_contains)

    def job(self, pk: int) -> tuple[Job, list[dict[str, Any]]]:
        with self.host.db.transaction() as conn:
            return outbox.get(conn, pk), outbox.attempts(conn, pk)

    def activity(self, limit: int = 50) -> list[outbox.AttemptSummary]:
        """The latest attempts at every target, newest first."""
        with self.host.db.transaction() as conn:
            return outbox.recent_attempts(conn, limit)

    def test_connection(self, target: str) -> str:
        """Ask a target (``idp:connector``) whether it answers; nothing is written.

        Returns what the connector found; an unreachable or refusing target raises
        StoreUnavailable with the target's own words.
        """
        try:
            return self.inline.loop.run(_test_connection(self._target(target)))
        except ConnectorError as exc:
            raise StoreUnavailable(f"target {target}: {exc.message}") from exc

    def mappings_of(self, user: str) -> list[mapping.Mapping]:
        view = self.host.identity.get_user(user)
        with self.host.db.transaction() as conn:
            return mapping.for_entity(conn, view.id)

    # ------------------------------------------------------------------ steering
    def retry(self, initiator: Initiator, pk: int | None = None,
              dead_of_target: str | None = None) -> int:
        """Run a job again now, or every dead job of a target; returns how many."""
        if (pk is None) == (dead_of_target is None):
            raise InvalidInput("give either a job number or a target whose dead jobs to retry")
        with self.host.db.transaction() as conn:
            if pk is not None:
                job = outbox.get(conn, pk)
                if job.state not in (JobState.DEAD, JobState.RETRY, JobState.CANCELLED):
                    raise InvalidInput(f"job {pk} is {job.state}; only dead, retrying or "
                                       "cancelled jobs can be retried")
                pks = [pk]
            else:
                pks = [j.pk for j in outbox.list_jobs(conn, ["dead"], dead_of_target,
                                                       limit=100_000)]
            n = outbox.reschedule(conn, pks)
            audit.record(conn, initiator, "provisioning.retry",
                         str(pk) if pk is not None else str(dead_of_target), {"jobs": n})
        return n

    def approve(self, initiator: Initiator, target: str) -> int:
        """Release the deprovisionings the deletion guard holds at ``target``; how many
        (audited with who approved)."""
        with self.host.db.transaction() as conn:
            n = outbox.release_held(conn, target, f"{initiator.actor} ({initiator.face})")
            audit.record(conn, initiator, "provisioning.approve", target, {"jobs": n})
        self.written.set()
        return n

    def cancel_held(self, initiator: Initiator, target: str) -> int:
        """Drop the deprovisionings held at ``target``; how many."""
        with self.host.db.transaction() as conn:
            n = outbox.cancel_held(conn, target)
            audit.record(conn, initiator, "provisioning.cancel", target, {"held_jobs": n})
        return n

    def cancel(self, initiator: Initiator, pk: int) -> None:
        with self.host.db.transaction() as conn:
            outbox.cancel(conn, pk)
            audit.record(conn, initiator, "provisioning.cancel", str(pk))

    def sync_all(self, initiator: Initiator, target: str) -> SyncCounts:
        """Queue the desired state of every user in ``target``'s scope and of every group
        sent there (``core.provisioning.bulk``)."""
        counts = bulk.sync_all(self.host, self._target(target), self.host.resident_app().name)
        self.written.set()
        with self.host.db.transaction() as conn:
            audit.record(conn, initiator, "provisioning.sync_all", target,
                         {"users": counts.users, "groups": counts.groups})
        return counts

    def users_in_scope(self, target: str) -> int:
        """How many users ``sync_all`` would queue for ``target``."""
        return bulk.users_in_scope(self.host, self._target(target))

    def _target(self, target: str) -> Target:
        idp, connector_type = split_key(target)
        return build_target(self.host.get_idp(idp), connector_type)

    def newly_mapped_groups(self, conn: Connection, old: IdentityProvider | None,
                            new: IdentityProvider) -> None:
        """Called as an identity provider is saved: queue the groups a new role mapping
        sends (``bulk.newly_mapped_groups``)."""
        if bulk.newly_mapped_groups(conn, self.host, old, new, self.host.resident_app().name):
            self.written.set()

    def reconcile(self, initiator: Initiator, target: str, repair: bool = False,
                  delete_extra: bool = False) -> ReconcileReport:
        """Compare ``target`` (``idp:connector``) with what it should hold; with ``repair``
        queue the jobs that make it match (``core.provisioning.reconcile``)."""
        report = reconcile_target(self.host, initiator, target, repair, delete_extra)
        if report.jobs_queued:
            self.written.set()
        return report

    def _desired(self, user: str, application: str | None) -> list[JobSpec]:
        view = self.host.identity.get_user(user)
        roles = self.host.identity.roles_of(view.qualified_name)
        with self.host.db.transaction() as conn:
            app_name = application or self.host.resident_app().name
            app, targets = self.planner.targets(conn, app_name, jit=False)
            if app is None:
                raise InvalidInput(f"application {app_name!r} does not exist")
            specs = []
            for planned in targets:
                key = planned.target.key
                if in_scope(planned.target, roles):
                    specs.append(JobSpec(key, Operation.UPSERT_USER, "user", view.domain,
                                         view.id, view.qualified_name))
                elif mapping.get(conn, key, "user", view.id) is not None:
                    specs.append(JobSpec(key, Operation.DEPROVISION_USER, "user", view.domain,
                                         view.id, view.qualified_name,
                                         {"deleted": False, "username": view.username}))
            return specs

    def sync(self, initiator: Initiator, user: str,
             application: str | None = None) -> list[TargetReport]:
        """Compute the user's desired state at every target and push it now."""
        specs = self._desired(user, application)
        app_name = application or self.host.resident_app().name
        with self.host.db.transaction() as conn:
            pks = []
            for spec in specs:  # the sync brings the user up to date: earlier waiting
                # jobs of the user at the target (e.g. one retrying) are superseded
                for op in (Operation.UPSERT_USER, Operation.DEPROVISION_USER):
                    outbox.cancel_open(conn, spec.target, spec.entity_key, op,
                                       "superseded by a sync")
                pks.append(outbox.enqueue(conn, spec, app_name))
            audit.record(conn, initiator, "provisioning.sync", user,
                         {"targets": [s.target for s in specs]})
        results = {r.job.pk: r for r in (self.inline.execute(pks) if pks else [])}
        with self.host.db.transaction() as conn:
            return [self._report(conn, results[pk]) if pk in results
                    else self._queued_report(conn, pk) for pk in pks]

    def _queued_report(self, conn: Any, pk: int) -> TargetReport:
        """A sync job that could not run now: a worker is running an earlier job of the
        user at that target, and this one follows it."""
        job = outbox.get(conn, pk)
        m = mapping.get(conn, job.target, job.entity_type, job.entity_id)
        return TargetReport(job.target, job.operation.value, job.state.value,
                            m.remote_id if m else None,
                            "queued: a worker is sending an earlier change of this user "
                            "to this target; this job runs after it", [])

    def _report(self, conn: Any, r: Result, requests: list[dict[str, Any]] | None = None
                ) -> TargetReport:
        m = mapping.get(conn, r.job.target, r.job.entity_type, r.job.entity_id)
        message = r.prep.skip or r.prep.wait or r.prep.fail or r.job.last_error
        if requests is None:
            requests = [e.as_dict() for e in (r.outcome.exchanges if r.outcome else [])]
        return TargetReport(r.job.target, r.job.operation.value, r.state.value,
                            m.remote_id if m else None, message, requests)

    def preview(self, user: str, application: str | None = None) -> list[TargetReport]:
        """The requests each target would receive for the user now; nothing is sent and
        nothing is written (the jobs are planned in a transaction that rolls back)."""
        specs = self._desired(user, application)
        app_name = application or self.host.resident_app().name
        try:
            with self.host.db.transaction() as conn:
                reports = []
                for spec in specs:
                    # read back, not claimed: an earlier open job of the user (one
                    # retrying, say) would make it unclaimable, and a preview runs nothing
                    job = outbox.get(conn, outbox.enqueue(conn, spec, app_name))
                    prep = prepare(conn, self.host, job)
                    outcome = None
                    if prep.target is not None and not (prep.skip or prep.wait or prep.fail):
                        outcome = self.inline.loop.run(_perform_recorded(prep))
                    result = Result(job, JobState.PENDING, prep, outcome)
                    reports.append(self._report(conn, result))
                raise _DryRun(reports)
        except _DryRun as dry:
            return dry.reports


async def _test_connection(target: Target) -> str:
    timeout = httpx.Timeout(float(target.prop("timeout-seconds")))
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await connector_class(target.config.type)(target.properties,
                                                         client).test_connection()


async def _perform_recorded(prep: Any) -> Any:
    """Run the connector against a transport that answers like an accommodating peer
    (the connector type's own, when its spec names one)."""
    named = prep.target.spec.preview_peer
    if named:
        module, function = named.split(":")
        peer = getattr(importlib.import_module(module), function)
    else:
        peer = _accommodating_peer
    client = httpx.AsyncClient(transport=httpx.MockTransport(peer))
    try:
        connector = connector_class(prep.target.config.type)(prep.target.properties, client)
        return await perform(connector, prep)
    finally:
        await client.aclose()


def _accommodating_peer(request: httpx.Request) -> httpx.Response:
    if request.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
        # an OAuth token request (Google's JWT bearer grant): a token that works for preview
        return httpx.Response(200, json={"access_token": "(preview)", "expires_in": 3600,
                                         "token_type": "Bearer"})
    body: dict[str, Any] = {}
    if request.content:
        try:
            body = json.loads(request.content)
        except ValueError:
            body = {}
    if request.method == "GET":
        return httpx.Response(200, json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": 0, "Resources": []})
    if request.method == "POST":
        return httpx.Response(201, json={**body, "id": "(new)"})
    if request.method == "DELETE":
        return httpx.Response(204)
    return httpx.Response(200, json={**body, "id": request.url.path.rsplit("/", 1)[-1]})


