"""Connections to one directory: TLS, the service bind, a small pool, retries, paged
searches, and the translation of directory errors into ``core.errors``.

Paging (RFC 2696). A directory ties the paging cookie to the connection it was issued on
(OpenLDAP answers "paged results cookie is invalid" on any other), so a listing keeps its
connection *pinned* between pages. The cursor handed out carries the cookie, the query it
belongs to and how many entries were served; the next page goes out on the pinned
connection. When that connection is gone (another process, an expired or evicted pin, a
network failure) the listing resumes on a fresh connection by paging past the entries
already served: still page by page, never one giant search, only slower.

Messages never carry the bind password or a user's password; only the server's diagnostic
text, the URL and DNs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import secrets
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any, TypeVar

from ldap3 import BASE, NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import (
    LDAPCertificateError,
    LDAPException,
    LDAPOperationResult,
    LDAPStartTLSError,
)

from core.errors import (
    AlreadyExists,
    IamError,
    InvalidInput,
    NotFound,
    PolicyViolation,
    ReadOnlyStore,
    StoreUnavailable,
)
from core.userstores.ldap_schema import MAX_PAGE, LdapSettings

T = TypeVar("T")
PAGED_RESULTS = "1.2.840.113556.1.4.319"
#: Idle pooled connections kept per store.
POOL_SIZE = 8
#: An idle pooled connection older than this is probed before use (servers drop idle ones).
PROBE_AFTER = 30.0
#: Listings kept open between pages per store, and how long an untouched one lives.
MAX_PINNED = 16
PIN_TTL = 600.0

#: (user DN, password) -> an open, bound connection. Tests give one for ldap3's mock.
Connector = Callable[[str, str], Connection]


@dataclass(frozen=True)
class Query:
    """One search: a listing's cursor only continues the query it was issued for."""

    kind: str
    base: str
    filter: str
    attributes: Sequence[str]
    scope: str = SUBTREE

    @property
    def key(self) -> str:
        text = "\0".join((self.kind, self.base, self.filter, self.scope))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class _Pin:
    conn: Connection
    query: str
    cookie: bytes
    served: int
    used: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class _Cursor:
    query: str
    cookie: bytes
    served: int
    pin: str

    def encode(self) -> str:
        data = {"q": self.query, "c": base64.b64encode(self.cookie).decode(),
                "n": self.served, "p": self.pin}
        return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()
                                        ).decode()

    @classmethod
    def decode(cls, text: str, query: Query) -> _Cursor:
        try:
            data = json.loads(base64.urlsafe_b64decode(text.encode()))
            cursor = cls(str(data["q"]), base64.b64decode(data["c"]), int(data["n"]),
                         str(data["p"]))
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise InvalidInput("the paging cursor is not valid (start the listing again)") \
                from exc
        if cursor.query != query.key:
            raise InvalidInput("the paging cursor belongs to another listing")
        if cursor.served < 0:
            raise InvalidInput("the paging cursor is not valid (start the listing again)")
        return cursor


def _short(exc: BaseException) -> str:
    if isinstance(exc, LDAPCertificateError):
        return "the server certificate does not match the host name"
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


class Directory:
    """The connections of one directory store; safe to share between threads."""

    def __init__(self, domain: str, settings: LdapSettings,
                 connector: Connector | None = None) -> None:
        self.domain = domain
        self.s = settings
        self._connect: Connector = connector or self._connect_real
        self._server: Server | None = None
        self._lock = threading.Lock()
        self._idle: list[tuple[Connection, float]] = []
        self._pins: OrderedDict[str, _Pin] = OrderedDict()

    # ------------------------------------------------------------------ connecting
    def _make_server(self) -> Server:
        s = self.s
        tls = None
        if s.ldaps or s.start_tls:
            tls = Tls(validate=ssl.CERT_REQUIRED if s.validate_certificate else ssl.CERT_NONE,
                      ca_certs_file=s.ca_certificate_file or None,
                      sni=None if _is_ip(s.host) else s.host)
        return Server(s.host, port=s.port, use_ssl=s.ldaps, tls=tls, get_info=NONE,
                      connect_timeout=s.timeout)

    def _connect_real(self, user: str, password: str) -> Connection:
        if self._server is None:
            self._server = self._make_server()
        conn = Connection(self._server, user=user, password=password, raise_exceptions=True,
                          receive_timeout=self.s.timeout, auto_referrals=False,
                          return_empty_attributes=False, check_names=False,
                          read_only=self.s.read_only)
        try:
            conn.open()
            if self.s.start_tls and not conn.start_tls():
                raise LDAPStartTLSError("the server refused StartTLS")
            conn.bind()
        except BaseException as exc:
            with contextlib.suppress(LDAPException, OSError):
                conn.unbind()
            if not isinstance(exc, LDAPOperationResult):
                self._server = None  # ldap3 remembers a failed address: start afresh
            raise
        return conn

    def _service(self, attempts: int | None = None) -> Connection:
        """A new connection bound as the bind DN, with the configured retries."""
        tries = 1 + self.s.retry_count if attempts is None else attempts
        last: BaseException | None = None
        for attempt in range(tries):
            if attempt:
                time.sleep(self.s.retry_delay)
            try:
                return self._connect(self.s.bind_dn, self.s.bind_password)
            except LDAPOperationResult as exc:
                if exc.result == 49:
                    raise StoreUnavailable(
                        f"userstore {self.domain}: the directory refused the credentials of "
                        f"the bind DN {self.s.bind_dn} ({_short(exc)})") from None
                raise self.error(exc) from None
            except (LDAPException, OSError) as exc:
                last = exc
        raise self.unreachable(last)

    def unreachable(self, exc: BaseException | None) -> StoreUnavailable:
        why = _short(exc) if exc is not None else "no answer"
        return StoreUnavailable(f"userstore {self.domain} is unreachable at {self.s.url}: {why}")

    def error(self, exc: BaseException) -> IamError:
        """The engine's error for a directory's answer (or for a broken connection)."""
        if not isinstance(exc, LDAPOperationResult):
            return self.unreachable(exc)
        code = exc.result
        text = (exc.message or "").strip()
        said = f"{exc.description}" + (f": {text}" if text else "")
        where = f"userstore {self.domain}"
        if code == 68:
            return AlreadyExists(f"{where}: the entry already exists ({exc.dn or said})")
        if code == 32:
            return NotFound(f"{where}: the directory has no such entry ({said})")
        if code == 50:
            return ReadOnlyStore(f"{where}: the bind DN may not make this change ({said})")
        if code == 19 and "0000052D" in text.upper():
            return PolicyViolation(f"{where}: the directory refused the password: it does not "
                                   "meet the directory's password policy")
        if code in (16, 17, 18, 19, 20, 21, 34, 53, 64, 65, 66, 67, 69):
            return InvalidInput(f"{where}: the directory refused the change ({said})")
        if code in (3, 11, 51, 52, 80):
            return StoreUnavailable(f"{where} is unavailable ({said})")
        return StoreUnavailable(f"{where}: the directory failed ({said})")

    # ------------------------------------------------------------------ the pool
    def _probe(self, conn: Connection) -> bool:
        try:
            conn.search("", "(objectClass=*)", BASE, attributes=["1.1"])
        except (LDAPException, OSError):
            return False
        return True

    def _acquire(self) -> Connection:
        while True:
            with self._lock:
                if not self._idle:
                    break
                conn, since = self._idle.pop()
            if conn.closed:
                continue
            if time.monotonic() - since < PROBE_AFTER or self._probe(conn):
                return conn
            self._discard(conn)
        return self._service()

    def _release(self, conn: Connection) -> None:
        if self.s.pooling and not conn.closed:
            with self._lock:
                if len(self._idle) < POOL_SIZE:
                    self._idle.append((conn, time.monotonic()))
                    return
        self._discard(conn)

    @staticmethod
    def _discard(conn: Connection) -> None:
        with contextlib.suppress(LDAPException, OSError):
            conn.unbind()

    def call(self, fn: Callable[[Connection], T], write: bool = False) -> T:
        """Run ``fn`` on a service connection; directory errors become engine errors.

        A read that meets a broken connection is tried once more on a new one; a write is
        not (it may have been applied).
        """
        for attempt in (0, 1):
            conn = self._acquire()
            try:
                result = fn(conn)
            except LDAPOperationResult as exc:
                self._release(conn)
                raise self.error(exc) from exc
            except (LDAPException, OSError) as exc:
                self._discard(conn)
                if write or attempt:
                    raise self.unreachable(exc) from exc
                continue
            except BaseException:
                self._release(conn)
                raise
            self._release(conn)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def verify(self, dn: str, password: str) -> bool:
        """Whether ``password`` binds as ``dn`` (on a connection of its own, never pooled)."""
        if not password:  # an empty password would be an unauthenticated bind: success
            return False
        try:
            conn = self._connect(dn, password)
        except LDAPOperationResult as exc:
            if exc.result in (32, 49, 53):  # no such entry, bad credentials, disabled (AD)
                return False
            raise self.error(exc) from exc
        except (LDAPException, OSError) as exc:
            raise self.unreachable(exc) from exc
        self._discard(conn)
        return True

    def health_check(self, bases: Sequence[str]) -> None:
        """Bind (no retries) and read each base entry; raises the engine's error."""
        conn = self._service(attempts=1)
        try:
            for base in bases:
                try:
                    conn.search(base, "(objectClass=*)", BASE, attributes=["1.1"])
                except LDAPOperationResult as exc:
                    if exc.result == 32:
                        raise NotFound(f"userstore {self.domain}: the search base {base} does "
                                       "not exist") from exc
                    raise self.error(exc) from exc
                except (LDAPException, OSError) as exc:
                    raise self.unreachable(exc) from exc
        finally:
            self._discard(conn)

    # ------------------------------------------------------------------ paged searches
    @staticmethod
    def _page(conn: Connection, q: Query, size: int, cookie: bytes
              ) -> tuple[list[dict[str, Any]], bytes]:
        conn.search(q.base, q.filter, q.scope, attributes=list(q.attributes),
                    paged_size=size, paged_cookie=cookie or None)
        entries = [e for e in conn.response or () if e.get("type") == "searchResEntry"]
        control = (conn.result.get("controls") or {}).get(PAGED_RESULTS) or {}
        return entries, bytes((control.get("value") or {}).get("cookie") or b"")

    def _take_pin(self, token: str) -> _Pin | None:
        now = time.monotonic()
        expired: list[_Pin] = []
        with self._lock:
            for key in [k for k, p in self._pins.items() if now - p.used > PIN_TTL]:
                expired.append(self._pins.pop(key))
            pin = self._pins.pop(token, None)
        for old in expired:
            self._discard(old.conn)
        return pin

    def _put_pin(self, token: str, pin: _Pin) -> None:
        evicted: list[_Pin] = []
        with self._lock:
            self._pins[token] = pin
            while len(self._pins) > MAX_PINNED:
                evicted.append(self._pins.popitem(last=False)[1])
        for old in evicted:
            self._discard(old.conn)  # closing the connection ends its paged search

    def paged(self, q: Query, size: int, cursor: str | None
              ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ``q`` and the cursor of the next (None on the last page)."""
        state = _Cursor.decode(cursor, q) if cursor else None
        pin = self._take_pin(state.pin) if state else None
        if pin is not None and state is not None and (
                pin.query != state.query or pin.cookie != state.cookie
                or pin.served != state.served):
            self._put_pin(state.pin, pin)  # an older cursor of that listing: leave it be
            pin = None
        token = state.pin if pin is not None and state else secrets.token_hex(8)
        served = state.served if state else 0
        if pin is not None:
            try:
                entries, cookie = self._page(pin.conn, q, size, pin.cookie)
                return self._next(q, pin.conn, entries, cookie, served, token)
            except (LDAPException, OSError):
                self._discard(pin.conn)  # the cookie or the connection died: resume below
        return self._resume(q, size, served, token)

    def _resume(self, q: Query, size: int, skip: int, token: str
                ) -> tuple[list[dict[str, Any]], str | None]:
        def run(conn: Connection) -> tuple[list[dict[str, Any]], bytes]:
            cookie = b""
            left = skip
            while left > 0:
                got, cookie = self._page(conn, q, min(left, MAX_PAGE), cookie)
                left -= len(got)
                if not cookie:
                    return [], b""
            return self._page(conn, q, size, cookie)

        conn = self._acquire()
        try:
            entries, cookie = run(conn)
        except LDAPOperationResult as exc:
            self._release(conn)
            raise self.error(exc) from exc
        except (LDAPException, OSError) as exc:
            self._discard(conn)
            raise self.unreachable(exc) from exc
        return self._next(q, conn, entries, cookie, skip, token)

    def _next(self, q: Query, conn: Connection, entries: list[dict[str, Any]], cookie: bytes,
              served: int, token: str) -> tuple[list[dict[str, Any]], str | None]:
        served += len(entries)
        if not cookie:
            self._release(conn)
            return entries, None
        self._put_pin(token, _Pin(conn, q.key, cookie, served))
        return entries, _Cursor(q.key, cookie, served, token).encode()

    def each(self, q: Query, size: int = MAX_PAGE) -> Generator[dict[str, Any], None, None]:
        """Every entry of ``q``, ``size`` at a time, on one connection (counts, scans); a
        caller that stops early closes the iterator, which ends the search."""
        conn = self._acquire()
        cookie = b""
        try:
            while True:
                entries, cookie = self._page(conn, q, size, cookie)
                yield from entries
                if not cookie:
                    break
        except GeneratorExit:  # the caller has what it wanted: keep the connection
            self._abandon(conn, q, cookie)
            raise
        except LDAPOperationResult as exc:
            self._release(conn)
            raise self.error(exc) from exc
        except (LDAPException, OSError) as exc:
            self._discard(conn)
            raise self.unreachable(exc) from exc
        except BaseException:
            self._discard(conn)  # failed half-way: its paged search dies with it
            raise
        self._release(conn)

    def _abandon(self, conn: Connection, q: Query, cookie: bytes) -> None:
        """Give back a connection whose paged search stopped early, once a page of size 0
        has ended that search (RFC 2696); a connection that cannot end it is dropped."""
        if cookie:
            try:
                self._page(conn, q, 0, cookie)
            except (LDAPException, OSError):
                self._discard(conn)
                return
        self._release(conn)

    def close(self) -> None:
        with self._lock:
            conns = [c for c, _ in self._idle] + [p.conn for p in self._pins.values()]
            self._idle.clear()
            self._pins.clear()
        for conn in conns:
            self._discard(conn)
