"""The SCIM server's dump of a resource in a response (``service.response_dump``) against
scim2-models' dump in the response's context."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from scim2_models import Context, Meta, Resource, ResponseParameters
from scim2_server.service import ScimService
from scim2_server.storage import SearchPage
from scim2_server.utils import parametrize

from core.inbound.service import _not_returned, response_dump, written_response_dump
from tests.test_inbound_simplepatch import CORE, MODEL, PROVIDER, SERVICE

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP_MODEL: type[Resource[Any]] = PROVIDER.model_for("Group")  # type: ignore[assignment]
CONTEXTS = [Context.RESOURCE_CREATION_RESPONSE, Context.RESOURCE_QUERY_RESPONSE,
            Context.RESOURCE_REPLACEMENT_RESPONSE, Context.SEARCH_RESPONSE]
texts = st.sampled_from(["Ada", "é", "x y"])


@st.composite
def users(draw: st.DrawFn) -> Resource[Any]:
    body: dict[str, Any] = {"schemas": [CORE], "id": "u1", "userName": "ada"}
    optional: dict[str, Any] = {
        "name": {"givenName": draw(texts), "familyName": draw(texts)},
        "displayName": draw(texts), "title": draw(texts), "active": draw(st.booleans()),
        "password": "secret", "externalId": draw(texts),
        "profileUrl": "https://example.com/ada",
        "emails": [{"value": "ada@example.com", "type": "work"}],
        "phoneNumbers": [{"value": "+1 555", "type": "mobile"}],
        "addresses": [{"country": "FR", "locality": "Paris", "type": "work"}],
        "groups": [{"value": "g1", "display": "G", "$ref": "Groups/g1", "type": "direct"}],
        ENTERPRISE: {"department": draw(texts), "manager": {"value": "u2"}},
    }
    for key, value in optional.items():
        if draw(st.booleans()):
            body[key] = value
    resource = MODEL.model_validate(body)
    resource.meta = Meta(resource_type="User", created=datetime(2026, 1, 2, tzinfo=UTC),
                         last_modified=datetime(2026, 1, 3, tzinfo=UTC), version='W/"1"')
    return SERVICE.publish("http://example.com/scim2", resource)


def _parameters(attributes: list[str] | None, excluded: list[str] | None) -> Any:
    return parametrize(ResponseParameters, MODEL).model_validate(
        {k: v for k, v in (("attributes", attributes), ("excludedAttributes", excluded))
         if v is not None})


@settings(max_examples=200, deadline=None)
@given(users(), st.sampled_from(CONTEXTS), st.sampled_from([
    None, (None, None), (["userName"], None), (None, ["name"]), (["password"], None),
    (["emails.value", "groups"], None), (None, [f"{ENTERPRISE}:department"])]))
def test_a_response_dump_is_scim2_models_dump(user: Resource[Any], context: Context,
                                               asked: Any) -> None:
    parameters = None if asked is None else _parameters(*asked)
    with PROVIDER:
        expected = user.model_dump(scim_ctx=context, response_parameters=parameters)
        assert response_dump(user, context, parameters) == expected
    assert "password" not in expected


@settings(max_examples=200, deadline=None)
@given(users())
def test_a_written_users_response_is_scim2_models_dump(user: Resource[Any]) -> None:
    """A created user's answer from the dump its claims were read from (no id, no meta),
    as ``creation_response`` makes it: the same keys in the same order, or None (then
    the user is dumped) when publishing changed a reference."""
    written = user.model_copy(update={"id": None, "meta": None}).model_dump()
    with PROVIDER:
        expected = user.model_dump(scim_ctx=Context.RESOURCE_CREATION_RESPONSE)
        answered = written_response_dump(user, written)
    assert (answered is None) == ("groups" in written)  # its one reference to publish
    if answered is not None:
        assert list(answered.items()) == list(expected.items())


def test_a_written_response_with_an_unknown_attribute_is_dumped() -> None:
    user = MODEL.model_validate({"schemas": [CORE], "id": "u1", "userName": "ada"})
    user.meta = Meta(resource_type="User", created=datetime(2026, 1, 2, tzinfo=UTC),
                     last_modified=datetime(2026, 1, 3, tzinfo=UTC), version='W/"1"')
    user = SERVICE.publish("http://example.com/scim2", user)
    written = {"schemas": [CORE], "userName": "ada", "nickName2": "x"}
    assert written_response_dump(user, written) is None


def test_a_group_response_dump_is_scim2_models_dump() -> None:
    group = GROUP_MODEL.model_validate({"id": "g1", "displayName": "G", "members": [
        {"value": "u1", "$ref": "Users/u1", "type": "User"}]})
    group.meta = Meta(resource_type="Group", created=datetime(2026, 1, 2, tzinfo=UTC),
                      last_modified=datetime(2026, 1, 3, tzinfo=UTC), version='W/"1"')
    group = SERVICE.publish("http://example.com/scim2", group)
    for context in CONTEXTS:
        assert response_dump(group, context, None) == group.model_dump(scim_ctx=context)


def test_users_and_groups_are_dumped_without_the_response_context() -> None:
    """What the tests above compare is the plain dump (without the password)."""
    assert _not_returned(MODEL) == {"password"}
    assert _not_returned(GROUP_MODEL) == frozenset()


@settings(max_examples=60, deadline=None)
@given(st.lists(users(), max_size=3), st.integers(0, 5000),
       st.sampled_from([{}, {"startIndex": 3, "count": 10}, {"count": 0},
                        {"filter": 'userName eq "ada"'}, {"startIndex": 0},
                        {"attributes": "userName"}, {"excludedAttributes": "emails"}]))
def test_a_list_response_is_scim2_servers(found: list[Resource[Any]], total: int,
                                          payload: dict[str, Any]) -> None:
    """A page of a search paged by index, answered without scim2-server's ListResponse
    (``IamScimService.search_response``): the same members in the same order."""
    users_type = [t for t in PROVIDER.resource_types if t.name == "User"]
    with PROVIDER:
        search, _ = SERVICE.read_search(users_type, payload)
        page = SearchPage(max(total, len(found)), found, None, None)
        ours = SERVICE.search_response("http://example.com/scim2", users_type, page, search)
        theirs = ScimService.search_response(SERVICE, "http://example.com/scim2",
                                             users_type, page, search)
    assert list(ours.body.items()) == list(theirs.body.items())  # type: ignore[union-attr]
    assert ours.status == theirs.status
