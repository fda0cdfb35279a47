"""A Salesforce org on a loopback port, enforcing the contract our connector relies on.

What it keeps and checks (``SalesforcePeer``; ``mware-iam sandbox salesforce --port P``):

* ``POST /services/oauth2/token`` for ``password``, ``client_credentials`` and the JWT
  bearer grant (RS256 signature checked against the peer's key, ``iss`` = consumer key,
  ``sub`` = the integration user, ``aud`` = the peer's origin, ``exp`` within 3 minutes
  of skew). Tokens expire after ``token_seconds`` (or at once with ``expire_tokens``);
  an expired or unknown token gets 401 ``INVALID_SESSION_ID``.
* ``GET /services/data/`` (no auth, no limit header) lists the versions.
* The ``User`` sObject: every required field, ``Alias`` at most 8 characters, an
  email-shaped ``Username`` unique across the org (``DUPLICATE_USERNAME``), string
  lengths (``STRING_TOO_LONG``), field types (``JSON_PARSER_ERROR``), known fields only
  (``INVALID_FIELD``), a known ``ProfileId`` (``INVALID_CROSS_REFERENCE_KEY``), no
  DELETE. ``Group`` (public groups, unique ``DeveloperName``) and ``GroupMember``
  (``DUPLICATE_VALUE`` for a member already there).
* ``GET …/query/?q=`` for the SOQL our connector sends: ``SELECT f, … FROM Obj [WHERE
  F = 'literal' | F IN ('literal', …) [AND|OR …]] [LIMIT n]`` with SOQL's escapes, known
  fields only (``INVALID_FIELD``), anything else ``MALFORMED_QUERY`` (400, Salesforce's
  error array). Answers come in batches (``Sforce-Query-Options: batchSize=N``, 200 to
  2000, default 2000; ``max_batch`` lowers the ceiling, as a busy org may): ``totalSize``,
  ``done`` and, until done, ``nextRecordsUrl`` (``…/query/<locator>-<offset>``), each
  batch read from the records as they are then; ``GET …/limits/``.
* ``Sforce-Limit-Info: api-usage=N/M`` on every answer under ``/services/data/vNN.N``;
  every such request counts, and past the limit the org answers 403
  ``REQUEST_LIMIT_EXCEEDED``. Tests set the usage with ``set_usage``.
* Injected failures (``fail_next``): the contract suite's faults plus
  ``REQUEST_LIMIT_EXCEEDED`` and ``UNABLE_TO_LOCK_ROW``.

In memory, threaded, loopback only, bounded (``MAX_RECORDS`` per object).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import click
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.sandbox.contract import RemoteUser
from connectors.sandbox.peers import LOOPBACK, free_port

VERSIONS = ("59.0", "60.0", "61.0", "62.0")
PROFILE_ID = "00e5g000001AbCdEAF"
CLIENT_ID = "3MVG9sandboxConsumerKey"
CLIENT_SECRET = "sandbox-consumer-secret"
USERNAME = "integration@sandbox.example.com"
PASSWORD = "sandbox-passwordTOKEN"
DAILY_LIMIT = 100_000
MAX_RECORDS = 100_000
MAX_FAULTS = 100
JWT_SKEW_SECONDS = 180
TIMEOUT_FAULT_SECONDS = 3.0

#: User fields: name -> (type, max length for strings).
USER_FIELDS: dict[str, tuple[type, int]] = {
    "Username": (str, 80), "LastName": (str, 80), "FirstName": (str, 40),
    "Email": (str, 128), "Alias": (str, 8), "CommunityNickname": (str, 40),
    "TimeZoneSidKey": (str, 40), "LocaleSidKey": (str, 40), "EmailEncodingKey": (str, 40),
    "LanguageLocaleKey": (str, 40), "ProfileId": (str, 18), "IsActive": (bool, 0),
    "Title": (str, 80), "Department": (str, 80), "Division": (str, 80),
    "CompanyName": (str, 80), "Phone": (str, 40), "MobilePhone": (str, 40),
    "Street": (str, 255), "City": (str, 40), "State": (str, 80), "PostalCode": (str, 20),
    "Country": (str, 80), "EmployeeNumber": (str, 20), "FederationIdentifier": (str, 512),
    "ReceivesInfoEmails": (bool, 0), "UserPermissionsMarketingUser": (bool, 0),
}
USER_REQUIRED = ("Username", "LastName", "Email", "Alias", "TimeZoneSidKey", "LocaleSidKey",
                 "EmailEncodingKey", "ProfileId", "LanguageLocaleKey")
GROUP_FIELDS: dict[str, tuple[type, int]] = {
    "Name": (str, 40), "DeveloperName": (str, 80), "Type": (str, 40),
    "DoesIncludeBosses": (bool, 0)}
MEMBER_FIELDS: dict[str, tuple[type, int]] = {"GroupId": (str, 18),
                                              "UserOrGroupId": (str, 18)}
_FIELDS = {"User": USER_FIELDS, "Group": GROUP_FIELDS, "GroupMember": MEMBER_FIELDS}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DEV_NAME = re.compile(r"^[A-Za-z](?!.*__)[A-Za-z0-9_]*(?<!_)$")
_PREFIX = {"User": "005", "Group": "00G", "GroupMember": "011"}
_SOQL = re.compile(r"^\s*SELECT\s+(?P<fields>[\w\s,]+?)\s+FROM\s+(?P<obj>\w+)"
                   r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
                   re.IGNORECASE | re.DOTALL)
_LITERAL = r"'(?:[^'\\]|\\.)*'"
#: ``F = 'v'`` or ``F IN ('v', …)``.
_CONDITION = re.compile(rf"\s*(\w+)\s*(?:=\s*({_LITERAL})|IN\s*\(\s*({_LITERAL}"
                        rf"(?:\s*,\s*{_LITERAL})*)\s*\))\s*", re.DOTALL | re.IGNORECASE)
_IN_VALUE = re.compile(_LITERAL, re.DOTALL)
#: Records per query answer: Salesforce's default and largest batch (``Sforce-Query-Options:
#: batchSize=N`` asks for fewer, at least 200).
QUERY_BATCH = 2000
MIN_QUERY_BATCH = 200
#: Query locators (``nextRecordsUrl``) kept open; the oldest is forgotten past this.
MAX_LOCATORS = 64
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "'": "'", '"': '"',
             "\\": "\\"}

#: Faults a test can inject: (status, errorCode) of the answer, or a transport fault.
FAULTS: dict[str, tuple[int, str]] = {
    "400": (400, "INVALID_FIELD"), "401": (401, "INVALID_SESSION_ID"),
    "403": (403, "INSUFFICIENT_ACCESS"), "404": (404, "NOT_FOUND"),
    "409": (409, "DUPLICATE_VALUE"), "429": (429, "REQUEST_LIMIT_EXCEEDED"),
    "500": (500, "UNKNOWN_EXCEPTION"), "503": (503, "SERVER_UNAVAILABLE"),
    "REQUEST_LIMIT_EXCEEDED": (403, "REQUEST_LIMIT_EXCEEDED"),
    "UNABLE_TO_LOCK_ROW": (400, "UNABLE_TO_LOCK_ROW"),
}


class Refused(Exception):
    """An answer with Salesforce's error array."""

    def __init__(self, status: int, code: str, message: str, fields: tuple[str, ...] = ()):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields

    def body(self) -> list[dict[str, Any]]:
        return [{"message": self.message, "errorCode": self.code, "fields": list(self.fields)}]


@dataclass
class _Org:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (sobject, unique key) -> record id: Username (case-insensitive), DeveloperName,
    #: (GroupId, UserOrGroupId); so a uniqueness check costs the same in a big org.
    keys: dict[tuple[str, Any], str] = field(default_factory=dict)

    def table(self, sobject: str) -> dict[str, dict[str, Any]]:
        tables = {"User": self.users, "Group": self.groups, "GroupMember": self.members}
        if sobject not in tables:
            raise Refused(404, "NOT_FOUND", f"The requested resource does not exist: {sobject}")
        return tables[sobject]


class SalesforcePeer:
    """The org, its token endpoint and its test hooks; ``start()`` serves it."""

    def __init__(self, port: int = 0, *, token_seconds: float = 3600.0,
                 limit: int = DAILY_LIMIT, max_batch: int = QUERY_BATCH) -> None:
        self.token_seconds = token_seconds
        self.limit = limit
        #: The most records one query answer holds (Salesforce does not promise the
        #: batch size asked for).
        self.max_batch = max_batch
        #: Open query locators: id -> (sobject, fields, record ids, batch size).
        self._locators: dict[str, tuple[str, list[str], list[str], int]] = {}
        self.used = 0
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key_pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode()
        self.tokens_issued = 0
        self.org = _Org()
        self._tokens: dict[str, float] = {}
        self._faults: deque[str] = deque()
        self._refuse_next_token = False
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server = _Server((LOOPBACK, port), _Handler, self)
        self.origin = f"http://{LOOPBACK}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> SalesforcePeer:
        self._thread.start()
        return self

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when the peer is stopping."""
        return self._stopping.wait(seconds)

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------ test hooks
    def properties(self, flow: str = "client_credentials") -> dict[str, Any]:
        """Connector properties pointing at this org (``flow``: client_credentials,
        password or jwt)."""
        props: dict[str, Any] = {
            "sf-domain-name": self.origin, "sf-api-version": f"v{VERSIONS[-2]}",
            "sf-token-endpoint": f"{self.origin}/services/oauth2/token",
            "sf-clientid": CLIENT_ID, "sf-profile-id": PROFILE_ID,
            "sf-prov-domainName": "sandbox.example.com", "timeout-seconds": 2}
        if flow == "jwt":
            return {**props, "sf-jwt-private-key": self.private_key_pem, "sf-username": USERNAME}
        props["sf-client-secret"] = CLIENT_SECRET
        if flow == "password":
            props.update({"sf-usePasswordGrant": True, "sf-username": USERNAME,
                          "sf-password": PASSWORD})
        return props

    def secrets(self) -> list[str]:
        with self._lock:
            return [CLIENT_SECRET, PASSWORD, self.private_key_pem, *self._tokens]

    def fail_next(self, fault: str, count: int = 1) -> None:
        if fault not in FAULTS and fault not in ("timeout", "drop"):
            raise ValueError(f"unknown fault {fault!r}")
        with self._lock:
            if len(self._faults) + count > MAX_FAULTS:
                raise ValueError(f"at most {MAX_FAULTS} injected faults")
            self._faults.extend([fault] * count)

    def expire_tokens(self) -> None:
        """Every token issued so far is expired (the next call gets INVALID_SESSION_ID)."""
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)

    def set_usage(self, used: int) -> None:
        with self._lock:
            self.used = used

    def seed_user(self, username: str, **fields: Any) -> str:
        record = {"Username": username, "LastName": fields.pop("LastName", "Seeded"),
                  "Email": username, "Alias": username[:8], "TimeZoneSidKey": "GMT",
                  "LocaleSidKey": "en_US", "EmailEncodingKey": "UTF-8",
                  "LanguageLocaleKey": "en_US", "ProfileId": PROFILE_ID, **fields}
        with self._lock:
            return self._insert("User", record)

    def user(self, remote_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self.org.users.get(remote_id)
            return dict(found) if found else None

    def remote_user(self, remote_id: str) -> RemoteUser | None:
        found = self.user(remote_id)
        if found is None:
            return None
        return RemoteUser(remote_id, found["Username"], bool(found.get("IsActive")), found)

    def group_members(self, remote_id: str) -> set[str] | None:
        with self._lock:
            if remote_id not in self.org.groups:
                return None
            return {m["UserOrGroupId"] for m in self.org.members.values()
                    if m["GroupId"] == remote_id}

    # ------------------------------------------------------------ tokens
    def token(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")
        with self._lock:
            refuse, self._refuse_next_token = self._refuse_next_token, False
        if refuse:
            return 400, {"error": "invalid_grant", "error_description": "expired access/refresh"
                                                                         " token"}
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            failure = self._jwt_failure(form.get("assertion", ""))
        elif grant in ("password", "client_credentials"):
            failure = None
            if form.get("client_id") != CLIENT_ID:
                return 400, {"error": "invalid_client_id",
                             "error_description": "client identifier invalid"}
            if form.get("client_secret") != CLIENT_SECRET:
                return 400, {"error": "invalid_client",
                             "error_description": "invalid client credentials"}
            if grant == "password" and (form.get("username") != USERNAME
                                        or form.get("password") != PASSWORD):
                failure = "authentication failure"
        else:
            return 400, {"error": "unsupported_grant_type",
                         "error_description": "grant type not supported"}
        if failure:
            return 400, {"error": "invalid_grant", "error_description": failure}
        token = f"00D5g!{next(self._ids):06d}.{threading.get_ident() % 997:03d}" \
                f"{time.monotonic_ns() % 10**9:09d}"
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_seconds
            self.tokens_issued += 1
        return 200, {"access_token": token, "instance_url": self.origin,
                     "id": f"{self.origin}/id/00D5g/0055g", "token_type": "Bearer",
                     "issued_at": str(int(time.time() * 1000)), "signature": "sandbox"}

    def _jwt_failure(self, assertion: str) -> str | None:
        try:
            claims = jwt.decode(assertion, self.key.public_key(), algorithms=["RS256"],
                                audience=self.origin, leeway=JWT_SKEW_SECONDS,
                                options={"require": ["iss", "sub", "aud", "exp"]})
        except jwt.PyJWTError as exc:
            return f"invalid assertion: {exc}"
        if claims["iss"] != CLIENT_ID:
            return "invalid_client_id"
        if claims["sub"] != USERNAME:
            return "user hasn't approved this consumer"
        if claims["exp"] > time.time() + 3600:
            return "expiration too far in the future"
        return None

    # ------------------------------------------------------------ the REST API
    def next_fault(self) -> str | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def authorized(self, header: str) -> bool:
        token = header.removeprefix("Bearer ").removeprefix("OAuth ").strip()
        with self._lock:
            expires = self._tokens.get(token)
            return expires is not None and expires > time.monotonic()

    def count_call(self) -> bool:
        """Count one API request; False when the org's daily limit is spent."""
        with self._lock:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True

    def limit_info(self) -> str:
        with self._lock:
            return f"api-usage={self.used}/{self.limit}"

    def refuse_next_token(self) -> None:
        with self._lock:
            self._refuse_next_token = True

    def handle(self, method: str, path: list[str], query: Mapping[str, list[str]],
               body: Any, batch: int = QUERY_BATCH) -> tuple[int, Any]:
        """One API call below ``/services/data/vNN.N/``: (status, answer); ``batch``: the
        query batch size asked for."""
        with self._lock:
            if path == ["limits"] and method == "GET":
                return 200, {"DailyApiRequests": {"Max": self.limit,
                                                  "Remaining": self.limit - self.used}}
            if path[:1] == ["query"] and method == "GET":
                if len(path) == 2:
                    return 200, self._more(path[1])
                return 200, self._query((query.get("q") or [""])[0], batch)
            if len(path) < 2 or path[0] != "sobjects":
                raise Refused(404, "NOT_FOUND", "The requested resource does not exist")
            sobject, rest = path[1], path[2:]
            table = self.org.table(sobject)
            if not rest:
                if method != "POST":
                    raise Refused(405, "METHOD_NOT_ALLOWED",
                                  f"HTTP Method '{method}' not allowed. Allowed are POST")
                return 201, {"id": self._insert(sobject, _object(body)), "success": True,
                             "errors": []}
            record_id = rest[0]
            if record_id not in table:
                raise Refused(404, "NOT_FOUND", "Provided external ID field does not exist "
                                                f"or is not accessible: {record_id}")
            if method == "GET":
                return 200, {"attributes": {"type": sobject}, **table[record_id]}
            if method == "PATCH":
                self._update(sobject, record_id, _object(body))
                return 204, None
            if method == "DELETE" and sobject != "User":
                self._forget(sobject, record_id)
                if sobject == "Group":
                    for member_id in [k for k, m in self.org.members.items()
                                      if m["GroupId"] == record_id]:
                        self._forget("GroupMember", member_id)
                return 204, None
            raise Refused(405, "METHOD_NOT_ALLOWED",
                          f"HTTP Method '{method}' not allowed. Allowed are GET,HEAD,PATCH")

    def _insert(self, sobject: str, fields: dict[str, Any]) -> str:
        table = self.org.table(sobject)
        if len(table) >= MAX_RECORDS:
            raise Refused(400, "STORAGE_LIMIT_EXCEEDED", "storage limit exceeded")
        if sobject == "User":
            record = {"IsActive": True, **self._checked(sobject, fields, USER_FIELDS)}
            missing = [f for f in USER_REQUIRED if record.get(f) in (None, "")]
            if missing:
                raise Refused(400, "REQUIRED_FIELD_MISSING",
                              f"Required fields are missing: [{', '.join(missing)}]",
                              (*missing,))
        elif sobject == "Group":
            record = {"Type": "Regular", **self._checked(sobject, fields, GROUP_FIELDS)}
            if not record.get("Name"):
                raise Refused(400, "REQUIRED_FIELD_MISSING",
                              "Required fields are missing: [Name]", ("Name",))
            record.setdefault("DeveloperName", re.sub(r"\W+", "_", record["Name"]))
        else:
            record = self._checked(sobject, fields, MEMBER_FIELDS)
            absent = tuple(f for f in MEMBER_FIELDS if not record.get(f))
            if absent:
                raise Refused(400, "REQUIRED_FIELD_MISSING",
                              f"Required fields are missing: [{', '.join(absent)}]", absent)
        self._unique(sobject, None, record)
        new_id = f"{_PREFIX[sobject]}5g{next(self._ids):010d}AAA"
        table[new_id] = {"Id": new_id, **record}
        self.org.keys[(sobject, _key(sobject, record))] = new_id
        return new_id

    def _update(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None:
        if sobject == "GroupMember":
            raise Refused(400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                          "GroupMember rows cannot be updated")
        known = USER_FIELDS if sobject == "User" else GROUP_FIELDS
        changed = {**self.org.table(sobject)[record_id],
                   **self._checked(sobject, fields, known)}
        self._unique(sobject, record_id, changed)
        self._forget(sobject, record_id)
        self.org.table(sobject)[record_id] = changed
        self.org.keys[(sobject, _key(sobject, changed))] = record_id

    def _forget(self, sobject: str, record_id: str) -> None:
        record = self.org.table(sobject).pop(record_id)
        self.org.keys.pop((sobject, _key(sobject, record)), None)

    def _checked(self, sobject: str, fields: dict[str, Any],
                 known: Mapping[str, tuple[type, int]]) -> dict[str, Any]:
        for name, value in fields.items():
            if name not in known:
                raise Refused(400, "INVALID_FIELD",
                              f"No such column '{name}' on sobject of type {sobject}", (name,))
            kind, length = known[name]
            if value is not None and not isinstance(value, kind):
                raise Refused(400, "JSON_PARSER_ERROR",
                              f"Cannot deserialize instance of {kind.__name__} from "
                              f"{type(value).__name__} value {value!r} at [{name}]", (name,))
            if isinstance(value, str) and len(value) > length:
                raise Refused(400, "STRING_TOO_LONG", f"{name}: data value too large: "
                              f"{value[:20]}... (max length={length})", (name,))
        if sobject == "User":
            for name in ("Username", "Email"):
                if name in fields and not _EMAIL.match(str(fields[name] or "")):
                    raise Refused(400, "INVALID_EMAIL_ADDRESS",
                                  f"{name}: invalid email address: {fields[name]}", (name,))
            if "ProfileId" in fields and str(fields["ProfileId"])[:15] != PROFILE_ID[:15]:
                raise Refused(400, "INVALID_CROSS_REFERENCE_KEY",
                              f"invalid cross reference id: {fields['ProfileId']}",
                              ("ProfileId",))
        if sobject == "Group" and "DeveloperName" in fields \
                and not _DEV_NAME.match(str(fields["DeveloperName"])):
            raise Refused(400, "INVALID_FIELD", "DeveloperName may contain only letters, "
                          "digits and single underscores", ("DeveloperName",))
        if sobject == "GroupMember":
            if fields.get("GroupId") not in self.org.groups:
                raise Refused(400, "INVALID_CROSS_REFERENCE_KEY",
                              "invalid cross reference id", ("GroupId",))
            if fields.get("UserOrGroupId") not in self.org.users | self.org.groups:
                raise Refused(400, "INVALID_CROSS_REFERENCE_KEY",
                              "invalid cross reference id", ("UserOrGroupId",))
        return dict(fields)

    def _unique(self, sobject: str, record_id: str | None, record: Mapping[str, Any]) -> None:
        owner = self.org.keys.get((sobject, _key(sobject, record)))
        if owner is None or owner == record_id:
            return
        if sobject == "User":
            raise Refused(400, "DUPLICATE_USERNAME",
                          "Duplicate Username.<br>The username already exists in this or "
                          "another Salesforce organization. Usernames must be unique across "
                          "all Salesforce organizations.", ("Username",))
        if sobject == "Group":
            raise Refused(400, "DUPLICATE_DEVELOPER_NAME",
                          "This Group Name already exists or has been previously used.",
                          ("DeveloperName",))
        raise Refused(400, "DUPLICATE_VALUE", "duplicate value found: the member exists")

    def _query(self, soql: str, batch: int) -> dict[str, Any]:
        found = _SOQL.match(soql)
        if not found:
            raise Refused(400, "MALFORMED_QUERY", f"unexpected token in: {soql[:80]}")
        sobject = found["obj"]
        table = self.org.table(sobject)
        fields = [f.strip() for f in found["fields"].split(",")]
        conditions, joiner = _conditions(found["where"] or "")
        known = {"Id", *_FIELDS[sobject]}
        for name in [*fields, *(f for f, _ in conditions)]:
            if name not in known:
                raise Refused(400, "INVALID_FIELD", f"No such column '{name}' on entity "
                              f"'{sobject}'. If you are attempting to use a custom field, be "
                              "sure to append the '__c' after the custom field name.")
        ids = [i for i, r in table.items()
               if not conditions or joiner([str(r.get(f, "")).casefold() in values
                                            for f, values in conditions])]
        if found["limit"]:
            ids = ids[:int(str(found["limit"]))]
        locator = f"01g5g{next(self._ids):010d}AAA"
        self._locators[locator] = (sobject, fields, ids, min(batch, self.max_batch))
        while len(self._locators) > MAX_LOCATORS:
            self._locators.pop(next(iter(self._locators)))
        return self._batch(locator, 0)

    def _more(self, locator_offset: str) -> dict[str, Any]:
        locator, _, offset = locator_offset.partition("-")
        if locator not in self._locators or not offset.isdigit():
            raise Refused(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._batch(locator, int(offset))

    def _batch(self, locator: str, offset: int) -> dict[str, Any]:
        """The records of an open query from ``offset``, as they are now (a record gone
        meanwhile is left out); the locator is closed with the last batch."""
        sobject, fields, ids, size = self._locators[locator]
        table = self.org.table(sobject)
        records = [{"attributes": {"type": sobject}, **{f: table[i].get(f) for f in fields}}
                   for i in ids[offset:offset + size] if i in table]
        answer: dict[str, Any] = {"totalSize": len(ids), "done": offset + size >= len(ids),
                                  "records": records}
        if answer["done"]:
            del self._locators[locator]
        else:
            answer["nextRecordsUrl"] = \
                f"/services/data/v{VERSIONS[-1]}/query/{locator}-{offset + size}"
        return answer


def _key(sobject: str, record: Mapping[str, Any]) -> Any:
    """The value that must be unique among the records of ``sobject``."""
    if sobject == "User":
        return str(record["Username"]).casefold()
    if sobject == "Group":
        return record["DeveloperName"]
    return (record["GroupId"], record["UserOrGroupId"])


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Refused(400, "JSON_PARSER_ERROR", "the body must be a JSON object")
    return body


def _conditions(where: str) -> tuple[list[tuple[str, set[str]]], Any]:
    """``F = 'v'`` / ``F IN ('v', …)`` joined by AND or OR, as (field, casefolded values)
    pairs and the joiner (all or any)."""
    conditions: list[tuple[str, set[str]]] = []
    joiners: set[str] = set()
    rest = where
    while rest.strip():
        found = _CONDITION.match(rest)
        if not found:
            raise Refused(400, "MALFORMED_QUERY", f"unexpected token: {rest[:40]}")
        literals = [found[2]] if found[2] else _IN_VALUE.findall(found[3])
        conditions.append((found[1], {_unescape(v[1:-1]).casefold() for v in literals}))
        rest = rest[found.end():]
        joined = re.match(r"(AND|OR)\s", rest, re.IGNORECASE)
        if joined:
            joiners.add(joined[1].upper())
            rest = rest[joined.end():]
        elif rest.strip():
            raise Refused(400, "MALFORMED_QUERY", f"unexpected token: {rest[:40]}")
    if len(joiners) > 1:
        raise Refused(400, "MALFORMED_QUERY", "mixing AND and OR needs parentheses")
    return conditions, any if joiners == {"OR"} else all


def _batch_size(options: str | None) -> int:
    """The batch size ``Sforce-Query-Options: batchSize=N`` asks for (200 to 2000)."""
    found = re.search(r"batchSize\s*=\s*(\d+)", options or "")
    return max(MIN_QUERY_BATCH, min(QUERY_BATCH, int(found[1]))) if found else QUERY_BATCH


def _unescape(literal: str) -> str:
    out, chars = [], iter(literal)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            if nxt not in _UNESCAPE:
                raise Refused(400, "MALFORMED_QUERY", f"invalid escape sequence \\{nxt}")
            out.append(_UNESCAPE[nxt])
        else:
            out.append(ch)
    return "".join(out)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 peer: SalesforcePeer) -> None:
        super().__init__(address, handler)
        self.peer = peer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    #: Headers and body go out in separate writes: without this, Nagle's algorithm and
    #: the client's delayed ACK hold every answer back 40 ms.
    disable_nagle_algorithm = True

    def _handle(self) -> None:
        peer = self.server.peer
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        if parts.path == "/services/oauth2/token" and self.command == "POST":
            form = {k: v[0] for k, v in parse_qs(raw.decode(errors="replace")).items()}
            status, answer = peer.token(form)
            self._reply(status, answer)
            return
        if parts.path.rstrip("/") == "/services/data" and self.command == "GET":
            self._reply(200, [{"label": "Sandbox", "url": f"/services/data/v{v}",
                               "version": v} for v in VERSIONS])
            return
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if segments[:2] != ["services", "data"] or len(segments) < 3 \
                or segments[2].removeprefix("v") not in VERSIONS:
            self._reply(404, Refused(404, "NOT_FOUND", "The requested resource does not "
                                                       "exist").body())
            return
        self._api(peer, segments[3:], parse_qs(parts.query), raw)

    def _api(self, peer: SalesforcePeer, path: list[str], query: Mapping[str, list[str]],
             raw: bytes) -> None:
        fault = peer.next_fault()
        if fault == "drop":
            self.close_connection = True
            return
        if fault == "timeout":
            peer.wait(TIMEOUT_FAULT_SECONDS)
            self.close_connection = True
            return
        limit = {"Sforce-Limit-Info": peer.limit_info()}
        if not peer.authorized(self.headers.get("Authorization", "")):
            self._reply(401, Refused(401, "INVALID_SESSION_ID",
                                     "Session expired or invalid").body(), limit)
            return
        if not peer.count_call():
            self._reply(403, Refused(403, "REQUEST_LIMIT_EXCEEDED",
                                     "TotalRequests Limit exceeded.").body(),
                        {"Sforce-Limit-Info": peer.limit_info()})
            return
        limit = {"Sforce-Limit-Info": peer.limit_info()}
        if fault is not None:
            status, code = FAULTS[fault]
            if fault == "401":
                peer.refuse_next_token()
            extra = {"Retry-After": "1"} if fault == "429" else {}
            self._reply(status, Refused(status, code, f"injected {fault}").body(),
                        {**limit, **extra})
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._reply(400, Refused(400, "JSON_PARSER_ERROR", "malformed JSON").body(),
                        limit)
            return
        try:
            status, answer = peer.handle(self.command, path, query, body,
                                         _batch_size(self.headers.get("Sforce-Query-Options")))
        except Refused as refused:
            status, answer = refused.status, refused.body()
        self._reply(status, answer, limit)

    def _reply(self, status: int, answer: Any, headers: Mapping[str, str] | None = None
               ) -> None:
        body = b"" if answer is None else json.dumps(answer).encode()
        try:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if body:
                self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up meanwhile
            self.close_connection = True

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@contextlib.contextmanager
def salesforce_peer(port: int = 0, **options: Any) -> Iterator[SalesforcePeer]:
    """A running peer on 127.0.0.1 (``port`` 0: a free one), stopped afterwards."""
    peer = SalesforcePeer(port, **options).start()
    try:
        yield peer
    finally:
        peer.stop()


class ContractSalesforcePeer:
    """:class:`connectors.sandbox.contract.ContractPeer` for the Salesforce connector."""

    def __init__(self, peer: SalesforcePeer) -> None:
        self.peer = peer

    def properties(self) -> dict[str, Any]:
        return {**self.peer.properties(), "timeout-seconds": 1}

    def attribute_names(self) -> dict[str, str]:
        return {"givenname": "FirstName", "lastname": "LastName", "emailaddress": "Email"}

    def refusing_properties(self) -> dict[str, Any]:
        origin = f"http://{LOOPBACK}:{free_port()}"
        return {**self.properties(), "sf-domain-name": origin,
                "sf-token-endpoint": f"{origin}/services/oauth2/token"}

    def secrets(self) -> list[str]:
        return self.peer.secrets()

    def fail_next(self, fault: str, count: int = 1) -> None:
        self.peer.fail_next(fault, count)

    def seed_user(self, username: str) -> str:
        return self.peer.seed_user(username if "@" in username
                                   else f"{username}@sandbox.example.com")

    def remote_user(self, remote_id: str) -> RemoteUser | None:
        return self.peer.remote_user(remote_id)

    def group_members(self, remote_id: str) -> set[str] | None:
        return self.peer.group_members(remote_id)


@contextlib.contextmanager
def contract_peer() -> Iterator[ContractSalesforcePeer]:
    """The contract suite's peer (``ConnectorSpec.contract_peer``): query answers of two
    records at most, so that every listing pages."""
    with salesforce_peer(max_batch=2) as peer:
        yield ContractSalesforcePeer(peer)


@click.command("salesforce")
@click.option("--port", type=click.IntRange(0, 65535), default=8789, show_default=True,
              help="Loopback port to listen on (0: any free port).")
@click.option("--token-seconds", type=click.FloatRange(1, 86_400), default=3600.0,
              show_default=True, help="How long an access token lives.")
@click.option("--limit", type=click.IntRange(1, 10**9), default=DAILY_LIMIT,
              show_default=True, help="The org's daily API request limit.")
def salesforce_command(port: int, token_seconds: float, limit: int) -> None:
    """A sandbox Salesforce org (User, Group, GroupMember, OAuth) on 127.0.0.1."""
    try:
        peer = SalesforcePeer(port, token_seconds=token_seconds, limit=limit)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {LOOPBACK}:{port}: {exc.strerror}"
                                   ) from None
    props = peer.properties()
    click.echo(f"Sandbox Salesforce org on {peer.origin} (Ctrl-C stops it)")
    click.echo(f"  sf-domain-name: {props['sf-domain-name']}")
    click.echo(f"  sf-token-endpoint: {props['sf-token-endpoint']}")
    click.echo(f"  sf-clientid: {CLIENT_ID}")
    click.echo(f"  sf-client-secret: {CLIENT_SECRET}  (sandbox value)")
    click.echo(f"  sf-profile-id: {PROFILE_ID}")
    peer.start()
    try:
        while not peer.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        peer.stop()


__all__ = ["CLIENT_ID", "CLIENT_SECRET", "PASSWORD", "PROFILE_ID", "USERNAME",
           "ContractSalesforcePeer", "SalesforcePeer", "contract_peer",
           "salesforce_command", "salesforce_peer"]
