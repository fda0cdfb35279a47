"""``GET /metrics``: real SCIM requests and provisioning runs, then a scrape parsed with
prometheus-client's own parser; the counts must equal what happened.

The counters of ``core/metrics.py`` belong to the process (the test process here, which
serves on a thread), so the in-process tests compare a scrape before with one after. The
last test runs ``serve`` as a real process in multiprocess mode.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.apps import Application
from core.http.app import HttpApp
from core.http.hardening import Guard
from core.http.supervisor import METRICS_DIR
from core.http.thread import scim_thread
from core.iam import Iam
from core.identity.events import Initiator
from core.inbound import MOUNT, Limits
from core.inbound.app import ScimApplication
from core.metrics import INSTRUMENTS, MULTIPROC_ENV
from tests.peers import free_port
from tests.processes import MwareProcess, peer_total, wait_until
from tests.provisioning_helpers import connect, drain
from tests.test_cli import Cli
from tests.test_cli_process import mware
from tests.test_cli_provisioning import TARGET, configure
from tests.test_http_hardening import call

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(origin: str) -> Samples:
    answer = httpx.get(f"{origin}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return parse(answer.text)


@pytest.fixture
def served(sqlite_iam: Iam) -> Iterator[tuple[str, str]]:
    """The origin of ``serve``'s HTTP app on a thread, and an application's token."""
    sqlite_iam.save_app(Initiator.admin(), Application(name="crm"))
    token = sqlite_iam.issue_token(Initiator.admin(), "crm")
    with scim_thread(sqlite_iam, limits=Limits(rate=1, burst=4)) as url:
        yield url.removesuffix(MOUNT), token


def test_scim_requests_are_counted_by_route_template_status_and_application(
    served: tuple[str, str],
) -> None:
    origin, token = served
    before = scrape(origin)
    with httpx.Client(
        base_url=origin + MOUNT, timeout=10, headers={"Authorization": f"Bearer {token}"}
    ) as scim:
        created = scim.post(
            "/Users",
            json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ann"},
        )
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]
        assert scim.get("/Users", params={"filter": 'userName eq "ann"'}).status_code == 200
        assert scim.get(f"/Users/{user_id}").status_code == 200
        assert scim.get("/Users/no-such-id").status_code == 404
        # the burst of 4 is spent: the next is refused by the bucket
        assert scim.get("/Nothing/here").status_code == 429
    assert httpx.get(f"{origin}{MOUNT}/Users", timeout=10).status_code == 401
    after = scrape(origin)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "mware_iam_scim_requests_total"
    assert delta(requests, route="/Users", status="201", application="crm") == 1
    assert delta(requests, route="/Users", status="200", application="crm") == 1
    assert delta(requests, route="/Users/{id}", status="200", application="crm") == 1
    assert delta(requests, route="/Users/{id}", status="404", application="crm") == 1
    assert delta(requests, route="unmatched", status="429", application="crm") == 1
    assert delta(requests, route="/Users", status="401", application="") == 1
    assert delta("mware_iam_rate_limited_total", application="crm", face="scim") == 1
    # the raw path of a request never becomes a label
    assert not any(user_id in str(labels) or "Nothing" in str(labels) for _, labels in after)
    assert delta("mware_iam_scim_request_seconds_count", route="/Users") == 3
    assert delta("mware_iam_scim_request_seconds_bucket", route="/Users", le="+Inf") == 3


def test_a_jit_login_at_an_unknown_provider_is_counted_without_its_name(
    served: tuple[str, str],
) -> None:
    origin, token = served
    before = scrape(origin)
    answer = httpx.post(
        f"{origin}/jit/made-up-idp",
        json={"id_token": "x"},
        timeout=10,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 404
    after = scrape(origin)
    name = "mware_iam_jit_logins_total"
    assert (
        value(after, name, idp="", outcome="refused")
        - value(before, name, idp="", outcome="refused")
        == 1
    )
    assert not any("made-up-idp" in str(labels) for _, labels in after)


def test_a_provisioning_run_is_in_the_jobs_queue_attempts_and_breaker(
    sqlite_iam: Iam, scim_peer: str
) -> None:
    connect(sqlite_iam, scim_peer)
    target = "peer:scim2"
    with scim_thread(sqlite_iam) as url:
        origin = url.removesuffix(MOUNT)
        before = scrape(origin)
        for name in ("amy", "bob", "cyd"):
            sqlite_iam.identity.add_user(Initiator.admin(), f"PRIMARY/{name}", None, {})
        queued = scrape(origin)
        assert value(queued, "mware_iam_provisioning_queue_depth", target=target) == 3
        assert value(queued, "mware_iam_provisioning_jobs", target=target, state="pending") == 3
        assert value(queued, "mware_iam_provisioning_oldest_job_age_seconds", target=target) >= 0
        assert drain(sqlite_iam) == 3
        after = scrape(origin)
    attempts = "mware_iam_provisioning_attempts_total"
    assert (
        value(after, attempts, target=target, outcome="succeeded")
        - value(before, attempts, target=target, outcome="succeeded")
        == 3
    )
    latency = "mware_iam_provisioning_attempt_seconds_count"
    assert value(after, latency, target=target) - value(before, latency, target=target) == 3
    assert value(after, "mware_iam_provisioning_queue_depth", target=target) == 0
    assert value(after, "mware_iam_provisioning_oldest_job_age_seconds", target=target) == 0
    assert value(after, "mware_iam_provisioning_jobs", target=target, state="pending") == 0
    assert (
        value(after, "mware_iam_provisioning_jobs_ended_total", target=target, outcome="succeeded")
        == 3
    )
    assert value(after, "mware_iam_provisioning_breaker_state", target=target, state="healthy") == 1
    assert (
        value(after, "mware_iam_provisioning_breaker_state", target=target, state="quarantined")
        == 0
    )
    assert value(after, "mware_iam_userstore_up", domain="PRIMARY") == 1


async def test_metrics_need_an_application_token_unless_over_loopback(sqlite_iam: Iam) -> None:
    sqlite_iam.save_app(Initiator.admin(), Application(name="crm"))
    token = sqlite_iam.issue_token(Initiator.admin(), "crm")
    app = Guard(HttpApp(sqlite_iam), sqlite_iam)
    public = ("192.0.2.1", 8080)
    status, body = await call(app, "/metrics", public)
    assert status == 401 and "GET /metrics needs an application token" in body["error"]
    assert (await call(app, "/metrics", public, [(b"authorization", b"Bearer wrong")]))[0] == 401
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    for server, headers in (
        (public, [(b"authorization", b"Bearer " + token.encode())]),
        (("127.0.0.1", 8080), []),
    ):
        sent.clear()
        await app(
            {
                "type": "http",
                "method": "GET",
                "path": "/metrics",
                "headers": headers,
                "server": server,
                "client": ("192.0.2.9", 40000),
            },
            receive,
            send,
        )
        assert sent[0]["status"] == 200
        assert b"mware_iam_userstore_up" in sent[1]["body"]  # type: ignore[operator]


async def test_a_request_whose_client_left_is_counted_499_and_not_answered(
    sqlite_iam: Iam,
) -> None:
    sqlite_iam.save_app(Initiator.admin(), Application(name="crm"))
    token = sqlite_iam.issue_token(Initiator.admin(), "crm")
    scim = ScimApplication(sqlite_iam, Limits(rate=0))
    labels = {"route": "/Users", "application": "crm"}

    def counted(status: str) -> float:
        return INSTRUMENTS.get_sample_value(
            "mware_iam_scim_requests_total", {**labels, "status": status}) or 0.0

    async def ask(leaves: bool) -> list[dict[str, object]]:
        sent: list[dict[str, object]] = []
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, object]:
            if messages:
                return messages.pop()
            if not leaves:
                await asyncio.Event().wait()  # stays until answered (then cancelled)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        await scim({"type": "http", "method": "GET", "path": "/scim2/Users",
                    "root_path": "/scim2", "scheme": "http", "query_string": b"",
                    "headers": [(b"host", b"127.0.0.1"),
                                (b"authorization", b"Bearer " + token.encode())],
                    "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 40000)},
                   receive, send)
        return sent

    try:
        before_gone, before_ok = counted("499"), counted("200")
        assert await ask(leaves=True) == []
        assert counted("499") == before_gone + 1 and counted("200") == before_ok
        answered = await ask(leaves=False)
        assert answered[0]["status"] == 200
        assert counted("499") == before_gone + 1 and counted("200") == before_ok + 1
    finally:
        scim.close()


@pytest.mark.parametrize("processes", [1, 2], ids=["folder-in-env", "serve-processes"])
def test_serve_in_multiprocess_mode_counts_across_its_files(
    tmp_path: Path, scim_peer: str, monkeypatch: pytest.MonkeyPatch, processes: int
) -> None:
    """With the folder named in the environment, or made by ``serve --processes`` after
    prometheus-client was imported (the children must still count into files)."""
    home = tmp_path / "home"
    if processes == 1:
        folder = tmp_path / "prometheus"
        folder.mkdir()
        monkeypatch.setenv(MULTIPROC_ENV, str(folder))
    else:
        monkeypatch.delenv(MULTIPROC_ENV, raising=False)
        folder = home / METRICS_DIR
    configure(Cli(home), scim_peer)
    port = free_port()
    proc = MwareProcess(
        home,
        ["serve", "--port", str(port), "--poll", "0.2", "--processes", str(processes)],
        tmp_path / "serve.log",
    )
    origin = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: "serving http" in proc.log() or proc.process.poll() is not None,
            30,
            "serve to listen",
        )
        mware("--home", str(home), "user", "add", "pat", "--no-password")
        mware("--home", str(home), "user", "add", "sam", "--no-password")
        wait_until(lambda: peer_total(scim_peer) == 2, 15, "both users at the peer")
        samples = wait_until(
            lambda: (
                (s := scrape(origin))
                and value(
                    s, "mware_iam_provisioning_attempts_total", target=TARGET, outcome="succeeded"
                )
                == 2
                and s
            ),
            10,
            "the attempts to be counted",
        )
        assert httpx.get(f"{origin}{MOUNT}/Users", timeout=5).status_code == 401
        samples = scrape(origin)
    finally:
        code = proc.stop(signal.SIGINT)
    assert code == 0, proc.log()
    assert (
        value(
            samples, "mware_iam_scim_requests_total", route="/Users", status="401", application=""
        )
        == 1
    )
    assert (
        value(
            samples, "mware_iam_provisioning_jobs_ended_total", target=TARGET, outcome="succeeded"
        )
        == 2
    )
    assert any(folder.glob("counter_*.db")), "multiprocess mode writes its files"
    assert not any(name == "process_cpu_seconds_total" for name, _ in samples)
