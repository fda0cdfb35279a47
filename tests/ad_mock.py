"""Active Directory as far as ldap3's MOCK_SYNC server with its recorded AD 2012 R2 schema
allows: a connection that replies to what only AD does (``objectGUID``, ``whenCreated``, its
password-policy reply), for the AD store tests and the userstore contract suite."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

from ldap3 import MOCK_SYNC, OFFLINE_AD_2012_R2, Connection, Server
from ldap3.core.exceptions import LDAPOperationResult

from core.userstores.base import Policies
from core.userstores.definitions import validated
from core.userstores.ldap_ad import ActiveDirectoryUserStore
from core.userstores.ldap_schema import settings

AD_BASE = "CN=Users,DC=corp,DC=test"
AD_SERVICE = f"CN=svc-iam,{AD_BASE}"
#: Active Directory's reply to a password its policy refuses (as a domain controller sends it).
AD_POLICY_REPLY = ("0000052D: Constraint violation - check_password_restrictions: the password "
                   "does not meet the complexity criteria!")


def _guid() -> bytes:
    """A random objectGUID the mock can find: ldap3's mock unescapes a stored value
    holding a backslash byte (0x5c) as if it were filter syntax, so an exact filter on it
    may never match (15 random GUIDs in 20,000; AD compares the bytes). Our filters
    escape every byte (``ldap_query.escape_binary``) and are not at fault."""
    while b"\\" in (guid := uuid.uuid4().bytes_le):
        pass
    return guid


class AdReplies(Connection):
    """ldap3's mock with AD's answers to what only AD does: it assigns objectGUID and
    whenCreated, refuses weak passwords as AD does, and records each write."""

    log: list[tuple[str, str, Any]]

    def add(self, dn: str, object_class: Any = None, attributes: Any = None,
            controls: Any = None) -> bool:
        self.log.append(("add", dn, dict(attributes or {})))
        done = super().add(dn, object_class, attributes, controls)
        entry = self.server.dit[dn]
        entry["objectGUID"] = [_guid()]
        entry["whenCreated"] = [b"20240102030405.0Z"]
        if b"group" in entry["objectClass"]:
            # AD matches (objectCategory=group) against the category's DN by its short
            # name; the mock compares text, so the entry holds the short name.
            entry["objectCategory"] = [b"group"]
        return bool(done)

    def modify(self, dn: str, changes: Any, controls: Any = None) -> bool:
        self.log.append(("modify", dn, changes))
        password = changes.get("unicodePwd")
        if password and password[0][1][0].decode("utf-16-le").strip('"').islower():
            raise LDAPOperationResult(result=19, description="constraintViolation", dn=dn,
                                      message=AD_POLICY_REPLY, response_type="modifyResponse")
        return bool(super().modify(dn, changes, controls))

    def delete(self, dn: str, controls: Any = None) -> bool:
        self.log.append(("delete", dn, None))
        return bool(super().delete(dn, controls))


@contextlib.contextmanager
def ad_store() -> Iterator[tuple[ActiveDirectoryUserStore, list[tuple[str, str, Any]], Server]]:
    """An AD store on a fresh mock directory, the log of its writes, and the mock server."""
    server = Server("dc1.corp.test", get_info=OFFLINE_AD_2012_R2)
    log: list[tuple[str, str, Any]] = []

    def connect(user: str, password: str) -> Connection:
        conn = AdReplies(server, user=user, password=password, client_strategy=MOCK_SYNC,
                         raise_exceptions=True)
        conn.log = log
        conn.bind()
        return conn

    seed = Connection(server, client_strategy=MOCK_SYNC)
    seed.strategy.add_entry(AD_BASE, {"objectClass": ["container"], "cn": "Users"})
    seed.strategy.add_entry(AD_SERVICE, {"objectClass": ["user"], "cn": "svc-iam",
                                         "userPassword": "svc-secret"})
    props = validated("CORP", "active_directory", {
        "connection_url": "ldaps://dc1.corp.test", "bind_dn": AD_SERVICE,
        "bind_password": "svc-secret", "user_search_base": AD_BASE,
        "group_search_base": AD_BASE})
    store = ActiveDirectoryUserStore("CORP", settings("active_directory", props, "svc-secret"),
                                     Policies(case_insensitive_usernames=True), connect)
    try:
        yield store, log, server
    finally:
        store.close()
