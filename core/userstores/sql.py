"""The SQL userstore (SQLAlchemy Core): PRIMARY, and any external SQL database.

Rows are keyed by an integer ``pk``; the immutable public id is a UUID. Listing is keyset
paging on ``(store, username_key)`` and search on ``(name, value)`` of the attribute table,
so the first page, a username prefix search and an exact attribute search read a bounded
number of index entries whatever the size of the store.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    String,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    null,
    select,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from core import ambient
from core.ambient import ALONE_READ, ALONE_WRITE, current_connection
from core.db import (
    MULTI_ROW_INSERT,
    CarriedShape,
    InStatement,
    carried_shape,
    carried_values,
    carrying,
    execute_compiled,
    in_chunks,
    insert_rows,
    replacing_on_conflict,
)
from core.errors import AlreadyExists, InvalidInput, NotFound, ReadOnlyStore, StoreUnavailable
from core.passwords import PasswordHashing
from core.schema import um_groups, um_memberships, um_user_attributes, um_users
from core.userstores.base import (
    Capabilities,
    Health,
    NewUser,
    Page,
    Policies,
    StoredGroup,
    StoredUser,
)
from core.userstores.query import Query, SearchPage, Sort
from core.userstores.query_guard import guarded
from core.userstores.sql_query import (
    GROUP_COLUMNS,
    PREFIX_END,
    USER_COLUMNS,
    Statements,
    group_statements,
    shape,
    user_statements,
)

log = logging.getLogger("mware_iam.store")

MAX_PAGE_SIZE = 1000
#: The largest offset a search passes on (SQLite's integers end at 2**63 - 1; a larger
#: ``startIndex`` pages past every match all the same).
MAX_OFFSET = 2**62
#: Threads hashing the passwords of a batch (each argon2id hash holds its own memory).
_HASH_THREADS = min(4, os.cpu_count() or 1)


def _now() -> datetime:
    return datetime.now(UTC)


def _encode_cursor(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode()


def _decode_cursor(cursor: str, kind: str) -> str:
    try:
        got_kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("the paging cursor is not valid (start the listing again)") from exc
    if got_kind != kind:
        raise InvalidInput("the paging cursor belongs to another listing")
    return value


def _decode_position(cursor: str) -> int:
    """The row position of an attribute-search cursor."""
    try:
        return int(_decode_cursor(cursor, "p"))
    except ValueError:
        raise InvalidInput("the paging cursor is not valid (start the listing again)") from None


def _hash_passwords(hashing: PasswordHashing, passwords: Sequence[str | None]) -> list[str | None]:
    """argon2id hashes of the given passwords (None where there is none), in order.

    Several are hashed on a few threads at once: argon2 releases the GIL, and a batch import
    with passwords spends nearly all its time here.
    """
    todo = [p for p in passwords if p]
    if len(todo) < 2:
        return [hashing.hash(p) if p else None for p in passwords]
    with ThreadPoolExecutor(max_workers=min(len(todo), _HASH_THREADS)) as pool:
        hashed = iter(list(pool.map(hashing.hash, todo)))
    return [next(hashed) if p else None for p in passwords]


#: The variant digit of an RFC 4122 UUID for any random hex digit (bits 10xx).
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def _new_ids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs as text: ``str(uuid.uuid4())``, three times faster,
    which a bulk import of a million users notices."""
    h = os.urandom(16 * count).hex()
    return [f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-{_VARIANT[h[i + 16]]}"
            f"{h[i + 17:i + 20]}-{h[i + 20:i + 32]}" for i in range(0, 32 * count, 32)]


class SqlUserStore:
    """A userstore in the ``um_*`` tables of one SQL database."""

    def __init__(
        self,
        domain: str,
        engine: Engine,
        hashing: PasswordHashing,
        policies: Policies | None = None,
        read_only: bool = False,
        keeps_passwords: bool = True,
    ) -> None:
        self.domain = domain
        self.engine = engine
        self.hashing = hashing
        self.policies = policies or Policies()
        self.capabilities = Capabilities(
            writable_users=not read_only, writable_groups=not read_only, bulk_import=not read_only,
            keeps_passwords=keeps_passwords,
        )

    # ------------------------------------------------------------------ plumbing
    @contextlib.contextmanager
    def _conn(self) -> Iterator[Connection]:
        """The ambient system-DB transaction when this store lives there, else our own."""
        ambient = current_connection(self.engine)
        if ambient is not None:
            yield ambient
            return
        try:
            with self.engine.begin() as conn:
                yield conn
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, IntegrityError):
                raise
            raise StoreUnavailable(f"userstore {self.domain} is unreachable: {exc.orig}") from exc

    def _require_writable(self, groups: bool = False) -> None:
        ok = self.capabilities.writable_groups if groups else self.capabilities.writable_users
        if not ok:
            what = "groups" if groups else "users"
            raise ReadOnlyStore(f"userstore {self.domain} is read-only for {what}")

    def _read_user(self, conn: Connection, user_id: str) -> tuple[int, StoredUser] | None:
        """A user of this store with its attributes (one statement), and its key."""
        rows = conn.execute(_USER_WITH_ATTRIBUTES, {"id": user_id}).all()
        if not rows or rows[0].store != self.domain:
            return None
        r = rows[0]
        attributes = {a.attribute: a.value for a in rows if a.attribute is not None}
        return r.pk, StoredUser(r.user_id, self.domain, r.username, attributes, r.created,
                                r.modified)

    def _user_pk(self, conn: Connection, user_id: str) -> int:
        row = conn.execute(_USER_BY_ID, {"id": user_id}).first()
        if row is None or row.store != self.domain:
            raise NotFound(f"user {user_id} does not exist in {self.domain}")
        return int(row.pk)

    def _group_pk(self, conn: Connection, group_id: str) -> int:
        pk = conn.execute(
            select(um_groups.c.pk).where(um_groups.c.group_id == group_id,
                                         um_groups.c.store == self.domain)
        ).scalar()
        if pk is None:
            raise NotFound(f"group {group_id} does not exist in {self.domain}")
        return int(pk)

    def _attributes(self, conn: Connection, pks: Sequence[int]) -> dict[int, dict[str, str]]:
        out: dict[int, dict[str, str]] = {pk: {} for pk in pks}
        if not pks:
            return out
        for row in _ATTRIBUTES_OF.execute(conn, {"pks": list(pks)}):
            out[row.user_pk][row.name] = row.value
        return out

    def _users(self, conn: Connection, rows: Sequence[Any]) -> list[StoredUser]:
        attrs = self._attributes(conn, [r.pk for r in rows])
        return [
            StoredUser(r.user_id, self.domain, r.username, attrs[r.pk], r.created, r.modified)
            for r in rows
        ]

    def _group(self, r: Any) -> StoredGroup:
        return StoredGroup(r.group_id, self.domain, r.name, r.created, r.modified)

    _user_cols = USER_COLUMNS
    _group_cols = GROUP_COLUMNS

    # ------------------------------------------------------------------ users
    def add_user(self, user: NewUser) -> StoredUser:
        return self.add_users([user])[0]

    def add_users(self, users: Sequence[NewUser]) -> list[StoredUser]:
        """Insert a batch in one round of ``executemany``; all or nothing."""
        self._require_writable()
        now = _now()
        keys = [self.policies.key(u.username) for u in users]
        if len(set(keys)) != len(keys):
            seen: set[str] = set()
            for u, key in zip(users, keys, strict=True):
                if key in seen:
                    raise AlreadyExists(f"user {self.domain}/{u.username} appears twice")
                seen.add(key)
        hashes = _hash_passwords(self.hashing, [u.password for u in users])
        rows: list[dict[str, Any]] = [
            {"store": self.domain, "user_id": user_id, "username": u.username,
             "username_key": key, "created": now, "modified": now, "password_hash": hashed}
            for u, key, hashed, user_id in zip(users, keys, hashes, _new_ids(len(users)),
                                               strict=True)
        ]
        with self._conn() as conn:
            if not self._inserted_with_attributes(conn, rows, users):
                pks = self._insert_users(conn, rows, keys)
                attr_rows = [
                    (pks[r["user_id"]], k, v)
                    for r, u in zip(rows, users, strict=True)
                    for k, v in u.attributes.items()
                ]
                if attr_rows:
                    insert_rows(conn, um_user_attributes, _ATTRIBUTE_COLUMNS, attr_rows)
        return [
            StoredUser(r["user_id"], self.domain, r["username"], dict(u.attributes), now, now)
            for r, u in zip(rows, users, strict=True)
        ]

    @staticmethod
    def _inserted_with_attributes(conn: Connection, rows: list[dict[str, Any]],
                                  users: Sequence[NewUser]) -> bool:
        """On PostgreSQL, one user with a few attributes (a SCIM POST) inserted in one
        statement: one round trip less. False when it was not: on other dialects, or when
        the name is taken (then the usual inserts say so)."""
        attributes = users[0].attributes if len(users) == 1 else {}
        if conn.dialect.name != "postgresql" or not 0 < len(attributes) <= MULTI_ROW_INSERT:
            return False
        return _written_carrying(conn, _new_user_with_attributes, len(attributes),
                                 {**rows[0], **_attribute_values(attributes)})

    def _insert_users(self, conn: Connection, rows: list[dict[str, Any]], keys: list[str]
                      ) -> dict[str, int]:
        """Insert the rows of ``um_users``: their keys by user id, or AlreadyExists."""
        new_user = _INSERT_NEW_USER.get(conn.dialect.name) \
            if len(rows) == 1 and conn.dialect.insert_returning else None
        if new_user is not None:
            # One user (SCIM, the console) where the insert itself can skip a name that is
            # taken: its key comes back, and the name is looked up only when it is taken.
            pk = execute_compiled(conn, new_user, um_users, _USER_COLUMNS,
                                  tuple(rows[0][c] for c in _USER_COLUMNS)).scalar()
            if pk is not None:
                return {rows[0]["user_id"]: int(pk)}
        existing = _NAMES_TAKEN.execute(conn, {"store": self.domain, "keys": keys}).scalar()
        if existing is not None:
            raise AlreadyExists(f"user {self.domain}/{existing} already exists")
        try:
            if len(rows) == 1:  # its key comes back
                primary = conn.execute(_INSERT_USER, rows[0]).inserted_primary_key
                assert primary is not None
                return {rows[0]["user_id"]: int(primary[0])}
            # Keys only grow (SQLite's max + 1, a sequence, AUTO_INCREMENT), so this
            # batch's are above the largest before it: read them back by that range
            # (rows another writer added meanwhile come too, and are not looked up).
            after = conn.execute(_LAST_PK).scalar() or 0
            insert_rows(conn, um_users, _USER_COLUMNS,
                        [tuple(r[c] for c in _USER_COLUMNS) for r in rows])
            return {r.user_id: r.pk for r in conn.execute(_PKS_AFTER, {"after": after})}
        except IntegrityError as exc:
            raise AlreadyExists(
                f"a user of this batch already exists in {self.domain}") from exc

    def get_user(self, user_id: str) -> StoredUser | None:
        with self._conn() as conn:
            found = self._read_user(conn, user_id)
            if found is None:
                return None
            _remember(conn, user_id, *found)
            return found[1]

    def get_users(self, user_ids: Sequence[str]) -> dict[str, StoredUser]:
        """``get_user`` for many ids: the users that exist, by id, one query per table (a
        join of the two repeats each user's columns, times included, on every attribute's
        row: dearer than the second statement for a worker's batch of a hundred users)."""
        out: dict[str, StoredUser] = {}
        with self._conn() as conn:
            for chunk in in_chunks(user_ids):
                rows = [r for r in _USERS_BY_ID.execute(conn, {"ids": chunk})
                        if r.store == self.domain]
                out.update((u.id, u) for u in self._users(conn, rows))
        return out

    def get_user_by_name(self, username: str) -> StoredUser | None:
        with self._conn() as conn:
            rows = conn.execute(select(*self._user_cols).where(
                um_users.c.store == self.domain,
                um_users.c.username_key == self.policies.key(username))).all()
            return self._users(conn, rows)[0] if rows else None

    def update_attributes(
        self, user_id: str, set_: Mapping[str, str], remove: Sequence[str] = ()
    ) -> StoredUser:
        self._require_writable()
        now = _now()
        with self._conn() as conn:
            # The user's row is written first: that makes this transaction the writer (on
            # PostgreSQL and MariaDB it locks the row), so what is read next is the state
            # this change applies to, and the answer follows from it without a re-read.
            found, written = self._unchanged_since_read(conn, user_id, now,
                                                        {} if remove else set_)
            if found is None:
                touched = conn.execute(_TOUCH_USER, {"id": user_id, "in_store": self.domain,
                                                     "at": now}).rowcount
                found = self._read_user(conn, user_id) if touched else None
            if found is None:
                raise NotFound(f"user {user_id} does not exist in {self.domain}")
            pk, user = found
            # A value set replaces the stored one in the insert itself (one statement
            # less than deleting it first).
            if remove:
                conn.execute(_DELETE_ATTRIBUTES, {"pk": pk, "names": list(remove)})
            if set_ and not written:
                insert_rows(conn, um_user_attributes, _ATTRIBUTE_COLUMNS,
                            [(pk, *row) for row in set_.items()], replacing=_ATTRIBUTE_KEY)
            names = set_.keys() | set(remove)
            kept = {k: v for k, v in user.attributes.items() if k not in names}
            return dataclasses.replace(user, attributes={**kept, **set_}, modified=now)

    @staticmethod
    def _unchanged_since_read(conn: Connection, user_id: str, now: datetime,
                              writing: Mapping[str, str]
                              ) -> tuple[tuple[int, StoredUser] | None, bool]:
        """The user as ``conn`` last read it (``_remember``), if that was ``user_id`` and
        its row still has the modification time read: every write of a user's attributes
        sets a new one, so its attributes are the ones read. Its row is touched as
        ``_TOUCH_USER`` would (the transaction becomes its writer), without the re-read:
        a SCIM PATCH has just read the user it changes (one statement less). On
        PostgreSQL the attributes ``writing`` are written in the same statement (one
        more less); the second value tells whether they were."""
        last = conn.info.pop(_LAST_READ, None)
        if last is None or last[0] != user_id:
            return None, False
        _, pk, user = last
        touch = {"key": pk, "seen": user.modified, "at": now}
        if conn.dialect.name == "postgresql" and 0 < len(writing) <= MULTI_ROW_INSERT:
            written = _written_carrying(conn, _touched_with_attributes, len(writing),
                                        {**touch, **_attribute_values(writing)})
            return ((pk, user), True) if written else (None, False)
        touched = conn.execute(_TOUCH_UNCHANGED, touch).rowcount
        return ((pk, user) if touched == 1 else None), False

    def delete_user(self, user_id: str) -> None:
        self._require_writable()
        with self._conn() as conn:
            pk = self._user_pk(conn, user_id)
            # Explicit deletes: SQLite only cascades with foreign_keys=ON on every connection.
            conn.execute(delete(um_memberships).where(um_memberships.c.user_pk == pk))
            conn.execute(delete(um_user_attributes).where(um_user_attributes.c.user_pk == pk))
            conn.execute(delete(um_users).where(um_users.c.pk == pk))

    def set_password(self, user_id: str, password: str) -> None:
        self._require_writable()
        hashed = self.hashing.hash(password)
        with self._conn() as conn:
            pk = self._user_pk(conn, user_id)
            conn.execute(update(um_users).where(um_users.c.pk == pk)
                         .values(password_hash=hashed, modified=_now()))

    def verify_password(self, username: str, password: str) -> StoredUser | None:
        with self._conn() as conn:
            row = conn.execute(select(*self._user_cols, um_users.c.password_hash).where(
                um_users.c.store == self.domain,
                um_users.c.username_key == self.policies.key(username))).first()
            if row is None or not self.hashing.verify(row.password_hash, password):
                return None
            if self.capabilities.writable_users and self.hashing.needs_rehash(row.password_hash):
                # The argon2 parameters changed since this hash was made: the password is at
                # hand only now, so the stored hash is upgraded now (unless it changed since).
                conn.execute(update(um_users).where(
                    um_users.c.pk == row.pk, um_users.c.password_hash == row.password_hash)
                    .values(password_hash=self.hashing.hash(password)))
            return self._users(conn, [row])[0]

    def list_users(
        self,
        page_size: int,
        cursor: str | None = None,
        prefix: str | None = None,
        attribute: tuple[str, str] | None = None,
    ) -> Page[StoredUser]:
        size = max(1, min(page_size, MAX_PAGE_SIZE))
        with self._conn() as conn:
            if attribute is not None:
                name, value = attribute
                q = (select(*self._user_cols)
                     .join(um_user_attributes, um_user_attributes.c.user_pk == um_users.c.pk)
                     .where(um_user_attributes.c.name == name,
                            um_user_attributes.c.value == value,
                            um_users.c.store == self.domain)
                     .order_by(um_user_attributes.c.user_pk).limit(size + 1))
                if cursor:
                    q = q.where(um_user_attributes.c.user_pk > _decode_position(cursor))
                rows = conn.execute(q).all()
                more = len(rows) > size
                rows = rows[:size]
                nxt = _encode_cursor("p", str(rows[-1].pk)) if more else None
                return Page(self._users(conn, rows), nxt)
            after = [um_users.c.username_key > _decode_cursor(cursor, "u")] if cursor else []
            keyed = conn.execute(
                select(*self._user_cols, um_users.c.username_key)
                .where(um_users.c.store == self.domain, *self._prefix(prefix), *after)
                .order_by(um_users.c.username_key).limit(size + 1)).all()
            nxt = _encode_cursor("u", keyed[size - 1].username_key) \
                if len(keyed) > size else None
            return Page(self._users(conn, keyed[:size]), nxt)

    def _prefix(self, prefix: str | None) -> list[Any]:
        if not prefix:
            return []
        key = self.policies.key(prefix)
        return [um_users.c.username_key >= key, um_users.c.username_key < key + PREFIX_END]

    def count_users(self, prefix: str | None = None) -> int:
        with self._conn() as conn:
            return int(conn.execute(select(func.count()).select_from(um_users).where(
                um_users.c.store == self.domain, *self._prefix(prefix))).scalar_one())

    def search_users(self, query: Query, start: int, count: int,
                     sort: Sort | None = None) -> SearchPage[StoredUser]:
        """The users matching ``query``, ``start`` (0-based) to ``start + count``, in
        ``sort`` order (then by creation), and how many match in all."""
        query_shape, values = shape(query)
        statements = user_statements(query_shape, sort)
        with self._conn() as conn:
            with_attributes = conn.dialect.name == "postgresql"
            total, rows = self._search(conn, statements, values, start, count,
                                       with_attributes)
            if not with_attributes:
                return SearchPage(total, self._users(conn, rows))
            return SearchPage(total, [
                StoredUser(r.user_id, self.domain, r.username, r.attributes or {}, r.created,
                           r.modified) for r in rows], {
                r.user_id: [StoredGroup(gid, self.domain, name, created, modified)
                            for gid, name, created, modified in zip(
                                r.group_ids or (), r.group_names or (),
                                r.groups_created or (), r.groups_modified or (),
                                strict=True)] for r in rows})

    def _search(self, conn: Connection, statements: Statements, values: Sequence[Any],
                start: int, count: int, with_attributes: bool = False
                ) -> tuple[int, list[Any]]:
        """How many match, and the rows of the page (``with_attributes``: with their
        ``attributes``, see ``Statements.page_with_attributes``); the count is read only
        when the page cannot tell it (a page that is not full holds the last of the
        matches)."""
        params = statements.params(values, self.domain, self.policies.key)
        start, page_size = min(max(0, start), MAX_OFFSET), max(0, min(count, MAX_PAGE_SIZE))
        page = statements.page_with_attributes if with_attributes else statements.page
        assert page is not None
        with guarded(conn) as options:
            options.update(statements.options)
            rows = list(conn.execute(page, {**params, "offset": start, "limit": page_size},
                                     execution_options=options)) if page_size else []
            if 0 < len(rows) < page_size or (not rows and start == 0 < page_size):
                return start + len(rows), rows
            return int(conn.execute(statements.count, params,
                                    execution_options=options).scalar_one()), rows

    # ------------------------------------------------------------------ groups
    def add_group(self, name: str, member_ids: Sequence[str] = ()) -> StoredGroup:
        self._require_writable(groups=True)
        now = _now()
        gid = str(uuid.uuid4())
        with self._conn() as conn:
            if self._find_group(conn, name) is not None:
                raise AlreadyExists(f"group {self.domain}/{name} already exists")
            try:
                conn.execute(insert(um_groups).values(
                    store=self.domain, group_id=gid, name=name,
                    name_key=self.policies.key(name), created=now, modified=now))
            except IntegrityError as exc:
                raise AlreadyExists(f"group {self.domain}/{name} already exists") from exc
            if member_ids:
                self._set_members(conn, self._group_pk(conn, gid), member_ids, ())
        return StoredGroup(gid, self.domain, name, now, now)

    def _find_group(self, conn: Connection, name: str) -> Any:
        return conn.execute(select(*self._group_cols).where(
            um_groups.c.store == self.domain,
            um_groups.c.name_key == self.policies.key(name))).first()

    def get_group(self, group_id: str) -> StoredGroup | None:
        with self._conn() as conn:
            row = conn.execute(select(*self._group_cols).where(
                um_groups.c.group_id == group_id, um_groups.c.store == self.domain)).first()
            return self._group(row) if row else None

    def get_group_by_name(self, name: str) -> StoredGroup | None:
        with self._conn() as conn:
            row = self._find_group(conn, name)
            return self._group(row) if row else None

    def rename_group(self, group_id: str, new_name: str) -> StoredGroup:
        self._require_writable(groups=True)
        with self._conn() as conn:
            pk = self._group_pk(conn, group_id)
            other = self._find_group(conn, new_name)
            if other is not None and other.pk != pk:
                raise AlreadyExists(f"group {self.domain}/{new_name} already exists")
            conn.execute(update(um_groups).where(um_groups.c.pk == pk).values(
                name=new_name, name_key=self.policies.key(new_name), modified=_now()))
            row = conn.execute(select(*self._group_cols).where(um_groups.c.pk == pk)).one()
            return self._group(row)

    def delete_group(self, group_id: str) -> None:
        self._require_writable(groups=True)
        with self._conn() as conn:
            pk = self._group_pk(conn, group_id)
            conn.execute(delete(um_memberships).where(um_memberships.c.group_pk == pk))
            conn.execute(delete(um_groups).where(um_groups.c.pk == pk))

    def list_groups(
        self, page_size: int, cursor: str | None = None, prefix: str | None = None
    ) -> Page[StoredGroup]:
        size = max(1, min(page_size, MAX_PAGE_SIZE))
        q = select(*self._group_cols, um_groups.c.name_key).where(um_groups.c.store == self.domain)
        if prefix:
            key = self.policies.key(prefix)
            q = q.where(um_groups.c.name_key >= key, um_groups.c.name_key < key + PREFIX_END)
        if cursor:
            q = q.where(um_groups.c.name_key > _decode_cursor(cursor, "g"))
        with self._conn() as conn:
            rows = conn.execute(q.order_by(um_groups.c.name_key).limit(size + 1)).all()
        more = len(rows) > size
        rows = rows[:size]
        return Page([self._group(r) for r in rows],
                    _encode_cursor("g", rows[-1].name_key) if more else None)

    def search_groups(self, query: Query, start: int, count: int
                      ) -> SearchPage[StoredGroup]:
        """The groups matching ``query`` by name, ``start`` (0-based) to ``start + count``."""
        query_shape, values = shape(query)
        with self._conn() as conn:
            total, rows = self._search(conn, group_statements(query_shape), values, start,
                                       count)
        return SearchPage(total, [self._group(r) for r in rows])

    def update_members(
        self, group_id: str, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> None:
        self._require_writable(groups=True)
        with self._conn() as conn:
            gpk = self._group_pk(conn, group_id)
            self._set_members(conn, gpk, add, remove)
            conn.execute(update(um_groups).where(um_groups.c.pk == gpk).values(modified=_now()))

    def _set_members(
        self, conn: Connection, gpk: int, add: Sequence[str], remove: Sequence[str]
    ) -> None:
        wanted = set(add) | set(remove)
        found = dict(conn.execute(select(um_users.c.user_id, um_users.c.pk).where(
            um_users.c.store == self.domain, um_users.c.user_id.in_(wanted))).all())
        missing = wanted - found.keys()
        if missing:
            raise NotFound(
                f"{len(missing)} member(s) are not users of {self.domain}: "
                + ", ".join(sorted(missing)[:5]))
        if remove:
            conn.execute(delete(um_memberships).where(
                um_memberships.c.group_pk == gpk,
                um_memberships.c.user_pk.in_([found[i] for i in remove])))
        if add:
            already = set(conn.execute(select(um_memberships.c.user_pk).where(
                um_memberships.c.group_pk == gpk,
                um_memberships.c.user_pk.in_([found[i] for i in add]))).scalars())
            new = [{"group_pk": gpk, "user_pk": found[i]} for i in dict.fromkeys(add)
                   if found[i] not in already]
            if new:
                conn.execute(insert(um_memberships), new)

    def members_of(
        self, group_id: str, page_size: int, cursor: str | None = None
    ) -> Page[StoredUser]:
        size = max(1, min(page_size, MAX_PAGE_SIZE))
        with self._conn() as conn:
            gpk = self._group_pk(conn, group_id)
            q = (select(*self._user_cols, um_users.c.username_key)
                 .join(um_memberships, um_memberships.c.user_pk == um_users.c.pk)
                 .where(um_memberships.c.group_pk == gpk)
                 .order_by(um_users.c.username_key).limit(size + 1))
            if cursor:
                q = q.where(um_users.c.username_key > _decode_cursor(cursor, "m"))
            rows = conn.execute(q).all()
            more = len(rows) > size
            rows = rows[:size]
            return Page(self._users(conn, rows),
                        _encode_cursor("m", rows[-1].username_key) if more else None)

    def groups_of(self, user_id: str) -> list[StoredGroup]:
        with self._conn() as conn:
            rows = [r for r in conn.execute(_GROUPS_OF_ID, {"id": user_id})
                    if r.member_store == self.domain]
        if not rows:
            raise NotFound(f"user {user_id} does not exist in {self.domain}")
        return [self._group(r) for r in rows if r.pk is not None]

    def get_user_with_groups(self, user_id: str
                             ) -> tuple[StoredUser, list[StoredGroup]] | None:
        """One statement: the user's attribute rows, then its groups' rows in name order."""
        with self._conn() as conn:
            rows = conn.execute(_USER_AND_GROUPS, {"id": user_id}).all()
            if not rows or rows[0].store != self.domain:
                return None
            r = rows[0]
            attributes = {a.attribute: a.value for a in rows
                          if a.kind == "a" and a.attribute is not None}
            user = StoredUser(r.user_id, self.domain, r.username, attributes, r.created,
                              r.modified)
            _remember(conn, user_id, r.pk, user)
        groups = [StoredGroup(g.group_id, self.domain, g.group_name, g.group_created,
                              g.group_modified) for g in rows if g.kind == "g"]
        return user, groups

    def groups_of_users(self, user_ids: Sequence[str]) -> dict[str, list[StoredGroup]]:
        """``groups_of`` for many users in one query: each id's groups in name order; an
        id that is not a user of this store has none."""
        out: dict[str, list[StoredGroup]] = {uid: [] for uid in user_ids}
        with self._conn() as conn:
            for chunk in in_chunks(user_ids):
                for r in _GROUPS_OF_IDS.execute(conn, {"ids": chunk}):
                    if r.member_store == self.domain:
                        out[r.member_id].append(self._group(r))
        return out

    # ------------------------------------------------------------------ operations
    def health(self) -> Health:
        started = time.perf_counter()
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
        except (OperationalError, DBAPIError) as exc:
            return Health(False, f"unreachable: {str(exc.orig).splitlines()[0]}")
        return Health(True, "ok", (time.perf_counter() - started) * 1000)

    def bulk_loaded(self) -> None:
        """Refresh PostgreSQL's planner statistics of the user tables.

        Tables a bulk load filled have none until autovacuum comes round, and never where
        it is off: PostgreSQL then ties the ``(store, username_key)`` index with
        ``(store, modified)`` for a lookup by name and may take the latter, reading every
        user of the store for each lookup (1.5 ms instead of 0.8 at 4,000 users, growing
        with the store: the notes of 2026-12-04 20:56 in bench/RESULTS.md). MariaDB's
        InnoDB recalculates its statistics itself once a tenth of a table changed, and
        SQLite's queries are written for a planner without statistics."""
        if self.engine.dialect.name != "postgresql":
            return
        tables = ", ".join(t.name for t in (um_users, um_user_attributes, um_memberships))
        try:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(f"ANALYZE {tables}")
        except DBAPIError as exc:
            log.warning("refreshing the statistics of userstore %s failed: %s", self.domain,
                        str(exc.orig).splitlines()[0])

    def close(self) -> None:
        """The engine belongs to whoever made it (the system DB for PRIMARY)."""


# Batched reads, built once (a worker reads a batch of users many times a second, and
# building a statement costs more than running it). Users are found by their unique id
# alone, so that its index is used (with the store in the query SQLite walks the whole
# store instead), and the store is checked on the rows.
_USERS_BY_ID = InStatement(lambda ids: select(*SqlUserStore._user_cols, um_users.c.store)
                          .where(ids), um_users.c.user_id, "ids")
_NAMES_TAKEN = InStatement(lambda keys: select(um_users.c.username).where(
    um_users.c.store == bindparam("store"), keys).limit(1), um_users.c.username_key, "keys")
_INSERT_USER = insert(um_users)
_USER_COLUMNS = ("store", "user_id", "username", "username_key", "created", "modified",
                 "password_hash")
#: One user's insert that adds nothing when its name is taken in the store (by dialect).
_INSERT_NEW_USER: dict[str, Executable] = {
    name: dialect.insert(um_users).values({c: bindparam(c) for c in _USER_COLUMNS})
    .on_conflict_do_nothing(
        index_elements=[um_users.c.store, um_users.c.username_key]).returning(um_users.c.pk)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))}


def _attributes_of(user: Any, count: int) -> Any:
    """PostgreSQL: the insert of ``count`` attributes (parameters ``name_0``, ``value_0``,
    ...; ``_attribute_values``) of the user whose key ``user``, a data-modifying CTE
    returning ``pk``, gives: none when it gives none."""
    rows = [select(user.c.pk, bindparam(f"name_{i}", type_=String),
                   bindparam(f"value_{i}", type_=String)) for i in range(count)]
    return postgresql.insert(um_user_attributes).from_select(
        list(_ATTRIBUTE_COLUMNS), rows[0] if count == 1 else union_all(*rows))


def _attribute_values(attributes: Mapping[str, str]) -> dict[str, str]:
    return {f"{column}_{i}": value for i, pair in enumerate(attributes.items())
            for column, value in zip(("name", "value"), pair, strict=True)}


def _written_carrying(conn: Connection, statement: Callable[[int, CarriedShape], Executable],
                      count: int, values: dict[str, Any]) -> bool:
    """Run ``statement(count, shape)`` (one of the two below) with ``values``; whether it
    wrote. In an unbegun transaction that lets it (``core.ambient``), it runs alone as
    the transaction's last write and carries the rows kept for the commit (the audit
    row): the whole SCIM POST or PATCH in one round trip."""
    carried = ambient.carried(conn)
    written = conn.execute(statement(count, carried_shape(carried or ())),
                           {**values, **carried_values(carried or ())}).first() is not None
    if carried is not None:
        ambient.carried_done(conn, written)
    return written


@functools.cache
def _new_user_with_attributes(count: int, carried: CarriedShape = ()) -> Executable:
    """PostgreSQL: ``_INSERT_NEW_USER`` and the insert of ``count`` attributes of the user
    it adds (and of the ``carried`` rows) as one statement; a row per attribute comes
    back, none when the name is taken (nothing is written then)."""
    new_user = _INSERT_NEW_USER["postgresql"].cte("new_user")  # type: ignore[attr-defined]
    return cast(Executable, carrying(_attributes_of(new_user, count), new_user, carried)
                .returning(um_user_attributes.c.user_pk).execution_options(**ALONE_WRITE))


@functools.cache
def _touched_with_attributes(count: int, carried: CarriedShape = ()) -> Executable:
    """PostgreSQL: ``_TOUCH_UNCHANGED`` and the upsert of ``count`` attributes of the user
    it touched (and the insert of the ``carried`` rows) as one statement; a row per
    attribute comes back, none when the user's row was not touched (nothing is written
    then)."""
    touched = _TOUCH_UNCHANGED.returning(um_users.c.pk).cte("touched")
    statement = carrying(_attributes_of(touched, count), touched, carried)
    return cast(Executable, replacing_on_conflict(
        statement, "postgresql", um_user_attributes, _ATTRIBUTE_KEY, ("value",),
    ).returning(um_user_attributes.c.user_pk).execution_options(**ALONE_WRITE))


_ATTRIBUTE_COLUMNS = ("user_pk", "name", "value")
#: ``um_user_attributes``' unique key: a user has one value of a name.
_ATTRIBUTE_KEY = ("user_pk", "name")
_LAST_PK = select(func.max(um_users.c.pk))
_PKS_AFTER = select(um_users.c.user_id, um_users.c.pk).where(um_users.c.pk > bindparam("after"))
_USER_BY_ID = select(*SqlUserStore._user_cols, um_users.c.store).where(
    um_users.c.user_id == bindparam("id"))
#: A user's groups, or one row of NULLs for a user in none (no row: no such user).
_GROUPS_OF_ID = (
    select(um_users.c.store.label("member_store"), *SqlUserStore._group_cols)
    .select_from(um_users)
    .outerjoin(um_memberships, um_memberships.c.user_pk == um_users.c.pk)
    .outerjoin(um_groups, um_groups.c.pk == um_memberships.c.group_pk)
    .where(um_users.c.user_id == bindparam("id")).order_by(um_groups.c.name_key))
_DELETE_ATTRIBUTES = delete(um_user_attributes).where(
    um_user_attributes.c.user_pk == bindparam("pk"),
    um_user_attributes.c.name.in_(bindparam("names", expanding=True)))
#: ``conn.info`` key: the user a connection read last, as (user id, key, user). Only
#: ``SqlUserStore._unchanged_since_read`` trusts it, after checking it against the row.
_LAST_READ = "mware_iam_user_read_last"


def _remember(conn: Connection, user_id: str, pk: int, user: StoredUser) -> None:
    conn.info[_LAST_READ] = (user_id, pk, user)


_TOUCH_UNCHANGED = update(um_users).where(
    um_users.c.pk == bindparam("key"), um_users.c.modified == bindparam("seen")).values(
    modified=bindparam("at"))
_TOUCH_USER = update(um_users).where(
    um_users.c.user_id == bindparam("id"), um_users.c.store == bindparam("in_store")).values(
    modified=bindparam("at"))
#: A user and its attributes: one row per attribute (one of NULLs for a user without any).
_USER_WITH_ATTRIBUTES = (
    select(*SqlUserStore._user_cols, um_users.c.store,
           um_user_attributes.c.name.label("attribute"), um_user_attributes.c.value)
    .select_from(um_users)
    .outerjoin(um_user_attributes, um_user_attributes.c.user_pk == um_users.c.pk)
    .where(um_users.c.user_id == bindparam("id")))

def _user_and_groups() -> Any:
    """A user with its attributes (kind ``a``: one row each, or one of NULLs) and its groups
    (kind ``g``: one row each, in name order), as one statement: the two reads of a SCIM
    read or PATCH of one user."""
    user = (*SqlUserStore._user_cols, um_users.c.store)
    groups = (um_groups.c.group_id, um_groups.c.name, um_groups.c.created,
              um_groups.c.modified, um_groups.c.name_key)
    labels = ("group_id", "group_name", "group_created", "group_modified", "group_key")
    by_id = um_users.c.user_id == bindparam("id")
    attributes = (
        select(literal_column("'a'").label("kind"), *user,
               um_user_attributes.c.name.label("attribute"), um_user_attributes.c.value,
               *(type_coerce(null(), c.type).label(n) for c, n in zip(groups, labels,
                                                                     strict=True)))
        .select_from(um_users)
        .outerjoin(um_user_attributes, um_user_attributes.c.user_pk == um_users.c.pk)
        .where(by_id))
    memberships = (
        select(literal_column("'g'"), *user, null(), null(), *groups)
        .select_from(um_users)
        .join(um_memberships, um_memberships.c.user_pk == um_users.c.pk)
        .join(um_groups, um_groups.c.pk == um_memberships.c.group_pk)
        .where(by_id))
    return union_all(attributes, memberships).order_by("kind", "group_key")


_USER_AND_GROUPS = _user_and_groups().execution_options(**ALONE_READ)
_ATTRIBUTES_OF = InStatement(lambda pks: select(
    um_user_attributes.c.user_pk, um_user_attributes.c.name, um_user_attributes.c.value
).where(pks), um_user_attributes.c.user_pk, "pks")
_GROUPS_OF_IDS = InStatement(lambda ids: select(
    um_users.c.user_id.label("member_id"), um_users.c.store.label("member_store"),
    *SqlUserStore._group_cols)
    .join(um_memberships, um_memberships.c.group_pk == um_groups.c.pk)
    .join(um_users, um_users.c.pk == um_memberships.c.user_pk)
    .where(ids).order_by(um_groups.c.name_key), um_users.c.user_id, "ids")
