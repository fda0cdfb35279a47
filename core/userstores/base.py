"""The userstore protocol: one contract for SQL, LDAP and Active Directory stores.

A store speaks in *store attributes* (``mail``, ``sn``); the identity service maps claims to
attributes with the domain's claim mapping, so a store never needs to know the claim
dialects. Users and groups have an immutable ``id`` (a UUID in SQL, ``entryUUID`` or
``objectGUID`` in a directory) next to their name. Listing is paged with an opaque cursor:
no call ever loads a whole store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar, runtime_checkable

from core.errors import PolicyViolation
from core.userstores.query import Query, SearchPage, Sort

T = TypeVar("T")


@dataclass(frozen=True)
class StoredUser:
    id: str
    domain: str
    username: str
    attributes: Mapping[str, str]
    created: datetime | None = None
    modified: datetime | None = None


@dataclass(frozen=True)
class StoredGroup:
    id: str
    domain: str
    name: str
    created: datetime | None = None
    modified: datetime | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    #: Pass back to get the next page; None on the last page.
    next_cursor: str | None


@dataclass(frozen=True)
class NewUser:
    """One user to add; ``password`` is clear text (the store hashes or sends it)."""

    username: str
    password: str | None
    attributes: Mapping[str, str]


@dataclass(frozen=True)
class Capabilities:
    writable_users: bool = True
    readable_groups: bool = True
    writable_groups: bool = True
    bulk_import: bool = True
    #: False for a relay store (proxy mode): a password only travels to the targets.
    keeps_passwords: bool = True


@dataclass(frozen=True)
class Health:
    reachable: bool
    detail: str = ""
    latency_ms: float | None = None


DEFAULT_USERNAME_REGEX = r"^[\S]{3,64}$"
DEFAULT_PASSWORD_REGEX = r"^[\S]{8,64}$"
DEFAULT_GROUP_NAME_REGEX = r"^[^\s/][^/]{1,63}$"


@dataclass(frozen=True)
class Policies:
    """Name and password rules of a store; messages are what the administrator reads."""

    username_regex: str = DEFAULT_USERNAME_REGEX
    username_message: str = "Username must be 3 to 64 characters without spaces."
    password_regex: str = DEFAULT_PASSWORD_REGEX
    password_message: str = "Password must be 8 to 64 characters without spaces."
    group_name_regex: str = DEFAULT_GROUP_NAME_REGEX
    group_name_message: str = "Group name must be 2 to 64 characters, without '/'."
    case_insensitive_usernames: bool = False
    _compiled: dict[str, re.Pattern[str]] = field(default_factory=dict, compare=False, repr=False)

    def _match(self, pattern: str, value: str) -> bool:
        rx = self._compiled.get(pattern)
        if rx is None:
            rx = self._compiled[pattern] = re.compile(pattern)
        return rx.search(value) is not None

    def check_username(self, domain: str, username: str) -> None:
        if not self._match(self.username_regex, username):
            raise PolicyViolation(f"{domain}: {self.username_message} (got {username!r})")

    def check_password(self, domain: str, password: str) -> None:
        # The value is never echoed: it is a password.
        if not self._match(self.password_regex, password):
            raise PolicyViolation(f"{domain}: {self.password_message}")

    def check_group_name(self, domain: str, name: str) -> None:
        if not self._match(self.group_name_regex, name):
            raise PolicyViolation(f"{domain}: {self.group_name_message} (got {name!r})")

    def key(self, username: str) -> str:
        """The form under which a username is unique in the store."""
        return username.casefold() if self.case_insensitive_usernames else username


@runtime_checkable
class UserStore(Protocol):
    """What every userstore implements (``tests/contracts/test_userstore_contract.py`` runs
    it against every store type).

    For every method: errors are ``core.errors`` types whose message names the store's
    domain and never carries a password or a bind secret; a store that cannot be reached
    raises ``StoreUnavailable``; a write a store's :class:`Capabilities` do not allow
    raises ``ReadOnlyStore`` before anything is written; a write that fails leaves nothing
    half-written. Values in names, filters and queries are always parameterised or
    escaped. A store never checks its :class:`Policies` itself (the identity service does,
    before it calls the store) and never loads a whole store into memory.
    """

    domain: str
    capabilities: Capabilities
    policies: Policies

    # users
    def add_user(self, user: NewUser) -> StoredUser:
        """Add one user; the stored user, with the id the store gave it.

        The password is hashed (SQL) or sent for the directory to hash, never kept as
        given. Raises ``AlreadyExists`` when the name is taken (as the store's case rule
        compares names, :meth:`Policies.key`), ``InvalidInput`` for an attribute the store
        cannot hold, ``PolicyViolation`` when the directory's own password policy refuses.
        """
        ...

    def add_users(self, users: Sequence[NewUser]) -> list[StoredUser]:
        """Add users all or nothing (in the given order): a name twice in the batch or
        already in the store raises ``AlreadyExists`` and writes none of them."""
        ...

    def get_user(self, user_id: str) -> StoredUser | None:
        """The user of that id; None when there is none (any string is a valid question:
        an id of another store's form is simply not found)."""
        ...

    def get_users(self, user_ids: Sequence[str]) -> dict[str, StoredUser]:
        """The users of these ids that exist, by id (one round trip where the store can);
        absent ids are left out, never an error."""
        ...

    def get_user_by_name(self, username: str) -> StoredUser | None:
        """The user of that name under the store's case rule; None when there is none."""
        ...

    def update_attributes(
        self, user_id: str, set_: Mapping[str, str], remove: Sequence[str] = ()
    ) -> StoredUser:
        """Set ``set_`` and remove ``remove`` (other attributes stay); the user as stored
        afterwards. Raises ``NotFound`` for an absent user, ``InvalidInput`` for an
        attribute the store cannot hold or protects (ids, object classes)."""
        ...

    def delete_user(self, user_id: str) -> None:
        """Delete the user and its memberships (its groups stay). Raises ``NotFound`` for
        an absent user."""
        ...

    def set_password(self, user_id: str, password: str) -> None:
        """Replace the user's password (hashed as in :meth:`add_user`). Raises ``NotFound``
        for an absent user, ``InvalidInput`` when the store cannot take a password over
        its connection (AD without TLS), ``PolicyViolation`` when the directory refuses it.
        """
        ...

    def verify_password(self, username: str, password: str) -> StoredUser | None:
        """The user when ``password`` is theirs; None for a wrong or empty password and for
        an unknown name alike (never an anonymous bind, nothing that tells them apart).
        Raises only ``StoreUnavailable``."""
        ...

    def list_users(
        self,
        page_size: int,
        cursor: str | None = None,
        prefix: str | None = None,
        attribute: tuple[str, str] | None = None,
    ) -> Page[StoredUser]:
        """One page of users: at most ``page_size`` (at least 1; the store may bound it),
        by name, optionally those whose name starts with ``prefix`` (no wildcards) or
        whose attribute equals a value. Following ``next_cursor`` visits every match once;
        it is None on the last page. A cursor that is not this listing's raises
        ``InvalidInput``."""
        ...

    def count_users(self, prefix: str | None = None) -> int:
        """How many users (whose name starts with ``prefix``) the store holds."""
        ...

    def search_users(
        self, query: Query, start: int, count: int, sort: Sort | None = None
    ) -> SearchPage[StoredUser]:
        """The matches ``start`` to ``start + count`` of ``query`` (a store-neutral tree,
        compiled natively) in ``sort`` order, and how many match in all. Raises
        ``TooManyMatches`` when the order would have to be made in memory over more
        entries than the store processes."""
        ...

    # groups
    def add_group(self, name: str, member_ids: Sequence[str] = ()) -> StoredGroup:
        """Add a group with these members (users of this store). Raises ``AlreadyExists``
        for a taken name and ``NotFound`` (writing nothing) for an id that is not a user
        here."""
        ...

    def get_group(self, group_id: str) -> StoredGroup | None:
        """The group of that id; None when there is none."""
        ...

    def get_group_by_name(self, name: str) -> StoredGroup | None:
        """The group of that name; None when there is none."""
        ...

    def rename_group(self, group_id: str, new_name: str) -> StoredGroup:
        """Rename a group, keeping its id and members. Raises ``NotFound`` for an absent
        group, ``AlreadyExists`` for a taken name."""
        ...

    def delete_group(self, group_id: str) -> None:
        """Delete a group (its members stay users). Raises ``NotFound`` for an absent one."""
        ...

    def list_groups(
        self, page_size: int, cursor: str | None = None, prefix: str | None = None
    ) -> Page[StoredGroup]:
        """One page of groups, paged as :meth:`list_users`."""
        ...

    def search_groups(self, query: Query, start: int, count: int
                      ) -> SearchPage[StoredGroup]:
        """The matches of ``query`` over groups, paged as :meth:`search_users`."""
        ...

    def update_members(
        self, group_id: str, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> None:
        """Add and remove members, all or nothing. Raises ``NotFound`` for an absent group
        or for an id to add that is not a user of this store (then nothing changes)."""
        ...

    def members_of(
        self, group_id: str, page_size: int, cursor: str | None = None
    ) -> Page[StoredUser]:
        """One page of a group's members, paged as :meth:`list_users`. Raises ``NotFound``
        for an absent group."""
        ...

    def groups_of(self, user_id: str) -> list[StoredGroup]:
        """The groups the user is a member of. Raises ``NotFound`` for an absent user."""
        ...

    def get_user_with_groups(self, user_id: str
                             ) -> tuple[StoredUser, list[StoredGroup]] | None:
        """``get_user`` and the ``groups_of`` the user found, in one read where the store
        can (a SCIM read or PATCH of one user); None for an absent user."""
        ...

    def groups_of_users(self, user_ids: Sequence[str]) -> dict[str, list[StoredGroup]]:
        """``groups_of`` of each id (none for an id that is not a user here, never an
        error)."""
        ...

    # operations
    def health(self) -> Health:
        """Whether the store answers, and how fast. Never raises: an unreachable store is
        ``reachable=False`` with a detail that names no secret."""
        ...

    def bulk_loaded(self) -> None:
        """Called after a bulk load (an import) added users, however few: let the store's
        database plan its searches with the new sizes. Never raises (it only helps)."""
        ...

    def close(self) -> None:
        """Give back the store's connections; the store is not used afterwards."""
        ...
