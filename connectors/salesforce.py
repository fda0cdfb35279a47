"""Salesforce outbound connector: the User sObject over the REST API, public groups.

Property keys keep the reference server's names (``sf-clientid``, ``sf-domain-name``, …);
ours are ``sf-profile-id``, the locale keys, ``sf-api-reserve``, the JWT bearer key and
``sf-rename-on-deprovision``.

Decisions worth knowing:

* Users are created by ``POST …/sobjects/User/`` with every field Salesforce requires and
  updated by ``PATCH …/sobjects/User/{id}`` (204). Field names are Salesforce's: the
  identity provider's claim mappings name them as remote claims; without a mapping for
  them, ``FirstName``, ``LastName`` and ``Email`` come from the ``givenname``, ``lastname``
  and ``emailaddress`` claims. Values are typed as Salesforce types the field
  (``FIELD_TYPES``: a ``"true"`` claim is JSON ``true`` for a boolean field).
* Salesforce users cannot be deleted: delete and disable both ``PATCH {"IsActive":
  false}``; with ``sf-rename-on-deprovision`` the Username is also renamed
  (``old<uuid>_<name>``, as the reference does) so that it can be used again. Every
  update sends ``IsActive``, so re-provisioning reactivates.
* ``DUPLICATE_USERNAME`` (and 409) is a :class:`ConflictError`: the engine then adopts the
  user that ``lookup_user`` finds with a SOQL query (the literal quote-escaped).
* Groups are public groups (``Group`` of type ``Regular``), found by ``DeveloperName`` or
  ``Name``; members are ``GroupMember`` rows, inserted and deleted one by one (a member
  already there is not an error); the rows to delete are found with one query for the
  set (``UserOrGroupId IN (…)``, ``IN_CHUNK`` ids a query).
* Listing (reconciliation) is SOQL through ``…/query/``, followed through
  ``nextRecordsUrl`` batch by batch (``Sforce-Query-Options: batchSize``): users with
  ``LISTED_FIELDS``, deactivated ones included and listed inactive, which is how
  Salesforce holds a user we deleted (the reconciliation counts them as deleted); the
  listed name is the Username without the ``@sf-prov-domainName`` we added. Groups come
  with their members, one ``GroupMember`` query per page of groups. ``drift`` compares
  the listed fields with what an update would send, typed.
* OAuth: JWT bearer when ``sf-jwt-private-key`` is set, else ``grant_type=password`` when
  ``sf-usePasswordGrant`` is on, else ``client_credentials``. The token lives in the
  target's memo (shared by its connectors) and is fetched again once when the org answers
  401 ``INVALID_SESSION_ID``.
* The org's API budget: every ``Sforce-Limit-Info: api-usage=N/M`` is kept in the memo and
  reported in :meth:`target_facts`; when less than ``sf-api-reserve`` percent is left, an
  operation raises :class:`TargetPaused` instead of spending it, and the engine holds the
  target (state ``throttled``) until a probe job finds the usage lower (the probe reads
  ``…/limits/`` first when the last reading is older than ``probe-seconds``).
* ``exchanges`` hold every request and answer without headers; token requests are
  recorded with client secret, password, assertion and access token masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from connectors.base import (
    IDP_NAME,
    LIST_PAGE,
    ConflictError,
    Connector,
    ConnectorError,
    ConnectorSpec,
    Exchange,
    OutboundGroup,
    OutboundUser,
    PermanentError,
    RemoteNotFound,
    RemoteObject,
    RemoteRef,
    RetryableError,
    TargetPaused,
)
from connectors.user_ids import DEFAULT_PATTERN, build_user_id, pattern_parts
from connectors.wire import decoded_body, decoded_json, parsed_url, redact, retry_after
from core.claims import LOCAL_DIALECT
from core.properties import FieldError, PropertySpec, PropertyType

_P = PropertyType
DEFAULT_TOKEN_ENDPOINT = "https://login.salesforce.com/services/oauth2/token"

SPEC_PROPERTIES = (
    PropertySpec("sf-domain-name", "Instance URL", _P.URL, required=True,
                 help="e.g. https://acme.my.salesforce.com"),
    PropertySpec("sf-api-version", "API version", default="v61.0", help="shaped vNN.N"),
    PropertySpec("sf-token-endpoint", "Token endpoint", _P.URL,
                 default=DEFAULT_TOKEN_ENDPOINT),
    PropertySpec("sf-clientid", "Consumer key (client id)", required=True),
    PropertySpec("sf-client-secret", "Consumer secret", secret=True,
                 help="for the password and client credentials flows"),
    PropertySpec("sf-usePasswordGrant", "Use the password grant", _P.BOOLEAN, default=False,
                 help="off: client credentials (unless a JWT key is set)"),
    PropertySpec("sf-username", "Username",
                 help="the integration user (password grant; JWT bearer subject)"),
    PropertySpec("sf-password", "Password and security token", secret=True),
    PropertySpec("sf-jwt-private-key", "JWT bearer private key (PEM)", secret=True,
                 help="set: the JWT bearer flow (consumer key as iss, username as sub)"),
    PropertySpec("sf-jwt-audience", "JWT bearer audience",
                 help="default: the token endpoint's origin (https://login.salesforce.com, "
                      "https://test.salesforce.com)"),
    PropertySpec("sf-profile-id", "Profile id of new users", required=True,
                 help="a 15- or 18-character Salesforce id"),
    PropertySpec("sf-prov-pattern", "Username pattern", default="{UN}",
                 help="e.g. {UD, UN}: user name UN, userstore domain UD, tenant domain "
                      "TD, identity provider IDP (joined by the separator, lower-cased)"),
    PropertySpec("sf-prov-separator", "Pattern separator", default="_"),
    PropertySpec("sf-prov-domainName", "Username domain",
                 help="appended as @domain to names that are not addresses"),
    PropertySpec("sf-timezone", "Time zone", default="America/Los_Angeles"),
    PropertySpec("sf-locale", "Locale", default="en_US"),
    PropertySpec("sf-language", "Language", default="en_US"),
    PropertySpec("sf-email-encoding", "Email encoding", default="UTF-8"),
    PropertySpec("sf-api-reserve", "API budget reserve (%)", _P.INTEGER, default=10,
                 help="pause provisioning when less than this share of the org's daily "
                      "API requests is left"),
    PropertySpec("sf-rename-on-deprovision", "Rename deprovisioned users", _P.BOOLEAN,
                 default=False, help="free the Username of a deactivated user for reuse"),
)

_VERSION_RE = re.compile(r"^v\d{2}\.\d$")
_ID_RE = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LIMIT_RE = re.compile(r"api-usage=(\d+)/(\d+)")
ALIAS_LENGTH = 8
#: The User fields a listing reads: the state, and the fields sent without a claim
#: mapping (other mapped fields are not compared by a reconciliation).
LISTED_FIELDS = ("Id", "Username", "IsActive", "FirstName", "LastName", "Email", "Alias")
#: Records per query answer Salesforce allows one to ask for (``batchSize``).
MIN_QUERY_BATCH, QUERY_BATCH = 200, 2000
#: Ids per ``IN (…)`` list (a SOQL query over GET stays well under the URL limit).
IN_CHUNK = 200


def _check(values: Mapping[str, Any]) -> list[FieldError]:
    """Shapes the property schema cannot say: the id, the version, https, the flow."""
    errors = []
    version = values.get("sf-api-version")
    if version is not None and not _VERSION_RE.match(str(version)):
        errors.append(FieldError("sf-api-version", f"{version!r} is not shaped vNN.N "
                                                   "(e.g. v61.0)"))
    profile = values.get("sf-profile-id")
    if profile is not None and not _ID_RE.match(str(profile)):
        errors.append(FieldError("sf-profile-id", f"{profile!r} is not a 15- or "
                                                  "18-character Salesforce id"))
    for key in ("sf-domain-name", "sf-token-endpoint"):
        if values.get(key) is not None and not _secure_url(str(values[key])):
            errors.append(FieldError(key, f"{values[key]!r} must be an https URL (http only "
                                          "for 127.0.0.1)"))
    reserve = values.get("sf-api-reserve")
    if isinstance(reserve, int) and not 0 <= reserve < 100:
        errors.append(FieldError("sf-api-reserve", "expected a percentage from 0 to 99"))
    pattern = values.get("sf-prov-pattern")
    if pattern:
        try:
            pattern_parts(str(pattern))
        except ValueError as exc:
            errors.append(FieldError("sf-prov-pattern", str(exc)))
    pem = values.get("sf-jwt-private-key")
    if pem:
        if not values.get("sf-username"):
            errors.append(FieldError("sf-username", "is required for the JWT bearer flow "
                                                    "(sf-jwt-private-key is set)"))
        try:
            load_pem_private_key(str(pem).encode(), None)
        except (ValueError, TypeError):
            errors.append(FieldError("sf-jwt-private-key", "is not an unencrypted PEM "
                                                           "private key"))
    elif values.get("sf-usePasswordGrant"):
        errors += [FieldError(k, "is required when sf-usePasswordGrant is true")
                   for k in ("sf-username", "sf-password", "sf-client-secret")
                   if not values.get(k)]
    elif values.get("sf-clientid") and not values.get("sf-client-secret"):
        errors.append(FieldError("sf-client-secret", "is required for the client "
                                                     "credentials flow"))
    return errors


def _secure_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http"
                                       and parts.hostname == "127.0.0.1")


SPEC = ConnectorSpec(
    type="salesforce",
    label="Salesforce",
    properties=SPEC_PROPERTIES,
    supports_groups=True,
    checks=_check,
    deletes_users=False,
    contract_peer="connectors.sandbox.salesforce:contract_peer",
)

_DEFAULTS = {s.name: s.default for s in SPEC.all_properties if s.default is not None}
#: Salesforce's types of the User fields that are not strings (others are sent as text).
FIELD_TYPES: dict[str, type] = {
    "IsActive": bool, "ReceivesInfoEmails": bool, "ReceivesAdminInfoEmails": bool,
    "UserPermissionsMarketingUser": bool, "UserPermissionsOfflineUser": bool,
    "UserPermissionsSupportUser": bool, "UserPermissionsKnowledgeUser": bool,
    "UserPermissionsInteractionUser": bool, "UserPermissionsSFContentUser": bool,
    "UserPermissionsCallCenterAutoLogin": bool, "ForecastEnabled": bool,
    "EmailPreferencesAutoBcc": bool, "Latitude": float, "Longitude": float,
}
#: Field <- local claim, used when no claim mapping names the field.
DEFAULT_FIELDS = {"FirstName": f"{LOCAL_DIALECT}/givenname",
                  "LastName": f"{LOCAL_DIALECT}/lastname",
                  "Email": f"{LOCAL_DIALECT}/emailaddress"}
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}
#: Codes that mean the object exists already (adopt it).
_CONFLICT_CODES = frozenset({"DUPLICATE_USERNAME", "DUPLICATE_VALUE",
                             "DUPLICATE_DEVELOPER_NAME"})
_RETRY_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED", "UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"})
_NOT_FOUND_CODES = frozenset({"NOT_FOUND", "ENTITY_IS_DELETED"})


@dataclass(frozen=True)
class ApiUsage:
    """The org's daily API requests as the last answer counted them."""

    used: int
    limit: int
    read_at: float  # time.monotonic()

    @property
    def left_percent(self) -> float:
        return 100.0 * (self.limit - self.used) / self.limit if self.limit else 100.0

    def describe(self) -> str:
        return f"{self.used}/{self.limit} ({self.left_percent:.0f} % left)"


class SalesforceConnector(Connector):
    spec = SPEC

    def __init__(self, properties: Mapping[str, Any], client: httpx.AsyncClient,
                 memo: dict[str, Any] | None = None) -> None:
        # defaults filled in for callers that pass raw properties (the engine types them)
        properties = {**_DEFAULTS, **{k: v for k, v in properties.items() if v is not None}}
        super().__init__(properties, client, memo)
        self.domain = str(properties["sf-domain-name"]).rstrip("/")
        self.version = str(properties.get("sf-api-version") or "v61.0")
        self.base = f"{self.domain}/services/data/{self.version}"
        self.token_endpoint = str(properties.get("sf-token-endpoint")
                                  or DEFAULT_TOKEN_ENDPOINT)
        self.reserve = float(properties.get("sf-api-reserve", 10) or 0)
        self.probe_seconds = float(properties.get("probe-seconds", 15))

    # ------------------------------------------------------------ service
    async def test_connection(self) -> str:
        await self._token()
        versions = await self._call("GET", f"{self.domain}/services/data/",
                                    "list the API versions", auth=False)
        known = {str(v.get("version")) for v in versions or [] if isinstance(v, Mapping)}
        wanted = self.version.removeprefix("v")
        if known and wanted not in known:
            raise PermanentError(f"the org does not offer API {self.version} (it offers "
                                 f"{', '.join(sorted(known))}); fix sf-api-version")
        limits = await self._call("GET", f"{self.base}/limits/", "read the org's limits")
        found = [f"Salesforce org at {self.domain}: token granted ({self._flow()} flow), "
                 f"API {self.version} offered"]
        usage = self.usage()
        if usage is not None:
            found.append(f"API usage {usage.describe()}")
        elif isinstance(limits, Mapping):
            found.append("limits readable")
        return "; ".join(found)

    def target_facts(self) -> dict[str, str]:
        usage = self.usage()
        return {"api usage": usage.describe()} if usage is not None else {}

    def usage(self) -> ApiUsage | None:
        found = self.memo.get("api-usage")
        return found if isinstance(found, ApiUsage) else None

    # ------------------------------------------------------------ users
    def remote_username(self, user: OutboundUser) -> str:
        """The Username: ``sf-prov-pattern`` filled in, then ``@sf-prov-domainName``."""
        if not user.username:
            raise PermanentError("the user has no username to send as Username")
        try:
            name = build_user_id(str(self.properties.get("sf-prov-pattern") or DEFAULT_PATTERN),
                                 str(self.properties.get("sf-prov-separator") or ""),
                                 user.username, user.domain,
                                 str(self.properties.get(IDP_NAME) or ""))
        except ValueError as exc:
            raise PermanentError(f"user {user.username!r}: sf-prov-pattern: {exc}") from None
        domain = self.properties.get("sf-prov-domainName")
        if domain and "@" not in name:
            name = f"{name}@{domain}"
        if not _EMAIL_RE.match(name):
            raise PermanentError(f"user {user.username!r}: Username {name!r} is not shaped "
                                 "like an email address, which Salesforce requires (set "
                                 "sf-prov-domainName)")
        return name

    def user_fields(self, user: OutboundUser, creating: bool) -> dict[str, Any]:
        """The User sObject fields for ``user``; a missing required value or a value of the
        wrong type is a PermanentError naming the user and the field, before any request."""
        fields: dict[str, Any] = {}
        for field_name, claim in DEFAULT_FIELDS.items():
            if user.claims.get(claim):
                fields[field_name] = user.claims[claim]
        for remote, value in user.attributes.items():
            fields[remote] = _typed(user.username, remote, value)
        fields["Username"] = self.remote_username(user)
        fields["IsActive"] = user.active
        if creating:
            local = user.username.split("@", 1)[0]
            fields.setdefault("Alias", local[:ALIAS_LENGTH])
            fields.setdefault("TimeZoneSidKey", self.properties.get("sf-timezone"))
            fields.setdefault("LocaleSidKey", self.properties.get("sf-locale"))
            fields.setdefault("LanguageLocaleKey", self.properties.get("sf-language"))
            fields.setdefault("EmailEncodingKey", self.properties.get("sf-email-encoding"))
            fields.setdefault("ProfileId", self.properties.get("sf-profile-id"))
        for required in ("LastName", "Email"):
            if creating and not fields.get(required):
                raise PermanentError(
                    f"user {user.username!r} has no {required} for Salesforce: its "
                    f"{DEFAULT_FIELDS[required].rsplit('/', 1)[1]} claim is empty and no "
                    f"claim mapping to {required} gives a value or default")
        return fields

    async def create_user(self, user: OutboundUser) -> RemoteRef:
        fields = self.user_fields(user, creating=True)
        what = f"create user {fields['Username']!r}"
        body = await self._call("POST", f"{self.base}/sobjects/User/", what, body=fields)
        return RemoteRef(_created_id(body, what), fields["Username"])

    async def update_user(self, remote_id: str, user: OutboundUser) -> RemoteRef:
        fields = self.user_fields(user, creating=False)
        what = f"update user {fields['Username']!r} (id {remote_id})"
        await self._call("PATCH", self._object("User", remote_id), what, body=fields)
        return RemoteRef(remote_id, fields["Username"])

    async def set_active(self, remote_id: str, user: OutboundUser, active: bool) -> None:
        what = f"{'enable' if active else 'disable'} user {user.username!r} (id {remote_id})"
        body: dict[str, Any] = {"IsActive": active}
        if active:
            body["Username"] = self.remote_username(user)
        elif self.properties.get("sf-rename-on-deprovision"):
            body["Username"] = f"old{uuid.uuid4().hex}_{self.remote_username(user)}"
        await self._call("PATCH", self._object("User", remote_id), what, body=body)

    async def delete_user(self, remote_id: str, user: OutboundUser) -> None:
        """Salesforce users cannot be deleted: deactivated instead."""
        await self.set_active(remote_id, user, False)

    async def lookup_user(self, user: OutboundUser) -> RemoteRef | None:
        name = self.remote_username(user)
        rows = await self._query(f"SELECT Id, Username FROM User WHERE Username = "
                                 f"{soql_literal(name)}", f"look up user {name!r}")
        same = [r for r in rows if str(r.get("Username", "")).casefold() == name.casefold()]
        if len(same) > 1:
            raise PermanentError(f"look up user {name!r}: {len(same)} users have that "
                                 "Username; cannot tell which one is ours")
        return RemoteRef(str(same[0]["Id"]), name) if same else None

    # ------------------------------------------------------------ groups
    async def create_group(self, group: OutboundGroup) -> RemoteRef:
        name = _group_name(group)
        what = f"create group {name!r}"
        body = await self._call("POST", f"{self.base}/sobjects/Group/", what, body={
            "Name": name, "DeveloperName": developer_name(name), "Type": "Regular"})
        ref = RemoteRef(_created_id(body, what), name)
        await self.change_members(ref.id, group, group.member_ids, ())
        return ref

    async def rename_group(self, remote_id: str, group: OutboundGroup) -> RemoteRef:
        name = _group_name(group)
        await self._call("PATCH", self._object("Group", remote_id),
                         f"rename group (id {remote_id}) to {name!r}", body={"Name": name})
        return RemoteRef(remote_id, name)

    async def change_members(self, remote_id: str, group: OutboundGroup,
                             add: Sequence[str], remove: Sequence[str]) -> None:
        what = f"change the members of group {group.name!r} (id {remote_id})"
        gone = list(dict.fromkeys(remove))
        for chunk in (gone[i:i + IN_CHUNK] for i in range(0, len(gone), IN_CHUNK)):
            rows = await self._query("SELECT Id, UserOrGroupId FROM GroupMember WHERE GroupId = "
                                     f"{soql_literal(remote_id)} AND UserOrGroupId IN "
                                     f"{soql_list(chunk)}", what)
            for row in rows:
                with contextlib.suppress(RemoteNotFound):  # gone meanwhile: as wanted
                    await self._call("DELETE", self._object("GroupMember", str(row["Id"])),
                                     what)
        for member in dict.fromkeys(add):
            with contextlib.suppress(ConflictError):  # a member already: as wanted
                await self._call("POST", f"{self.base}/sobjects/GroupMember/", what,
                                 body={"GroupId": remote_id, "UserOrGroupId": member})

    async def delete_group(self, remote_id: str, group: OutboundGroup) -> None:
        await self._call("DELETE", self._object("Group", remote_id),
                         f"delete group {group.name!r} (id {remote_id})")

    async def lookup_group(self, group: OutboundGroup) -> RemoteRef | None:
        name = _group_name(group)
        what = f"look up group {name!r}"
        rows = await self._query(
            "SELECT Id, Name, DeveloperName, Type FROM Group WHERE DeveloperName = "
            f"{soql_literal(developer_name(name))} OR Name = {soql_literal(name)}", what)
        public = [r for r in rows if r.get("Type", "Regular") == "Regular"]
        by_dev = [r for r in public if r.get("DeveloperName") == developer_name(name)]
        same = by_dev or [r for r in public if r.get("Name") == name]
        if len(same) > 1:
            raise PermanentError(f"{what}: {len(same)} public groups have that name; cannot "
                                 "tell which one is ours")
        return RemoteRef(str(same[0]["Id"]), name) if same else None

    # ------------------------------------------------------------ listing
    async def list_users(self, page_size: int = LIST_PAGE,
                         known: Iterable[str] = ()) -> AsyncIterator[RemoteObject]:
        """Every User of the org with :data:`LISTED_FIELDS`, deactivated ones included
        (``active`` false: how Salesforce holds a user we deleted)."""
        soql = f"SELECT {', '.join(LISTED_FIELDS)} FROM User"
        async for row in self._rows(soql, "list the users", page_size, listing=True):
            username = str(row.get("Username") or "")
            yield RemoteObject(str(row["Id"]), self._listed_name(username),
                               row.get("IsActive") is not False,
                               {k: row.get(k) for k in LISTED_FIELDS if k != "Id"})

    async def list_groups(self, page_size: int = LIST_PAGE) -> AsyncIterator[RemoteObject]:
        """Every public group with its members: one query for the groups, and per page
        of groups one query for their members."""
        soql = "SELECT Id, Name, DeveloperName FROM Group WHERE Type = 'Regular'"
        page: list[Mapping[str, Any]] = []
        async for row in self._rows(soql, "list the groups", page_size, listing=True):
            page.append(row)
            if len(page) >= min(page_size, IN_CHUNK):
                for found in await self._with_members(page):
                    yield found
                page = []
        for found in await self._with_members(page):
            yield found

    async def _with_members(self, groups: Sequence[Mapping[str, Any]]) -> list[RemoteObject]:
        if not groups:
            return []
        ids = [str(g["Id"]) for g in groups]
        members: dict[str, list[str]] = {i: [] for i in ids}
        async for row in self._rows("SELECT Id, GroupId, UserOrGroupId FROM GroupMember "
                                    f"WHERE GroupId IN {soql_list(ids)}",
                                    "list the groups' members"):
            members.setdefault(str(row.get("GroupId")), []).append(
                str(row.get("UserOrGroupId")))
        return [RemoteObject(str(g["Id"]), str(g.get("Name") or ""),
                             attributes={"DeveloperName": g.get("DeveloperName")},
                             members=members[str(g["Id"])]) for g in groups]

    def drift(self, remote: RemoteObject, user: OutboundUser) -> list[str]:
        """The listed fields whose value differs from what :meth:`update_user` would send
        (typed as Salesforce types them; Username without regard to case)."""
        try:
            wanted = self.user_fields(user, creating=False)
        except PermanentError:  # cannot be sent at all: every field it names differs
            return sorted(user.attributes) or ["Username"]
        differ = []
        for name, value in wanted.items():
            if name == "IsActive" or name not in remote.attributes:
                continue
            have = remote.attributes[name]
            if name == "Username":
                same = str(have or "").casefold() == str(value).casefold()
            else:
                same = have == value or (have in (None, "") and value in (None, ""))
            if not same:
                differ.append(name)
        return differ + (["active"] if remote.active != user.active else [])

    def _listed_name(self, username: str) -> str:
        """The user name a Username was built from: without ``@sf-prov-domainName`` when
        the connector added it (a name that was no address)."""
        domain = str(self.properties.get("sf-prov-domainName") or "")
        suffix = f"@{domain}".casefold()
        if domain and username.casefold().endswith(suffix):
            return username[:-len(suffix)]
        return username

    # ------------------------------------------------------------ the org's API
    def _object(self, sobject: str, remote_id: str) -> str:
        return f"{self.base}/sobjects/{sobject}/{quote(remote_id, safe='')}"

    async def _query(self, soql: str, what: str) -> list[Mapping[str, Any]]:
        """Every record a SOQL query answers (following ``nextRecordsUrl``)."""
        return [row async for row in self._rows(soql, what)]

    async def _rows(self, soql: str, what: str, batch: int = QUERY_BATCH,
                    listing: bool = False) -> AsyncIterator[Mapping[str, Any]]:
        """The records a SOQL query answers, batch by batch as Salesforce sends them
        (``batch`` asked for, 200 to 2000; the org may send fewer), following
        ``nextRecordsUrl`` until ``done``. A ``listing`` keeps the exchanges of its last
        batch only (one of 100,000 users would otherwise hold every batch it read)."""
        size = max(MIN_QUERY_BATCH, min(QUERY_BATCH, batch))
        headers = {"Sforce-Query-Options": f"batchSize={size}"}
        url, params = f"{self.base}/query/", {"q": soql}  # the query, then its locators
        while True:
            if listing:
                self.exchanges.clear()
            body = await self._call("GET", url, what, params=params, headers=headers)
            if not isinstance(body, Mapping):
                return
            for row in body.get("records") or []:
                if isinstance(row, Mapping) and row.get("Id"):
                    yield row
            following = body.get("nextRecordsUrl")
            if body.get("done", True) or not isinstance(following, str):
                return
            url, params = f"{self.domain}{following}", {}

    async def _check_budget(self) -> None:
        """Raise TargetPaused while less than the reserve of the org's budget is left (a
        reading older than ``probe-seconds`` is refreshed first)."""
        usage = self.usage()
        if usage is None or usage.left_percent >= self.reserve:
            return
        if time.monotonic() - usage.read_at >= self.probe_seconds:
            await self._send("GET", f"{self.base}/limits/", "read the org's API usage",
                             budget=False)
            usage = self.usage()
            if usage is None or usage.left_percent >= self.reserve:
                return
        raise TargetPaused(f"the org's API budget is nearly spent: {usage.describe()}, "
                           f"less than the reserve of {self.reserve:g} % (sf-api-reserve)",
                           delay=self.probe_seconds)

    async def _call(self, method: str, url: str, what: str, *, body: Any = None,
                    params: Mapping[str, str] | None = None, auth: bool = True,
                    headers: Mapping[str, str] | None = None) -> Any:
        """Send one request of an operation; its decoded answer (None when empty)."""
        return (await self._send(method, url, what, body=body, params=params, auth=auth,
                                 headers=headers))[1]

    async def _send(self, method: str, url: str, what: str, *, body: Any = None,
                    params: Mapping[str, str] | None = None, auth: bool = True,
                    budget: bool = True, headers: Mapping[str, str] | None = None
                    ) -> tuple[httpx.Response, Any]:
        if auth and budget:
            await self._check_budget()
        text = None if body is None else json.dumps(body)
        token = await self._token() if auth else None
        response, answer = await self._exchange(method, url, what, text, body, params,
                                                token, headers)
        if token is not None and response.status_code == 401 \
                and _code(answer) == "INVALID_SESSION_ID":
            token = await self._token(stale=token)  # expired or revoked: once more
            response, answer = await self._exchange(method, url, what, text, body,
                                                    params, token, headers)
        if response.is_success:
            return response, answer
        raise _sf_error(what, f"{method} {response.request.url}", response.status_code,
                        answer, response.headers.get("Retry-After"))

    async def _exchange(self, method: str, url: str, what: str, text: str | None,
                        shown_body: Any, params: Mapping[str, str] | None,
                        token: str | None, extra: Mapping[str, str] | None = None
                        ) -> tuple[httpx.Response, Any]:
        """Send ``text`` (the JSON of ``shown_body``, None for no body) once, and record
        the exchange with both bodies' texts as they were sent and received."""
        headers = {"Accept": "application/json", **(extra or {})}
        if text is not None:
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = self._request(method, url, what, params=params, headers=headers,
                                content=None if text is None else text.encode())
        response = await self._transport(request, what, shown_body)
        answer, answer_text = decoded_json(response)
        self.exchanges.append(Exchange(method, str(request.url), shown_body,
                                       response.status_code, answer, text, answer_text))
        self._note_usage(response)
        return response, answer

    def _request(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Request:
        try:
            return self.client.build_request(method, self._parsed(url), **kwargs)
        except httpx.InvalidURL as exc:
            raise PermanentError(f"{what}: {url} is not a usable URL: {exc}") from None

    def _parsed(self, url: str) -> httpx.URL | str:
        """``url`` parsed, once for every connector sharing ``memo`` when it is a
        collection's or the service's (ending in ``/``: a few per org, where an object's
        URL is one of millions)."""
        return parsed_url(self.memo, url) if url.endswith("/") else url

    async def _transport(self, request: httpx.Request, what: str,
                         shown_body: Any) -> httpx.Response:
        """Send ``request``; a failure to get an answer becomes a typed error."""
        shown = f"{request.method} {request.url}"
        try:
            return await self.client.send(request)
        except httpx.TimeoutException as exc:
            error: ConnectorError = RetryableError(
                f"{what}: no answer in time to {shown} ({type(exc).__name__})")
        except httpx.UnsupportedProtocol as exc:
            error = PermanentError(f"{what}: cannot send {shown}: {exc}")
        except httpx.TransportError as exc:
            error = RetryableError(f"{what}: cannot reach Salesforce for {shown}: "
                                   f"{exc or type(exc).__name__}")
        self.exchanges.append(Exchange(request.method, str(request.url), shown_body))
        raise error

    def _note_usage(self, response: httpx.Response) -> None:
        found = _LIMIT_RE.search(response.headers.get("Sforce-Limit-Info", ""))
        if found:
            self.memo["api-usage"] = ApiUsage(int(found.group(1)), int(found.group(2)),
                                              time.monotonic())

    # ------------------------------------------------------------ OAuth
    def _flow(self) -> str:
        if self.properties.get("sf-jwt-private-key"):
            return "JWT bearer"
        return "password" if self.properties.get("sf-usePasswordGrant") \
            else "client credentials"

    async def _token(self, stale: str | None = None) -> str:
        """The target's access token, fetched once for every connector sharing ``memo``
        (again when ``stale`` is the one the org just refused)."""
        token = self.memo.get("token")
        if isinstance(token, str) and token != stale:
            return token
        async with self.memo.setdefault("token-lock", asyncio.Lock()):
            token = self.memo.get("token")
            if not isinstance(token, str) or token == stale:  # not fetched meanwhile
                token = await self._fetch_token()
                self.memo["token"] = token
            return token

    def _grant(self) -> dict[str, str]:
        """The token request's form (secrets in it: :func:`redact` before showing it)."""
        p = self.properties
        client_id = str(p.get("sf-clientid") or "")
        key = p.get("sf-jwt-private-key")
        if key:
            origin = urlsplit(self.token_endpoint)
            claims = {"iss": client_id, "sub": str(p.get("sf-username") or ""),
                      "aud": str(p.get("sf-jwt-audience")
                                 or f"{origin.scheme}://{origin.netloc}"),
                      "exp": int(time.time()) + 180}
            try:
                assertion = jwt.encode(claims, str(key), algorithm="RS256")
            except (ValueError, TypeError, jwt.PyJWTError):
                raise PermanentError("sf-jwt-private-key is not a usable RS256 private "
                                     "key") from None
            return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "assertion": assertion}
        form = {"client_id": client_id, "client_secret": str(p.get("sf-client-secret") or "")}
        if p.get("sf-usePasswordGrant"):
            return {"grant_type": "password", **form,
                    "username": str(p.get("sf-username") or ""),
                    "password": str(p.get("sf-password") or "")}
        return {"grant_type": "client_credentials", **form}

    async def _fetch_token(self) -> str:
        what = f"get an access token ({self._flow()} flow)"
        form = self._grant()
        shown = redact(form)
        request = self._request("POST", self.token_endpoint, what, data=form,
                                headers={"Accept": "application/json"})
        response = await self._transport(request, what, shown)
        answer = decoded_body(response)
        token = answer.get("access_token") if isinstance(answer, Mapping) else None
        self.exchanges.append(Exchange("POST", self.token_endpoint, shown,
                                       response.status_code, redact(answer)))
        if response.is_success and isinstance(token, str) and token:
            return token
        said = _oauth_error(answer, response.status_code)
        message = f"{what}: the token endpoint answered {said} (POST {self.token_endpoint})"
        if response.status_code >= 500 or response.status_code == 429:
            raise RetryableError(message, response.status_code,
                                 retry_after(response.headers.get("Retry-After")))
        raise PermanentError(f"{message}; check sf-clientid and the credentials of the "
                             f"{self._flow()} flow", response.status_code)


# ---------------------------------------------------------------- helpers
def soql_literal(value: str) -> str:
    """A SOQL string literal: quoted, with backslash, quote and control characters
    escaped (a value can never end the literal early)."""
    escaped = (value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t").replace("\b", "\\b")
               .replace("\f", "\\f").replace('"', '\\"'))
    return f"'{escaped}'"


def soql_list(values: Sequence[str]) -> str:
    """A SOQL list for ``IN``: ``('a', 'b')``, each value a :func:`soql_literal`."""
    return "(" + ", ".join(soql_literal(v) for v in values) + ")"


def developer_name(name: str) -> str:
    """A group's API name: letters, digits and single underscores, starting with a letter,
    at most 80 characters (Salesforce's rules)."""
    text = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
    text = re.sub(r"_+", "_", text)
    if not text or not text[0].isalpha():
        text = "G_" + text
    return text[:80].rstrip("_")


def _group_name(group: OutboundGroup) -> str:
    if not group.name:
        raise PermanentError("the group has no name to send as Name")
    return group.name


def _typed(username: str, field_name: str, value: str) -> Any:
    """``value`` as Salesforce types ``field_name``."""
    kind = FIELD_TYPES.get(field_name)
    if kind is bool:
        text = str(value).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise PermanentError(f"user {username!r}: {field_name} is a boolean field; the "
                             f"value {value!r} is not true or false")
    if kind is float:
        try:
            return float(value)
        except ValueError:
            raise PermanentError(f"user {username!r}: {field_name} is a number field; the "
                                 f"value {value!r} is not a number") from None
    return value


def _created_id(body: Any, what: str) -> str:
    found = body.get("id") if isinstance(body, Mapping) else None
    if isinstance(found, str) and found:
        return found
    raise PermanentError(f"{what}: Salesforce answered without the new record's id")


def _errors(answer: Any) -> list[Mapping[str, Any]]:
    """Salesforce's error array ``[{"message", "errorCode", "fields"}]``."""
    if isinstance(answer, Mapping):
        answer = [answer]
    return [e for e in answer if isinstance(e, Mapping)] if isinstance(answer, list) else []


def _code(answer: Any) -> str:
    errors = _errors(answer)
    return str(errors[0].get("errorCode") or "") if errors else ""


def _oauth_error(answer: Any, status: int) -> str:
    if isinstance(answer, Mapping) and answer.get("error"):
        detail = answer.get("error_description")
        return f"HTTP {status} {answer['error']}" + (f": {detail}" if detail else "")
    return f"HTTP {status}" + (f": {answer}" if isinstance(answer, str) and answer else "")


def _sf_error(what: str, shown: str, status: int, answer: Any,
              wait: str | None) -> ConnectorError:
    errors = _errors(answer)
    said = "; ".join(
        f"{e.get('errorCode') or 'error'}: {e.get('message') or ''}".rstrip(": ")
        + (f" (fields: {', '.join(map(str, e['fields']))})" if e.get("fields") else "")
        for e in errors) or (answer if isinstance(answer, str) else "")
    message = f"{what}: Salesforce answered HTTP {status}" + (f" {said}" if said else "") + \
        f" ({shown})"
    codes = {str(e.get("errorCode")) for e in errors}
    if status == 409 or codes & _CONFLICT_CODES:
        return ConflictError(message, status)
    if status == 404 or codes & _NOT_FOUND_CODES:
        return RemoteNotFound(message, status)
    if codes & _RETRY_CODES or status in (408, 429) or (status >= 500 and status != 501):
        return RetryableError(message, status, retry_after(wait))
    if status == 401:
        return PermanentError(f"{message}; check the credentials (sf-clientid and its "
                              "flow's secrets)", status)
    return PermanentError(message, status)
