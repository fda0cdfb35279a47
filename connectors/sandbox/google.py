"""A sandbox Google Workspace: the OAuth token endpoint and the Directory API subset the
``googleapps`` connector uses, enforcing Google's published contract.

* ``POST /token`` takes the service account's JWT bearer grant and verifies the assertion
  against the account's public key and every claim (RS256, ``iss``, ``sub`` the
  administrator, ``aud`` this endpoint, ``iat``/``exp`` at most an hour apart, ``scope``
  within the delegated scopes), answering like Google (``invalid_grant``,
  ``unauthorized_client``).
* The routes, the scopes each method needs and the bodies are read from Google's discovery
  document for ``admin`` ``directory_v1`` as shipped in ``google-api-python-client`` (the
  ``sandbox`` extra): a body with an unknown field, an output-only (``readOnly``) field, a
  value of the wrong type, or without a field the method requires
  (``annotations.required``) is refused with Google's 400 envelope. Google's own rules on
  top: addresses at the domain, names of 1 to 60 characters, passwords of 8 to 100.
* Users, groups and members live in memory; answers, statuses (200 on insert, 204 on
  delete, 404 ``notFound``, 409 ``duplicate``) and error envelopes are Google's.
* ``fail_next`` injects failures into the Directory API requests (token requests are not
  counted): the contract suite's faults, plus Google's 403 ``userRateLimitExceeded`` /
  ``quotaExceeded`` and "User creation is not complete". A "401" refuses the next token
  grant too (credentials revoked), so the connector's one renewal meets it as well;
  ``expire_tokens`` is the case a renewal cures.

It runs in a thread of the caller (tests, the benchmark, ``mware-iam demo``) or on its own
(``mware-iam sandbox google --port P``). Loopback only.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import re
import secrets
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import click
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.google import GROUP_SCOPE, JWT_BEARER, USER_SCOPE
from connectors.sandbox.contract import Fault, RemoteUser
from connectors.sandbox.peers import LOOPBACK, MAX_FAULTS, PeerUnavailable, free_port

log = logging.getLogger(__name__)

#: Faults beyond the contract suite's: Google's rate, quota and propagation refusals.
GoogleFault = Fault | Literal["userRateLimitExceeded", "quotaExceeded", "notComplete"]

DISCOVERY = "discovery_cache/documents/admin.directory_v1.json"
DIRECTORY = "admin/directory/v1/"
#: The Directory API methods the sandbox serves.
SERVED = ("users.insert", "users.get", "users.update", "users.patch", "users.delete",
          "users.list", "groups.insert", "groups.get", "groups.update", "groups.patch",
          "groups.delete", "groups.list", "members.insert", "members.get", "members.delete",
          "members.list", "members.hasMember")
#: The sandbox's service account.
ACCOUNT = "provisioning@mware-sandbox.iam.gserviceaccount.com"
TOKEN_SECONDS = 3600
MAX_ASSERTION_SECONDS = 3600
CLOCK_SKEW = 60
#: Passwords remembered for ``secrets()`` (the demo runs for hours).
MAX_REMEMBERED = 10_000
#: The connector timeout the peer's properties set, and how long a "timeout" fault waits.
TIMEOUT_SECONDS = 1
TIMEOUT_WAIT = 1.5


@cache
def discovery() -> dict[str, Any]:
    """Google's discovery document for admin directory_v1 (PeerUnavailable without it)."""
    try:
        text = resources.files("googleapiclient").joinpath(DISCOVERY).read_text()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise PeerUnavailable("the Google sandbox needs Google's discovery document from "
                              "google-api-python-client: pip install 'mware-iam[sandbox]'"
                              ) from exc
    return dict(json.loads(text))


class GoogleError(Exception):
    """An answer in Google's error envelope."""

    def __init__(self, code: int, reason: str, message: str, **headers: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.headers = code, reason, message, headers

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "errors": [
            {"message": self.message, "domain": "global", "reason": self.reason}]}}


def _not_found(key: str) -> GoogleError:
    return GoogleError(404, "notFound", f"Resource Not Found: {key}")


# ---------------------------------------------------------------- body validation
def validate(value: Any, schema: Mapping[str, Any], method_id: str, where: str) -> None:
    """Check ``value`` against a discovery schema for ``method_id``; GoogleError 400."""
    schemas = discovery()["schemas"]
    if "$ref" in schema:
        schema = schemas[schema["$ref"]]
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            raise _invalid(f"Invalid value at '{where}': expected an object")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            at = f"{where}.{key}"
            if key in props:
                if props[key].get("readOnly"):
                    raise _invalid(f"Invalid value at '{at}': the field is output only")
                validate(item, props[key], method_id, at)
            elif extra is not None:
                validate(item, extra, method_id, at)
            else:
                raise _invalid(f"Invalid JSON payload received. Unknown name \"{key}\" at "
                               f"'{where}': Cannot find field.")
        for key, prop in props.items():
            if method_id in prop.get("annotations", {}).get("required", ()) \
                    and value.get(key) in (None, ""):
                raise GoogleError(400, "required", f"Required field must not be blank: "
                                  f"{where}.{key}")
        return
    ok: dict[str, Callable[[Any], bool]] = {
        "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
          "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
          "array": lambda v: isinstance(v, list), "any": lambda v: True}
    if kind in ok and not ok[kind](value):
        raise _invalid(f"Invalid value at '{where}' ({kind}): {json.dumps(value)[:80]}")
    if kind == "string" and schema.get("format") in ("int64", "int32") \
            and not re.fullmatch(r"-?\d+", value):
        raise _invalid(f"Invalid value at '{where}' ({schema['format']}): {value!r}")
    if kind == "string" and "enum" in schema and value not in schema["enum"]:
        raise _invalid(f"Invalid value at '{where}': {value!r}")
    if kind == "array":
        for i, item in enumerate(value):
            validate(item, schema.get("items", {"type": "any"}), method_id, f"{where}[{i}]")


def _invalid(message: str) -> GoogleError:
    return GoogleError(400, "invalid", message)


@cache
def _routes() -> list[tuple[str, re.Pattern[str], str, dict[str, Any]]]:
    """(HTTP method, path pattern, method id, method) for every served method."""
    found = []
    for name in SERVED:
        resource, verb = name.split(".")
        method = discovery()["resources"][resource]["methods"][verb]
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(method["path"]))
        found.append((method["httpMethod"], re.compile(f"^/{pattern}$"), method["id"], method))
    return found


# ---------------------------------------------------------------- the peer
class GoogleSandbox:
    """A running sandbox: its service account, administrator, directory and faults."""

    def __init__(self, domain: str = "example.org", port: int | None = None,
                 delegated: tuple[str, ...] = (USER_SCOPE, GROUP_SCOPE)) -> None:
        discovery()  # fail early without the document
        self.domain = domain
        self.account = ACCOUNT
        self.admin = f"admin@{domain}"
        self.delegated = frozenset(delegated)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key = self._key.public_key()
        self._server = _Server((LOOPBACK, port or 0), _Handler, self)
        self.origin = f"http://{LOOPBACK}:{self._server.server_address[1]}"
        self.token_url = f"{self.origin}/token"
        self.lock = threading.RLock()
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.members: dict[str, dict[str, dict[str, Any]]] = {}
        self.tokens: dict[str, tuple[frozenset[str], float]] = {}
        self.passwords: deque[str] = deque(maxlen=MAX_REMEMBERED)
        self.token_requests = 0
        self._refuse_grant = False
        self.api_requests = 0
        #: The User-Agent of the latest Directory API request.
        self.user_agent: str | None = None
        self._faults: deque[GoogleFault] = deque()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self.seed_user("admin", admin=True)

    # ------------------------------------------------------------ running
    def start(self) -> GoogleSandbox:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="google-sandbox")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    @property
    def private_key_pem(self) -> str:
        return self._key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()).decode()

    # ------------------------------------------------------------ ContractPeer
    def properties(self) -> dict[str, Any]:
        return {"google_prov_domain_name": self.domain,
                "google_prov_service_acc_email": self.account,
                "google_prov_admin_email": self.admin,
                "google_prov_private_key": self.private_key_pem,
                "google_prov_api_url": self.origin, "google_prov_token_url": self.token_url,
                "timeout-seconds": TIMEOUT_SECONDS}

    def attribute_names(self) -> dict[str, str]:
        return {}  # the connector reads the claims its *_claim_dropdown properties name

    def refusing_properties(self) -> dict[str, Any]:
        nowhere = f"http://{LOOPBACK}:{free_port()}"
        return {**self.properties(), "google_prov_api_url": nowhere,
                "google_prov_token_url": f"{nowhere}/token"}

    def secrets(self) -> list[str]:
        with self.lock:
            return [self.private_key_pem, *self.tokens, *self.passwords]

    def fail_next(self, fault: GoogleFault, count: int = 1) -> None:
        with self.lock:
            if len(self._faults) + count > MAX_FAULTS:
                raise ValueError(f"at most {MAX_FAULTS} faults can be scripted")
            self._faults.extend([fault] * count)

    def seed_user(self, username: str, admin: bool = False) -> str:
        """A user whose address is ``username`` when it is one, else ``username@domain``."""
        email = username if "@" in username else f"{username}@{self.domain}"
        with self.lock:
            return str(self._insert_user({
                "primaryEmail": email,
                "name": {"givenName": username.capitalize(), "familyName": "Seeded"},
                "password": secrets.token_urlsafe(12)}, admin=admin)["id"])

    def remote_user(self, remote_id: str) -> RemoteUser | None:
        with self.lock:
            user = self.users.get(remote_id)
            if user is None:
                return None
            return RemoteUser(remote_id, user["primaryEmail"], not user["suspended"],
                              json.loads(json.dumps(user)))

    def group_members(self, remote_id: str) -> set[str] | None:
        with self.lock:
            found = self.members.get(remote_id)
            return None if found is None else set(found)

    def expire_tokens(self) -> None:
        """Every issued token stops working (as after a key rotation)."""
        with self.lock:
            self.tokens.clear()

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        with self.lock:
            return next((u for u in self.users.values()
                         if u["primaryEmail"].lower() == email.lower()), None)

    def group_by_email(self, email: str) -> dict[str, Any] | None:
        with self.lock:
            return next((g for g in self.groups.values()
                         if g["email"].lower() == email.lower()), None)

    # ------------------------------------------------------------ HTTP
    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes
               ) -> tuple[int, dict[str, str], Any] | str:
        """(status, headers, JSON body) of one request, or a fault kind to act out."""
        url = urlsplit(target)
        try:
            if url.path == "/token" and method == "POST":
                return 200, {}, self._token(body.decode(errors="replace"))
            with self.lock:
                self.api_requests += 1
                self.user_agent = headers.get("user-agent")
                fault = self._faults.popleft() if self._faults else None
            if fault in ("timeout", "drop"):
                return str(fault)
            if fault == "401":  # the credentials are refused: the next grant is too
                self._refuse_grant = True
            if fault is not None:
                raise _fault_error(fault)
            return self._api(method, url.path, parse_qs(url.query), headers, body)
        except GoogleError as exc:
            return exc.code, exc.headers, exc.body()
        except _OAuthError as exc:
            return exc.status, {}, {"error": exc.error, "error_description": exc.description}

    def _token(self, form_text: str) -> dict[str, Any]:
        form = {k: v[0] for k, v in parse_qs(form_text).items()}
        with self.lock:
            self.token_requests += 1
        with self.lock:
            refuse, self._refuse_grant = self._refuse_grant, False
        if refuse:
            raise _OAuthError(401, "unauthorized_client", "Client is unauthorized to retrieve "
                              "access tokens using this method.")
        if form.get("grant_type") != JWT_BEARER:
            raise _OAuthError(400, "unsupported_grant_type", "Invalid grant_type: "
                              f"{form.get('grant_type', '')}")
        try:
            claims = jwt.decode(form.get("assertion", ""), self.public_key,
                                algorithms=["RS256"], audience=self.token_url,
                                issuer=self.account, leeway=CLOCK_SKEW,
                                options={"require": ["iss", "sub", "aud", "iat", "exp",
                                                     "scope"]})
        except jwt.InvalidSignatureError:
            raise _OAuthError(400, "invalid_grant", "Invalid JWT Signature.") from None
        except jwt.PyJWTError as exc:
            raise _OAuthError(400, "invalid_grant", f"Invalid JWT: {exc}") from None
        if not isinstance(claims["iat"], int) or not isinstance(claims["exp"], int) \
                or not 0 < claims["exp"] - claims["iat"] <= MAX_ASSERTION_SECONDS \
                or claims["iat"] > time.time() + CLOCK_SKEW:
            raise _OAuthError(400, "invalid_grant", "Invalid JWT: Token must be a short-lived "
                              "token (60 minutes) and in a reasonable timeframe. Check your "
                              "iat and exp values in the JWT claim.")
        scopes = frozenset(str(claims["scope"]).split())
        if claims["sub"] != self.admin or not scopes or not scopes <= self.delegated:
            raise _OAuthError(401, "unauthorized_client", "Client is unauthorized to "
                              "retrieve access tokens using this method, or client not "
                              "authorized for any of the scopes requested.")
        token = "ya29.sandbox-" + secrets.token_urlsafe(32)
        with self.lock:
            now = time.monotonic()
            self.tokens = {t: v for t, v in self.tokens.items() if v[1] > now}
            self.tokens[token] = (scopes, now + TOKEN_SECONDS)
        return {"access_token": token, "expires_in": TOKEN_SECONDS, "token_type": "Bearer"}

    def _api(self, method: str, path: str, query: Mapping[str, list[str]],
             headers: Mapping[str, str], raw: bytes) -> tuple[int, dict[str, str], Any]:
        found = next(((m, r, i, s) for r, p, i, s in _routes()
                      if r == method and (m := p.match(path))), None)
        if found is None:
            raise GoogleError(404, "notFound", f"Not Found: {method} {path}")
        match, _, method_id, spec = found
        self._authorize(headers.get("authorization", ""), spec["scopes"])
        params = {k: unquote(v) for k, v in match.groupdict().items()}
        body = None
        if "request" in spec:
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                raise _invalid("Invalid JSON payload received.") from None
            validate(body, spec["request"], method_id, spec["request"]["$ref"].lower())
        with self.lock:
            status, answer = getattr(self, "_" + method_id.split(".", 1)[1].replace(".", "_"))(
                params, body, query)
        return status, {}, answer

    def _authorize(self, header: str, needed: list[str]) -> None:
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        with self.lock:
            known = self.tokens.get(token)
        if known is None or known[1] <= time.monotonic():
            raise GoogleError(401, "authError", "Request had invalid authentication "
                              "credentials. Expected OAuth 2 access token, login cookie or "
                              "other valid authentication credential.")
        if not known[0] & set(needed):
            raise GoogleError(403, "insufficientPermissions",
                              "Request had insufficient authentication scopes.")

    # ------------------------------------------------------------ users
    def _user(self, key: str) -> dict[str, Any]:
        found = self.users.get(key) or self.user_by_email(key)
        if found is None:
            raise _not_found("userKey")
        return found

    def _check_user(self, body: Mapping[str, Any], current: dict[str, Any] | None) -> None:
        password = body.get("password")
        if password is not None:  # a secret from here on, whether the request succeeds
            self.passwords.append(password)
        email = body.get("primaryEmail")
        if email is not None:
            if not str(email).lower().endswith("@" + self.domain):
                raise _invalid("Domain not found.")
            other = self.user_by_email(str(email)) or self.group_by_email(str(email))
            if other is not None and other is not current:
                raise GoogleError(409, "duplicate", "Entity already exists.")
        for part in ("givenName", "familyName"):
            value = (body.get("name") or {}).get(part)
            if value is not None and not 0 < len(value.strip()) <= 60:
                raise _invalid(f"Invalid Given/Family Name: {part}")
        if password is not None and not 8 <= len(password) <= 100:
            raise _invalid("Invalid Password")

    def _insert_user(self, body: dict[str, Any], admin: bool = False) -> dict[str, Any]:
        self._check_user(body, None)
        uid = f"1{next(self._ids):020d}"
        user = {k: v for k, v in body.items() if k != "password"}
        user.update(kind="admin#directory#user", id=uid, isAdmin=admin,
                    isDelegatedAdmin=False, creationTime=_now(), customerId="C0sandbox",
                    suspended=bool(body.get("suspended", False)), orgUnitPath="/",
                    isMailboxSetup=True, includeInGlobalAddressList=True)
        self._full_name(user)
        self.users[uid] = user
        return self._shown(user)

    def _users_insert(self, params: Any, body: Any, query: Any) -> tuple[int, Any]:
        return 200, self._insert_user(body)

    def _users_get(self, params: Any, body: Any, query: Any) -> tuple[int, Any]:
        return 200, self._shown(self._user(params["userKey"]))

    def _users_update(self, params: Any, body: Any, query: Any) -> tuple[int, Any]:
        # Google: "update supports patch semantics"
        user = self._user(params["userKey"])
        self._check_user(body, user)
        _merge(user, {k: v for k, v in body.items() if k != "password"})
        if "suspended" in body:
            user["suspensionReason"] = "ADMIN" if body["suspended"] else None
        self._full_name(user)
        return 200, self._shown(user)

    _users_patch = _users_update

    def _users_delete(self, params: Any, body: Any, query: Any) -> tuple[int, Any]:
        user = self._user(params["userKey"])
        del self.users[user["id"]]
        for members in self.members.values():
            members.pop(user["id"], None)
        return 204, None

    def _users_list(self, params: Any, body: Any, query: Mapping[str, list[str]]
                    ) -> tuple[int, Any]:
        if not (query.get("domain") or query.get("customer")):
            raise GoogleError(400, "badRequest", "Bad Request")
        return 200, {"kind": "admin#directory#users",
                     **_page("users", [self._shown(u) for u in self.users.values()], query)}

    @staticmethod
    def _full_name(user: dict[str, Any]) -> None:
        name = user.get("name") or {}
        name["fullName"] = f"{name.get('givenName', '')} {name.get('familyName', '')}".strip()

    @staticmethod
    def _shown(item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if v is not None}

    # ------------------------------------------------------------ groups
    def _group(self, key: str) -> dict[str, Any]:
        found = self.groups.get(key) or self.group_by_email(key)
        if found is None:
            raise _not_found("groupKey")
        return found

    def _check_group(self, body: Mapping[str, Any], current: dict[str, Any] | None) -> None:
        email = body.get("email")
        if email is not None:
            if not str(email).lower().endswith("@" + self.domain):
                raise _invalid("Domain not found.")
            other = self.group_by_email(str(email)) or self.user_by_email(str(email))
            if other is not None and other is not current:
                raise GoogleError(409, "duplicate", "Entity already exists.")

    def _groups_insert(self, params: Any, body: Any, query: Any) -> tuple[int, Any]:
        self._check_group(body, None)
        gid = f"0{secrets.token_hex(7)}"
        group = {**body, "kind": "admin#directory#group", "id": gid, "adminCreated": True,
                 "directMembersCount": "0", "etag": f'"{secrets.token_hex(8)}"'}
        group.setdefault("name", body["email"].split("@")[0])
        self.groups[gid] = group
        self.members[gid] = {}
        return 200, dict(group)

    def _groups_get(self, params: Any, body: Any, query: Any) -> tuple[int, Any]:
        return 200, dict(self._group(params["groupKey"]))

    def _groups_update(self, params: Any, body: Any, query: Any) -> tuple[int, Any]:
        group = self._group(params["groupKey"])
        self._check_group(body, group)
        group.update(body)
        return 200, dict(group)

    _groups_patch = _groups_update

    def _groups_delete(self, params: Any, body: Any, query: Any) -> tuple[int, Any]:
        group = self._group(params["groupKey"])
        del self.groups[group["id"]]
        del self.members[group["id"]]
        return 204, None

    def _groups_list(self, params: Any, body: Any, query: Any) -> tuple[int, Any]:
        return 200, {"kind": "admin#directory#groups",
                     **_page("groups", [dict(g) for g in self.groups.values()], query)}

    # ------------------------------------------------------------ members
    def _member_user(self, key: str) -> dict[str, Any]:
        try:
            return self._user(key)
        except GoogleError:
            raise _not_found("memberKey") from None

    def _members_insert(self, params: Any, body: Any, query: Any) -> tuple[int, Any]:
        group = self._group(params["groupKey"])
        key = body.get("id") or body.get("email")
        if not key:
            raise GoogleError(400, "required", "Missing required field: memberKey")
        user = self._member_user(str(key))
        members = self.members[group["id"]]
        if user["id"] in members:
            raise GoogleError(409, "duplicate", "Member already exists.")
        member = {"kind": "admin#directory#member", "id": user["id"],
                  "email": user["primaryEmail"], "role": body.get("role", "MEMBER"),
                  "type": "USER", "status": "ACTIVE"}
        members[user["id"]] = member
        group["directMembersCount"] = str(len(members))
        return 200, dict(member)

    def _members_get(self, params: Any, body: Any, query: Any) -> tuple[int, Any]:
        group = self._group(params["groupKey"])
        member = self.members[group["id"]].get(self._member_user(params["memberKey"])["id"])
        if member is None:
            raise _not_found("memberKey")
        return 200, dict(member)

    def _members_delete(self, params: Any, body: Any, query: Any) -> tuple[int, Any]:
        group = self._group(params["groupKey"])
        members = self.members[group["id"]]
        uid = self._member_user(params["memberKey"])["id"]
        if members.pop(uid, None) is None:
            raise _not_found("memberKey")
        group["directMembersCount"] = str(len(members))
        return 204, None

    def _members_list(self, params: Any, body: Any, query: Any) -> tuple[int, Any]:
        group = self._group(params["groupKey"])
        return 200, {"kind": "admin#directory#members",
                     **_page("members", [dict(m) for m in self.members[group["id"]].values()],
                             query)}

    def _members_hasMember(self, params: Any, body: Any, query: Any) -> tuple[int, Any]:
        group = self._group(params["groupKey"])
        uid = self._member_user(params["memberKey"])["id"]
        return 200, {"isMember": uid in self.members[group["id"]]}


def _page(key: str, items: list[dict[str, Any]], query: Mapping[str, list[str]]
          ) -> dict[str, Any]:
    """One page as Google lists: ``maxResults`` (at most 500; Google's default 100 for
    users, 200 for groups and members) and ``pageToken``, ``nextPageToken`` while more
    follow (an opaque token: here the offset)."""
    try:
        size = min(500, int((query.get("maxResults") or ["100"])[0]))
        start = int((query.get("pageToken") or ["0"])[0] or 0)
    except ValueError:
        raise GoogleError(400, "invalid", "Invalid value for maxResults or pageToken") from None
    if size < 1 or start < 0:
        raise GoogleError(400, "invalid", "Invalid value for maxResults or pageToken")
    page: dict[str, Any] = {key: items[start:start + size]}
    if start + size < len(items):
        page["nextPageToken"] = str(start + size)
    return page


class _OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def _fault_error(fault: GoogleFault) -> GoogleError:
    if fault == "429":
        return GoogleError(429, "rateLimitExceeded", "Rate Limit Exceeded", **{
            "Retry-After": "1"})
    if fault in ("userRateLimitExceeded", "quotaExceeded"):
        return GoogleError(403, fault, "Quota exceeded for quota metric 'Queries' and limit "
                           "'Queries per minute per user'")
    if fault == "notComplete":
        return GoogleError(412, "conditionNotMet", "User creation is not complete.")
    said = {"400": ("invalid", "Invalid Input"), "401": ("authError", "Invalid Credentials"),
            "403": ("forbidden", "Not Authorized to access this resource/api"),
            "404": ("notFound", "Resource Not Found: userKey"),
            "409": ("duplicate", "Entity already exists."),
            "500": ("backendError", "Internal error encountered."),
            "503": ("backendError", "The service is currently unavailable.")}
    reason, message = said[fault]
    return GoogleError(int(fault), reason, message)


def _merge(into: dict[str, Any], change: Mapping[str, Any]) -> None:
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    #: socketserver's default backlog of 5 drops connections when more clients connect at
    #: once (each dropped SYN costs the client a second)
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 sandbox: GoogleSandbox) -> None:
        super().__init__(address, handler)
        self.sandbox = sandbox


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle's algorithm holds the
        # body until the client's delayed ACK (40 ms per keep-alive request)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer = self.server.sandbox.handle(self.command, self.path, headers, body)
        if answer == "timeout":
            time.sleep(TIMEOUT_WAIT)
            self.close_connection = True
            return
        if isinstance(answer, str):  # drop
            self.close_connection = True
            return
        status, extra, payload = answer
        content = b"" if payload is None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            if content:
                self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@contextlib.contextmanager
def google_sandbox(domain: str = "example.org", port: int | None = None,
                   delegated: tuple[str, ...] = (USER_SCOPE, GROUP_SCOPE)
                   ) -> Iterator[GoogleSandbox]:
    """A started sandbox, stopped afterwards (PeerUnavailable without the discovery doc)."""
    sandbox = GoogleSandbox(domain, port, delegated).start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def contract_peer() -> contextlib.AbstractContextManager[GoogleSandbox]:
    """The contract suite's peer (``ConnectorSpec.contract_peer``)."""
    return google_sandbox()


@click.command("google")
@click.option("--port", type=int, default=8788, show_default=True,
              help="loopback port to listen on")
@click.option("--domain", default="example.org", show_default=True,
              help="the Workspace domain users and groups are created at")
@click.option("--key-out", type=click.Path(dir_okay=False, path_type=Path),
              help="write the service account's private key here (0600) instead of a "
                   "temporary file removed at exit")
def sandbox_command(port: int, domain: str, key_out: Path | None) -> None:
    """A sandbox Google Workspace (token endpoint and Directory API) on 127.0.0.1."""
    try:
        peer = GoogleSandbox(domain, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {LOOPBACK}:{port}: {exc.strerror}"
                                   ) from None
    except PeerUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="mware-google-sandbox-") as home:
        key_file = key_out or Path(home) / "service-account.pem"
        key_file.unlink(missing_ok=True)
        key_file.touch(mode=0o600)
        key_file.write_text(peer.private_key_pem)
        click.echo(f"Google Workspace sandbox on {peer.origin} (domain {domain}); "
                   "connector properties (type googleapps):")
        for name, value in peer.properties().items():
            if name == "google_prov_private_key":
                value = f"${{file:{key_file}}}"
            click.echo(f"  {name}: {value}")
        click.echo("Ctrl-C stops it" + ("." if key_out else " (the key file is removed)."))
        try:
            peer._server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            peer._server.server_close()
