"""Blocking targets: sent after the write commits (no lock held during the round trip), and
a refusal under ``fail_on_blocking_failure`` takes the committed change back (a
compensation), on PRIMARY and on a secondary SQL store (its own database), on every backend.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.apps import Application
from core.errors import NotFound, OperationRefused
from core.iam import Iam
from core.identity.events import Initiator
from core.provisioning.outbox import DONE, JobState
from tests.peers import Fault, FaultProxy
from tests.provisioning_helpers import connect, drain, peer_users
from tests.servers import database_url

REFUSAL = Fault.answer(400, {"detail": "refused by policy"})
GIVEN = "http://wso2.org/claims/givenname"


@pytest.fixture(params=["PRIMARY", "SALES"])
def domain(request: pytest.FixtureRequest, iam: Iam, tmp_path: Path) -> Iterator[str]:
    """The inbound store of application ``crm``: PRIMARY (in the system database) or a
    secondary SQL store on the same kind of server (a database of its own)."""
    backend = request.node.callspec.params["db_url"]
    (tmp_path / "sales").mkdir()
    with database_url(backend, str(tmp_path / "sales")) as url:
        if request.param != "PRIMARY":
            iam.save_userstore(Initiator.admin(), request.param, "sql", {"url": url})
        iam.save_app(Initiator.admin(), Application(name="crm", inbound_domain=request.param))
        yield request.param


def _blocking(iam: Iam, proxy: FaultProxy, peer: str, **kwargs: object) -> Initiator:
    connect(iam, proxy.url(peer), app="crm", blocking=True, **kwargs)  # type: ignore[arg-type]
    return Initiator.application_client("crm")


def _audit(iam: Iam, target: str) -> list[tuple[str, bool]]:
    """(action, is a compensation) of the audit rows about ``target``, oldest first."""
    return [(e.action, bool(e.detail.get("compensation")))
            for e in reversed(iam.audit_log(target=target))]


def test_a_slow_blocking_peer_holds_no_writer_lock(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy) -> None:
    connect(sqlite_iam, fault_proxy.url(scim_peer), blocking=True,
            fail_on_blocking_failure=True)
    fault_proxy.script(Fault.delay(3.0))
    slow = threading.Thread(target=sqlite_iam.identity.add_user, args=(admin, "slow"))
    slow.start()
    deadline = time.monotonic() + 5
    while not fault_proxy.seen and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fault_proxy.seen, "the blocking send never reached the peer"
    started = time.monotonic()
    sqlite_iam.identity.add_role(admin, "Internal/meanwhile")  # another writer, meanwhile
    took = time.monotonic() - started
    assert slow.is_alive(), "the blocking send ended before the other write was timed"
    slow.join(10)
    assert took < 1.5, f"the other writer waited {took:.1f} s for the blocking send"
    assert len(peer_users(scim_peer, "slow")) == 1
    # what another reader saw meanwhile: the user, committed, its job leased to the sender
    [job] = sqlite_iam.provisioning.jobs(entity="PRIMARY/slow")
    assert job.state is JobState.SUCCEEDED and job.attempts == 1


def test_a_slow_blocking_peer_holds_no_lock_on_the_user(
        iam: Iam, domain: str, scim_peer: str, fault_proxy: FaultProxy) -> None:
    """Another writer changes the same user while the blocking send of an update is slow:
    on no backend does it wait for the peer (no row lock held over the round trip)."""
    client = _blocking(iam, fault_proxy, scim_peer)
    iam.identity.add_user(client, f"{domain}/wes", None, {})
    fault_proxy.script(Fault.delay(3.0))
    slow = threading.Thread(target=iam.identity.update_user,
                            args=(client, f"{domain}/wes", {"givenname": "Wes"}))
    slow.start()
    deadline = time.monotonic() + 5
    while len(fault_proxy.seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    iam.identity.update_user(Initiator.admin(), f"{domain}/wes", {"lastname": "West"})
    took = time.monotonic() - started
    alive = slow.is_alive()
    slow.join(10)
    assert alive and took < 1.5, f"the other writer waited {took:.1f} s for the peer"
    claims = iam.identity.get_user(f"{domain}/wes").claims
    assert claims[GIVEN] == "Wes" and claims["http://wso2.org/claims/lastname"] == "West"


def test_a_refused_add_is_taken_back(iam: Iam, domain: str, scim_peer: str,
                                     fault_proxy: FaultProxy) -> None:
    client = _blocking(iam, fault_proxy, scim_peer, fail_on_blocking_failure=True)
    fault_proxy.script(REFUSAL)
    with pytest.raises(OperationRefused, match=r"the change was not made.*refused by policy"):
        iam.identity.add_user(client, f"{domain}/quin", None, {})
    with pytest.raises(NotFound):
        iam.identity.get_user(f"{domain}/quin")
    assert iam.identity.count_users(domain) == 0
    assert _audit(iam, f"{domain}/quin") == [("user.add", False), ("user.delete", True)]
    [job] = iam.provisioning.jobs()  # the compensation sends nothing to the blocking target
    assert job.state is JobState.CANCELLED and "taken back" in (job.last_error or "")
    assert drain(iam) == 0 and peer_users(scim_peer, "quin") == []
    iam.identity.add_user(client, f"{domain}/quin", None, {})  # accepted now: no clash
    assert len(peer_users(scim_peer, "quin")) == 1


def test_a_refused_claim_update_is_taken_back(iam: Iam, domain: str, scim_peer: str,
                                              fault_proxy: FaultProxy) -> None:
    client = _blocking(iam, fault_proxy, scim_peer, fail_on_blocking_failure=True)
    iam.identity.add_user(client, f"{domain}/rae", None, {"givenname": "Rae"})
    fault_proxy.script(REFUSAL)
    with pytest.raises(OperationRefused, match="the change was not made"):
        iam.identity.update_user(client, f"{domain}/rae", {"lastname": "Roe"}, ["givenname"])
    claims = iam.identity.get_user(f"{domain}/rae").claims
    assert claims[GIVEN] == "Rae" and "http://wso2.org/claims/lastname" not in claims
    assert _audit(iam, f"{domain}/rae")[-2:] == [("user.update", False),
                                                  ("user.update", True)]
    drain(iam)  # the restore reaches the target too (it holds what it held before)
    [remote] = peer_users(scim_peer, "rae")
    assert remote["name"]["givenName"] == "Rae" and "familyName" not in remote["name"]


def test_a_refused_role_assignment_is_taken_back(iam: Iam, domain: str, scim_peer: str,
                                                 fault_proxy: FaultProxy) -> None:
    admin = Initiator.admin()
    iam.identity.add_role(admin, "Internal/provisioned")
    client = _blocking(iam, fault_proxy, scim_peer, fail_on_blocking_failure=True,
                       provisioning_roles=("Internal/provisioned",))
    iam.identity.add_user(client, f"{domain}/sol", None, {})  # out of scope: nothing sent
    fault_proxy.script(REFUSAL)
    with pytest.raises(OperationRefused, match="the change was not made"):
        iam.identity.assign(client, "Internal/provisioned", [f"{domain}/sol"])
    assert iam.identity.roles_of(f"{domain}/sol") == []
    assert _audit(iam, "Internal/provisioned")[-2:] == [("role.members", False),
                                                         ("role.members", True)]
    drain(iam)
    assert peer_users(scim_peer, "sol") == []
    # the target never held sol: a delete is not refused up front (only looked up there)
    iam.identity.delete_user(client, f"{domain}/sol")
    newest = iam.provisioning.jobs()[0]
    assert newest.operation.value == "deprovision_user" and newest.state in DONE
    assert iam.identity.count_users(domain) == 0


def test_a_refused_add_keeps_what_the_target_held_before(
        iam: Iam, domain: str, scim_peer: str, fault_proxy: FaultProxy) -> None:
    """Two blocking targets on one peer: the first adopts an account that existed there, the
    second refuses; the compensation removes nothing that existed before."""
    import httpx

    httpx.post(f"{scim_peer}/Users", json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "tia"},
        timeout=5).raise_for_status()
    from core.apps import OutboundTarget

    connect(iam, scim_peer, idp="first", app="crm", blocking=True)
    client = _blocking(iam, fault_proxy, scim_peer, fail_on_blocking_failure=True,
                       extra_targets=(OutboundTarget("first", "scim2", True),))
    fault_proxy.script(REFUSAL)  # the second target refuses its create
    with pytest.raises(OperationRefused, match="the change was not made"):
        iam.identity.add_user(client, f"{domain}/tia", None, {})
    drain(iam)
    assert len(peer_users(scim_peer, "tia")) == 1


@pytest.mark.parametrize("change", ["delete", "password"])
def test_an_irreversible_change_is_refused_up_front(
        iam: Iam, domain: str, scim_peer: str, fault_proxy: FaultProxy, change: str) -> None:
    client = _blocking(iam, fault_proxy, scim_peer, fail_on_blocking_failure=True)
    iam.identity.add_user(client, f"{domain}/uma", "Old-Passw0rd!", {})
    seen = len(fault_proxy.seen)
    with pytest.raises(OperationRefused, match="cannot be taken back"):
        if change == "delete":
            iam.identity.delete_user(client, f"{domain}/uma")
        else:
            iam.identity.set_password(client, f"{domain}/uma", "New-Passw0rd!")
    assert iam.identity.get_user(f"{domain}/uma").username == "uma"
    assert iam.identity.verify_password(f"{domain}/uma", "Old-Passw0rd!") is not None
    assert len(fault_proxy.seen) == seen and len(iam.provisioning.jobs()) == 1
    admin = Initiator.admin()  # the resident application has no blocking target
    iam.identity.delete_user(admin, f"{domain}/uma")


def test_without_fail_on_blocking_failure_a_refusal_retries(
        iam: Iam, domain: str, scim_peer: str, fault_proxy: FaultProxy) -> None:
    client = _blocking(iam, fault_proxy, scim_peer)
    iam.identity.add_user(client, f"{domain}/val", None, {})
    fault_proxy.script(Fault.answer(503))
    iam.identity.update_user(client, f"{domain}/val", {"givenname": "Val"})
    assert iam.identity.get_user(f"{domain}/val").claims[GIVEN] == "Val"
    retrying = [j for j in iam.provisioning.jobs() if j.state is JobState.RETRY]
    assert len(retrying) == 1 and retrying[0].lease_owner is None
