"""Property tests: domain-qualified names, the claim <-> attribute mapping, property coercion."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from core.claims import DEFAULT_LOCAL_CLAIMS, USERNAME, ClaimCatalog, LocalClaim
from core.errors import InvalidInput
from core.names import PRIMARY, QualifiedName, parse_name
from core.properties import (
    FieldError,
    PropertySpec,
    PropertyType,
    check,
    redact_urls,
    validate,
)

# ---------------------------------------------------------------- names
RESERVED = {"primary": "PRIMARY", "internal": "Internal", "application": "Application",
            "workflow": "Workflow", "system": "SYSTEM"}

domains = st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,63}", fullmatch=True)
#: A name part: not empty, no trailing whitespace (leading would belong to the whole text).
names = st.text(min_size=1, max_size=40).filter(lambda s: s == s.rstrip())
bare_names = names.filter(lambda s: "/" not in s and s == s.strip())


def expected_domain(domain: str) -> str:
    """Reserved domains keep their spelling whatever the case; others are upper-cased."""
    return RESERVED.get(domain.lower(), domain.upper())


@given(domains, names)
def test_qualified_name_round_trips_with_normalized_domain(domain: str, name: str) -> None:
    qn = parse_name(f"{domain}/{name}")
    assert qn == QualifiedName(expected_domain(domain), name)
    assert str(qn) == f"{expected_domain(domain)}/{name}"
    assert parse_name(str(qn)) == qn  # a printed name parses back to itself


@given(bare_names)
def test_unqualified_name_is_primary(name: str) -> None:
    assert parse_name(name) == QualifiedName(PRIMARY, name)


@given(bare_names, domains)
def test_unqualified_name_takes_the_given_default_domain(name: str, default: str) -> None:
    assert parse_name(name, default).domain == expected_domain(default)


@given(domains, names, names)
def test_only_the_first_separator_splits(domain: str, left: str, right: str) -> None:
    qn = parse_name(f"{domain}/{left}/{right}")
    assert qn.domain == expected_domain(domain)
    assert qn.name == f"{left}/{right}"


@given(st.text(max_size=80))
def test_any_text_parses_or_raises_invalid_input(text: str) -> None:
    try:
        qn = parse_name(text)
    except InvalidInput as exc:
        assert str(exc)  # a message for the administrator
        return
    assert qn.name and (str(qn).endswith(qn.name))


@pytest.mark.parametrize("text, message", [
    ("", "required"),
    ("   ", "required"),
    (" alice", "leading or trailing spaces"),
    ("alice ", "leading or trailing spaces"),
    ("/alice", "empty domain"),
    ("LDAP/", "nothing after the domain"),
    ("1ldap/alice", "domain '1ldap' is not valid"),
    ("my domain/alice", "is not valid"),
    ("d" * 65 + "/alice", "at most 64"),
    ("ümlaut/alice", "is not valid"),
])
def test_invalid_names_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        parse_name(text)


@pytest.mark.parametrize("value", [None, 5, b"alice", ["alice"]])
def test_a_name_that_is_not_text_is_invalid_input(value: object) -> None:
    with pytest.raises(InvalidInput):
        parse_name(value)  # type: ignore[arg-type]


@given(domains.filter(lambda d: d.lower() not in RESERVED))
def test_domain_case_does_not_matter(domain: str) -> None:
    assert parse_name(f"{domain.lower()}/x").domain == parse_name(f"{domain.upper()}/x").domain


# ---------------------------------------------------------------- claims
SECONDARY = "CORP"
CLAIMS = {c.uri: c for c in DEFAULT_LOCAL_CLAIMS}
MAPPED = sorted(uri for uri in CLAIMS if uri != USERNAME)


def catalog() -> ClaimCatalog:
    """The built-in dialect; CORP maps every claim to an attribute of its own name."""
    primary = {c.uri: c.attribute for c in DEFAULT_LOCAL_CLAIMS}
    corp = {c.uri: f"corp_{c.short}" for c in DEFAULT_LOCAL_CLAIMS}
    return ClaimCatalog(DEFAULT_LOCAL_CLAIMS, {PRIMARY: primary, SECONDARY: corp}, {})


def valid_value(claim: LocalClaim) -> st.SearchStrategy[str]:
    if claim.short == "emailaddress":
        return st.from_regex(r"[^@\s]{1,40}@[^@\s]{1,40}", fullmatch=True)
    if claim.short == "active":
        return st.sampled_from(["true", "false"])
    return st.text(max_size=512)


@st.composite
def claim_sets(draw: st.DrawFn) -> dict[str, str]:
    uris = draw(st.lists(st.sampled_from(MAPPED), unique=True))
    return {uri: draw(valid_value(CLAIMS[uri])) for uri in uris}


@given(claim_sets(), st.sampled_from([PRIMARY, SECONDARY, "UNMAPPED"]))
def test_claims_round_trip_through_store_attributes(claims: dict[str, str], domain: str) -> None:
    cat = catalog()
    attributes = cat.to_attributes(domain, claims)
    assert len(attributes) == len(claims)
    assert cat.to_claims(domain, attributes) == claims


@given(claim_sets())
def test_each_domain_uses_its_own_attribute_names(claims: dict[str, str]) -> None:
    cat = catalog()
    corp = cat.to_attributes(SECONDARY, claims)
    assert set(corp) == {f"corp_{CLAIMS[u].short}" for u in claims}
    # a domain without a mapping of its own uses PRIMARY's
    assert cat.to_attributes("UNMAPPED", claims) == cat.to_attributes(PRIMARY, claims)


@given(claim_sets(), st.text(min_size=1, max_size=20))
def test_the_username_claim_is_never_a_store_attribute(claims: dict[str, str],
                                                       name: str) -> None:
    cat = catalog()
    assert cat.to_attributes(PRIMARY, {**claims, USERNAME: name}) == \
        cat.to_attributes(PRIMARY, claims)


@given(st.text(min_size=1, max_size=30).filter(lambda s: s.casefold() not in
                                                {c.short.casefold() for c in CLAIMS.values()}))
def test_unknown_claims_are_invalid_input(name: str) -> None:
    assume(name not in CLAIMS)
    cat = catalog()
    with pytest.raises(InvalidInput, match="unknown claim"):
        cat.resolve(name)
    with pytest.raises(InvalidInput, match="unknown claim"):
        cat.to_attributes(PRIMARY, {name: "x"})


@given(st.sampled_from([c for c in DEFAULT_LOCAL_CLAIMS]))
def test_short_names_resolve_in_any_case(claim: LocalClaim) -> None:
    cat = catalog()
    assert cat.resolve(claim.short) == claim.uri
    assert cat.resolve(claim.short.upper()) == claim.uri
    assert cat.resolve(claim.uri) == claim.uri


@pytest.mark.parametrize("short, value, message", [
    ("emailaddress", "not-an-email", "claim emailaddress: 'not-an-email' does not match"),
    ("active", "maybe", "claim active: 'maybe' does not match"),
    ("givenname", "x" * 513, "claim givenname: value is 513 characters, at most 512"),
])
def test_bad_claim_values_name_the_claim(short: str, value: str, message: str) -> None:
    cat = catalog()
    with pytest.raises(InvalidInput, match=re.escape(message)):
        cat.to_attributes(PRIMARY, {cat.resolve(short): value})


def test_a_claim_without_attribute_in_the_domain_is_invalid_input() -> None:
    cat = ClaimCatalog(DEFAULT_LOCAL_CLAIMS, {PRIMARY: {}}, {})
    uri = cat.resolve("givenname")
    with pytest.raises(InvalidInput, match=f"claim {uri} has no attribute mapped in domain"):
        cat.to_attributes(PRIMARY, {uri: "Alice"})


# ---------------------------------------------------------------- properties
P = PropertyType
SPECS = (
    PropertySpec("enabled", "Enabled", P.BOOLEAN, default=True),
    PropertySpec("timeout", "Timeout", P.INTEGER),
    PropertySpec("mode", "Mode", P.CHOICE, choices=("basic", "bearer")),
    PropertySpec("endpoint", "Endpoint", P.URL, required=True),
    PropertySpec("pattern", "Pattern", P.REGEX),
    PropertySpec("token", "Token", P.INTEGER, secret=True),
)
URL = "http://127.0.0.1:8787/v2"


def spaced_case(words: list[str]) -> st.SearchStrategy[str]:
    """A word in any mix of case with surrounding spaces."""
    return st.builds(
        lambda w, flips, pad: pad + "".join(c.upper() if f else c for c, f in zip(w, flips,
                                                                                   strict=False))
        + pad,
        st.sampled_from(words), st.lists(st.booleans(), min_size=5, max_size=5),
        st.sampled_from(["", " ", "  "]))


@given(spaced_case(["true", "yes", "on", "1"]))
def test_boolean_true_spellings(text: str) -> None:
    assert check(SPECS, {"endpoint": URL, "enabled": text}) == (
        {"enabled": True, "endpoint": URL}, [])


@given(spaced_case(["false", "no", "off", "0"]))
def test_boolean_false_spellings(text: str) -> None:
    typed, errors = check(SPECS, {"endpoint": URL, "enabled": text})
    assert typed["enabled"] is False and errors == []


@given(st.text(max_size=10).filter(lambda s: s.strip().lower() not in
                                   {"", "true", "yes", "on", "1", "false", "no", "off", "0"}))
def test_other_boolean_values_are_field_errors(text: str) -> None:
    _, errors = check(SPECS, {"endpoint": URL, "enabled": text})
    assert errors == [FieldError("enabled", f"{text!r} is not valid: expected true or false")]


@given(st.integers())
def test_integers_from_text_or_numbers(value: int) -> None:
    for raw in (value, str(value), f" {value} "):
        typed, errors = check(SPECS, {"endpoint": URL, "timeout": raw})
        assert errors == [] and typed["timeout"] == value


@pytest.mark.parametrize("raw", ["ten", "1.5", True, "0x10"])
def test_non_integers_are_field_errors(raw: object) -> None:
    _, errors = check(SPECS, {"endpoint": URL, "timeout": raw})
    assert [(e.field, e.message) for e in errors] == [
        ("timeout", f"{raw!r} is not valid: expected a whole number")]


def test_a_bad_secret_is_reported_without_its_value() -> None:
    _, errors = check(SPECS, {"endpoint": URL, "token": "hunter2-secret"})
    assert [str(e) for e in errors] == ["token: the value is not valid: expected a whole number"]


@given(st.text(max_size=12))
def test_choices(text: str) -> None:
    typed, errors = check(SPECS, {"endpoint": URL, "mode": text})
    if text in ("basic", "bearer"):
        assert typed["mode"] == text and errors == []
    elif text != "":
        assert [str(e) for e in errors] == [
            f"mode: {text!r} is not valid: expected one of basic, bearer"]


@pytest.mark.parametrize("url, ok", [
    (URL, True), ("https://scim.example.com", True), ("ldaps://dc1:636", True),
    ("scim.example.com/v2", False), ("http://", False), ("not a url", False),
])
def test_urls(url: str, ok: bool) -> None:
    typed, errors = check(SPECS, {"endpoint": url})
    if ok:
        assert typed["endpoint"] == url and errors == []
    else:
        assert [e.field for e in errors] == ["endpoint"]
        assert "expected a URL" in errors[0].message


@pytest.mark.parametrize("url", [
    "http://admin:SECRET@127.0.0.1:8787/v2", "https://SECRET@scim.example.com/v2",
    "http://admin:p@ss:SECRET@host/v2",
])
def test_a_url_with_credentials_is_refused_naming_where_they_go(url: str) -> None:
    _, errors = check(SPECS, {"endpoint": url})
    assert [e.field for e in errors] == ["endpoint"]
    assert "must not carry a user name or password" in errors[0].message
    assert errors[0].message.endswith(": give them in token")  # the schema's secret
    assert "SECRET" not in str(errors[0])
    named = (PropertySpec("endpoint", "Endpoint", P.URL, credentials="user and password"),)
    assert str(check(named, {"endpoint": url})[1][0]).endswith(": give them in user and password")


def test_redact_urls_removes_credentials_wherever_a_url_appears() -> None:
    assert redact_urls("POST http://admin:SECRET@h:1/v2/Users failed; see https://x@y/z") == \
        "POST http://***@h:1/v2/Users failed; see https://***@y/z"
    assert redact_urls("mail admin@example.com at http://h/v2?x=a@b") == \
        "mail admin@example.com at http://h/v2?x=a@b"


@pytest.mark.parametrize("pattern, ok", [
    (r"^[\S]{3,30}$", True), ("a|b", True), ("(", False), ("[z-a]", False),
])
def test_regexes(pattern: str, ok: bool) -> None:
    typed, errors = check(SPECS, {"endpoint": URL, "pattern": pattern})
    if ok:
        assert typed["pattern"] == pattern and errors == []
    else:
        assert errors[0].field == "pattern"
        assert "not a valid regular expression" in errors[0].message


def test_missing_unknown_and_defaults() -> None:
    typed, errors = check(SPECS, {"colour": "blue"})
    assert typed == {"enabled": True}
    assert [e.field for e in errors] == ["colour", "endpoint"]
    assert "unknown property" in errors[0].message and "Endpoint is required" in errors[1].message
    # partial: only what was given is checked, no defaults, nothing required
    assert check(SPECS, {"timeout": "5"}, partial=True) == ({"timeout": 5}, [])


def test_validate_lists_every_faulty_field_with_its_place() -> None:
    with pytest.raises(InvalidInput) as exc:
        validate(SPECS, {"endpoint": "nowhere", "timeout": "x", "mode": "digest"}, "idp corp")
    message = str(exc.value)
    assert message.startswith("idp corp: ")
    for field in ("endpoint", "timeout", "mode"):
        assert f"{field}: " in message
