"""``mware-iam provisioning ...``, ``worker`` and ``serve`` against a real scim2-server.

The commands run in-process through click's runner on a temporary ``--home`` (as in
tests/test_cli.py); jobs are run by a worker pool (``drain``), or by ``worker`` and
``serve`` started as real processes. Assertions look at the peer and the database, not
only at what was printed.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import socket
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from core.cli.context import admin
from core.errors import InvalidInput
from core.provisioning.outbox import JobState
from core.schema import connector_configs, identity_providers
from core.secrets import SecretValue
from tests.peers import Fault, FaultProxy, free_port
from tests.processes import MwareProcess, peer_total, wait_until, worker
from tests.provisioning_helpers import connect, drain, peer_users
from tests.test_cli import Cli, one_error_line
from tests.test_cli_process import mware

TARGET = "peer:scim2"
TOKEN = "s3cret-bearer-token-4711"


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")


def configure(run: Cli, base_url: str, **props: object) -> None:
    with run.iam() as iam:
        connect(iam, base_url, **props)


def drain_home(run: Cli) -> int:
    with run.iam() as iam:
        return drain(iam)


def status_json(run: Cli) -> list[dict[str, object]]:
    return list(json.loads(run.ok("provisioning", "status", "--json").stdout)["targets"])


# ---------------------------------------------------------------- status and jobs
def test_status_json_matches_what_happened(run: Cli, scim_peer: str) -> None:
    configure(run, scim_peer)
    for name in ("ann", "ben", "cal"):
        run.ok("user", "add", name, "--no-password", "--claim", f"givenname={name}")
    [queued] = status_json(run)
    assert (queued["target"], queued["queued"], queued["succeeded"]) == (TARGET, 3, 0)
    assert drain_home(run) == 3
    [done] = status_json(run)
    assert done["state"] == "healthy"
    assert (done["queued"], done["in_flight"], done["retrying"], done["dead"]) == (0, 0, 0, 0)
    assert (done["succeeded"], done["failed"], done["per_minute"]) == (3, 0, 3)
    assert isinstance(done["latency_p50_ms"], float) and isinstance(done["latency_p95_ms"],
                                                                     float)
    assert done["latency_p50_ms"] <= done["latency_p95_ms"]
    assert sorted(u["userName"] for u in peer_users(scim_peer)) == ["ann", "ben", "cal"]
    table = run.ok("provisioning", "status").stdout.splitlines()
    assert table[0].split()[:3] == ["TARGET", "STATE", "QUEUED"]
    assert table[1].split()[:8] == [TARGET, "healthy", "0", "0", "0", "3", "0", "0"]


def test_jobs_filter_by_state_target_entity_and_name(run: Cli, scim_peer: str) -> None:
    configure(run, scim_peer)
    run.ok("user", "add", "dan", "--no-password")
    drain_home(run)
    run.ok("user", "add", "eve", "--no-password")
    pending = json.loads(run.ok("provisioning", "jobs", "--state", "pending", "--json").stdout)
    assert [(j["entity"], j["state"]) for j in pending["items"]] == [("PRIMARY/eve",
                                                                       "pending")]
    both = json.loads(run.ok("provisioning", "jobs", "--state", "pending", "--state",
                             "succeeded", "--target", TARGET, "--json").stdout)["items"]
    assert [j["entity"] for j in both] == ["PRIMARY/eve", "PRIMARY/dan"]  # newest first
    dans = json.loads(run.ok("provisioning", "jobs", "--entity", "PRIMARY/dan",
                             "--json").stdout)["items"]
    assert [(j["entity"], j["state"]) for j in dans] == [("PRIMARY/dan", "succeeded")]
    named = json.loads(run.ok("provisioning", "jobs", "--name", "EV", "--json").stdout)
    assert [j["entity"] for j in named["items"]] == ["PRIMARY/eve"]  # part of it, any case
    assert run.ok("provisioning", "jobs", "--name", "%").stdout == ""  # a plain character
    assert run.ok("provisioning", "jobs", "--target", "elsewhere:scim2").stdout == ""
    bad = run("provisioning", "jobs", "--state", "stuck")
    assert bad.exit_code == 2 and "'stuck' is not one of" in bad.stderr


# ---------------------------------------------------------------- a dead job, shown, retried
def _with_bearer_token(run: Cli) -> None:
    """The peer's connector authenticates with a bearer token (a secret)."""
    with run.iam() as iam:
        idp = iam.get_idp("peer")
        [cfg] = idp.connectors
        cfg = dataclasses.replace(
            cfg, properties={**cfg.properties, "scim2-authentication-mode": "BEARER"},
            secrets={"scim2-access-token": SecretValue(TOKEN)})
        iam.save_idp(admin(), dataclasses.replace(idp, connectors=(cfg,)))


def test_dead_job_is_listed_shown_redacted_and_retried(
        run: Cli, scim_peer: str, fault_proxy: FaultProxy) -> None:
    configure(run, fault_proxy.url(scim_peer))
    _with_bearer_token(run)
    fault_proxy.script(Fault.answer(400, {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400",
        "scimType": "invalidValue", "detail": "department is not known here"}))
    run.ok("user", "add", "kim", "--password-stdin", input="Kim-Pa55word\n")
    drain_home(run)
    assert fault_proxy.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"  # it was sent

    [dead] = json.loads(run.ok("provisioning", "jobs", "--state", "dead",
                               "--json").stdout)["items"]
    assert (dead["entity"], dead["target"], dead["last_status"]) == ("PRIMARY/kim", TARGET,
                                                                     400)
    assert dead["payload"]["password"] == "********"  # kept for the retry, never shown
    listed = run.ok("provisioning", "jobs", "--state", "dead").stdout
    assert "PRIMARY/kim" in listed and "dead" in listed

    shown = run.ok("provisioning", "show", str(dead["id"]))
    assert "department is not known here" in shown.stdout
    assert f"POST {fault_proxy.url(scim_peer)}/Users  -> 400" in shown.stdout
    assert '"userName": "kim"' in shown.stdout and '"password": "********"' in shown.stdout
    detail = json.loads(run.ok("provisioning", "show", str(dead["id"]), "--json").stdout)
    [attempt] = detail["attempts"]
    assert (attempt["outcome"], attempt["status_code"]) == ("dead", 400)
    assert attempt["exchanges"][0]["response_body"]["scimType"] == "invalidValue"
    for output in (shown.output, json.dumps(detail)):
        assert TOKEN not in output and "Kim-Pa55word" not in output
        assert "Authorization" not in output and "Bearer" not in output

    retried = run.ok("provisioning", "retry", "--dead", "--target", TARGET)
    assert retried.stdout == "1 job scheduled to run again\n"
    assert drain_home(run) == 1
    assert [u["userName"] for u in peer_users(scim_peer)] == ["kim"]
    with run.iam() as iam:
        job, attempts = iam.provisioning.job(dead["id"])
        assert job.state is JobState.SUCCEEDED
        assert [a["outcome"] for a in attempts] == ["dead", "succeeded"]
        assert iam.audit_log(1, "provisioning.retry", TARGET)


def test_retry_and_cancel_one_job_and_their_errors(run: Cli, scim_peer: str) -> None:
    configure(run, scim_peer)
    run.ok("user", "add", "lou", "--no-password")
    [job] = json.loads(run.ok("provisioning", "jobs", "--json").stdout)["items"]
    assert run.ok("provisioning", "cancel", str(job["id"])).stdout == \
        f"cancelled job {job['id']}\n"
    assert drain_home(run) == 0 and peer_users(scim_peer) == []
    again = run("provisioning", "cancel", str(job["id"]))
    assert again.exit_code == 2
    assert "only pending, retrying or dead jobs can be cancelled" in one_error_line(again)
    assert run.ok("provisioning", "retry", str(job["id"])).stdout == \
        "1 job scheduled to run again\n"
    assert drain_home(run) == 1 and len(peer_users(scim_peer, "lou")) == 1
    missing = run("provisioning", "show", "9999")
    assert missing.exit_code == 3 and one_error_line(missing) == "error: job 9999 does not exist"
    both = run("provisioning", "retry", str(job["id"]), "--dead", "--target", TARGET)
    assert both.exit_code == 2 and "not both" in both.stderr
    neither = run("provisioning", "retry", "--dead")
    assert neither.exit_code == 2 and "--dead --target TARGET" in neither.stderr


# ---------------------------------------------------------------- credentials in a URL
def test_a_url_with_credentials_is_refused_naming_the_secret_properties(run: Cli) -> None:
    with run.iam() as iam, pytest.raises(InvalidInput) as refused:
        connect(iam, "http://admin:SECRET@127.0.0.1:1/v2")
    message = str(refused.value)
    assert "scim2-user-ep" in message and "must not carry a user name or password" in message
    assert "scim2-password" in message and "SECRET" not in message


def test_credentials_of_a_url_stored_before_the_rule_are_never_shown(run: Cli) -> None:
    configure(run, "http://127.0.0.1:1/v2", **{"retry-base-seconds": 60})  # port 1: closed
    with run.iam() as iam, iam.db.transaction() as conn:  # as an older release stored it
        [cfg] = iam.get_idp("peer").connectors
        peer = select(identity_providers.c.pk).where(identity_providers.c.name == "peer")
        conn.execute(update(connector_configs).where(
            connector_configs.c.idp_pk == peer.scalar_subquery()).values(properties={
                **cfg.properties, "scim2-user-ep": "http://admin:SECRET@127.0.0.1:1/v2/Users"}))
    run.ok("user", "add", "ann", "--no-password")
    outputs = [run.ok("idp", "show", "peer").stdout,
               run.ok("idp", "show", "peer", "--json").stdout,
               run.ok("provisioning", "preview", "ann").stdout]
    assert "http://***@127.0.0.1:1/v2/Users" in outputs[0]
    drain_home(run)
    outputs += [run.ok("provisioning", "jobs", "--json").stdout,
                run.ok("provisioning", "show", "1").stdout,
                run.ok("provisioning", "show", "1", "--json").stdout,
                run.ok("provisioning", "status", "--json").stdout]
    assert "cannot reach the target" in outputs[-1]
    assert "***@127.0.0.1:1" in outputs[-2]
    for output in outputs:
        assert "SECRET" not in output and "admin:" not in output


# ---------------------------------------------------------------- preview and sync
def test_preview_shows_the_requests_masks_the_password_and_sends_nothing(
        run: Cli, scim_peer: str, fault_proxy: FaultProxy) -> None:
    configure(run, fault_proxy.url(scim_peer))
    run.ok("user", "add", "mae", "--claim", "givenname=Mae", "--password-stdin",
           input="Mae-Secret-77\n")
    jobs_before = run.ok("provisioning", "jobs", "--json").stdout
    shown = run.ok("provisioning", "preview", "mae")
    assert shown.stdout.startswith(f"{TARGET}  upsert_user\n")
    assert f"  POST {fault_proxy.url(scim_peer)}/Users\n" in shown.stdout
    assert '"userName": "mae"' in shown.stdout and '"givenName": "Mae"' in shown.stdout
    assert '"password": "********"' in shown.stdout and "Mae-Secret-77" not in shown.output
    [report] = json.loads(run.ok("provisioning", "preview", "mae", "--json").stdout)["items"]
    [post] = report["requests"]
    assert (post["method"], post["body"]["userName"], post["body"]["password"]) == \
        ("POST", "mae", "********")
    assert fault_proxy.seen == [] and peer_users(scim_peer) == []  # nothing was sent
    assert run.ok("provisioning", "jobs", "--json").stdout == jobs_before  # nor written


def test_sync_provisions_a_user_created_before_the_target(run: Cli, scim_peer: str) -> None:
    run.ok("user", "add", "ned", "--no-password", "--claim", "lastname=Stark")
    configure(run, scim_peer)  # the target comes later: nothing was planned for ned
    assert json.loads(run.ok("provisioning", "jobs", "--json").stdout)["items"] == []
    table = run.ok("provisioning", "sync", "ned").stdout.splitlines()
    [remote] = peer_users(scim_peer, "ned")
    assert remote["name"]["familyName"] == "Stark"
    assert table[1].split() == [TARGET, "upsert_user", "succeeded", remote["id"]]
    [again] = json.loads(run.ok("provisioning", "sync", "ned", "--json").stdout)["items"]
    assert (again["state"], again["remote_id"]) == ("succeeded", remote["id"])
    assert [r["method"] for r in again["requests"]] == ["PUT"]  # updated, not created again
    assert len(peer_users(scim_peer)) == 1
    unknown = run("provisioning", "sync", "nobody")
    assert unknown.exit_code == 3 and "nobody" in one_error_line(unknown)


# ---------------------------------------------------------------- worker and serve processes
def test_worker_process_picks_up_a_user_added_by_another_process(
        tmp_path: Path, scim_peer: str) -> None:
    home = tmp_path / "home"
    configure(Cli(home), scim_peer)
    proc = worker(home, tmp_path / "worker.log")
    try:
        proc.wait_started()
        added = mware("--home", str(home), "user", "add", "olly", "--no-password")
        assert added.returncode == 0, added.stderr
        wait_until(lambda: peer_users(scim_peer, "olly"), 15, "olly at the peer")
    finally:
        code = proc.stop(signal.SIGTERM)
    assert code == 0, proc.log()
    log = proc.log()
    assert "job 1 upsert_user PRIMARY/olly -> peer:scim2: succeeded" in log
    assert "SIGTERM received" in log and "stopped" in log.splitlines()[-1]
    assert "Traceback" not in log


def test_serve_answers_health_and_status_and_provisions(tmp_path: Path, scim_peer: str
                                                        ) -> None:
    home = tmp_path / "home"
    configure(Cli(home), scim_peer)
    port = free_port()
    proc = MwareProcess(home, ["serve", "--port", str(port), "--poll", "0.2"],
                        tmp_path / "serve.log")
    origin = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: "serving http" in proc.log() or proc.process.poll() is not None,
                   30, "serve to listen")
        health = httpx.get(f"{origin}/health", timeout=5)
        assert (health.status_code, health.json()) == (
            200, {"status": "ok", "process": proc.process.pid})
        mware("--home", str(home), "user", "add", "pat", "--no-password")
        wait_until(lambda: peer_total(scim_peer) == 1, 15, "pat at the peer")
        wait_until(lambda: httpx.get(f"{origin}/status", timeout=5).json()["targets"][0]
                   ["succeeded"] == 1, 10, "the status to count the success")
        [target] = httpx.get(f"{origin}/status", timeout=5).json()["targets"]
        assert (target["target"], target["state"], target["queued"]) == (TARGET, "healthy", 0)
        assert httpx.get(f"{origin}/nothing", timeout=5).status_code == 404
        assert httpx.post(f"{origin}/health", timeout=5).status_code == 405
    finally:
        code = proc.stop(signal.SIGINT)
    assert code == 0, proc.log()
    assert "Traceback" not in proc.log()


def test_serve_on_a_port_in_use_is_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = mware("--home", str(tmp_path / "home"), "serve", "--port", str(port))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use; another "
        "process listens there: choose another --port"]
