"""Active Directory: the directory store with AD's way of creating accounts and passwords.

A new account is created disabled (``userAccountControl`` 514: NORMAL_ACCOUNT |
ACCOUNTDISABLE) and without a password; then ``unicodePwd`` is set (the quoted password in
UTF-16LE) and the account enabled (``user_account_control``, 512 by default). Active
Directory only takes a password over LDAPS or StartTLS, so the password steps are refused
before anything is written when the connection is neither. If a step after the creation
fails (AD's password policy, say), the new entry is deleted again, as the reference does.
Without a password the account stays disabled: AD refuses to enable it otherwise.

Entries are named ``CN=<name>`` (AD's naming attribute for users), ids are ``objectGUID``
read as a UUID, and memberships are read through ``memberOf`` (AD keeps that back link).
Queries compare times on ``whenCreated``/``whenChanged``, written as AD writes them
(``20240102030405.0Z``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ldap3 import MODIFY_REPLACE, Connection
from ldap3.core.exceptions import LDAPException, LDAPOperationResult
from ldap3.utils.dn import escape_rdn

from core.errors import AlreadyExists, InvalidInput
from core.userstores.base import NewUser, Policies, StoredUser, UserStore
from core.userstores.definitions import secret_text
from core.userstores.ldap import LdapUserStore
from core.userstores.ldap_query import AD_TIME
from core.userstores.ldap_schema import ACTIVE_DIRECTORY, settings

if TYPE_CHECKING:
    from core.db import SystemDB
    from core.passwords import PasswordHashing

#: userAccountControl of a new account: NORMAL_ACCOUNT | ACCOUNTDISABLE.
AD_DISABLED = 514


class ActiveDirectoryUserStore(LdapUserStore):
    """Active Directory: disabled creation, ``unicodePwd`` over TLS, then enabling."""

    drops_deleted_members = True
    time_attributes = ("whenCreated", "whenChanged")
    time_format = AD_TIME

    def _user_dn(self, username: str) -> str:
        if self.s.user_dn_pattern:
            return super()._user_dn(username)
        return f"CN={escape_rdn(username)},{self.s.user_search_base}"

    def _refuse_cleartext(self) -> None:
        if not self.s.encrypted:
            raise InvalidInput(
                f"userstore {self.domain}: Active Directory takes passwords only over LDAPS or "
                f"StartTLS, and {self.s.url} is neither (use ldaps:// or set start_tls)")

    def _before_add(self, users: Sequence[NewUser]) -> None:
        if any(u.password for u in users):
            self._refuse_cleartext()

    def _check_password_transport(self) -> None:
        self._refuse_cleartext()

    def _new_entry(self, user: NewUser) -> dict[str, Any]:
        attrs: dict[str, Any] = {k: v for k, v in user.attributes.items() if v != ""}
        self._check_attributes(attrs)
        attrs["objectClass"] = list(self.s.user_object_classes)
        attrs[self.s.username_attribute] = user.username
        if "cn" not in {k.lower() for k in attrs}:
            attrs["cn"] = user.username
        attrs["userAccountControl"] = str(AD_DISABLED)
        return attrs

    def _add(self, conn: Connection, user: NewUser, attrs: dict[str, Any]) -> StoredUser:
        dn = self._user_dn(user.username)
        if self._find_user(conn, user.username) is not None:
            raise AlreadyExists(f"user {self.domain}/{user.username} already exists")
        try:
            conn.add(dn, attributes=attrs)
        except LDAPOperationResult as exc:
            if exc.result == 68:
                raise AlreadyExists(f"user {self.domain}/{user.username} already exists") \
                    from exc
            raise
        try:
            if user.password:
                self._write_password(conn, dn, user.password)
                conn.modify(dn, {"userAccountControl": [
                    (MODIFY_REPLACE, [str(self.s.user_account_control)])]})
        except BaseException:
            with contextlib.suppress(LDAPException, OSError):
                conn.delete(dn)  # as the reference does: no half-made account stays behind
            raise
        return self._added_user(conn, dn)

    def _write_password(self, conn: Connection, dn: str, password: str) -> None:
        value = f'"{password}"'.encode("utf-16-le")
        conn.modify(dn, {"unicodePwd": [(MODIFY_REPLACE, [value])]})

    def _health_note(self) -> str:
        if self.s.encrypted or self.s.read_only:
            return "ok"
        return "ok; passwords cannot be set: the connection is neither LDAPS nor StartTLS"


def open_directory_store(store_type: str, domain: str, props: Mapping[str, Any],
                         db: SystemDB, hashing: PasswordHashing, policies: Policies
                         ) -> UserStore:
    """The directory store types' opener (``ldap``, ``ldap_ro``, ``active_directory``);
    the directory hashes passwords itself, so ``db`` and ``hashing`` go unused."""
    cls = ActiveDirectoryUserStore if store_type == ACTIVE_DIRECTORY else LdapUserStore
    return cls(domain, settings(store_type, props, secret_text(props, "bind_password")),
               policies)
