"""``mware-iam provisioning ...``: the outbound provisioning queue, seen and steered.

Everything here calls ``iam.provisioning``. Requests and answers shown by ``show``,
``sync`` and ``preview`` are the connector's redacted exchanges: no header (so no
credential) and every password as ``********``. A job's payload is shown without its
(encrypted) password.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click

from core.cli.context import admin, current_iam, json_option
from core.cli.output import echo, emit_json, iso, note, record, table
from core.provisioning.breaker import HELD
from core.provisioning.engine import TargetReport
from core.provisioning.outbox import DONE, Job, JobState
from core.provisioning.reconcile import Drift
from core.provisioning.status import status_json

MASK = "********"
#: Characters of an error shown in a table cell (``show`` and ``--json`` give all of it).
ERROR_CELL = 60


@click.group("provisioning")
def provisioning_group() -> None:
    """Outbound provisioning: target status, the job queue, retries, sync and preview.

    Jobs are run by `mware-iam serve` or `mware-iam worker` processes (and the console);
    these commands read and steer the queue they share.
    """


# ---------------------------------------------------------------- formatting
def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.0f} ms"


def _cut(value: str | None, width: int = ERROR_CELL) -> str:
    if not value:
        return ""
    flat = " ".join(value.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


def _payload(job: Job) -> dict[str, Any]:
    return {k: MASK if k == "password" else v for k, v in job.payload.items()}


def job_json(job: Job) -> dict[str, Any]:
    return {
        "id": job.pk, "target": job.target, "operation": job.operation.value,
        "entity_type": job.entity_type, "entity": job.name, "domain": job.domain,
        "entity_id": job.entity_id, "state": job.state.value, "attempts": job.attempts,
        "next_attempt_at": job.next_attempt_at, "application": job.application,
        "jit": job.jit, "blocking": job.blocking, "last_status": job.last_status,
        "last_error": job.last_error, "lease_owner": job.lease_owner,
        "created": job.created, "updated": job.updated, "payload": _payload(job),
    }


def attempt_json(attempt: Mapping[str, Any]) -> dict[str, Any]:
    return {"at": attempt["at"], "outcome": attempt["outcome"],
            "status_code": attempt["status_code"], "duration_ms": attempt["duration_ms"],
            "error": attempt["error"], "exchanges": list(attempt["exchanges"] or [])}


def _block(value: Any, indent: str) -> Iterable[str]:
    """A JSON body, pretty-printed and indented (a text body as it is)."""
    shown = value if isinstance(value, str) else json.dumps(value, indent=2,
                                                             ensure_ascii=False, default=str)
    return (indent + line for line in shown.splitlines())


def _print_requests(requests: Sequence[Mapping[str, Any]], indent: str,
                    answers: bool) -> None:
    for ex in requests:
        line = f"{indent}{ex['method']} {ex['url']}"
        if answers:
            line += f"  -> {ex['status'] if ex.get('status') is not None else 'no answer'}"
        echo(line)
        if ex.get("request_body") is not None:
            for text_line in _block(ex["request_body"], indent + "  "):
                echo(text_line)
        if answers and ex.get("response_body") is not None:
            echo(f"{indent}  answer:")
            for text_line in _block(ex["response_body"], indent + "    "):
                echo(text_line)


# ---------------------------------------------------------------- reading
@provisioning_group.command("status")
@json_option
def status(as_json: bool) -> None:
    """Per target: state, queue, totals, throughput (last minute), latency, last error.

    \b
    State: healthy, retrying (recent failures), quarantined (too many failures in a
    row: only a probe job runs until it succeeds), throttled (the target asked for a
    pause, e.g. its API budget is nearly spent: the reason is the last error; a probe job
    runs at the time shown) or disabled. "Target says" is what the target reported about
    itself, e.g. a Salesforce org's API usage.
    """
    rows = current_iam().provisioning.status()
    if as_json:
        emit_json(status_json(rows))
        return
    table(["target", "state", "queued", "in flight", "retrying", "succeeded", "failed",
           "dead", "held", "/min", "p50", "p95", "last error", "target says",
           "last reconcile"],
          [[s.target, s.state + (f" until {iso(s.quarantined_until)}"
                                 if s.state in HELD and s.quarantined_until else ""),
            s.queued, s.in_flight, s.retrying, s.succeeded, s.failed, s.dead, s.held,
            s.per_minute, _ms(s.latency_p50_ms), _ms(s.latency_p95_ms), _cut(s.last_error),
            "; ".join(f"{k} {v}" for k, v in s.facts.items()) or None,
            _cut(s.last_reconcile)]
           for s in rows], "no provisioning targets: no application provisions anywhere")


@provisioning_group.command("jobs")
@click.option("--state", "states", multiple=True,
              type=click.Choice([s.value for s in JobState]),
              help="Only jobs in this state (repeatable).")
@click.option("--target", help="Only jobs of this target, e.g. scim-peer:scim2.")
@click.option("--entity", help="Only jobs of this user or group (DOMAIN/name, or its id).")
@click.option("--name", "name_contains", metavar="TEXT",
              help="Only jobs of users or groups whose DOMAIN/name contains TEXT (any case).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True,
              help="How many jobs (newest first).")
@json_option
def jobs(states: tuple[str, ...], target: str | None, entity: str | None,
         name_contains: str | None, limit: int, as_json: bool) -> None:
    """Provisioning jobs, newest first."""
    found = current_iam().provisioning.jobs(list(states), target, entity, limit,
                                            name_contains)
    if as_json:
        emit_json({"items": [job_json(j) for j in found]})
        return
    table(["job", "target", "operation", "entity", "state", "attempts", "next attempt",
           "status", "last error"],
          [[j.pk, j.target, j.operation.value, j.name, j.state.value, j.attempts,
            j.next_attempt_at if j.state in (JobState.PENDING, JobState.RETRY) else None,
            j.last_status, _cut(j.last_error)] for j in found], "no jobs found")


@provisioning_group.command("show")
@click.argument("job_id", metavar="JOB", type=int)
@json_option
def show(job_id: int, as_json: bool) -> None:
    """A job and every attempt: outcome, status, duration, error, requests and answers."""
    job, attempts = current_iam().provisioning.job(job_id)
    if as_json:
        emit_json({**job_json(job), "attempts": [attempt_json(a) for a in attempts]})
        return
    waiting = job.state in (JobState.PENDING, JobState.RETRY)
    fields: list[tuple[str, Any]] = [
        ("job", job.pk), ("target", job.target), ("operation", job.operation.value),
        ("entity", f"{job.entity_type} {job.name} (id {job.entity_id})"),
        ("state", job.state.value), ("attempts", job.attempts),
        ("next attempt", job.next_attempt_at if waiting else None),
        ("application", job.application), ("blocking", job.blocking), ("jit", job.jit),
        ("last status", job.last_status), ("last error", job.last_error),
        ("lease owner", job.lease_owner), ("created", job.created), ("updated", job.updated)]
    record([(k, v) for k, v in fields if v is not None])
    if job.payload:
        echo(click.style("payload", bold=True))
        for line in _block(_payload(job), "  "):
            echo(line)
    for n, a in enumerate(attempts, 1):
        echo()
        status_code = a["status_code"] if a["status_code"] is not None else "-"
        echo(click.style(f"attempt {n}", bold=True)
             + f"  {iso(a['at'])}  {a['outcome']}  status {status_code}  "
             f"{a['duration_ms']:.0f} ms")
        if a["error"]:
            echo(f"  {a['error']}")
        _print_requests(a["exchanges"] or [], "  ", answers=True)
    if not attempts:
        note("no attempts yet")


# ---------------------------------------------------------------- steering
@provisioning_group.command("retry")
@click.argument("job_id", metavar="[JOB]", type=int, required=False)
@click.option("--dead", is_flag=True, help="Retry every dead job of --target.")
@click.option("--target", help="The target whose dead jobs to retry (with --dead).")
def retry(job_id: int | None, dead: bool, target: str | None) -> None:
    """Run a dead, retrying or cancelled JOB again now; or every dead job of a target.

    \b
      mware-iam provisioning retry 42
      mware-iam provisioning retry --dead --target scim-peer:scim2
    """
    if job_id is not None and (dead or target):
        raise click.UsageError("give either JOB or --dead --target TARGET, not both")
    if job_id is None and not (dead and target):
        raise click.UsageError("give a JOB to retry, or --dead --target TARGET")
    n = current_iam().provisioning.retry(admin(), pk=job_id, dead_of_target=target)
    echo(f"{n} job{'s' if n != 1 else ''} scheduled to run again")


@provisioning_group.command("test")
@click.argument("target")
def test_target(target: str) -> None:
    """Reach TARGET (IDP:CONNECTOR, e.g. workspace:googleapps) and say what was found;
    nothing is written. Exits 1 with the target's own words when it cannot be reached."""
    echo(current_iam().provisioning.test_connection(target))


@provisioning_group.command("cancel")
@click.argument("job_id", metavar="JOB", type=int, required=False)
@click.option("--held", "held_of", metavar="TARGET",
              help="Cancel every deprovisioning the deletion guard holds at TARGET.")
def cancel(job_id: int | None, held_of: str | None) -> None:
    """Cancel a pending, retrying, held or dead JOB (it will not run again unless
    retried); or every held job of a target.

    \b
      mware-iam provisioning cancel 42
      mware-iam provisioning cancel --held scim-peer:scim2
    """
    if (job_id is None) == (held_of is None):
        raise click.UsageError("give either a JOB or --held TARGET")
    if held_of is not None:
        n = current_iam().provisioning.cancel_held(admin(), held_of)
        echo(f"cancelled {n} held job{'s' if n != 1 else ''} of {held_of}")
        return
    assert job_id is not None
    current_iam().provisioning.cancel(admin(), job_id)
    echo(f"cancelled job {job_id}")


@provisioning_group.command("approve")
@click.argument("target")
def approve(target: str) -> None:
    """Release the deprovisionings (deletions, disables) the deletion guard holds at
    TARGET: they run now. Recorded in the audit log with who approved."""
    n = current_iam().provisioning.approve(admin(), target)
    echo(f"approved {n} held job{'s' if n != 1 else ''} of {target}")


@provisioning_group.command("reconcile")
@click.argument("target")
@click.option("--repair", is_flag=True,
              help="Queue the jobs that make the target match (create, update, adopt).")
@click.option("--delete-extra", is_flag=True,
              help="With --repair: also delete our users the target should not hold.")
@json_option
def reconcile(target: str, repair: bool, delete_extra: bool, as_json: bool) -> None:
    """Compare TARGET (e.g. scim-peer:scim2) with what it should hold and print the drift.

    \b
    missing_remote  in scope here, absent at the target
    extra_remote    at the target, not ours or out of scope (deleted only with
                    --repair --delete-extra, and only when it is ours)
    drifted         ours, with attributes whose values differ (names only)
    unlinked        at the target under the name of one of ours, with no link yet
    Exits 1 when there is drift.
    """
    report = current_iam().provisioning.reconcile(admin(), target, repair, delete_extra)
    if as_json:
        emit_json({k: report.as_dict()[k] for k in
                   ("missing_remote", "extra_remote", "drifted", "unlinked", "groups",
                    "jobs_queued")})
    else:
        rows = [[kind, *row] for kind, drift in (("user", report), ("group", report.groups))
                for row in _drift_rows(drift)]
        table(["drift", "type", "name", "attributes"],
              [[r[1], r[0], *r[2:]] for r in rows],
              f"{target} is in sync ({report.local_users} users in scope, "
              f"{report.remote_users} at the target)")
        if repair:
            echo(f"{report.jobs_queued} job{'s' if report.jobs_queued != 1 else ''} queued")
    if not report.in_sync:
        raise click.exceptions.Exit(1)


def _drift_rows(drift: Drift) -> list[list[str]]:
    return [*(["missing_remote", n, ""] for n in drift.missing_remote),
            *(["extra_remote", n, ""] for n in drift.extra_remote),
            *(["drifted", d.user, ", ".join(d.attributes)] for d in drift.drifted),
            *(["unlinked", n, ""] for n in drift.unlinked)]


def _report_json(r: TargetReport, preview: bool) -> dict[str, Any]:
    if preview:
        return {"target": r.target, "operation": r.operation, "message": r.message,
                "requests": [{"method": e["method"], "url": e["url"],
                              "body": e.get("request_body")} for e in r.requests]}
    return {"target": r.target, "operation": r.operation, "state": r.state,
            "remote_id": r.remote_id, "message": r.message, "requests": r.requests}


@provisioning_group.command("sync")
@click.argument("user", metavar="USER | --all TARGET")
@click.option("--all", "everyone", is_flag=True,
              help="Queue everyone in TARGET's scope (and every group sent there) instead.")
@click.option("--app", "application",
              help="Provision through this application's targets (default: resident).")
@json_option
def sync(user: str, everyone: bool, application: str | None, as_json: bool) -> None:
    """Push USER's current state to every target now and report what each did; or, with
    --all, queue the desired state of everyone in TARGET's scope (e.g. scim-peer:scim2)
    for the workers.

    \b
      mware-iam provisioning sync PRIMARY/alice
      mware-iam provisioning sync --all scim-peer:scim2
    """
    if everyone:
        if application:
            raise click.UsageError("--app goes with USER, not with --all TARGET")
        counts = current_iam().provisioning.sync_all(admin(), user)
        if as_json:
            emit_json({"target": user, "users": counts.users, "groups": counts.groups})
        else:
            echo(f"queued {counts.users} user{'s' if counts.users != 1 else ''} and "
                 f"{counts.groups} group{'s' if counts.groups != 1 else ''} for {user}")
        return
    reports = current_iam().provisioning.sync(admin(), user, application)
    if as_json:
        emit_json({"items": [_report_json(r, preview=False) for r in reports]})
        return
    table(["target", "operation", "state", "remote id", "message"],
          [[r.target, r.operation, r.state, r.remote_id, r.message] for r in reports],
          f"{user} goes to no target")
    if any(JobState(r.state) not in DONE for r in reports):
        raise click.exceptions.Exit(1)


@provisioning_group.command("preview")
@click.argument("user")
@click.option("--app", "application",
              help="Preview this application's targets (default: resident).")
@json_option
def preview(user: str, application: str | None, as_json: bool) -> None:
    """The requests each target would receive for USER now (a dry run: nothing is sent,
    nothing is written). Passwords appear as ********."""
    reports = current_iam().provisioning.preview(user, application)
    if as_json:
        emit_json({"items": [_report_json(r, preview=True) for r in reports]})
        return
    if not reports:
        note(f"{user} goes to no target")
    for i, r in enumerate(reports):
        if i:
            echo()
        echo(click.style(f"{r.target}  {r.operation}", bold=True)
             + (f"  ({r.message})" if r.message else ""))
        if not r.requests and not r.message:
            echo("  nothing to send")
        _print_requests(r.requests, "  ", answers=False)
