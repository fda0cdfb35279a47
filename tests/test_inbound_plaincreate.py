"""The plain validation of a User POST body (``core/inbound/plaincreate.py``) against
scim2-models' validation in the creation context: whenever the plain one keeps a body,
scim2-models accepts it as the same resource; every other body is left to scim2-models."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scim2_models import Context, EnterpriseUser, Resource, User

from core.inbound.plaincreate import PlainCreation
from tests.test_inbound_simplepatch import CORE, MODEL, PROVIDER, SERVICE, USERS

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PLAIN = PlainCreation(MODEL)
#: The deployment's User model, and scim2-models' whole one (primary values, read-only
#: sub-attributes such as the manager's displayName).
MODELS = [MODEL, User[EnterpriseUser]]
BENCH = {"schemas": [CORE], "userName": "load0000001",
         "name": {"givenName": "Given1", "familyName": "Family1"},
         "emails": [{"value": "load0000001@example.com", "type": "work"}], "active": True}

#: Each key a body may hold, with values valid, invalid or read-only for it.
CHOICES: dict[str, list[Any]] = {
    "schemas": [[CORE], [CORE, ENTERPRISE], [], [ENTERPRISE], "x"],
    "userName": ["ada", "", None, 7, ["ada"]],
    "UserName": ["ada"],
    "name": [{"givenName": "Ada"}, {"givenName": "Ada", "familyName": "L"}, {}, None,
             {"formatted": "Ada L"}, {"givenName": 3}, {"nosuch": 1}, "Ada"],
    "displayName": ["Ada", "", None, 1],
    "active": [True, False, "False", "x", None, 1],
    "password": ["secret", ""],
    "externalId": ["e1", None],
    "profileUrl": ["https://example.com/ada", "not a url"],
    "emails": [[{"value": "a@example.com", "type": "work"}], [], None,
               [{"value": "a@example.com", "type": "work"}, {"value": "b@example.com"}],
               [{"value": "a@example.com", "primary": True}], [{"type": "work"}], [{}],
               [{"value": "a@example.com", "primary": True},
                {"value": "b@example.com", "primary": True}],
               {"value": "a@example.com"}],
    "phoneNumbers": [[{"value": "+1", "type": "mobile"}], [{"value": "+1", "display": "x"}]],
    "addresses": [[{"country": "FR", "type": "work"}]],
    "id": ["u1"],
    "meta": [{"resourceType": "User"}],
    "groups": [[{"value": "g1"}]],
    ENTERPRISE: [{"department": "R&D"}, {"manager": {"value": "u2"}}, {},
                 {"manager": {"value": "u2", "displayName": "Boss"}}],
    "x509Certificates": [[{"value": "TUlJ"}]],
    "nosuch": ["x"],
}


@st.composite
def bodies(draw: st.DrawFn) -> Any:
    """Bodies of a few keys, their values mostly the first (valid) choice."""
    body = {k: v[0] if draw(st.booleans()) else draw(st.sampled_from(v))
            for k, v in CHOICES.items() if draw(st.integers(0, 2)) == 0}
    if draw(st.integers(0, 3)):  # mostly a body with a User schema and a name
        body.setdefault("schemas", [CORE])
        body.setdefault("userName", "ada")
    return body


def _full(model: type[Resource[Any]], data: Any) -> Resource[Any] | None:
    try:
        return model.model_validate(data, scim_ctx=Context.RESOURCE_CREATION_REQUEST)
    except ValidationError:
        return None


def _check(model: type[Resource[Any]], data: Any) -> bool:
    """Whether the plain reading kept ``data``; when it did, it is scim2-models' reading."""
    with PROVIDER:
        plain, full = _plain(model).read(data), _full(model, data)
    if plain is None:
        return False
    assert full is not None
    assert plain.model_dump() == full.model_dump()
    assert plain.model_dump(exclude_unset=True) == full.model_dump(exclude_unset=True)
    assert plain.model_fields_set == full.model_fields_set
    return True


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(MODELS), bodies())
def test_a_plain_body_is_what_scim2_models_reads(model: type[Resource[Any]],
                                                 data: Any) -> None:
    _check(model, data)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("extra", [
    {"emails": [{"value": "a@example.com", "primary": True},
                {"value": "b@example.com", "primary": True}]},
    {"emails": [{"value": "a@example.com", "primary": True}]},
    {ENTERPRISE: {"manager": {"value": "u2", "displayName": "Boss"}}},
    {ENTERPRISE: {"manager": {"value": "u2"}}, "schemas": [CORE, ENTERPRISE]},
    {"groups": [{"value": "g1"}]}, {"id": "u1"}, {"meta": {"resourceType": "User"}},
    {"userName": None}, {"userName": ""}, {"emails": [{"type": "work"}]}, {"emails": []},
])
def test_edge_bodies_are_read_as_scim2_models_reads_them(model: type[Resource[Any]],
                                                         extra: dict[str, Any]) -> None:
    _check(model, {**BENCH, **extra})


def test_bodies_scim2_models_changes_or_refuses_are_left_to_it() -> None:
    """Two primary values (refused), a read-only id (dropped), no userName (refused)."""
    full = User[EnterpriseUser]
    two = {**BENCH, "emails": [{"value": "a@example.com", "primary": True},
                               {"value": "b@example.com", "primary": True}]}
    assert not _check(full, two)
    assert not _check(MODEL, {**BENCH, "id": "u1"})
    assert not _check(MODEL, {**BENCH, "userName": None})


def _plain(model: type[Resource[Any]]) -> PlainCreation:
    return PLAIN if model is MODEL else PlainCreation(model)


def test_the_common_bodies_are_read_plainly() -> None:
    for body in (BENCH, {"schemas": [CORE], "userName": "ada"},
                 {**BENCH, "password": "secret", "displayName": "Ada", "externalId": "e"}):
        assert PLAIN.read(body) is not None, body


def test_the_service_reads_other_bodies_as_scim2_models_does() -> None:
    """Read-only attributes dropped, another spelling, an extension: scim2-models' reading."""
    body = {**BENCH, "id": "chosen", "UserName": "x", ENTERPRISE: {"department": "R&D"},
            "schemas": [CORE, ENTERPRISE]}
    del body["userName"]
    assert PLAIN.read(body) is None
    with PROVIDER:
        read = SERVICE.read_creation(USERS, json.dumps(body).encode(), "application/scim+json")
    assert read.id is None and read.user_name == "x"  # type: ignore[attr-defined]
    assert read.model_dump()[ENTERPRISE] == {"department": "R&D"}
