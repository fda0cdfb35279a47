"""The userstore contract (``core/userstores/base.py``), run against every store type.

Each kind of store is made fresh for every test (a domain of its own in a database shared by
the module, a subtree of its own in the session's slapd, a new mock directory for Active
Directory), so counts and listings are exact. A read-only kind is read through a writable
twin over the same data (``Subject.writer``), and must refuse every write with
``ReadOnlyStore``. What one store type does beyond the contract stays in its own tests
(``tests/test_sql_store.py``, ``tests/test_ldap_store.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.errors import AlreadyExists, NotFound, PolicyViolation, ReadOnlyStore
from core.iam import Iam
from core.userstores.base import NewUser, Page, Policies, UserStore
from core.userstores.definitions import TYPES, StoreDefinition
from core.userstores.query import NAME, Compare, Op, attribute
from core.userstores.router import open_store
from core.userstores.sql import SqlUserStore
from tests.ad_mock import ad_store
from tests.conftest import FAST_ARGON2
from tests.ldap_server import Slapd
from tests.servers import database_url

PASSWORD = "Correct-Horse-9"
#: The kinds of store the suite runs against, and the store type each one is.
KINDS = {"sql-sqlite": "sql", "sql-postgresql": "sql", "sql-mariadb": "sql",
         "sql-external-sqlite": "sql", "sql-external-postgresql": "sql",
         "sql-external-mariadb": "sql", "sql-read-only": "sql", "ldap": "ldap",
         "ldap-read-only": "ldap_ro", "active-directory-mock": "active_directory"}
_domains = itertools.count(1)


@dataclass
class Subject:
    kind: str
    store: UserStore
    #: A writable store over the same data (the store itself when it is writable).
    writer: UserStore
    #: False for ldap3's mock of AD: it keeps no ``memberOf`` back links, and its service
    #: account (in the user base) has no ``objectGUID``, so only named users can be listed.
    complete: bool = True

    @property
    def writable(self) -> bool:
        return self.store.capabilities.writable_users


def _open(iam: Iam, store_type: str, properties: dict[str, Any],
          domain: str | None = None) -> UserStore:
    """A store as the router opens it, from a definition."""
    definition = StoreDefinition(domain or f"C{next(_domains)}", store_type, 1, True, "",
                                 properties)
    return open_store(definition, iam.db, iam.hashing)


def _sql(iam: Iam, read_only: bool = False, domain: str | None = None) -> UserStore:
    """A store in the system database's own tables (rows are keyed by domain)."""
    return SqlUserStore(domain or f"C{next(_domains)}", iam.db.engine, iam.hashing,
                        Policies(), read_only=read_only)


@pytest.fixture(params=list(KINDS))
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    kind: str = request.param
    with ExitStack() as stack:
        def opened(store: UserStore) -> UserStore:
            stack.callback(store.close)
            return store

        if kind.startswith("sql-external-"):
            backend = kind.removeprefix("sql-external-")
            url = stack.enter_context(database_url(backend, str(tmp_path)))
            store = opened(_open(_iam_on(request, "sqlite"), "sql", {"url": url}))
            yield Subject(kind, store, store)
        elif kind.startswith("sql-"):
            backend = "sqlite" if kind == "sql-read-only" else kind.removeprefix("sql-")
            iam = _iam_on(request, backend)
            store = opened(_sql(iam))
            if kind == "sql-read-only":
                yield Subject(kind, opened(_sql(iam, True, store.domain)), store)
            else:
                yield Subject(kind, store, store)
        elif kind.startswith("ldap"):
            slapd: Slapd = request.getfixturevalue("slapd_server")
            iam = _iam_on(request, "sqlite")
            tree = slapd.new_tree()
            store = opened(_open(iam, "ldap", slapd.properties(tree)))
            if kind == "ldap-read-only":
                yield Subject(kind, opened(_open(iam, "ldap_ro", slapd.properties(tree),
                                                      store.domain)), store)
            else:
                yield Subject(kind, store, store)
        else:
            store = stack.enter_context(ad_store())[0]
            yield Subject(kind, store, store, complete=False)


def _iam_on(request: pytest.FixtureRequest, backend: str) -> Iam:
    """The module's deployment on ``backend`` (started on first use)."""
    holder: dict[str, Iam] = request.getfixturevalue("_deployments")
    if backend not in holder:
        stack: ExitStack = request.getfixturevalue("_deployment_stack")
        tmp = request.getfixturevalue("tmp_path_factory").mktemp(f"contract-{backend}")
        url = stack.enter_context(database_url(backend, str(tmp)))
        holder[backend] = stack.enter_context(
            Iam.open(home=str(tmp / "home"), db=url, argon2=FAST_ARGON2))
    return holder[backend]


@pytest.fixture(scope="module")
def _deployment_stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


@pytest.fixture(scope="module")
def _deployments() -> dict[str, Iam]:
    return {}


def new(name: str, password: str | None = None, **attributes: str) -> NewUser:
    return NewUser(name, password, attributes)


def walk(list_page: Callable[[str | None], Page[Any]]) -> list[list[Any]]:
    pages: list[list[Any]] = []
    cursor: str | None = None
    while True:
        page = list_page(cursor)
        pages.append(list(page.items))
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 50, "the cursor never ends"


def names(items: Any) -> list[str]:
    return [getattr(i, "username", None) or i.name for i in items]


# ---------------------------------------------------------------- users
def test_add_then_get_by_name_and_id(subject: Subject) -> None:
    added = subject.writer.add_user(new("ann", PASSWORD, mail="ann@example.org",
                                        givenName="Ann"))
    store = subject.store
    assert added.id and added.username == "ann" and added.domain == subject.writer.domain
    got = store.get_user(added.id)
    assert got is not None and got.id == added.id and got.username == "ann"
    assert got.attributes.get("mail") == "ann@example.org"
    assert got.attributes.get("givenName") == "Ann"
    assert store.get_user_by_name("ann") == got
    assert store.get_users([added.id, "no-such-id"]) == {added.id: got}
    assert store.get_user_by_name("nobody") is None


def test_a_duplicate_name_is_refused_and_a_failed_batch_writes_nothing(
        subject: Subject) -> None:
    if not subject.writable:
        pytest.skip("read-only: see test_a_read_only_store_refuses_every_write")
    store = subject.store
    before = store.count_users()  # a directory may hold service accounts
    store.add_user(new("ann"))
    with pytest.raises(AlreadyExists):
        store.add_user(new("ann"))
    with pytest.raises(AlreadyExists):
        store.add_users([new("bea"), new("ann")])
    assert store.get_user_by_name("bea") is None
    added = store.add_users([new("cid"), new("dot")])
    assert names(added) == ["cid", "dot"]
    assert store.count_users() == before + 3


def test_attributes_are_set_replaced_and_removed(subject: Subject) -> None:
    if not subject.writable:
        pytest.skip("read-only")
    store = subject.store
    user = store.add_user(new("ann", mail="ann@example.org", givenName="Ann"))
    changed = store.update_attributes(user.id, {"mail": "a@example.org"}, remove=["givenName"])
    assert changed.attributes.get("mail") == "a@example.org"
    assert "givenName" not in changed.attributes
    assert store.get_user(user.id) == changed


def test_passwords_set_and_verify(subject: Subject) -> None:
    user = subject.writer.add_user(new("ann", PASSWORD))
    store = subject.store
    if subject.kind == "active-directory-mock":
        pytest.skip("ldap3's mock cannot bind with an unicodePwd it did not hash")
    assert store.verify_password("ann", PASSWORD) == store.get_user(user.id)
    assert store.verify_password("ann", "Wrong-Horse-9") is None
    assert store.verify_password("ann", "") is None
    assert store.verify_password("nobody", PASSWORD) is None
    subject.writer.set_password(user.id, "Battery-Staple-7")
    assert store.verify_password("ann", PASSWORD) is None
    assert store.verify_password("ann", "Battery-Staple-7") is not None


def test_delete_user_removes_it_and_its_memberships(subject: Subject) -> None:
    writer, store = subject.writer, subject.store
    user, other = writer.add_users([new("ann"), new("bob")])
    group = writer.add_group("team", [user.id, other.id])
    writer.delete_user(user.id)
    assert store.get_user(user.id) is None and store.get_user_by_name("ann") is None
    assert store.get_user(other.id) is not None
    if subject.complete:
        assert names(store.members_of(group.id, 10).items) == ["bob"]


def test_paging_with_a_cursor_visits_every_user_once(subject: Subject) -> None:
    all_names = [f"user{i:02d}" for i in range(11)]
    subject.writer.add_users([new(n) for n in reversed(all_names)])
    subject.writer.add_user(new("zed"))
    store = subject.store
    # by prefix: a directory may hold service accounts (the AD mock's has no objectGUID)
    pages = walk(lambda c: store.list_users(4, c, prefix="user"))
    assert [len(p) for p in pages] == [4, 4, 3]
    assert sorted(names(u for p in pages for u in p)) == all_names
    assert store.count_users(prefix="user") == 11
    assert store.count_users(prefix="user0") == 10
    assert sorted(names(store.list_users(20, prefix="user1").items)) == ["user10"]
    if subject.complete:
        everyone = names(u for p in walk(lambda c: store.list_users(5, c)) for u in p)
        assert sorted(everyone) == [*all_names, "zed"]
        assert store.count_users() == 12


def test_search_by_name_and_attribute(subject: Subject) -> None:
    subject.writer.add_users([new("ann", mail="ann@example.org"),
                              new("bob", mail="bob@example.org"),
                              new("abe", mail="abe@example.net")])
    store = subject.store
    found = store.search_users(Compare(attribute("mail"), Op.EW, "example.org"), 0, 10)
    assert found.total == 2 and sorted(names(found.items)) == ["ann", "bob"]
    by_name = store.search_users(Compare(NAME, Op.SW, "a"), 0, 10)
    assert sorted(names(by_name.items)) == ["abe", "ann"]
    exact = store.list_users(10, attribute=("mail", "bob@example.org"))
    assert names(exact.items) == ["bob"]


# ---------------------------------------------------------------- groups
def test_groups_and_membership_both_ways(subject: Subject) -> None:
    if not subject.complete:
        pytest.skip("ldap3's mock keeps no memberOf back links (tests/test_ldap_store.py "
                    "checks AD's member values and member searches)")
    writer, store = subject.writer, subject.store
    ann, bob = writer.add_users([new("ann"), new("bob")])
    team = writer.add_group("team", [ann.id])
    other = writer.add_group("other")
    assert store.get_group(team.id) == store.get_group_by_name("team")
    writer.update_members(team.id, add=[bob.id])
    writer.update_members(other.id, add=[bob.id])
    assert sorted(names(store.members_of(team.id, 10).items)) == ["ann", "bob"]
    assert sorted(g.name for g in store.groups_of(bob.id)) == ["other", "team"]
    assert {k: sorted(g.name for g in v)
            for k, v in store.groups_of_users([ann.id, bob.id]).items()} == \
        {ann.id: ["team"], bob.id: ["other", "team"]}
    writer.update_members(team.id, remove=[ann.id])
    assert names(store.groups_of(ann.id)) == []
    renamed = writer.rename_group(team.id, "crew")
    assert renamed.id == team.id and store.get_group_by_name("crew") is not None
    assert store.get_group_by_name("team") is None
    assert sorted(names(g for p in walk(lambda c: store.list_groups(1, c)) for g in p)) == \
        ["crew", "other"]
    assert names(store.search_groups(Compare(NAME, Op.EQ, "crew"), 0, 10).items) == ["crew"]
    writer.delete_group(other.id)
    assert store.get_group(other.id) is None
    assert names(store.groups_of(bob.id)) == ["crew"]


# ---------------------------------------------------------------- capabilities and rules
def test_a_read_only_store_refuses_every_write(subject: Subject) -> None:
    if subject.writable:
        pytest.skip("writable")
    ro, writer = subject.store, subject.writer
    user = writer.add_user(new("jon", PASSWORD, mail="jon@example.org"))
    group = writer.add_group("readers", [user.id])
    assert not ro.capabilities.writable_groups
    writes: list[Callable[[], object]] = [
        lambda: ro.add_user(new("kai")), lambda: ro.add_users([new("kai")]),
        lambda: ro.set_password(user.id, "Battery-Staple-7"),
        lambda: ro.update_attributes(user.id, {"mail": "a@example.org"}),
        lambda: ro.delete_user(user.id), lambda: ro.add_group("g"),
        lambda: ro.update_members(group.id, remove=[user.id]),
        lambda: ro.rename_group(group.id, "h"), lambda: ro.delete_group(group.id)]
    for write in writes:
        with pytest.raises(ReadOnlyStore, match=rf"userstore {ro.domain}\b.*read-only"):
            write()
    assert ro.get_user(user.id) == writer.get_user(user.id)  # same domain, same data
    assert ro.get_user_by_name("kai") is None
    assert ro.verify_password("jon", PASSWORD) is not None
    assert names(ro.members_of(group.id, 10).items) == ["jon"]


def test_policies_refuse_names_and_passwords_with_a_clear_error(subject: Subject) -> None:
    policies = subject.writer.policies
    with pytest.raises(PolicyViolation, match=subject.writer.domain):
        policies.check_username(subject.writer.domain, "a b")
    with pytest.raises(PolicyViolation) as weak:
        policies.check_password(subject.writer.domain, "short")
    assert "short" not in str(weak.value)  # a password is never echoed
    with pytest.raises(PolicyViolation):
        policies.check_group_name(subject.writer.domain, "a/b")
    policies.check_username(subject.writer.domain, "ann")
    policies.check_password(subject.writer.domain, PASSWORD)
    policies.check_group_name(subject.writer.domain, "team")


def test_names_follow_the_stores_case_rule(subject: Subject) -> None:
    writer, store = subject.writer, subject.store
    ann = writer.add_user(new("Ann"))
    if store.policies.case_insensitive_usernames:
        assert store.get_user_by_name("ANN") == store.get_user(ann.id)
        with pytest.raises(AlreadyExists):
            writer.add_user(new("ANN"))
    else:
        assert store.get_user_by_name("ANN") is None
        other = writer.add_user(new("ANN"))
        assert other.id != ann.id and store.get_user_by_name("ANN") == other
    assert store.policies.key("Ann") == store.policies.key(
        "ANN" if store.policies.case_insensitive_usernames else "Ann")


def test_health_of_a_reachable_store(subject: Subject) -> None:
    health = subject.store.health()
    assert health.reachable, health.detail
    assert health.latency_ms is None or health.latency_ms >= 0


def test_every_store_type_is_covered() -> None:
    missing = set(TYPES) - set(KINDS.values())
    assert not missing, f"store types without a contract subject: {missing}"


def test_an_absent_user_or_group_is_not_found_when_addressed(subject: Subject) -> None:
    writer, store = subject.writer, subject.store
    gone = writer.add_user(new("ann"))
    team = writer.add_group("team")
    lost = writer.add_group("lost")
    writer.delete_user(gone.id)
    writer.delete_group(lost.id)
    assert store.get_user(gone.id) is None and store.get_group(lost.id) is None
    calls: list[Callable[[], object]] = [
        lambda: writer.update_attributes(gone.id, {"mail": "a@example.org"}),
        lambda: writer.delete_user(gone.id),
        lambda: writer.set_password(gone.id, PASSWORD),
        lambda: writer.update_members(team.id, add=[gone.id]),
        lambda: writer.update_members(lost.id, add=[]),
        lambda: writer.rename_group(lost.id, "found"),
        lambda: writer.delete_group(lost.id),
        lambda: store.members_of(lost.id, 10),
        lambda: store.groups_of(gone.id),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            call()
    assert not store.groups_of_users([gone.id]).get(gone.id)  # no groups, no error


def test_group_names_are_unique_and_members_must_be_users_here(subject: Subject) -> None:
    writer, store = subject.writer, subject.store
    ann = writer.add_user(new("ann"))
    team = writer.add_group("team", [ann.id])
    crew = writer.add_group("crew")
    with pytest.raises(AlreadyExists):
        writer.add_group("team")
    with pytest.raises(AlreadyExists):
        writer.rename_group(crew.id, "team")
    with pytest.raises(NotFound):
        writer.add_group("ghosts", ["no-such-user"])
    assert store.get_group_by_name("ghosts") is None
    with pytest.raises(NotFound):
        writer.update_members(crew.id, add=[ann.id, "no-such-user"])
    if subject.complete:  # back links: see test_groups_and_membership_both_ways
        assert [g.id for g in store.groups_of(ann.id)] == [team.id]
