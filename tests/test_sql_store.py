"""The SQL userstore on every backend: directly, and through the identity service."""

from __future__ import annotations

import base64
import gc
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from core.claims import LOCAL_DIALECT
from core.db import make_engine
from core.errors import (
    AlreadyExists,
    InvalidInput,
    NotFound,
    OperationRefused,
    ReadOnlyStore,
    StoreUnavailable,
)
from core.iam import Iam
from core.identity.events import EventType, IdentityEvent, Initiator, Phase
from core.identity.service import PASSWORD_BATCH, ImportRow
from core.passwords import Argon2Params, PasswordHashing
from core.schema import um_memberships, um_user_attributes, um_users
from core.userstores import query as q
from core.userstores.base import NewUser, Page, Policies, StoredUser
from core.userstores.sql import SqlUserStore
from tests.conftest import FAST_ARGON2
from tests.sql_helpers import statements

EMAIL = f"{LOCAL_DIALECT}/emailaddress"
GIVEN = f"{LOCAL_DIALECT}/givenname"


def primary(iam: Iam) -> SqlUserStore:
    store = iam.stores.store("PRIMARY")
    assert isinstance(store, SqlUserStore)
    return store


def side_store(iam: Iam, domain: str, **kw: object) -> SqlUserStore:
    """Another store in the same tables (rows are keyed by domain)."""
    read_only = bool(kw.pop("read_only", False))
    return SqlUserStore(domain, iam.db.engine, iam.hashing, Policies(**kw),  # type: ignore[arg-type]
                        read_only=read_only)


def new(name: str, password: str | None = None, **attributes: str) -> NewUser:
    return NewUser(name, password, attributes)


def walk(list_page: Callable[[str | None], Page]) -> list[list[object]]:
    """Every page of a listing, following the cursors."""
    pages: list[list[object]] = []
    cursor: str | None = None
    while True:
        page = list_page(cursor)
        pages.append(list(page.items))
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 100, "the cursor never ends"


def names(users: Sequence[StoredUser]) -> list[str]:
    return [u.username for u in users]


# ---------------------------------------------------------------- paging
#: Mixed case, punctuation and non-ASCII: the order is by code point on every backend.
ODD_NAMES = ["Zed", "alice", "Émile", "ßeta", "a_b", "a%c", "a'q", "日本語", "😀smile", "A-Z"]


def test_cursor_paging_visits_every_user_once_in_order(iam: Iam) -> None:
    store = primary(iam)
    all_names = [f"user{i:03d}" for i in range(247)] + ODD_NAMES
    store.add_users([new(n) for n in reversed(all_names)])
    pages = walk(lambda c: store.list_users(50, c))
    assert [len(p) for p in pages] == [50, 50, 50, 50, 50, 7]
    seen = [u.username for p in pages for u in p]  # type: ignore[attr-defined]
    assert seen == sorted(all_names)
    assert store.count_users() == 257


def test_service_paging_gives_views_with_claims(iam: Iam, admin: Initiator) -> None:
    primary(iam).add_users([new(f"u{i:03d}", mail=f"u{i}@example.com") for i in range(257)])
    pages = walk(lambda c: iam.identity.list_users("PRIMARY", page_size=50, cursor=c))
    views = [v for p in pages for v in p]
    assert [v.username for v in views] == [f"u{i:03d}" for i in range(257)]  # type: ignore[attr-defined]
    assert views[3].claims[EMAIL] == "u3@example.com"  # type: ignore[attr-defined]
    assert iam.identity.count_users("PRIMARY") == 257


def test_page_size_is_bounded(iam: Iam) -> None:
    store = primary(iam)
    store.add_users([new(f"user{i}") for i in range(3)])
    assert len(store.list_users(0).items) == 1  # at least one
    assert len(store.list_users(-5).items) == 1


# ---------------------------------------------------------------- prefix search
PREFIX_NAMES = ["a_b1", "axb1", "a%c1", "abc1", "a'q1", "A_up", "Abc2", "élan", "éa12", "ea12",
                "b_b1", "a", "a_"]


@pytest.mark.parametrize("prefix, expected", [
    ("a_", ["a_", "a_b1"]),              # '_' is no wildcard
    ("a%", ["a%c1"]),                    # '%' is no wildcard
    ("a'", ["a'q1"]),                    # quotes are data
    ("ab", ["abc1"]),
    ("A", ["A_up", "Abc2"]),             # case-sensitive by default
    ("é", ["éa12", "élan"]),             # not 'e'
    ("a_b1", ["a_b1"]),
    ("zz", []),
])
def test_prefix_search_is_exact_case_sensitive(iam: Iam, prefix: str,
                                               expected: list[str]) -> None:
    store = primary(iam)
    store.add_users([new(n) for n in PREFIX_NAMES])
    assert names(store.list_users(100, prefix=prefix).items) == expected
    assert store.count_users(prefix) == len(expected)


@pytest.mark.parametrize("prefix, expected", [
    ("a_", ["a_", "a_b1", "A_up"]),
    ("A_", ["a_", "a_b1", "A_up"]),
    ("AB", ["abc1", "Abc2"]),
    ("É", ["éa12", "élan"]),
])
def test_prefix_search_case_insensitive_store(iam: Iam, prefix: str,
                                              expected: list[str]) -> None:
    store = side_store(iam, "CI", case_insensitive_usernames=True)
    store.add_users([new(n) for n in PREFIX_NAMES])
    assert names(store.list_users(100, prefix=prefix).items) == expected
    # the names keep their spelling, and the store's domain is separate from PRIMARY
    assert primary(iam).count_users() == 0


def test_prefix_search_pages_within_the_prefix(iam: Iam) -> None:
    store = primary(iam)
    store.add_users([new(f"{p}{i:03d}") for p in ("ann", "anna", "bob") for i in range(60)])
    pages = walk(lambda c: store.list_users(50, c, prefix="anna"))
    assert [len(p) for p in pages] == [50, 10]
    assert [u.username for p in pages for u in p] == [f"anna{i:03d}" for i in range(60)]  # type: ignore[attr-defined]


def test_service_prefix_search(iam: Iam, admin: Initiator) -> None:
    for n in ("carol", "carla", "Carl", "dave"):
        iam.identity.add_user(admin, n)
    assert [v.username for v in iam.identity.list_users("PRIMARY", prefix="car").items] == \
        ["carla", "carol"]


def test_service_prefix_search_case_insensitive_primary(iam: Iam, admin: Initiator) -> None:
    iam.save_userstore(admin, "PRIMARY", "sql", {"case_insensitive_usernames": True})
    for n in ("carol", "Carla", "dave"):
        iam.identity.add_user(admin, n)
    assert [v.username for v in iam.identity.list_users("PRIMARY", prefix="CAR").items] == \
        ["Carla", "carol"]
    assert iam.identity.get_user("CAROL").username == "carol"
    with pytest.raises(AlreadyExists):
        iam.identity.add_user(admin, "DAVE")


# ---------------------------------------------------------------- attribute search
def test_exact_attribute_search(iam: Iam) -> None:
    store = primary(iam)
    store.add_users([new("alice", mail="alice@example.com", givenName="Alice"),
                     new("alicia", mail="alice@example.com.au"),
                     new("bob", mail="Alice@example.com")])
    assert names(store.list_users(10, attribute=("mail", "alice@example.com")).items) == \
        ["alice"]
    assert names(store.list_users(10, attribute=("mail", "alice@")).items) == []
    assert names(store.list_users(10, attribute=("givenName", "alice@example.com")).items) == []
    found = store.list_users(10, attribute=("mail", "Alice@example.com")).items
    assert names(found) == ["bob"] and found[0].attributes == {"mail": "Alice@example.com"}


def test_attribute_search_pages_over_many_matches(iam: Iam) -> None:
    store = primary(iam)
    store.add_users([new(f"sam{i:03d}", givenName="Sam" if i % 2 else "Max")
                     for i in range(240)])
    pages = walk(lambda c: store.list_users(50, c, attribute=("givenName", "Sam")))
    got = [u.username for p in pages for u in p]  # type: ignore[attr-defined]
    assert got == [f"sam{i:03d}" for i in range(1, 240, 2)]
    assert [len(p) for p in pages] == [50, 50, 20]


def test_service_claim_search(iam: Iam, admin: Initiator) -> None:
    iam.identity.add_user(admin, "erin", claims={"emailaddress": "erin@example.com"})
    iam.identity.add_user(admin, "frank", claims={"emailaddress": "frank@example.com"})
    page = iam.identity.list_users("PRIMARY", claim=("emailaddress", "erin@example.com"))
    assert [v.username for v in page.items] == ["erin"] and page.next_cursor is None
    assert page.items[0].claims[EMAIL] == "erin@example.com"
    by_uri = iam.identity.list_users("PRIMARY", claim=(EMAIL, "frank@example.com"))
    assert [v.username for v in by_uri.items] == ["frank"]
    by_name = iam.identity.list_users("PRIMARY", claim=("username", "frank"))
    assert [v.username for v in by_name.items] == ["frank"]
    with pytest.raises(InvalidInput, match="unknown claim"):
        iam.identity.list_users("PRIMARY", claim=("shoe-size", "44"))


# ---------------------------------------------------------------- cursors
def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize("cursor", ["not a cursor!", "%%%", cursor_of("g:alice"),
                                    base64.urlsafe_b64encode(b"\xff\xfe").decode()])
def test_bad_cursor_is_invalid_input(iam: Iam, cursor: str) -> None:
    store = primary(iam)
    store.add_users([new("alice"), new("bob", mail="b@example.com")])
    with pytest.raises(InvalidInput, match="cursor"):
        store.list_users(10, cursor)
    with pytest.raises(InvalidInput, match="cursor"):
        store.list_users(10, cursor, attribute=("mail", "b@example.com"))
    with pytest.raises(InvalidInput, match="cursor"):
        iam.identity.list_users("PRIMARY", cursor=cursor)


def test_attribute_cursor_that_is_not_a_position_is_invalid_input(iam: Iam) -> None:
    store = primary(iam)
    store.add_users([new("bob", mail="b@example.com")])
    with pytest.raises(InvalidInput, match="cursor"):
        store.list_users(10, cursor_of("p:bob"), attribute=("mail", "b@example.com"))


def test_cursor_of_a_user_listing_does_not_page_groups(iam: Iam) -> None:
    store = primary(iam)
    store.add_users([new(f"user{i}") for i in range(3)])
    cursor = store.list_users(1).next_cursor
    assert cursor is not None
    with pytest.raises(InvalidInput, match="another listing"):
        store.list_groups(10, cursor)


# ---------------------------------------------------------------- groups and membership
def test_groups_and_membership_both_ways(iam: Iam) -> None:
    store = primary(iam)
    a, b, c = store.add_users([new("ann"), new("ben"), new("cat")])
    eng = store.add_group("engineering", [a.id, b.id])
    ops = store.add_group("ops", [b.id])
    assert names(store.members_of(eng.id, 10).items) == ["ann", "ben"]
    assert [g.name for g in store.groups_of(b.id)] == ["engineering", "ops"]
    assert store.groups_of(c.id) == []
    store.update_members(ops.id, add=[c.id, c.id, b.id], remove=[])  # idempotent adds
    assert names(store.members_of(ops.id, 10).items) == ["ben", "cat"]
    store.update_members(ops.id, remove=[b.id])
    assert [g.name for g in store.groups_of(b.id)] == ["engineering"]
    assert store.get_group_by_name("ops") == store.get_group(ops.id)
    with pytest.raises(AlreadyExists):
        store.add_group("ops")
    renamed = store.rename_group(ops.id, "operations")
    assert renamed.id == ops.id and store.get_group_by_name("ops") is None
    with pytest.raises(AlreadyExists):
        store.rename_group(ops.id, "engineering")
    store.delete_group(eng.id)
    assert store.get_group(eng.id) is None
    assert [g.name for g in store.groups_of(a.id)] == []
    with pytest.raises(NotFound):
        store.members_of(eng.id, 10)


def test_batched_reads_answer_what_one_by_one_reads_do(iam: Iam) -> None:
    store, other = primary(iam), side_store(iam, "SIDE")
    a, b, c = store.add_users([new("ann", emailaddress="ann@example.com"), new("ben"),
                               new("cat")])
    (stranger,) = other.add_users([new("dan")])
    store.add_group("ops", [b.id, a.id])
    store.add_group("eng", [b.id])
    other.add_group("side-group", [stranger.id])
    missing = str(uuid.uuid4())
    ids = [c.id, a.id, missing, stranger.id, b.id, a.id]  # unknown, other store, repeated

    users = store.get_users(ids)
    assert users == {u.id: store.get_user(u.id) for u in (a, b, c)}
    assert users[a.id].attributes == {"emailaddress": "ann@example.com"}
    groups = store.groups_of_users(ids)
    assert groups == {a.id: store.groups_of(a.id), b.id: store.groups_of(b.id), c.id: [],
                      missing: [], stranger.id: []}
    assert [g.name for g in groups[b.id]] == ["eng", "ops"]  # name order, as groups_of
    assert store.get_users([]) == {} and store.groups_of_users([]) == {}


def test_batched_reads_are_not_limited_by_the_parameters_of_one_query(iam: Iam) -> None:
    store = primary(iam)
    users = store.add_users([new(f"u{i:04d}") for i in range(1203)])
    group = store.add_group("all", [u.id for u in users])
    ids = [u.id for u in users]
    assert store.get_users(ids).keys() == set(ids)
    assert {k: [g.id for g in v] for k, v in store.groups_of_users(ids).items()} == {
        i: [group.id] for i in ids}


def test_identity_service_reads_users_and_roles_of_many_ids(iam: Iam) -> None:
    admin = Initiator.admin()
    ann = iam.identity.add_user(admin, "ann", None, {"emailaddress": "ann@example.com"})
    ben = iam.identity.add_user(admin, "ben")
    iam.identity.add_role(admin, "PRIMARY/ops", ["ann"])
    iam.identity.add_role(admin, "Internal/auditors", ["ann", "ben"])
    missing = str(uuid.uuid4())

    views = iam.identity.get_users_by_id("PRIMARY", [ann.id, missing, ben.id])
    assert views == {ann.id: iam.identity.get_user_by_id("PRIMARY", ann.id),
                     ben.id: iam.identity.get_user_by_id("PRIMARY", ben.id)}
    assert views[ann.id].claims[EMAIL] == "ann@example.com"
    assert iam.identity.roles_of_ids("PRIMARY", [ann.id, ben.id, missing]) == {
        ann.id: iam.identity.roles_of_id("PRIMARY", ann.id),
        ben.id: ["Internal/auditors"], missing: []}
    assert iam.identity.roles_of_ids("PRIMARY", [ann.id])[ann.id] == [
        "PRIMARY/ops", "Internal/auditors"]


def test_group_listing_pages_and_prefix(iam: Iam) -> None:
    store = primary(iam)
    for i in range(23):
        store.add_group(f"team-{i:02d}")
    store.add_group("staff")
    pages = walk(lambda c: store.list_groups(10, c, prefix="team-"))
    assert [len(p) for p in pages] == [10, 10, 3]
    assert [g.name for p in pages for g in p] == [f"team-{i:02d}" for i in range(23)]  # type: ignore[attr-defined]


def test_members_paging(iam: Iam) -> None:
    store = primary(iam)
    users = store.add_users([new(f"m{i:03d}") for i in range(123)] + [new("outsider")])
    group = store.add_group("big", [u.id for u in users[:123]])
    pages = walk(lambda c: store.members_of(group.id, 50, c))
    assert [len(p) for p in pages] == [50, 50, 23]
    assert [u.username for p in pages for u in p] == [f"m{i:03d}" for i in range(123)]  # type: ignore[attr-defined]


def test_update_members_with_an_unknown_id_changes_nothing(iam: Iam) -> None:
    store = primary(iam)
    a, b = store.add_users([new("ann"), new("ben")])
    group = store.add_group("team", [a.id])
    with pytest.raises(NotFound, match="not users of PRIMARY"):
        store.update_members(group.id, add=[b.id, "no-such-id"], remove=[a.id])
    assert names(store.members_of(group.id, 10).items) == ["ann"]
    with pytest.raises(NotFound):
        store.update_members("no-such-group", add=[a.id])
    other = side_store(iam, "OTHER")
    (stranger,) = other.add_users([new("stranger")])
    with pytest.raises(NotFound):  # a user of another store is not a member candidate
        store.update_members(group.id, add=[stranger.id])
    assert names(store.members_of(group.id, 10).items) == ["ann"]


def test_delete_user_removes_memberships_and_attributes(iam: Iam) -> None:
    store = primary(iam)
    a, b = store.add_users([new("ann", mail="ann@example.com"), new("ben")])
    g1 = store.add_group("one", [a.id, b.id])
    g2 = store.add_group("two", [a.id])
    store.delete_user(a.id)
    assert store.get_user(a.id) is None
    assert names(store.members_of(g1.id, 10).items) == ["ben"]
    assert store.members_of(g2.id, 10).items == []
    with iam.db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(um_memberships)).scalar() == 1
        assert conn.execute(select(func.count()).select_from(um_user_attributes)).scalar() == 0
    with pytest.raises(NotFound):
        store.delete_user(a.id)


def test_service_roles_of_a_store(iam: Iam, admin: Initiator) -> None:
    svc = iam.identity
    for n in ("ann", "ben"):
        svc.add_user(admin, n)
    svc.add_role(admin, "PRIMARY/devs", ["ann"])
    assert svc.assign(admin, "devs", ["ben", "ann"]) == ["PRIMARY/ben"]
    assert [v.username for v in svc.members_of("devs")] == ["ann", "ben"]
    assert svc.roles_of("ben") == ["PRIMARY/devs"]
    assert svc.unassign(admin, "devs", ["ann"]) == ["PRIMARY/ann"]
    svc.delete_user(admin, "ben")
    assert svc.members_of("devs") == []


# ---------------------------------------------------------------- attributes and passwords
def test_update_attributes_and_passwords(iam: Iam) -> None:
    store = primary(iam)
    (user,) = store.add_users([new("ann", "Passw0rd-one", mail="a@example.com", sn="A",
                                   title="Pilot")])
    updated = store.update_attributes(user.id, {"mail": "ann@example.com", "givenName": "Ann"},
                                      ["sn"])
    assert updated.attributes == {"mail": "ann@example.com", "givenName": "Ann",
                                  "title": "Pilot"}
    assert updated == store.get_user(user.id)  # the answer is the state as stored
    assert updated.modified is not None and user.modified is not None
    assert updated.modified > user.modified
    assert store.verify_password("ann", "Passw0rd-one") == store.get_user(user.id)
    assert store.verify_password("ann", "wrong-password") is None
    assert store.verify_password("nobody", "Passw0rd-one") is None
    store.set_password(user.id, "Passw0rd-two")
    assert store.verify_password("ann", "Passw0rd-one") is None
    assert store.verify_password("ann", "Passw0rd-two") is not None
    with pytest.raises(NotFound):
        store.update_attributes("no-such-id", {"mail": "x"})


def stored_hash(iam: Iam, username: str) -> str:
    with iam.db.engine.connect() as conn:
        return conn.execute(select(um_users.c.password_hash)
                            .where(um_users.c.username == username)).scalar_one()


def test_verification_rehashes_when_the_argon2_parameters_changed(iam: Iam) -> None:
    primary(iam).add_users([new("ann", "Passw0rd-one")])
    old = stored_hash(iam, "ann")
    assert "m=1024,t=1,p=1" in old
    assert primary(iam).verify_password("ann", "Passw0rd-one") is not None
    assert stored_hash(iam, "ann") == old  # same parameters: nothing to upgrade
    stronger = PasswordHashing(Argon2Params(time_cost=2, memory_cost=2048, parallelism=1))
    upgraded_store = SqlUserStore("PRIMARY", iam.db.engine, stronger)
    assert upgraded_store.verify_password("ann", "wrong-password") is None
    assert stored_hash(iam, "ann") == old  # a wrong password upgrades nothing
    assert upgraded_store.verify_password("ann", "Passw0rd-one") is not None
    upgraded = stored_hash(iam, "ann")
    assert "m=2048,t=2,p=1" in upgraded and not stronger.needs_rehash(upgraded)
    assert upgraded_store.verify_password("ann", "Passw0rd-one") is not None
    assert stored_hash(iam, "ann") == upgraded
    read_only = SqlUserStore("PRIMARY", iam.db.engine, iam.hashing, read_only=True)
    assert read_only.verify_password("ann", "Passw0rd-one") is not None
    assert stored_hash(iam, "ann") == upgraded  # a read-only store writes nothing


def test_batch_passwords_each_belong_to_their_user(iam: Iam) -> None:
    store = primary(iam)
    users = [new(f"pw{i}", f"Secret-{i:02d}x" if i % 3 else None) for i in range(8)]
    store.add_users(users)
    for i in range(8):
        if i % 3:
            assert store.verify_password(f"pw{i}", f"Secret-{i:02d}x") is not None
            assert store.verify_password(f"pw{i}", f"Secret-{(i + 1) % 8:02d}x") is None
        else:
            assert store.verify_password(f"pw{i}", "") is None


def test_user_ids_are_distinct_version_4_uuids(sqlite_iam: Iam) -> None:
    users = primary(sqlite_iam).add_users([new(f"user{i:03d}") for i in range(300)])
    ids = [uuid.UUID(u.id) for u in users]
    assert all(i.version == 4 and i.variant == uuid.RFC_4122 for i in ids)
    assert [str(i) for i in ids] == [u.id for u in users]  # canonical lower-case text
    assert len(set(ids)) == 300


# ---------------------------------------------------------------- batches
def test_batch_with_a_duplicate_inside_writes_nothing(iam: Iam) -> None:
    store = primary(iam)
    with pytest.raises(AlreadyExists, match="PRIMARY/ann appears twice"):
        store.add_users([new("ann"), new("ben"), new("ann", mail="other@example.com")])
    assert store.count_users() == 0


def test_batch_with_a_case_duplicate_in_a_case_insensitive_store(iam: Iam) -> None:
    store = side_store(iam, "CI", case_insensitive_usernames=True)
    with pytest.raises(AlreadyExists, match="CI/ANN appears twice"):
        store.add_users([new("ann"), new("ANN")])
    assert store.count_users() == 0
    store.add_users([new("ann"), new("ANN2")])
    with pytest.raises(AlreadyExists, match="CI/ann already exists"):
        store.add_users([new("zed"), new("Ann")])
    assert names(store.list_users(10).items) == ["ann", "ANN2"]


def test_a_user_with_its_groups_in_one_read(iam: Iam) -> None:
    """``get_user_with_groups`` answers what ``get_user`` and ``groups_of`` answer, groups
    in name order; a user without attributes or groups, an unknown id, and a user of
    another store in the same tables."""
    store, other = primary(iam), side_store(iam, "OTHER")
    ann, bare = store.add_users([new("ann", mail="a@example.com", sn="A"), new("bare")])
    zed = store.add_group("zeta", [ann.id])
    store.add_group("alpha", [ann.id])
    store.add_group("empty")
    found = store.get_user_with_groups(ann.id)
    assert found is not None
    assert found == (store.get_user(ann.id), store.groups_of(ann.id))
    assert [g.name for g in found[1]] == ["alpha", "zeta"] and found[1][1] == \
        store.get_group(zed.id)
    assert store.get_user_with_groups(bare.id) == (store.get_user(bare.id), [])
    assert store.get_user_with_groups("no-such-id") is None
    assert other.get_user_with_groups(ann.id) is None


def test_a_search_page_reads_its_users_with_their_attributes(iam: Iam) -> None:
    """A search answers each user of its page with its own attributes (none for a user
    without), in the page's order, past an offset and in a sorted search; on PostgreSQL
    the page and the attributes are one statement."""
    store = primary(iam)
    store.add_users([new("cat", mail="c@example.com", sn="C"), new("bare"),
                     new("ann", mail="a@example.com"), new("bob", sn="B", title="x")])
    every = {u.username: u for u in store.list_users(10).items}
    with statements(iam) as sent:
        by_name = store.search_users(q.TRUE, 1, 2, q.Sort(q.NAME))
        reversed_ = store.search_users(q.TRUE, 0, 10, q.Sort(q.NAME, descending=True))
        one = store.search_users(q.Compare(q.NAME, q.Op.EQ, "bare"), 0, 10)
    assert names(by_name.items) == ["bare", "bob"] and by_name.total == 4
    assert names(reversed_.items) == ["cat", "bob", "bare", "ann"]
    assert all(u == every[u.username] for u in [*by_name.items, *reversed_.items])
    assert one.items == [every["bare"]] and one.items[0].attributes == {}
    if iam.db.dialect == "postgresql":  # the page and a count (a full page) / the page alone
        assert len(sent) == 4


def test_a_search_page_carries_its_users_groups_on_postgresql(iam: Iam) -> None:
    """On PostgreSQL a search reads each user's groups with the page, in the same one
    statement: the page's ``groups`` are what ``groups_of_users`` answers (name order,
    none for a user in no group). Elsewhere the page has none and they are asked for."""
    store = primary(iam)
    ann, bare, bob = store.add_users([new("ann", mail="a@example.com"), new("bare"),
                                      new("bob")])
    zeta = store.add_group("zeta", [ann.id, bob.id])
    store.add_group("alpha", [ann.id])
    store.rename_group(zeta.id, "omega")
    with statements(iam) as sent:
        page = store.search_users(q.TRUE, 0, 10, q.Sort(q.NAME))
    assert names(page.items) == ["ann", "bare", "bob"]
    if iam.db.dialect != "postgresql":
        assert page.groups is None
        return
    assert len(sent) == 1
    assert page.groups == store.groups_of_users([ann.id, bare.id, bob.id])
    assert page.groups is not None
    assert [g.name for g in page.groups[ann.id]] == ["alpha", "omega"]
    assert page.groups[bare.id] == [] and page.groups[bob.id] == [store.get_group(zeta.id)]


def test_one_user_with_a_taken_name_in_a_transaction_that_goes_on(iam: Iam) -> None:
    """One user's insert skips a taken name itself (SQLite, PostgreSQL): refused with the
    stored spelling, and the transaction it ran in is still usable (PostgreSQL aborts a
    transaction on a failed statement); the same name in another store is no conflict."""
    store = side_store(iam, "CI", case_insensitive_usernames=True)
    other = side_store(iam, "OTHER")
    store.add_users([new("Ann", mail="ann@example.com")])
    with iam.db.transaction():
        with pytest.raises(AlreadyExists, match="CI/Ann already exists"):
            store.add_user(new("ANN", mail="other@example.com"))
        ben = store.add_user(new("ben", title="Dr", sn="Bell"))
        ann = other.add_user(new("ann"))
    assert names(store.list_users(10).items) == ["Ann", "ben"]
    assert store.get_user_by_name("ann").attributes == {"mail": "ann@example.com"}
    assert store.get_user(ben.id).attributes == {"title": "Dr", "sn": "Bell"}  # type: ignore[union-attr]
    assert other.get_user(ann.id) is not None


def test_set_attributes_replace_values_and_removed_go(iam: Iam) -> None:
    store = primary(iam)
    user = store.add_user(new("dora", mail="d@example.com", sn="Old", title="x"))
    updated = store.update_attributes(user.id, {"sn": "New", "givenName": "Dora"}, ["title"])
    stored = store.get_user(user.id)
    assert stored is not None
    assert updated.attributes == stored.attributes == {
        "mail": "d@example.com", "sn": "New", "givenName": "Dora"}
    with iam.db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(um_user_attributes)).scalar() == 3


def test_an_update_answers_a_change_another_writer_made_since_the_read(iam: Iam) -> None:
    """A user read, then changed by another process, then updated on the connection that
    read it: the update answers the other change too (what a connection read last is
    trusted only while the user's row is unchanged), and one with nothing in between
    answers as the read and its own change make it."""
    store = primary(iam)
    user = store.add_user(new("erin", mail="e@example.com", sn="E"))
    elsewhere = make_engine(iam.db.engine.url.render_as_string(hide_password=False))
    other = SqlUserStore("PRIMARY", elsewhere, iam.hashing, Policies())
    kept = iam.db.connect()
    try:
        with iam.db.transaction(on=kept):
            assert store.get_user(user.id) is not None
        other.update_attributes(user.id, {"sn": "Other"}, ["mail"])
        with iam.db.transaction(on=kept):
            updated = store.update_attributes(user.id, {"givenName": "Erin"})
        assert updated.attributes == {"sn": "Other", "givenName": "Erin"}
        with iam.db.transaction(on=kept):
            read = store.get_user(user.id)
            updated = store.update_attributes(user.id, {"title": "Dr"})
        assert read is not None and updated.modified > read.modified
        assert updated.attributes == store.get_user(user.id).attributes == {  # type: ignore[union-attr]
            "sn": "Other", "givenName": "Erin", "title": "Dr"}
        with iam.db.transaction(on=kept):  # a value set and one removed after the read
            assert store.get_user(user.id) is not None
            updated = store.update_attributes(user.id, {"sn": "Last"}, ["title"])
        assert updated.attributes == store.get_user(user.id).attributes == {  # type: ignore[union-attr]
            "sn": "Last", "givenName": "Erin"}
    finally:
        kept.close()
        elsewhere.dispose()


def test_batch_with_an_existing_name_writes_nothing(iam: Iam) -> None:
    store = primary(iam)
    store.add_users([new("carol")])
    with pytest.raises(AlreadyExists, match="PRIMARY/carol already exists"):
        store.add_users([new("dave", mail="d@example.com"), new("carol")])
    assert names(store.list_users(10).items) == ["carol"]
    assert store.get_user_by_name("dave") is None


def test_same_name_in_two_stores_is_fine(iam: Iam) -> None:
    primary(iam).add_users([new("ann")])
    side_store(iam, "OTHER").add_users([new("ann")])
    assert primary(iam).count_users() == 1


# ---------------------------------------------------------------- read-only, health
def test_service_refuses_writes_to_a_read_only_primary(iam: Iam, admin: Initiator) -> None:
    iam.identity.add_user(admin, "ann")
    iam.save_userstore(admin, "PRIMARY", "sql", {"read_only": True})
    with pytest.raises(ReadOnlyStore):
        iam.identity.add_user(admin, "ben")
    with pytest.raises(ReadOnlyStore):
        iam.identity.delete_user(admin, "ann")
    report = iam.identity.import_users(admin, [ImportRow(2, "carl")])
    assert report.imported == 0 and report.errors == [(2, "userstore PRIMARY is read-only")]
    assert [v.username for v in iam.identity.list_users("PRIMARY").items] == ["ann"]


def test_health_and_calls_of_an_unreachable_store(iam: Iam) -> None:
    engine = make_engine("postgresql://user:topsecret@127.0.0.1:1/x")
    try:
        store = SqlUserStore("REMOTE", engine, iam.hashing)
        health = store.health()
        assert not health.reachable and health.detail.startswith("unreachable")
        assert "topsecret" not in health.detail and "\n" not in health.detail
        with pytest.raises(StoreUnavailable, match="userstore REMOTE is unreachable") as exc:
            store.get_user_by_name("ann")
        assert "topsecret" not in str(exc.value)
    finally:
        engine.dispose()


# ---------------------------------------------------------------- bulk import (service)
def test_import_reports_bad_rows_and_imports_the_rest(iam: Iam, admin: Initiator) -> None:
    iam.identity.add_user(admin, "taken")
    rows = [
        ImportRow(2, "ann", claims={"emailaddress": "ann@example.com"}),
        ImportRow(3, "x"),                                        # policy
        ImportRow(4, "ben", claims={"emailaddress": "not-mail"}),  # claim pattern
        ImportRow(5, "taken"),                                    # exists: found in the batch
        ImportRow(6, "ann"),                                      # twice in the file
        ImportRow(7, "cat", claims={"shoe": "44"}),               # unknown claim
        ImportRow(8, "dan", roles=["PRIMARY/nosuchrole"]),
        ImportRow(9, "eve", claims={"givenname": "Eve"}),
    ]
    report = iam.identity.import_users(admin, rows, batch_size=3)
    assert report.imported == 2
    assert sorted(line for line, _ in report.errors) == [3, 4, 6, 7, 8]
    assert report.skipped == [5]  # exists already: skipped, not refused
    assert "more than once in the file (first at line 2)" in dict(report.errors)[6]
    assert [v.username for v in iam.identity.list_users("PRIMARY").items] == \
        ["ann", "eve", "taken"]
    audits = iam.audit_log(action="user.add")
    assert sorted(e.target for e in audits) == ["PRIMARY/ann", "PRIMARY/eve", "PRIMARY/taken"]
    eve = next(e for e in audits if e.target == "PRIMARY/eve")
    assert eve.detail == {"claims": [GIVEN], "import": True}


def test_import_events_only_when_someone_listens_and_then_one_per_user(
        iam: Iam, admin: Initiator) -> None:
    iam.identity.add_role(admin, "PRIMARY/staff")
    pre: list[IdentityEvent] = []
    post: list[IdentityEvent] = []
    committed: list[IdentityEvent] = []
    iam.bus.subscribe(Phase.PRE, pre.append)
    iam.bus.subscribe(Phase.POST, post.append)
    iam.bus.subscribe(Phase.COMMITTED, committed.append)
    rows = [ImportRow(i + 2, f"user{i}", "Passw0rd-x" if i == 0 else None,
                      {"emailaddress": f"u{i}@example.com", "givenname": "G"},
                      ["PRIMARY/staff"] if i < 2 else []) for i in range(5)]
    report = iam.identity.import_users(admin, rows, batch_size=2)
    assert report.imported == 5 and report.errors == []
    assert [e.name for e in post] == [f"PRIMARY/user{i}" for i in range(5)]
    assert [e.name for e in pre] == [e.name for e in post] == [e.name for e in committed]
    assert all(e.entity_id == "" for e in pre) and all(e.entity_id for e in post)
    assert post[0].data == {"claims": {EMAIL: "u0@example.com", GIVEN: "G"},
                            "roles": ["PRIMARY/staff"]}
    assert post[0].secret == "Passw0rd-x" and post[1].secret is None
    assert post[3].data["roles"] == []
    assert post[0].data["claims"] is not post[1].data["claims"]
    assert [v.username for v in iam.identity.members_of("staff")] == ["user0", "user1"]
    assert len(iam.audit_log(action="user.add")) == 5


def test_a_subscriber_of_some_event_types_gets_only_those(sqlite_iam: Iam,
                                                          admin: Initiator) -> None:
    """The planner's veto wants irreversible changes only, so an import builds no PRE
    event for it; a subscriber named for a type gets that type and no other."""
    iam = sqlite_iam
    assert not iam.bus.has_subscribers(Phase.PRE, EventType.USER_ADDED)
    assert iam.bus.has_subscribers(Phase.PRE, EventType.USER_DELETED)
    deletions: list[IdentityEvent] = []
    iam.bus.subscribe(Phase.PRE, deletions.append, types={EventType.USER_DELETED})
    assert not iam.bus.has_subscribers(Phase.PRE, EventType.USER_ADDED)
    report = iam.identity.import_users(admin, [ImportRow(2, "ann"), ImportRow(3, "bob")])
    assert report.imported == 2
    iam.identity.delete_user(admin, "bob")
    assert [(e.type, e.name) for e in deletions] == [(EventType.USER_DELETED, "PRIMARY/bob")]


def test_a_post_veto_fails_only_the_refused_rows(iam: Iam, admin: Initiator) -> None:
    def veto(ev: IdentityEvent) -> None:
        if ev.name == "PRIMARY/bad":
            raise OperationRefused("no bad users")

    iam.bus.subscribe(Phase.POST, veto)
    rows = [ImportRow(2, "good1"), ImportRow(3, "bad"), ImportRow(4, "good2")]
    report = iam.identity.import_users(admin, rows)
    assert report.imported == 2 and report.errors == [(3, "no bad users")]
    assert [v.username for v in iam.identity.list_users("PRIMARY").items] == ["good1", "good2"]
    assert len(iam.audit_log(action="user.add")) == 2


def test_import_with_passwords_commits_in_small_batches(sqlite_iam: Iam,
                                                        admin: Initiator) -> None:
    steps: list[int] = []
    count = PASSWORD_BATCH + 6
    rows = [ImportRow(i + 2, f"user{i:03d}", f"Passw0rd-{i:03d}") for i in range(count)]
    report = sqlite_iam.identity.import_users(admin, rows, progress=steps.append)
    assert report.imported == count
    assert steps == [PASSWORD_BATCH, 6]
    assert sqlite_iam.identity.verify_password("user007", "Passw0rd-007") is not None
    assert sqlite_iam.identity.verify_password("user007", "Passw0rd-008") is None


def test_import_hashes_with_the_deployment_argon2_parameters(tmp_path: Path) -> None:
    with Iam.open(home=str(tmp_path / "home"), argon2=FAST_ARGON2) as iam:
        iam.identity.import_users(Initiator.admin(), [ImportRow(2, "ann", "Passw0rd-ann")])
        with iam.db.engine.connect() as conn:
            hashed = conn.execute(select(um_users.c.password_hash)).scalar_one()
    assert hashed.startswith("$argon2id$") and "m=1024,t=1,p=1" in hashed


def test_import_leaves_the_garbage_collector_as_it_found_it(sqlite_iam: Iam,
                                                           admin: Initiator) -> None:
    assert gc.isenabled()
    sqlite_iam.identity.import_users(admin, [ImportRow(2, "ann")])
    assert gc.isenabled()
    gc.disable()
    try:
        sqlite_iam.identity.import_users(admin, [ImportRow(3, "ben"), ImportRow(4, "x")])
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert sqlite_iam.identity.count_users("PRIMARY") == 2


def test_an_import_leaves_postgresql_planning_lookups_by_name_with_their_index(
        iam: Iam, admin: Initiator) -> None:
    """A bulk load refreshes PostgreSQL's statistics of the user tables: without them (a
    new table, autovacuum off or not yet round) the planner may answer a lookup by name
    from the ``(store, modified)`` index, reading every user of the store each time."""
    report = iam.identity.import_users(admin, [ImportRow(i + 2, f"user{i:04d}")
                                               for i in range(1000)])
    assert report.imported == 1000
    assert [u.username for u in primary(iam).search_users(
        q.Compare(q.NAME, q.Op.EQ, "user0123"), 0, 10).items] == ["user0123"]
    if iam.db.dialect != "postgresql":
        return
    with iam.db.engine.connect() as conn:
        counted = conn.execute(select(text("reltuples")).select_from(text("pg_class"))
                               .where(text("oid = 'um_users'::regclass"))).scalar_one()
        plan = conn.exec_driver_sql(
            "EXPLAIN SELECT pk FROM um_users WHERE store = 'PRIMARY' "
            "AND username_key = 'user0123'").scalars().all()
    assert counted == 1000
    assert "uq_um_users_store_username_key" in plan[0], plan
