"""Claims: the local dialect, its mapping to store attributes per domain, and the SCIM dialect.

Local claim URIs keep the reference server's spelling (``http://wso2.org/claims/...``) so
that configurations migrate unchanged; everywhere a claim is typed, the short name (the last
path segment, e.g. ``emailaddress``) works too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select

from core.errors import InvalidInput
from core.names import PRIMARY
from core.schema import claim_attribute_mappings, external_claim_mappings, local_claims

LOCAL_DIALECT = "http://wso2.org/claims"
SCIM_CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SCIM_ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SCIM_DIALECT = "urn:ietf:params:scim:schemas:core:2.0"

USERNAME = f"{LOCAL_DIALECT}/username"
ACTIVE = f"{LOCAL_DIALECT}/active"


@dataclass(frozen=True)
class LocalClaim:
    uri: str
    display_name: str
    attribute: str  # default store attribute
    description: str = ""
    required: bool = False
    read_only: bool = False
    regex: str | None = None

    @property
    def short(self) -> str:
        return self.uri.rsplit("/", 1)[-1]


def _c(short: str, display: str, attribute: str, **kw: object) -> LocalClaim:
    return LocalClaim(f"{LOCAL_DIALECT}/{short}", display, attribute, **kw)  # type: ignore[arg-type]


#: The built-in local dialect, with the PRIMARY store's default attribute for each claim.
DEFAULT_LOCAL_CLAIMS: tuple[LocalClaim, ...] = (
    _c("username", "Username", "uid", required=True, read_only=True),
    _c("userid", "User ID", "userId", read_only=True),
    _c("givenname", "First name", "givenName"),
    _c("lastname", "Last name", "sn"),
    _c("displayname", "Display name", "displayName"),
    _c("nickname", "Nick name", "nickName"),
    _c("emailaddress", "Email", "mail", regex=r"^[^@\s]+@[^@\s]+$"),
    _c("telephone", "Telephone", "telephoneNumber"),
    _c("mobile", "Mobile", "mobile"),
    _c("active", "Active", "active", regex=r"^(true|false)$"),
    _c("title", "Job title", "title"),
    _c("department", "Department", "departmentNumber"),
    _c("organization", "Organization", "organizationName"),
    _c("costcenter", "Cost center", "costCenter"),
    _c("division", "Division", "division"),
    _c("employeenumber", "Employee number", "employeeNumber"),
    _c("manager", "Manager", "manager"),
    _c("country", "Country", "country"),
    _c("locality", "Locality", "localityName"),
    _c("preferredlanguage", "Preferred language", "preferredLanguage"),
    _c("locale", "Locale", "locale"),
    _c("timezone", "Time zone", "timeZone"),
    _c("externalid", "External ID", "externalId"),
    _c("profileurl", "Profile URL", "url"),
    _c("usertype", "User type", "userType"),
)

#: SCIM 2.0 attribute (core User and the enterprise extension) -> local claim short name.
DEFAULT_SCIM_MAPPINGS: tuple[tuple[str, str], ...] = (
    (f"{SCIM_CORE_USER}:userName", "username"),
    (f"{SCIM_CORE_USER}:id", "userid"),
    (f"{SCIM_CORE_USER}:externalId", "externalid"),
    (f"{SCIM_CORE_USER}:name.givenName", "givenname"),
    (f"{SCIM_CORE_USER}:name.familyName", "lastname"),
    (f"{SCIM_CORE_USER}:displayName", "displayname"),
    (f"{SCIM_CORE_USER}:nickName", "nickname"),
    (f"{SCIM_CORE_USER}:profileUrl", "profileurl"),
    (f"{SCIM_CORE_USER}:title", "title"),
    (f"{SCIM_CORE_USER}:userType", "usertype"),
    (f"{SCIM_CORE_USER}:preferredLanguage", "preferredlanguage"),
    (f"{SCIM_CORE_USER}:locale", "locale"),
    (f"{SCIM_CORE_USER}:timezone", "timezone"),
    (f"{SCIM_CORE_USER}:active", "active"),
    (f"{SCIM_CORE_USER}:emails[type eq \"work\"].value", "emailaddress"),
    (f"{SCIM_CORE_USER}:phoneNumbers[type eq \"work\"].value", "telephone"),
    (f"{SCIM_CORE_USER}:phoneNumbers[type eq \"mobile\"].value", "mobile"),
    (f"{SCIM_CORE_USER}:addresses[type eq \"work\"].country", "country"),
    (f"{SCIM_CORE_USER}:addresses[type eq \"work\"].locality", "locality"),
    (f"{SCIM_ENTERPRISE_USER}:employeeNumber", "employeenumber"),
    (f"{SCIM_ENTERPRISE_USER}:costCenter", "costcenter"),
    (f"{SCIM_ENTERPRISE_USER}:organization", "organization"),
    (f"{SCIM_ENTERPRISE_USER}:division", "division"),
    (f"{SCIM_ENTERPRISE_USER}:department", "department"),
    (f"{SCIM_ENTERPRISE_USER}:manager.value", "manager"),
)


class ClaimCatalog:
    """The claims of a deployment, read from the system database and cached."""

    def __init__(
        self,
        claims: Iterable[LocalClaim],
        attribute_mappings: Mapping[str, Mapping[str, str]],
        external: Mapping[str, Mapping[str, str]],
    ) -> None:
        self.claims: dict[str, LocalClaim] = {c.uri: c for c in claims}
        self._short = {c.short.casefold(): c.uri for c in self.claims.values()}
        #: domain -> claim uri -> attribute
        self._mappings = {d: dict(m) for d, m in attribute_mappings.items()}
        self._merged: dict[str, dict[str, str]] = {}
        #: domain -> casefolded store attribute -> claim uri (``to_claims``)
        self._reverse: dict[str, dict[str, str]] = {}
        #: dialect -> external uri -> claim uri
        self.external = {d: dict(m) for d, m in external.items()}

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, conn: Connection) -> ClaimCatalog:
        rows = conn.execute(select(local_claims)).mappings().all()
        claims = [
            LocalClaim(r["uri"], r["display_name"], "", r["description"], r["required"],
                       r["read_only"], r["regex"])
            for r in rows
        ]
        mappings: dict[str, dict[str, str]] = {}
        for r in conn.execute(select(claim_attribute_mappings)).mappings():
            mappings.setdefault(r["domain"], {})[r["claim_uri"]] = r["attribute"]
        external: dict[str, dict[str, str]] = {}
        for r in conn.execute(select(external_claim_mappings)).mappings():
            external.setdefault(r["dialect"], {})[r["external_uri"]] = r["claim_uri"]
        return cls(claims, mappings, external)

    @staticmethod
    def seed_defaults(conn: Connection) -> bool:
        """Write the built-in dialects into an empty database; True when it wrote them."""
        if conn.execute(select(local_claims.c.uri).limit(1)).first():
            return False
        conn.execute(insert(local_claims), [
            {"uri": c.uri, "display_name": c.display_name, "description": c.description,
             "required": c.required, "read_only": c.read_only, "regex": c.regex}
            for c in DEFAULT_LOCAL_CLAIMS
        ])
        conn.execute(insert(claim_attribute_mappings), [
            {"claim_uri": c.uri, "domain": PRIMARY, "attribute": c.attribute}
            for c in DEFAULT_LOCAL_CLAIMS
        ])
        conn.execute(insert(external_claim_mappings), [
            {"dialect": SCIM_DIALECT, "external_uri": ext, "claim_uri": f"{LOCAL_DIALECT}/{s}"}
            for ext, s in DEFAULT_SCIM_MAPPINGS
        ])
        return True

    @staticmethod
    def replace_domain_mapping(conn: Connection, domain: str, mapping: Mapping[str, str]) -> None:
        conn.execute(delete(claim_attribute_mappings).where(
            claim_attribute_mappings.c.domain == domain))
        if mapping:
            conn.execute(insert(claim_attribute_mappings), [
                {"claim_uri": uri, "domain": domain, "attribute": attr}
                for uri, attr in mapping.items()
            ])

    # ------------------------------------------------------------------ lookups
    def resolve(self, name: str) -> str:
        """A claim URI from a URI or a short name; unknown claims are an error."""
        if name in self.claims:
            return name
        uri = self._short.get(name.casefold())
        if uri is None:
            raise InvalidInput(
                f"unknown claim {name!r}: use a local claim URI or short name such as "
                "'emailaddress' (see `mware-iam config export` for the list)"
            )
        return uri

    def mapping(self, domain: str) -> dict[str, str]:
        """claim URI -> store attribute for ``domain``; claims it does not map fall back to
        PRIMARY's attribute."""
        merged = self._merged.get(domain)
        if merged is None:
            merged = {**self._mappings.get(PRIMARY, {}), **self._mappings.get(domain, {})}
            self._merged[domain] = merged
        return merged

    def attribute(self, domain: str, claim_uri: str) -> str:
        attr = self.mapping(domain).get(claim_uri)
        if attr is None:
            raise InvalidInput(f"claim {claim_uri} has no attribute mapped in domain {domain}")
        return attr

    def to_attributes(self, domain: str, claims: Mapping[str, str]) -> dict[str, str]:
        """Store attributes for local claims (the username claim is not an attribute)."""
        out: dict[str, str] = {}
        for uri, value in claims.items():
            if uri == USERNAME:
                continue
            attribute, claim = self.target(domain, uri)
            validate_claim_value(claim, value)
            out[attribute] = value
        return out

    def target(self, domain: str, uri: str) -> tuple[str, LocalClaim]:
        """The store attribute a claim is written to in ``domain``, and the claim (whose
        rules a value must meet)."""
        claim = self.claims.get(uri)
        if claim is None:
            raise InvalidInput(f"unknown claim {uri!r}")
        return self.attribute(domain, uri), claim

    def to_claims(self, domain: str, attributes: Mapping[str, str]) -> dict[str, str]:
        """Local claims for store attributes. Names match regardless of case, as directory
        attribute names do (a mapping to ``givenname`` reads LDAP's ``givenName``)."""
        reverse = self._reverse.get(domain)
        if reverse is None:
            reverse = {attr.casefold(): uri for uri, attr in self.mapping(domain).items()}
            self._reverse[domain] = reverse
        return {reverse[a.casefold()]: v for a, v in attributes.items()
                if a.casefold() in reverse}

    def external_to_local(self, dialect: str) -> dict[str, str]:
        return dict(self.external.get(dialect, {}))


MAX_VALUE_LENGTH = 512


def validate_claim_value(claim: LocalClaim, value: str) -> None:

    if not isinstance(value, str):
        raise InvalidInput(f"claim {claim.short}: value must be text, got {type(value).__name__}")
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidInput(
            f"claim {claim.short}: value is {len(value)} characters, at most "
            f"{MAX_VALUE_LENGTH} are allowed"
        )
    if claim.regex and value and not re.fullmatch(claim.regex, value):
        raise InvalidInput(
            f"claim {claim.short}: {value!r} does not match the pattern {claim.regex}"
        )
