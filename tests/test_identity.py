"""The identity service on every backend: writes, events, audit and atomicity."""

from __future__ import annotations

import pytest

from core.claims import LOCAL_DIALECT
from core.errors import AlreadyExists, InvalidInput, NotFound, OperationRefused, PolicyViolation
from core.iam import Iam
from core.identity.events import EventType, IdentityEvent, Initiator, Phase

EMAIL = f"{LOCAL_DIALECT}/emailaddress"


def test_add_get_update_delete_user(iam: Iam, admin: Initiator) -> None:
    svc = iam.identity
    svc.add_user(admin, "alice", "s3cretpass", {"emailaddress": "alice@example.com"})
    user = svc.get_user("PRIMARY/alice")
    assert user.claims[EMAIL] == "alice@example.com"
    svc.update_user(admin, "alice", {"givenname": "Alice"}, ["emailaddress"])
    claims = svc.get_user("alice").claims
    assert EMAIL not in claims and claims[f"{LOCAL_DIALECT}/givenname"] == "Alice"
    svc.delete_user(admin, "alice")
    with pytest.raises(NotFound):
        svc.get_user("alice")


def test_duplicate_user_is_refused_and_nothing_written(iam: Iam, admin: Initiator) -> None:
    iam.identity.add_user(admin, "bob", None, {})
    with pytest.raises(AlreadyExists):
        iam.identity.add_user(admin, "bob", None, {"givenname": "Other"})
    assert iam.identity.count_users("PRIMARY") == 1
    assert [e.action for e in iam.audit_log()] == ["user.add"]


def test_policy_violation_names_the_rule(iam: Iam, admin: Initiator) -> None:
    with pytest.raises(PolicyViolation, match="Password must be"):
        iam.identity.add_user(admin, "carol", "short", {})
    with pytest.raises(PolicyViolation, match="Username must be"):
        iam.identity.add_user(admin, "x", None, {})
    assert iam.identity.count_users("PRIMARY") == 0


def test_pre_event_veto_rolls_back_everything(iam: Iam, admin: Initiator) -> None:
    seen: list[IdentityEvent] = []

    def veto(ev: IdentityEvent) -> None:
        seen.append(ev)
        raise OperationRefused("refused by test")

    iam.bus.subscribe(Phase.POST, veto)
    with pytest.raises(OperationRefused):
        iam.identity.add_user(admin, "dave", "s3cretpass", {"givenname": "Dave"},
                              roles=[])
    assert seen and seen[0].type is EventType.USER_ADDED and seen[0].entity_id
    # the store write happened before the POST veto, and was rolled back with the audit row
    assert iam.identity.count_users("PRIMARY") == 0
    assert iam.audit_log() == []


def test_events_are_ordered_and_carry_the_initiator(iam: Iam) -> None:
    order: list[str] = []
    iam.bus.subscribe(Phase.POST, lambda ev: order.append(f"b:{ev.type}"), order=20)
    iam.bus.subscribe(Phase.POST, lambda ev: order.append(f"a:{ev.type}"), order=10)
    iam.bus.subscribe(Phase.PRE, lambda ev: order.append(f"pre:{ev.type}"))
    got: list[IdentityEvent] = []
    iam.bus.subscribe(Phase.COMMITTED, got.append)
    app = Initiator.application_client("hr-system")
    iam.identity.add_user(app, "erin", "s3cretpass", {})
    assert order == ["pre:user.added", "a:user.added", "b:user.added"]
    assert got[0].initiator.application == "hr-system"
    assert "s3cretpass" not in repr(got[0])
    assert iam.audit_log()[0].actor == "app:hr-system"


def test_roles_groups_and_internal(iam: Iam, admin: Initiator) -> None:
    svc = iam.identity
    svc.add_user(admin, "frank", None, {})
    svc.add_user(admin, "grace", None, {})
    svc.add_role(admin, "engineering", ["frank"])
    svc.add_role(admin, "Internal/auditors")
    assert svc.assign(admin, "Internal/auditors", ["frank", "grace"]) == [
        "PRIMARY/frank", "PRIMARY/grace"]
    assert svc.assign(admin, "Internal/auditors", ["frank"]) == []
    assert sorted(svc.roles_of("frank")) == ["Internal/auditors", "PRIMARY/engineering"]
    svc.rename_role(admin, "engineering", "platform")
    assert [u.username for u in svc.members_of("PRIMARY/platform")] == ["frank"]
    with pytest.raises(AlreadyExists):
        svc.add_role(admin, "PRIMARY/platform")
    svc.delete_user(admin, "frank")
    assert [u.username for u in svc.members_of("Internal/auditors")] == ["grace"]
    svc.delete_role(admin, "Internal/auditors")
    with pytest.raises(NotFound):
        svc.get_role("Internal/auditors")


def test_set_user_roles_is_all_or_nothing(iam: Iam, admin: Initiator) -> None:
    svc = iam.identity
    svc.add_user(admin, "heidi", None, {})
    svc.add_role(admin, "engineering", ["heidi"])
    svc.add_role(admin, "Internal/auditors")
    svc.add_role(admin, "Internal/testers")
    svc.set_user_roles(admin, "heidi", add=["Internal/auditors"],
                       remove=["PRIMARY/engineering"])
    assert svc.roles_of("heidi") == ["Internal/auditors"]
    committed: list[IdentityEvent] = []
    iam.bus.subscribe(Phase.COMMITTED, committed.append)
    with pytest.raises(NotFound, match="nosuch"):
        svc.set_user_roles(admin, "heidi", add=["Internal/testers", "Internal/nosuch"],
                           remove=["Internal/auditors"])
    assert svc.roles_of("heidi") == ["Internal/auditors"]  # the first change rolled back
    assert committed == []


def test_unknown_domain_and_claim(iam: Iam, admin: Initiator) -> None:
    with pytest.raises(NotFound, match="LDAP2"):
        iam.identity.add_user(admin, "LDAP2/henry", None, {})
    with pytest.raises(InvalidInput, match="unknown claim"):
        iam.identity.add_user(admin, "henry", None, {"shoe-size": "44"})
    with pytest.raises(InvalidInput, match="does not match"):
        iam.identity.add_user(admin, "henry", None, {"emailaddress": "not-an-email"})


def test_case_insensitive_usernames(iam: Iam, admin: Initiator) -> None:
    iam.save_userstore(admin, "PRIMARY", "sql", {"case_insensitive_usernames": True})
    iam.identity.add_user(admin, "Ivan", None, {})
    assert iam.identity.get_user("ivan").username == "Ivan"
    with pytest.raises(AlreadyExists):
        iam.identity.add_user(admin, "IVAN", None, {})


def test_case_sensitive_usernames_are_distinct(iam: Iam, admin: Initiator) -> None:
    iam.identity.add_user(admin, "Judy", None, {})
    iam.identity.add_user(admin, "judy", None, {})
    assert iam.identity.count_users("PRIMARY") == 2


def test_committed_events_wait_for_the_outermost_commit(iam: Iam, admin: Initiator) -> None:
    got: list[IdentityEvent] = []
    iam.bus.subscribe(Phase.COMMITTED, got.append)
    with pytest.raises(RuntimeError), iam.db.transaction():
        iam.identity.add_user(admin, "kate", None, {})
        assert got == []  # still inside the outer transaction
        raise RuntimeError("roll back")
    assert got == [] and iam.identity.count_users("PRIMARY") == 0
    with iam.db.transaction():
        iam.identity.add_user(admin, "kate", None, {})
        assert got == []
    assert [e.name for e in got] == ["PRIMARY/kate"]


def test_a_domain_mapping_overrides_only_the_claims_it_names(iam: Iam, admin: Initiator) -> None:
    iam.save_claim(admin, f"{LOCAL_DIALECT}/emailaddress", "Email",
                   mappings={"PRIMARY": "mail", "OTHER": "emailAddress"})
    catalog = iam.claims
    assert catalog.attribute("OTHER", EMAIL) == "emailAddress"
    assert catalog.attribute("OTHER", f"{LOCAL_DIALECT}/givenname") == "givenName"


def test_role_members_page_through_a_store_group_and_an_internal_role(
        iam: Iam, admin: Initiator) -> None:
    svc = iam.identity
    names = [f"user{n:02}" for n in range(7)]
    for name in names:
        svc.add_user(admin, name, None, {})
    svc.add_role(admin, "crew", names)
    svc.add_role(admin, "Internal/crew", names)
    for role in ("PRIMARY/crew", "Internal/crew"):
        seen: list[str] = []
        sizes = []
        cursor = None
        while True:
            page = svc.member_page(role, 3, cursor)
            seen += [u.username for u in page.items]
            sizes.append(len(page.items))
            cursor = page.next_cursor
            if cursor is None:
                break
        assert sizes == [3, 3, 1], role
        assert sorted(seen) == names and len(set(seen)) == 7, role
        assert [u.username for u in svc.members_of(role, limit=5)] == seen[:5]
    svc.delete_user(admin, "user01")  # a member gone: its page is only shorter
    assert "user01" not in [u.username for u in svc.member_page("Internal/crew", 10).items]
    with pytest.raises(InvalidInput, match="cursor"):
        svc.member_page("Internal/crew", 3, "not-a-cursor")
