"""Store queries on the directory store (``search_users``/``search_groups``), against the
session's real slapd (``tests/ldap_server.py``), each test in a subtree of its own."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from core.errors import InvalidInput
from core.userstores import ldap as ldap_module
from core.userstores.base import NewUser, StoredUser
from core.userstores.ldap import LdapUserStore
from core.userstores.query import (
    CREATED,
    ID,
    MEMBER,
    MODIFIED,
    NAME,
    TRUE,
    And,
    Compare,
    Not,
    Op,
    Or,
    Query,
    Sort,
    attribute,
)
from tests.ldap_server import LIMIT, LIMITED_DN, LdapTree, Slapd
from tests.test_ldap_store import INJECTIONS, make_store, names

pytestmark = pytest.mark.server

MAIL = attribute("mail")


@pytest.fixture
def store_of(slapd_server: Slapd, ldap_tree: LdapTree
             ) -> Iterator[Callable[..., LdapUserStore]]:
    opened: list[LdapUserStore] = []

    def make(**overrides: Any) -> LdapUserStore:
        opened.append(make_store(slapd_server, ldap_tree, **overrides))
        return opened[-1]

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def store(store_of: Callable[..., LdapUserStore]) -> LdapUserStore:
    return store_of()


def new(name: str, **attributes: str) -> NewUser:
    return NewUser(name, None, attributes)


def found(store: LdapUserStore, query: Query) -> list[str]:
    page = store.search_users(query, 0, 100)
    assert page.total == len(page.items)
    return sorted(names(page.items))


@pytest.fixture
def people(store: LdapUserStore) -> list[StoredUser]:
    return store.add_users([new("ann", mail="ann@x.org", givenName="Ann"),
                            new("bob", mail="bob@x.org"), new("cid"),
                            new("dee", mail="Dee@Y.org", givenName="Dee")])


# ---------------------------------------------------------------- operators
@pytest.mark.parametrize(("query", "expected"), [
    (Compare(MAIL, Op.EQ, "ann@x.org"), ["ann"]),
    (Compare(MAIL, Op.EQ, "ANN@X.ORG"), ["ann"]),  # mail's matching rule ignores case
    (Compare(MAIL, Op.NE, "ann@x.org"), ["bob", "cid", "dee"]),  # absent counts as other
    (Compare(MAIL, Op.CO, "@x."), ["ann", "bob"]),
    (Compare(MAIL, Op.SW, "d"), ["dee"]),
    (Compare(MAIL, Op.EW, "y.ORG"), ["dee"]),
    (Compare(MAIL, Op.PR), ["ann", "bob", "dee"]),
    (Compare(MAIL, Op.CO, ""), ["ann", "bob", "dee"]),
    (Compare(NAME, Op.EQ, "BOB"), ["bob"]),
    (Compare(NAME, Op.NE, "bob"), ["ann", "cid", "dee"]),
    (Compare(NAME, Op.SW, "c"), ["cid"]),
    (Compare(NAME, Op.EW, "e"), ["dee"]),
    (Compare(NAME, Op.CO, "n"), ["ann"]),
    (Compare(NAME, Op.PR), ["ann", "bob", "cid", "dee"]),
    (Compare(attribute("givenName"), Op.SW, "d"), ["dee"]),
    (Compare(attribute("GIVENNAME"), Op.EQ, "ann"), ["ann"]),  # names of any case
])
def test_every_operator_on_names_and_attributes(store: LdapUserStore, people: Any,
                                                query: Query, expected: list[str]) -> None:
    assert found(store, query) == expected


@pytest.mark.parametrize("op", [Op.GT, Op.GE, Op.LT, Op.LE])
def test_an_ordering_the_schema_lacks_matches_nothing_either_way(
        store: LdapUserStore, people: Any, op: Op) -> None:
    """OpenLDAP's mail and uid have no ordering rule: the comparison is undefined."""
    assert found(store, Compare(MAIL, op, "b")) == []
    assert found(store, Not(Compare(MAIL, op, "b"))) == []
    assert found(store, Compare(NAME, op, "b")) == []


def test_and_or_not(store: LdapUserStore, people: Any) -> None:
    assert found(store, And((Compare(MAIL, Op.PR), Compare(NAME, Op.NE, "ann")))) == [
        "bob", "dee"]
    assert found(store, Or((Compare(NAME, Op.EQ, "cid"), Compare(MAIL, Op.EW, "y.org")))) == [
        "cid", "dee"]
    assert found(store, Not(Or((Compare(MAIL, Op.CO, "x.org"), Compare(NAME, Op.EQ, "cid"))))
                 ) == ["dee"]
    assert found(store, And((Compare(MAIL, Op.PR), Not(Compare(attribute("givenName"),
                                                               Op.PR))))) == ["bob"]
    assert found(store, TRUE) == ["ann", "bob", "cid", "dee"]
    assert found(store, Not(TRUE)) == []


def test_an_attribute_the_directory_does_not_know_matches_nothing(
        store: LdapUserStore, people: Any) -> None:
    assert found(store, Compare(attribute("noSuchAttribute"), Op.EQ, "x")) == []
    assert found(store, Compare(attribute("noSuchAttribute"), Op.PR)) == []


def test_ids_by_equality(store: LdapUserStore, people: list[StoredUser]) -> None:
    ann, bob = people[0], people[1]
    assert found(store, Compare(ID, Op.EQ, ann.id)) == ["ann"]
    assert found(store, Compare(ID, Op.EQ, ann.id.upper())) == ["ann"]
    assert found(store, Compare(ID, Op.NE, ann.id)) == ["bob", "cid", "dee"]
    assert found(store, Or((Compare(ID, Op.EQ, ann.id), Compare(ID, Op.EQ, bob.id)))) == [
        "ann", "bob"]
    assert found(store, Compare(ID, Op.EQ, str(uuid.uuid4()))) == []
    assert found(store, Compare(ID, Op.EQ, "not-a-uuid")) == []
    assert found(store, Compare(ID, Op.PR)) == ["ann", "bob", "cid", "dee"]
    with pytest.raises(InvalidInput, match="userstore X: ids can only be compared with eq"):
        store.search_users(Compare(ID, Op.SW, ann.id[:4]), 0, 10)


# ---------------------------------------------------------------- times
def _next_second() -> None:
    """Directories keep whole seconds: wait until the clock shows another."""
    now = time.time()
    time.sleep(1.05 - (now - int(now)))


def test_modified_and_created_compare_as_directory_times(store: LdapUserStore) -> None:
    old, other = store.add_users([new("old"), new("other")])
    _next_second()
    store.update_attributes(old.id, {"mail": "old@x.org"})
    changed = store.get_user(old.id)
    assert changed is not None and changed.modified is not None
    assert other.modified is not None and changed.modified > other.modified
    assert found(store, Compare(MODIFIED, Op.GT, other.modified)) == ["old"]
    assert found(store, Compare(MODIFIED, Op.GE, other.modified)) == ["old", "other"]
    assert found(store, Compare(MODIFIED, Op.LT, changed.modified)) == ["other"]
    assert found(store, Compare(MODIFIED, Op.LE, changed.modified)) == ["old", "other"]
    assert found(store, Compare(MODIFIED, Op.EQ, changed.modified)) == ["old"]
    assert found(store, Compare(MODIFIED, Op.NE, changed.modified)) == ["other"]
    assert found(store, Compare(MODIFIED, Op.PR)) == ["old", "other"]
    # a fraction of a second: rounded so that the answer stays exact
    half = other.modified + timedelta(milliseconds=500)
    assert found(store, Compare(MODIFIED, Op.GT, half)) == ["old"]
    assert found(store, Compare(MODIFIED, Op.LT, half)) == ["other"]
    assert found(store, Compare(MODIFIED, Op.EQ, half)) == []
    by_modified = store.search_users(TRUE, 0, 10, Sort(MODIFIED))  # not the directory's order
    assert names(by_modified.items) == ["other", "old"]
    assert names(store.search_users(TRUE, 0, 10, Sort(MODIFIED, True)).items) == [
        "old", "other"]
    assert changed.created is not None
    assert found(store, Compare(CREATED, Op.GT, changed.created)) == []
    assert found(store, Compare(CREATED, Op.LE, changed.created)) == ["old", "other"]


# ---------------------------------------------------------------- paging
def test_a_search_that_stops_early_keeps_its_connection(
        store_of: Callable[..., LdapUserStore]) -> None:
    """A page ends its paged search (a page of size 0) and gives the connection back to
    the pool, instead of dropping it and binding a new one for the next request."""
    store = store_of(max_list_length=4)
    store.add_users([new(f"user{i:02d}") for i in range(12)])
    for _ in range(3):
        assert len(store.search_users(TRUE, 0, 2).items) == 2
        idle = [conn for conn, _ in store.dir._idle]
        assert len(idle) == 1 and not idle[0].closed
    every = [u for start in (0, 4, 8) for u in names(store.search_users(TRUE, start, 4).items)]
    assert sorted(every) == [f"user{i:02d}" for i in range(12)]  # the reused connection
    assert names(store.search_users(TRUE, 10, 4).items) == every[10:]  # pages on as before


def test_start_count_and_total_page_in_the_directory_order(
        store_of: Callable[..., LdapUserStore]) -> None:
    store = store_of(max_list_length=8)
    store.add_users([new(f"user{i:02d}") for i in range(25)])
    order = names(store.search_users(TRUE, 0, 8).items)
    assert order == names(store.list_users(8).items)
    every = [u for start in range(0, 25, 8) for u in names(
        store.search_users(TRUE, start, 8).items)]
    assert sorted(every) == [f"user{i:02d}" for i in range(25)] and every[:8] == order
    page = store.search_users(TRUE, 5, 3)
    assert page.total == 25 and names(page.items) == every[5:8]
    assert names(store.search_users(TRUE, 20, 8).items) == every[20:]
    assert len(store.search_users(TRUE, 0, 50).items) == 8  # max_list_length bounds a page
    for start, count in ((25, 5), (3, 0), (0, -1)):
        empty = store.search_users(TRUE, start, count)
        assert (empty.total, empty.items) == (25, [])
    assert names(store.search_users(TRUE, -4, 2).items) == every[:2]
    some = store.search_users(Compare(NAME, Op.SW, "user1"), 4, 8)
    assert some.total == 10 and [n for n in every if n.startswith("user1")][4:] == names(
        some.items)


def test_a_page_far_down_is_read_with_paged_searches(
        store_of: Callable[..., LdapUserStore]) -> None:
    """The account below gets at most LIMIT entries from any search that is not paged."""
    store_of().add_users([new(f"p{i:02d}") for i in range(LIMIT * 2 + 5)])
    limited = store_of(bind_dn=LIMITED_DN)
    page = limited.search_users(Compare(NAME, Op.SW, "p"), LIMIT * 2, 10)
    assert page.total == LIMIT * 2 + 5 and len(page.items) == 5


# ---------------------------------------------------------------- sorting
def test_sort_by_name_attribute_and_time(store: LdapUserStore, people: Any) -> None:
    def order(sort: Sort, start: int = 0, count: int = 10) -> list[str]:
        return names(store.search_users(TRUE, start, count, sort).items)

    assert order(Sort(NAME)) == ["ann", "bob", "cid", "dee"]
    assert order(Sort(NAME, descending=True)) == ["dee", "cid", "bob", "ann"]
    assert order(Sort(NAME), 1, 2) == ["bob", "cid"]
    assert order(Sort(MAIL)) == ["ann", "bob", "dee", "cid"]  # no mail: last either way
    assert order(Sort(MAIL, descending=True)) == ["dee", "bob", "ann", "cid"]
    assert order(Sort(attribute("givenName"))) == ["ann", "dee", "bob", "cid"]
    page = store.search_users(Compare(MAIL, Op.PR), 0, 2, Sort(NAME, descending=True))
    assert page.total == 3 and names(page.items) == ["dee", "bob"]


def test_sorting_more_than_the_bound_asks_for_a_narrower_filter(
        store: LdapUserStore, people: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ldap_module, "SORT_LIMIT", 3)
    with pytest.raises(InvalidInput, match="userstore X: sorting needs a narrower filter: 4 "
                                           "users match, at most 3 can be sorted"):
        store.search_users(TRUE, 0, 10, Sort(NAME))
    narrower = store.search_users(Compare(MAIL, Op.PR), 0, 10, Sort(NAME))
    assert names(narrower.items) == ["ann", "bob", "dee"]
    assert store.search_users(TRUE, 0, 10).total == 4  # without sort: no bound


# ---------------------------------------------------------------- case-sensitive stores
def test_a_case_sensitive_store_checks_names_that_must_match(
        store_of: Callable[..., LdapUserStore]) -> None:
    store = store_of(case_insensitive_usernames=False)
    store.add_users([new("Judy", mail="j@x.org"), new("jules")])
    assert found(store, Compare(NAME, Op.EQ, "Judy")) == ["Judy"]
    assert found(store, Compare(NAME, Op.EQ, "judy")) == []
    assert found(store, Compare(NAME, Op.SW, "ju")) == ["jules"]
    assert found(store, And((Compare(NAME, Op.SW, "J"), Compare(MAIL, Op.PR)))) == ["Judy"]
    assert store.search_users(Compare(NAME, Op.SW, "j"), 0, 0).total == 1
    # under or/not the directory's matching rule decides (see core/userstores/ldap_query.py)
    assert found(store, Or((Compare(NAME, Op.EQ, "judy"), Compare(MAIL, Op.EQ, "-")))) == [
        "Judy"]
    assert found(store, Compare(NAME, Op.CO, "UD")) == ["Judy"]


# ---------------------------------------------------------------- groups
def test_groups_by_name_id_and_member(store: LdapUserStore, people: list[StoredUser]) -> None:
    ann, bob, cid = people[:3]
    staff = store.add_group("staff", [ann.id, bob.id])
    store.add_group("ops", [ann.id])
    store.add_group("empty")

    def groups(query: Query) -> list[str]:
        page = store.search_groups(query, 0, 10)
        assert page.total == len(page.items)
        return sorted(g.name for g in page.items)

    assert groups(Compare(MEMBER, Op.EQ, ann.id)) == ["ops", "staff"]
    assert groups(Compare(MEMBER, Op.EQ, bob.id)) == ["staff"]
    assert groups(Compare(MEMBER, Op.EQ, cid.id)) == []
    assert groups(Compare(MEMBER, Op.EQ, str(uuid.uuid4()))) == []
    assert groups(Compare(MEMBER, Op.EQ, "*")) == []
    assert groups(Not(Compare(MEMBER, Op.EQ, bob.id))) == ["empty", "ops"]
    assert groups(And((Compare(MEMBER, Op.EQ, ann.id), Compare(NAME, Op.SW, "S")))) == [
        "staff"]
    assert groups(Compare(ID, Op.EQ, staff.id)) == ["staff"]
    assert groups(Compare(NAME, Op.NE, "ops")) == ["empty", "staff"]
    assert groups(Compare(MAIL, Op.PR)) == []  # groups have no attributes here
    assert groups(Compare(CREATED, Op.LE, staff.created)) == ["empty", "ops", "staff"]
    page = store.search_groups(TRUE, 1, 1)
    assert page.total == 3 and len(page.items) == 1
    with pytest.raises(InvalidInput, match="group members can only be compared with eq"):
        store.search_groups(Compare(MEMBER, Op.CO, ann.id), 0, 10)


# ---------------------------------------------------------------- injection
@pytest.mark.parametrize("text", [*INJECTIONS, "\\5c", "()", "*)(objectClass=*"])
def test_injected_values_match_nothing(store: LdapUserStore, people: list[StoredUser],
                                       text: str) -> None:
    store.add_group("staff", [people[0].id])
    for op in (Op.EQ, Op.CO, Op.SW, Op.EW):
        for field in (NAME, MAIL, attribute("givenName")):
            assert store.search_users(Compare(field, op, text), 0, 10).total == 0, (field, op)
        assert store.search_groups(Compare(NAME, op, text), 0, 10).total == 0
    assert store.search_users(Compare(NAME, Op.NE, text), 0, 10).total == 4
    assert store.search_users(Compare(ID, Op.EQ, text), 0, 10).total == 0
    assert store.search_groups(Compare(MEMBER, Op.EQ, text), 0, 10).total == 0


@pytest.mark.parametrize("text", ["\0", "a\0b", "*\0*"])
def test_a_nul_character_is_refused_where_the_directory_would_drop_it(
        store: LdapUserStore, people: list[StoredUser], text: str) -> None:
    """OpenLDAP accepts NUL in values but drops it from substring assertions (``*\\00*``
    would match every value): no answer would be exact, so the query is refused."""
    store.update_attributes(people[0].id, {"description": "a\0b"})
    for op in (Op.EQ, Op.NE, Op.CO, Op.SW):
        for field in (NAME, MAIL, attribute("description")):
            with pytest.raises(InvalidInput, match="userstore X: a value with a NUL"):
                store.search_users(Compare(field, op, text), 0, 10)
    assert store.search_users(Compare(ID, Op.EQ, text), 0, 10).total == 0
    assert store.search_groups(Compare(MEMBER, Op.EQ, text), 0, 10).total == 0


def test_special_characters_match_exactly_what_they_say(store: LdapUserStore,
                                                        people: Any) -> None:
    odd = store.add_user(new("o'hara,x+y=z<\"#;>\\(a*)", mail="x*)(uid=*@x.org"))
    for query in (Compare(NAME, Op.EQ, odd.username), Compare(NAME, Op.CO, "\\(a*)"),
                  Compare(NAME, Op.SW, "o'hara,"), Compare(NAME, Op.EW, "(a*)"),
                  Compare(MAIL, Op.EQ, "x*)(uid=*@x.org"), Compare(MAIL, Op.CO, "*)(")):
        assert found(store, query) == [odd.username], query
    assert found(store, Compare(NAME, Op.CO, "*")) == [odd.username]
