"""Bulk import of users: rows validated one by one, inserted a batch per transaction."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core import audit
from core.claims import ClaimCatalog
from core.errors import AlreadyExists, IamError, InvalidInput
from core.identity.events import EventType, IdentityEvent, Initiator, Phase
from core.identity.users import UserOperations
from core.identity.views import RoleView
from core.names import QualifiedName, parse_name
from core.userstores.base import NewUser, UserStore

#: Rows per import transaction: fewer commits rewrite fewer index pages (SQLite WAL).
IMPORT_BATCH_SIZE = 5000
#: Rows with a password per import transaction (each costs an argon2id hash).
PASSWORD_BATCH = 64


@dataclass(frozen=True)
class ImportRow:
    """One row of a bulk import; ``line`` is what error reports cite."""

    line: int
    username: str
    password: str | None = None
    claims: Mapping[str, str] = field(default_factory=dict)
    roles: Sequence[str] = ()


@dataclass
class ImportReport:
    """What became of every row: imported, skipped (the user exists already) or refused."""

    imported: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    #: Lines of rows whose user already exists: a re-run of a file skips what it imported.
    skipped: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class PreparedRow:
    """A validated import row, ready for its batch."""

    row: ImportRow
    new: NewUser
    roles: list[RoleView]
    name: QualifiedName


class BulkImport(UserOperations):
    def import_users(
        self,
        initiator: Initiator,
        rows: Iterable[ImportRow],
        domain: str | None = None,
        batch_size: int = IMPORT_BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        """Import many users: bad rows are reported by line, every good row is imported.

        Rows are validated one by one, then inserted a batch at a time (one transaction per
        batch, audit rows and events included). A batch that meets a conflict nobody could
        see during validation is retried row by row, so one bad row never costs its batch.
        A batch also ends after ``PASSWORD_BATCH`` rows with a password: hashing dominates
        those, and progress should keep moving. A user that exists already is skipped, not
        refused: a re-run of a file skips what the first run imported.
        """
        report = ImportReport()
        batch: list[PreparedRow] = []
        seen: dict[tuple[str, str], int] = {}
        passwords = 0
        default_domain = domain or "PRIMARY"
        stores: dict[str, tuple[UserStore, Callable[[Mapping[str, str]], dict[str, str]]]] = {}

        def flush() -> None:
            nonlocal passwords
            if not batch:
                return
            try:
                self._import_batch(initiator, batch)
                report.imported += len(batch)
            except IamError:
                for item in batch:
                    try:
                        self._import_batch(initiator, [item])
                        report.imported += 1
                    except AlreadyExists:
                        report.skipped.append(item.row.line)
                    except IamError as exc:
                        report.errors.append((item.row.line, str(exc)))
            if progress:
                progress(len(batch))
            batch.clear()
            passwords = 0

        with _cycle_collector_paused():
            for row in rows:
                try:
                    qn = parse_name(row.username, default_domain)
                    found = stores.get(qn.domain)
                    if found is None:  # looked up once per domain and import
                        found = stores[qn.domain] = (self._writable_store(qn.domain),
                                                     self._attribute_writer(qn.domain))
                    store, to_attributes = found
                    key = (qn.domain, store.policies.key(qn.name))
                    if key in seen:
                        raise InvalidInput(f"user {qn} appears more than once in the file "
                                           f"(first at line {seen[key]})")
                    new, roles = self._prepare_new_user(store, qn, row.password, row.claims,
                                                        row.roles, to_attributes)
                    seen[key] = row.line
                    batch.append(PreparedRow(row, new, roles, qn))
                    passwords += bool(row.password)
                except IamError as exc:
                    report.errors.append((row.line, str(exc)))
                    if progress:
                        progress(1)
                if len(batch) >= batch_size or passwords >= PASSWORD_BATCH:
                    flush()
            flush()
        if report.imported:
            for store, _ in stores.values():
                store.bulk_loaded()
        return report

    def _import_batch(
        self, initiator: Initiator,
        batch: Sequence[PreparedRow],
    ) -> None:
        by_domain: dict[str, list[int]] = {}
        for i, prepared in enumerate(batch):
            by_domain.setdefault(prepared.name.domain, []).append(i)
        bus = self.bus
        # Events are only built when someone listens; the audit rows are always written.
        wanted = bus.has_subscribers(Phase.POST, EventType.USER_ADDED) or \
            bus.has_subscribers(Phase.COMMITTED, EventType.USER_ADDED)
        events: list[IdentityEvent] = []
        audits: list[tuple[str, Mapping[str, Any]]] = []
        with self._write(events) as conn:
            for domain, idx in by_domain.items():
                store = self.stores.store(domain)
                claims_of = _claims_reader(self.claims, domain)
                claims = {i: claims_of(batch[i].new) for i in idx}
                if bus.has_subscribers(Phase.PRE, EventType.USER_ADDED):
                    for i in idx:
                        bus.emit(Phase.PRE, self._import_event(initiator, batch[i], "",
                                                               claims[i]))
                users = store.add_users([batch[i].new for i in idx])
                for i, user in zip(idx, users, strict=True):
                    item = batch[i]
                    if item.roles:
                        self._assign_new_user_roles(conn, initiator, store, user, item.roles)
                    audits.append((str(item.name),
                                   {"claims": sorted(claims[i]), "import": True}))
                    if wanted:
                        events.append(self._import_event(initiator, item, user.id, claims[i]))
            audit.record_many(conn, initiator, "user.add", audits)
            for ev in events:
                bus.emit(Phase.POST, ev)

    def _import_event(
        self, initiator: Initiator,
        item: PreparedRow, user_id: str,
        claims: dict[str, str],
    ) -> IdentityEvent:
        row, roles, qn = item.row, item.roles, item.name
        return IdentityEvent(EventType.USER_ADDED, initiator, qn.domain, user_id, str(qn),
                             {"claims": claims, "roles": [r.qualified_name for r in roles]},
                             secret=row.password)



def _claims_reader(catalog: ClaimCatalog, domain: str) -> Callable[[NewUser], dict[str, str]]:
    """``catalog.to_claims`` for many users of one domain, worked out once per attribute set."""
    uris: dict[tuple[str, ...], dict[str, str]] = {}

    def claims_of(user: NewUser) -> dict[str, str]:
        names = tuple(user.attributes)
        found = uris.get(names)
        if found is None:
            found = uris[names] = catalog.to_claims(domain, {a: a for a in names})
        return {uri: user.attributes[a] for uri, a in found.items()}

    return claims_of


@contextlib.contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector during a bulk import.

    An import holds a batch of rows, and each full collection would scan them with everything
    else the process holds: a fifth of an import's time. Rows are freed by reference counting
    either way; automatic collection resumes when the import ends.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
