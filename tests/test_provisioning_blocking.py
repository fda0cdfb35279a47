"""A blocking target that refuses a write through an application whose inbound store is a
secondary SQL store (its own database, outside the system transaction): nothing is kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.apps import Application
from core.errors import NotFound, OperationRefused
from core.iam import Iam
from core.identity.events import Initiator
from tests.peers import Fault, FaultProxy
from tests.provisioning_helpers import connect, peer_users


def test_a_refused_add_on_a_secondary_store_keeps_no_user(
        sqlite_iam: Iam, admin: Initiator, scim_peer: str, fault_proxy: FaultProxy,
        tmp_path: Path) -> None:
    sqlite_iam.save_userstore(admin, "SALES", "sql", {"url": f"sqlite:///{tmp_path}/s.db"})
    sqlite_iam.save_app(admin, Application(name="crm", inbound_domain="SALES"))
    connect(sqlite_iam, fault_proxy.url(scim_peer), app="crm", blocking=True,
            fail_on_blocking_failure=True)
    client = Initiator.application_client("crm")
    fault_proxy.script(Fault.answer(400, {"detail": "userName taken by policy"}))
    with pytest.raises(OperationRefused, match="the change was not made"):
        sqlite_iam.identity.add_user(client, "SALES/quin", None, {})
    with pytest.raises(NotFound):
        sqlite_iam.identity.get_user("SALES/quin")
    assert sqlite_iam.identity.count_users("SALES") == 0
    assert sqlite_iam.provisioning.jobs() == []
    sqlite_iam.identity.add_user(client, "SALES/quin", None, {})  # accepted now: no clash
    assert len(peer_users(scim_peer, "quin")) == 1
