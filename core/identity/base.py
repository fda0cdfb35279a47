"""What every part of the identity service shares: the write transaction, lookups of
users and roles, the claims catalog."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from core.ambient import current_connection
from core.claims import USERNAME, ClaimCatalog, LocalClaim, validate_claim_value
from core.db import SystemDB
from core.errors import IamError, InvalidInput, NotFound, OperationRefused, ReadOnlyStore
from core.identity import internal_roles
from core.identity.events import EventBus, IdentityEvent, Phase, after_commit_sends
from core.identity.views import RoleView, UserView, role_view
from core.names import INTERNAL, parse_name
from core.userstores.base import StoredUser, UserStore
from core.userstores.router import UserstoreRouter

DEFAULT_PAGE_SIZE = 50


class IdentityBase:
    def __init__(
        self,
        db: SystemDB,
        stores: UserstoreRouter,
        claims: Callable[[], ClaimCatalog],
        bus: EventBus,
    ) -> None:
        self.db = db
        self.stores = stores
        self._claims = claims
        self.bus = bus

    @property
    def claims(self) -> ClaimCatalog:
        return self._claims()

    # ------------------------------------------------------------------ helpers
    @contextlib.contextmanager
    def _write(self, events: list[IdentityEvent],
               undo: list[Callable[[], None]] | None = None,
               compensate: Callable[[], None] | None = None,
               send_after_commit: bool = False) -> Iterator[Any]:
        """One transaction; COMMITTED events go out only after the outermost commit.

        ``undo``: what takes back writes made outside the system transaction (a secondary
        store has its own database or directory), run newest first when the write fails
        before it commits.

        ``send_after_commit``: when this write opens the transaction itself, blocking
        provisioning targets are sent to after the commit (``after_commit_sends``), not
        while the transaction holds its locks. If one refuses the write, ``compensate``
        takes the committed change back (a write of its own, audited as a compensation)
        and the refusal reaches the caller.
        """
        sends: list[Callable[[], None]] | None = None
        if send_after_commit and current_connection(self.db.engine) is None:
            sends = []
        token = after_commit_sends.set(sends)
        try:
            with self.db.transaction() as conn:
                yield conn
                self.db.after_commit(lambda: self._committed(events))
        except BaseException:
            for step in reversed(undo or []):
                with contextlib.suppress(Exception):  # already gone with the rollback
                    step()
            raise
        finally:
            after_commit_sends.reset(token)
        try:
            for send in sends or []:
                send()
        except OperationRefused as refused:
            if compensate is None:
                raise
            try:
                compensate()
            except IamError as exc:  # e.g. another writer deleted the user meanwhile
                raise OperationRefused(f"{refused}; taking the change back failed too, so it "
                                       f"stands: {exc}") from exc
            raise

    def _committed(self, events: list[IdentityEvent]) -> None:
        for ev in events:
            self.bus.emit(Phase.COMMITTED, ev)

    def _view(self, user: StoredUser) -> UserView:
        claims = self.claims.to_claims(user.domain, user.attributes)
        claims[USERNAME] = user.username
        return UserView(user.id, user.domain, user.username, claims, user.created, user.modified)

    def _resolve_claims(self, values: Mapping[str, str]) -> dict[str, str]:
        catalog = self.claims
        return {self._settable_claim(catalog, name): value for name, value in values.items()}

    @staticmethod
    def _settable_claim(catalog: ClaimCatalog, name: str) -> str:
        """The URI of a claim a write may set (any but the username)."""
        uri = catalog.resolve(name)
        if uri == USERNAME:
            raise InvalidInput("the username claim cannot be set; it is the user's name")
        return uri

    def _attribute_writer(self, domain: str) -> Callable[[Mapping[str, str]], dict[str, str]]:
        """``claims.to_attributes(domain, _resolve_claims(claims))`` for many users (a bulk
        import): each set of claim names is resolved and mapped once, every value is still
        checked against its claim's rules."""
        catalog = self.claims
        plans: dict[tuple[str, ...], list[tuple[str, str, LocalClaim]]] = {}

        def attributes(claims: Mapping[str, str]) -> dict[str, str]:
            names = tuple(claims)
            plan = plans.get(names)
            if plan is None:
                plan = plans[names] = [
                    (name, *catalog.target(domain, self._settable_claim(catalog, name)))
                    for name in names]
            out: dict[str, str] = {}
            for name, attribute, claim in plan:
                value = claims[name]
                validate_claim_value(claim, value)
                out[attribute] = value
            return out

        return attributes

    def _user(self, name: str) -> StoredUser:
        return self.stores.find_user(name)

    def _writable_store(self, domain: str, groups: bool = False) -> UserStore:
        store = self.stores.store(domain)
        caps = store.capabilities
        if not (caps.writable_groups if groups else caps.writable_users):
            raise ReadOnlyStore(f"userstore {domain} is read-only")
        return store


    def _role(self, name: str) -> RoleView:
        qn = parse_name(name)
        if qn.is_internal:
            with self.db.transaction() as conn:
                r = internal_roles.get(conn, qn.name)
            return RoleView(r.id, INTERNAL, r.name)
        group = self.stores.store(qn.domain).get_group_by_name(qn.name)
        if group is None:
            raise NotFound(f"role {qn} does not exist")
        return role_view(group)


def qualified(user: StoredUser) -> str:
    return f"{user.domain}/{user.username}"
