"""The LDAP filter compiler (``core/userstores/ldap_query.py``), without a directory.

What the filters select in a real directory is in ``tests/test_ldap_search.py``; here, that
each query becomes the filter it should, that every filter is well formed, and that no value
changes a filter's shape.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from ldap3.core.exceptions import LDAPException
from ldap3.operation.search import parse_filter

from core.errors import InvalidInput
from core.userstores.base import StoredUser
from core.userstores.ldap_query import (
    AD_TIME,
    FALSE_FILTER,
    TRUE_FILTER,
    Vocabulary,
    compile_filter,
    exact_name_terms,
    name_matches,
    sorted_by,
    user_sort_value,
)
from core.userstores.query import (
    CREATED,
    FALSE,
    ID,
    MEMBER,
    MODIFIED,
    NAME,
    TRUE,
    And,
    Compare,
    Constant,
    Not,
    Op,
    Or,
    Query,
    attribute,
)

USERS = Vocabulary("userstore X", "uid", "entryUUID", False, "createTimestamp",
                   "modifyTimestamp")
GROUPS = Vocabulary("userstore X", "cn", "entryUUID", False, "createTimestamp",
                    "modifyTimestamp", member="member", attributes=False)
AD_USERS = Vocabulary("userstore AD", "cn", "objectGUID", True, "whenCreated", "whenChanged",
                      AD_TIME)
MAIL = attribute("mail")
UID = "6f0c1c2e-61e9-4b8e-9c43-6f3f3d0b2a11"


def parses(text: str) -> bool:
    try:
        parse_filter(text, None, False, False, None, False)
    except LDAPException:
        return False
    return True


@pytest.mark.parametrize(("op", "expected"), [
    (Op.EQ, "(mail=a@b)"), (Op.NE, "(!(mail=a@b))"), (Op.CO, "(mail=*a@b*)"),
    (Op.SW, "(mail=a@b*)"), (Op.EW, "(mail=*a@b)"), (Op.GE, "(mail>=a@b)"),
    (Op.LE, "(mail<=a@b)"), (Op.GT, "(&(mail>=a@b)(!(mail=a@b)))"),
    (Op.LT, "(&(mail<=a@b)(!(mail=a@b)))"),
])
def test_each_operator_becomes_its_filter(op: Op, expected: str) -> None:
    assert compile_filter(Compare(MAIL, op, "a@b"), USERS) == expected
    assert parses(expected)


def test_presence_and_empty_substrings() -> None:
    assert compile_filter(Compare(MAIL, Op.PR), USERS) == "(mail=*)"
    # "contains nothing" is presence; "**" would not be a filter at all
    assert compile_filter(Compare(MAIL, Op.CO, ""), USERS) == "(mail=*)"
    assert compile_filter(Compare(MAIL, Op.SW, ""), USERS) == "(mail=*)"


def test_and_or_not_nest_and_constants_fold() -> None:
    query = And((Compare(NAME, Op.SW, "a"),
                 Or((Compare(MAIL, Op.EQ, "x"), Not(Compare(MAIL, Op.PR))))))
    assert compile_filter(query, USERS) == "(&(uid=a*)(|(mail=x)(!(mail=*))))"
    assert compile_filter(TRUE, USERS) == TRUE_FILTER == "(objectClass=*)"
    assert compile_filter(FALSE, USERS) == FALSE_FILTER == "(!(objectClass=*))"
    assert compile_filter(And((TRUE, Compare(NAME, Op.EQ, "a"))), USERS) == "(uid=a)"
    assert compile_filter(Or((FALSE, Not(TRUE))), USERS) == FALSE_FILTER
    assert compile_filter(Not(Constant(False)), USERS) == TRUE_FILTER


@pytest.mark.parametrize("value", ["*)(uid=*", "\\", "(", ")", "a*b", "x)(|(cn=*",
                                   "\\2a", "é)\\00"])
@pytest.mark.parametrize("op", [Op.EQ, Op.NE, Op.CO, Op.SW, Op.EW, Op.GT, Op.GE, Op.LT,
                                Op.LE])
def test_no_value_changes_the_shape_of_a_filter(op: Op, value: str) -> None:
    text = compile_filter(And((Compare(NAME, op, value), Compare(MAIL, op, value))), USERS)
    plain = compile_filter(And((Compare(NAME, op, "v"), Compare(MAIL, op, "v"))), USERS)
    assert parses(text)
    for special in "()*":  # the value's own appear only as escapes (\28 \29 \2a)
        assert text.count(special) == plain.count(special)


def test_a_nul_character_is_refused_in_text_and_matches_no_id() -> None:
    for field in (NAME, MAIL):
        with pytest.raises(InvalidInput, match="userstore X: a value with a NUL character"):
            compile_filter(Compare(field, Op.CO, "a\0"), USERS)
    assert compile_filter(Compare(ID, Op.EQ, "\0"), USERS) == FALSE_FILTER
    assert compile_filter(Compare(MEMBER, Op.EQ, "\0"), GROUPS, {}.get) == FALSE_FILTER


def test_an_attribute_name_cannot_carry_a_filter() -> None:
    with pytest.raises(InvalidInput, match="userstore X: 'mail\\)\\(uid=\\*' is not an "):
        compile_filter(Compare(attribute("mail)(uid=*"), Op.EQ, "x"), USERS)


def test_ids_compare_by_equality_as_uuids() -> None:
    assert compile_filter(Compare(ID, Op.EQ, UID.upper()), USERS) == f"(entryUUID={UID})"
    assert compile_filter(Compare(ID, Op.NE, UID), USERS) == f"(!(entryUUID={UID}))"
    assert compile_filter(Compare(ID, Op.PR), USERS) == "(entryUUID=*)"
    assert compile_filter(Compare(ID, Op.EQ, "*)(uid=*"), USERS) == FALSE_FILTER
    assert compile_filter(Compare(ID, Op.NE, "not-a-uuid"), USERS) == f"(!{FALSE_FILTER})"
    guid = uuid.UUID(UID).bytes_le
    assert compile_filter(Compare(ID, Op.EQ, UID), AD_USERS) == "(objectGUID=" + "".join(
        f"\\{b:02x}" for b in guid) + ")"
    for op in (Op.CO, Op.SW, Op.GT, Op.LE):
        with pytest.raises(InvalidInput, match="ids can only be compared with eq, ne or pr"):
            compile_filter(Compare(ID, op, UID[:8]), USERS)


def test_a_text_id_attribute_takes_every_operator() -> None:
    words = Vocabulary("userstore X", "uid", "employeeNumber", False, "c", "m")
    assert compile_filter(Compare(ID, Op.SW, "4*"), words) == "(employeeNumber=4\\2a*)"


def test_times_are_generalized_time_in_utc() -> None:
    t = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert compile_filter(Compare(MODIFIED, Op.GT, t), USERS) == (
        "(&(modifyTimestamp>=20240102030405Z)(!(modifyTimestamp=20240102030405Z)))")
    assert compile_filter(Compare(CREATED, Op.LE, t), USERS) == (
        "(createTimestamp<=20240102030405Z)")
    zurich = t.astimezone(timezone(timedelta(hours=1)))
    assert compile_filter(Compare(CREATED, Op.EQ, zurich), USERS) == (
        "(createTimestamp=20240102030405Z)")
    naive = datetime(2024, 1, 2, 3, 4, 5)  # taken as UTC
    assert compile_filter(Compare(CREATED, Op.EQ, naive), USERS) == (
        "(createTimestamp=20240102030405Z)")
    assert compile_filter(Compare(MODIFIED, Op.GE, t), AD_USERS) == (
        "(whenChanged>=20240102030405.0Z)")
    assert compile_filter(Compare(MODIFIED, Op.PR), AD_USERS) == "(whenChanged=*)"


def test_a_time_with_a_fraction_is_rounded_to_keep_the_comparison_exact() -> None:
    t = datetime(2024, 1, 2, 3, 4, 5, 500_000, tzinfo=UTC)
    assert compile_filter(Compare(MODIFIED, Op.GT, t), USERS) == (
        "(modifyTimestamp>=20240102030406Z)")
    assert compile_filter(Compare(MODIFIED, Op.GE, t), USERS) == (
        "(modifyTimestamp>=20240102030406Z)")
    assert compile_filter(Compare(MODIFIED, Op.LT, t), USERS) == (
        "(modifyTimestamp<=20240102030405Z)")
    assert compile_filter(Compare(MODIFIED, Op.LE, t), USERS) == (
        "(modifyTimestamp<=20240102030405Z)")
    assert compile_filter(Compare(MODIFIED, Op.EQ, t), USERS) == FALSE_FILTER
    assert compile_filter(Compare(MODIFIED, Op.NE, t), USERS) == TRUE_FILTER


@pytest.mark.parametrize("term", [Compare(MODIFIED, Op.GT, "yesterday"),
                                  Compare(CREATED, Op.SW, datetime(2024, 1, 1, tzinfo=UTC)),
                                  Compare(NAME, Op.EQ, datetime(2024, 1, 1, tzinfo=UTC))])
def test_a_value_of_the_wrong_kind_is_a_clear_error(term: Compare) -> None:
    with pytest.raises(InvalidInput, match=f"userstore X: the operator {term.op.value}"):
        compile_filter(term, USERS)


def test_members_compare_by_the_users_dn() -> None:
    dns = {UID: "uid=a\\,b (x*),ou=Users,dc=example,dc=org"}
    query = Compare(MEMBER, Op.EQ, UID)
    assert compile_filter(query, GROUPS, dns.get) == (
        "(member=uid=a\\5c,b \\28x\\2a\\29,ou=Users,dc=example,dc=org)")
    assert compile_filter(Compare(MEMBER, Op.EQ, str(uuid.uuid4())), GROUPS, dns.get) == (
        FALSE_FILTER)
    assert compile_filter(Compare(NAME, Op.EQ, "staff"), GROUPS) == "(cn=staff)"
    assert compile_filter(query, USERS, dns.get) == FALSE_FILTER  # users have no members
    assert compile_filter(Compare(MAIL, Op.EQ, "x"), GROUPS) == FALSE_FILTER
    with pytest.raises(InvalidInput, match="group members can only be compared with eq"):
        compile_filter(Compare(MEMBER, Op.NE, UID), GROUPS, dns.get)


@pytest.mark.parametrize(("query", "found"), [
    (Compare(NAME, Op.EQ, "Judy"), 1),
    (And((Compare(NAME, Op.SW, "Ju"), Compare(MAIL, Op.PR), Compare(NAME, Op.EQ, "Judy"))), 2),
    (Or((Compare(NAME, Op.EQ, "Judy"), Compare(MAIL, Op.PR))), 0),
    (Not(Compare(NAME, Op.EQ, "Judy")), 0),
    (Compare(NAME, Op.CO, "ud"), 0),
])
def test_only_name_terms_that_must_hold_are_checked_by_the_store(query: Query,
                                                                  found: int) -> None:
    terms = exact_name_terms(query)
    assert len(terms) == found
    if terms:
        assert name_matches(terms, "Judy") and not name_matches(terms, "judy")


def test_sorting_puts_entries_without_a_value_last_either_way() -> None:
    def user(name: str, mail: str | None) -> StoredUser:
        return StoredUser(name, "X", name, {"Mail": mail} if mail else {})

    users = [user("c", "B@x"), user("a", None), user("b", "a@x"), user("d", "c@x")]
    by_mail = attribute("mail")
    asc = sorted_by(users, lambda u: user_sort_value(by_mail, u, str.casefold), False)
    desc = sorted_by(users, lambda u: user_sort_value(by_mail, u, str.casefold), True)
    assert [u.username for u in asc] == ["b", "c", "d", "a"]
    assert [u.username for u in desc] == ["d", "c", "b", "a"]
    by_name = sorted_by(users, lambda u: user_sort_value(NAME, u, str.casefold), True)
    assert [u.username for u in by_name] == ["d", "c", "b", "a"]
