"""The connector contract: configuration schema, outbound entities, operations, typed errors.

A connector module declares a :class:`ConnectorSpec` (type, label, property schema) and a
:class:`Connector` subclass. Connectors are async, never touch the database and never see a
local id: the engine hands them what to send (an :class:`OutboundUser` or
:class:`OutboundGroup`) and the remote id it stored, and stores the :class:`RemoteRef` they
return. They raise the typed errors below; the engine turns those into retries, adoption,
quarantine or a dead job. Connector types are found through the registry
(:mod:`connectors.registry`, the ``mware_iam.connectors`` entry points).

Property keys keep the reference server's names (``scim2-user-ep``) so existing
configurations import unchanged. Every connector also takes :data:`COMMON_PROPERTIES`
(concurrency, retries, timeouts, deprovisioning action), read by the engine.

**What a connector may import of the engine**: ``core.errors`` (the errors it raises),
``core.properties`` (its property schema), ``core.claims`` (claim URIs and the SCIM
dialect's mapping) and ``core.scim_paths`` (SCIM attribute paths); nothing else of ``core``
(no database, identity service, userstore or provisioning module). ``lint-imports``
enforces it (``[tool.importlinter]`` in pyproject.toml).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from core.properties import FieldError, PropertySpec, PropertyType, redact_urls

_P = PropertyType

#: Properties the engine reads for every connector (retry policy, limits, deprovisioning).
COMMON_PROPERTIES: tuple[PropertySpec, ...] = (
    PropertySpec("concurrency", "Concurrent requests", _P.INTEGER, default=4,
                 help="requests in flight to this target at once"),
    PropertySpec("max-attempts", "Maximum attempts", _P.INTEGER, default=0,
                 help="attempts before a job is dead (0: no limit, see give-up-seconds)"),
    PropertySpec("give-up-seconds", "Give up after (s)", _P.INTEGER, default=86400,
                 help="a job still failing this long after its first attempt is dead"),
    PropertySpec("retry-base-seconds", "First retry delay (s)", _P.INTEGER, default=1),
    PropertySpec("retry-max-seconds", "Longest retry delay (s)", _P.INTEGER, default=21600,
                 help="the backoff grows to this and stays (default 6 hours)"),
    PropertySpec("timeout-seconds", "Request timeout (s)", _P.INTEGER, default=10),
    PropertySpec("quarantine-threshold", "Failures before quarantine", _P.INTEGER, default=5,
                 help="consecutive failures that quarantine the target"),
    PropertySpec("probe-seconds", "Quarantine probe interval (s)", _P.INTEGER, default=15),
    PropertySpec("deprovision-action", "Deprovisioning action", _P.CHOICE, default="delete",
                 choices=("delete", "disable", "none"),
                 help="what a user leaving scope becomes at the target"),
    PropertySpec("deletion-threshold", "Deletion threshold (per hour)", _P.INTEGER,
                 default=500, help="deletions and disables per rolling hour before the "
                 "rest are held for approval; 0: never held"),
    PropertySpec("reconcile-every", "Reconcile every", _P.CHOICE, default="off",
                 choices=("off", "15m", "1h", "6h", "12h", "24h"),
                 help="the workers compare the target with what it should hold this often "
                      "(a report; repairs are yours)"),
)

#: Added to a target's properties by the engine: the identity provider's name (for
#: connectors that build names from it, such as Google's provisioning pattern).
IDP_NAME = "idp-name"


@dataclass(frozen=True)
class ConnectorSpec:
    type: str
    label: str
    properties: tuple[PropertySpec, ...]
    #: Properties required only when another property has a value: (prop, other, value).
    required_when: tuple[tuple[str, str, str], ...] = ()
    supports_groups: bool = False
    #: A property that must be set for groups to be sent (e.g. the group endpoint).
    groups_need: str | None = None
    #: The claim dialect the connector speaks natively (the SCIM 2.0 dialect for SCIM):
    #: used when the identity provider defines no claim mappings of its own.
    dialect: str | None = None
    #: False: the target cannot delete users, and ``delete_user`` deactivates them
    #: (Salesforce); the user stays at the target, inactive.
    deletes_users: bool = True
    #: ``"module:function"`` of the sandbox peer the contract suite runs this connector
    #: against (``connectors/sandbox/contract.py``).
    contract_peer: str | None = None
    #: Checks across properties that their types cannot express (typed values in; a
    #: problem per property out): run by ``config validate``, the console form and save.
    checks: Callable[[Mapping[str, Any]], list[FieldError]] | None = None
    #: ``"module:function"`` answering ``provisioning preview``'s requests like an
    #: accommodating peer (an ``httpx.MockTransport`` handler); None: SCIM-shaped answers.
    preview_peer: str | None = None

    @property
    def all_properties(self) -> tuple[PropertySpec, ...]:
        return (*self.properties, *COMMON_PROPERTIES)


# ---------------------------------------------------------------- what is sent
@dataclass(frozen=True)
class OutboundUser:
    """A user as one target should see it.

    ``attributes`` are the identity provider's remote claim names with values (defaults
    applied); ``claims`` are the local claims, for connectors that map through their own
    dialect (SCIM) when the identity provider defines no claim mappings.
    """

    username: str
    domain: str
    claims: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, str] = field(default_factory=dict)
    password: str | None = field(default=None, repr=False)
    active: bool = True
    groups: Sequence[str] = ()
    #: Remote names of mapped claims the user has no value for (an update clears them).
    unset: Sequence[str] = ()


@dataclass(frozen=True)
class OutboundGroup:
    """A group as one target should see it: its (mapped) name and the remote ids of members."""

    name: str
    domain: str
    member_ids: Sequence[str] = ()


@dataclass(frozen=True)
class RemoteRef:
    """What a target calls the object: its id (stored and used to address it) and name."""

    id: str
    name: str = ""


@dataclass(frozen=True)
class RemoteObject:
    """A user or group as a listing of the target shows it (reconciliation compares these
    with what would be sent).

    ``name`` is the natural key as :class:`OutboundUser` / :class:`OutboundGroup` name it
    (any prefix the connector adds when sending is taken off); ``attributes`` the target's
    own representation (for :meth:`Connector.drift`); ``members`` a group's member ids.
    """

    id: str
    name: str
    active: bool = True
    attributes: Mapping[str, Any] = field(default_factory=dict)
    members: Sequence[str] = ()


#: Objects a listing asks the target for per request.
LIST_PAGE = 200


@dataclass(frozen=True)
class Exchange:
    """One HTTP request and its response, redacted (no secret header, no password)."""

    method: str
    url: str
    request_body: Any = None
    status: int | None = None
    response_body: Any = None
    #: The JSON text of ``request_body`` / ``response_body`` when the connector has it
    #: already (what it sent or received, holding no secret: ``wire.shown``); not shown.
    request_json: str | None = field(default=None, compare=False, repr=False)
    response_json: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", redact_urls(self.url))

    def as_dict(self) -> dict[str, Any]:
        """The fields by name (``dataclasses.asdict`` without its deep copy of the bodies,
        which are the connector's own redacted copies already)."""
        return {"method": self.method, "url": self.url, "request_body": self.request_body,
                "status": self.status, "response_body": self.response_body}

    def as_json(self) -> str | None:
        """``as_dict()``'s JSON text, made of the bodies' own texts (no body encoded
        again); None when a body's text is not known."""
        request = "null" if self.request_body is None else self.request_json
        response = "null" if self.response_body is None else self.response_json
        if request is None or response is None:
            return None
        status = "null" if self.status is None else str(int(self.status))
        return (f'{{"method": {json.dumps(self.method)}, "url": {json.dumps(self.url)}, '
                f'"request_body": {request}, "status": {status}, '
                f'"response_body": {response}}}')


# ---------------------------------------------------------------- errors
class ConnectorError(Exception):
    """Base of connector failures; ``message`` is the target's own words when it gave any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        message = redact_urls(message)  # a URL in the message may carry credentials
        super().__init__(message)
        self.message = message
        self.status = status


class RetryableError(ConnectorError):
    """Network failure, timeout, 5xx or 429: try again, after ``delay`` seconds if given."""

    def __init__(self, message: str, status: int | None = None, delay: float | None = None):
        super().__init__(message, status)
        self.delay = delay


class ConflictError(ConnectorError):
    """The object already exists at the target (409 on create)."""


class RemoteNotFound(ConnectorError):
    """The addressed remote object does not exist."""


class PermanentError(ConnectorError):
    """The target refused the request for good (4xx other than 404/409/429)."""


class TargetPaused(ConnectorError):
    """The target must get no more requests for now (e.g. its API budget is nearly spent).

    Not a failure: the job waits without spending an attempt, and the engine holds the
    whole target in state ``throttled`` (``message`` is the reason) for ``delay`` seconds;
    then one job probes it, and the connector raises this again or the target resumes.
    """

    def __init__(self, message: str, delay: float):
        super().__init__(message)
        self.delay = delay


# ---------------------------------------------------------------- the contract
class Connector(ABC):
    """One configured connector of one identity provider.

    For every operation: it sends what it is given to the target addressed by the stored
    remote id (never by a name it guessed), records every request and answer in
    :attr:`exchanges` redacted (no credential header, passwords as ``********``), and
    fails only with the typed errors above - :class:`RetryableError` for a network
    failure, a timeout, 5xx or 429 (``delay`` from Retry-After), :class:`PermanentError`
    for 400/401/403 and input the target can never take (raised before sending when it
    can be seen), :class:`RemoteNotFound` for a 404 on an addressed object,
    :class:`ConflictError` for a 409 on create. No error message and no exchange holds a
    secret (the connector's credentials, a user's password). A connector never touches
    the database, leaves waiting and retrying to the engine (which keeps the job, so a
    crash loses nothing) and shares nothing between operations but :attr:`memo`. The contract suite
    (``tests/contracts/test_connector_contract.py``) checks all of this against the
    connector's sandbox peer.
    """

    spec: ClassVar[ConnectorSpec]

    def __init__(self, properties: Mapping[str, Any], client: httpx.AsyncClient,
                 memo: dict[str, Any] | None = None) -> None:
        #: Typed properties, secrets included (decrypted; never log them).
        self.properties = properties
        self.client = client
        #: What connectors of one target learn about it and share (e.g. the capabilities
        #: it announces): the engine keeps one per target and configuration, like the
        #: client; a connector made without one keeps its own.
        self.memo: dict[str, Any] = {} if memo is None else memo
        #: Requests and responses of the current operation, redacted, for the attempt log.
        self.exchanges: list[Exchange] = []

    def target_facts(self) -> dict[str, str]:
        """What the target said about itself that operators should see in the status
        (e.g. its API usage), by label; kept by the engine per target."""
        return {}

    @abstractmethod
    async def test_connection(self) -> str:
        """Reach the target and say, in one line, what was found (what it supports);
        raise a ConnectorError otherwise. Changes nothing at the target."""

    @abstractmethod
    async def create_user(self, user: OutboundUser) -> RemoteRef:
        """Create the user; the id the target gave it (never an invented one). Raises
        ConflictError when the target already holds the user's natural key (the engine
        then adopts it through :meth:`lookup_user`)."""

    @abstractmethod
    async def update_user(self, remote_id: str, user: OutboundUser) -> RemoteRef:
        """Make the remote user match ``user``; a password only when ``user.password`` is
        set (a credential change). Raises RemoteNotFound when the object is gone (the
        engine then creates it again)."""

    @abstractmethod
    async def set_active(self, remote_id: str, user: OutboundUser, active: bool) -> None:
        """Enable or disable the remote user, changing nothing else. Raises RemoteNotFound
        when the object is gone."""

    @abstractmethod
    async def delete_user(self, remote_id: str, user: OutboundUser) -> None:
        """Delete the remote user (that one only). An object already gone either raises
        RemoteNotFound or returns: the engine counts both as deleted."""

    @abstractmethod
    async def lookup_user(self, user: OutboundUser) -> RemoteRef | None:
        """The target's object with the user's natural key (for adoption after a
        conflict); None when there is none. Never guesses: an object whose key does not
        match exactly is not adopted, and two candidates raise PermanentError."""

    # groups: connectors whose targets have none keep these defaults
    async def create_group(self, group: OutboundGroup) -> RemoteRef:
        """Create the group with its members in one step where the target allows (all or
        nothing). ConflictError when the name is taken (the engine adopts through
        :meth:`lookup_group`)."""
        raise PermanentError(f"{self.spec.label} targets have no groups")

    async def rename_group(self, remote_id: str, group: OutboundGroup) -> RemoteRef:
        """Give the remote group ``group.name``, keeping its id and members."""
        raise PermanentError(f"{self.spec.label} targets have no groups")

    async def change_members(self, remote_id: str, group: OutboundGroup,
                             add: Sequence[str], remove: Sequence[str]) -> None:
        """Add and remove members by remote id, others untouched; safe to repeat (the
        engine retries it)."""
        raise PermanentError(f"{self.spec.label} targets have no groups")

    async def delete_group(self, remote_id: str, group: OutboundGroup) -> None:
        """Delete the remote group (its members stay); gone already: as :meth:`delete_user`."""
        raise PermanentError(f"{self.spec.label} targets have no groups")

    async def lookup_group(self, group: OutboundGroup) -> RemoteRef | None:
        """The target's group named ``group.name``; None when none (as :meth:`lookup_user`)."""
        return None

    # listing (reconciliation): streamed page by page, never the whole target at once
    def list_users(self, page_size: int = LIST_PAGE,
                   known: Iterable[str] = ()) -> AsyncIterator[RemoteObject]:
        """Every user the target holds, one page of ``page_size`` per request, as an async
        iterator (the caller may stop early). ``known``: the remote ids the engine has
        mappings for, read lazily; a target that can only look users up, not list them
        (SPML without the search capability), is listed by looking these up, so it
        shows no user that is not ours. Raises the typed errors of any operation;
        PermanentError when the target cannot be listed at all."""
        return _unlisted(f"{self.spec.label} targets cannot list their users")

    def list_groups(self, page_size: int = LIST_PAGE) -> AsyncIterator[RemoteObject]:
        """Every group the target holds, with its member ids (as :meth:`list_users`)."""
        return _unlisted(f"{self.spec.label} targets cannot list their groups")

    def drift(self, remote: RemoteObject, user: OutboundUser) -> list[str]:
        """The attributes whose value at the target (``remote``, from :meth:`list_users`)
        differs from what :meth:`update_user` would send for ``user``; names only, never
        values (they may be secret). Attributes the target adds of its own are not drift."""
        differ = [k for k, v in user.attributes.items()
                  if str(remote.attributes.get(k, "")) != str(v)]
        return differ + (["active"] if remote.active != user.active else [])


async def _unlisted(message: str) -> AsyncIterator[RemoteObject]:
    raise PermanentError(message)
    yield  # an async generator: the error comes when the listing is iterated
