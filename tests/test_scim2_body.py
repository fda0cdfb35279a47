"""SCIM User bodies: the shape a set of attribute names takes is the exact body, always.

``user_body`` copies a shape worked out once per set of names; these tests hold it to what
walking every path into the scim2-models ``User`` gives (``build_user``), byte for byte,
and check that it steps aside where a value could change more than its own place.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import EmailStr, TypeAdapter, ValidationError
from scim2_models import Context

from connectors.base import PermanentError
from connectors.scim2_body import _checked, _shape, build_user, checked_email, reason, user_body

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
WORK_EMAIL = 'emails[type eq "work"].value'
CONTEXTS = (Context.RESOURCE_CREATION_REQUEST, Context.RESOURCE_REPLACEMENT_REQUEST)

#: Attribute sets a shape serves (as the default SCIM dialect and claim mappings give).
SHAPED = [
    {"name.familyName": "Family1", "name.givenName": "Given1",
     WORK_EMAIL: "bench000001@Example.COM"},  # the model normalizes the domain
    {"name.givenName": "Bob", f"{CORE}:name.familyName": "Builder",
     "displayName": "Bob the Builder", WORK_EMAIL: "bob@example.org",
     'phoneNumbers[type eq "mobile"].value': "+31 6 1234 5678",
     'addresses[type eq "work"].country': "NL", 'emails[type eq "home"].value': "b@home.nl",
     f"{ENTERPRISE}:department": "Construction", f"{ENTERPRISE}:manager.value": "wendy",
     "id": "local-42"},  # read-only: checked, never sent
    {"userName": "ignored", "active": "false", "password": "ignored", "title": "Ëngineer"},
    {"Name.FamilyName": "Case", "NAME.givenName": "Insensitive", "nickName": "x" * 300},
]
#: Sets where one value may decide where another goes: the exact way every time.
UNSHAPED = [
    {WORK_EMAIL: "a@example.com", 'emails[type eq "work"].type': "home"},
    {WORK_EMAIL: "a@example.com", 'emails[value eq "a@example.com"].display': "A"},
    {"emails.value": "a@example.com", WORK_EMAIL: "b@example.com",
     'emails[type eq "home"].value': "c@example.com"},  # fans out over both entries
    {"name.givenName": "First", "Name.givenName": "Second"},  # one attribute, twice
    {"x509Certificates": "not base64 at all"},
]


def exact(attributes: dict[str, str], user_name: str, active: bool, password: str | None,
          context: Context) -> tuple[dict[str, Any], dict[str, list[str]]]:
    resource, selections = build_user(attributes, user_name, active, password, "test")
    return resource.model_dump(scim_ctx=context), selections


@pytest.mark.parametrize("attributes", SHAPED + UNSHAPED)
@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize(("active", "password"), [(True, None), (False, "S3cret-pa55")])
def test_the_body_is_the_exact_body(attributes: dict[str, str], context: Context,
                                    active: bool, password: str | None) -> None:
    for user_name in ("bob", "PRIMARY/ann.o'neil"):
        try:
            expected = exact(attributes, user_name, active, password, context)
        except PermanentError as exc:  # the exact way refuses: so must the body
            with pytest.raises(PermanentError) as refused:
                user_body(attributes, user_name, active, password, context, "test")
            assert str(refused.value) == str(exc)
            continue
        got = user_body(attributes, user_name, active, password, context, "test")
        assert json.dumps(got) == json.dumps(expected)  # key order included
        if attributes in SHAPED:  # and the shape made it, not the exact way again
            shape = _shape(tuple(attributes), active, password is not None, context)
            assert shape is not None and json.dumps(shape.fill(
                [*attributes.values(), user_name, *([password] if password else [])])
            ) == json.dumps(got[0])


@pytest.mark.parametrize("attributes", SHAPED)
def test_sets_of_plain_attributes_have_a_shape(attributes: dict[str, str]) -> None:
    assert _shape(tuple(attributes), True, False, Context.RESOURCE_CREATION_REQUEST)


@pytest.mark.parametrize("attributes", UNSHAPED)
def test_values_that_could_move_others_have_no_shape(attributes: dict[str, str]) -> None:
    assert _shape(tuple(attributes), True, False, Context.RESOURCE_CREATION_REQUEST) is None


def test_users_of_one_shape_get_their_own_values_and_their_own_errors() -> None:
    names = ("name.givenName", WORK_EMAIL)
    bodies = [user_body(dict(zip(names, (f"G{i}", f"u{i}@Example.org"), strict=True)),
                        f"u{i}", True, None, Context.RESOURCE_CREATION_REQUEST, "test")[0]
              for i in range(3)]
    assert [(b["userName"], b["name"], b["emails"]) for b in bodies] == [
        (f"u{i}", {"givenName": f"G{i}"}, [{"value": f"u{i}@example.org", "type": "work"}])
        for i in range(3)]
    assert bodies[0]["emails"] is not bodies[1]["emails"]  # copies, not one shared body
    with pytest.raises(PermanentError, match=r"attribute 'emails\[type eq \"work\"\]\.value' "
                                             r"= 'not an address' cannot be sent"):
        user_body(dict(zip(names, ("G", "not an address"), strict=True)), "u", True, None,
                  Context.RESOURCE_CREATION_REQUEST, "create user 'u'")
    empty = user_body(dict(zip(names, ("", "e@example.org"), strict=True)), "u", True, None,
                      Context.RESOURCE_CREATION_REQUEST, "test")
    assert empty == exact(dict(zip(names, ("", "e@example.org"), strict=True)), "u", True,
                          None, Context.RESOURCE_CREATION_REQUEST)


def test_selections_are_the_value_filters_per_attribute() -> None:
    attributes = {WORK_EMAIL: "a@example.com", 'emails[type eq "home"].display': "A",
                  f"{ENTERPRISE}:department": "D"}
    _, selections = user_body(attributes, "a", True, None,
                              Context.RESOURCE_REPLACEMENT_REQUEST, "test")
    assert selections == {"emails": ['type eq "work"', 'type eq "home"']}
    selections["emails"].append("changed by the caller")
    assert user_body(attributes, "a", True, None, Context.RESOURCE_REPLACEMENT_REQUEST,
                     "test")[1] == {"emails": ['type eq "work"', 'type eq "home"']}


#: What the model checks an email value with (``Email.value``).
EMAIL = TypeAdapter(EmailStr | None)
LONG_DOMAIN = ".".join(["d" * 63] * 3) + ".com"  # 196 characters
#: 20 Cyrillic letters: 26 characters as IDNA ASCII, 40 bytes of UTF-8 once normalized.
WIDE_DOMAIN = ("\u0430" * 20).encode("idna").decode() + "." + "e" * 63 + "." + "f" * 63 + ".com"
#: Addresses at the edges of what email_validator takes, and a few it does not.
ADDRESSES = [
    "bench000001@example.com", "a@EXAMPLE.COM", "First.Last+tag@Sub.Example.org",
    "o'brien@example.ie", "{weird}|~=?^`#$%&*/@example.com", "x@xn--bcher-kva.example",
    "x@XN--BCHER-KVA.example", "Postmaster@example.com", "INFO@example.com",
    "abuse@example.com", "a" * 64 + "@example.com", "a" * 100 + "@example.com",
    "a" * (254 - 1 - len(LONG_DOMAIN)) + "@" + LONG_DOMAIN,
    "a" * (255 - 1 - len(LONG_DOMAIN)) + "@" + LONG_DOMAIN,
    *("a" * n + "@" + WIDE_DOMAIN for n in (81, 82, 95)),  # 254, 255, 268 bytes normalized
    "a@" + "b" * 63 + ".com", "a@" + "b" * 64 + ".com",
    "x" * 40 + "@" + "xn--bcher-kva." + "e" * 63 + "." + "f" * 63 + "." + "g" * 50 + ".com",
    "a@b.co", "user@localhost", "user@example.local", "user@example.test",
    "user@example.invalid", "user@123.com", "user@example.123", "user@1.2.3.4",
    "user@-example.com", "user@example-.com", "user@ex--ample.com", "user@ab--cd.com",
    "user@xn--zz.com", "user@example..com", "user@.example.com", "user@example.com.",
    ".user@example.com", "user.@example.com", "us..er@example.com", "user@exa_mple.com",
    "us er@example.com", " user@example.com ", "Name <user@example.com>",
    "user@[127.0.0.1]", '"quoted"@example.com', "usér@example.com", "user@exämple.com",
    "user@example.com\n", "", "@example.com", "user@", "user", "user@@example.com",
    "user@example.com@x.com", "user@example.com>", "<user@example.com>",
    "user@ex\u212aample.com", "user@com", "user@a.b.c.d.e.f.g.h",
]


def outcome(check: Any, value: str) -> tuple[str, Any]:
    try:
        return "sent", check(EMAIL, value)
    except (ValidationError, ValueError) as exc:
        return "refused", reason(exc)


@pytest.mark.parametrize("address", ADDRESSES)
def test_an_email_value_is_judged_as_the_model_judges_it(address: str) -> None:
    assert outcome(checked_email, address) == outcome(_checked, address)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="aZ09.-+_'@<> \"éK\u212aİ\n", max_size=24),
       st.text(alphabet="aBz09.-_xn", max_size=24))
def test_any_address_is_judged_as_the_model_judges_it(local: str, domain: str) -> None:
    for address in (f"{local}@{domain}", local, f"{local}@{domain}.com"):
        assert outcome(checked_email, address) == outcome(_checked, address)


def test_a_shape_sends_the_address_the_model_would() -> None:
    names = ("name.givenName", WORK_EMAIL)
    for address in ("Ann@Example.COM", "Postmaster@Example.com", "a@xn--bcher-kva.example"):
        values = dict(zip(names, ("Ann", address), strict=True))
        assert user_body(values, "ann", True, None, Context.RESOURCE_CREATION_REQUEST,
                         "test") == exact(values, "ann", True, None,
                                          Context.RESOURCE_CREATION_REQUEST)
