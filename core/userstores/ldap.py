"""The directory userstore (ldap3): read-write LDAP, read-only LDAP and Active Directory.

Entries. A user is an entry under ``user_search_base`` named ``<username_attribute>=<name>``
(``CN=<name>`` in Active Directory) or by ``user_dn_pattern``; a group is
``<group_name_attribute>=<name>`` under ``group_search_base``. Ids are the immutable
``entryUUID`` (OpenLDAP) or ``objectGUID`` (Active Directory, read as a UUID string), so a
renamed entry keeps its id. Every value put into a filter is escaped
(``escape_filter_chars``), every value put into a DN too (``escape_rdn``).

Lists are paged with the simple paged results control (see ``ldap_conn``); the order is the
directory's (creation order for OpenLDAP), not alphabetical: sorting would need the
server-side sort control, which few directories offer on large result sets. Store queries
(``search_users``/``search_groups``) become one filter (``core.userstores.ldap_query``),
paged by index over the same paged searches, sorted here when few enough match.

Passwords. ``userPassword`` is written hashed here (``{SSHA}`` by default, which every
directory verifies) or as given (``PLAIN_TEXT``, for a directory that hashes it itself); a
password is checked by binding as the user, on a connection of its own. Active Directory
creates accounts and sets passwords its own way: see ``core.userstores.ldap_ad``.

Groups. ``groupOfNames`` (and ``groupOfUniqueNames``) must hold a member, so an empty group
holds the empty DN as a placeholder member: it names no entry, so no back link or
referential integrity overlay ever touches it, and it is never listed as a member.
Memberships are read both ways: through ``memberOf`` when back links are enabled, else by
searching groups for ``member=<user DN>``.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from itertools import islice
from typing import Any, TypeVar

from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, SUBTREE, Connection
from ldap3.core.exceptions import (
    LDAPException,
    LDAPNoSuchAttributeResult,
    LDAPNoSuchObjectResult,
    LDAPOperationResult,
)
from ldap3.protocol.rfc4527 import post_read_control
from ldap3.utils.ciDict import CaseInsensitiveDict
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn
from ldap3.utils.hashed import hashed

from core.errors import (
    AlreadyExists,
    IamError,
    InvalidInput,
    NotFound,
    ReadOnlyStore,
    TooManyMatches,
)
from core.userstores import query as store_query
from core.userstores.base import (
    Capabilities,
    Health,
    NewUser,
    Page,
    Policies,
    StoredGroup,
    StoredUser,
)
from core.userstores.ldap_conn import Connector, Directory, Query
from core.userstores.ldap_query import (
    FALSE_FILTER,
    LDAP_TIME,
    SORT_LIMIT,
    TRUE_FILTER,
    Vocabulary,
    check_attribute,
    compile_filter,
    exact_name_terms,
    id_filter,
    name_matches,
    sorted_by,
    user_sort_value,
)
from core.userstores.ldap_schema import MAX_PAGE, PLACEHOLDER, LdapSettings
from core.userstores.query import SearchPage, Sort

T = TypeVar("T")

POST_READ = "1.3.6.1.1.13.2"
#: The empty DN: the member an otherwise empty groupOfNames holds.
EMPTY_GROUP_MEMBER = ""
_CREATED = ("createTimestamp", "whenCreated")
_MODIFIED = ("modifyTimestamp", "whenChanged")
#: Never shown as user attributes, never written from claims.
_HIDDEN = {"objectclass", "userpassword", "unicodepwd", "useraccountcontrol", "objectsid",
           "ntsecuritydescriptor", *(a.lower() for a in _CREATED + _MODIFIED)}
_MEMBER_CLASSES = {"groupofnames", "groupofuniquenames"}
_PERSON_CLASSES = {"person", "organizationalperson", "inetorgperson"}


def _text(values: Sequence[bytes]) -> str | None:
    try:
        return ",".join(v.decode("utf-8") for v in values)
    except UnicodeDecodeError:
        return None  # a binary attribute (a photo, a certificate): not a claim value


def _first(raw: Mapping[str, Sequence[bytes]], name: str) -> str | None:
    values = raw.get(name)
    return values[0].decode("utf-8", "replace") if values else None


def _time(raw: Mapping[str, Sequence[bytes]], names: Sequence[str]) -> datetime | None:
    """A GeneralizedTime (``20240102030405Z``, AD: ``20240102030405.0Z``) as UTC."""
    for name in names:
        text = _first(raw, name)
        if text:
            digits = text[:14]
            if len(digits) < 14 or not digits.isdigit():
                return None
            try:
                return datetime(int(digits[:4]), int(digits[4:6]), int(digits[6:8]),
                                int(digits[8:10]), int(digits[10:12]), int(digits[12:14]),
                                tzinfo=UTC)
            except ValueError:
                return None
    return None


def _dn_key(dn: str) -> tuple[tuple[str, str], ...]:
    return tuple((a.lower(), v.lower()) for a, v, _ in parse_dn(dn))


def _under(dn: str, base: str) -> bool:
    try:
        entry, top = _dn_key(dn), _dn_key(base)
    except LDAPException:
        return False
    return len(entry) > len(top) and entry[-len(top):] == top


def _search(conn: Connection, base: str, filter_: str, attributes: Sequence[str],
            scope: str = SUBTREE) -> list[dict[str, Any]]:
    try:
        conn.search(base, filter_, scope, attributes=list(attributes))
    except LDAPNoSuchObjectResult:
        return []
    return [e for e in conn.response or () if e.get("type") == "searchResEntry"]


@dataclass(frozen=True)
class _Search:
    """A compiled store query: its search, the same search for counting, and the check a
    case-sensitive store makes itself on each entry the directory returns."""

    entries: Query
    counted: Query
    keep: Callable[[Mapping[str, Any]], bool]


class LdapUserStore:
    """A userstore in an LDAP directory (OpenLDAP, 389, ...); see the module docstring."""

    #: Whether the directory itself removes a deleted entry from every group.
    drops_deleted_members = False
    #: The attributes holding an entry's creation and modification time, and their format.
    time_attributes: tuple[str, str] = ("createTimestamp", "modifyTimestamp")
    time_format = LDAP_TIME

    def __init__(self, domain: str, settings: LdapSettings, policies: Policies | None = None,
                 connector: Connector | None = None) -> None:
        self.domain = domain
        self.s = settings
        self.policies = policies or Policies(case_insensitive_usernames=True)
        self.dir = Directory(domain, settings, connector)
        writable = not settings.read_only
        self.capabilities = Capabilities(
            writable_users=writable, readable_groups=settings.read_groups,
            writable_groups=writable and settings.read_groups and settings.write_groups,
            bulk_import=writable)
        s = settings
        self._user_attrs = ["*", s.id_attribute, *_CREATED, *_MODIFIED]
        self._group_attrs = [s.group_name_attribute, s.id_attribute, *_CREATED, *_MODIFIED]
        self._hidden = _HIDDEN | {s.username_attribute.lower(), s.id_attribute.lower(),
                                  s.member_of_attribute.lower()} - {""}
        self._placeholder = any(c.lower() in _MEMBER_CLASSES for c in s.group_object_classes)
        where = f"userstore {domain}"
        created, modified = self.time_attributes
        self._user_words = Vocabulary(
            where, s.username_attribute, s.id_attribute, s.binary_id, created=created,
            modified=modified, time_format=self.time_format)
        self._group_words = Vocabulary(
            where, s.group_name_attribute, s.id_attribute, s.binary_id, created=created,
            modified=modified, time_format=self.time_format, member=s.membership_attribute,
            attributes=False)

    # ------------------------------------------------------------------ mapping entries
    def _id(self, raw: Mapping[str, Sequence[bytes]]) -> str:
        values = raw.get(self.s.id_attribute)
        if not values:
            raise InvalidInput(f"userstore {self.domain}: an entry has no {self.s.id_attribute} "
                               "(check immutable_id_attribute)")
        if self.s.binary_id:
            return str(uuid.UUID(bytes_le=bytes(values[0])))
        return values[0].decode("utf-8")

    def _id_filter(self, entity_id: str) -> str | None:
        """``(<id attribute>=<id>)``, or None for a text that cannot be an id of this store."""
        return id_filter(self.s.id_attribute, self.s.binary_id, entity_id)

    def _user(self, entry: Mapping[str, Any]) -> StoredUser:
        raw = entry["raw_attributes"]
        attributes = {}
        for name, values in raw.items():
            if name.lower() not in self._hidden:
                text = _text(values)
                if text is not None:
                    attributes[name] = text
        username = _first(raw, self.s.username_attribute) or ""
        return StoredUser(self._id(raw), self.domain, username, attributes,
                          _time(raw, _CREATED), _time(raw, _MODIFIED))

    def _group(self, entry: Mapping[str, Any]) -> StoredGroup:
        raw = entry["raw_attributes"]
        return StoredGroup(self._id(raw), self.domain,
                           _first(raw, self.s.group_name_attribute) or "",
                           _time(raw, _CREATED), _time(raw, _MODIFIED))

    def _same_name(self, a: str, b: str) -> bool:
        return self.policies.key(a) == self.policies.key(b)

    # ------------------------------------------------------------------ finding entries
    def _user_dn(self, username: str) -> str:
        if self.s.user_dn_pattern:
            return self.s.user_dn_pattern.replace("{0}", escape_rdn(username))
        return f"{self.s.username_attribute}={escape_rdn(username)},{self.s.user_search_base}"

    def _user_filter(self, extra: str = "") -> str:
        return f"(&{self.s.username_list_filter}{extra})" if extra \
            else self.s.username_list_filter

    def _find_user(self, conn: Connection, username: str) -> dict[str, Any] | None:
        s = self.s
        if s.user_dn_pattern:
            found = _search(conn, self._user_dn(username), s.username_list_filter,
                            self._user_attrs, BASE)
        else:
            found = _search(conn, s.user_search_base, s.username_search_filter.replace(
                PLACEHOLDER, escape_filter_chars(username)), self._user_attrs)
        for entry in found:
            if self._same_name(_first(entry["raw_attributes"], s.username_attribute) or "",
                               username):
                return entry
        return None

    def _user_by_id(self, conn: Connection, user_id: str) -> dict[str, Any] | None:
        by_id = self._id_filter(user_id)
        if by_id is None:
            return None
        found = _search(conn, self.s.user_search_base, self._user_filter(by_id),
                        self._user_attrs)
        return found[0] if found else None

    def _need_user(self, conn: Connection, user_id: str) -> dict[str, Any]:
        entry = self._user_by_id(conn, user_id)
        if entry is None:
            raise NotFound(f"user {user_id} does not exist in {self.domain}")
        return entry

    def _group_filter(self, extra: str = "") -> str:
        return f"(&{self.s.group_list_filter}{extra})" if extra else self.s.group_list_filter

    def _find_group(self, conn: Connection, name: str) -> dict[str, Any] | None:
        s = self.s
        found = _search(conn, s.group_search_base, s.group_search_filter.replace(
            PLACEHOLDER, escape_filter_chars(name)), self._group_attrs)
        for entry in found:
            if self._same_name(_first(entry["raw_attributes"], s.group_name_attribute) or "",
                               name):
                return entry
        return None

    def _group_by_id(self, conn: Connection, group_id: str) -> dict[str, Any] | None:
        by_id = self._id_filter(group_id)
        if by_id is None:
            return None
        found = _search(conn, self.s.group_search_base, self._group_filter(by_id),
                        self._group_attrs)
        return found[0] if found else None

    def _need_group(self, conn: Connection, group_id: str) -> dict[str, Any]:
        entry = self._group_by_id(conn, group_id)
        if entry is None:
            raise NotFound(f"group {group_id} does not exist in {self.domain}")
        return entry

    def _member_dns(self, conn: Connection, user_ids: Iterable[str]) -> dict[str, str]:
        """user id -> entry DN; NotFound names the ids that are not users of this store."""
        wanted = list(dict.fromkeys(user_ids))
        found: dict[str, str] = {}
        for user_id in wanted:
            entry = self._user_by_id(conn, user_id)
            if entry is not None:
                found[user_id] = entry["dn"]
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFound(f"{len(missing)} member(s) are not users of {self.domain}: "
                           + ", ".join(sorted(missing)[:5]))
        return found

    # ------------------------------------------------------------------ guards
    def _require_writable(self, groups: bool = False) -> None:
        ok = self.capabilities.writable_groups if groups else self.capabilities.writable_users
        if not ok:
            what = "groups" if groups else "users"
            raise ReadOnlyStore(f"userstore {self.domain} is read-only for {what}")

    def _check_attributes(self, names: Iterable[str]) -> None:
        bad = sorted(n for n in names if n.lower() in self._hidden)
        if bad:
            raise InvalidInput(
                f"userstore {self.domain}: attribute(s) {', '.join(bad)} cannot be written "
                "through claims (map those claims to other attributes for this domain)")

    # ------------------------------------------------------------------ users: write
    def _password_value(self, password: str) -> str | bytes:
        method = self.s.password_hash_method
        if method == "PLAIN_TEXT":
            return password
        value: str | bytes = hashed("SALTED_SHA" if method == "SSHA" else "SHA", password)
        return value

    def _new_entry(self, user: NewUser) -> dict[str, Any]:
        attrs: dict[str, Any] = {k: v for k, v in user.attributes.items() if v != ""}
        self._check_attributes(attrs)
        attrs["objectClass"] = list(self.s.user_object_classes)
        attrs[self.s.username_attribute] = user.username
        lower = {k.lower() for k in attrs}
        if any(c.lower() in _PERSON_CLASSES for c in self.s.user_object_classes):
            for required in ("cn", "sn"):  # what person must have, as the reference does
                if required not in lower:
                    attrs[required] = user.username
        return attrs

    def add_user(self, user: NewUser) -> StoredUser:
        return self.add_users([user])[0]

    def add_users(self, users: Sequence[NewUser]) -> list[StoredUser]:
        """Add each user; if one fails, the ones added before it are deleted again."""
        self._require_writable()
        keys = [self.policies.key(u.username) for u in users]
        seen: set[str] = set()
        for u, key in zip(users, keys, strict=True):
            if key in seen:
                raise AlreadyExists(f"user {self.domain}/{u.username} appears twice")
            seen.add(key)
        entries = [self._new_entry(u) for u in users]
        self._before_add(users)
        added: list[StoredUser] = []
        try:
            for user, attrs in zip(users, entries, strict=True):
                added.append(self.dir.call(partial(self._add, user=user, attrs=attrs),
                                           write=True))
        except BaseException:
            for done in added:
                self._undo_add(done)
            raise
        return added

    def _before_add(self, users: Sequence[NewUser]) -> None:
        """Refusals due before anything is written (Active Directory: passwords and TLS)."""

    def _add(self, conn: Connection, user: NewUser, attrs: dict[str, Any]) -> StoredUser:
        dn = self._user_dn(user.username)
        if user.password:
            attrs = {**attrs, "userPassword": self._password_value(user.password)}
        if self._find_user(conn, user.username) is not None:
            raise AlreadyExists(f"user {self.domain}/{user.username} already exists")
        try:
            conn.add(dn, attributes=attrs, controls=[post_read_control(self._user_attrs)])
        except LDAPOperationResult as exc:
            if exc.result == 68:
                raise AlreadyExists(f"user {self.domain}/{user.username} already exists") \
                    from exc
            raise
        return self._added_user(conn, dn)

    def _added_user(self, conn: Connection, dn: str) -> StoredUser:
        control = ((conn.result.get("controls") or {}).get(POST_READ) or {}).get("value")
        read = (control or {}).get("result")
        if read:
            raw = {k: [v if isinstance(v, bytes) else str(v).encode() for v in vals]
                   for k, vals in read.items()}
            entry: dict[str, Any] = {"dn": dn, "raw_attributes": CaseInsensitiveDict(raw)}
            if self.s.id_attribute in entry["raw_attributes"]:
                return self._user(entry)
        found = _search(conn, dn, "(objectClass=*)", self._user_attrs, BASE)
        if not found:
            raise NotFound(f"userstore {self.domain}: the entry {dn} vanished after its creation")
        return self._user(found[0])

    def _undo_add(self, user: StoredUser) -> None:
        with contextlib.suppress(IamError):  # best effort: the first error is the one to report
            self.delete_user(user.id)

    def update_attributes(
        self, user_id: str, set_: Mapping[str, str], remove: Sequence[str] = ()
    ) -> StoredUser:
        self._require_writable()
        self._check_attributes([*set_, *remove])

        def run(conn: Connection) -> StoredUser:
            entry = self._need_user(conn, user_id)
            present = {k.lower() for k in entry["raw_attributes"]}
            changes: dict[str, list[tuple[str, list[str]]]] = {}
            for name, value in set_.items():
                if value != "":
                    changes[name] = [(MODIFY_REPLACE, [value])]
                elif name.lower() in present:
                    changes[name] = [(MODIFY_DELETE, [])]
            for name in remove:
                if name not in set_ and name.lower() in present:
                    changes[name] = [(MODIFY_DELETE, [])]
            if changes:
                conn.modify(entry["dn"], changes)
            return self._user(_search(conn, entry["dn"], "(objectClass=*)", self._user_attrs,
                                      BASE)[0])

        return self.dir.call(run, write=True)

    def delete_user(self, user_id: str) -> None:
        self._require_writable()

        def run(conn: Connection) -> None:
            dn = self._need_user(conn, user_id)["dn"]
            if self.capabilities.writable_groups and not self.drops_deleted_members:
                # Directories without a referential integrity overlay keep dangling members.
                groups = _search(conn, self.s.group_search_base, self._group_filter(
                    f"({self.s.membership_attribute}={escape_filter_chars(dn)})"), ["1.1"])
                for group in groups:
                    self._remove_members(conn, group["dn"], [dn])
            conn.delete(dn)

        self.dir.call(run, write=True)

    def set_password(self, user_id: str, password: str) -> None:
        self._require_writable()
        self._check_password_transport()
        self.dir.call(lambda c: self._write_password(c, self._need_user(c, user_id)["dn"],
                                                     password), write=True)

    def _check_password_transport(self) -> None:
        """Active Directory only takes passwords over an encrypted connection."""

    def _write_password(self, conn: Connection, dn: str, password: str) -> None:
        conn.modify(dn, {"userPassword": [(MODIFY_REPLACE, [self._password_value(password)])]})

    def verify_password(self, username: str, password: str) -> StoredUser | None:
        entry = self.dir.call(lambda c: self._find_user(c, username))
        if entry is None or not self.dir.verify(entry["dn"], password):
            return None
        return self._user(entry)

    # ------------------------------------------------------------------ users: read
    def get_user(self, user_id: str) -> StoredUser | None:
        entry = self.dir.call(lambda c: self._user_by_id(c, user_id))
        return self._user(entry) if entry else None

    def get_users(self, user_ids: Sequence[str]) -> dict[str, StoredUser]:
        """``get_user`` for many ids over one connection: the users that exist, by id."""
        def run(conn: Connection) -> dict[str, StoredUser]:
            entries = ((uid, self._user_by_id(conn, uid)) for uid in dict.fromkeys(user_ids))
            return {uid: self._user(e) for uid, e in entries if e is not None}

        return self.dir.call(run)

    def get_user_by_name(self, username: str) -> StoredUser | None:
        entry = self.dir.call(lambda c: self._find_user(c, username))
        return self._user(entry) if entry else None

    def _list_filter(self, prefix: str | None, attribute: tuple[str, str] | None) -> str:
        extra = ""
        if prefix:
            extra += f"({self.s.username_attribute}={escape_filter_chars(prefix)}*)"
        if attribute is not None:
            name, value = attribute
            extra += f"({check_attribute(f'userstore {self.domain}', name)}="\
                     f"{escape_filter_chars(value)})"
        return self._user_filter(extra)

    def _size(self, page_size: int) -> int:
        return max(1, min(page_size, self.s.page_limit))

    def list_users(
        self,
        page_size: int,
        cursor: str | None = None,
        prefix: str | None = None,
        attribute: tuple[str, str] | None = None,
    ) -> Page[StoredUser]:
        q = Query("users", self.s.user_search_base, self._list_filter(prefix, attribute),
                  self._user_attrs)
        entries, nxt = self.dir.paged(q, self._size(page_size), cursor)
        users = [self._user(e) for e in entries]
        if prefix and not self.policies.case_insensitive_usernames:
            users = [u for u in users if u.username.startswith(prefix)]
        return Page(users, nxt)

    def count_users(self, prefix: str | None = None) -> int:
        q = Query("count", self.s.user_search_base, self._list_filter(prefix, None),
                  [self.s.username_attribute] if prefix else ["1.1"])
        if not prefix or self.policies.case_insensitive_usernames:
            return sum(1 for _ in self.dir.each(q))
        return sum(1 for e in self.dir.each(q)
                   if (_first(e["raw_attributes"], self.s.username_attribute) or ""
                       ).startswith(prefix))

    def search_users(self, query: store_query.Query, start: int, count: int,
                     sort: Sort | None = None) -> SearchPage[StoredUser]:
        """The users matching ``query`` (one LDAP filter: see ``ldap_query``), ``start``
        (0-based) to ``start + count`` in the directory's order or in ``sort`` order, and
        how many match in all. A directory here cannot sort, so sorting is done here and
        only for at most ``SORT_LIMIT`` matches."""
        search = self._compiled(query, self._user_words, self.s.user_search_base,
                                self._user_filter, self._user_attrs)
        value = None if sort is None else partial(user_sort_value, sort.field,
                                                  key=self.policies.key)
        return self._search_page(search, start, count, self._user, value,
                                 bool(sort and sort.descending))

    def _compiled(self, query: store_query.Query, words: Vocabulary, base: str,
                  list_filter: Callable[[str], str], attributes: Sequence[str]
                  ) -> _Search | None:
        """The search for ``query``, or None when it matches nothing without asking."""
        found = compile_filter(query, words, self._member_dn)
        if found == FALSE_FILTER:
            return None
        flt = list_filter("" if found == TRUE_FILTER else found)
        names = () if self.policies.case_insensitive_usernames else exact_name_terms(query)
        return _Search(Query("search", base, flt, attributes),
                       Query("count", base, flt, [words.name] if names else ["1.1"]),
                       lambda e: name_matches(names, _first(e["raw_attributes"],
                                                            words.name) or ""))

    def _member_dn(self, user_id: str) -> str | None:
        entry = self.dir.call(lambda c: self._user_by_id(c, user_id))
        return entry["dn"] if entry else None

    def _search_page(self, search: _Search | None, start: int, count: int,
                     convert: Callable[[Mapping[str, Any]], T],
                     sort_value: Callable[[T], Any] | None, descending: bool
                     ) -> SearchPage[T]:
        """Index paging over the paged-results search: the entries before ``start`` are
        read and dropped (a directory cannot jump), ``total`` is a count of DNs only."""
        if search is None:
            return SearchPage(0, [])
        start, count = max(0, start), max(0, min(count, self.s.page_limit))
        total = sum(1 for e in self.dir.each(search.counted) if search.keep(e))
        if sort_value is not None:
            if total > SORT_LIMIT:
                raise TooManyMatches(
                    f"userstore {self.domain}: sorting needs a narrower filter: {total} "
                    f"users match, at most {SORT_LIMIT} can be sorted")
            every = [convert(e) for e in self.dir.each(search.entries) if search.keep(e)]
            return SearchPage(total, sorted_by(every, sort_value, descending)[
                start:start + count])
        if count == 0 or start >= total:
            return SearchPage(total, [])
        with contextlib.closing(self.dir.each(search.entries,
                                              min(MAX_PAGE, start + count))) as entries:
            window = list(islice((e for e in entries if search.keep(e)), start,
                                 start + count))
        return SearchPage(total, [convert(e) for e in window])

    # ------------------------------------------------------------------ groups
    def _group_dn(self, name: str) -> str:
        return f"{self.s.group_name_attribute}={escape_rdn(name)},{self.s.group_search_base}"

    def add_group(self, name: str, member_ids: Sequence[str] = ()) -> StoredGroup:
        self._require_writable(groups=True)

        def run(conn: Connection) -> StoredGroup:
            if self._find_group(conn, name) is not None:
                raise AlreadyExists(f"group {self.domain}/{name} already exists")
            members = list(self._member_dns(conn, member_ids).values())
            if not members and self._placeholder:
                members = [EMPTY_GROUP_MEMBER]
            attrs: dict[str, Any] = {"objectClass": list(self.s.group_object_classes),
                                     self.s.group_name_attribute: name}
            if members:
                attrs[self.s.membership_attribute] = members
            dn = self._group_dn(name)
            try:
                conn.add(dn, attributes=attrs, controls=[post_read_control(self._group_attrs)])
            except LDAPOperationResult as exc:
                if exc.result == 68:
                    raise AlreadyExists(f"group {self.domain}/{name} already exists") from exc
                raise
            return self._group(_search(conn, dn, "(objectClass=*)", self._group_attrs,
                                       BASE)[0])

        return self.dir.call(run, write=True)

    def get_group(self, group_id: str) -> StoredGroup | None:
        entry = self.dir.call(lambda c: self._group_by_id(c, group_id))
        return self._group(entry) if entry else None

    def get_group_by_name(self, name: str) -> StoredGroup | None:
        entry = self.dir.call(lambda c: self._find_group(c, name))
        return self._group(entry) if entry else None

    def rename_group(self, group_id: str, new_name: str) -> StoredGroup:
        self._require_writable(groups=True)

        def run(conn: Connection) -> StoredGroup:
            entry = self._need_group(conn, group_id)
            other = self._find_group(conn, new_name)
            if other is not None and other["dn"] != entry["dn"]:
                raise AlreadyExists(f"group {self.domain}/{new_name} already exists")
            rdn = f"{self.s.group_name_attribute}={escape_rdn(new_name)}"
            conn.modify_dn(entry["dn"], rdn)
            return self._group(self._need_group(conn, group_id))

        return self.dir.call(run, write=True)

    def delete_group(self, group_id: str) -> None:
        self._require_writable(groups=True)
        self.dir.call(lambda c: c.delete(self._need_group(c, group_id)["dn"]), write=True)

    def list_groups(
        self, page_size: int, cursor: str | None = None, prefix: str | None = None
    ) -> Page[StoredGroup]:
        extra = f"({self.s.group_name_attribute}={escape_filter_chars(prefix)}*)" \
            if prefix else ""
        q = Query("groups", self.s.group_search_base, self._group_filter(extra),
                  self._group_attrs)
        entries, nxt = self.dir.paged(q, self._size(page_size), cursor)
        groups = [self._group(e) for e in entries]
        if prefix and not self.policies.case_insensitive_usernames:
            groups = [g for g in groups if g.name.startswith(prefix)]
        return Page(groups, nxt)

    def search_groups(self, query: store_query.Query, start: int, count: int
                      ) -> SearchPage[StoredGroup]:
        """The groups matching ``query``, ``start`` (0-based) to ``start + count`` in the
        directory's order, and how many match in all."""
        search = self._compiled(query, self._group_words, self.s.group_search_base,
                                self._group_filter, self._group_attrs)
        return self._search_page(search, start, count, self._group, None, False)

    def _is_member(self, conn: Connection, group_dn: str, value: str) -> bool:
        try:
            conn.compare(group_dn, self.s.membership_attribute, value)
        except LDAPNoSuchAttributeResult:  # a group with no member at all
            return False
        return bool(conn.result.get("result") == 6)  # compareTrue

    def _add_members(self, conn: Connection, group_dn: str, dns: Sequence[str]) -> None:
        new = [dn for dn in dns if not self._is_member(conn, group_dn, dn)]
        if not new:
            return
        changes = [(MODIFY_ADD, new)]
        if self._placeholder and self._is_member(conn, group_dn, EMPTY_GROUP_MEMBER):
            changes.append((MODIFY_DELETE, [EMPTY_GROUP_MEMBER]))
        conn.modify(group_dn, {self.s.membership_attribute: changes})

    def _remove_members(self, conn: Connection, group_dn: str, dns: Sequence[str]) -> None:
        gone = [dn for dn in dns if self._is_member(conn, group_dn, dn)]
        if not gone:
            return
        attr = self.s.membership_attribute
        try:
            conn.modify(group_dn, {attr: [(MODIFY_DELETE, gone)]})
        except LDAPOperationResult as exc:
            if exc.result != 65 or not self._placeholder:  # 65: the last member would go
                raise
            conn.modify(group_dn, {attr: [(MODIFY_DELETE, gone),
                                          (MODIFY_ADD, [EMPTY_GROUP_MEMBER])]})

    def update_members(
        self, group_id: str, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> None:
        self._require_writable(groups=True)

        def run(conn: Connection) -> None:
            group_dn = self._need_group(conn, group_id)["dn"]
            dns = self._member_dns(conn, [*add, *remove])
            if add:
                self._add_members(conn, group_dn, [dns[i] for i in add])
            if remove:
                self._remove_members(conn, group_dn, [dns[i] for i in remove])

        self.dir.call(run, write=True)

    def members_of(
        self, group_id: str, page_size: int, cursor: str | None = None
    ) -> Page[StoredUser]:
        group_dn = self.dir.call(lambda c: self._need_group(c, group_id))["dn"]
        size = self._size(page_size)
        if self.s.back_links:
            q = Query("members", self.s.user_search_base, self._user_filter(
                f"({self.s.member_of_attribute}={escape_filter_chars(group_dn)})"),
                self._user_attrs)
            entries, nxt = self.dir.paged(q, size, cursor)
            return Page([self._user(e) for e in entries], nxt)
        return self._members_from_group(group_id, group_dn, size, cursor)

    def _members_from_group(self, group_id: str, group_dn: str, size: int,
                            cursor: str | None) -> Page[StoredUser]:
        """Without back links: the group's member values, a slice at a time."""
        start = _offset(cursor, group_id)

        def run(conn: Connection) -> tuple[list[StoredUser], bool]:
            group = _search(conn, group_dn, "(objectClass=*)", [self.s.membership_attribute],
                            BASE)
            values = group[0]["raw_attributes"].get(self.s.membership_attribute, []) \
                if group else []
            dns = [v.decode("utf-8") for v in values if v]
            users: list[StoredUser] = []
            for dn in dns[start:start + size]:
                found = _search(conn, dn, self.s.username_list_filter, self._user_attrs, BASE)
                users.extend(self._user(e) for e in found)
            return users, len(dns) > start + size

        users, more = self.dir.call(run)
        return Page(users, _offset_cursor(group_id, start + size) if more else None)

    def groups_of(self, user_id: str) -> list[StoredGroup]:
        return self.dir.call(lambda conn: self._groups_of(conn, self._need_user(conn, user_id)))

    def get_user_with_groups(self, user_id: str
                             ) -> tuple[StoredUser, list[StoredGroup]] | None:
        """Over one connection (a directory has no cheaper way to ask)."""
        def run(conn: Connection) -> tuple[StoredUser, list[StoredGroup]] | None:
            entry = self._user_by_id(conn, user_id)
            return (self._user(entry), self._groups_of(conn, entry)) if entry else None
        return self.dir.call(run)

    def groups_of_users(self, user_ids: Sequence[str]) -> dict[str, list[StoredGroup]]:
        """``groups_of`` for many users over one connection (a directory has no cheaper
        way to ask); an id that is not a user of this store has none."""
        def run(conn: Connection) -> dict[str, list[StoredGroup]]:
            out: dict[str, list[StoredGroup]] = {}
            for uid in user_ids:
                entry = self._user_by_id(conn, uid)
                out[uid] = self._groups_of(conn, entry) if entry is not None else []
            return out

        return self.dir.call(run)

    def _groups_of(self, conn: Connection, entry: Mapping[str, Any]) -> list[StoredGroup]:
        if self.s.back_links:
            found = _search(conn, entry["dn"], "(objectClass=*)",
                            [self.s.member_of_attribute], BASE)
            raw = found[0]["raw_attributes"] if found else {}
            groups: list[dict[str, Any]] = []
            for value in raw.get(self.s.member_of_attribute, []):
                dn = value.decode("utf-8")
                if _under(dn, self.s.group_search_base):
                    groups += _search(conn, dn, self.s.group_list_filter,
                                      self._group_attrs, BASE)
        else:
            groups = _search(conn, self.s.group_search_base, self._group_filter(
                f"({self.s.membership_attribute}={escape_filter_chars(entry['dn'])})"),
                self._group_attrs)
        return sorted((self._group(g) for g in groups),
                      key=lambda g: self.policies.key(g.name))

    # ------------------------------------------------------------------ operations
    def health(self) -> Health:
        started = time.perf_counter()
        bases = [self.s.user_search_base] + ([self.s.group_search_base]
                                             if self.s.read_groups else [])
        try:
            self.dir.health_check(bases)
        except IamError as exc:
            return Health(False, str(exc))
        return Health(True, self._health_note(), (time.perf_counter() - started) * 1000)

    def _health_note(self) -> str:
        return "ok"

    def bulk_loaded(self) -> None:
        """The directory keeps its own indexes current."""

    def close(self) -> None:
        self.dir.close()


def _offset(cursor: str | None, group_id: str) -> int:
    if not cursor:
        return 0
    kind, _, rest = cursor.partition(":")
    gid, _, number = rest.rpartition(":")
    if kind != "o" or gid != group_id or not number.isdigit():
        raise InvalidInput("the paging cursor is not valid for this group's members")
    return int(number)


def _offset_cursor(group_id: str, offset: int) -> str:
    return f"o:{group_id}:{offset}"
