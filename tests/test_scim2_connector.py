"""The SCIM 2.0 connector against a real peer (the third-party ``scim2-server``).

What the connector did is checked at the peer with plain HTTP requests; faults (throttling,
outages, slowness, lost answers) come from the scriptable proxy of ``tests.peers``.
"""

from __future__ import annotations

import base64
import importlib.util
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import (
    ConflictError,
    ConnectorError,
    OutboundGroup,
    OutboundUser,
    PermanentError,
    RemoteNotFound,
    RemoteRef,
    RetryableError,
)
from connectors.scim2 import SPEC, Scim2Connector
from connectors.wire import MASK, retry_after
from core.properties import validate
from tests.peers import Fault, PeerUnavailable, ScimServer, free_port, scim_server
from tests.peers import fault_proxy as peer_fault_proxy
from tests.servers import unavailable

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = {"Content-Type": "application/scim+json"}
WORK_EMAIL = 'emails[type eq "work"].value'


# ---------------------------------------------------------------- helpers
@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as c:
        yield c


def connector(base: str, client: httpx.AsyncClient, memo: dict[str, Any] | None = None,
              **props: Any) -> Scim2Connector:
    """A connector as the engine builds it: typed properties, common ones defaulted."""
    raw = {"scim2-user-ep": f"{base}/Users", "scim2-group-ep": f"{base}/Groups",
           **{k.replace("_", "-"): v for k, v in props.items()}}
    return Scim2Connector(validate(SPEC.all_properties, raw, "test connector"), client, memo)


class Peer:
    """Plain HTTP straight at the peer (not through the connector), to check what landed."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def get(self, url: str, **headers: str) -> Any:
        """The object at ``url``; None when it is gone."""
        response = self.http.get(url, headers=headers)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def patch(self, url: str, *operations: dict[str, Any]) -> None:
        body = {"schemas": [PATCH_OP], "Operations": list(operations)}
        self.http.patch(url, json=body, headers=SCIM_JSON).raise_for_status()

    def user(self, base: str, name: str) -> str:
        """Create a user directly at the peer; its id."""
        response = self.http.post(f"{base}/Users", json={"schemas": [CORE], "userName": name},
                                  headers=SCIM_JSON)
        response.raise_for_status()
        return str(response.json()["id"])


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    with httpx.Client() as http:
        yield Peer(http)


def methods(c: Scim2Connector) -> list[str]:
    return [e.method for e in c.exchanges]


def bob(**changes: Any) -> OutboundUser:
    fields: dict[str, Any] = {
        "username": "bob", "domain": "PRIMARY",
        "attributes": {
            "name.givenName": "Bob", f"{CORE}:name.familyName": "Builder",
            "displayName": "Bob the Builder", WORK_EMAIL: "bob@example.org",
            'phoneNumbers[type eq "mobile"].value': "+31 6 1234 5678",
            'addresses[type eq "work"].country': "NL",
            f"{ENTERPRISE}:department": "Construction",
            f"{ENTERPRISE}:manager.value": "wendy",
        },
    }
    fields.update(changes)
    return OutboundUser(**fields)


def _json_file(directory: Path, name: str, content: Any) -> str:
    path = directory / name
    path.write_text(json.dumps(content))
    return str(path)


def _server_default(name: str) -> Any:
    """One of the JSON files scim2-server configures itself with by default."""
    spec = importlib.util.find_spec("scim2_server")
    origin = spec.origin if spec is not None else None
    if origin is None:
        unavailable("scim2-server is not installed (pip install scim2-server)")
    return json.loads((Path(str(origin)).parent / "resources" / name).read_text())


def _started(*args: str) -> Iterator[ScimServer]:
    try:
        with scim_server(*args) as server:
            yield server
    except PeerUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture(scope="module")
def no_patch_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimServer]:
    """A peer whose ServiceProviderConfig announces no PATCH and no bulk, but ETags."""
    config = _server_default("default-service-provider-config.json")
    config["patch"] = {"supported": False}
    config["bulk"] = {"supported": False, "maxOperations": 0, "maxPayloadSize": 0}
    path = _json_file(tmp_path_factory.mktemp("spc"), "spc.json", config)
    yield from _started("--service-provider-config", path)


@pytest.fixture(scope="module")
def core_only_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimServer]:
    """A peer whose User resource type has no enterprise extension."""
    types = _server_default("default-resource-types.json")
    for resource_type in types:
        resource_type.pop("schemaExtensions", None)
    path = _json_file(tmp_path_factory.mktemp("rt"), "types.json", types)
    yield from _started("--resource-type", path)


# ---------------------------------------------------------------- users
async def test_create_user_lands_with_core_and_enterprise_attributes(peer, scim_peer, client):
    c = connector(scim_peer, client)
    # "id" is what the default SCIM dialect maps the local userid to: never sent
    ref = await c.create_user(bob(password="Secret-Pa55",
                                  attributes={**bob().attributes, "id": "local-42"}))

    assert ref.name == "bob" and ref.id and ref.id != "local-42"
    assert "id" not in c.exchanges[-1].request_body
    user = peer.get(f"{scim_peer}/Users/{ref.id}")
    assert user["userName"] == "bob" and user["active"] is True
    assert user["name"] == {"givenName": "Bob", "familyName": "Builder"}
    assert user["displayName"] == "Bob the Builder"
    assert user["emails"] == [{"type": "work", "value": "bob@example.org"}]
    assert user["phoneNumbers"] == [{"type": "mobile", "value": "+31 6 1234 5678"}]
    assert user["addresses"] == [{"type": "work", "country": "NL"}]
    assert user[ENTERPRISE] == {"department": "Construction", "manager": {"value": "wendy"}}
    assert "password" not in user
    # the recorded exchange shows only the mask (what really went out: see the password test)
    assert "Secret-Pa55" not in repr(c.exchanges)
    assert c.exchanges[-1].request_body["password"] == MASK


async def test_update_by_put_replaces_the_whole_user(peer, scim_peer, client):
    ref = await connector(scim_peer, client).create_user(bob())
    url = f"{scim_peer}/Users/{ref.id}"
    peer.patch(url, {"op": "replace", "path": "nickName", "value": "Bobby"})

    c = connector(scim_peer, client)
    attributes = {**bob().attributes, "name.givenName": "Robert"}
    assert await c.update_user(ref.id, bob(attributes=attributes)) == RemoteRef(ref.id, "bob")

    assert [(e.method, e.url) for e in c.exchanges] == [("PUT", url)]
    user = peer.get(url)
    assert user["name"]["givenName"] == "Robert"
    assert "nickName" not in user  # PUT: the peer holds exactly what was sent
    assert "password" not in c.exchanges[0].request_body  # no credential change: none sent


async def test_update_by_patch_touches_only_the_mapped_attributes(peer, scim_peer, client):
    ref = await connector(scim_peer, client).create_user(bob())
    url = f"{scim_peer}/Users/{ref.id}"
    peer.patch(url, {"op": "replace", "path": "nickName", "value": "Bobby"},
               {"op": "add", "path": "emails",
                "value": [{"type": "home", "value": "bob@home.example"}]})

    c = connector(scim_peer, client, scim2_patch_updates=True)
    attributes = {**bob().attributes, WORK_EMAIL: "robert@example.org",
                  f"{ENTERPRISE}:department": "Demolition"}
    await c.update_user(ref.id, bob(attributes=attributes, password="N3w-secret"))

    assert methods(c) == ["GET", "PATCH"]  # the ServiceProviderConfig, then the change
    user = peer.get(url)
    assert user["nickName"] == "Bobby"  # not ours: left alone
    assert sorted((e["type"], e["value"]) for e in user["emails"]) == [
        ("home", "bob@home.example"), ("work", "robert@example.org")]
    assert user[ENTERPRISE]["department"] == "Demolition"
    assert user["name"] == {"givenName": "Bob", "familyName": "Builder"}
    operations = c.exchanges[-1].request_body["Operations"]
    assert {"op": "replace", "path": "password", "value": MASK} in operations
    assert "N3w-secret" not in repr(c.exchanges)


async def test_set_active_deactivates_and_reactivates_by_id(peer, scim_peer, client):
    ref = await connector(scim_peer, client).create_user(bob())
    url = f"{scim_peer}/Users/{ref.id}"
    gone = OutboundUser("bob", "PRIMARY", active=False)  # what deprovisioning hands over

    c = connector(scim_peer, client)
    await c.set_active(ref.id, gone, False)
    assert methods(c) == ["GET", "PATCH"]
    user = peer.get(url)
    assert user["active"] is False
    assert user[ENTERPRISE]["department"] == "Construction"  # nothing else touched

    await connector(scim_peer, client).set_active(ref.id, gone, True)
    assert peer.get(url)["active"] is True


async def test_connectors_sharing_a_memo_read_the_service_provider_config_once(
        peer, scim_peer, client, monkeypatch):
    refs = [await connector(scim_peer, client).create_user(bob(username=f"bob{i}"))
            for i in range(3)]
    gone = OutboundUser("bob", "PRIMARY", active=False)
    memo: dict[str, Any] = {}
    first, *others = [connector(scim_peer, client, memo=memo) for _ in refs]

    await first.set_active(refs[0].id, gone, False)
    assert methods(first) == ["GET", "PATCH"]
    for c, ref in zip(others, refs[1:], strict=True):
        await c.set_active(ref.id, gone, False)
        assert methods(c) == ["PATCH"]  # what the first one read
    assert [peer.get(f"{scim_peer}/Users/{r.id}")["active"] for r in refs] == [False] * 3

    monkeypatch.setattr("connectors.scim2.CAPABILITIES_TTL", 0.0)  # stale at once
    stale = connector(scim_peer, client, memo=memo)
    await stale.capabilities(refresh=True)
    later = connector(scim_peer, client, memo=memo)
    await later.set_active(refs[0].id, gone, True)
    assert methods(stale) == ["GET"] and methods(later) == ["GET", "PATCH"]  # read again


async def test_without_patch_set_active_reads_and_puts_back_with_if_match(
        peer, no_patch_server, client):
    base = no_patch_server.tenant()
    ref = await connector(base, client).create_user(bob())
    url = f"{base}/Users/{ref.id}"

    c = connector(base, client)
    await c.set_active(ref.id, OutboundUser("bob", "PRIMARY", active=False), False)

    assert methods(c) == ["GET", "GET", "PUT"]
    user = peer.get(url)
    assert user["active"] is False
    assert user["emails"] == [{"type": "work", "value": "bob@example.org"}]  # kept


async def test_delete_user_and_then_it_is_not_found(peer, scim_peer, client):
    c = connector(scim_peer, client)
    ref = await c.create_user(bob())

    await c.delete_user(ref.id, bob())
    assert peer.get(f"{scim_peer}/Users/{ref.id}") is None
    with pytest.raises(RemoteNotFound) as gone:
        await c.delete_user(ref.id, bob())
    assert gone.value.status == 404
    with pytest.raises(RemoteNotFound):
        await c.update_user(ref.id, bob())


async def test_conflict_then_lookup_finds_exactly_the_tricky_name(peer, scim_peer, client):
    tricky = 'o\'neil "the \\ slash" é'
    for decoy in ('o\'neil "the \\ slash', "o'neil", 'o\'neil "the \\\\ slash" é'):
        peer.user(scim_peer, decoy)
    c = connector(scim_peer, client)
    created = await c.create_user(OutboundUser(tricky, "PRIMARY"))

    with pytest.raises(ConflictError) as conflict:
        await c.create_user(OutboundUser(tricky, "PRIMARY"))
    assert conflict.value.status == 409
    assert "uniqueness" in conflict.value.message

    assert await c.lookup_user(OutboundUser(tricky, "PRIMARY")) == created
    assert await c.lookup_user(OutboundUser("nobody", "PRIMARY")) is None


async def test_lookup_never_adopts_what_the_filter_did_not_ask_for(
        scim_peer, fault_proxy, client):
    """A peer that ignores the filter and lists everybody must not get alice adopted."""
    everybody = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                 "totalResults": 2, "Resources": [{"id": "1", "userName": "alice"},
                                                  {"id": "2", "userName": "carol"}]}
    fault_proxy.script(Fault.answer(200, everybody), Fault.answer(200, everybody))
    c = connector(fault_proxy.url(scim_peer), client)
    assert await c.lookup_user(OutboundUser("bob", "PRIMARY")) is None
    assert await c.lookup_user(OutboundUser("CAROL", "PRIMARY")) == RemoteRef("2", "carol")


async def test_domain_prefix_is_sent_and_looked_up(peer, scim_peer, client):
    c = connector(scim_peer, client, scim2_user_store_domain="EXT")
    ref = await c.create_user(bob())
    group = await c.create_group(OutboundGroup("staff", "PRIMARY", [ref.id]))

    assert peer.get(f"{scim_peer}/Users/{ref.id}")["userName"] == "EXT/bob"
    assert peer.get(f"{scim_peer}/Groups/{group.id}")["displayName"] == "EXT/staff"
    assert await c.lookup_user(bob()) == RemoteRef(ref.id, "EXT/bob")
    assert await c.lookup_group(OutboundGroup("staff", "PRIMARY")) == group


async def test_malformed_value_is_permanent_before_any_request(scim_peer, client):
    c = connector(scim_peer, client)
    for attributes in ({WORK_EMAIL: "not-an-email"}, {"nosuchAttribute": "x"},
                       {"profileUrl": "not a url"}, {"emails[type eq": "x"}):
        with pytest.raises(PermanentError) as refused:
            await c.create_user(bob(attributes=attributes))
        assert next(iter(attributes)) in refused.value.message
    assert c.exchanges == []


async def test_a_400_carries_the_peers_scim_detail(core_only_server, client):
    c = connector(core_only_server.tenant(), client)

    with pytest.raises(PermanentError) as refused:
        await c.create_user(bob())

    error = refused.value
    assert error.status == 400
    assert "invalidSyntax" in error.message and "Extra inputs are not permitted" in error.message
    assert c.exchanges[-1].response_body["scimType"] == "invalidSyntax"


# ---------------------------------------------------------------- passwords
async def test_passwords_follow_the_provisioning_settings(scim_peer, fault_proxy, client):
    base = fault_proxy.url(scim_peer)

    def sent() -> dict[str, Any]:
        return json.loads(fault_proxy.seen[-1].body)

    await connector(base, client, scim2_default_pwd="Default-1").create_user(
        OutboundUser("u1", "PRIMARY", password="Own-1"))
    assert sent()["password"] == "Own-1"

    await connector(base, client, scim2_default_pwd="Default-1").create_user(
        OutboundUser("u2", "PRIMARY"))
    assert sent()["password"] == "Default-1"

    off = connector(base, client, scim2_enable_pwd_provisioning=False)
    ref = await off.create_user(OutboundUser("u3", "PRIMARY", password="Own-3"))
    assert "password" not in sent()
    await off.update_user(ref.id, OutboundUser("u3", "PRIMARY", password="Own-3"))
    assert "password" not in sent()

    off_default = connector(base, client, scim2_enable_pwd_provisioning=False,
                            scim2_default_pwd="Default-4")
    ref = await off_default.create_user(OutboundUser("u4", "PRIMARY", password="Own-4"))
    assert sent()["password"] == "Default-4"
    await off_default.update_user(ref.id, OutboundUser("u4", "PRIMARY"))
    assert "password" not in sent()  # the default password never resets an account


# ---------------------------------------------------------------- groups
async def test_group_lifecycle_with_members_in_chunks(peer, scim_peer, client):
    users = [peer.user(scim_peer, f"user{i:03}") for i in range(123)]
    first, more = users[:3], users[3:]

    c = connector(scim_peer, client)
    group = await c.create_group(OutboundGroup("engineers", "PRIMARY", first))
    url = f"{scim_peer}/Groups/{group.id}"
    assert group.name == "engineers"
    assert {m["value"] for m in peer.get(url)["members"]} == set(first)

    c = connector(scim_peer, client)
    await c.change_members(group.id, OutboundGroup("engineers", "PRIMARY"), more, [])
    assert methods(c) == ["GET", "PATCH", "PATCH", "PATCH"]  # 120 members, 50 per request
    assert {m["value"] for m in peer.get(url)["members"]} == set(users)

    c = connector(scim_peer, client)
    await c.change_members(group.id, OutboundGroup("engineers", "PRIMARY"), [], users[:70])
    assert methods(c) == ["GET", "PATCH", "PATCH"]
    assert {m["value"] for m in peer.get(url)["members"]} == set(users[70:])

    renamed = await connector(scim_peer, client).rename_group(
        group.id, OutboundGroup("builders", "PRIMARY"))
    assert renamed == RemoteRef(group.id, "builders")
    assert peer.get(url)["displayName"] == "builders"
    assert len(peer.get(url)["members"]) == 53
    assert await c.lookup_group(OutboundGroup("builders", "PRIMARY")) == renamed
    assert await c.lookup_group(OutboundGroup("engineers", "PRIMARY")) is None

    await c.delete_group(group.id, OutboundGroup("builders", "PRIMARY"))
    assert peer.get(url) is None
    with pytest.raises(RemoteNotFound):
        await c.delete_group(group.id, OutboundGroup("builders", "PRIMARY"))


async def test_members_per_request_is_configurable(peer, scim_peer, client):
    users = [peer.user(scim_peer, f"m{i}") for i in range(5)]
    c = connector(scim_peer, client, scim2_members_per_request=2)
    group = await c.create_group(OutboundGroup("small", "PRIMARY"))
    await c.change_members(group.id, OutboundGroup("small", "PRIMARY"), users, [])
    assert methods(c).count("PATCH") == 3


async def test_without_patch_members_change_by_read_modify_write(
        peer, no_patch_server, client):
    base = no_patch_server.tenant()
    users = [peer.user(base, f"m{i}") for i in range(4)]
    c = connector(base, client)
    group = await c.create_group(OutboundGroup("g", "PRIMARY", users[:2]))

    await c.change_members(group.id, OutboundGroup("g", "PRIMARY"), users[2:], users[:1])
    await c.rename_group(group.id, OutboundGroup("h", "PRIMARY"))

    found = peer.get(f"{base}/Groups/{group.id}")
    assert found["displayName"] == "h"
    assert {m["value"] for m in found["members"]} == set(users[1:])
    assert "PATCH" not in methods(c)


async def test_duplicate_group_lookup_is_refused_not_guessed(scim_peer, client):
    c = connector(scim_peer, client)
    await c.create_group(OutboundGroup("twin", "PRIMARY"))
    await c.create_group(OutboundGroup("twin", "PRIMARY"))  # this peer allows it
    with pytest.raises(PermanentError) as ambiguous:
        await c.lookup_group(OutboundGroup("twin", "PRIMARY"))
    assert "2 objects" in ambiguous.value.message


async def test_groups_need_a_group_endpoint(scim_peer, client):
    c = connector(scim_peer, client, scim2_group_ep="")
    with pytest.raises(PermanentError) as refused:
        await c.create_group(OutboundGroup("g", "PRIMARY"))
    assert "scim2-group-ep" in refused.value.message
    assert c.exchanges == []


# ---------------------------------------------------------------- authentication
async def test_bearer_token_is_accepted_and_a_wrong_one_is_clearly_refused(
        peer, scim_bearer_server, client):
    base = scim_bearer_server.tenant()
    token = scim_bearer_server.bearer_tokens[0]
    c = connector(base, client, scim2_authentication_mode="BEARER", scim2_access_token=token)
    ref = await c.create_user(bob())
    assert peer.get(f"{base}/Users/{ref.id}", Authorization=f"Bearer {token}")["userName"] == "bob"

    wrong = connector(base, client, scim2_authentication_mode="BEARER",
                      scim2_access_token="not-the-token")
    for attempt in (wrong.create_user(bob()), wrong.test_connection()):
        with pytest.raises(PermanentError) as refused:
            await attempt
        assert refused.value.status == 401
        assert "refused our credentials" in refused.value.message
        assert "scim2-authentication-mode" in refused.value.message
        assert "not-the-token" not in refused.value.message
    assert "not-the-token" not in repr(wrong.exchanges)


@pytest.mark.parametrize(("props", "header", "value"), [
    ({"scim2_authentication_mode": "BASIC", "scim2_username": "svc", "scim2_password": "pw"},
     "Authorization", "Basic " + base64.b64encode(b"svc:pw").decode()),
    ({"scim2_authentication_mode": "API_KEY", "scim2_api_key_header": "X-Api-Key",
      "scim2_api_key_value": "k3y"}, "X-Api-Key", "k3y"),
    ({"scim2_authentication_mode": "BEARER", "scim2_access_token": "t0k"},
     "Authorization", "Bearer t0k"),
])
async def test_authentication_headers_reach_the_peer_and_stay_out_of_the_log(
        scim_peer, fault_proxy, client, props, header, value):
    c = connector(fault_proxy.url(scim_peer), client, **props)
    await c.create_user(bob())
    received = {k.lower(): v for k, v in fault_proxy.seen[-1].headers.items()}
    assert received[header.lower()] == value
    secret = value.split()[-1]
    assert secret not in repr(c.exchanges)


async def test_no_authentication_sends_no_credentials(scim_peer, fault_proxy, client):
    await connector(fault_proxy.url(scim_peer), client).create_user(bob())
    assert "authorization" not in {k.lower() for k in fault_proxy.seen[-1].headers}


# ---------------------------------------------------------------- faults
async def test_503_with_retry_after_seconds_is_retryable_after_that_delay(
        scim_peer, fault_proxy, client):
    fault_proxy.script(Fault.answer(503, {"detail": "maintenance"}, retry_after="2"))
    with pytest.raises(RetryableError) as later:
        await connector(fault_proxy.url(scim_peer), client).create_user(bob())
    assert later.value.status == 503 and later.value.delay == 2
    assert "maintenance" in later.value.message


async def test_429_is_retryable_with_the_delay_of_an_http_date(scim_peer, fault_proxy, client):
    when = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    fault_proxy.script(Fault.answer(429, {"detail": "slow down"}, retry_after=when),
                       Fault.answer(429))
    c = connector(fault_proxy.url(scim_peer), client)
    with pytest.raises(RetryableError) as throttled:
        await c.create_user(bob())
    assert throttled.value.status == 429
    assert throttled.value.delay is not None and 3000 < throttled.value.delay <= 3600
    with pytest.raises(RetryableError) as bare:
        await c.create_user(bob())
    assert bare.value.delay is None


@pytest.mark.parametrize(("fault", "error"), [
    (Fault.answer(500, "<html>Internal error</html>"), RetryableError),
    (Fault.answer(502), RetryableError),
    (Fault.answer(501, {"detail": "no PUT here"}), PermanentError),
    (Fault.answer(412), RetryableError),
    (Fault.answer(403, {"detail": "not allowed"}), PermanentError),
    (Fault.drop(), RetryableError),
])
async def test_answers_and_broken_connections_map_to_typed_errors(
        scim_peer, fault_proxy, client, fault, error):
    fault_proxy.script(fault)
    with pytest.raises(ConnectorError) as failed:
        await connector(fault_proxy.url(scim_peer), client).create_user(bob())
    assert type(failed.value) is error


async def test_a_slow_peer_times_out_as_retryable(scim_peer, fault_proxy):
    fault_proxy.script(Fault.delay(10))
    async with httpx.AsyncClient(timeout=0.5) as quick:
        c = connector(fault_proxy.url(scim_peer), quick)
        with pytest.raises(RetryableError) as slow:
            await c.create_user(bob())
    assert "no answer in time" in slow.value.message
    assert c.exchanges[-1].status is None


async def test_a_peer_that_is_down_is_retryable(client):
    c = connector(f"http://127.0.0.1:{free_port()}/v2", client)
    with pytest.raises(RetryableError) as down:
        await c.test_connection()
    assert down.value.status is None
    assert "cannot reach the target" in down.value.message


async def test_a_lost_answer_loses_nothing(peer, scim_peer, fault_proxy, client):
    """The create reached the peer but its answer was lost: retry, conflict, adopt."""
    fault_proxy.script(Fault.lose_response())
    c = connector(fault_proxy.url(scim_peer), client)
    with pytest.raises(RetryableError):
        await c.create_user(bob())
    with pytest.raises(ConflictError):
        await c.create_user(bob())
    found = await c.lookup_user(bob())
    assert found is not None
    assert peer.get(f"{scim_peer}/Users/{found.id}")["userName"] == "bob"


async def test_read_modify_write_sends_if_match(no_patch_server, client):
    base = no_patch_server.tenant()
    ref = await connector(base, client).create_user(bob())
    with peer_fault_proxy(base) as proxy:
        await connector(proxy.url(base), client).set_active(ref.id, bob(), False)
        put = proxy.seen[-1]
    assert put.method == "PUT"
    assert {k.lower(): v for k, v in put.headers.items()}["if-match"].startswith('W/"')


# ---------------------------------------------------------------- service
async def test_test_connection_reports_what_the_peer_supports(scim_peer, client):
    report = await connector(scim_peer, client).test_connection()
    assert "PATCH supported" in report
    assert "bulk supported (at most 1000 operations)" in report
    assert "ETag supported" in report
    assert "users endpoint answers (0 users)" in report


async def test_test_connection_reports_a_peer_without_patch(no_patch_server, client):
    c = connector(no_patch_server.tenant(), client, scim2_group_ep="")
    report = await c.test_connection()
    assert "PATCH not supported" in report and "bulk not supported" in report
    assert "ETag supported" in report
    assert "groups are not sent" in report
    assert (await c.capabilities()).patch is False


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("2") == 2
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past: now
    assert retry_after("soon") is None
    assert retry_after(None) is None


async def test_listing_follows_the_cursor_when_the_peer_announces_it() -> None:
    """RFC 9865: no scim2-server here speaks it, so a small in-process peer holding five
    users answers two per page by cursor (and refuses index paging)."""
    ids = [f"u{i}" for i in range(5)]
    asked: list[dict[str, str]] = []

    def peer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/ServiceProviderConfig"):
            return httpx.Response(200, json={"pagination": {"cursor": True, "index": False}})
        params = dict(request.url.params)
        asked.append(params)
        if "startIndex" in params:
            return httpx.Response(400, json={"detail": "index paging unsupported"})
        start, count = int(params["cursor"] or 0), int(params["count"])
        page = ids[start:start + count]
        body: dict[str, Any] = {"Resources": [{"id": i, "userName": f"{i}@x"} for i in page]}
        if start + count < len(ids):
            body["nextCursor"] = str(start + count)
        return httpx.Response(200, json=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(peer)) as mock:
        c = connector("http://127.0.0.1:9/v2", mock)
        listed = [o.id async for o in c.list_users(page_size=2)]
    assert listed == ids
    assert [a["cursor"] for a in asked] == ["", "2", "4"]
