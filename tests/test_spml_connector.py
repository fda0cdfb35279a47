"""The SPML 2.0 connector against the sandbox provider (real HTTP on loopback).

Every message the connector sends is validated against the OASIS schemas here (and the
sandbox refuses any that is not valid, so every other test checks it too); every answer
the sandbox gives is validated the same way. Hostile answers are scripted on the sandbox.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from connectors.base import (
    ConflictError,
    ConnectorError,
    OutboundUser,
    PermanentError,
    RemoteNotFound,
    RetryableError,
)
from connectors.sandbox.contract import Fault
from connectors.sandbox.spml import (
    Reply,
    SpmlSandbox,
    contract_peer,
    schema_errors,
    spml_sandbox,
)
from connectors.spml import SPEC, SpmlConnector
from connectors.spml_xml import (
    DSML_NS,
    SEARCH_NS,
    SOAP_CONTENT_TYPE,
    SPML_NS,
    SUSPEND_NS,
    body_of,
    envelope,
    parse,
    q,
)
from connectors.wire import MASK
from core.properties import validate

PASSWORD = "Pa55-word-of-alice"
ALICE = OutboundUser("alice", "PRIMARY", attributes={"givenName": "Alice", "mail": "a@x.org"},
                     password=PASSWORD)


@pytest.fixture
def sandbox() -> Iterator[SpmlSandbox]:
    with contract_peer() as peer:
        yield peer


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=1.0) as c:
        yield c


def connector(sandbox: SpmlSandbox, client: httpx.AsyncClient, **props: Any) -> SpmlConnector:
    """A connector as the engine builds it: typed properties, common ones defaulted."""
    raw = {**sandbox.properties(), **props}
    return SpmlConnector(validate(SPEC.all_properties, raw, "test connector"), client)


def requests_seen(sandbox: SpmlSandbox) -> list[str]:
    return [node.tag.split("}", 1)[1] for node in sandbox.provider.received]


# ---------------------------------------------------------------- the messages
class Recorder:
    """Sends every request on to the sandbox and keeps it (to validate it here too)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        async with httpx.AsyncClient() as plain:
            answer = await plain.post(self.url, content=request.content,
                                      headers=dict(request.headers))
        return httpx.Response(answer.status_code, content=answer.content,
                              headers=answer.headers)


async def test_every_kind_of_message_sent_is_valid_against_the_schemas(
        sandbox: SpmlSandbox) -> None:
    recorder = Recorder(sandbox.url)
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
        c = connector(sandbox, client)
        await c.test_connection()
        ref = await c.create_user(ALICE)
        await c.update_user(ref.id, OutboundUser("alice", "PRIMARY",
                                                 attributes={"givenName": "Al"},
                                                 unset=("mail",), password="New-pw-1"))
        await c.set_active(ref.id, ALICE, False)
        await c.set_active(ref.id, ALICE, True)
        with pytest.raises(ConflictError):
            await c.create_user(ALICE)
        assert await c.lookup_user(ALICE) is not None
        await c.create_user(OutboundUser("bert", "PRIMARY"))
        assert len([o async for o in c.list_users(page_size=1)]) == 2  # search, iterate
        async for _ in c.list_users(page_size=1):
            break  # stopped early: the iterator is closed
        await c.delete_user(ref.id, ALICE)
    kinds = set()
    for request in recorder.sent:
        assert request.headers["Content-Type"] == SOAP_CONTENT_TYPE
        node = body_of(parse(request.content))
        kind = node.tag.split("}", 1)[1]
        assert request.headers["SOAPAction"] == f'"{kind}"'
        assert schema_errors(node) == [], kind
        assert node.get("requestID", "")[0].isalpha()
        kinds.add(node.tag)
    assert kinds == {q(SPML_NS, k) for k in ("listTargetsRequest", "addRequest",
                                            "modifyRequest", "deleteRequest", "lookupRequest")
                     } | {q(SUSPEND_NS, k) for k in ("suspendRequest", "resumeRequest",
                                                     "activeRequest")
                     } | {q(SEARCH_NS, k) for k in ("searchRequest", "iterateRequest",
                                                    "closeIteratorRequest")}


async def test_add_sends_objectclass_account_id_and_mapped_claims(
        sandbox: SpmlSandbox, client: httpx.AsyncClient) -> None:
    c = connector(sandbox, client, **{"spml-enable-pwd-provisioning": False})
    user = OutboundUser("bob", "SALES", attributes={"givenName": "Bob", "sn": "Builder"},
                        password="never-sent")
    ref = await c.create_user(user)
    add = next(n for n in sandbox.provider.received if n.tag == q(SPML_NS, "addRequest"))
    assert add.get("returnData") == "identifier"
    remote = sandbox.remote_user(ref.id)
    assert remote is not None and remote.name == "bob" and remote.active
    assert remote.attributes == {"objectclass": "spml2Person", "accountId": "bob",
                                 "givenName": "Bob", "sn": "Builder"}  # no credentials


async def test_update_replaces_deletes_and_converges_the_active_state(
        sandbox: SpmlSandbox, client: httpx.AsyncClient) -> None:
    c = connector(sandbox, client)
    ref = await c.create_user(ALICE)
    await c.set_active(ref.id, ALICE, False)
    changed = OutboundUser("alice", "PRIMARY", attributes={"givenName": "Ali"},
                           unset=("mail", "title"))
    assert (await c.update_user(ref.id, changed)).id == ref.id
    remote = sandbox.remote_user(ref.id)
    assert remote is not None and remote.active  # back in scope: resumed
    assert remote.attributes["givenName"] == "Ali" and "mail" not in remote.attributes
    assert remote.attributes["credentials"] == PASSWORD  # no password: left as it was
    modify = next(n for n in sandbox.provider.received
                  if n.tag == q(SPML_NS, "modifyRequest"))
    ops = {(m.get("name"), m.get("operation"))
           for m in modify.iter(q(DSML_NS, "modification"))}
    assert {("givenName", "replace"), ("mail", "delete"), ("title", "delete")} <= ops


async def test_an_inactive_user_is_suspended_on_create(
        sandbox: SpmlSandbox, client: httpx.AsyncClient) -> None:
    c = connector(sandbox, client)
    ref = await c.create_user(OutboundUser("carl", "PRIMARY", active=False))
    remote = sandbox.remote_user(ref.id)
    assert remote is not None and not remote.active


async def test_disable_without_the_suspend_capability_is_permanent(
        client: httpx.AsyncClient) -> None:
    with spml_sandbox(suspend=False) as sandbox:
        c = connector(sandbox, client)
        ref = await c.create_user(ALICE)
        await c.update_user(ref.id, ALICE)  # no suspend/resume sent
        with pytest.raises(PermanentError, match="does not announce the suspend capability"):
            await c.set_active(ref.id, ALICE, False)
        assert "suspendRequest" not in requests_seen(sandbox)
        assert "resumeRequest" not in requests_seen(sandbox)


async def test_delete_and_a_missing_pso(sandbox: SpmlSandbox,
                                        client: httpx.AsyncClient) -> None:
    c = connector(sandbox, client)
    ref = await c.create_user(ALICE)
    await c.delete_user(ref.id, ALICE)
    assert sandbox.remote_user(ref.id) is None
    with pytest.raises(RemoteNotFound, match="noSuchIdentifier"):
        await c.delete_user(ref.id, ALICE)
    with pytest.raises(RemoteNotFound):
        await c.update_user(ref.id, ALICE)


async def test_adoption_looks_up_the_reported_pso(sandbox: SpmlSandbox,
                                                 client: httpx.AsyncClient) -> None:
    existing = sandbox.seed_user("alice")
    c = connector(sandbox, client)
    with pytest.raises(ConflictError, match="alreadyExists"):
        await c.create_user(ALICE)
    found = await c.lookup_user(ALICE)
    assert found is not None and found.id == existing


async def test_adoption_falls_back_to_the_account_id(client: httpx.AsyncClient) -> None:
    with spml_sandbox(report_existing=False) as sandbox:
        sandbox.seed_user("alice")
        c = connector(sandbox, client)
        with pytest.raises(ConflictError):
            await c.create_user(ALICE)
        assert await c.lookup_user(ALICE) is None  # its psoIDs are not accountIds
        lookup = sandbox.provider.received[-1]
        assert lookup.find(q(SPML_NS, "psoID")).get("ID") == "alice"  # type: ignore[union-attr]


async def test_test_connection_lists_targets_and_capabilities(
        sandbox: SpmlSandbox, client: httpx.AsyncClient) -> None:
    said = await connector(sandbox, client).test_connection()
    assert said.startswith(f"SPML 2.0 provider at {sandbox.url}: 1 target(s): users")
    assert "capabilities: suspend" in said


async def test_a_bad_attribute_name_is_refused_before_sending(
        sandbox: SpmlSandbox, client: httpx.AsyncClient) -> None:
    c = connector(sandbox, client)
    bad = OutboundUser("dora", "PRIMARY", attributes={"urn:example:mail": "d@x"})
    with pytest.raises(PermanentError, match="is not a DSML attribute name"):
        await c.create_user(bad)
    control = OutboundUser("dora", "PRIMARY", attributes={"givenName": "a\x00b"})
    with pytest.raises(PermanentError, match="U\\+0000"):
        await c.create_user(control)
    assert requests_seen(sandbox) == []


async def test_a_dotted_remote_name_is_sent_by_its_last_segment(
        sandbox: SpmlSandbox, client: httpx.AsyncClient) -> None:
    c = connector(sandbox, client)
    ref = await c.create_user(OutboundUser("eve", "PRIMARY", attributes={
        "name.givenName": "Eve", "name.familyName": "Online", 'emails[type eq "work"].value':
        "eve@example.org"}))
    remote = sandbox.remote_user(ref.id)
    assert remote is not None
    assert (remote.attributes["givenName"], remote.attributes["familyName"],
            remote.attributes["emails"]) == ("Eve", "Online", "eve@example.org")
    with pytest.raises(PermanentError, match="different values"):
        await c.create_user(OutboundUser("fay", "PRIMARY", attributes={
            "name.givenName": "Fay", "givenName": "Faye"}))


# ---------------------------------------------------------------- the sandbox
async def test_the_sandbox_refuses_an_invalid_request_with_the_reason(
        sandbox: SpmlSandbox) -> None:
    bad_id = f'<spml:lookupRequest xmlns:spml="{SPML_NS}" requestID="1st"><spml:psoID ID="x"/>' \
             '</spml:lookupRequest>'
    no_name = f'<spml:addRequest xmlns:spml="{SPML_NS}" xmlns:dsml="{DSML_NS}"><spml:data>' \
              '<dsml:attr><dsml:value>x</dsml:value></dsml:attr></spml:data></spml:addRequest>'
    for body, reason in ((bad_id, "requestID"), (no_name, "name")):
        soap = f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>' \
               f'{body}</s:Body></s:Envelope>'
        answer = httpx.post(sandbox.url, content=soap, headers=_auth(sandbox))
        node = body_of(parse(answer.content))
        assert answer.status_code == 200 and node.get("status") == "failure"
        assert node.get("error") == "malformedRequest"
        assert reason in (node.findtext(q(SPML_NS, "errorMessage")) or "")
        assert schema_errors(node) == []
    assert sandbox.provider.psos == {}


async def test_every_answer_of_the_sandbox_is_schema_valid(sandbox: SpmlSandbox) -> None:
    answers: list[bytes] = []

    async def keep(request: httpx.Request) -> httpx.Response:
        async with httpx.AsyncClient() as plain:
            answer = await plain.post(sandbox.url, content=request.content,
                                      headers=dict(request.headers))
        answers.append(answer.content)
        return httpx.Response(answer.status_code, content=answer.content)

    async with httpx.AsyncClient(transport=httpx.MockTransport(keep)) as client:
        c = connector(sandbox, client)
        await c.test_connection()
        ref = await c.create_user(ALICE)
        with pytest.raises(ConflictError):
            await c.create_user(ALICE)
        await c.lookup_user(ALICE)
        await c.update_user(ref.id, ALICE)
        await c.set_active(ref.id, ALICE, False)
        await c.create_user(OutboundUser("bert", "PRIMARY"))
        listed = {o.name: o async for o in c.list_users(page_size=1)}
        assert not listed["alice"].active and listed["bert"].active
        async for _ in c.list_users(page_size=1):
            break
        await c.delete_user(ref.id, ALICE)
        with pytest.raises(RemoteNotFound):
            await c.delete_user(ref.id, ALICE)
    active = f'<a:activeRequest xmlns:a="{SUSPEND_NS}" xmlns:s="{SPML_NS}" requestID="r1">' \
             f'<a:psoID ID="{sandbox.seed_user("erin")}"/></a:activeRequest>'
    answers.append(httpx.post(sandbox.url, headers=_auth(sandbox), content=(
        f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>{active}'
        '</s:Body></s:Envelope>')).content)
    kinds = set()
    for content in answers:
        node = body_of(parse(content))
        assert schema_errors(node) == [], content
        kinds.add((node.tag.split("}", 1)[1], node.get("status")))
    assert kinds == {("listTargetsResponse", "success"), ("addResponse", "success"),
                     ("addResponse", "failure"), ("lookupResponse", "success"),
                     ("modifyResponse", "success"), ("resumeResponse", "success"),
                     ("suspendResponse", "success"), ("deleteResponse", "success"),
                     ("deleteResponse", "failure"), ("activeResponse", "success"),
                     ("searchResponse", "success"), ("iterateResponse", "success"),
                     ("closeIteratorResponse", "success")}
    assert body_of(parse(answers[-1])).get("active") == "true"


# ---------------------------------------------------------------- failures
@pytest.mark.parametrize(("fault", "error", "said"), [
    ("400", PermanentError, "malformedRequest"),
    ("401", PermanentError, "refused our credentials"),
    ("403", PermanentError, "refused our credentials"),
    ("404", RemoteNotFound, "noSuchIdentifier"),
    ("409", ConflictError, "alreadyExists"),
    ("429", RetryableError, "HTTP 429"),
    ("500", RetryableError, "HTTP 500"),
    ("503", RetryableError, "HTTP 503"),
    ("timeout", RetryableError, "no answer in time"),
    ("drop", RetryableError, "cannot reach the provider"),
])
async def test_each_fault_is_its_typed_error(sandbox: SpmlSandbox, client: httpx.AsyncClient,
                                             fault: Fault, error: type[ConnectorError],
                                             said: str) -> None:
    c = connector(sandbox, client)
    sandbox.fail_next(fault)
    with pytest.raises(error, match=said) as raised:
        await c.create_user(ALICE)
    assert type(raised.value) is error, f"{raised.value!r} is not exactly {error.__name__}"
    if fault == "429":
        assert isinstance(raised.value, RetryableError) and raised.value.delay == 1.0
    _no_secret(sandbox, c, raised.value)


async def test_refused_connection_is_retryable(sandbox: SpmlSandbox,
                                               client: httpx.AsyncClient) -> None:
    c = SpmlConnector(validate(SPEC.all_properties, sandbox.refusing_properties(), "t"), client)
    with pytest.raises(RetryableError, match="cannot reach the provider"):
        await c.create_user(ALICE)


async def test_wrong_credentials_are_permanent(sandbox: SpmlSandbox,
                                               client: httpx.AsyncClient) -> None:
    c = connector(sandbox, client, **{"spml-password": "wrong-password"})
    with pytest.raises(PermanentError, match="check spml-username and spml-password"):
        await c.test_connection()


async def test_no_secret_in_any_exchange_or_error(sandbox: SpmlSandbox,
                                                  client: httpx.AsyncClient) -> None:
    c = connector(sandbox, client)
    ref = await c.create_user(ALICE)
    await c.update_user(ref.id, ALICE)
    sandbox.fail_next("500")
    with pytest.raises(RetryableError) as raised:
        await c.delete_user(ref.id, ALICE)
    assert any(MASK in str(e.request_body) for e in c.exchanges)
    # the log shows the envelope as sent (same requestID), the password masked
    add = next(n for n in sandbox.provider.received if n.tag == q(SPML_NS, "addRequest"))
    assert f'requestID="{add.get("requestID")}"' in str(c.exchanges[0].request_body)
    _no_secret(sandbox, c, raised.value)


def _no_secret(sandbox: SpmlSandbox, c: SpmlConnector, error: Exception) -> None:
    basic = _auth(sandbox)["Authorization"].split(" ", 1)[1]
    for secret in [*sandbox.secrets(), PASSWORD, basic]:
        assert secret not in str(error)
        for e in c.exchanges:
            assert secret not in str(e.as_dict())


# ---------------------------------------------------------------- hostile answers
BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>&lol3;
</soap:Body></soap:Envelope>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<spml:addResponse xmlns:spml="urn:oasis:names:tc:SPML:2:0" status="success">&xxe;
</spml:addResponse></soap:Body></soap:Envelope>"""


def _soap(body: str) -> bytes:
    return (f'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
            f'<soap:Body>{body}</soap:Body></soap:Envelope>').encode()


@pytest.mark.parametrize(("status", "content", "said"), [
    (200, BOMB, "declares a DTD or entities"),
    (200, EXTERNAL, "declares a DTD or entities"),
    (200, BOMB.decode().encode("utf-16"), "declares a DTD or entities"),
    (200, BOMB.decode().encode("latin-1").replace(b"1.0", b'1.0" encoding="latin-1'),
     "declares a DTD or entities"),
    (200, BOMB.decode().encode("utf-16-le"), "declares a DTD or entities"),
    (200, BOMB.replace(b"1.0", b'1.0" encoding="utf-16-le').decode().encode("utf-16-le"),
     "cannot be read"),
    (200, b"<not xml", "not well-formed XML"),
    (200, b"", "it is empty"),
    (200, _soap('<addResponse xmlns="urn:example:other" status="success"/>'),
     re.escape("addResponse (namespace urn:example:other) where addResponse (namespace "
               "urn:oasis:names:tc:SPML:2:0) was expected")),
    (200, b'<Envelope xmlns="urn:example:soap"><Body/></Envelope>',
     "not a SOAP 1.1 envelope"),
    (200, _soap(f'<spml:addResponse xmlns:spml="{SPML_NS}" status="success"/>'),
     "without pso/psoID/@ID"),
    (200, _soap(f'<spml:addResponse xmlns:spml="{SPML_NS}" status="pending"/>'),
     "status 'pending'"),
    (500, _soap("<soap:Fault><faultcode>soap:Server</faultcode><faultstring>Provider is "
                "misconfigured</faultstring></soap:Fault>"),
     "SOAP Fault: Provider is misconfigured \\(faultcode soap:Server\\)"),
])
async def test_a_hostile_or_malformed_answer_is_a_clear_permanent_error(
        sandbox: SpmlSandbox, client: httpx.AsyncClient, status: int, content: bytes,
        said: str) -> None:
    c = connector(sandbox, client)
    sandbox.provider.script(Reply(status, content, (("Content-Type", SOAP_CONTENT_TYPE),)))
    with pytest.raises(PermanentError, match=said):
        await c.create_user(ALICE)
    assert "root:" not in str(c.exchanges[-1].response_body or "").replace("&xxe;", "")


async def test_an_answer_to_another_request_is_refused(sandbox: SpmlSandbox,
                                                       client: httpx.AsyncClient) -> None:
    sandbox.provider.script(Reply(200, _soap(
        f'<spml:deleteResponse xmlns:spml="{SPML_NS}" status="success" requestID="other"/>')))
    with pytest.raises(PermanentError, match="answered another request"):
        await connector(sandbox, client).delete_user("pso-1", ALICE)


async def test_the_targets_are_read_once_for_connectors_sharing_a_memo(
        sandbox: SpmlSandbox, client: httpx.AsyncClient) -> None:
    memo: dict[str, Any] = {}
    props = validate(SPEC.all_properties, sandbox.properties(), "t")
    first, second = SpmlConnector(props, client, memo), SpmlConnector(props, client, memo)
    await asyncio.gather(first.create_user(OutboundUser("u1", "P", active=False)),
                         second.create_user(OutboundUser("u2", "P", active=False)))
    assert requests_seen(sandbox).count("listTargetsRequest") == 1


def test_envelope_escapes_values() -> None:
    from connectors.spml_xml import dsml
    text = envelope(dsml("attr", "cn", ["<b>&amp;\"'"])).decode()
    assert "&lt;b&gt;&amp;amp;" in text
    assert body_of(parse(text.encode())).findtext(q(DSML_NS, "value")) == "<b>&amp;\"'"


def _auth(sandbox: SpmlSandbox) -> dict[str, str]:
    p = sandbox.provider
    pair = f"{p.username}:{p.password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode(),
            "Content-Type": SOAP_CONTENT_TYPE}


# ---------------------------------------------------------------- listing
async def test_listing_searches_page_by_page_with_what_we_map(
        sandbox: SpmlSandbox, client: httpx.AsyncClient) -> None:
    c = connector(sandbox, client)
    refs = [await c.create_user(OutboundUser(f"u{i}", "PRIMARY",
                                             attributes={"givenName": f"G{i}", "sn": "S"}))
            for i in range(5)]
    other = sandbox.provider.seed("group-like")
    sandbox.provider.psos[other].attributes["objectclass"] = ["groupOfNames"]
    sandbox.provider.received.clear()
    listed = {o.id: o async for o in c.list_users(page_size=2)}
    assert sorted(listed) == sorted(r.id for r in refs)  # persons only
    assert listed[refs[3].id].name == "u3"
    assert listed[refs[3].id].attributes == {"accountId": "u3", "givenName": "G3", "sn": "S"}
    seen = requests_seen(sandbox)
    assert seen.count("searchRequest") == 1 and seen.count("iterateRequest") == 2
    search = next(n for n in sandbox.provider.received if n.tag == q(SEARCH_NS, "searchRequest"))
    assert search.get("maxSelect") == "2" and search.get("returnData") == "everything"
    wanted = OutboundUser("u3", "PRIMARY", attributes={"givenName": "G3", "sn": "S"})
    assert c.drift(listed[refs[3].id], wanted) == []
    changed = OutboundUser("u3", "PRIMARY", attributes={"givenName": "New", "sn": "S"},
                           unset=("sn",), active=False)
    assert c.drift(listed[refs[3].id], changed) == ["givenName", "active"]
    assert c.drift(listed[refs[3].id], OutboundUser(
        "u3", "PRIMARY", attributes={"givenName": "G3"}, unset=("sn",))) == ["sn"]


async def test_without_the_search_capability_known_psos_are_looked_up(
        client: httpx.AsyncClient) -> None:
    with spml_sandbox(search=False) as plain:
        c = connector(plain, client)
        a = await c.create_user(OutboundUser("ann", "PRIMARY", attributes={"sn": "A"}))
        b = await c.create_user(OutboundUser("ben", "PRIMARY"))
        plain.seed_user("stranger")  # not ours: a lookup cannot find it
        await c.delete_user(b.id, OutboundUser("ben", "PRIMARY"))
        plain.provider.received.clear()
        listed = [o async for o in c.list_users(page_size=2, known=iter([a.id, b.id]))]
        assert [(o.id, o.name, o.attributes.get("sn")) for o in listed] == [(a.id, "ann", "A")]
        assert requests_seen(plain).count("lookupRequest") == 2
        assert "searchRequest" not in requests_seen(plain)
        assert [o async for o in c.list_users()] == []  # nothing known, nothing listed
        answer = httpx.post(plain.url, headers=_auth(plain), content=_soap(
            f'<s:searchRequest xmlns:s="{SEARCH_NS}" requestID="r1"/>'))
        node = body_of(parse(answer.content))
        assert (node.get("status"), node.get("error")) == ("failure", "unsupportedOperation")


async def test_the_sandbox_refuses_what_its_search_does_not_support(
        sandbox: SpmlSandbox) -> None:
    cases = {
        f'<s:iterateRequest xmlns:s="{SEARCH_NS}" requestID="r1"><s:iterator ID="it-none"/>'
        '</s:iterateRequest>': "invalidIdentifier",
        f'<s:searchRequest xmlns:s="{SEARCH_NS}" xmlns:d="{DSML_NS}" requestID="r2"><s:query>'
        '<d:filter><d:substrings name="sn"><d:initial>a</d:initial></d:substrings></d:filter>'
        '</s:query></s:searchRequest>': "unsupportedSelectionType",
        f'<s:searchRequest xmlns:s="{SEARCH_NS}" requestID="r3" maxSelect="many"/>':
            "malformedRequest",
    }
    for body, code in cases.items():
        node = body_of(parse(httpx.post(sandbox.url, headers=_auth(sandbox),
                                        content=_soap(body)).content))
        assert (node.get("status"), node.get("error")) == ("failure", code), body
        assert schema_errors(node) == []



async def test_a_pso_deleted_while_listed_is_left_out(sandbox: SpmlSandbox) -> None:
    """The provider deletes a PSO between the search and its activeRequest."""
    keep = sandbox.seed_user("keep")
    gone = sandbox.seed_user("gone")

    async def delete_before_asking(request: httpx.Request) -> httpx.Response:
        if b"activeRequest" in request.content and gone.encode() in request.content \
                and gone in sandbox.provider.psos:
            sandbox.provider.drop(gone)
        async with httpx.AsyncClient() as plain:
            answer = await plain.post(sandbox.url, content=request.content,
                                      headers=dict(request.headers))
        return httpx.Response(answer.status_code, content=answer.content)

    async with httpx.AsyncClient(transport=httpx.MockTransport(delete_before_asking)) as client:
        listed = [o.id async for o in connector(sandbox, client).list_users()]
    assert listed == [keep]
