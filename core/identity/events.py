"""Identity events: what every write emits, who initiated it, and the ordered bus.

Subscribers run in order (lowest ``order`` first). ``PRE`` subscribers run before the store
call and may veto by raising; ``POST`` subscribers run after it *inside the same
transaction* (the provisioning outbox writes its jobs there, so a job exists exactly when
the change commits); ``COMMITTED`` subscribers run after the commit and must not fail the
write (live views, notifications).
"""

from __future__ import annotations

import dataclasses
import getpass
import logging
import os
from collections.abc import Callable, Collection, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

RESIDENT_APPLICATION = "resident"


class EventType(StrEnum):
    USER_ADDED = "user.added"
    USER_CLAIMS_CHANGED = "user.claims_changed"
    USER_CLAIMS_REMOVED = "user.claims_removed"
    PASSWORD_CHANGED = "user.password_changed"
    USER_DELETED = "user.deleted"
    USER_ROLES_CHANGED = "user.roles_changed"
    GROUP_ADDED = "group.added"
    GROUP_RENAMED = "group.renamed"
    GROUP_MEMBERS_CHANGED = "group.members_changed"
    GROUP_DELETED = "group.deleted"


class Phase(StrEnum):
    PRE = "pre"
    POST = "post"
    COMMITTED = "committed"


class Face(StrEnum):
    CLI = "cli"
    CONSOLE = "console"
    SCIM = "scim"
    JIT = "jit"
    CONFIG = "config"


#: Set by ``mware-iam ssh-serve`` in each session's console: the operator's name.
OPERATOR_ENV = "MWARE_IAM_OPERATOR"
_VIA = {"ssh": "SSH", "terminal": "a local terminal"}
#: The actor of a JIT login is ``jit:<identity provider>``.
JIT_ACTOR_PREFIX = "jit:"
#: The audit action of a JIT login (one row a login, whatever it changed).
JIT_LOGIN_ACTION = "jit.login"


def describe_actor(actor: str, face: str, application: str = RESIDENT_APPLICATION) -> str:
    """The actor as a person reads it: ``console operator alice via SSH``, ``JIT login
    through application hr-portal via identity provider corp-sso``; other actors
    (``os:root``, ``app:hr-portal``) unchanged."""
    if actor.startswith("operator:") and "@" in actor:
        name, _, channel = actor.removeprefix("operator:").rpartition("@")
        return f"{face} operator {name} via {_VIA.get(channel, channel)}"
    if actor.startswith(JIT_ACTOR_PREFIX):
        return (f"JIT login through application {application} via identity provider "
                f"{actor.removeprefix(JIT_ACTOR_PREFIX)}")
    return actor


def _os_user() -> str:
    """The OS user running this process ("unknown" where the system cannot say)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class Initiator:
    """Who asked for a write, from which face, on behalf of which application."""

    actor: str
    face: Face
    application: str = RESIDENT_APPLICATION
    jit: bool = False
    #: The write takes back an earlier one that a blocking target refused (audited so).
    compensation: bool = False

    def compensating(self) -> Initiator:
        """The same initiator, taking back its own refused write."""
        return dataclasses.replace(self, compensation=True)

    @classmethod
    def admin(cls, face: Face = Face.CLI) -> Initiator:
        """The administrator at this terminal (the OS user), through the resident app."""
        return cls(actor=f"os:{_os_user()}", face=face)

    @classmethod
    def console_operator(cls) -> Initiator:
        """The person at this console: the SSH operator named by ``$MWARE_IAM_OPERATOR``
        (``mware-iam ssh-serve`` sets it in each session's console), else the OS user.

        Both are audited as ``operator <name> via <channel>`` in the actor
        (``describe_actor``), so the audit log names a person either way."""
        name = os.environ.get(OPERATOR_ENV)
        if name:
            return cls(actor=f"operator:{name}@ssh", face=Face.CONSOLE)
        return cls(actor=f"operator:{_os_user()}@terminal", face=Face.CONSOLE)

    @classmethod
    def application_client(cls, application: str) -> Initiator:
        return cls(actor=f"app:{application}", face=Face.SCIM, application=application)

    @classmethod
    def jit_login(cls, application: str, idp: str) -> Initiator:
        return cls(actor=f"{JIT_ACTOR_PREFIX}{idp}", face=Face.JIT, application=application,
                   jit=True)


#: Sends that wait for the commit of the write being made: set (to a list) by the identity
#: service around a write whose transaction it opens itself, so that a POST subscriber
#: (the blocking provisioning path) can send after the commit instead of inside the
#: transaction. A sender raises ``OperationRefused`` to have the write taken back.
#: ``None``: the write joins a wider transaction (``config apply``) and sends inside it.
after_commit_sends: ContextVar[list[Callable[[], None]] | None] = ContextVar(
    "after_commit_sends", default=None)


@dataclass(frozen=True)
class IdentityEvent:
    """One change. ``entity_id`` is the store's immutable id (user or group).

    ``data`` holds what the change was, e.g. the claims set, the roles added and removed,
    the old and new group names. A password is never in ``data``; ``PASSWORD_CHANGED``
    and ``USER_ADDED`` carry it in ``secret`` so the provisioning planner can send it on
    create and credential change, and nothing else ever prints it.
    """

    type: EventType
    initiator: Initiator
    domain: str
    entity_id: str
    name: str
    data: Mapping[str, Any] = field(default_factory=dict)
    secret: str | None = field(default=None, repr=False)


Handler = Callable[[IdentityEvent], None]


class _Subscription(NamedTuple):
    order: int
    seq: int
    handler: Handler
    #: The event types it wants (None: every one).
    types: frozenset[EventType] | None
    #: Whether it will do nothing with an event, known before it is emitted (None: it
    #: may always do something).
    idle_for: Callable[[IdentityEvent], bool] | None


class EventBus:
    def __init__(self) -> None:
        self._subs: dict[Phase, list[_Subscription]] = {p: [] for p in Phase}
        self._seq = 0

    def subscribe(self, phase: Phase, handler: Handler, order: int = 50,
                  types: Collection[EventType] | None = None,
                  idle_for: Callable[[IdentityEvent], bool] | None = None
                  ) -> Callable[[], None]:
        """Add a handler (of the events of ``types`` only, when given: a writer may then
        skip building events nobody wants, ``has_subscribers``; ``idle_for``: see
        ``wants``); returns a function that removes it."""
        self._seq += 1
        entry = _Subscription(order, self._seq, handler,
                              None if types is None else frozenset(types), idle_for)
        self._subs[phase].append(entry)
        self._subs[phase].sort(key=lambda e: (e.order, e.seq))
        return lambda: self._subs[phase].remove(entry)

    def has_subscribers(self, phase: Phase, event_type: EventType | None = None) -> bool:
        """Whether a handler of ``phase`` wants events (of ``event_type``, when given)."""
        return any(event_type is None or sub.types is None or event_type in sub.types
                   for sub in self._subs[phase])

    def wants(self, phase: Phase, event: IdentityEvent) -> bool:
        """Whether a handler of ``phase`` may do something with ``event`` (write in the
        transaction, say): a writer whose write would otherwise be its transaction's last
        must know (``SystemDB.writes_more``)."""
        return any((sub.types is None or event.type in sub.types)
                   and (sub.idle_for is None or not sub.idle_for(event))
                   for sub in self._subs[phase])

    def emit(self, phase: Phase, event: IdentityEvent) -> None:
        for _order, _seq, handler, types, _idle_for in list(self._subs[phase]):
            if types is not None and event.type not in types:
                continue
            if phase is Phase.COMMITTED:
                try:
                    handler(event)
                except Exception:  # a listener must never undo a committed write
                    log.exception("committed-event subscriber failed on %s", event.type)
            else:
                handler(event)
