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
    """What every userstore implements. Errors are ``core.errors`` types."""

    domain: str
    capabilities: Capabilities
    policies: Policies

    # users
    def add_user(self, user: NewUser) -> StoredUser: ...
    def add_users(self, users: Sequence[NewUser]) -> list[StoredUser]: ...
    def get_user(self, user_id: str) -> StoredUser | None: ...
    def get_users(self, user_ids: Sequence[str]) -> dict[str, StoredUser]:
        """The users of these ids that exist, by id (one round trip where the store can)."""
        ...
    def get_user_by_name(self, username: str) -> StoredUser | None: ...
    def update_attributes(
        self, user_id: str, set_: Mapping[str, str], remove: Sequence[str] = ()
    ) -> StoredUser: ...
    def delete_user(self, user_id: str) -> None: ...
    def set_password(self, user_id: str, password: str) -> None: ...
    def verify_password(self, username: str, password: str) -> StoredUser | None: ...
    def list_users(
        self,
        page_size: int,
        cursor: str | None = None,
        prefix: str | None = None,
        attribute: tuple[str, str] | None = None,
    ) -> Page[StoredUser]: ...
    def count_users(self, prefix: str | None = None) -> int: ...
    def search_users(
        self, query: Query, start: int, count: int, sort: Sort | None = None
    ) -> SearchPage[StoredUser]: ...

    # groups
    def add_group(self, name: str, member_ids: Sequence[str] = ()) -> StoredGroup: ...
    def get_group(self, group_id: str) -> StoredGroup | None: ...
    def get_group_by_name(self, name: str) -> StoredGroup | None: ...
    def rename_group(self, group_id: str, new_name: str) -> StoredGroup: ...
    def delete_group(self, group_id: str) -> None: ...
    def list_groups(
        self, page_size: int, cursor: str | None = None, prefix: str | None = None
    ) -> Page[StoredGroup]: ...
    def search_groups(self, query: Query, start: int, count: int
                      ) -> SearchPage[StoredGroup]: ...
    def update_members(
        self, group_id: str, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> None: ...
    def members_of(
        self, group_id: str, page_size: int, cursor: str | None = None
    ) -> Page[StoredUser]: ...
    def groups_of(self, user_id: str) -> list[StoredGroup]: ...
    def groups_of_users(self, user_ids: Sequence[str]) -> dict[str, list[StoredGroup]]:
        """``groups_of`` of each id (none for an id that is not a user here)."""
        ...

    # operations
    def health(self) -> Health: ...
    def close(self) -> None: ...
