"""The directory userstore against a real OpenLDAP (slapd), and Active Directory behaviour.

Everything LDAP runs against the session's slapd (``tests/ldap_server.py``), each test in a
subtree of its own. Active Directory cannot run here: what OpenLDAP can show of it runs
against slapd (reads, memberOf back links, the refusal of passwords without TLS), and what
only AD does - the disabled creation (userAccountControl 514), ``unicodePwd`` in UTF-16LE,
enabling (512), ``objectGUID`` as a binary id, AD's password-policy reply - runs against
ldap3's MOCK_SYNC server with its recorded Active Directory 2012 R2 schema, through a
connection that replies to those operations as Active Directory does.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from ldap3 import BASE, Connection, Server
from ldap3.core.exceptions import LDAPOperationResult
from sqlalchemy import select

from core.claims import LOCAL_DIALECT
from core.errors import (
    AlreadyExists,
    InvalidInput,
    NotFound,
    PolicyViolation,
    ReadOnlyStore,
    StoreUnavailable,
)
from core.iam import Iam
from core.identity.events import Initiator
from core.schema import userstores as userstores_table
from core.secrets import SecretValue
from core.userstores.base import NewUser, Page, Policies
from core.userstores.definitions import shown_properties, validated
from core.userstores.ldap import EMPTY_GROUP_MEMBER, LdapUserStore
from core.userstores.ldap_ad import AD_DISABLED, ActiveDirectoryUserStore
from core.userstores.ldap_schema import settings
from core.userstores.query import CREATED, ID, MEMBER, NAME, And, Compare, Op, Query, Sort
from tests.ad_mock import AD_BASE, ad_store
from tests.ldap_server import LIMIT, LIMITED_DN, SERVICE_PASSWORD, LdapTree, Slapd

pytestmark = pytest.mark.server

DOMAIN = "LDAP1"
EMAIL = f"{LOCAL_DIALECT}/emailaddress"
GIVEN = f"{LOCAL_DIALECT}/givenname"
LAST = f"{LOCAL_DIALECT}/lastname"
#: What an attacker types where a name or a value goes.
INJECTIONS = ("*", "*)(uid=*", ")(|(objectClass=*", "*)(|(objectClass=*))(uid=*",
              "a*", "\\2a", "\\", "(", "x)(", "alice)(uid=*")


def new(name: str, password: str | None = None, **attributes: str) -> NewUser:
    return NewUser(name, password, attributes)


@pytest.fixture
def iam(sqlite_iam: Iam, admin: Initiator, slapd_server: Slapd, ldap_tree: LdapTree) -> Iam:
    """A deployment with PRIMARY and one read-write LDAP store (``LDAP1``)."""
    sqlite_iam.save_userstore(admin, DOMAIN, "ldap", slapd_server.properties(ldap_tree))
    return sqlite_iam


def ldap_store(iam: Iam, domain: str = DOMAIN) -> LdapUserStore:
    store = iam.stores.store(domain)
    assert isinstance(store, LdapUserStore)
    return store


def make_store(slapd: Slapd, tree: LdapTree, flavour: str = "ldap",
               **overrides: Any) -> LdapUserStore:
    """A store straight from properties (as the router opens one)."""
    props = validated("X", flavour, slapd.properties(tree, **overrides))
    cls = ActiveDirectoryUserStore if flavour == "active_directory" else LdapUserStore
    return cls("X", settings(flavour, props, props["bind_password"].value),
               Policies(case_insensitive_usernames=props["case_insensitive_usernames"]))


@pytest.fixture
def store_of(slapd_server: Slapd, ldap_tree: LdapTree
             ) -> Iterator[Callable[..., LdapUserStore]]:
    opened: list[LdapUserStore] = []

    def make(flavour: str = "ldap", **overrides: Any) -> LdapUserStore:
        opened.append(make_store(slapd_server, ldap_tree, flavour, **overrides))
        return opened[-1]

    yield make
    for s in opened:
        s.close()


def read_entry(slapd: Slapd, dn: str, *attributes: str) -> dict[str, list[bytes]] | None:
    conn = slapd.admin()
    try:
        conn.search(dn, "(objectClass=*)", BASE, attributes=list(attributes) or ["*", "+"])
        return dict(conn.response[0]["raw_attributes"]) if conn.response else None
    except LDAPOperationResult:
        return None
    finally:
        conn.unbind()


def walk(list_page: Callable[[str | None], Page[Any]]) -> list[list[Any]]:
    pages: list[list[Any]] = []
    cursor: str | None = None
    while True:
        page = list_page(cursor)
        pages.append(list(page.items))
        cursor = page.next_cursor
        if cursor is None:
            return pages


def names(items: Any) -> list[str]:
    return [getattr(i, "username", None) or i.name for i in items]


# ---------------------------------------------------------------- users
def test_add_user_writes_an_entry_with_a_hashed_password_and_its_entryuuid_as_id(
        iam: Iam, admin: Initiator, slapd_server: Slapd, ldap_tree: LdapTree) -> None:
    view = iam.identity.add_user(admin, f"{DOMAIN}/alice", "Correct-horse-9",
                                 {"emailaddress": "alice@example.com", "givenname": "Alice"})
    raw = read_entry(slapd_server, f"uid=alice,{ldap_tree.users}")
    assert raw is not None
    assert raw["entryUUID"] == [view.id.encode()]
    assert raw["mail"] == [b"alice@example.com"] and raw["givenName"] == [b"Alice"]
    assert raw["cn"] == [b"alice"] and raw["sn"] == [b"alice"]  # person needs them
    assert raw["userPassword"][0].upper().startswith(b"{SSHA}")
    assert b"Correct-horse-9" not in raw["userPassword"][0]
    got = iam.identity.get_user(f"{DOMAIN}/alice")
    assert (got.id, got.claims[EMAIL], got.claims[GIVEN]) == (view.id, "alice@example.com",
                                                              "Alice")
    assert got.created is not None and got.created.tzinfo is not None
    assert iam.identity.get_user_by_id(DOMAIN, view.id).username == "alice"


def test_password_is_verified_by_binding_as_the_user(iam: Iam, admin: Initiator) -> None:
    iam.identity.add_user(admin, f"{DOMAIN}/bob", "Correct-horse-9")
    assert iam.identity.verify_password(f"{DOMAIN}/bob", "Correct-horse-9") is not None
    assert iam.identity.verify_password(f"{DOMAIN}/BOB", "Correct-horse-9") is not None
    assert iam.identity.verify_password(f"{DOMAIN}/bob", "wrong-horse-9") is None
    assert ldap_store(iam).verify_password("bob", "") is None  # never an anonymous bind
    assert iam.identity.verify_password(f"{DOMAIN}/nobody", "Correct-horse-9") is None
    iam.identity.set_password(admin, f"{DOMAIN}/bob", "Battery-staple-7")
    assert iam.identity.verify_password(f"{DOMAIN}/bob", "Correct-horse-9") is None
    assert iam.identity.verify_password(f"{DOMAIN}/bob", "Battery-staple-7") is not None


def test_plain_text_hash_method_leaves_hashing_to_the_directory(
        store_of: Callable[..., LdapUserStore], slapd_server: Slapd, ldap_tree: LdapTree
) -> None:
    store = store_of(password_hash_method="PLAIN_TEXT")
    store.add_user(new("carol", "Correct-horse-9"))
    raw = read_entry(slapd_server, f"uid=carol,{ldap_tree.users}")
    assert raw is not None and raw["userPassword"] == [b"Correct-horse-9"]
    assert store.verify_password("carol", "Correct-horse-9") is not None


def test_update_and_remove_claims(iam: Iam, admin: Initiator, slapd_server: Slapd,
                                  ldap_tree: LdapTree) -> None:
    iam.identity.add_user(admin, f"{DOMAIN}/dave", None, {"givenname": "Dave",
                                                           "emailaddress": "d@example.com"})
    view = iam.identity.update_user(admin, f"{DOMAIN}/dave", {"lastname": "Jones",
                                                              "emailaddress": "dj@example.com"},
                                    ["givenname"])
    assert view.claims[LAST] == "Jones" and view.claims[EMAIL] == "dj@example.com"
    assert GIVEN not in view.claims
    raw = read_entry(slapd_server, f"uid=dave,{ldap_tree.users}")
    assert raw is not None and "givenName" not in raw and raw["sn"] == [b"Jones"]
    # removing a claim the entry does not have is not an error
    iam.identity.update_user(admin, f"{DOMAIN}/dave", remove_claims=["givenname"])


def test_claims_follow_the_domain_attribute_mapping(iam: Iam, admin: Initiator,
                                                    slapd_server: Slapd,
                                                    ldap_tree: LdapTree) -> None:
    iam.save_claim(admin, f"{LOCAL_DIALECT}/telephone", "Telephone",
                   mappings={DOMAIN: "homephone"})  # any case: directory names ignore it
    iam.identity.add_user(admin, f"{DOMAIN}/erin", None, {"telephone": "+41 1"})
    raw = read_entry(slapd_server, f"uid=erin,{ldap_tree.users}")
    assert raw is not None and raw["homePhone"] == [b"+41 1"]
    claims = iam.identity.get_user(f"{DOMAIN}/erin").claims
    assert claims[f"{LOCAL_DIALECT}/telephone"] == "+41 1"


def test_an_attribute_the_schema_lacks_is_a_clear_error(iam: Iam, admin: Initiator) -> None:
    with pytest.raises(InvalidInput, match=f"userstore {DOMAIN}: the directory refused"):
        iam.identity.add_user(admin, f"{DOMAIN}/frank", None, {"country": "CH"})
    assert iam.stores.store(DOMAIN).get_user_by_name("frank") is None


def test_protected_attributes_are_not_written_through_claims(iam: Iam) -> None:
    store = ldap_store(iam)
    user = store.add_user(new("gina", "Correct-horse-9"))
    for attribute in ("userPassword", "objectClass", "uid", "entryUUID"):
        with pytest.raises(InvalidInput, match="cannot be written"):
            store.update_attributes(user.id, {attribute: "x"})
    with pytest.raises(InvalidInput, match="cannot be written"):
        store.add_user(new("hank", None, userPassword="{SSHA}x"))


def test_usernames_are_case_insensitive_by_default(iam: Iam, admin: Initiator) -> None:
    iam.identity.add_user(admin, f"{DOMAIN}/Ivan")
    assert iam.identity.get_user(f"{DOMAIN}/ivan").username == "Ivan"
    with pytest.raises(AlreadyExists):
        iam.identity.add_user(admin, f"{DOMAIN}/IVAN")


def test_case_sensitive_usernames_when_configured(store_of: Callable[..., LdapUserStore]
                                                  ) -> None:
    store = store_of(case_insensitive_usernames=False)
    store.add_user(new("Judy"))
    assert store.get_user_by_name("Judy") is not None
    assert store.get_user_by_name("judy") is None  # the directory matched; the store did not
    assert names(store.list_users(10, prefix="Ju").items) == ["Judy"]
    assert names(store.list_users(10, prefix="ju").items) == []


def test_username_policy_applies(iam: Iam, admin: Initiator) -> None:
    iam.save_userstore(admin, DOMAIN, "ldap", {
        **{k: v for k, v in iam.stores.definitions[DOMAIN].properties.items()},
        "username_regex": "^[a-z]{3,8}$", "username_message": "lowercase, 3 to 8"})
    with pytest.raises(PolicyViolation, match="lowercase, 3 to 8"):
        iam.identity.add_user(admin, f"{DOMAIN}/Kim-1")


def test_a_duplicate_is_refused_and_a_failed_batch_leaves_nothing(iam: Iam) -> None:
    store = ldap_store(iam)
    store.add_user(new("lara"))
    with pytest.raises(AlreadyExists, match="LDAP1/LARA already exists"):
        store.add_user(new("LARA"))
    with pytest.raises(AlreadyExists):
        store.add_users([new("mia"), new("ned"), new("lara"), new("oli")])
    assert [store.get_user_by_name(n) for n in ("mia", "ned", "oli")] == [None, None, None]
    with pytest.raises(AlreadyExists, match="appears twice"):
        store.add_users([new("pam"), new("PAM")])


def test_delete_user(iam: Iam, admin: Initiator, slapd_server: Slapd,
                     ldap_tree: LdapTree) -> None:
    iam.identity.add_user(admin, f"{DOMAIN}/quinn")
    iam.identity.delete_user(admin, f"{DOMAIN}/quinn")
    assert read_entry(slapd_server, f"uid=quinn,{ldap_tree.users}") is None
    with pytest.raises(NotFound):
        iam.identity.get_user(f"{DOMAIN}/quinn")


def test_user_dn_pattern_names_entries_without_a_search(
        store_of: Callable[..., LdapUserStore], slapd_server: Slapd, ldap_tree: LdapTree
) -> None:
    store = store_of(user_dn_pattern=f"uid={{0}},{ldap_tree.users}")
    user = store.add_user(new("rosa", "Correct-horse-9"))
    assert read_entry(slapd_server, f"uid=rosa,{ldap_tree.users}") is not None
    assert store.get_user_by_name("rosa") == user
    assert store.verify_password("rosa", "Correct-horse-9") is not None


def test_special_characters_in_names_are_escaped_in_dns_and_filters(
        iam: Iam, slapd_server: Slapd, ldap_tree: LdapTree) -> None:
    store = ldap_store(iam)
    name = 'o\'hara,x+y=z<"#;>\\(a*)'
    user = store.add_user(new(name, "Correct-horse-9"))
    assert store.get_user_by_name(name) == user
    assert store.verify_password(name, "Correct-horse-9") is not None
    assert names(store.list_users(10, prefix="o'hara,x+").items) == [name]
    group = store.add_group("r&d, (core)*", [user.id])
    assert store.get_group_by_name("r&d, (core)*") == group
    assert [g.name for g in store.groups_of(user.id)] == ["r&d, (core)*"]


# ---------------------------------------------------------------- listing
def test_paging_visits_every_user_once(iam: Iam) -> None:
    store = ldap_store(iam)
    store.add_users([new(f"user{i:02d}") for i in range(25)])
    pages = walk(lambda c: store.list_users(10, c))
    assert [len(p) for p in pages] == [10, 10, 5]
    assert sorted(names(u for p in pages for u in p)) == [f"user{i:02d}" for i in range(25)]
    assert store.count_users() == 25


def test_the_cursor_carries_the_paging_cookie_and_its_query(iam: Iam) -> None:
    store = ldap_store(iam)
    store.add_users([new(f"anna{i}") for i in range(5)] + [new(f"bert{i}") for i in range(5)])
    page = store.list_users(2, prefix="anna")
    assert page.next_cursor is not None
    data = json.loads(base64.urlsafe_b64decode(page.next_cursor))
    assert base64.b64decode(data["c"]) and data["n"] == 2  # the cookie; entries served
    with pytest.raises(InvalidInput, match="another listing"):
        store.list_users(2, page.next_cursor, prefix="bert")
    with pytest.raises(InvalidInput, match="another listing"):
        store.list_groups(2, page.next_cursor)
    for bad in ("not-a-cursor", base64.urlsafe_b64encode(b"{}").decode()):
        with pytest.raises(InvalidInput, match="not valid"):
            store.list_users(2, bad, prefix="anna")


def test_listing_is_paged_not_one_search(
        store_of: Callable[..., LdapUserStore], slapd_server: Slapd, ldap_tree: LdapTree
) -> None:
    """The account below gets at most LIMIT entries from any search that is not paged."""
    writer = store_of()
    writer.add_users([new(f"p{i:02d}") for i in range(LIMIT * 2 + 5)])
    limited = store_of(bind_dn=LIMITED_DN)
    conn = Connection(Server(slapd_server.url), LIMITED_DN, SERVICE_PASSWORD, auto_bind=True)
    conn.search(ldap_tree.users, "(objectClass=person)", attributes=["uid"])
    assert len(conn.response) == LIMIT and conn.result["description"] == "sizeLimitExceeded"
    conn.unbind()
    pages = walk(lambda c: limited.list_users(LIMIT, c))
    assert len({u.id for p in pages for u in p}) == LIMIT * 2 + 5
    assert limited.count_users() == LIMIT * 2 + 5
    assert limited.count_users(prefix="p1") == 10


def test_a_cursor_continues_in_another_process(store_of: Callable[..., LdapUserStore]) -> None:
    """The directory ties its cookie to a connection; another process has none of ours."""
    first = store_of()
    first.add_users([new(f"c{i:02d}") for i in range(12)])
    page = first.list_users(5)
    other = store_of()  # its own connections: the first store's pinned one is not there
    rest = walk(lambda c: other.list_users(5, c or page.next_cursor))
    seen = names(page.items) + names(u for p in rest for u in p)
    assert sorted(seen) == [f"c{i:02d}" for i in range(12)] and len(seen) == 12
    # and the first store still continues its own listing where it was
    assert names(first.list_users(5, page.next_cursor).items) == names(rest[0])


def test_page_size_is_bounded_by_max_list_length(store_of: Callable[..., LdapUserStore]
                                                 ) -> None:
    store = store_of(max_list_length=4)
    store.add_users([new(f"m{i}") for i in range(9)])
    pages = walk(lambda c: store.list_users(50, c))
    assert [len(p) for p in pages] == [4, 4, 1]
    assert len(store.list_users(0).items) == 1


def test_prefix_and_claim_search(iam: Iam, admin: Initiator) -> None:
    for name, mail in (("sam", "sam@example.com"), ("sara", "sara@example.com"),
                       ("tom", "sam@example.com")):
        iam.identity.add_user(admin, f"{DOMAIN}/{name}", None, {"emailaddress": mail})
    assert sorted(names(iam.identity.list_users(DOMAIN, prefix="sa").items)) == ["sam", "sara"]
    found = iam.identity.list_users(DOMAIN, claim=("emailaddress", "sam@example.com")).items
    assert sorted(names(found)) == ["sam", "tom"]
    assert names(iam.identity.list_users(DOMAIN, claim=("username", "tom")).items) == ["tom"]
    assert iam.identity.count_users(DOMAIN, prefix="s") == 2


# ---------------------------------------------------------------- groups
@pytest.mark.parametrize("back_links", [True, False], ids=["memberOf", "member-search"])
def test_membership_both_ways(store_of: Callable[..., LdapUserStore],
                              back_links: bool) -> None:
    overrides = {"back_links_enabled": True, "member_of_attribute": "memberOf"} \
        if back_links else {}
    store = store_of(**overrides)
    a, b, c = store.add_users([new("ann"), new("ben"), new("cid")])
    eng = store.add_group("engineering", [a.id, b.id])
    ops = store.add_group("ops", [a.id])
    members = walk(lambda cur: store.members_of(eng.id, 1, cur))
    assert sorted(names(u for p in members for u in p)) == ["ann", "ben"]
    assert [g.name for g in store.groups_of(a.id)] == ["engineering", "ops"]
    assert store.groups_of(c.id) == []
    assert store.get_user_with_groups(a.id) == (store.get_user(a.id), store.groups_of(a.id))
    assert store.get_user_with_groups(c.id) == (store.get_user(c.id), [])
    assert store.get_user_with_groups("no-such-id") is None
    store.update_members(eng.id, add=[c.id, a.id], remove=[b.id])
    assert sorted(names(store.members_of(eng.id, 10).items)) == ["ann", "cid"]
    assert [g.name for g in store.groups_of(b.id)] == []
    store.update_members(ops.id, remove=[c.id])  # not a member: nothing to do
    with pytest.raises(NotFound, match="not users of X"):
        store.update_members(eng.id, add=[str(uuid.uuid4())])


def test_an_empty_group_holds_the_placeholder_member(
        store_of: Callable[..., LdapUserStore], slapd_server: Slapd, ldap_tree: LdapTree
) -> None:
    store = store_of()
    user = store.add_user(new("dora"))
    group = store.add_group("empty")
    dn = f"cn=empty,{ldap_tree.groups}"
    assert read_entry(slapd_server, dn, "member") == {"member": [EMPTY_GROUP_MEMBER.encode()]}
    assert store.members_of(group.id, 10).items == []
    store.update_members(group.id, add=[user.id])
    assert read_entry(slapd_server, dn, "member") == {
        "member": [f"uid=dora,{ldap_tree.users}".encode()]}
    store.update_members(group.id, remove=[user.id])
    assert read_entry(slapd_server, dn, "member") == {"member": [b""]}
    assert store.members_of(group.id, 10).items == []


def test_renaming_a_group_keeps_its_id_and_members(store_of: Callable[..., LdapUserStore]
                                                   ) -> None:
    store = store_of(back_links_enabled=True, member_of_attribute="memberOf")
    user = store.add_user(new("eve"))
    group = store.add_group("old-name", [user.id])
    renamed = store.rename_group(group.id, "new-name")
    assert (renamed.id, renamed.name) == (group.id, "new-name")
    assert [g.name for g in store.groups_of(user.id)] == ["new-name"]  # memberOf followed
    assert store.get_group_by_name("old-name") is None
    store.add_group("taken")
    with pytest.raises(AlreadyExists):
        store.rename_group(group.id, "TAKEN")
    store.delete_group(group.id)
    assert store.get_group(group.id) is None and store.groups_of(user.id) == []


@pytest.mark.parametrize("back_links", [False, True])
def test_batched_reads_answer_what_one_by_one_reads_do(
        store_of: Callable[..., LdapUserStore], back_links: bool) -> None:
    store = store_of(back_links_enabled=back_links, member_of_attribute="memberOf")
    a, b, c = store.add_users([new("hal"), new("ida"), new("jon")])
    store.add_group("ops", [b.id, a.id])
    store.add_group("eng", [b.id])
    ids = [c.id, a.id, str(uuid.uuid4()), "not-a-uuid", b.id]

    assert store.get_users(ids) == {u.id: store.get_user(u.id) for u in (a, b, c)}
    groups = store.groups_of_users(ids)
    assert groups == {a.id: store.groups_of(a.id), b.id: store.groups_of(b.id), c.id: [],
                      ids[2]: [], "not-a-uuid": []}
    assert [g.name for g in groups[b.id]] == ["eng", "ops"]


def test_deleting_a_member_leaves_no_dangling_member(
        store_of: Callable[..., LdapUserStore], slapd_server: Slapd, ldap_tree: LdapTree
) -> None:
    store = store_of()
    a, b = store.add_users([new("fay"), new("gus")])
    group = store.add_group("team", [a.id, b.id])
    store.delete_user(a.id)
    assert names(store.members_of(group.id, 10).items) == ["gus"]
    store.delete_user(b.id)
    assert read_entry(slapd_server, f"cn=team,{ldap_tree.groups}", "member") == {
        "member": [b""]}


def test_group_listing_pages_and_prefix(store_of: Callable[..., LdapUserStore]) -> None:
    store = store_of()
    for i in range(7):
        store.add_group(f"grp{i}")
    store.add_group("other")
    pages = walk(lambda c: store.list_groups(3, c, prefix="grp"))
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sorted(names(g for p in pages for g in p)) == [f"grp{i}" for i in range(7)]


def test_group_switches(store_of: Callable[..., LdapUserStore]) -> None:
    no_writes = store_of(write_groups=False)
    assert no_writes.capabilities.readable_groups
    assert not no_writes.capabilities.writable_groups
    with pytest.raises(ReadOnlyStore, match="read-only for groups"):
        no_writes.add_group("nope")
    no_reads = store_of(read_groups=False)
    assert not no_reads.capabilities.readable_groups


def test_service_keeps_groups_within_their_store(iam: Iam, admin: Initiator) -> None:
    iam.identity.add_user(admin, f"{DOMAIN}/hal")
    iam.identity.add_user(admin, "ivy")
    iam.identity.add_role(admin, f"{DOMAIN}/admins", [f"{DOMAIN}/hal"])
    with pytest.raises(InvalidInput, match="can only hold users of"):
        iam.identity.assign(admin, f"{DOMAIN}/admins", ["ivy"])
    assert iam.identity.roles_of(f"{DOMAIN}/hal") == [f"{DOMAIN}/admins"]


# ---------------------------------------------------------------- injection
@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_through_every_search_path_finds_nothing(
        iam: Iam, admin: Initiator, text: str) -> None:
    store = ldap_store(iam)
    alice = store.add_user(new("alice", "Correct-horse-9", mail="alice@example.com"))
    group = store.add_group("staff", [alice.id])
    assert store.get_user_by_name(text) is None
    assert store.verify_password(text, "Correct-horse-9") is None
    assert store.get_user(text) is None and store.get_group(text) is None
    assert store.get_group_by_name(text) is None
    assert store.list_users(50, prefix=text).items == []
    assert store.list_users(50, attribute=("mail", text)).items == []
    assert store.list_groups(50, prefix=text).items == []
    assert store.count_users(prefix=text) == 0
    assert iam.identity.list_users(DOMAIN, claim=("emailaddress", text)).items == []
    with pytest.raises(NotFound):
        iam.identity.get_user(f"{DOMAIN}/{text}")
    with pytest.raises(NotFound):
        store.members_of(text, 10)
    with pytest.raises(NotFound):
        store.update_members(group.id, add=[text])
    assert names(store.members_of(group.id, 10).items) == ["alice"]


def test_an_attribute_name_cannot_carry_a_filter(iam: Iam) -> None:
    with pytest.raises(InvalidInput, match="not an attribute name"):
        ldap_store(iam).list_users(10, attribute=("mail)(uid=*", "x"))


# ---------------------------------------------------------------- connections and TLS
def test_starttls_and_ldaps_with_certificate_validation(
        store_of: Callable[..., LdapUserStore], slapd_server: Slapd) -> None:
    ca = str(slapd_server.ca_file)
    for store in (store_of(start_tls=True, ca_certificate_file=ca),
                  store_of(connection_url=slapd_server.ldaps_url, ca_certificate_file=ca),
                  store_of(connection_url=slapd_server.ldaps_url, validate_certificate=False)):
        user = store.add_user(new(f"tls{uuid.uuid4().hex[:6]}", "Correct-horse-9"))
        assert store.verify_password(user.username, "Correct-horse-9") is not None
        assert store.health().reachable


def test_an_untrusted_certificate_is_refused(store_of: Callable[..., LdapUserStore],
                                             slapd_server: Slapd) -> None:
    store = store_of(connection_url=slapd_server.ldaps_url, connection_retry_count=0)
    with pytest.raises(StoreUnavailable, match="userstore X is unreachable at ldaps://"):
        store.get_user_by_name("anyone")
    health = store.health()
    assert not health.reachable and "unreachable" in health.detail


def test_a_wrong_bind_password_is_a_clear_error_without_the_password(
        store_of: Callable[..., LdapUserStore]) -> None:
    store = store_of(bind_password="Wrong-bind-secret")
    with pytest.raises(StoreUnavailable, match="refused the credentials of the bind DN") as e:
        store.get_user_by_name("anyone")
    assert "Wrong-bind-secret" not in str(e.value)
    assert "Wrong-bind-secret" not in store.health().detail
    assert "Wrong-bind-secret" not in repr(store.s)


def test_a_directory_that_is_down_is_store_unavailable(
        store_of: Callable[..., LdapUserStore]) -> None:
    from tests.ldap_server import free_port

    store = store_of(connection_url=f"ldap://127.0.0.1:{free_port()}",
                     connection_retry_count=1, connection_retry_delay=0)
    with pytest.raises(StoreUnavailable, match=r"userstore X is unreachable at ldap://127"):
        store.list_users(10)
    health = store.health()
    assert not health.reachable and health.latency_ms is None


def test_the_bind_password_is_encrypted_at_rest_and_masked(
        iam: Iam, slapd_server: Slapd) -> None:
    with iam.db.transaction() as conn:
        row = conn.execute(select(userstores_table).where(
            userstores_table.c.domain == DOMAIN)).mappings().one()
    assert "bind_password" not in row["properties"]
    assert SERVICE_PASSWORD not in json.dumps(dict(row["properties"]))
    assert SERVICE_PASSWORD not in json.dumps(row["secrets"])
    definition = iam.stores.definitions[DOMAIN]
    assert definition.properties["bind_password"] == SecretValue(SERVICE_PASSWORD)
    assert shown_properties(definition)["bind_password"] == "********"
    assert SERVICE_PASSWORD not in repr(definition)


def test_health_reads_the_search_bases(store_of: Callable[..., LdapUserStore],
                                       ldap_tree: LdapTree) -> None:
    assert store_of().health().reachable
    missing = store_of(group_search_base=f"ou=Nowhere,{ldap_tree.base}").health()
    assert not missing.reachable and "ou=Nowhere" in missing.detail


def test_the_store_recovers_after_the_directory_restarts(
        tmp_path: Any, sqlite_iam: Iam, admin: Initiator) -> None:
    from tests.ldap_server import running_slapd

    with running_slapd(tmp_path / "slapd") as server:
        tree = server.new_tree()
        sqlite_iam.save_userstore(admin, "FLAKY", "ldap", server.properties(
            tree, connection_retry_count=0))
        sqlite_iam.identity.add_user(admin, "PRIMARY-user")
        sqlite_iam.identity.add_user(admin, "FLAKY/kim")
        server.stop()
        with pytest.raises(StoreUnavailable, match="userstore FLAKY"):
            sqlite_iam.identity.get_user("FLAKY/kim")
        assert sqlite_iam.identity.get_user("PRIMARY-user").domain == "PRIMARY"
        server.start()
        assert sqlite_iam.identity.get_user("FLAKY/kim").username == "kim"


# ---------------------------------------------------------------- Active Directory
def test_ad_flavour_on_openldap_reads_through_memberof_back_links(
        store_of: Callable[..., LdapUserStore]) -> None:
    """Everything AD does that OpenLDAP can show: reads, lists, memberOf (its default)."""
    writer = store_of()
    user = writer.add_user(new("lee"))
    group = writer.add_group("admins", [user.id])
    ad = store_of("active_directory", user_entry_object_class="inetOrgPerson",
                  username_attribute="uid", username_search_filter="(&(objectClass=person)"
                  "(uid=?))", immutable_id_attribute="entryUUID",
                  group_entry_object_class="groupOfNames",
                  group_search_filter="(&(objectClass=groupOfNames)(cn=?))",
                  group_list_filter="(objectClass=groupOfNames)")
    assert ad.s.back_links and ad.s.member_of_attribute == "memberOf"
    assert ad.get_user_by_name("lee") == user
    assert [g.id for g in ad.groups_of(user.id)] == [group.id]
    assert names(ad.members_of(group.id, 10).items) == ["lee"]
    with pytest.raises(InvalidInput, match="only over LDAPS or StartTLS"):
        ad.add_user(new("mo", "Correct-horse-9"))
    with pytest.raises(InvalidInput, match="only over LDAPS or StartTLS"):
        ad.set_password(user.id, "Correct-horse-9")
    assert ad.get_user_by_name("mo") is None
    assert "passwords cannot be set" in ad.health().detail


@pytest.fixture
def ad() -> Iterator[tuple[ActiveDirectoryUserStore, list[tuple[str, str, Any]], Server]]:
    with ad_store() as made:
        yield made


def test_ad_creates_the_account_disabled_sets_unicodepwd_then_enables_it(ad: Any) -> None:
    store, log, server = ad
    user = store.add_user(new("nina", "Correct-Horse-9", mail="nina@corp.test"))
    dn = f"CN=nina,{AD_BASE}"
    assert [(op, d) for op, d, _ in log] == [("add", dn), ("modify", dn), ("modify", dn)]
    added = log[0][2]
    assert added["userAccountControl"] == str(AD_DISABLED) and "unicodePwd" not in added
    assert "userPassword" not in added and added["cn"] == "nina"
    assert log[1][2] == {"unicodePwd": [("MODIFY_REPLACE",
                                         ['"Correct-Horse-9"'.encode("utf-16-le")])]}
    assert log[2][2] == {"userAccountControl": [("MODIFY_REPLACE", ["512"])]}
    entry = server.dit[dn]
    assert entry["userAccountControl"] == [b"512"]
    assert user.id == str(uuid.UUID(bytes_le=entry["objectGUID"][0]))  # a UUID, not bytes
    assert user.created is not None and user.created.year == 2024
    assert store.get_user(user.id) == user  # found by its binary objectGUID
    assert store.get_user_by_name("NINA") == user


def test_ad_without_a_password_stays_disabled(ad: Any) -> None:
    store, log, server = ad
    store.add_user(new("otto"))
    assert [op for op, _, _ in log] == ["add"]
    assert server.dit[f"CN=otto,{AD_BASE}"]["userAccountControl"] == [b"514"]


def test_ad_deletes_the_account_when_its_password_is_refused(ad: Any) -> None:
    store, log, server = ad
    with pytest.raises(PolicyViolation, match="password policy"):
        store.add_user(new("pia", "weakpassword"))
    assert [op for op, _, _ in log] == ["add", "modify", "delete"]
    assert f"CN=pia,{AD_BASE}" not in server.dit
    assert "weakpassword" not in str(log[-1])


def test_ad_set_password_writes_unicodepwd(ad: Any) -> None:
    store, _log, server = ad
    user = store.add_user(new("rex"))
    store.set_password(user.id, "Battery-Staple-7")
    assert server.dit[f"CN=rex,{AD_BASE}"]["unicodePwd"] == [
        '"Battery-Staple-7"'.encode("utf-16-le")]


def test_ad_groups_have_objectguid_ids_and_no_placeholder(ad: Any) -> None:
    store, _log, server = ad
    user = store.add_user(new("sue"))
    group = store.add_group("Sales")
    assert uuid.UUID(group.id) and "member" not in server.dit[f"cn=Sales,{AD_BASE}"]
    assert store.get_group(group.id) == group
    store.update_members(group.id, add=[user.id])
    assert server.dit[f"cn=Sales,{AD_BASE}"]["member"] == [f"CN=sue,{AD_BASE}".encode()]


def test_ad_queries_match_objectguid_as_bytes_and_whencreated(ad: Any) -> None:
    store, _log, _server = ad
    nina, otto = store.add_users([new("nina"), new("otto")])
    sales = store.add_group("Sales", [nina.id])

    def users(query: Query) -> list[str]:
        page = store.search_users(query, 0, 10)
        assert page.total == len(page.items)
        return sorted(names(page.items))

    assert users(Compare(ID, Op.EQ, nina.id)) == ["nina"]  # the GUID's bytes, escaped
    others = And((Compare(ID, Op.NE, nina.id), Compare(ID, Op.PR)))  # not the service account
    assert users(others) == ["otto"]
    assert users(Compare(NAME, Op.SW, "OT")) == ["otto"]
    created = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)  # what the mock's AD writes
    assert users(Compare(CREATED, Op.EQ, created)) == ["nina", "otto"]
    assert users(Compare(CREATED, Op.GE, created)) == ["nina", "otto"]
    page = store.search_groups(Compare(MEMBER, Op.EQ, nina.id), 0, 10)
    assert [g.id for g in page.items] == [sales.id]
    assert store.search_groups(Compare(MEMBER, Op.EQ, otto.id), 0, 10).total == 0
    assert names(store.search_users(Compare(ID, Op.PR), 1, 1, Sort(NAME)).items) == ["otto"]


def test_ad_defaults_follow_the_reference() -> None:
    props = validated("AD", "active_directory", {
        "connection_url": "ldaps://dc", "bind_dn": "CN=x,DC=y", "bind_password": "z"})
    assert props["username_search_filter"] == "(&(objectClass=user)(cn=?))"
    assert props["group_list_filter"] == "(objectcategory=group)"
    assert props["member_of_attribute"] == "memberOf" and props["back_links_enabled"] is True
    assert props["immutable_id_attribute"] == "objectGUID"
    assert props["user_account_control"] == 512 and props["case_insensitive_usernames"] is True


@pytest.mark.parametrize(("change", "message"), [
    ({"username_search_filter": "(uid=x)"}, "exactly one '?'"),
    ({"username_list_filter": "(objectClass=person"}, "not an LDAP filter"),
    ({"user_search_base": "not a dn"}, "not a distinguished name"),
    ({"connection_url": "http://x"}, "ldap:// or ldaps://"),
    ({"connection_url": "ldaps://x", "start_tls": True}, "StartTLS upgrades"),
    ({"user_dn_pattern": "uid=x,dc=y"}, "must hold {0}"),
    ({"username_attribute": "uid)(x"}, "not an attribute name"),
    ({"max_list_length": 5000}, "between 0 and 1000"),
    ({"back_links_enabled": True}, "member_of_attribute: is required"),
])
def test_property_mistakes_are_reported_by_name(change: dict[str, Any], message: str) -> None:
    base = {"connection_url": "ldap://dir", "bind_dn": "cn=iam,dc=x", "bind_password": "p"}
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace("?", r"\?")):
        validated("LDAPX", "ldap", {**base, **change})
