"""The simple PATCH path (``core/inbound/simplepatch.py``) against scim2-models' PatchOp:
the same resource and the same "changed" for every simple shape, and every other shape
left to scim2-models."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scim2_models import Context, PatchOp, PreconditionFailedException, Resource
from scim2_server.conditions import Conditions
from scim2_server.utils import parametrize

from core.claims import DEFAULT_SCIM_MAPPINGS, LOCAL_DIALECT
from core.inbound import Limits
from core.inbound.schemas import build_provider, mapped_paths, stored_types
from core.inbound.service import IamScimService
from core.inbound.simplepatch import SimplePatch, SimplePatches
from core.inbound.unstored import Unstored

PATCH = PatchOp.__schema__
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
EXTERNAL = {ext: f"{LOCAL_DIALECT}/{claim}" for ext, claim in DEFAULT_SCIM_MAPPINGS}
PROVIDER = build_provider(EXTERNAL, Limits())
SERVICE = IamScimService(PROVIDER, Limits(), Unstored(PROVIDER.schemas, stored_types(
    mapped_paths(EXTERNAL))))
USERS = next(t for t in PROVIDER.resource_types if t.name == "User")
MODEL: type[Resource[Any]] = PROVIDER.model_for("User")  # type: ignore[assignment]
SIMPLE = SimplePatches(MODEL)
#: Every simple path, with the type its values have.
SLOTS = sorted((path, slot.kind) for path, slot in SIMPLE.slots.items())


def test_the_simple_paths_are_the_plain_writable_single_valued_attributes() -> None:
    assert dict(SLOTS) == {
        "active": bool, "displayname": str, "externalid": str, "locale": str,
        "name.familyname": str, "name.givenname": str, "nickname": str,
        "preferredlanguage": str, "timezone": str, "title": str, "usertype": str}


def _full(data: dict[str, Any]) -> Any:
    return parametrize(PatchOp, MODEL).model_validate(
        data, scim_ctx=Context.RESOURCE_PATCH_REQUEST)


def _body(operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": operations}


texts = st.sampled_from(["", "Ada", "ada", "Lovelace", "é ü", " x ", "0"])


def _value(kind: type) -> st.SearchStrategy[Any]:
    return st.booleans() if kind is bool else texts


@st.composite
def resources(draw: st.DrawFn) -> dict[str, Any]:
    """A stored User as a plain body: any of the simple attributes set, and others."""
    body: dict[str, Any] = {"schemas": [CORE], "id": "u1", "userName": "ada",
                            "emails": [{"value": "ada@example.com", "type": "work"}]}
    for path, kind in SLOTS:
        if draw(st.booleans()):
            head, _, sub = path.partition(".")
            name = next(n for n in (MODEL._scim_name(f) for f in MODEL.model_fields)
                        if n.lower() == head)
            value = draw(_value(kind))
            if sub:
                sub_model = SIMPLE.slots[path].sub_model
                assert sub_model is not None
                sub_name = next(sub_model._scim_name(f) for f in sub_model.model_fields
                                if f == SIMPLE.slots[path].sub_field)
                body.setdefault(name, {})[sub_name] = value
            else:
                body[name] = value
    return body


def _cased(draw: st.DrawFn, text: str) -> str:
    return "".join(c.upper() if draw(st.booleans()) else c for c in text)


@st.composite
def operations(draw: st.DrawFn) -> dict[str, Any]:
    path, kind = draw(st.sampled_from(SLOTS))
    written = _cased(draw, path)
    if draw(st.booleans()):
        written = f"{draw(st.sampled_from([CORE, CORE.lower()]))}:{written}"
    op = _cased(draw, draw(st.sampled_from(["add", "replace", "remove"])))
    if op.lower() == "remove":
        return {"op": op, "path": written}
    return {"op": op, "path": written, "value": draw(_value(kind))}


@settings(max_examples=400, deadline=None)
@given(resources(), st.lists(operations(), min_size=1, max_size=5))
def test_a_simple_patch_does_what_scim2_models_does(stored: dict[str, Any],
                                                    ops: list[dict[str, Any]]) -> None:
    data = _body(ops)
    simple = SIMPLE.read(data)
    assert simple is not None
    fast, full = MODEL.model_validate(stored), MODEL.model_validate(stored)
    with PROVIDER:
        assert simple.patch(fast) == _full(data).patch(full)
    assert fast.model_dump() == full.model_dump()
    assert fast.model_dump(scim_ctx=Context.RESOURCE_REPLACEMENT_RESPONSE) == \
        full.model_dump(scim_ctx=Context.RESOURCE_REPLACEMENT_RESPONSE)


@pytest.mark.parametrize("operation", [
    {"op": "replace", "path": "active", "value": "False"},  # Entra's: coerced by the models
    {"op": "replace", "path": "active", "value": 1},
    {"op": "replace", "path": "title", "value": 7},
    {"op": "replace", "path": "title", "value": None},
    {"op": "replace", "path": "title", "value": ["x"]},
    {"op": "replace", "path": "title"},
    {"op": "remove", "path": "title", "value": "x"},
    {"op": "replace", "path": "name", "value": {"givenName": "x"}},
    {"op": "replace", "value": {"title": "x"}},
    {"op": "replace", "path": "userName", "value": "x"},  # immutable
    {"op": "replace", "path": "id", "value": "x"},  # read-only
    {"op": "replace", "path": "profileUrl", "value": "http://x"},  # a reference
    {"op": "replace", "path": 'emails[type eq "work"].value', "value": "a@b.c"},
    {"op": "replace", "path": f"{CORE}:emails", "value": [{"value": "a@b.c"}]},
    {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:"
     "department", "value": "x"},
    {"op": "replace", "path": "nosuch", "value": "x"},
    {"op": "move", "path": "title", "value": "x"},
    {"op": "replace", "path": "title", "value": "x", "extra": 1},
    {"Op": "replace", "path": "title", "value": "x"},
    "replace title",
])
def test_any_other_operation_is_left_to_scim2_models(operation: Any) -> None:
    ok = {"op": "replace", "path": "title", "value": "x"}
    assert SIMPLE.read(_body([ok])) is not None
    assert SIMPLE.read(_body([ok, operation])) is None


@pytest.mark.parametrize("data", [
    {"schemas": [PATCH], "Operations": []},
    {"schemas": [PATCH]},
    {"schemas": [], "Operations": [{"op": "replace", "path": "title", "value": "x"}]},
    {"schemas": [PATCH], "Operations": {"op": "replace", "path": "title", "value": "x"}},
    {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "x"}],
     "id": "x"},
    [{"op": "replace", "path": "title", "value": "x"}],
])
def test_any_other_body_is_left_to_scim2_models(data: Any) -> None:
    assert SIMPLE.read(data) is None


def test_the_service_reads_a_simple_patch_as_one_and_applies_it() -> None:
    body = _body([{"op": "Replace", "path": "name.givenName", "value": "Ada"},
                  {"op": "replace", "path": "active", "value": False}])
    with PROVIDER:
        read = SERVICE.read_patch(USERS, json.dumps(body).encode(), "application/scim+json")
        assert isinstance(read, SimplePatch)
        current = MODEL.model_validate({"schemas": [CORE], "id": "u1", "userName": "ada",
                                        "active": True, "meta": {"version": 'W/"1"'}})
        with pytest.raises(PreconditionFailedException):  # If-Match is checked first
            SERVICE.apply_patch(current, read, Conditions(if_match='W/"2"'))
        assert current.model_dump()["active"] is True
        patched = SERVICE.apply_patch(current, read, Conditions(if_match='W/"1"'))
    assert patched is not None
    assert patched.model_dump()["name"] == {"givenName": "Ada"}
    assert patched.model_dump()["active"] is False


def test_the_service_reads_another_patch_as_scim2_models_does() -> None:
    body = _body([{"op": "replace", "path": "active", "value": "False"}])
    with PROVIDER:
        read = SERVICE.read_patch(USERS, json.dumps(body).encode(), "application/scim+json")
    assert not isinstance(read, SimplePatch)
    assert isinstance(read, PatchOp)
