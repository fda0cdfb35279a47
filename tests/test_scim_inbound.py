"""The inbound SCIM 2.0 server over HTTP: conformance, attribution, isolation, limits,
errors, and the request styles of Microsoft Entra and Okta."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from core.apps import Application
from core.claims import LOCAL_DIALECT
from core.errors import InvalidInput
from core.iam import Iam
from core.identity.events import Initiator
from core.inbound import Limits
from core.inbound.tokencache import TOKEN_CACHE_SECONDS
from core.schema import prov_jobs, um_users
from core.userstores.query_guard import Cancelled, guarded
from core.userstores.sql import SqlUserStore
from tests.processes import wait_until
from tests.provisioning_helpers import connect, drain, peer_users
from tests.scim_api import (
    ENTERPRISE,
    ERROR,
    GROUP,
    PATCH,
    USER,
    ScimApi,
    application,
    new_user,
    patch,
    served,
)


@pytest.fixture
def api(sqlite_iam: Iam) -> Iterator[ScimApi]:
    with served(sqlite_iam) as served_api:
        yield served_api


@pytest.fixture
def hr(api: ScimApi) -> Iterator[httpx.Client]:
    with api.client(application(api.iam, "hr")) as client:
        yield client


def error_of(response: httpx.Response, status: int, scim_type: str | None = None) -> str:
    """The detail of a SCIM error response, after checking its status and scimType."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    assert body.get("scimType") == scim_type
    return str(body["detail"])


# ---------------------------------------------------------------- conformance
def test_the_scim2_tester_suite_finds_no_error(sqlite_iam: Iam) -> None:
    with served(sqlite_iam, Limits(rate=0)) as api:  # the suite outpaces any rate limit
        conformance(api)


def conformance(api: ScimApi) -> None:
    """Every check of scim2-tester (scim2-cli's ``scim --url URL test``), in-process."""
    import httpx2
    from scim2_client.engines.httpx2 import SyncSCIMClient
    from scim2_tester import Status, check_server

    token = application(api.iam, "conformance")
    client = SyncSCIMClient(httpx2.Client(base_url=api.base,
                                          headers={"Authorization": f"Bearer {token}"}))
    client.discover()
    results = check_server(client)
    failed = [f"{r.title}: {r.reason}" for r in results
              if r.status in (Status.ERROR, Status.CRITICAL)]
    assert failed == []
    checked = {r.title for r in results if r.status is Status.SUCCESS}
    # Every CRUD and PATCH check ran, for Users and for Groups.
    assert {"object_creation", "object_replacement", "object_deletion",
            "check_add_attribute", "check_replace_attribute",
            "check_remove_attribute"} <= checked
    assert api.iam.identity.count_users("PRIMARY") == 0  # the suite cleaned up after itself


def test_discovery_publishes_only_what_is_stored(hr: httpx.Client) -> None:
    schemas = {s["id"]: s for s in hr.get("/Schemas").json()["Resources"]}
    user = {a["name"]: a for a in schemas[USER]["attributes"]}
    assert "x509Certificates" not in user and "ims" not in user
    assert user["userName"]["mutability"] == "immutable"
    emails = {s["name"]: s for s in user["emails"]["subAttributes"]}
    assert set(emails) == {"value", "type"} and emails["type"]["canonicalValues"] == ["work"]
    config = hr.get("/ServiceProviderConfig").json()
    assert config["filter"] == {"supported": True, "maxResults": 200}
    assert config["etag"]["supported"] and config["sort"]["supported"]
    types = {t["name"] for t in hr.get("/ResourceTypes").json()["Resources"]}
    assert types == {"User", "Group"}


# ---------------------------------------------------------------- attribution
def test_writes_are_attributed_to_the_application_and_provisioned_with_its_targets(
        sqlite_iam: Iam, api: ScimApi, scim_peer: str) -> None:
    token = application(sqlite_iam, "hr")
    connect(sqlite_iam, scim_peer, idp="partner", app="hr")
    with api.client(token) as client:
        created = new_user(client, "carol", name={"givenName": "Carol"},
                           emails=[{"value": "carol@example.com", "type": "work"}])
    [entry] = [e for e in sqlite_iam.audit_log() if e.action == "user.add"]
    assert (entry.actor, entry.face, entry.application) == ("app:hr", "scim", "hr")
    [job] = sqlite_iam.provisioning.jobs()
    assert job.target == "partner:scim2" and job.entity_id == created["id"]
    assert drain(sqlite_iam) == 1
    [remote] = peer_users(scim_peer, "carol")
    assert remote["emails"][0]["value"] == "carol@example.com"
    # The resident application provisions nowhere: a console write makes no job.
    sqlite_iam.identity.add_user(Initiator.admin(), "dave")
    assert len(sqlite_iam.provisioning.jobs()) == 1


def test_an_application_sees_and_touches_only_its_own_domain(
        sqlite_iam: Iam, api: ScimApi, tmp_path: Any) -> None:
    sqlite_iam.save_userstore(Initiator.admin(), "CRM", "sql",
                              {"url": f"sqlite:///{tmp_path}/crm.db"})
    with api.client(application(sqlite_iam, "hr")) as hr, \
            api.client(application(sqlite_iam, "crm", domain="CRM")) as crm:
        alice = new_user(hr, "alice")
        group = hr.post("/Groups", json={"schemas": [GROUP], "displayName": "staff",
                                          "members": [{"value": alice["id"]}]}).json()
        mine = new_user(crm, "alice")  # the same name in another domain is another user
        assert mine["id"] != alice["id"]
        assert sqlite_iam.identity.get_user("CRM/alice").id == mine["id"]
        for path in (f"/Users/{alice['id']}", f"/Groups/{group['id']}"):
            assert crm.get(path).status_code == 404
            assert crm.delete(path).status_code == 404
            assert patch(crm, path, {"op": "replace", "path": "displayName",
                                     "value": "x"}).status_code == 404
        listing = crm.get("/Users", params={"filter": 'userName eq "alice"'}).json()
        assert [r["id"] for r in listing["Resources"]] == [mine["id"]]
        assert crm.get("/Groups").json()["totalResults"] == 0
        # A CRM user cannot join a PRIMARY group through the PRIMARY application either.
        response = patch(hr, f"/Groups/{group['id']}",
                         {"op": "add", "path": "members", "value": [{"value": mine["id"]}]})
        assert "not found" in error_of(response, 404)
    assert sqlite_iam.identity.get_user("PRIMARY/alice").id == alice["id"]


def test_two_applications_never_share_a_relay(sqlite_iam: Iam) -> None:
    """Names that fold to one relay domain (case, punctuation) cannot both be proxies:
    each would see the other's relayed users."""
    admin = Initiator.admin()
    sqlite_iam.save_app(admin, Application(name="Shop", proxy_mode=True))
    for other in ("shop", "SHOP"):
        with pytest.raises(InvalidInput, match=r"PROXY\.SHOP, which application 'Shop'"):
            sqlite_iam.save_app(admin, Application(name=other, proxy_mode=True))
        assert other not in sqlite_iam.app_names()  # nothing half-written
    sqlite_iam.save_app(admin, Application(name="shop"))  # not a proxy: nothing shared
    sqlite_iam.save_app(admin, Application(name="Shop", proxy_mode=True))  # itself again
    with pytest.raises(InvalidInput, match="relays under"):
        sqlite_iam.save_app(admin, Application(name="shop", proxy_mode=True))


def test_proxy_mode_relays_to_the_targets_and_keeps_no_account(
        sqlite_iam: Iam, api: ScimApi, scim_peer: str) -> None:
    token = application(sqlite_iam, "relay", proxy=True)
    connect(sqlite_iam, scim_peer, idp="partner", app="relay",
            **{"scim2-enable-pwd-provisioning": True})
    with api.client(token) as relay:
        created = new_user(relay, "olga", password="Secret-pass-1", title="Pilot")
        assert relay.post("/Users", json={"schemas": [USER], "userName": "olga"}
                          ).status_code == 409  # a duplicate is refused (reference #7578)
        assert drain(sqlite_iam) == 1
        [remote] = peer_users(scim_peer, "olga")
        assert remote["title"] == "Pilot"
        # The id is stable: it addresses the same remote object on every later change.
        assert patch(relay, f"/Users/{created['id']}",
                     {"op": "replace", "path": "title", "value": "Captain"}).status_code == 204
        assert drain(sqlite_iam) == 1
        [again] = peer_users(scim_peer, "olga")
        assert (again["id"], again["title"]) == (remote["id"], "Captain")
        assert relay.get(f"/Users/{created['id']}").json()["title"] == "Captain"
        assert relay.delete(f"/Users/{created['id']}").status_code == 204
        assert drain(sqlite_iam) == 1
    assert peer_users(scim_peer, "olga") == []
    # No userstore holds the user, no domain lists it, and no password was kept anywhere.
    assert sqlite_iam.identity.count_users() == 0
    assert all(not d.startswith("PROXY") for d in sqlite_iam.stores.domains)
    with sqlite_iam.db.engine.connect() as conn:
        assert conn.execute(select(um_users.c.password_hash).where(
            um_users.c.password_hash.is_not(None))).all() == []
        assert all("password" not in p for p in conn.execute(
            select(prov_jobs.c.payload)).scalars())


def test_authentication(api: ScimApi) -> None:
    token = application(api.iam, "hr")
    with api.client(None) as anonymous:
        response = anonymous.get("/Users")
        error_of(response, 401)
        assert "Bearer" in response.headers["WWW-Authenticate"]
        assert anonymous.get("/ServiceProviderConfig").status_code == 200
        assert anonymous.get("/Users", headers={"Authorization": "Bearer mwi_nope"}
                             ).status_code == 401
        basic = base64.b64encode(f"hr:{token}".encode()).decode()
        assert anonymous.get("/Users", headers={"Authorization": f"Basic {basic}"}
                             ).status_code == 200
        wrong = base64.b64encode(f"crm:{token}".encode()).decode()
        assert anonymous.get("/Users", headers={"Authorization": f"Basic {wrong}"}
                             ).status_code == 401
        assert anonymous.get("/Users", headers={"Authorization": "Basic !!"}
                             ).status_code == 401
        api.iam.revoke_token(Initiator.admin(), "hr", token[-4:])
        # A successful check is remembered for a few seconds (core/inbound/tokencache.py).
        wait_until(lambda: anonymous.get("/Users", headers={
            "Authorization": f"Bearer {token}"}).status_code == 401,
            TOKEN_CACHE_SECONDS + 2, "the revoked token to be refused")


# ---------------------------------------------------------------- protocol
def test_filters_paging_and_sorting(hr: httpx.Client) -> None:
    for i, (name, dept) in enumerate([("ann", "ops"), ("bob", "dev"), ("cid", "dev"),
                                      ("dee", "ops"), ("eve", "dev")]):
        new_user(hr, name, title=f"t{i}", active=i != 3,
                 emails=[{"value": f"{name}@example.com", "type": "work"}],
                 **{ENTERPRISE: {"department": dept}}, schemas=[USER, ENTERPRISE])

    def names(**params: str) -> list[str]:
        body = hr.get("/Users", params=params).json()
        return [r["userName"] for r in body.get("Resources", [])]

    assert names(filter='userName eq "bob"') == ["bob"]
    assert names(filter='emails.value eq "cid@example.com"') == ["cid"]
    assert names(filter='emails[type eq "work" and value ew "ve@example.com"]') == ["eve"]
    assert names(filter=f'{ENTERPRISE}:department eq "ops"', sortBy="userName") == \
        ["ann", "dee"]
    assert names(filter='active eq false') == ["dee"]
    assert names(filter='not (active eq false) and title pr', sortBy="title",
                 sortOrder="descending") == ["eve", "cid", "bob", "ann"]
    assert names(filter='userName sw "c" or userName co "v"', sortBy="userName") == \
        ["cid", "eve"]
    assert names(filter='phoneNumbers.value pr') == []  # nobody has one
    assert names(filter='title gt "t2"', sortBy="title") == ["dee", "eve"]
    page = hr.get("/Users", params={"sortBy": "userName", "startIndex": "2", "count": "2"}
                  ).json()
    assert page["totalResults"] == 5 and page["startIndex"] == 2
    assert [r["userName"] for r in page["Resources"]] == ["bob", "cid"]
    searched = hr.post("/Users/.search", json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": 'userName eq "ann"', "attributes": ["userName"]}).json()
    assert searched["Resources"] == [{"schemas": [USER], "id": searched["Resources"][0]["id"],
                                      "userName": "ann"}]
    created = hr.get("/Users", params={"filter": 'userName eq "ann"'}).json()["Resources"][0]
    since = created["meta"]["lastModified"]
    assert "ann" not in names(filter=f'meta.lastModified gt "{since}"')
    assert len(names(filter=f'meta.lastModified ge "{since}"')) == 5
    error_of(hr.get("/Users", params={"filter": 'userName eq'}), 400, "invalidFilter")


def test_groups_members_and_externalid(hr: httpx.Client) -> None:
    ann, bob = new_user(hr, "ann"), new_user(hr, "bob")
    group = hr.post("/Groups", json={"schemas": [GROUP], "displayName": "eng",
                                      "externalId": "ext-eng",
                                      "members": [{"value": ann["id"]}]}).json()
    assert group["externalId"] == "ext-eng"
    assert [m["value"] for m in group["members"]] == [ann["id"]]
    # Entra: add and remove members by PATCH, remove with a value filter
    response = patch(hr, f"/Groups/{group['id']}",
                     {"op": "Add", "path": "members", "value": [{"value": bob["id"]}]},
                     {"op": "Remove", "path": f'members[value eq "{ann["id"]}"]'})
    assert response.status_code == 204, response.text
    current = hr.get(f"/Groups/{group['id']}").json()
    assert [m["value"] for m in current["members"]] == [bob["id"]]
    assert [g["display"] for g in hr.get(f"/Users/{bob['id']}").json()["groups"]] == ["eng"]
    # references are published as URLs of this server, in a read and in a search
    base = str(hr.base_url).rstrip("/")
    assert [m["$ref"] for m in current["members"]] == [f"{base}/Users/{bob['id']}"]
    listed = hr.get("/Users", params={"filter": 'userName eq "bob"'}).json()["Resources"]
    assert [g["$ref"] for g in listed[0]["groups"]] == [f"{base}/Groups/{group['id']}"]
    assert "groups" not in hr.get(f"/Users/{ann['id']}").json()
    found = hr.get("/Groups", params={"filter": 'externalId eq "ext-eng"',
                                      "excludedAttributes": "members"}).json()
    assert [g["id"] for g in found["Resources"]] == [group["id"]]
    assert "members" not in found["Resources"][0]
    by_member = hr.get("/Groups", params={"filter": f'members[value eq "{bob["id"]}"]'})
    assert by_member.json()["totalResults"] == 1
    renamed = patch(hr, f"/Groups/{group['id']}",
                    {"op": "replace", "value": {"displayName": "engineering"}})
    assert renamed.status_code == 204
    assert hr.get(f"/Groups/{group['id']}").json()["displayName"] == "engineering"
    assert hr.delete(f"/Groups/{group['id']}").status_code == 204
    assert hr.get("/Groups", params={"filter": 'externalId eq "ext-eng"'}
                  ).json()["totalResults"] == 0


def test_a_search_at_the_root_pages_users_then_groups(hr: httpx.Client) -> None:
    for name in ("ann", "bob"):
        new_user(hr, name)
    hr.post("/Groups", json={"schemas": [GROUP], "displayName": "eng"})
    request = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
               "startIndex": 2, "count": 2}
    body = hr.post("/.search", json=request).json()
    assert body["totalResults"] == 3
    assert [r.get("userName", r.get("displayName")) for r in body["Resources"]] == \
        ["bob", "eng"]
    only_groups = hr.post("/.search", json={**request, "startIndex": 1,
                                             "filter": 'displayName eq "eng"'}).json()
    assert only_groups["totalResults"] == 1


def test_entra_request_style(hr: httpx.Client) -> None:
    """Microsoft Entra: capitalised ops, booleans as strings, value-path filters."""
    user = new_user(hr, "frank@contoso.com", active=True, externalId="e-1",
                    name={"givenName": "Frank", "familyName": "F"})
    response = patch(hr, f"/Users/{user['id']}",
                     {"op": "Replace", "path": "active", "value": "False"},
                     {"op": "Add", "path": 'emails[type eq "work"].value',
                      "value": "frank@contoso.com"},
                     {"op": "Replace", "path": "name.familyName", "value": "Fisher"})
    assert response.status_code == 204, response.text
    got = hr.get(f"/Users/{user['id']}").json()
    assert got["active"] is False and got["name"]["familyName"] == "Fisher"
    assert got["emails"] == [{"value": "frank@contoso.com", "type": "work"}]
    assert hr.get("/Users", params={"filter": 'externalId eq "e-1"'}).json()[
        "totalResults"] == 1
    removed = patch(hr, f"/Users/{user['id']}",
                    {"op": "Remove", "path": 'emails[type eq "work"].value'})
    assert removed.status_code == 204
    assert "emails" not in hr.get(f"/Users/{user['id']}").json()


#: Microsoft Entra's default attribute mappings for a SCIM application, as it sends them.
ENTRA_USER = {
    "schemas": [USER, ENTERPRISE], "userName": "olga@contoso.com", "active": True,
    "displayName": "Olga O", "title": "Engineer", "preferredLanguage": "en-US",
    "emails": [{"type": "work", "value": "olga@contoso.com", "primary": True}],
    "name": {"givenName": "Olga", "familyName": "O", "formatted": "Olga O"},
    "addresses": [{"type": "work", "formatted": "1 Main St, Springfield",
                   "streetAddress": "1 Main St", "locality": "Springfield", "region": "IL",
                   "postalCode": "62701", "country": "US", "primary": False}],
    "phoneNumbers": [{"type": "work", "value": "+1 555 0100", "primary": True},
                     {"type": "mobile", "value": "+1 555 0101"},
                     {"type": "fax", "value": "+1 555 0102"}],
    "externalId": "olga-1",
    ENTERPRISE: {"employeeNumber": "701", "department": "R&D", "costCenter": "CC-7",
                 "division": "Labs", "organization": "Contoso",
                 "manager": {"value": "mgr-1"}},
}


def test_entra_default_mappings_are_accepted_and_unstored_ones_ignored(
        sqlite_iam: Iam, hr: httpx.Client) -> None:
    created = hr.post("/Users", json=ENTRA_USER)
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["name"] == {"givenName": "Olga", "familyName": "O"}  # formatted: not stored
    assert user["addresses"] == [{"type": "work", "locality": "Springfield", "country": "US"}]
    assert {p["type"]: p["value"] for p in user["phoneNumbers"]} == {
        "work": "+1 555 0100", "mobile": "+1 555 0101"}
    assert user[ENTERPRISE]["manager"] == {"value": "mgr-1"}
    claims = sqlite_iam.identity.get_user("olga@contoso.com").claims
    assert claims[f"{LOCAL_DIALECT}/department"] == "R&D"
    assert claims[f"{LOCAL_DIALECT}/emailaddress"] == "olga@contoso.com"
    # Entra's PATCH: capitalised ops, unstored paths, path-less values with dotted keys,
    # booleans as strings, a manager given as its id.
    response = patch(hr, f"/Users/{user['id']}",
                     {"op": "Replace", "path": "name.formatted", "value": "Olga Orr"},
                     {"op": "Replace", "path": 'addresses[type eq "work"].streetAddress',
                      "value": "2 Main St"},
                     {"op": "Add", "path": 'emails[type eq "work"].primary', "value": True},
                     {"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": "mgr-2"},
                     {"op": "Replace", "value": {"name.familyName": "Orr",
                                                 "name.formatted": "Olga Orr",
                                                 "active": "False",
                                                 f"{ENTERPRISE}:department": "Ops"}})
    assert response.status_code == 204, response.text
    got = hr.get(f"/Users/{user['id']}").json()
    assert got["name"] == {"givenName": "Olga", "familyName": "Orr"} and got["active"] is False
    assert got[ENTERPRISE]["department"] == "Ops"
    assert got[ENTERPRISE]["manager"] == {"value": "mgr-2"}
    only_unstored = patch(hr, f"/Users/{user['id']}",
                          {"op": "Replace", "path": "name.formatted", "value": "x"})
    assert only_unstored.status_code in (200, 204), only_unstored.text
    assert hr.get(f"/Users/{user['id']}").json()["meta"]["version"] == got["meta"]["version"]
    # PUT of the same body (an unstored attribute among them) replaces the user.
    put = hr.put(f"/Users/{user['id']}", json={**ENTRA_USER, "id": user["id"],
                                               "title": "Lead"})
    assert put.status_code == 200, put.text and put.json()["title"] == "Lead"
    # A name no standard schema defines is still refused, and nothing is written.
    unknown = hr.post("/Users", json={"schemas": [USER], "userName": "pia",
                                      "shoeSize": 42})
    assert "shoeSize" in error_of(unknown, 400, "invalidSyntax")
    # /Schemas still publishes only what is stored.
    schemas = {s["id"]: s for s in hr.get("/Schemas").json()["Resources"]}
    name = {a["name"]: a for a in schemas[USER]["attributes"]}["name"]
    assert {s["name"] for s in name["subAttributes"]} == {"givenName", "familyName"}


@pytest.mark.parametrize("sent", [
    {"emails": [{"type": "work", "value": "wes@example.com"}], "active": True},  # as stored
    {"emails": [{"type": "work", "value": "wes@example.com"},  # one work email is kept
                {"type": "work", "value": "wes2@example.com"}]},
], ids=["stored-as-sent", "stored-otherwise"])
def test_writes_answer_what_a_read_then_finds(hr: httpx.Client,
                                              sent: dict[str, object]) -> None:
    """A POST's and a PATCH's answers are the user as stored, whether the resource sent
    is kept as it is (answered from it) or not (of two work emails the store keeps one):
    body, ETag and version all as a GET finds them right after."""
    created = hr.post("/Users", json={"schemas": [USER], "userName": "wes",
                                      "name": {"givenName": "Wes"}, **sent})
    assert created.status_code == 201, created.text
    location = f"/Users/{created.json()['id']}"
    read = hr.get(location)
    assert created.json() == read.json()
    assert created.headers["ETag"] == read.headers["ETag"]
    changed = patch(hr, location, {"op": "replace", "path": "name.familyName", "value": "W"},
                    {"op": "add", "path": "emails", "value": [
                        {"type": "work", "value": "wes3@example.com"}]})
    assert changed.status_code == 204, changed.text
    read = hr.get(location)
    assert read.json()["name"] == {"givenName": "Wes", "familyName": "W"}
    assert read.json()["emails"] == [{"type": "work", "value": "wes@example.com"}]
    assert changed.headers["ETag"] == read.headers["ETag"] == read.json()["meta"]["version"]
    shown = hr.patch(location, params={"attributes": "name,emails"}, json={
        "schemas": [PATCH], "Operations": [{"op": "replace", "path": "active",
                                             "value": False}]})
    assert shown.status_code == 200, shown.text
    assert shown.json() == hr.get(location, params={"attributes": "name,emails"}).json()


def test_okta_default_profile_and_a_typeless_primary_email(sqlite_iam: Iam,
                                                           hr: httpx.Client) -> None:
    created = hr.post("/Users", json={
        "schemas": [USER], "userName": "quinn@okta.example", "locale": "en-US",
        "name": {"givenName": "Quinn", "familyName": "Q"}, "displayName": "Quinn Q",
        "emails": [{"primary": True, "value": "quinn@okta.example"}],
        "active": True, "externalId": "00u1", "password": "Okta-Passw0rd!",
        "groups": []})
    assert created.status_code == 201, created.text
    assert created.json()["emails"] == [{"type": "work", "value": "quinn@okta.example"}]
    assert sqlite_iam.identity.get_user("quinn@okta.example").claims[
        f"{LOCAL_DIALECT}/emailaddress"] == "quinn@okta.example"
    # Bulk operations are read the same way.
    bulk = hr.post("/Bulk", json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "r",
             "data": {**ENTRA_USER, "userName": "rae@contoso.com"}},
            {"method": "PATCH", "path": f"/Users/{created.json()['id']}",
             "data": {"schemas": [PATCH], "Operations": [
                 {"op": "replace", "path": "name.formatted", "value": "Q Q"},
                 {"op": "replace", "path": "displayName", "value": "QQ"}]}}]})
    assert [op["status"] for op in bulk.json()["Operations"]] == ["201", "200"], bulk.text
    assert sqlite_iam.identity.get_user("quinn@okta.example").claims[
        f"{LOCAL_DIALECT}/displayname"] == "QQ"


def test_okta_request_style(hr: httpx.Client) -> None:
    """Okta: PUT replaces the whole user; PATCH toggles active with a path-less value."""
    user = new_user(hr, "gina", active=True, title="Engineer",
                    name={"givenName": "Gina", "familyName": "G"})
    put = hr.put(f"/Users/{user['id']}", json={
        "schemas": [USER], "id": user["id"], "userName": "gina", "active": True,
        "name": {"givenName": "Gina", "familyName": "Gray"}})
    assert put.status_code == 200, put.text
    assert put.json()["name"]["familyName"] == "Gray" and "title" not in put.json()
    toggled = patch(hr, f"/Users/{user['id']}", {"op": "replace", "value": {"active": False}})
    assert toggled.status_code == 204
    assert hr.get(f"/Users/{user['id']}").json()["active"] is False
    assert hr.delete(f"/Users/{user['id']}").status_code == 204
    assert hr.get(f"/Users/{user['id']}").status_code == 404


def test_a_patch_leaves_values_the_schema_cannot_show_alone(sqlite_iam: Iam,
                                                            hr: httpx.Client) -> None:
    sqlite_iam.identity.add_user(Initiator.admin(), "lena", None,
                                 {"profileurl": "not a url", "title": "Chief"})
    [lena] = hr.get("/Users", params={"filter": 'userName eq "lena"'}).json()["Resources"]
    assert "profileUrl" not in lena and lena["title"] == "Chief"
    assert patch(hr, f"/Users/{lena['id']}", {"op": "replace", "path": "title",
                                              "value": "CEO"}).status_code == 204
    claims = sqlite_iam.identity.get_user("lena").claims
    assert claims[f"{LOCAL_DIALECT}/profileurl"] == "not a url"
    assert claims[f"{LOCAL_DIALECT}/title"] == "CEO"


def test_etags(hr: httpx.Client) -> None:
    user = new_user(hr, "hank")
    got = hr.get(f"/Users/{user['id']}")
    etag = got.headers["ETag"]
    assert hr.get(f"/Users/{user['id']}", headers={"If-None-Match": etag}
                  ).status_code == 304
    changed = patch(hr, f"/Users/{user['id']}", {"op": "add", "path": "title",
                                                  "value": "x"}, **{"If-Match": etag})
    assert changed.status_code == 204 and changed.headers["ETag"] != etag
    stale = patch(hr, f"/Users/{user['id']}", {"op": "add", "path": "title", "value": "y"},
                  **{"If-Match": etag})
    error_of(stale, 412)
    assert hr.get(f"/Users/{user['id']}").json()["title"] == "x"


def test_concurrent_patches_without_if_match_all_apply(api: ScimApi) -> None:
    token = application(api.iam, "busy")
    with api.client(token) as client:
        user = new_user(client, "mia")
    attributes = ["title", "nickName", "displayName", "locale", "timezone", "userType"]

    def write(attribute: str) -> list[int]:
        with api.client(token) as own:
            return [patch(own, f"/Users/{user['id']}", {
                "op": "replace", "path": attribute, "value": f"{attribute}-{i}"}).status_code
                for i in range(4)]

    with ThreadPoolExecutor(len(attributes)) as pool:
        statuses = [s for codes in pool.map(write, attributes) for s in codes]
    assert set(statuses) == {204}
    with api.client(token) as client:
        final = client.get(f"/Users/{user['id']}").json()
    assert {a: final[a] for a in attributes} == {a: f"{a}-3" for a in attributes}


def test_bulk_with_bulk_id_references_and_fail_on_errors(hr: httpx.Client) -> None:
    bulk = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
    response = hr.post("/Bulk", json={"schemas": [bulk], "failOnErrors": 1, "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "u1",
         "data": {"schemas": [USER], "userName": "ivy"}},
        {"method": "POST", "path": "/Groups", "bulkId": "g1",
         "data": {"schemas": [GROUP], "displayName": "ivies",
                  "members": [{"type": "User", "value": "bulkId:u1"}]}},
        {"method": "POST", "path": "/Users", "bulkId": "u2",
         "data": {"schemas": [USER], "userName": "ivy"}},
        {"method": "POST", "path": "/Users", "bulkId": "u3",
         "data": {"schemas": [USER], "userName": "jan"}},
    ]})
    assert response.status_code == 200, response.text
    statuses = [op["status"] for op in response.json()["Operations"]]
    assert statuses == ["201", "201", "409"], response.text  # stopped after the first error
    group = hr.get("/Groups", params={"filter": 'displayName eq "ivies"'}).json()
    [ivy] = hr.get("/Users", params={"filter": 'userName eq "ivy"'}).json()["Resources"]
    assert group["Resources"][0]["members"][0]["value"] == ivy["id"]
    assert hr.get("/Users", params={"filter": 'userName eq "jan"'}).json()[
        "totalResults"] == 0


# ---------------------------------------------------------------- bad input
def test_client_mistakes_get_scim_errors_naming_the_problem(hr: httpx.Client) -> None:
    new_user(hr, "kim")
    assert "already exists" in error_of(
        hr.post("/Users", json={"schemas": [USER], "userName": "kim"}), 409, "uniqueness")
    assert "Username must be" in error_of(
        hr.post("/Users", json={"schemas": [USER], "userName": "k"}), 400, "invalidValue")
    assert "Password must be" in error_of(
        hr.post("/Users", json={"schemas": [USER], "userName": "kay", "password": "short"}),
        400, "invalidValue")
    error_of(hr.post("/Users", content=b"{not json", headers={
        "Content-Type": "application/scim+json"}), 400, "invalidSyntax")
    error_of(hr.post("/Users", json={"schemas": [USER]}), 400, "invalidValue")
    [kim] = hr.get("/Users", params={"filter": 'userName eq "kim"'}).json()["Resources"]
    assert "immutable" in error_of(
        patch(hr, f"/Users/{kim['id']}", {"op": "replace", "path": "userName",
                                          "value": "kimberly"}), 400, "mutability")
    error_of(hr.get("/Users/not-an-id"), 404)
    error_of(hr.get("/Nothing"), 404)
    error_of(hr.get("/Users", params={"sortBy": "x509Certificates"}), 400, "invalidPath")
    assert hr.get("/Users", params={"count": "100000"}).json()["itemsPerPage"] <= 200
    assert kim["userName"] == "kim"


def test_the_body_size_and_the_request_rate_are_bounded(sqlite_iam: Iam) -> None:
    limits = Limits(max_payload_bytes=2_000, rate=2.0, burst=3)
    with served(sqlite_iam, limits) as api, api.client(application(sqlite_iam, "hr")) as hr:
        big = {"schemas": [USER], "userName": "big", "title": "x" * 3_000}
        assert "exceeds" in error_of(hr.post("/Users", json=big), 413)
        responses = [hr.get("/Users") for _ in range(6)]
        limited = [r for r in responses if r.status_code == 429]
        assert limited, [r.status_code for r in responses]
        retry_after = int(limited[0].headers["Retry-After"])
        assert retry_after >= 1
        assert f"rate limit reached: retry in {retry_after} s" == error_of(limited[0], 429)
    assert sqlite_iam.identity.count_users("PRIMARY") == 0


def test_a_store_that_is_down_answers_503(sqlite_iam: Iam, tmp_path: Any) -> None:
    (tmp_path / "gone").mkdir()
    sqlite_iam.save_userstore(Initiator.admin(), "GONE", "sql",
                              {"url": f"sqlite:///{tmp_path}/gone/x.db", "read_only": True})
    with served(sqlite_iam) as api, \
            api.client(application(sqlite_iam, "lost", domain="GONE")) as lost:
        response = lost.get("/Users", params={"filter": 'userName eq "a"'})
        detail = error_of(response, 503)
        assert "GONE" in detail and "retry" in detail
        assert str(tmp_path) not in detail and "x.db" not in detail  # no internals


def test_filters_beyond_the_limits_are_refused_before_they_reach_the_store(
        hr: httpx.Client) -> None:
    search = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"

    def searched(scim_filter: str) -> httpx.Response:
        return hr.post("/Users/.search", json={"schemas": [search], "filter": scim_filter})

    limits = Limits()
    many = " or ".join(f'userName eq "u{i}"' for i in range(limits.max_filter_terms + 1))
    assert f"more than {limits.max_filter_terms} comparisons" in error_of(
        searched(many), 400, "invalidFilter")
    deep = "not (" * limits.max_filter_depth + 'userName eq "a"' + ")" * \
        limits.max_filter_depth
    assert f"deeper than {limits.max_filter_depth}" in error_of(
        searched(deep), 400, "invalidFilter")
    huge = " or ".join(f'userName eq "u{i}"' for i in range(20_000))  # 469 KB
    assert f"at most {limits.max_filter_length}" in error_of(
        searched(huge), 400, "invalidFilter")
    at_limit = " or ".join(f'userName eq "u{i}"' for i in range(limits.max_filter_terms))
    assert searched(at_limit).json()["totalResults"] == 0


def test_a_search_whose_client_has_gone_is_cancelled(
        sqlite_iam: Iam, api: ScimApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's search runs a statement that would take minutes; the client gives up
    after half a second, and the statement stops."""
    outcome: list[BaseException | None] = []

    def endless(self: SqlUserStore, conn: Any, *args: Any) -> tuple[int, list[Any]]:
        try:
            with guarded(conn, 120) as options:
                conn.execute(text(
                    "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c "
                    "WHERE n < 2000000000) SELECT count(*) FROM c"),
                    execution_options=options).scalar()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)
            raise
        return 0, []

    monkeypatch.setattr(SqlUserStore, "_search", endless)
    with api.client(application(sqlite_iam, "hr")) as client, pytest.raises(httpx.ReadTimeout):
        client.get("/Users", params={"filter": 'userName eq "x"'}, timeout=0.5)
    wait_until(lambda: outcome, 5, "the search to stop")
    assert isinstance(outcome[0], Cancelled)


def test_client_mistakes_in_searches_and_names_are_400s_on_every_backend(iam: Iam) -> None:
    """Each of these answered 500 (or, NUL on SQLite, matched every user)."""
    with served(iam) as api, api.client(application(iam, "hr")) as hr:
        new_user(hr, "ÜBERuser", title="Ärztin")
        new_user(hr, "plain")

        def found(scim_filter: str, **params: str) -> list[str]:
            response = hr.post("/Users/.search", json={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": scim_filter, **params})
            assert response.status_code == 200, response.text
            return sorted(u["userName"] for u in response.json().get("Resources", []))

        assert found('meta.created gt "2024-01-01"') == ["plain", "ÜBERuser"]  # read as UTC
        assert found('meta.created lt "2024-01-01T00:00:00"') == []
        assert "9999" in error_of(hr.get("/Users", params={
            "filter": 'meta.created gt "9999-12-31T23:00:00-05:00"'}), 400, "invalidFilter")
        assert "NUL" in error_of(hr.get("/Users", params={
            "filter": 'userName eq "plain\\u0000x"'}), 400, "invalidFilter")
        paged = hr.get("/Users", params={"startIndex": "10000000000000000000"})
        assert paged.status_code == 200, paged.text
        assert paged.json()["totalResults"] == 2 and not paged.json().get("Resources")
        assert "NUL" in error_of(hr.post("/Users", json={
            "schemas": [USER], "userName": "nul\u0000name"}), 400, "invalidValue")
        assert "NUL" in error_of(hr.post("/Users", json={
            "schemas": [USER], "userName": "nully", "title": "a\u0000b"}), 400,
            "invalidValue")
        nul_id = hr.get("/Users/a\u0000b".replace("\u0000", "%00"))  # the HTTP guard's 400
        assert nul_id.status_code == 400 and "control character" in nul_id.text
        assert iam.identity.count_users("PRIMARY") == 2  # nothing half-written
        # Case-insensitive matching folds beyond ASCII, on names and attributes alike.
        assert found('userName co "ü"') == ["ÜBERuser"]
        assert found('userName ew "ERUSER"') == ["ÜBERuser"]
        assert found('title co "ä"') == ["ÜBERuser"]
