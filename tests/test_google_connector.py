"""The Google Workspace connector against its sandbox peer (``connectors/sandbox/google.py``),
which checks every token request and body against Google's published contract.

These are the connector contract suite's cases (create, update, disable/enable, delete,
adoption, groups, each fault's typed error, redaction) until ``tests/contracts/`` lands, plus
Google's own: token caching and renewal, rate limits, names and addresses.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from connectors.base import (
    IDP_NAME,
    ConflictError,
    OutboundGroup,
    OutboundUser,
    PermanentError,
    RemoteNotFound,
    RetryableError,
)
from connectors.google import SPEC, USER_SCOPE, GoogleConnector, check_properties
from connectors.sandbox.google import GoogleSandbox, google_sandbox
from connectors.wire import MASK
from core.claims import LOCAL_DIALECT
from core.properties import validate
from tests.peers import PeerUnavailable
from tests.servers import unavailable

GIVEN, FAMILY, EMAIL = (f"{LOCAL_DIALECT}/{c}" for c in ("givenname", "lastname",
                                                        "emailaddress"))


@pytest.fixture(scope="module")
def peer() -> Iterator[GoogleSandbox]:
    try:
        with google_sandbox() as sandbox:
            yield sandbox
    except PeerUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=1.0) as c:
        yield c


def connector(peer: GoogleSandbox, client: httpx.AsyncClient,
              memo: dict[str, Any] | None = None, **props: Any) -> GoogleConnector:
    """As the engine builds it: typed properties with defaults, the identity provider's name."""
    typed = validate(SPEC.all_properties, {**peer.properties(), **props}, "test connector")
    return GoogleConnector({**typed, IDP_NAME: "gws"}, client, memo)


def user(name: str, **claims: str) -> OutboundUser:
    return OutboundUser(name, "PRIMARY", {GIVEN: name.capitalize(), FAMILY: "Tester", **claims},
                        password=claims.pop("password", None))


def shown(c: GoogleConnector) -> str:
    return json.dumps([e.as_dict() for e in c.exchanges])


# ---------------------------------------------------------------- users
async def test_user_lifecycle_lands_at_the_peer(peer, client):
    c = connector(peer, client)
    ref = await c.create_user(user("ada", password="Ada-s3cret-pw"))
    held = peer.remote_user(ref.id)
    assert held is not None and held.name == "ada@example.org" and held.active
    assert held.attributes["name"] == {"givenName": "Ada", "familyName": "Tester",
                                       "fullName": "Ada Tester"}
    await c.update_user(ref.id, user("ada", **{FAMILY: "Lovelace"}))
    assert peer.remote_user(ref.id).attributes["name"]["familyName"] == "Lovelace"
    await c.set_active(ref.id, user("ada"), False)
    assert peer.remote_user(ref.id).active is False
    await c.set_active(ref.id, user("ada"), True)
    assert peer.remote_user(ref.id).active is True
    await c.delete_user(ref.id, user("ada"))
    assert peer.remote_user(ref.id) is None
    with pytest.raises(RemoteNotFound):  # the engine takes a 404 on delete as done
        await c.delete_user(ref.id, user("ada"))
    assert "Ada-s3cret-pw" in peer.secrets() and "Ada-s3cret-pw" not in shown(c)


async def test_a_user_without_password_gets_a_random_one_never_shown(peer, client):
    c = connector(peer, client)
    before = set(peer.passwords)
    await c.create_user(user("bea"))
    [sent] = set(peer.passwords) - before
    assert len(sent) >= 16 and sent not in shown(c)
    assert '"password": "********"' in shown(c)


async def test_conflict_then_lookup_adopts_only_the_primary_address(peer, client):
    c = connector(peer, client)
    seeded = peer.seed_user("cleo")
    with pytest.raises(ConflictError):
        await c.create_user(user("cleo"))
    found = await c.lookup_user(user("cleo"))
    assert found is not None and found.id == seeded and found.name == "cleo@example.org"
    assert await c.lookup_user(user("nobody-here")) is None


async def test_primary_email_from_claim_or_pattern(peer, client):
    c = connector(peer, client, google_prov_pattern="{UD, UN, IDP}", google_prov_separator="-")
    ref = await c.create_user(user("dan", **{EMAIL: "dan.x@example.org"}))
    assert peer.remote_user(ref.id).name == "dan.x@example.org"
    ref = await c.create_user(user("dan", **{EMAIL: "dan@elsewhere.com"}))
    assert peer.remote_user(ref.id).name == "primary-dan-gws@example.org"


async def test_bad_users_are_permanent_errors_naming_user_and_field(peer, client):
    c = connector(peer, client)
    outside = OutboundUser("eve@other.org", "PRIMARY", {GIVEN: "Eve", FAMILY: "X"})
    with pytest.raises(PermanentError, match=r"'eve@other.org': primaryEmail .* outside the "
                                             r"domain example.org"):
        await c.create_user(outside)
    nameless = OutboundUser("fay", "PRIMARY", {GIVEN: "Fay"})
    with pytest.raises(PermanentError, match=r"user 'fay' has no familyName .*lastname.* "
                                             "google_prov_familyname"):
        await c.create_user(nameless)
    assert c.exchanges == []  # refused before any request
    defaulted = connector(peer, client, google_prov_familyname="Unknown")
    ref = await defaulted.create_user(nameless)
    assert peer.remote_user(ref.id).attributes["name"]["familyName"] == "Unknown"


# ---------------------------------------------------------------- groups
async def test_groups_and_memberships(peer, client):
    c = connector(peer, client)
    a = (await c.create_user(user("gus"))).id
    b = (await c.create_user(user("hal"))).id
    group = await c.create_group(OutboundGroup("eng-team", "PRIMARY", [a]))
    assert group.name == "eng-team@example.org" and peer.group_members(group.id) == {a}
    await c.change_members(group.id, OutboundGroup("eng-team", "PRIMARY"), [b], [a])
    assert peer.group_members(group.id) == {b}
    await c.change_members(group.id, OutboundGroup("eng-team", "PRIMARY"), [b], [a])  # no-op
    renamed = await c.rename_group(group.id, OutboundGroup("platform", "PRIMARY"))
    assert renamed.name == "platform@example.org"
    assert peer.group_by_email("platform@example.org")["id"] == group.id
    with pytest.raises(ConflictError):
        await c.create_group(OutboundGroup("platform", "PRIMARY"))
    assert (await c.lookup_group(OutboundGroup("platform", "PRIMARY"))).id == group.id
    await c.delete_group(group.id, OutboundGroup("platform", "PRIMARY"))
    assert peer.group_members(group.id) is None
    with pytest.raises(PermanentError, match="cannot be a Google group address"):
        await c.create_group(OutboundGroup("Team Alpha", "PRIMARY"))


# ---------------------------------------------------------------- auth
async def test_token_is_cached_per_target_and_fetched_again_once_on_401(peer, client):
    memo: dict[str, Any] = {}
    before = peer.token_requests
    for name in ("ivy", "jon"):
        await connector(peer, client, memo).create_user(user(name))
    assert peer.token_requests == before + 1
    peer.expire_tokens()
    c = connector(peer, client, memo)
    await c.create_user(user("kim"))
    assert peer.token_requests == before + 2
    assert [e.status for e in c.exchanges] == [401, 200, 200]
    peer.fail_next("401")  # credentials revoked: the renewal is refused too, permanent
    with pytest.raises(PermanentError, match="domain-wide delegation"):
        await connector(peer, client, memo).create_user(user("lou"))


async def test_group_scope_is_asked_only_for_groups(peer, client):
    with google_sandbox(delegated=(USER_SCOPE,)) as users_only:
        c = connector(users_only, client)
        await c.create_user(user("max"))
        with pytest.raises(PermanentError, match="unauthorized_client"):
            await c.create_group(OutboundGroup("ops", "PRIMARY"))


async def test_a_foreign_key_or_admin_is_refused_at_the_token_endpoint(peer, client):
    with google_sandbox() as other:
        c = connector(peer, client, google_prov_private_key=other.private_key_pem)
        with pytest.raises(PermanentError, match="invalid_grant: Invalid JWT Signature"):
            await c.test_connection()
    c = connector(peer, client, google_prov_admin_email="someone@example.org")
    with pytest.raises(PermanentError, match="unauthorized_client"):
        await c.test_connection()
    assert "assertion" in shown(c) and peer.private_key_pem not in str(c.exchanges)


async def test_test_connection_reads_the_administrator(peer, client):
    found = await connector(peer, client).test_connection()
    assert "acting for admin@example.org" in found and "administrator's account was read" \
        in found


# ---------------------------------------------------------------- faults
@pytest.mark.parametrize(("fault", "error", "status"), [
    ("400", PermanentError, 400), ("403", PermanentError, 403),
    ("404", RemoteNotFound, 404), ("409", ConflictError, 409),
    ("429", RetryableError, 429), ("500", RetryableError, 500),
    ("503", RetryableError, 503), ("userRateLimitExceeded", RetryableError, 403),
    ("quotaExceeded", RetryableError, 403), ("notComplete", RetryableError, 412),
    ("timeout", RetryableError, None), ("drop", RetryableError, None),
])
async def test_each_fault_has_its_typed_error(peer, client, fault, error, status):
    c = connector(peer, client)
    await c.test_connection()  # the token first: faults count API requests only
    peer.fail_next(fault)
    with pytest.raises(error) as raised:
        await c.create_user(user("nia"))
    assert type(raised.value) is error and raised.value.status == status
    if fault == "429":
        assert raised.value.delay == 1.0  # Retry-After
    if fault == "403":
        assert "Not Authorized to access this resource/api" in raised.value.message
    for secret in peer.secrets():
        assert secret not in raised.value.message and secret not in shown(c)


async def test_a_refused_connection_is_retryable(peer, client):
    props = peer.refusing_properties()
    c = GoogleConnector(validate(SPEC.all_properties, props, "t"), client)
    with pytest.raises(RetryableError, match="cannot reach Google"):
        await c.test_connection()


async def test_no_secret_in_any_exchange_or_error(peer, client):
    c = connector(peer, client)
    ref = await c.create_user(user("oto", password="Oto-pass-123"))
    await c.update_user(ref.id, user("oto", password="Oto-pass-456"))
    with pytest.raises(ConflictError) as conflict:
        await c.create_user(user("oto"))
    text = shown(c) + conflict.value.message
    secrets = peer.secrets()
    # the peer was sent both passwords and issued a token: each is a secret to look for
    assert {"Oto-pass-123", "Oto-pass-456"} <= set(secrets) and len(secrets) > 3
    assert [s for s in secrets if s in text] == []
    bodies = [e.request_body for e in c.exchanges if e.method in ("POST", "PUT")
              and isinstance(e.request_body, dict) and "password" in e.request_body]
    assert len(bodies) >= 2 and all(b["password"] == MASK for b in bodies), \
        "a password sent is recorded masked"
    assert any(e.url.endswith("/token") and e.response_body["access_token"] == MASK
               for e in c.exchanges if isinstance(e.response_body, dict)
               and "access_token" in e.response_body)


# ---------------------------------------------------------------- properties
def test_property_checks_name_the_property_and_why(peer):
    good = validate(SPEC.all_properties, peer.properties(), "t")
    assert check_properties(good) == []
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    errors = {e.field: e.message for e in check_properties({
        **good, "google_prov_private_key": ec_key, "google_prov_admin_email": "root@other.org",
        "google_prov_pattern": "{UN, XX}"})}
    assert "not an RSA key (found EC)" in errors["google_prov_private_key"]
    assert "not at the domain example.org" in errors["google_prov_admin_email"]
    assert "unknown placeholder 'XX'" in errors["google_prov_pattern"]
    errors = {e.field: e.message for e in check_properties(
        {**good, "google_prov_private_key": "not a key"})}
    assert "not a readable private key" in errors["google_prov_private_key"]


def test_the_reference_p12_and_google_json_key_forms_are_accepted(peer):
    import base64
    import json as json_module

    from cryptography.hazmat.primitives.serialization import pkcs12

    from connectors.google import load_private_key

    key = peer._key
    p12 = pkcs12.serialize_key_and_certificates(
        b"sa", key, None, None, serialization.BestAvailableEncryption(b"notasecret"))
    loaded = load_private_key(base64.b64encode(p12).decode())
    assert loaded.private_numbers() == key.private_numbers()
    as_json = json_module.dumps({"type": "service_account", "private_key": peer.private_key_pem})
    assert load_private_key(as_json).private_numbers() == key.private_numbers()


async def test_the_application_name_is_the_user_agent(peer, client):
    await connector(peer, client, google_prov_application_name="MWARE IAM HR").test_connection()
    assert peer.user_agent == "MWARE IAM HR"
    await connector(peer, client).test_connection()
    assert peer.user_agent != "MWARE IAM HR"
