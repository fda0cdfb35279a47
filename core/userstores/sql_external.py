"""An SQL userstore in a database of its own (any SQLAlchemy URL: PostgreSQL, MariaDB, SQLite).

The store uses PRIMARY's ``um_*`` tables. They are created on first use, not when the
deployment opens, so a database that is down never stops the deployment from starting: it
makes that store's calls fail with ``StoreUnavailable`` until it is back. A read-only store
never creates anything; it needs the tables to exist.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Connection, inspect
from sqlalchemy.exc import DBAPIError, OperationalError

from core.db import SystemDB, make_engine
from core.errors import StoreUnavailable
from core.names import PRIMARY
from core.passwords import PasswordHashing
from core.schema import metadata, um_groups, um_memberships, um_user_attributes, um_users
from core.userstores.base import Health, Policies, UserStore
from core.userstores.definitions import secret_text
from core.userstores.sql import SqlUserStore

USER_TABLES = (um_users, um_user_attributes, um_groups, um_memberships)


class ExternalSqlUserStore(SqlUserStore):
    def __init__(self, domain: str, url: str, hashing: PasswordHashing,
                 policies: Policies | None = None, read_only: bool = False) -> None:
        super().__init__(domain, make_engine(url), hashing, policies, read_only)
        self._ready = False
        self._lock = threading.Lock()

    def _ensure_schema(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            try:
                if self.capabilities.writable_users:
                    metadata.create_all(self.engine, tables=list(USER_TABLES))
                else:
                    names = inspect(self.engine).get_table_names()
                    missing = [t.name for t in USER_TABLES if t.name not in names]
                    if missing:
                        raise StoreUnavailable(
                            f"userstore {self.domain}: its database has no "
                            f"{', '.join(missing)} table(s), and a read-only store creates "
                            "none")
            except (OperationalError, DBAPIError) as exc:
                first = str(exc.orig).strip().splitlines()
                raise StoreUnavailable(f"userstore {self.domain} is unreachable: "
                                       f"{first[0] if first else type(exc).__name__}") from exc
            self._ready = True

    @contextlib.contextmanager
    def _conn(self) -> Iterator[Connection]:
        self._ensure_schema()
        with super()._conn() as conn:
            yield conn

    def health(self) -> Health:
        try:
            self._ensure_schema()
        except StoreUnavailable as exc:
            return Health(False, str(exc))
        return super().health()

    def close(self) -> None:
        self.engine.dispose()


def open_sql_store(store_type: str, domain: str, props: Mapping[str, Any], db: SystemDB,
                   hashing: PasswordHashing, policies: Policies) -> UserStore:
    """The ``sql`` store type's opener: PRIMARY in the system database, any other domain in
    the database of its URL."""
    url = secret_text(props, "url")
    read_only = bool(props.get("read_only"))
    if domain == PRIMARY or not url:
        return SqlUserStore(domain, db.engine, hashing, policies, read_only=read_only)
    return ExternalSqlUserStore(domain, url, hashing, policies, read_only=read_only)
