"""Google Workspace outbound connector (Admin SDK Directory API v1): users, groups, members.

Property keys are the reference server's (``google_prov_*``), plus ``google_prov_api_url``
and ``google_prov_token_url`` so that sandboxes, proxies and tests can stand in for Google.

Decisions worth knowing:

* Auth is the service account's JWT bearer grant with domain-wide delegation (RS256,
  ``iss`` the service account, ``sub`` the administrator). Access tokens are kept in the
  target's memo, per scope set, until ``TOKEN_MARGIN`` seconds before they expire; a 401
  drops the token and the request is sent once more with a new one. User operations ask
  only for the ``admin.directory.user`` scope (the reference's only one); group operations
  ask for ``admin.directory.group`` as well, so a delegation granting users only keeps
  working for users.
* ``primaryEmail`` is the email claim when it is at the domain, else the provisioning
  pattern's result (``connectors/user_ids.py``: ``{UD, UN, TD, IDP}`` joined by the
  separator, lower-cased) at the domain; a result
  that is already an address must be at the domain. Users are addressed by the id Google
  returned. Google requires a password on create: the user's own when the engine hands one
  over, else a random one (never logged); on update only a changed password is sent.
* Updates go by ``PUT`` (Google gives it patch semantics: fields not sent stay). Disabling
  is ``suspended: true``. A 409 ``duplicate`` on create lets the engine adopt: the lookup
  reads ``users/{primaryEmail}`` and adopts only when the answer's primary address is that
  address (not an alias of somebody else).
* A group is ``name@domain`` (or the name when it is an address); members are added one
  request each (``role: MEMBER``) and removed by ``DELETE``; an existing member (409) or a
  missing one (404) is what was wanted.
* Google's error envelope is read: rate and quota refusals (403 ``userRateLimitExceeded`` /
  ``quotaExceeded``, 429) and 5xx are retryable (Retry-After honoured, else the engine's
  backoff with jitter), as is "User creation is not complete"; other 400/403 are permanent
  with Google's message.
* ``exchanges`` hold every request and answer without headers, with passwords, the JWT
  assertion and access tokens replaced by ``********``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

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
)
from connectors.user_ids import DEFAULT_PATTERN, build_user_id, pattern_parts
from connectors.wire import decoded_body, redact, retry_after
from core.claims import LOCAL_DIALECT
from core.properties import FieldError, PropertySpec, PropertyType

_P = PropertyType

DEFAULT_API_URL = "https://admin.googleapis.com"
DEFAULT_TOKEN_URL = "https://oauth2.googleapis.com/token"
USER_SCOPE = "https://www.googleapis.com/auth/admin.directory.user"
GROUP_SCOPE = "https://www.googleapis.com/auth/admin.directory.group"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DIRECTORY = "/admin/directory/v1"
#: The assertion's lifetime (Google accepts at most one hour).
ASSERTION_SECONDS = 3600
#: A token is fetched again this many seconds before it expires.
TOKEN_MARGIN = 60.0
#: The password Google gives every PKCS#12 service-account key file.
P12_PASSWORD = b"notasecret"
#: Google's limit for givenName and familyName.
MAX_NAME = 60
_RATE_REASONS = frozenset({"userRateLimitExceeded", "quotaExceeded", "rateLimitExceeded"})
_NOT_COMPLETE = "user creation is not complete"
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LOCAL_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._'+-]*$")


def check_properties(values: Mapping[str, Any]) -> list[FieldError]:
    """What the property types cannot say: an RSA key, an administrator and a service
    account with addresses (the administrator at the domain), a pattern of known
    placeholders. Properties that are missing are reported elsewhere."""
    errors = []
    domain = str(values.get("google_prov_domain_name") or "").strip().lower()
    if domain and not re.fullmatch(r"[a-z0-9.-]+\.[a-z]{2,}", domain):
        errors.append(FieldError("google_prov_domain_name",
                                 f"{domain!r} is not a domain name such as example.org"))
    for name in ("google_prov_service_acc_email", "google_prov_admin_email"):
        value = str(values.get(name) or "")
        if value and not _EMAIL_RE.match(value):
            errors.append(FieldError(name, f"{value!r} is not an email address"))
    admin = str(values.get("google_prov_admin_email") or "")
    if domain and _EMAIL_RE.match(admin) and not admin.lower().endswith("@" + domain):
        errors.append(FieldError("google_prov_admin_email",
                                 f"{admin!r} is not at the domain {domain} (the service "
                                 "account acts for an administrator of that domain)"))
    key = values.get("google_prov_private_key")
    if key:
        try:
            load_private_key(str(key))
        except ValueError as exc:
            errors.append(FieldError("google_prov_private_key", str(exc)))
    pattern = values.get("google_prov_pattern")
    if pattern:
        try:
            pattern_parts(str(pattern))
        except ValueError as exc:
            errors.append(FieldError("google_prov_pattern", str(exc)))
    return errors


SPEC = ConnectorSpec(
    type="googleapps",
    label="Google Workspace",
    properties=(
        PropertySpec("google_prov_domain_name", "Google domain", required=True,
                     help="e.g. example.org: users and groups are created at this domain"),
        PropertySpec("google_prov_service_acc_email", "Service account email", required=True,
                     help="e.g. provisioning@project.iam.gserviceaccount.com"),
        PropertySpec("google_prov_admin_email", "Administrator email", required=True,
                     help="the administrator the service account acts for (domain-wide "
                          "delegation)"),
        PropertySpec("google_prov_private_key", "Service account private key", required=True,
                     secret=True,
                     help="RSA key in PEM (or base64 PKCS#12); e.g. ${file:/path/key.pem}"),
        PropertySpec("google_prov_application_name", "Application name",
                     help="sent as the User-Agent of every request"),
        PropertySpec("google_prov_email_claim_dropdown", "Email claim", default="emailaddress",
                     help="local claim holding the primary email"),
        PropertySpec("google_prov_givenname_claim_dropdown", "Given name claim",
                     default="givenname"),
        PropertySpec("google_prov_familyname_claim_dropdown", "Family name claim",
                     default="lastname"),
        PropertySpec("google_prov_givenname", "Default given name",
                     help="sent when the user has no given name"),
        PropertySpec("google_prov_familyname", "Default family name",
                     help="sent when the user has no family name"),
        PropertySpec("google_prov_pattern", "Provisioning pattern", default="{UN}",
                     help="e.g. {UD, UN}: user name UN, user domain UD, tenant domain TD, "
                          "identity provider IDP"),
        PropertySpec("google_prov_separator", "Provisioning separator", default="_"),
        PropertySpec("google_prov_api_url", "Directory API URL", _P.URL,
                     default=DEFAULT_API_URL, schemes=("http", "https")),
        PropertySpec("google_prov_token_url", "Token URL", _P.URL, default=DEFAULT_TOKEN_URL,
                     schemes=("http", "https")),
    ),
    supports_groups=True,
    contract_peer="connectors.sandbox.google:contract_peer",
    checks=check_properties,
)


# ---------------------------------------------------------------- keys and names
def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """The service account's RSA key from PEM, a service-account JSON key file, or base64
    PKCS#12 (Google's ``notasecret`` password). ValueError says what is wrong, never the key."""
    text = text.strip()
    if text.startswith("{"):
        try:
            text = str(json.loads(text)["private_key"])
        except (ValueError, KeyError, TypeError):
            raise ValueError("the JSON key file has no private_key") from None
    try:
        if "-----BEGIN" in text:
            key: Any = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = pkcs12.load_key_and_certificates(
                base64.b64decode("".join(text.split()), validate=True), P12_PASSWORD)[0]
    except (ValueError, TypeError):
        raise ValueError("not a readable private key (expected an unencrypted RSA key in "
                         "PEM, or a base64 PKCS#12 file)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        kind = type(key).__name__.removeprefix("_").replace("PrivateKey", "") or "unknown"
        raise ValueError(f"not an RSA key (found {kind}); Google service accounts sign "
                         "with RSA (RS256)")
    return key


def claim_uri(name: str) -> str:
    return name if "://" in name else f"{LOCAL_DIALECT}/{name}"


class GoogleConnector(Connector):
    spec = SPEC

    def __init__(self, properties: Mapping[str, Any], client: httpx.AsyncClient,
                 memo: dict[str, Any] | None = None) -> None:
        super().__init__(properties, client, memo)
        self.domain = str(properties["google_prov_domain_name"]).strip().lower()
        self.api = str(properties.get("google_prov_api_url") or DEFAULT_API_URL).rstrip("/") \
            + DIRECTORY
        self.token_url = str(properties.get("google_prov_token_url") or DEFAULT_TOKEN_URL)
        self.account = str(properties["google_prov_service_acc_email"])
        self.admin = str(properties["google_prov_admin_email"])

    # ------------------------------------------------------------ service
    async def test_connection(self) -> str:
        await self._token((USER_SCOPE,))
        admin = await self._call("GET", self._user_url(self.admin), "read the administrator")
        is_admin = isinstance(admin, Mapping) and admin.get("isAdmin") is True
        return (f"Google Workspace at {self.api}: a token was issued to {self.account} "
                f"acting for {self.admin}; the administrator's account was read"
                + ("" if is_admin else " (Google does not call it an administrator)"))

    # ------------------------------------------------------------ users
    def primary_email(self, user: OutboundUser) -> str:
        email = str(user.claims.get(claim_uri(self._prop("google_prov_email_claim_dropdown",
                                                          "emailaddress"))) or "")
        if email.lower().endswith("@" + self.domain):
            return email
        try:
            built = build_user_id(self._prop("google_prov_pattern", DEFAULT_PATTERN),
                                  self._prop("google_prov_separator", "_"), user.username,
                                  user.domain, str(self.properties.get(IDP_NAME) or ""))
        except ValueError as exc:
            raise PermanentError(f"user {user.username!r}: google_prov_pattern: {exc}") from None
        where = f"user {user.username!r}: primaryEmail {{}} (from google_prov_pattern)"
        if "@" in built:
            if not built.lower().endswith("@" + self.domain) or not _EMAIL_RE.match(built):
                raise PermanentError(where.format(repr(built)) + " is outside the domain "
                                     f"{self.domain}; Google accepts only addresses there")
            return built
        if not _LOCAL_PART_RE.match(built):
            raise PermanentError(where.format(repr(built)) + " is not a valid address "
                                 "local part (letters, digits, . _ ' + - only)")
        return f"{built}@{self.domain}"

    def _name(self, user: OutboundUser, part: str, claim_key: str, claim_default: str,
              default_key: str) -> str:
        value = str(user.claims.get(claim_uri(self._prop(claim_key, claim_default))) or "")
        value = value.strip() or str(self.properties.get(default_key) or "").strip()
        if not value:
            raise PermanentError(f"user {user.username!r} has no {part} (claim "
                                 f"{self._prop(claim_key, claim_default)!r}) and "
                                 f"{default_key} gives no default; Google requires one")
        if len(value) > MAX_NAME:
            raise PermanentError(f"user {user.username!r}: {part} is {len(value)} characters; "
                                 f"Google accepts at most {MAX_NAME}")
        return value

    def user_body(self, user: OutboundUser, password: str | None) -> dict[str, Any]:
        """The Directory API User for ``user``; a PermanentError naming the user and field
        for what Google would refuse, before any request."""
        body: dict[str, Any] = {
            "primaryEmail": self.primary_email(user),
            "name": {
                "givenName": self._name(user, "givenName", "google_prov_givenname_claim_dropdown",
                                        "givenname", "google_prov_givenname"),
                "familyName": self._name(user, "familyName",
                                         "google_prov_familyname_claim_dropdown", "lastname",
                                         "google_prov_familyname"),
            },
            "suspended": not user.active,
        }
        if password:
            body["password"] = password
        return body

    async def create_user(self, user: OutboundUser) -> RemoteRef:
        # Google requires a password: a random one when we have none to send.
        body = self.user_body(user, user.password or secrets.token_urlsafe(24))
        what = f"create user {user.username!r} ({body['primaryEmail']})"
        created = await self._call("POST", f"{self.api}/users", what, body=body)
        return _ref(created, "primaryEmail", what)

    async def update_user(self, remote_id: str, user: OutboundUser) -> RemoteRef:
        body = self.user_body(user, user.password)
        what = f"update user {user.username!r} (id {remote_id})"
        await self._call("PUT", self._user_url(remote_id), what, body=body)
        return RemoteRef(remote_id, body["primaryEmail"])

    async def set_active(self, remote_id: str, user: OutboundUser, active: bool) -> None:
        what = f"{'enable' if active else 'suspend'} user {user.username!r} (id {remote_id})"
        await self._call("PUT", self._user_url(remote_id), what, body={"suspended": not active})

    async def delete_user(self, remote_id: str, user: OutboundUser) -> None:
        what = f"delete user {user.username!r} (id {remote_id})"
        await self._call("DELETE", self._user_url(remote_id), what)

    async def lookup_user(self, user: OutboundUser) -> RemoteRef | None:
        email = self.primary_email(user)
        return await self._lookup(self._user_url(email), "primaryEmail", email,
                                  f"look up user {email!r}", (USER_SCOPE,))

    def _user_url(self, key: str) -> str:
        return f"{self.api}/users/{quote(key, safe='@')}"

    # ------------------------------------------------------------ groups
    def group_email(self, group: OutboundGroup) -> str:
        name = group.name.strip()
        if "@" in name:
            if not _EMAIL_RE.match(name):
                raise PermanentError(f"group {name!r} is not a valid group address")
            return name
        if not _LOCAL_PART_RE.match(name):
            raise PermanentError(f"group {name!r} cannot be a Google group address at "
                                 f"{self.domain} (letters, digits, . _ ' + - only); map the "
                                 "role to such a name")
        return f"{name}@{self.domain}"

    def _group_url(self, key: str) -> str:
        return f"{self.api}/groups/{quote(key, safe='@')}"

    async def create_group(self, group: OutboundGroup) -> RemoteRef:
        email = self.group_email(group)
        what = f"create group {email!r}"
        created = await self._call("POST", f"{self.api}/groups", what,
                                   body={"email": email, "name": group.name}, groups=True)
        ref = _ref(created, "email", what)
        await self.change_members(ref.id, group, group.member_ids, ())
        return ref

    async def rename_group(self, remote_id: str, group: OutboundGroup) -> RemoteRef:
        email = self.group_email(group)
        what = f"rename group (id {remote_id}) to {email!r}"
        await self._call("PUT", self._group_url(remote_id), what,
                         body={"email": email, "name": group.name}, groups=True)
        return RemoteRef(remote_id, email)

    async def change_members(self, remote_id: str, group: OutboundGroup,
                             add: Sequence[str], remove: Sequence[str]) -> None:
        members = f"{self._group_url(remote_id)}/members"
        for member in remove:
            with contextlib.suppress(RemoteNotFound):  # not a member: what we wanted
                await self._call("DELETE", f"{members}/{quote(member, safe='@')}",
                                 f"remove {member} from group {group.name!r}", groups=True)
        for member in add:
            with contextlib.suppress(ConflictError):  # a member already
                await self._call("POST", members, f"add {member} to group {group.name!r}",
                                 body={"id": member, "role": "MEMBER"}, groups=True)

    async def delete_group(self, remote_id: str, group: OutboundGroup) -> None:
        await self._call("DELETE", self._group_url(remote_id),
                         f"delete group {group.name!r} (id {remote_id})", groups=True)

    async def lookup_group(self, group: OutboundGroup) -> RemoteRef | None:
        email = self.group_email(group)
        return await self._lookup(self._group_url(email), "email", email,
                                  f"look up group {email!r}", (USER_SCOPE, GROUP_SCOPE))

    # ------------------------------------------------------------ listing
    async def list_users(self, page_size: int = LIST_PAGE,
                         known: Iterable[str] = ()) -> AsyncIterator[RemoteObject]:
        query = {"domain": self.domain, "projection": "basic"}
        async for u in self._pages(f"{self.api}/users", "users", query, page_size):
            yield RemoteObject(str(u["id"]), str(u.get("primaryEmail") or ""),
                               u.get("suspended") is not True, u)

    async def list_groups(self, page_size: int = LIST_PAGE) -> AsyncIterator[RemoteObject]:
        async for g in self._pages(f"{self.api}/groups", "groups", {"domain": self.domain},
                                   page_size):
            members = [str(m["id"]) async for m in self._pages(
                f"{self._group_url(str(g['id']))}/members", "members", {}, page_size)
                if m.get("id")]
            yield RemoteObject(str(g["id"]), str(g.get("name") or g.get("email") or ""),
                               attributes=g, members=members)

    def drift(self, remote: RemoteObject, user: OutboundUser) -> list[str]:
        """The fields of :meth:`user_body` (no password) whose remote values differ."""
        ours = self.user_body(user, None)
        theirs = remote.attributes
        given = theirs.get("name")
        names: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
        differ = [] if str(theirs.get("primaryEmail", "")).lower() == \
            ours["primaryEmail"].lower() else ["primaryEmail"]
        differ += [f"name.{k}" for k, v in ours["name"].items() if names.get(k) != v]
        return differ + ([] if bool(theirs.get("suspended")) == ours["suspended"]
                         else ["suspended"])

    async def _pages(self, url: str, key: str, query: Mapping[str, str], page_size: int
                     ) -> AsyncIterator[Mapping[str, Any]]:
        """Every item of a Directory API list, a page (``maxResults``, at most 500) per
        request, following ``nextPageToken``; exchanges kept for the last page only."""
        groups = key != "users"
        token = ""
        while True:
            params = {**query, "maxResults": str(min(500, max(1, page_size)))}
            if token:
                params["pageToken"] = token
            self.exchanges.clear()
            body = await self._call("GET", f"{url}?{urlencode(params)}", f"list {key}",
                                    groups=groups)
            items = body.get(key) if isinstance(body, Mapping) else None
            if not isinstance(body, Mapping) or not isinstance(items or [], list):
                raise PermanentError(f"list {key}: GET {url} did not answer a list")
            for item in items or []:
                if isinstance(item, Mapping) and item.get("id"):
                    yield item
            token = str(body.get("nextPageToken") or "")
            if not token:
                return

    async def _lookup(self, url: str, attribute: str, email: str, what: str,
                      scopes: tuple[str, ...]) -> RemoteRef | None:
        """The object whose address is ``email``; an object found under it as an alias is
        somebody else's and is not adopted."""
        try:
            found = await self._call("GET", url, what, groups=GROUP_SCOPE in scopes)
        except RemoteNotFound:
            return None
        ref = _ref(found, attribute, what)
        if ref.name.lower() != email.lower():
            raise PermanentError(f"{what}: {email} is an alias of {ref.name}; not adopting "
                                 "another account")
        return ref

    # ------------------------------------------------------------ auth
    def _prop(self, name: str, default: str) -> str:
        return str(self.properties.get(name) or default)

    def _signing_key(self) -> rsa.RSAPrivateKey:
        """The parsed key, kept in the memo (parsing checks the key: not per job)."""
        key = self.memo.get("google-key")
        if key is None:
            try:
                key = load_private_key(str(self.properties["google_prov_private_key"]))
            except ValueError as exc:
                raise PermanentError(f"google_prov_private_key: {exc}") from None
            self.memo["google-key"] = key
        return key

    async def _token(self, scopes: tuple[str, ...], stale: str | None = None) -> str:
        """An access token for ``scopes``, from the memo until shortly before it expires;
        ``stale`` is a token the target refused, fetched again unless another request
        already did."""
        slot = f"google-token {' '.join(scopes)}"

        def cached() -> str | None:
            known = self.memo.get(slot)
            if known is None or known[1] <= time.monotonic() or known[0] == stale:
                return None
            return str(known[0])

        token = cached()
        if token is not None:
            return token
        async with self.memo.setdefault(f"{slot} lock", asyncio.Lock()):
            token = cached()
            if token is None:
                token, lifetime = await self._fetch_token(scopes)
                self.memo[slot] = (token, time.monotonic() + max(0.0, lifetime - TOKEN_MARGIN))
            return token

    async def _fetch_token(self, scopes: tuple[str, ...]) -> tuple[str, float]:
        now = int(time.time())
        assertion = jwt.encode({"iss": self.account, "sub": self.admin,
                                "scope": " ".join(scopes), "aud": self.token_url,
                                "iat": now, "exp": now + ASSERTION_SECONDS},
                               self._signing_key(), algorithm="RS256")
        form = {"grant_type": JWT_BEARER, "assertion": assertion}
        what = f"obtain an access token for {self.account} acting for {self.admin}"
        answer = await self._send("POST", self.token_url, what, form=form)
        token = answer.get("access_token") if isinstance(answer, Mapping) else None
        if not isinstance(token, str) or not token:
            raise PermanentError(f"{what}: the token endpoint answered without an access_token")
        expires = answer.get("expires_in")
        return token, float(expires) if isinstance(expires, int | float) else 3600.0

    # ------------------------------------------------------------ HTTP
    async def _call(self, method: str, url: str, what: str, *, body: Any = None,
                    groups: bool = False) -> Any:
        """One Directory API request with a bearer token; a refused token (401) is
        fetched again once."""
        scopes = (USER_SCOPE, GROUP_SCOPE) if groups else (USER_SCOPE,)
        token = await self._token(scopes)
        try:
            return await self._send(method, url, what, body=body, token=token)
        except _Unauthorized:
            token = await self._token(scopes, stale=token)
        try:
            return await self._send(method, url, what, body=body, token=token)
        except _Unauthorized as exc:
            raise PermanentError(f"{exc.message}; check the service account, its key and "
                                 "its domain-wide delegation", 401) from None

    async def _send(self, method: str, url: str, what: str, *, body: Any = None,
                    form: Mapping[str, str] | None = None, token: str | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if self.properties.get("google_prov_application_name"):  # as Google's clients do
            headers["User-Agent"] = str(self.properties["google_prov_application_name"])
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            request = self.client.build_request(
                method, url, headers=headers, data=form,
                content=None if body is None else json.dumps(body).encode())
        except httpx.InvalidURL as exc:
            raise PermanentError(f"{what}: {url} is not a usable URL: {exc}") from None
        if body is not None:
            request.headers["Content-Type"] = "application/json"
        sent = form if form is not None else body
        shown = f"{method} {request.url}"
        try:
            response = await self.client.send(request)
        except httpx.TimeoutException as exc:
            self._record(request, sent, None, None)
            raise RetryableError(f"{what}: no answer in time to {shown} "
                                 f"({type(exc).__name__})") from None
        except httpx.UnsupportedProtocol as exc:
            self._record(request, sent, None, None)
            raise PermanentError(f"{what}: cannot send {shown}: {exc}") from None
        except httpx.TransportError as exc:
            self._record(request, sent, None, None)
            raise RetryableError(f"{what}: cannot reach Google for {shown}: "
                                 f"{exc or type(exc).__name__}") from None
        answer = decoded_body(response)
        self._record(request, sent, response.status_code, answer)
        if response.is_success:
            return answer
        raise _http_error(what, shown, response.status_code, answer,
                          response.headers.get("Retry-After"), token_request=form is not None)

    def _record(self, request: httpx.Request, body: Any, status: int | None,
                answer: Any) -> None:
        self.exchanges.append(Exchange(request.method, str(request.url), redact(body),
                                       status, redact(answer)))


# ---------------------------------------------------------------- helpers
class _Unauthorized(PermanentError):
    """A 401 from the Directory API: the token is fetched again once."""


def _ref(body: Any, name_attribute: str, what: str) -> RemoteRef:
    if isinstance(body, Mapping) and isinstance(body.get("id"), str) and body["id"]:
        return RemoteRef(body["id"], str(body.get(name_attribute) or ""))
    raise PermanentError(f"{what}: Google answered without the object's id")


def _google_error(answer: Any) -> tuple[str, str]:
    """Google's message and first reason from its envelope (or an OAuth error answer)."""
    if isinstance(answer, str):
        return answer, ""
    if not isinstance(answer, Mapping):
        return "", ""
    error = answer.get("error")
    if isinstance(error, str):  # the token endpoint: {"error", "error_description"}
        return str(answer.get("error_description") or ""), error
    if not isinstance(error, Mapping):
        return "", ""
    errors = error.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else {}
    reason = str(first.get("reason") or error.get("status") or "") \
        if isinstance(first, Mapping) else ""
    return str(error.get("message") or ""), reason


def _http_error(what: str, shown: str, status: int, answer: Any, wait: str | None,
                token_request: bool) -> ConnectorError:
    message, reason = _google_error(answer)
    said = f"HTTP {status}" + (f" {reason}" if reason else "") + \
        (f": {message}" if message else "")
    text = f"{what}: Google answered {said} ({shown})"
    if token_request and status in (400, 401, 403):
        return PermanentError(f"{what}: the token endpoint refused the service account "
                              f"({said}); check google_prov_service_acc_email, its key, "
                              "google_prov_admin_email and the domain-wide delegation", status)
    if status == 401:
        return _Unauthorized(text, status)
    if status == 404:
        return RemoteNotFound(text, status)
    if status == 409:
        return ConflictError(text, status)
    if status == 429 or status >= 500 or reason in _RATE_REASONS \
            or _NOT_COMPLETE in message.lower():
        return RetryableError(text, status, retry_after(wait))
    return PermanentError(text, status)
