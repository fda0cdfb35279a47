"""Compiling a store query (``core/userstores/query.py``) into an RFC 4515 LDAP filter.

Every value goes through ``escape_filter_chars`` (a binary ``objectGUID`` is written byte by
byte as ``\\xx``), so no value can change the filter's shape. ``eq`` is ``(a=v)``, ``ne``
``(!(a=v))``, ``co``/``sw``/``ew`` substring filters, ``pr`` ``(a=*)``, ``ge``/``le`` the
ordering filters, and ``gt``/``lt`` (which LDAP lacks) ``(&(a>=v)(!(a=v)))`` and
``(&(a<=v)(!(a=v)))``. Constants are ``(objectClass=*)`` and ``(!(objectClass=*))``.

A text value holding a NUL character is refused: escaped it is harmless, but OpenLDAP's
substring matching drops it (``(mail=*\\00*)`` matches every mail), so no answer would be
exact. Ids and members are looked up as such, so there it simply matches nothing.

Fields. The name is the store's username (or group name) attribute; the id its
``entryUUID`` or ``objectGUID``, which a directory matches by equality only, so the id takes
``eq``, ``ne`` and ``pr`` (a UUID in any case; text that is no UUID matches nothing) and any
other operator is refused; created and modified are ``createTimestamp``/``modifyTimestamp``
(Active Directory: ``whenCreated``/``whenChanged``), compared as GeneralizedTime in UTC.
Directories keep whole seconds, so a time with a fraction is rounded the way that keeps the
comparison exact (``gt 10:00:00.5`` is ``>= 10:00:01``, ``eq`` with a fraction matches
nothing). A group's member is the user's DN in the membership attribute, resolved by the
user's id first (an unknown id matches nothing).

How this differs from the SQL stores, on purpose: the directory's matching rules decide.
Most attributes (``uid``, ``cn``, ``mail``) compare case-insensitively for every operator,
where SQL compares ``eq``/``sw``/ordering case-sensitively; an ordering (``gt``, ``le``..)
on an attribute whose schema has no ordering rule (``uid``, ``mail`` in OpenLDAP's) or on an
attribute the directory does not know matches nothing, and so does its negation (LDAP's
"undefined" stays undefined under ``!``). A case-sensitive store
(``case_insensitive_usernames`` false) checks the name comparisons that must all hold
(``eq``/``sw`` at the top of the filter) itself on what the directory returned, as its
listing does with a prefix; a name comparison under ``or``/``not`` is the directory's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from ldap3.utils.conv import escape_filter_chars

from core.errors import InvalidInput
from core.userstores.base import StoredUser
from core.userstores.query import And, Compare, Constant, Field, Kind, Not, Op, Or, Query, simplify

T = TypeVar("T")

TRUE_FILTER = "(objectClass=*)"
FALSE_FILTER = "(!(objectClass=*))"
#: GeneralizedTime as OpenLDAP writes it, and as Active Directory does.
LDAP_TIME = "%Y%m%d%H%M%SZ"
AD_TIME = "%Y%m%d%H%M%S.0Z"
#: Directories here have no server-side sorting: at most this many matches are sorted here.
SORT_LIMIT = 1000


@dataclass(frozen=True)
class Vocabulary:
    """What a query's fields are called in one directory, for its users or its groups."""

    where: str  # "userstore X", for messages
    name: str
    id: str
    binary_id: bool
    created: str
    modified: str
    time_format: str = LDAP_TIME
    #: Groups: the attribute holding the members' DNs ("" for users: no member field).
    member: str = ""
    #: Users: attribute fields name directory attributes (groups have none here).
    attributes: bool = True


def check_attribute(where: str, name: str) -> str:
    """``name`` if it is an attribute description, so it cannot carry a filter."""
    if not name or not all(ch.isalnum() or ch in "-;." for ch in name):
        raise InvalidInput(f"{where}: {name!r} is not an attribute name")
    return name


def escape_binary(data: bytes) -> str:
    return "".join(f"\\{b:02x}" for b in data)


def id_filter(attribute: str, binary: bool, entity_id: str) -> str | None:
    """``(<id attribute>=<id>)``, or None for a text that cannot be an id of this store."""
    if binary or attribute.lower() == "entryuuid":
        try:
            parsed = uuid.UUID(entity_id)
        except ValueError:
            return None
        value = escape_binary(parsed.bytes_le) if binary else str(parsed)
        return f"({attribute}={value})"
    return f"({attribute}={escape_filter_chars(entity_id)})"


def compile_filter(query: Query, words: Vocabulary,
                   member_dn: Callable[[str], str | None] = lambda _: None) -> str:
    """The filter selecting what ``query`` matches (without the store's list filter).

    ``member_dn`` resolves a user id to the user's entry DN (None: no such user)."""
    return _compile(simplify(query), words, member_dn)


def _compile(query: Query, words: Vocabulary, member_dn: Callable[[str], str | None]) -> str:
    if isinstance(query, Compare):
        return _leaf(query, words, member_dn)
    if isinstance(query, And | Or):
        op = "&" if isinstance(query, And) else "|"
        return f"({op}{''.join(_compile(t, words, member_dn) for t in query.terms)})"
    if isinstance(query, Not):
        return f"(!{_compile(query.term, words, member_dn)})"
    assert isinstance(query, Constant)
    return TRUE_FILTER if query.value else FALSE_FILTER


def _leaf(term: Compare, words: Vocabulary, member_dn: Callable[[str], str | None]) -> str:
    kind = term.field.kind
    if kind is Kind.MEMBER:
        if not words.member:
            return FALSE_FILTER  # users have no members
        if term.op is not Op.EQ:
            raise InvalidInput(f"{words.where}: group members can only be compared with eq")
        dn = member_dn(_text(term, words))
        return FALSE_FILTER if dn is None else f"({words.member}={escape_filter_chars(dn)})"
    if kind is Kind.ID:
        return _id_term(term, words)
    if term.field.is_time:
        return _time_term(term, words)
    if kind is Kind.ATTRIBUTE:
        if not words.attributes:
            return FALSE_FILTER  # groups have no attributes here, as in the SQL stores
        attribute = check_attribute(words.where, term.field.name)
    else:
        attribute = words.name
    return _compare(attribute, term.op, None if term.op is Op.PR else _text(term, words))


def _text(term: Compare, words: Vocabulary) -> str:
    if not isinstance(term.value, str):
        raise InvalidInput(f"{words.where}: the operator {term.op.value} needs a text value "
                           f"here, not {term.value!r}")
    if "\0" in term.value and term.field.kind not in (Kind.ID, Kind.MEMBER):
        # Escaped, it cannot break the filter; but OpenLDAP's substring matching drops it
        # (``*\00*`` matches every value), so no answer would be exact.
        raise InvalidInput(f"{words.where}: a value with a NUL character cannot be compared "
                           "in a directory")
    return term.value


def _compare(attribute: str, op: Op, value: str | None) -> str:
    """One comparison; ``value`` is raw text (escaped here), None only for ``pr``."""
    if op is Op.PR or value is None:
        return f"({attribute}=*)"
    v = escape_filter_chars(value)
    forms = {
        Op.EQ: f"({attribute}={v})", Op.NE: f"(!({attribute}={v}))",
        # an empty part would make "**": contains "" is presence
        Op.CO: f"({attribute}=*{v}*)" if v else f"({attribute}=*)",
        Op.SW: f"({attribute}={v}*)", Op.EW: f"({attribute}=*{v})",
        Op.GE: f"({attribute}>={v})", Op.LE: f"({attribute}<={v})",
        Op.GT: f"(&({attribute}>={v})(!({attribute}={v})))",
        Op.LT: f"(&({attribute}<={v})(!({attribute}={v})))",
    }
    return forms[op]


def _id_term(term: Compare, words: Vocabulary) -> str:
    if term.op is Op.PR:
        return f"({words.id}=*)"
    uuid_id = words.binary_id or words.id.lower() == "entryuuid"
    if term.op not in (Op.EQ, Op.NE):
        if uuid_id:
            raise InvalidInput(f"{words.where}: ids can only be compared with eq, ne or pr "
                               f"(the directory matches {words.id} by equality only)")
        return _compare(words.id, term.op, _text(term, words))
    exact = id_filter(words.id, words.binary_id, _text(term, words)) or FALSE_FILTER
    return exact if term.op is Op.EQ else f"(!{exact})"


def _time_term(term: Compare, words: Vocabulary) -> str:
    attribute = words.created if term.field.kind is Kind.CREATED else words.modified
    if term.op is Op.PR:
        return f"({attribute}=*)"
    value = term.value
    if not isinstance(value, datetime) or term.op in (Op.CO, Op.SW, Op.EW):
        raise InvalidInput(f"{words.where}: the operator {term.op.value} cannot compare "
                           f"{term.field.kind.value} with {value!r}")
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    whole = utc.replace(microsecond=0)
    if whole == utc:
        return _compare(attribute, term.op, whole.strftime(words.time_format))
    # Stored times are whole seconds: compare with the second that keeps the answer exact.
    if term.op in (Op.EQ, Op.NE):
        return FALSE_FILTER if term.op is Op.EQ else TRUE_FILTER
    if term.op in (Op.GT, Op.GE):
        return _compare(attribute, Op.GE, (whole + timedelta(seconds=1)).strftime(
            words.time_format))
    return _compare(attribute, Op.LE, whole.strftime(words.time_format))


# ---------------------------------------------------------------- checked here, not there
def exact_name_terms(query: Query) -> tuple[Compare, ...]:
    """The name ``eq``/``sw`` comparisons that must all hold for ``query`` to match: what a
    case-sensitive store checks itself on what the (case-ignoring) directory returned."""
    top = simplify(query)
    terms = top.terms if isinstance(top, And) else (top,)
    return tuple(t for t in terms if isinstance(t, Compare) and t.field.kind is Kind.NAME
                 and t.op in (Op.EQ, Op.SW) and isinstance(t.value, str))


def name_matches(terms: Sequence[Compare], name: str) -> bool:
    return all(name == t.value if t.op is Op.EQ else name.startswith(str(t.value))
               for t in terms)


# ---------------------------------------------------------------- sorting here
def user_sort_value(field: Field, user: StoredUser, key: Callable[[str], str]) -> Any:
    """What users sort by on ``field`` (None: the user has no value); ``key`` is the store's
    name key. Attribute values sort ignoring case, as directories mostly compare them."""
    if field.kind is Kind.NAME:
        return key(user.username)
    if field.kind is Kind.ID:
        return user.id
    if field.kind is Kind.CREATED:
        return user.created
    if field.kind is Kind.MODIFIED:
        return user.modified
    if field.kind is Kind.ATTRIBUTE:
        wanted = field.name.lower()
        value = next((v for k, v in user.attributes.items() if k.lower() == wanted), None)
        return None if value is None else (value.casefold(), value)
    return None


def sorted_by(items: Sequence[T], value: Callable[[T], Any], descending: bool) -> list[T]:
    """``items`` in the order of ``value``; those without one last either way (RFC 7644
    §3.4.2.3), ties in the order given."""
    keyed = [(value(item), item) for item in items]
    present = sorted((p for p in keyed if p[0] is not None), key=lambda p: p[0],
                     reverse=descending)
    return [item for _, item in present] + [item for v, item in keyed if v is None]
