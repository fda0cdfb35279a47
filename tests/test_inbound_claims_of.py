"""A User body's claims as the SCIM server reads them (``ResourceMapper._claims_of``, each
container case-folded once) against reading each mapping's path on its own with ``_key``
(an attribute's name compared in any case, the name as written first)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.inbound.resources import (
    ResourceMapper,
    _container,
    _key,
    _text,
    _within,
    no_nul,
)
from core.inbound.schemas import mapped_paths
from tests.test_inbound_simplepatch import EXTERNAL, MODEL, PROVIDER

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
MAPPER = ResourceMapper(MODEL, PROVIDER.model_for("Group"),  # type: ignore[arg-type]
                        mapped_paths(EXTERNAL))


def _one_by_one(body: dict[str, Any]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for p, _ in MAPPER.paths:
        container = _container(body, p, create=False)
        text = _text(_within(_key(container, p.attribute) if container is not None
                             else None, p))
        out[p.claim] = None if text is None else no_nul(text, p.path)
    return out


def _spelled(draw: st.DrawFn, name: str) -> str:
    return draw(st.sampled_from([name, name.lower(), name.upper(), name.capitalize()]))


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Dumped Users, their attributes' names in any case, some twice in two spellings."""
    attributes: dict[str, Any] = {
        "name": {"givenName": "Ada", "familyName": "L"}, "displayName": "Ada",
        "active": draw(st.booleans()), "title": "Eng", "nickName": "ada",
        "emails": [{"value": "a@example.com", "type": "work"}],
        "phoneNumbers": [{"value": "+1", "type": "mobile"}],
        "addresses": [{"country": "FR", "type": "work"}], "locale": "fr",
    }
    body: dict[str, Any] = {"schemas": ["x"], "userName": "ada"}
    for name, value in attributes.items():
        if draw(st.booleans()):
            body[_spelled(draw, name)] = value
            if draw(st.integers(0, 4)) == 0:
                body[_spelled(draw, name)] = draw(st.sampled_from(["other", None]))
    if draw(st.booleans()):
        body[ENTERPRISE] = {_spelled(draw, "department"): "R&D",
                            _spelled(draw, "employeeNumber"): "7"}
    return body


@settings(max_examples=300, deadline=None)
@given(bodies())
def test_the_claims_of_a_body_are_each_paths_value(body: dict[str, Any]) -> None:
    assert MAPPER._claims_of(body) == _one_by_one(body)


def test_the_claims_of_the_benchmarks_body() -> None:
    body = MODEL.model_validate({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada",
        "name": {"givenName": "Ada", "familyName": "L"}, "active": True,
        "emails": [{"value": "a@example.com", "type": "work"}]}).model_dump()
    claims = MAPPER._claims_of(body)
    assert claims == _one_by_one(body)
    assert sorted(v for v in claims.values() if v is not None) == [
        "Ada", "L", "a@example.com", "true"]
