"""The connector contract (``connectors/base.py``), run for every registered connector type
against its sandbox peer (``ConnectorSpec.contract_peer``, ``connectors/sandbox/contract.py``).

A connector type is done when it passes: a registered type without a contract peer fails.
Each type's peer starts once per module; every test uses names of its own. After every
test, no value of ``peer.secrets()`` (nor the test user's password) may appear in an
exchange a connector recorded or in an error it raised.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from connectors.base import (
    ConflictError,
    Connector,
    ConnectorError,
    ConnectorSpec,
    OutboundGroup,
    OutboundUser,
    PermanentError,
    RemoteNotFound,
    RetryableError,
)
from connectors.registry import connector_class, registry
from connectors.sandbox.contract import ContractPeer, Fault
from connectors.sandbox.peers import PeerUnavailable
from connectors.wire import MASK
from core.claims import LOCAL_DIALECT
from core.properties import validate
from tests.servers import unavailable

TYPES = sorted(registry())
PASSWORD = "Contract-Pa55-" + uuid.uuid4().hex[:8]


def test_every_registered_connector_names_its_contract_peer() -> None:
    missing = [t for t, spec in registry().items() if not spec.contract_peer]
    assert not missing, f"registered connectors without a contract_peer: {missing}"


@pytest.fixture(scope="module", params=TYPES)
def running(request: pytest.FixtureRequest) -> Iterator[tuple[ConnectorSpec, ContractPeer]]:
    """The connector type's sandbox peer, started once for the module."""
    spec = registry()[request.param]
    if not spec.contract_peer:
        pytest.fail(f"connector type {spec.type!r} names no contract_peer")
    module, function = spec.contract_peer.split(":")
    factory = getattr(importlib.import_module(module), function)
    try:
        started: AbstractContextManager[ContractPeer] = factory()
        with started as peer:
            yield spec, peer
    except PeerUnavailable as exc:
        unavailable(f"{spec.type} contract peer: {exc}")


@dataclass
class Harness:
    """Builds connectors as the engine does and remembers what they recorded and raised."""

    spec: ConnectorSpec
    peer: ContractPeer
    client: httpx.AsyncClient
    built: list[Connector] = field(default_factory=list)
    errors: list[ConnectorError] = field(default_factory=list)
    #: Every request the connectors sent, as it went on the wire (headers included).
    sent: list[httpx.Request] = field(default_factory=list)

    async def see(self, request: httpx.Request) -> None:
        self.sent.append(request)

    def credentials(self) -> list[str]:
        """The Authorization headers sent, and the token or Basic pair in each."""
        values = {r.headers["Authorization"] for r in self.sent if "Authorization" in r.headers}
        return sorted(values | {v.split(" ", 1)[-1] for v in values})

    def sent_password(self) -> bool:
        return any(PASSWORD.encode() in r.content for r in self.sent)

    def connector(self, properties: dict[str, Any] | None = None) -> Connector:
        typed = validate(self.spec.all_properties, properties or self.peer.properties(),
                         f"{self.spec.type} contract peer")
        made = connector_class(self.spec.type)(typed, self.client)
        self.built.append(made)
        return made

    async def raises(self, expected: type[ConnectorError], call: Any) -> ConnectorError:
        """Await ``call``; it must raise exactly ``expected`` (not a subclass or sibling)."""
        with pytest.raises(ConnectorError) as failed:
            await call
        self.errors.append(failed.value)
        assert type(failed.value) is expected, f"{failed.value!r} is not {expected.__name__}"
        assert failed.value.message
        return failed.value

    def shown(self) -> str:
        """Everything the connectors recorded or raised."""
        return repr([e.as_dict() for c in self.built for e in c.exchanges]) + \
            repr([(str(e), e.message) for e in self.errors])

    def leaks(self) -> list[str]:
        shown = self.shown()
        return [s for s in [*self.peer.secrets(), PASSWORD, *self.credentials()]
                if s and s in shown]


@pytest.fixture
async def harness(running: tuple[ConnectorSpec, ContractPeer]) -> AsyncIterator[Harness]:
    spec, peer = running
    typed = validate(spec.all_properties, peer.properties(), f"{spec.type} contract peer")
    async with httpx.AsyncClient(timeout=float(typed["timeout-seconds"])) as client:
        h = Harness(spec, peer, client)
        client.event_hooks["request"].append(h.see)
        yield h
    assert not h.leaks(), "a secret appeared in an exchange or an error message"


def a_user(peer: ContractPeer, **changes: Any) -> OutboundUser:
    """A user of its own, named like an e-mail address (which every target accepts), with
    its local claims, and as remote attributes under the target's own names
    (``peer.attribute_names()``, as an identity provider's claim mappings give them)."""
    tag = uuid.uuid4().hex[:10]
    given, family, email = f"Ada{tag}", "Lovelace", f"ada.{tag}@example.org"
    fields: dict[str, Any] = {
        "username": email, "domain": "PRIMARY", "password": PASSWORD,
        "claims": {f"{LOCAL_DIALECT}/username": email, f"{LOCAL_DIALECT}/givenname": given,
                   f"{LOCAL_DIALECT}/lastname": family,
                   f"{LOCAL_DIALECT}/emailaddress": email},
        "attributes": remote(peer, {"givenname": given, "lastname": family,
                                    "emailaddress": email}),
    }
    fields.update(changes)
    return OutboundUser(**fields)


def remote(peer: ContractPeer, claims: dict[str, str]) -> dict[str, str]:
    """Claim values under the target's names for them (those it has names for)."""
    names = peer.attribute_names()
    return {names[claim]: value for claim, value in claims.items() if claim in names}


def renamed(peer: ContractPeer, user: OutboundUser, given: str) -> OutboundUser:
    return OutboundUser(
        user.username, user.domain, password=None,
        claims={**user.claims, f"{LOCAL_DIALECT}/givenname": given},
        attributes={**user.attributes, **remote(peer, {"givenname": given})})


def gone(harness: Harness, remote_id: str) -> bool:
    """The user is deleted at the peer (deactivated, where the target cannot delete)."""
    user = harness.peer.remote_user(remote_id)
    return user is None or (not harness.spec.deletes_users and not user.active)


# ---------------------------------------------------------------- users
async def test_create_puts_the_user_at_the_peer(harness: Harness) -> None:
    user = a_user(harness.peer)
    ref = await harness.connector().create_user(user)
    remote = harness.peer.remote_user(ref.id)
    assert remote is not None and remote.id == ref.id
    assert remote.name.casefold() == user.username.casefold() and remote.active
    assert harness.built[0].exchanges, "every request is recorded"


async def test_update_changes_the_user_at_the_peer(harness: Harness) -> None:
    user = a_user(harness.peer)
    c = harness.connector()
    ref = await c.create_user(user)
    new_name = f"Augusta{uuid.uuid4().hex[:8]}"
    updated = await c.update_user(ref.id, renamed(harness.peer, user, new_name))
    assert updated.id == ref.id
    remote = harness.peer.remote_user(ref.id)
    assert remote is not None and new_name in repr(remote.attributes)


async def test_disable_then_enable(harness: Harness) -> None:
    user = a_user(harness.peer)
    c = harness.connector()
    ref = await c.create_user(user)
    await c.set_active(ref.id, user, False)
    assert (remote := harness.peer.remote_user(ref.id)) is not None and not remote.active
    await c.set_active(ref.id, user, True)
    assert (remote := harness.peer.remote_user(ref.id)) is not None and remote.active


async def test_delete_removes_the_user_and_an_absent_one_is_not_an_error(
        harness: Harness) -> None:
    user = a_user(harness.peer)
    c = harness.connector()
    ref = await c.create_user(user)
    await c.delete_user(ref.id, user)
    assert gone(harness, ref.id)
    # the engine counts both answers as "gone": nothing else may be raised
    try:
        await c.delete_user(ref.id, user)
    except RemoteNotFound as absent:
        harness.errors.append(absent)
    assert gone(harness, ref.id)


async def test_an_absent_user_is_not_found_when_addressed(harness: Harness) -> None:
    if not harness.spec.deletes_users:
        pytest.skip(f"{harness.spec.label} cannot delete users: none is ever absent")
    user = a_user(harness.peer)
    c = harness.connector()
    ref = await c.create_user(user)
    await c.delete_user(ref.id, user)
    await harness.raises(RemoteNotFound, c.update_user(ref.id, user))
    assert await c.lookup_user(user) is None


async def test_create_of_an_existing_user_conflicts_and_lookup_adopts_it(
        harness: Harness) -> None:
    user = a_user(harness.peer)
    seeded = harness.peer.seed_user(user.username)
    c = harness.connector()
    await harness.raises(ConflictError, c.create_user(user))
    found = await c.lookup_user(user)
    assert found is not None and found.id == seeded


# ---------------------------------------------------------------- groups
async def test_group_lifecycle(harness: Harness) -> None:
    if not harness.spec.supports_groups:
        pytest.skip(f"{harness.spec.type} targets have no groups")
    c = harness.connector()
    first = (await c.create_user(a_user(harness.peer))).id
    second = (await c.create_user(a_user(harness.peer))).id
    group = OutboundGroup(f"team-{uuid.uuid4().hex[:8]}", "PRIMARY", (first,))

    ref = await c.create_group(group)
    assert harness.peer.group_members(ref.id) == {first}
    await c.change_members(ref.id, group, [second], [first])
    assert harness.peer.group_members(ref.id) == {second}
    new = OutboundGroup(f"{group.name}-renamed", "PRIMARY", (second,))
    renamed_ref = await c.rename_group(ref.id, new)
    assert renamed_ref.id == ref.id and harness.peer.group_members(ref.id) == {second}
    assert (await c.lookup_group(new)) is not None
    await c.delete_group(ref.id, new)
    assert harness.peer.group_members(ref.id) is None


# ---------------------------------------------------------------- listing
def test_every_registered_connector_lists_its_users_and_groups() -> None:
    """Reconciliation needs a listing: no registered type may keep the base's refusal."""
    unlisted = [t for t in registry() if connector_class(t).list_users is Connector.list_users
                or (registry()[t].supports_groups
                    and connector_class(t).list_groups is Connector.list_groups)]
    assert not unlisted, f"registered connectors that cannot list: {unlisted}"


async def test_listing_streams_every_user_page_by_page_with_what_we_map(
        harness: Harness) -> None:
    c = harness.connector()
    users = [a_user(harness.peer) for _ in range(3)]
    refs = [await c.create_user(u) for u in users]
    seeded = harness.peer.seed_user(a_user(harness.peer).username)
    listed = {o.id: o async for o in c.list_users(page_size=2)}
    assert {r.id for r in refs} | {seeded} <= set(listed)
    for user, ref in zip(users, refs, strict=True):
        assert listed[ref.id].name.casefold() == user.username.casefold()
        assert listed[ref.id].active
        assert c.drift(listed[ref.id], user) == [], "what we sent comes back as sent"
    assert c.drift(listed[refs[0].id], renamed(harness.peer, users[0], "Someone-else")) != []
    await c.delete_user(refs[1].id, users[1])
    after = {o.id: o async for o in c.list_users(page_size=2)}
    if harness.spec.deletes_users:
        assert refs[1].id not in after
    else:  # deactivated instead
        assert not after[refs[1].id].active


async def test_listing_groups_gives_their_members(harness: Harness) -> None:
    if not harness.spec.supports_groups:
        pytest.skip(f"{harness.spec.type} targets have no groups")
    c = harness.connector()
    member = (await c.create_user(a_user(harness.peer))).id
    ref = await c.create_group(OutboundGroup(f"team-{uuid.uuid4().hex[:8]}", "PRIMARY",
                                             (member,)))
    listed = {o.id: o async for o in c.list_groups(page_size=2)}
    assert list(listed[ref.id].members) == [member]


async def test_a_failing_listing_raises_its_typed_error(harness: Harness) -> None:
    c = harness.connector()
    await c.create_user(a_user(harness.peer))
    harness.peer.fail_next("503")  # whatever the connector asks first fails
    with pytest.raises(ConnectorError) as failed:
        async for _ in c.list_users():
            pass
    harness.errors.append(failed.value)
    assert type(failed.value) is RetryableError


# ---------------------------------------------------------------- failures
@pytest.mark.parametrize(("fault", "expected"), [
    ("400", PermanentError), ("401", PermanentError), ("403", PermanentError),
    ("409", ConflictError), ("429", RetryableError), ("500", RetryableError),
    ("503", RetryableError), ("timeout", RetryableError), ("drop", RetryableError),
])
async def test_a_failing_create_raises_its_typed_error(
        harness: Harness, fault: Fault, expected: type[ConnectorError]) -> None:
    harness.peer.fail_next(fault)
    error = await harness.raises(expected, harness.connector().create_user(a_user(harness.peer)))
    if fault == "429":
        assert isinstance(error, RetryableError) and error.delay == 1  # its Retry-After


async def test_a_404_on_an_addressed_user_is_remote_not_found(harness: Harness) -> None:
    user = a_user(harness.peer)
    c = harness.connector()
    ref = await c.create_user(user)
    harness.peer.fail_next("404")
    await harness.raises(RemoteNotFound, c.update_user(ref.id, user))
    assert harness.peer.remote_user(ref.id) is not None  # the fault, not the peer, said so


async def test_a_refused_connection_is_retryable(harness: Harness) -> None:
    c = harness.connector(harness.peer.refusing_properties())
    await harness.raises(RetryableError, c.create_user(a_user(harness.peer)))


async def test_exchanges_are_redacted(harness: Harness) -> None:
    user = a_user(harness.peer)  # with a password, sent on create and update alike
    c = harness.connector()
    ref = await c.create_user(user)
    await c.update_user(ref.id, user)
    assert c.exchanges
    for exchange in c.exchanges:
        assert exchange.method and exchange.url
    assert harness.credentials(), "the peer is reached with credentials"
    assert not [s for s in harness.credentials() if s in harness.shown()], \
        "a credential sent in a header appears in an exchange"
    if harness.sent_password():  # sent: recorded masked, not left out of the record
        assert MASK in harness.shown() and PASSWORD not in harness.shown()
    assert not harness.leaks()
