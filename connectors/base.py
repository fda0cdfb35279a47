"""The connector contract: configuration schema, outbound entities, operations, typed errors.

A connector module declares a :class:`ConnectorSpec` (type, label, property schema) and a
:class:`Connector` subclass. Connectors are async, never touch the database and never see a
local id: the engine hands them what to send (an :class:`OutboundUser` or
:class:`OutboundGroup`) and the remote id it stored, and stores the :class:`RemoteRef` they
return. They raise the typed errors below; the engine turns those into retries, adoption,
quarantine or a dead job.

Property keys keep the reference server's names (``scim2-user-ep``) so existing
configurations import unchanged. Every connector also takes :data:`COMMON_PROPERTIES`
(concurrency, retries, timeouts, deprovisioning action), read by the engine.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from core.errors import InvalidInput
from core.properties import FieldError, PropertySpec, PropertyType

_P = PropertyType

#: Properties the engine reads for every connector (retry policy, limits, deprovisioning).
COMMON_PROPERTIES: tuple[PropertySpec, ...] = (
    PropertySpec("concurrency", "Concurrent requests", _P.INTEGER, default=4,
                 help="requests in flight to this target at once"),
    PropertySpec("max-attempts", "Maximum attempts", _P.INTEGER, default=8,
                 help="attempts before a job is dead"),
    PropertySpec("retry-base-seconds", "First retry delay (s)", _P.INTEGER, default=1),
    PropertySpec("retry-max-seconds", "Longest retry delay (s)", _P.INTEGER, default=300),
    PropertySpec("timeout-seconds", "Request timeout (s)", _P.INTEGER, default=10),
    PropertySpec("quarantine-threshold", "Failures before quarantine", _P.INTEGER, default=5,
                 help="consecutive failures that quarantine the target"),
    PropertySpec("probe-seconds", "Quarantine probe interval (s)", _P.INTEGER, default=15),
    PropertySpec("deprovision-action", "Deprovisioning action", _P.CHOICE, default="delete",
                 choices=("delete", "disable", "none"),
                 help="what a user leaving scope becomes at the target"),
)


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
    #: ``"module:function"`` of the sandbox peer the contract suite runs this connector
    #: against (``connectors/sandbox/contract.py``).
    contract_peer: str | None = None
    #: Checks of the typed properties that one property's schema cannot say (shapes,
    #: combinations): the problems by property name, reported by ``config validate``.
    check: Callable[[Mapping[str, Any]], list[FieldError]] | None = None

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
class Exchange:
    """One HTTP request and its response, redacted (no secret header, no password)."""

    method: str
    url: str
    request_body: Any = None
    status: int | None = None
    response_body: Any = None

    def as_dict(self) -> dict[str, Any]:
        """The fields by name (``dataclasses.asdict`` without its deep copy of the bodies,
        which are the connector's own redacted copies already)."""
        return {"method": self.method, "url": self.url, "request_body": self.request_body,
                "status": self.status, "response_body": self.response_body}


# ---------------------------------------------------------------- errors
class ConnectorError(Exception):
    """Base of connector failures; ``message`` is the target's own words when it gave any."""

    def __init__(self, message: str, status: int | None = None) -> None:
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
    """One configured connector of one identity provider."""

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
        """Reach the target and say what was found; raise a ConnectorError otherwise."""

    @abstractmethod
    async def create_user(self, user: OutboundUser) -> RemoteRef: ...

    @abstractmethod
    async def update_user(self, remote_id: str, user: OutboundUser) -> RemoteRef: ...

    @abstractmethod
    async def set_active(self, remote_id: str, user: OutboundUser, active: bool) -> None: ...

    @abstractmethod
    async def delete_user(self, remote_id: str, user: OutboundUser) -> None: ...

    @abstractmethod
    async def lookup_user(self, user: OutboundUser) -> RemoteRef | None:
        """Find an existing object by natural key (for adoption after a conflict)."""

    # groups: connectors whose targets have none keep these defaults
    async def create_group(self, group: OutboundGroup) -> RemoteRef:
        raise PermanentError(f"{self.spec.label} targets have no groups")

    async def rename_group(self, remote_id: str, group: OutboundGroup) -> RemoteRef:
        raise PermanentError(f"{self.spec.label} targets have no groups")

    async def change_members(self, remote_id: str, group: OutboundGroup,
                             add: Sequence[str], remove: Sequence[str]) -> None:
        raise PermanentError(f"{self.spec.label} targets have no groups")

    async def delete_group(self, remote_id: str, group: OutboundGroup) -> None:
        raise PermanentError(f"{self.spec.label} targets have no groups")

    async def lookup_group(self, group: OutboundGroup) -> RemoteRef | None:
        return None


@functools.cache
def _implementations() -> dict[str, type[Connector]]:
    """Connector classes by type, imported on first use (once: the engine asks per job)."""
    from connectors import salesforce, scim2

    return {cls.spec.type: cls for cls in (scim2.Scim2Connector, salesforce.SalesforceConnector)}


def registry() -> dict[str, ConnectorSpec]:
    return {t: cls.spec for t, cls in _implementations().items()}


def connector_class(connector_type: str) -> type[Connector]:
    """The implementation of a connector type."""
    spec_for(connector_type)
    return _implementations()[connector_type]


def spec_for(connector_type: str) -> ConnectorSpec:
    implementations = _implementations()
    try:
        return implementations[connector_type].spec
    except KeyError:
        raise InvalidInput(
            f"connector type {connector_type!r} is not known "
            f"(known: {', '.join(implementations)})") from None
