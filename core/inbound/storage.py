"""The scim2-server storage over the identity service.

scim2-server speaks the protocol (routing, validation, filters, PATCH, Bulk, ETags); this
storage turns each of its calls into identity-service calls for the requesting
application's userstore domain, so every write is validated, audited and provisioned
outbound like any other (with that application as the initiator). Users and groups of
other domains are invisible to the application: an id from another domain is not found.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from scim2_models import (
    InvalidFilterException,
    InvalidValueException,
    MutabilityException,
    NotFoundException,
    PreconditionFailedException,
    Resource,
    ResourceType,
    ResponseParameters,
    SCIMException,
    SearchRequest,
    TooManyException,
    UniquenessException,
)
from scim2_server.storage import ScimStorage, SearchPage
from sqlalchemy import Connection

from core.apps import Application
from core.db import SystemDB
from core.errors import (
    AlreadyExists,
    IamError,
    InvalidInput,
    NotFound,
    ReadOnlyStore,
    StoreUnavailable,
    TooManyMatches,
)
from core.identity.events import Initiator
from core.identity.service import IdentityService, RoleView, UserView
from core.inbound import Limits, group_ids
from core.inbound.filters import EXTERNAL_ID, FilterTranslator
from core.inbound.resources import ResourceMapper, member_ids, no_nul
from core.inbound.schemas import MappedPath
from core.names import proxy_domain
from core.userstores import query as q

log = logging.getLogger("mware_iam.scim")

T = TypeVar("T")

MEMBER_PAGE = 500  # the identity service pages members by at most this


@dataclass(frozen=True)
class Client:
    """The application a request authenticated as, and where its writes land: its inbound
    userstore domain, or in proxy mode its relay (see ``UserstoreRouter._relay``)."""

    application: str
    domain: str
    proxy_mode: bool = False

    @classmethod
    def of(cls, app: Application) -> Client:
        domain = proxy_domain(app.name) if app.proxy_mode else app.inbound_domain
        return cls(app.name, domain, app.proxy_mode)

    @property
    def initiator(self) -> Initiator:
        return Initiator.application_client(self.application)


#: The client of the request being served (set by the ASGI application per request).
current_client: ContextVar[Client] = ContextVar("scim_client")

#: Whether the request being served runs in the SQLite lane (``app.py``): its operation
#: then runs on the system database connection that the lane's thread keeps open.
in_lane: ContextVar[bool] = ContextVar("scim_in_lane", default=False)

#: Whether the request being served is conditional (If-Match): then a write checks the
#: version against the store's state as it is when it writes.
conditional: ContextVar[bool] = ContextVar("scim_conditional", default=False)

@dataclass(frozen=True)
class _Shown:
    """A user as the current operation handed it to scim2-server's handler: its view, its
    groups, and its resource's version and claims (the handler may change the resource
    itself: a PATCH applies to it)."""

    user: UserView
    roles: list[RoleView]
    version: str | None
    claims: dict[str, str | None]


#: The users the current operation handed out, by id. A PUT or PATCH re-reads the user
#: before writing (with If-Match); when nothing changed since the handler read it, its
#: resource is not built again.
_shown: ContextVar[dict[str, _Shown] | None] = ContextVar("scim_shown", default=None)


class ServiceUnavailableException(SCIMException):
    """503: a userstore is down; the client should retry (RFC 7644 §3.12)."""

    status = 503


def scim_error(exc: IamError) -> SCIMException:
    """The SCIM error for an identity-service refusal; the message says what and where."""
    detail = str(exc)
    if isinstance(exc, AlreadyExists):
        return UniquenessException(detail=detail)
    if isinstance(exc, NotFound):
        return NotFoundException(detail=detail)
    if isinstance(exc, ReadOnlyStore):
        return MutabilityException(detail=detail)
    if isinstance(exc, StoreUnavailable):
        # The cause names internals (a database's URL or path, a driver's message): it
        # goes to the server's log, the client learns which domain and that it may retry.
        log.warning("SCIM: %s", detail)
        client = current_client.get(None)
        where = f"the userstore {client.domain}" if client else "a userstore"
        return ServiceUnavailableException(
            detail=f"{where} is unavailable or busy; retry later")
    return InvalidValueException(detail=detail)


@contextlib.contextmanager
def _scim_errors() -> Iterator[None]:
    try:
        yield
    except IamError as exc:
        raise scim_error(exc) from None


class IamScimStorage(ScimStorage):
    def __init__(self, identity: IdentityService, mapper: ResourceMapper,
                 paths: list[MappedPath], limits: Limits, db: SystemDB) -> None:
        self.identity = identity
        self.mapper = mapper
        self.limits = limits
        self._db = db
        self._transaction = db.transaction
        self._kept = threading.local()
        self.filters = {"User": FilterTranslator("User", paths),
                        "Group": FilterTranslator("Group", paths)}
        self._sort_paths = {f"{p.schema}:{p.path}".lower(): p.claim for p in paths}

    @property
    def client(self) -> Client:
        return current_client.get()

    @contextlib.contextmanager
    def operation(self) -> Iterator[None]:
        """One transaction per SCIM operation (each operation of a bulk request too), so a
        read-modify-write (PUT, PATCH) sees and writes one state. scim2-server calls every
        storage method inside it, so identity errors become SCIM errors here alone.

        It opens unbegun (``core.ambient``): on PostgreSQL a read of one user and the
        write of a POST or PATCH then run alone, one round trip each."""
        shown = _shown.set({})
        try:
            with _scim_errors(), self._transaction(self._kept_connection(), unbegun=True):
                yield
        finally:
            _shown.reset(shown)

    def _kept_connection(self) -> Connection | None:
        """In a lane, the connection its thread keeps (None elsewhere): taking a pooled
        connection and giving it back costs more than a SCIM operation's short
        transaction does (some 25 us of a request on SQLite, 50 to 70 on PostgreSQL)."""
        if not in_lane.get():
            return None
        kept = self._kept
        now = time.monotonic()
        conn = kept.conn = self._db.kept(getattr(kept, "conn", None),
                                         now - getattr(kept, "used", now))
        kept.used = now
        return conn

    def release(self) -> None:
        """Close the connection this thread kept, if any (the lane's thread, as it stops)."""
        conn: Connection | None = getattr(self._kept, "conn", None)
        self._kept.conn = None
        if conn is not None:
            conn.close()

    # -------------------------------------------------------------- reads
    def _found(self, what: str, read: Callable[[str, str], T], resource_id: str) -> T:
        """``read(domain, resource_id)`` in the client's domain, or 404 naming ``what``."""
        try:
            if "\x00" in resource_id:  # no store holds it (PostgreSQL cannot compare it)
                raise NotFound(resource_id)
            return read(self.client.domain, resource_id)
        except NotFound:
            raise NotFoundException(detail=f"{what} {resource_id!r} not found") from None

    def _user(self, user_id: str) -> UserView:
        return self._found("User", self.identity.get_user_by_id, user_id)

    def _role(self, role_id: str) -> RoleView:
        return self._found("Group", self.identity.get_role_by_id, role_id)

    def _roles(self, user: UserView) -> list[RoleView]:
        return self.identity.groups_of_id(user.domain, user.id)

    def _user_resource(self, user: UserView,
                       roles: list[RoleView] | None = None) -> Resource[Any]:
        return self.mapper.user_resource(user, self._roles(user) if roles is None else roles)

    def _show(self, user: UserView, roles: list[RoleView] | None = None
              ) -> tuple[Resource[Any], _Shown]:
        """The user's resource, remembered for the rest of the operation."""
        roles = self._roles(user) if roles is None else roles
        resource, claims = self.mapper.shown_user(user, roles)
        shown = _Shown(user, roles, _version_of(resource), claims)
        memo = _shown.get()
        if memo is not None:
            memo[user.id] = shown
        return resource, shown

    def _current(self, user: UserView) -> _Shown:
        """The user's groups, version and claims as they are now in the store: what this
        operation already showed when the user and its groups are unchanged."""
        roles = self._roles(user)
        seen = (_shown.get() or {}).get(user.id)
        if seen is not None and seen.user == user and seen.roles == roles:
            return seen
        return self._show(user, roles)[1]

    def _members(self, role: RoleView) -> list[UserView]:
        members: list[UserView] = []
        cursor: str | None = None
        while True:
            page = self.identity.member_page(role.qualified_name, MEMBER_PAGE, cursor)
            members.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                return members

    def _external_ids(self, roles: list[RoleView]) -> dict[str, str]:
        with self._transaction() as conn:
            return group_ids.of(conn, self.client.domain, [r.id for r in roles])

    def _group_resource(self, role: RoleView, with_members: bool = True,
                        external_ids: dict[str, str] | None = None) -> Resource[Any]:
        ids = self._external_ids([role]) if external_ids is None else external_ids
        return self.mapper.group_resource(role, self._members(role) if with_members else None,
                                          ids.get(role.id))

    def get(self, resource_type: ResourceType, resource_id: str, *,
            response_parameters: ResponseParameters[Any] | None = None) -> Resource[Any]:
        if resource_type.name == "Group":
            return self._group_resource(self._role(resource_id),
                                        _wants_members(response_parameters))
        # Built for this call alone, as the storage contract asks (the handler applies a
        # PATCH to what it gets); the operation keeps what it showed in its memo. The user
        # and its groups are one read.
        return self._show(*self._found("User", self.identity.user_and_groups_by_id,
                                       resource_id))[0]

    def search(self, resource_types: list[ResourceType], search_request: SearchRequest[Any],
               *, position: Any = None) -> SearchPage:
        """One page; a search at the root (both types) pages Users, then Groups."""
        start = search_request.start_index_0 or 0
        count: int = self.limits.default_count if search_request.count is None \
            else search_request.count
        total, resources = 0, list[Resource[Any]]()
        for resource_type in resource_types:
            page = self._search(resource_type.name or "User", search_request,
                                max(0, start - total), count - len(resources))
            total += page.total or 0
            resources.extend(page.resources)
        return SearchPage(total, resources)

    def _search(self, name: str, search_request: SearchRequest[Any], start: int,
                count: int) -> SearchPage:
        scim_filter = search_request.filter
        domain = self.client.domain
        try:
            query = self.filters[name].translate(scim_filter.ast if scim_filter else None)
            if name == "Group":
                groups = self.identity.search_roles(domain, self._group_external_ids(query),
                                                    start, count)
                ids = self._external_ids(list(groups.items))
                with_members = _wants_members(search_request)
                return SearchPage(groups.total, [self._group_resource(g, with_members, ids)
                                                 for g in groups.items])
            users = self.identity.search_users(domain, query, start, count,
                                               self._sort(search_request))
        except TooManyMatches as exc:
            raise TooManyException(detail=str(exc)) from None
        except InvalidInput as exc:  # a comparison the store cannot make (e.g. id gt)
            raise InvalidFilterException(detail=str(exc)) from None
        user_ids = [u.id for u in users.items]
        groups_of = self.identity.groups_of_ids(domain, user_ids, users.groups) \
            if user_ids else {}
        return SearchPage(users.total, [self._user_resource(u, groups_of[u.id])
                                        for u in users.items])

    def _group_external_ids(self, query: q.Query) -> q.Query:
        """Group ``externalId eq`` comparisons as the ids of the groups holding it."""
        def resolve(node: q.Query) -> q.Query:
            if isinstance(node, q.Compare) and node.field == q.attribute(EXTERNAL_ID):
                if node.op is not q.Op.EQ or not isinstance(node.value, str):
                    raise InvalidFilterException(
                        detail="a group's externalId can only be compared with eq")
                with self._transaction() as conn:
                    found = group_ids.groups_with(conn, self.client.domain, node.value)
                return q.Or(tuple(q.Compare(q.ID, q.Op.EQ, i) for i in found))
            if isinstance(node, q.And | q.Or):
                return type(node)(tuple(resolve(t) for t in node.terms))
            if isinstance(node, q.Not):
                return q.Not(resolve(node.term))
            return node
        return q.simplify(resolve(query))

    def _sort(self, search_request: SearchRequest[Any]) -> q.Sort | None:
        if search_request.sort_by is None:
            return None
        descending = search_request.sort_order == SearchRequest.SortOrder.descending
        path = str(search_request.sort_by)
        key = path.lower().removeprefix("urn:ietf:params:scim:schemas:core:2.0:user:")
        builtin = {"username": q.NAME, "id": q.ID, "meta.created": q.CREATED,
                   "meta.lastmodified": q.MODIFIED}
        if key in builtin:
            return q.Sort(builtin[key], descending)
        full = path.lower() if path.lower().startswith("urn:") else \
            f"urn:ietf:params:scim:schemas:core:2.0:user:{key}"
        claim = self._sort_paths.get(full) or self._sort_paths.get(full + ".value")
        if claim is None:
            candidates = [c for p, c in self._sort_paths.items()
                          if p.startswith(full + "[") and p.endswith("].value")]
            claim = candidates[0] if candidates else None
        if claim is None:
            raise InvalidValueException(detail=f"cannot sort by {path}: it is not stored")
        return q.Sort(q.attribute(claim), descending)

    # -------------------------------------------------------------- writes
    def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        client = self.client
        if resource_type.name == "Group":
            members = [self._user(m).qualified_name for m in member_ids(resource)]
            role = self.identity.add_role(client.initiator,
                                          f"{client.domain}/{_attr(resource, 'display_name')}",
                                          members)
            self._put_external_id(role, resource)
            return self._group_resource(role)
        sent, dumped = self.mapper.claims_and_dump(resource)
        claims = {c: v for c, v in sent.items() if v is not None}
        user = self.identity.add_user(client.initiator,
                                      f"{client.domain}/{_attr(resource, 'user_name')}",
                                      _password(resource), claims)
        return self.mapper.stored_user(user, [], resource, dumped)  # in no group yet

    def update(self, resource_type: ResourceType, resource: Resource[Any], *,
               expected_version: str | None = None) -> Resource[Any]:
        if resource_type.name == "Group":
            return self._update_group(resource, expected_version)
        return self._update_user(resource, expected_version)

    @staticmethod
    def _check_version(version: str | None, expected: str | None) -> None:
        if expected is not None and version is not None and version != expected:
            raise PreconditionFailedException(
                detail=f"the resource changed: its version is {version}")

    def _update_user(self, resource: Resource[Any], expected: str | None) -> Resource[Any]:
        client = self.client
        shown = (_shown.get() or {}).get(str(resource.id))
        if shown is None or conditional.get():
            shown = self._current(self._user(str(resource.id)))
            self._check_version(shown.version, expected)
        # else without If-Match nothing is checked against the store's state: the change
        # writes only the claims it changes, so a concurrent write elsewhere stays.
        user = shown.user
        new_name = _attr(resource, "user_name")
        if new_name is not None and new_name != user.username:
            raise MutabilityException(
                detail=f"userName cannot change ({user.username!r} -> {new_name!r}); "
                       "create a new user instead")
        # Resource against resource: a stored value the schema cannot show (hidden from
        # the client) is neither "removed" by a PATCH of something else nor rewritten.
        after, dumped = self.mapper.claims_and_dump(resource)
        before = shown.claims
        to_set = {c: v for c, v in after.items() if v is not None and v != before.get(c)}
        to_remove = [c for c, v in after.items() if v is None and before.get(c) is not None]
        name = user.qualified_name
        password = _password(resource)
        if password is not None:
            self._db.writes_more()  # the password after the claims
        if to_set or to_remove:  # the update answers the user as stored after it
            user = self.identity.update_user(client.initiator, user, to_set, to_remove)
        if password is not None:
            self.identity.set_password(client.initiator, name, password)
            user = self._user(user.id)
        # its groups are not changed here
        return self.mapper.stored_user(user, shown.roles, resource, dumped)

    def _update_group(self, resource: Resource[Any], expected: str | None) -> Resource[Any]:
        client = self.client
        role = self._role(str(resource.id))
        current = self._group_resource(role)
        self._check_version(_version_of(current), expected)
        name = role.qualified_name
        new_name = _attr(resource, "display_name")
        if new_name and new_name != role.name:
            role = self.identity.rename_role(client.initiator, name, new_name)
            name = role.qualified_name
        before, after = set(member_ids(current)), member_ids(resource)
        added = [self._user(m).qualified_name for m in after if m not in before]
        removed = [self._user(m).qualified_name for m in before if m not in set(after)]
        if added:
            self.identity.assign(client.initiator, name, added)
        if removed:
            self.identity.unassign(client.initiator, name, removed)
        self._put_external_id(role, resource)
        return self._group_resource(self._role(role.id))

    def _put_external_id(self, role: RoleView, resource: Resource[Any]) -> None:
        with self._transaction() as conn:
            group_ids.put(conn, role.domain, role.id, _attr(resource, "external_id"))

    def delete(self, resource_type: ResourceType, resource_id: str, *,
               expected_version: str | None = None) -> None:
        client = self.client
        if resource_type.name == "Group":
            role = self._role(resource_id)
            if expected_version is not None:
                self._check_version(_version_of(self._group_resource(role)), expected_version)
            self.identity.delete_role(client.initiator, role.qualified_name)
            with self._transaction() as conn:
                group_ids.put(conn, role.domain, role.id, None)
            return
        user = self._user(resource_id)
        if expected_version is not None:
            self._check_version(self._current(user).version, expected_version)
        self.identity.delete_user(client.initiator, user.qualified_name)

def _version_of(resource: Resource[Any]) -> str | None:
    return resource.meta.version if resource.meta else None


def _attr(resource: Resource[Any], name: str) -> str | None:
    """A string attribute of a resource (``user_name``, ``display_name``), if set."""
    value = getattr(resource, name, None)
    what = {"user_name": "userName", "display_name": "displayName"}.get(name, name)
    return no_nul(str(value), what) if value is not None else None


def _password(resource: Resource[Any]) -> str | None:
    password = getattr(resource, "password", None)
    return str(password) if password else None


def _wants_members(parameters: Any) -> bool:
    """Whether a response keeps the members of groups (``excludedAttributes=members``
    spares reading them; Entra asks so)."""
    if parameters is None:
        return True
    excluded = {str(a).lower().rsplit(":", 1)[-1] for a in
                (getattr(parameters, "excluded_attributes", None) or [])}
    attributes = {str(a).lower().rsplit(":", 1)[-1] for a in
                  (getattr(parameters, "attributes", None) or [])}
    if "members" in excluded:
        return False
    return not attributes or "members" in attributes or any(
        a.startswith("members.") for a in attributes)
