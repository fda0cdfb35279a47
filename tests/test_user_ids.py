"""The provisioning pattern (``connectors/user_ids.py``), shared by Google and Salesforce:
each placeholder, the separator between parts and taken out of values, lower case."""

from __future__ import annotations

import httpx
import pytest

from connectors.base import IDP_NAME, OutboundUser
from connectors.google import GoogleConnector
from connectors.salesforce import SPEC as SF_SPEC
from connectors.salesforce import SalesforceConnector, _check
from connectors.user_ids import TENANT_DOMAIN, build_user_id, pattern_parts
from core.properties import validate


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("{UN}", "ada"),
        ("{UD}", "ldapusers"),
        ("{TD}", TENANT_DOMAIN),
        ("{IDP}", "sfdc"),
        ("{UD, UN}", "ldapusers-ada"),
        ("{UN, IDP}", "ada-sfdc"),
        ("{TD, UN}", f"{TENANT_DOMAIN}-ada"),
        ("{UD}{UN}", "ldapusers-ada"),  # parts in braces of their own read the same
    ],
)
def test_each_placeholder_is_its_value_and_parts_are_joined_by_the_separator(
    pattern: str, expected: str
) -> None:
    assert build_user_id(pattern, "-", "Ada", "LDAPUSERS", "sfdc") == expected


def test_the_reference_example() -> None:
    # provisioning-reference.md §5.6: {UD, UN, TD, IDP}, separator "-"
    assert (
        build_user_id("{UD, UN, TD, IDP}", "-", "user@provisioning.com", "PRIMARY", "salesforce")
        == "primary-user@provisioning.com-carbon.super-salesforce"
    )


def test_the_separator_is_taken_out_of_each_value_and_an_empty_domain_is_primary() -> None:
    assert build_user_id("{UD, UN}", "_", "ada_lovelace", "", "x") == "primary_adalovelace"
    assert build_user_id("{UN, IDP}", "", "Ada", "PRIMARY", "Corp") == "adacorp"


@pytest.mark.parametrize("bad", ["UN", "{UN, XX}", "{}", "{UN}{NAME}"])
def test_a_bad_pattern_says_why(bad: str) -> None:
    with pytest.raises(ValueError, match=r"pattern in braces|unknown placeholder"):
        pattern_parts(bad)


def _salesforce(**props: str) -> SalesforceConnector:
    typed = validate(
        SF_SPEC.all_properties,
        {
            "sf-domain-name": "https://acme.my.salesforce.com",
            "sf-clientid": "c",
            "sf-client-secret": "s",
            "sf-profile-id": "00e5g000001AbCdEAF",
            **props,
        },
        "t",
    )
    return SalesforceConnector({**typed, IDP_NAME: "salesforce"}, httpx.AsyncClient())


def test_salesforce_builds_the_username_with_every_placeholder() -> None:
    c = _salesforce(**{"sf-prov-pattern": "{UD, UN, TD, IDP}", "sf-prov-separator": "-"})
    user = OutboundUser("user@provisioning.com", "PRIMARY")
    assert c.remote_username(user) == "primary-user@provisioning.com-carbon.super-salesforce"
    domained = _salesforce(
        **{
            "sf-prov-pattern": "{IDP, UN}",
            "sf-prov-separator": ".",
            "sf-prov-domainName": "acme.example.com",
        }
    )
    assert (
        domained.remote_username(OutboundUser("Ada", "PRIMARY"))
        == "salesforce.ada@acme.example.com"
    )
    assert _check({"sf-prov-pattern": "{UD, TD, IDP, UN}"}) == []


def test_google_builds_the_address_with_the_same_function() -> None:
    props = {
        "google_prov_domain_name": "example.org",
        "google_prov_service_acc_email": "svc@p.iam.gserviceaccount.com",
        "google_prov_admin_email": "admin@example.org",
        "google_prov_pattern": "{TD, UN}",
        "google_prov_separator": "_",
        IDP_NAME: "gws",
    }
    c = GoogleConnector(props, httpx.AsyncClient())
    assert c.primary_email(OutboundUser("Ada_L", "PRIMARY")) == "carbon.super_adal@example.org"
