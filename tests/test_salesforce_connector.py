"""The Salesforce connector against the sandbox org (``connectors/sandbox/salesforce.py``):
the User sObject, adoption, public groups, the three OAuth flows, typed errors, the API
budget, redaction. The peer enforces Salesforce's rules, so a body it accepts is one a
real org's validation would accept on the same points."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from connectors.base import (
    ConflictError,
    OutboundGroup,
    OutboundUser,
    PermanentError,
    RemoteNotFound,
    RetryableError,
    TargetPaused,
)
from connectors.salesforce import SalesforceConnector, developer_name, soql_literal
from connectors.sandbox.salesforce import (
    CLIENT_SECRET,
    PASSWORD,
    PROFILE_ID,
    ContractSalesforcePeer,
    SalesforcePeer,
    salesforce_peer,
)
from core.claims import LOCAL_DIALECT
from core.configfile.files import validate_file
from core.idps import ConnectorConfig, connector_errors
from core.secrets import SecretValue


@pytest.fixture(scope="module")
def org() -> Iterator[SalesforcePeer]:
    with salesforce_peer() as peer:
        yield peer


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2.0) as c:
        yield c


def connector(org: SalesforcePeer, client: httpx.AsyncClient, flow: str = "client_credentials",
              memo: dict[str, Any] | None = None, **extra: Any) -> SalesforceConnector:
    props = {"sf-prov-pattern": "{UN}", "sf-prov-separator": "_", "sf-timezone": "GMT",
             "sf-locale": "en_US", "sf-language": "en_US", "sf-email-encoding": "UTF-8",
             "sf-api-reserve": 10, "probe-seconds": 15, **org.properties(flow), **extra}
    return SalesforceConnector(props, client, memo)


def claims(**values: str) -> dict[str, str]:
    return {f"{LOCAL_DIALECT}/{k}": v for k, v in values.items()}


def user(name: str, **changes: Any) -> OutboundUser:
    values: dict[str, Any] = {
        "username": name, "domain": "PRIMARY",
        "claims": claims(givenname="Ada", lastname="Lovelace",
                         emailaddress=f"{name}@example.com")}
    values.update(changes)
    return OutboundUser(**values)


def methods(c: SalesforceConnector) -> list[str]:
    return [f"{e.method} {e.url.split('?')[0].rsplit('/services/', 1)[-1]}"
            for e in c.exchanges]


async def test_create_sends_every_required_field_and_types_mapped_claims(org, client):
    c = connector(org, client)
    ref = await c.create_user(user("ada.lovelace.long", attributes={
        "Department": "Engineering", "ReceivesInfoEmails": "true"}))
    got = org.user(ref.id)
    assert got is not None
    assert ref.name == got["Username"] == "ada.lovelace.long@sandbox.example.com"
    assert (got["FirstName"], got["LastName"], got["Email"]) == (
        "Ada", "Lovelace", "ada.lovelace.long@example.com")
    assert got["Alias"] == "ada.love"  # the first 8 characters of the local name
    assert (got["ProfileId"], got["TimeZoneSidKey"], got["IsActive"]) == (
        PROFILE_ID, "GMT", True)
    assert got["Department"] == "Engineering"
    assert got["ReceivesInfoEmails"] is True  # a boolean field gets JSON true
    assert methods(c)[-1] == "POST data/v61.0/sobjects/User/"


async def test_claim_mappings_override_the_default_fields(org, client):
    c = connector(org, client)
    ref = await c.create_user(user("mapped", attributes={
        "LastName": "Byron", "Email": "work@example.org", "Alias": "adab"}))
    got = org.user(ref.id)
    assert got is not None
    assert (got["LastName"], got["Email"], got["Alias"]) == ("Byron", "work@example.org",
                                                             "adab")


async def test_update_patches_and_deprovision_deactivates_then_reactivates(org, client):
    c = connector(org, client)
    ref = await c.create_user(user("grace"))
    await c.update_user(ref.id, user("grace", attributes={"Title": "Rear Admiral"}))
    assert org.user(ref.id)["Title"] == "Rear Admiral"  # type: ignore[index]
    await c.delete_user(ref.id, user("grace", active=False))
    after = org.user(ref.id)
    assert after is not None and after["IsActive"] is False  # never deleted
    assert after["Username"] == "grace@sandbox.example.com"  # not renamed by default
    await c.update_user(ref.id, user("grace"))
    assert org.user(ref.id)["IsActive"] is True  # type: ignore[index]
    await c.set_active(ref.id, user("grace"), False)
    assert org.user(ref.id)["IsActive"] is False  # type: ignore[index]
    assert not [m for m in methods(c) if m.startswith("DELETE")]


async def test_rename_on_deprovision_frees_the_username(org, client):
    c = connector(org, client, **{"sf-rename-on-deprovision": True})
    ref = await c.create_user(user("linus"))
    await c.delete_user(ref.id, user("linus", active=False))
    renamed = org.user(ref.id)
    assert renamed is not None and renamed["IsActive"] is False
    assert renamed["Username"].startswith("old")
    assert renamed["Username"].endswith("_linus@sandbox.example.com")
    again = await c.create_user(user("linus"))  # the name can be used again
    assert again.id != ref.id
    with pytest.raises(ConflictError, match="DUPLICATE_USERNAME"):
        await c.set_active(ref.id, user("linus"), True)  # the name is taken now


async def test_duplicate_username_is_a_conflict_and_lookup_adopts_the_tricky_name(
        org, client):
    tricky = "o'brien\\x"
    seeded = org.seed_user(f"{tricky}@sandbox.example.com")
    c = connector(org, client)
    with pytest.raises(ConflictError, match="DUPLICATE_USERNAME"):
        await c.create_user(user(tricky))
    found = await c.lookup_user(user(tricky))
    assert found is not None and found.id == seeded
    sent = [e for e in c.exchanges if "/query/" in e.url][-1]
    assert "WHERE Username = 'o\\'brien\\\\x@sandbox.example.com'" in \
        httpx.URL(sent.url).params["q"]
    org.seed_user("obrien@sandbox.example.com")  # a near name is never adopted
    assert (await c.lookup_user(user("nobody"))) is None


def test_soql_literal_escapes_quotes_backslashes_and_controls() -> None:
    assert soql_literal("a'b") == "'a\\'b'"
    assert soql_literal("a\\' OR Name = 'x") == "'a\\\\\\' OR Name = \\'x'"
    assert soql_literal("l1\nl2") == "'l1\\nl2'"


async def test_no_last_name_is_a_permanent_error_naming_user_and_field(org, client):
    c = connector(org, client)
    with pytest.raises(PermanentError, match=r"user 'nolast' has no LastName"):
        await c.create_user(user("nolast", claims=claims(emailaddress="n@example.com")))
    assert c.exchanges == []  # nothing sent


async def test_a_bad_boolean_claim_is_refused_before_sending(org, client):
    c = connector(org, client)
    with pytest.raises(PermanentError, match="ReceivesInfoEmails is a boolean field"):
        await c.create_user(user("boolbad", attributes={"ReceivesInfoEmails": "maybe"}))
    assert c.exchanges == []


@pytest.mark.parametrize(("attributes", "code", "field"), [
    ({"Shoe": "42"}, "INVALID_FIELD", "Shoe"),
    ({"Alias": "muchtoolong"}, "STRING_TOO_LONG", "Alias"),
    ({"ProfileId": "00e000000000000AAA"}, "INVALID_CROSS_REFERENCE_KEY", "ProfileId"),
])
async def test_salesforce_errors_are_permanent_with_message_and_fields(
        org, client, attributes, code, field):
    c = connector(org, client)
    with pytest.raises(PermanentError) as caught:
        await c.create_user(user(f"e{code.lower()[:6]}", attributes=attributes))
    assert code in caught.value.message and f"fields: {field}" in caught.value.message
    assert caught.value.status == 400


async def test_required_field_missing_from_the_org_is_permanent(org, client):
    c = connector(org, client, **{"sf-timezone": ""})
    with pytest.raises(PermanentError, match=r"REQUIRED_FIELD_MISSING.*TimeZoneSidKey"):
        await c.create_user(user("notz"))


@pytest.mark.parametrize(("fault", "error", "status"), [
    ("REQUEST_LIMIT_EXCEEDED", RetryableError, 403),
    ("UNABLE_TO_LOCK_ROW", RetryableError, 400),
    ("503", RetryableError, 503),
    ("500", RetryableError, 500),
    ("429", RetryableError, 429),
    ("400", PermanentError, 400),
    ("403", PermanentError, 403),
    ("404", RemoteNotFound, 404),
    ("409", ConflictError, 409),
    ("401", PermanentError, 400),  # the refresh is refused: credentials revoked
])
async def test_faults_map_to_typed_errors(org, client, fault, error, status):
    c = connector(org, client)
    await c.lookup_user(user("warm"))  # token fetched
    org.fail_next(fault)
    with pytest.raises(error) as caught:
        await c.create_user(user(f"f{fault.lower()[:8]}"))
    assert type(caught.value) is error
    assert caught.value.status == status
    if fault == "429":
        assert isinstance(caught.value, RetryableError) and caught.value.delay == 1.0


@pytest.mark.parametrize("fault", ["timeout", "drop"])
async def test_timeouts_and_dropped_connections_are_retryable(org, fault):
    async with httpx.AsyncClient(timeout=0.5) as short:
        c = connector(org, short)
        await c.lookup_user(user("warm"))
        org.fail_next(fault)
        with pytest.raises(RetryableError):
            await c.lookup_user(user("warm"))


async def test_refused_connection_is_retryable(org, client):
    peer = ContractSalesforcePeer(org)
    c = SalesforceConnector(peer.refusing_properties(), client)
    with pytest.raises(RetryableError, match="cannot reach Salesforce"):
        await c.create_user(user("nobody"))


@pytest.mark.parametrize("flow", ["client_credentials", "password", "jwt"])
async def test_each_oauth_flow_gets_a_token_once_and_again_after_expiry(org, client, flow):
    memo: dict[str, Any] = {}
    first = connector(org, client, flow, memo)
    before = org.tokens_issued
    await first.lookup_user(user("x"))
    second = connector(org, client, flow, memo)  # another job of the same target
    await second.lookup_user(user("x"))
    await second.lookup_user(user("y"))
    assert org.tokens_issued == before + 1  # cached per target, never per call
    org.expire_tokens()
    await second.lookup_user(user("z"))  # 401 INVALID_SESSION_ID -> one refresh, retried
    assert org.tokens_issued == before + 2
    assert [e.status for e in second.exchanges[-3:]] == [401, 200, 200]


async def test_wrong_credentials_are_a_clear_permanent_error(org, client):
    c = connector(org, client, **{"sf-client-secret": "wrong-secret"})
    with pytest.raises(PermanentError, match="invalid_client") as caught:
        await c.lookup_user(user("x"))
    assert "wrong-secret" not in caught.value.message


async def test_a_jwt_signed_by_another_key_is_refused(org, client):
    with salesforce_peer() as other:
        c = connector(org, client, "jwt", **{"sf-jwt-private-key": other.private_key_pem})
        with pytest.raises(PermanentError, match="invalid_grant"):
            await c.lookup_user(user("x"))


async def test_no_secret_in_any_exchange_or_error(org, client):
    for flow in ("password", "jwt"):
        c = connector(org, client, flow, memo={})
        await c.create_user(user(f"secret{flow}", password="hunter2-pw"))
        org.fail_next("400")
        with pytest.raises(PermanentError) as caught:
            await c.update_user("005doesnotmatter", user(f"secret{flow}"))
        shown = json.dumps([e.as_dict() for e in c.exchanges]) + caught.value.message
        for secret in [*org.secrets(), CLIENT_SECRET, PASSWORD, "hunter2-pw"]:
            assert secret not in shown
        assert "********" in shown  # the token request is recorded, masked


async def test_groups_are_public_groups_with_group_member_rows(org, client):
    c = connector(org, client)
    a = await c.create_user(user("member.a"))
    b = await c.create_user(user("member.b"))
    ref = await c.create_group(OutboundGroup("Sales EMEA", "PRIMARY", [a.id]))
    assert org.org.groups[ref.id]["DeveloperName"] == "Sales_EMEA"
    assert org.group_members(ref.id) == {a.id}
    await c.change_members(ref.id, OutboundGroup("Sales EMEA", "PRIMARY"), [b.id],
                           [a.id])
    assert org.group_members(ref.id) == {b.id}
    await c.rename_group(ref.id, OutboundGroup("Sales Europe", "PRIMARY"))
    assert org.org.groups[ref.id]["Name"] == "Sales Europe"
    await c.delete_group(ref.id, OutboundGroup("Sales Europe", "PRIMARY"))
    assert org.group_members(ref.id) is None


async def test_an_existing_public_group_is_found_by_developer_or_plain_name(org, client):
    c = connector(org, client)
    first = await c.create_group(OutboundGroup("Support-Tier 1", "PRIMARY"))
    with pytest.raises(ConflictError, match="DUPLICATE_DEVELOPER_NAME"):
        await c.create_group(OutboundGroup("Support-Tier 1", "PRIMARY"))
    found = await c.lookup_group(OutboundGroup("Support-Tier 1", "PRIMARY"))
    assert found is not None and found.id == first.id
    assert developer_name("9 lives!") == "G_9_lives"


async def test_low_budget_pauses_and_a_fresh_reading_resumes(org, client):
    memo: dict[str, Any] = {}
    c = connector(org, client, memo=memo, **{"probe-seconds": 0})
    org.set_usage(org.limit - 5)  # 5 calls left: far below 10 %
    try:
        await c.lookup_user(user("x"))  # learns the usage from Sforce-Limit-Info
        assert c.target_facts()["api usage"].startswith(f"{org.limit - 4}/{org.limit}")
        sent = len(c.exchanges)
        with pytest.raises(TargetPaused, match="sf-api-reserve") as caught:
            await c.create_user(user("paused"))
        assert caught.value.delay == 0
        assert [e.url.rsplit("/", 2)[-2] for e in c.exchanges[sent:]] == ["limits"]
        org.set_usage(100)  # the rolling day moved on
        await c.create_user(user("resumed"))
        assert c.target_facts()["api usage"].startswith("10")
    finally:
        org.set_usage(0)


async def test_a_fresh_low_reading_pauses_without_any_request(org, client):
    c = connector(org, client)
    org.set_usage(org.limit - 5)
    try:
        await c.lookup_user(user("x"))
        sent = len(c.exchanges)
        with pytest.raises(TargetPaused):
            await c.create_user(user("paused2"))
        assert len(c.exchanges) == sent  # nothing spent
    finally:
        org.set_usage(0)


async def test_test_connection_reads_versions_and_usage(org, client):
    said = await connector(org, client, "jwt").test_connection()
    assert "JWT bearer flow" in said and "API usage" in said
    c = connector(org, client, **{"sf-api-version": "v12.0"})
    with pytest.raises(PermanentError, match=r"does not offer API v12\.0"):
        await c.test_connection()


def _errors(**props: Any) -> dict[str, str]:
    secrets = {k: SecretValue(str(props.pop(k))) for k in list(props)
               if k in ("sf-client-secret", "sf-password", "sf-jwt-private-key")}
    base = {"sf-domain-name": "https://acme.my.salesforce.com", "sf-clientid": "abc",
            "sf-profile-id": PROFILE_ID}
    cfg = ConnectorConfig("salesforce", properties={**base, **props},
                          secrets={"sf-client-secret": SecretValue("s"), **secrets})
    return {e.field: e.message for e in connector_errors(cfg)}


def test_config_names_each_faulty_property() -> None:
    assert _errors() == {}
    assert "15- or 18-character" in _errors(**{"sf-profile-id": "00e123"})["sf-profile-id"]
    assert "vNN.N" in _errors(**{"sf-api-version": "61"})["sf-api-version"]
    assert "https" in _errors(**{"sf-domain-name": "http://acme.example.com"})[
        "sf-domain-name"]
    assert _errors(**{"sf-domain-name": "http://127.0.0.1:8788"}) == {}
    assert "sf-username" in _errors(**{"sf-usePasswordGrant": "true"})
    assert "PEM" in _errors(**{"sf-jwt-private-key": "nope", "sf-username": "u@x.com"})[
        "sf-jwt-private-key"]
    assert "'XX'" in _errors(**{"sf-prov-pattern": "{XX}{UN}"})["sf-prov-pattern"]


async def test_pattern_and_separator_build_the_username(org, client):
    c = connector(org, client, **{"sf-prov-pattern": "{UD}{UN}", "sf-prov-separator": "-"})
    ref = await c.create_user(user("patterned"))
    assert ref.name == "primary-patterned@sandbox.example.com"
    bare = connector(org, client, **{"sf-prov-domainName": ""})
    with pytest.raises(PermanentError, match="not shaped like an email address"):
        await bare.create_user(user("plain"))


def test_peer_tokens_expire_on_their_own() -> None:
    with salesforce_peer(token_seconds=0.2) as peer:
        form = {"grant_type": "client_credentials", "client_id": peer.properties()[
            "sf-clientid"], "client_secret": CLIENT_SECRET}
        token = httpx.post(f"{peer.origin}/services/oauth2/token", data=form).json()[
            "access_token"]
        url = f"{peer.origin}/services/data/v61.0/limits/"
        ok = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and "api-usage=" in ok.headers["Sforce-Limit-Info"]
        time.sleep(0.3)
        late = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert late.status_code == 401 and late.json()[0]["errorCode"] == "INVALID_SESSION_ID"
        assert httpx.delete(f"{peer.origin}/services/data/v61.0/sobjects/User/x",
                            headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_config_validate_points_at_each_faulty_salesforce_property(tmp_path) -> None:
    path = tmp_path / "deployment.yaml"
    path.write_text(textwrap.dedent("""\
        identity_providers:
          - name: crm
            connectors:
              - type: salesforce
                properties:
                  sf-domain-name: http://acme.my.salesforce.com
                  sf-api-version: "61"
                  sf-clientid: abc
                  sf-client-secret: ${env:SF_SECRET:-s}
                  sf-profile-id: 00e12345
        """), encoding="utf-8")
    errors = {(e.line, e.message.split(":")[0]) for e in validate_file(path)}
    assert errors == {(6, "sf-domain-name"), (7, "sf-api-version"), (10, "sf-profile-id")}


async def test_the_jwt_audience_is_the_login_host_unless_set(org, client):
    with pytest.raises(PermanentError, match="invalid_grant"):
        await connector(org, client, "jwt", **{
            "sf-jwt-audience": "https://login.salesforce.com"}).lookup_user(user("x"))
    assert await connector(org, client, "jwt", **{
        "sf-jwt-audience": org.origin}).lookup_user(user("nobody-here")) is None


async def test_the_spec_names_a_contract_peer_the_connector_works_against() -> None:
    import importlib

    module, function = str(SalesforceConnector.spec.contract_peer).split(":")
    with getattr(importlib.import_module(module), function)() as peer:
        props = peer.properties()
        async with httpx.AsyncClient(timeout=float(props["timeout-seconds"])) as http:
            c = SalesforceConnector(props, http)
            seeded = peer.seed_user("taken")
            with pytest.raises(ConflictError):
                await c.create_user(user("taken"))
            found = await c.lookup_user(user("taken"))
            assert found is not None and found.id == seeded
            await c.set_active(seeded, user("taken"), False)
            remote = peer.remote_user(seeded)
            assert remote is not None and not remote.active
            group = await c.create_group(OutboundGroup("Contract", "PRIMARY", [seeded]))
            assert peer.group_members(group.id) == {seeded}
            peer.fail_next("timeout")
            with pytest.raises(RetryableError, match="no answer in time"):
                await c.update_user(seeded, user("taken"))
            shown = json.dumps([e.as_dict() for e in c.exchanges])
            assert not [s for s in peer.secrets() if s in shown]


# ---------------------------------------------------------------- listing and queries
async def test_removing_members_asks_one_query_for_the_set(org, client):
    c = connector(org, client)
    ids = [(await c.create_user(user(f"set.member{i}"))).id for i in range(4)]
    ref = await c.create_group(OutboundGroup("Set Removal", "PRIMARY", ids))
    c.exchanges.clear()
    await c.change_members(ref.id, OutboundGroup("Set Removal", "PRIMARY"), [], ids[:3])
    assert org.group_members(ref.id) == {ids[3]}
    queries = [httpx.URL(e.url).params["q"] for e in c.exchanges if "/query/" in e.url]
    assert len(queries) == 1, queries
    assert "UserOrGroupId IN (" in queries[0] and all(i in queries[0] for i in ids[:3])
    assert [m for m in methods(c) if m.startswith("DELETE")] == [
        m for m in methods(c) if "GroupMember/" in m]
    assert len([m for m in methods(c) if m.startswith("DELETE")]) == 3


async def test_listing_pages_through_next_records_url_with_the_mapped_fields():
    sent: list[httpx.Request] = []

    async def see(request: httpx.Request) -> None:
        sent.append(request)

    with salesforce_peer(max_batch=3) as small:
        async with httpx.AsyncClient(timeout=2.0, event_hooks={"request": [see]}) as client:
            c = connector(small, client)
            made = [await c.create_user(user(f"listed{i}")) for i in range(7)]
            await c.delete_user(made[0].id, user("listed0"))
            sent.clear()
            listed = [o async for o in c.list_users(page_size=500)]
        pages = [r for r in sent if "/query" in r.url.path]
        assert len(pages) == 3  # 7 records, 3 at most per answer
        assert pages[0].url.params["q"] \
            == "SELECT Id, Username, IsActive, FirstName, LastName, Email, Alias FROM User"
        assert pages[0].headers["Sforce-Query-Options"] == "batchSize=500"
        assert [p.url.path.rsplit("-", 1)[-1] for p in pages[1:]] == ["3", "6"]
        [last] = c.exchanges  # a listing keeps its last page's exchange only
        assert last.response_body["done"] is True and last.response_body["totalSize"] == 7
        by_id = {o.id: o for o in listed}
        assert sorted(by_id) == sorted(r.id for r in made)
        assert by_id[made[1].id].name == "listed1"  # @sf-prov-domainName taken off
        assert by_id[made[1].id].attributes["LastName"] == "Lovelace"
        assert not by_id[made[0].id].active and by_id[made[1].id].active
        assert c.drift(by_id[made[1].id], user("listed1")) == []
        assert c.drift(by_id[made[1].id], user("listed1", claims=claims(
            givenname="Other", lastname="Lovelace", emailaddress="listed1@example.com"))) \
            == ["FirstName"]


async def test_listing_groups_gives_members_in_one_query_per_page(client):
    with salesforce_peer() as fresh:
        c = connector(fresh, client)
        a = (await c.create_user(user("gm.a"))).id
        b = (await c.create_user(user("gm.b"))).id
        one = await c.create_group(OutboundGroup("One", "PRIMARY", [a, b]))
        two = await c.create_group(OutboundGroup("Two", "PRIMARY", []))
        c.exchanges.clear()
        listed = {o.id: o async for o in c.list_groups()}
        assert {k: (o.name, sorted(o.members)) for k, o in listed.items()} == {
            one.id: ("One", sorted([a, b])), two.id: ("Two", [])}
        assert len([e for e in c.exchanges if "/query" in e.url]) == 2


@pytest.mark.parametrize(("soql", "code"), [
    ("SELECT Id FROM User ORDER BY Username", "MALFORMED_QUERY"),
    ("SELECT Id, Shoe FROM User", "INVALID_FIELD"),
    ("SELECT Id FROM User WHERE Shoe = 'x'", "INVALID_FIELD"),
    ("SELECT Id FROM User WHERE Username LIKE 'a%'", "MALFORMED_QUERY"),
    ("DELETE FROM User", "MALFORMED_QUERY"),
])
async def test_the_peer_refuses_soql_it_does_not_support_as_salesforce_does(
        org, client, soql, code):
    c = connector(org, client)
    with pytest.raises(PermanentError, match=code) as refused:
        await c._query(soql, "a query")
    assert refused.value.status == 400
    answer = c.exchanges[-1].response_body
    assert answer[0]["errorCode"] == code and answer[0]["message"]


async def test_a_stale_query_locator_is_refused(org, client):
    c = connector(org, client)
    with pytest.raises(PermanentError, match="INVALID_QUERY_LOCATOR"):
        await c._call("GET", f"{c.base}/query/01gNOPE-2", "read more")
