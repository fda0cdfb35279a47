"""SCIM 2.0 outbound connector (RFC 7643 resources, RFC 7644 protocol).

Remote objects are addressed by the id the target returned and the engine stored; a name
is searched only by ``lookup_user``/``lookup_group``, for adoption after a conflict.

Decisions worth knowing:

* Users are updated with a full ``PUT`` by default (the target then holds exactly what we
  send). With ``scim2-patch-updates`` on and a target announcing PATCH, updates are
  ``PATCH`` requests that touch only the attributes sent: one ``replace`` per attribute,
  and for a multi-valued attribute selected by a filter (``emails[type eq "work"].value``)
  a ``remove`` of the selected entries followed by an ``add`` of ours, so other entries
  stay. In that mode a value removed locally is left at the target.
* ``set_active`` and group changes use PATCH when the target's ServiceProviderConfig
  announces it; otherwise they read the object, change it and PUT it back, with
  ``If-Match`` when the target announces ETags (a 412 is then retried).
* A group is created with all its members in one POST, so that the create is all or
  nothing; member changes afterwards go by PATCH ``add``/``remove`` in chunks of
  ``scim2-members-per-request``, which are idempotent and therefore safe to retry.
* Passwords: on create, the user's password when ``scim2-enable-pwd-provisioning`` is on,
  else (or when the user has none) ``scim2-default-pwd`` if set; on update only the user's
  password (a credential change), and only when provisioning passwords is on.
* 5xx, 429, 408, 412 and network failures are retryable (Retry-After honoured); 501 is
  permanent (retrying cannot make the target implement the request).
* ``exchanges`` records every request and answer without headers (so no credentials) and
  with every password replaced by ``********``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from scim2_models import Context, Group

from connectors.base import (
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
from connectors.scim2_body import user_body
from connectors.wire import (
    decoded_json,
    parsed_url,
    request_to,
    retry_after,
    shortened,
    shown,
)
from core.claims import SCIM_DIALECT
from core.properties import PropertySpec, PropertyType

_P = PropertyType
_CREDENTIALS = ("scim2-username and scim2-password (authentication mode BASIC), or "
                "scim2-access-token (BEARER)")

#: SCIM is HTTP: an ftp:// or file:// endpoint is refused in the form and `config validate`.
_HTTP = ("http", "https")

SPEC = ConnectorSpec(
    type="scim2",
    label="SCIM 2.0",
    properties=(
        PropertySpec("scim2-user-ep", "User endpoint", _P.URL, required=True,
                     help="e.g. http://127.0.0.1:8787/v2/Users", credentials=_CREDENTIALS,
                     schemes=_HTTP),
        PropertySpec("scim2-group-ep", "Group endpoint", _P.URL,
                     help="e.g. http://127.0.0.1:8787/v2/Groups; empty: groups not sent",
                     credentials=_CREDENTIALS, schemes=_HTTP),
        PropertySpec("scim2-authentication-mode", "Authentication mode", _P.CHOICE,
                     default="NONE", choices=("NONE", "BASIC", "BEARER", "API_KEY")),
        PropertySpec("scim2-username", "Username"),
        PropertySpec("scim2-password", "Password", secret=True),
        PropertySpec("scim2-access-token", "Access token", secret=True),
        PropertySpec("scim2-api-key-header", "API key header name"),
        PropertySpec("scim2-api-key-value", "API key value", secret=True),
        PropertySpec("scim2-user-store-domain", "Userstore domain prefix",
                     help="if set, names are sent as DOMAIN/name"),
        PropertySpec("scim2-enable-pwd-provisioning", "Provision passwords", _P.BOOLEAN,
                     default=True),
        PropertySpec("scim2-default-pwd", "Default password", secret=True),
        PropertySpec("scim2-patch-updates", "Update users with PATCH", _P.BOOLEAN,
                     default=False,
                     help="send only the mapped attributes by PATCH when the target supports "
                          "it (values removed locally stay at the target); off: PUT the user"),
        PropertySpec("scim2-members-per-request", "Group members per request", _P.INTEGER,
                     default=50, help="members added or removed by one PATCH request"),
    ),
    required_when=(
        ("scim2-username", "scim2-authentication-mode", "BASIC"),
        ("scim2-password", "scim2-authentication-mode", "BASIC"),
        ("scim2-access-token", "scim2-authentication-mode", "BEARER"),
        ("scim2-api-key-header", "scim2-authentication-mode", "API_KEY"),
        ("scim2-api-key-value", "scim2-authentication-mode", "API_KEY"),
    ),
    supports_groups=True,
    groups_need="scim2-group-ep",
    dialect=SCIM_DIALECT,
    contract_peer="connectors.sandbox.scim2_contract:contract_peer",
)

SCIM_JSON = "application/scim+json"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
#: Read back and PUT again without these (server-managed).
_READ_ONLY_KEYS = ("meta", "groups")
_RETRYABLE_4XX = frozenset({408, 412, 429})
#: Seconds a target's ServiceProviderConfig is trusted before it is read again.
CAPABILITIES_TTL = 300.0


@dataclass(frozen=True)
class Capabilities:
    """What the target's ServiceProviderConfig announces (all False when it has none)."""

    found: bool = False
    patch: bool = False
    bulk: bool = False
    bulk_max_operations: int | None = None
    etag: bool = False
    filter: bool = False
    #: Cursor pagination (RFC 9865: ``pagination.cursor``).
    cursor: bool = False

    @classmethod
    def from_config(cls, body: Any) -> Capabilities:
        if not isinstance(body, Mapping):
            return cls()

        def supported(name: str) -> bool:
            section = body.get(name)
            return isinstance(section, Mapping) and section.get("supported") is True

        bulk = body.get("bulk")
        max_ops = bulk.get("maxOperations") if isinstance(bulk, Mapping) else None
        paging = body.get("pagination")
        cursor = isinstance(paging, Mapping) and paging.get("cursor") is True
        return cls(True, supported("patch"), supported("bulk"),
                   max_ops if isinstance(max_ops, int) else None,
                   supported("etag"), supported("filter"), cursor)

    def describe(self) -> str:
        if not self.found:
            return "no readable ServiceProviderConfig (PATCH, bulk and ETag assumed absent)"

        def yes(flag: bool) -> str:
            return "supported" if flag else "not supported"

        bulk = yes(self.bulk)
        if self.bulk and self.bulk_max_operations is not None:
            bulk += f" (at most {self.bulk_max_operations} operations)"
        return (f"PATCH {yes(self.patch)}, bulk {bulk}, ETag {yes(self.etag)}, "
                f"filter {yes(self.filter)}, cursor pagination {yes(self.cursor)}")


class Scim2Connector(Connector):
    spec = SPEC

    def __init__(self, properties: Mapping[str, Any], client: httpx.AsyncClient,
                 memo: dict[str, Any] | None = None) -> None:
        super().__init__(properties, client, memo)
        self.user_ep = str(properties["scim2-user-ep"]).rstrip("/")
        self.group_ep = str(properties.get("scim2-group-ep") or "").rstrip("/")
        #: The SCIM root: the user endpoint without its last segment (…/v2/Users -> …/v2).
        self.base_url = self.user_ep.rsplit("/", 1)[0]
        self.domain_prefix = str(properties.get("scim2-user-store-domain") or "")
        self.members_per_request = max(1, int(properties.get("scim2-members-per-request")
                                              or 50))
        self._auth = _auth_headers(properties)

    # ------------------------------------------------------------ service
    async def test_connection(self) -> str:
        caps = await self.capabilities(refresh=True)
        found = [f"SCIM 2.0 target at {self.base_url}: {caps.describe()}",
                 f"users endpoint answers ({await self._count(self.user_ep, 'users')} users)"]
        if self.group_ep:
            found.append("groups endpoint answers "
                         f"({await self._count(self.group_ep, 'groups')} groups)")
        else:
            found.append("no group endpoint: groups are not sent")
        return "; ".join(found)

    async def capabilities(self, refresh: bool = False) -> Capabilities:
        """The target's ServiceProviderConfig, read once for every connector sharing
        ``memo`` (the engine's connectors of one target), and again after
        ``CAPABILITIES_TTL`` seconds (a peer may start to support PATCH) or on ``refresh``.
        """
        def fresh() -> Capabilities | None:
            known = self.memo.get("capabilities")
            return known[1] if known is not None and known[0] > time.monotonic() else None

        known = None if refresh else fresh()
        if known is not None:
            return known
        async with self.memo.setdefault("capabilities-lock", asyncio.Lock()):
            known = None if refresh else fresh()  # read meanwhile by another connector
            if known is None:
                try:
                    body = await self._call("GET", f"{self.base_url}/ServiceProviderConfig",
                                            "read the ServiceProviderConfig")
                except RemoteNotFound:
                    body = None
                known = Capabilities.from_config(body)
                self.memo["capabilities"] = (time.monotonic() + CAPABILITIES_TTL, known)
            return known

    async def _count(self, endpoint: str, what: str) -> str:
        body = await self._call("GET", endpoint, f"list {what}",
                                params={"startIndex": "1", "count": "1"})
        total = body.get("totalResults") if isinstance(body, Mapping) else None
        return str(total) if isinstance(total, int) else "an unknown number of"

    # ------------------------------------------------------------ users
    def remote_username(self, user: OutboundUser) -> str:
        if not user.username:
            raise PermanentError("the user has no username to send as userName")
        return f"{self.domain_prefix}/{user.username}" if self.domain_prefix else user.username

    async def create_user(self, user: OutboundUser) -> RemoteRef:
        name = self.remote_username(user)
        what = f"create user {name!r}"
        sent, _ = self._user_body(user, self._create_password(user),
                                  Context.RESOURCE_CREATION_REQUEST, what)
        body = await self._call("POST", self.user_ep, what, body=sent)
        created = _ref(body, "userName")
        if created is not None:
            return created
        # A 2xx without an id: find what was created rather than invent an id.
        found = await self._find(self.user_ep, "userName", name, what)
        if found is None:
            raise PermanentError(f"{what}: the target answered without the new user's id "
                                 "and no user with that userName can be found")
        return found

    async def update_user(self, remote_id: str, user: OutboundUser) -> RemoteRef:
        name = self.remote_username(user)
        what = f"update user {name!r} (id {remote_id})"
        body, selections = self._user_body(user, self._update_password(user),
                                           Context.RESOURCE_REPLACEMENT_REQUEST, what)
        url = _at(self.user_ep, remote_id)
        if self.properties.get("scim2-patch-updates") and (await self.capabilities()).patch:
            await self._call("PATCH", url, what, body=_patch(_user_patch_ops(body, selections)))
        else:
            await self._call("PUT", url, what, body=body)
        return RemoteRef(remote_id, name)

    async def set_active(self, remote_id: str, user: OutboundUser, active: bool) -> None:
        what = f"{'enable' if active else 'disable'} user {user.username!r} (id {remote_id})"
        url = _at(self.user_ep, remote_id)
        if (await self.capabilities()).patch:
            await self._call("PATCH", url, what,
                             body=_patch([{"op": "replace", "path": "active", "value": active}]))
            return
        await self._read_modify_write(url, what, lambda current: {**current, "active": active})

    async def delete_user(self, remote_id: str, user: OutboundUser) -> None:
        what = f"delete user {user.username!r} (id {remote_id})"
        await self._call("DELETE", _at(self.user_ep, remote_id), what)

    async def lookup_user(self, user: OutboundUser) -> RemoteRef | None:
        name = self.remote_username(user)
        return await self._find(self.user_ep, "userName", name, f"look up user {name!r}")

    def _create_password(self, user: OutboundUser) -> str | None:
        own = user.password if self.properties.get("scim2-enable-pwd-provisioning") else None
        return own or self.properties.get("scim2-default-pwd") or None

    def _update_password(self, user: OutboundUser) -> str | None:
        return user.password if self.properties.get("scim2-enable-pwd-provisioning") else None

    def _user_body(self, user: OutboundUser, password: str | None, context: Context,
                   what: str) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """The SCIM User body for ``user`` and the value filters used per attribute; a
        malformed attribute path or value is a PermanentError, raised before any request."""
        return user_body(user.attributes, self.remote_username(user), user.active, password,
                         context, what)

    # ------------------------------------------------------------ groups
    def remote_group_name(self, group: OutboundGroup) -> str:
        if not group.name:
            raise PermanentError("the group has no name to send as displayName")
        return f"{self.domain_prefix}/{group.name}" if self.domain_prefix else group.name

    def _groups(self) -> str:
        if not self.group_ep:
            raise PermanentError("groups are not sent to this target: scim2-group-ep is empty")
        return self.group_ep

    async def create_group(self, group: OutboundGroup) -> RemoteRef:
        endpoint, name = self._groups(), self.remote_group_name(group)
        what = f"create group {name!r}"
        resource = Group.model_validate(
            {"displayName": name, "members": [{"value": m} for m in group.member_ids] or None})
        body = await self._call("POST", endpoint, what, body=resource.model_dump(
            scim_ctx=Context.RESOURCE_CREATION_REQUEST))
        created = _ref(body, "displayName")
        if created is not None:
            return created
        found = await self._find(endpoint, "displayName", name, what)
        if found is None:
            raise PermanentError(f"{what}: the target answered without the new group's id "
                                 "and no group with that displayName can be found")
        return found

    async def rename_group(self, remote_id: str, group: OutboundGroup) -> RemoteRef:
        endpoint, name = self._groups(), self.remote_group_name(group)
        what = f"rename group (id {remote_id}) to {name!r}"
        url = _at(endpoint, remote_id)
        if (await self.capabilities()).patch:
            await self._call("PATCH", url, what, body=_patch(
                [{"op": "replace", "path": "displayName", "value": name}]))
        else:
            await self._read_modify_write(url, what,
                                          lambda current: {**current, "displayName": name})
        return RemoteRef(remote_id, name)

    async def change_members(self, remote_id: str, group: OutboundGroup,
                             add: Sequence[str], remove: Sequence[str]) -> None:
        if not add and not remove:
            return
        url = _at(self._groups(), remote_id)
        what = f"change the members of group {group.name!r} (id {remote_id})"
        if not (await self.capabilities()).patch:
            await self._read_modify_write(url, what,
                                          lambda current: _with_members(current, add, remove))
            return
        for chunk in _chunks(remove, self.members_per_request):
            await self._call("PATCH", url, what, body=_patch(
                [{"op": "remove", "path": f"members[value eq {_quote(m)}]"} for m in chunk]))
        for chunk in _chunks(add, self.members_per_request):
            await self._call("PATCH", url, what, body=_patch(
                [{"op": "add", "path": "members", "value": [{"value": m} for m in chunk]}]))

    async def delete_group(self, remote_id: str, group: OutboundGroup) -> None:
        endpoint = self._groups()
        what = f"delete group {group.name!r} (id {remote_id})"
        await self._call("DELETE", _at(endpoint, remote_id), what)

    async def lookup_group(self, group: OutboundGroup) -> RemoteRef | None:
        endpoint, name = self._groups(), self.remote_group_name(group)
        return await self._find(endpoint, "displayName", name, f"look up group {name!r}")

    # ------------------------------------------------------------ listing
    async def list_users(self, page_size: int = LIST_PAGE,
                         known: Iterable[str] = ()) -> AsyncIterator[RemoteObject]:
        async for r in self._list(self.user_ep, "users", page_size):
            yield RemoteObject(str(r["id"]), self._unprefixed(r.get("userName")),
                               r.get("active") is not False, r)

    async def list_groups(self, page_size: int = LIST_PAGE) -> AsyncIterator[RemoteObject]:
        async for r in self._list(self._groups(), "groups", page_size):
            members = [str(m["value"]) for m in r.get("members") or []
                       if isinstance(m, Mapping) and m.get("value")]
            yield RemoteObject(str(r["id"]), self._unprefixed(r.get("displayName")),
                               attributes=r, members=members)

    def drift(self, remote: RemoteObject, user: OutboundUser) -> list[str]:
        """The paths of the body :meth:`update_user` would send whose values the remote
        resource lacks (a multi-valued entry matches any remote entry holding all of its
        values; ``schemas`` and attributes the target adds are not compared)."""
        body, _ = user_body(user.attributes, self.remote_username(user), user.active, None,
                            Context.RESOURCE_REPLACEMENT_REQUEST, f"compare {user.username!r}")
        return [path for key, value in body.items() if key != "schemas"
                for path in _differences(key, value, remote.attributes.get(key))]

    def _unprefixed(self, name: Any) -> str:
        text = str(name or "")
        prefix = f"{self.domain_prefix}/" if self.domain_prefix else ""
        return text[len(prefix):] if prefix and text.startswith(prefix) else text

    async def _list(self, endpoint: str, what: str, page_size: int
                    ) -> AsyncIterator[Mapping[str, Any]]:
        """Every resource of ``endpoint``, a page per request: by cursor (RFC 9865) when
        the target announces it, else by ``startIndex``/``count`` (RFC 7644 §3.4.2.4).
        Exchanges are kept for the last page only (a listing of 100,000 users would
        otherwise hold every page it read)."""
        count = str(max(1, page_size))
        cursor = (await self.capabilities()).cursor
        position = ""  # the cursor, or the 1-based start index
        index = 1
        while True:
            params = {"cursor": position, "count": count} if cursor else \
                {"startIndex": str(index), "count": count}
            self.exchanges.clear()
            body = await self._call("GET", endpoint, f"list {what}", params=params)
            if not isinstance(body, Mapping) or not isinstance(body.get("Resources", []), list):
                raise PermanentError(f"list {what}: GET {endpoint} did not answer a SCIM "
                                     "ListResponse")
            page = [r for r in body.get("Resources") or [] if isinstance(r, Mapping)
                    and r.get("id")]
            for resource in page:
                yield resource
            if cursor:
                position = str(body.get("nextCursor") or "")
                if not position:
                    return
                continue
            index += len(page)
            total = body.get("totalResults")
            if not page or not isinstance(total, int) or index > total:
                return

    # ------------------------------------------------------------ HTTP
    async def _find(self, endpoint: str, attribute: str, value: str, what: str
                    ) -> RemoteRef | None:
        """The one object whose ``attribute`` equals ``value`` (adoption only).

        The answer is checked here too, so that a target ignoring the filter never makes
        us adopt somebody else; two candidates are an error, not a guess.
        """
        body = await self._call("GET", endpoint, what,
                                params={"filter": f"{attribute} eq {_quote(value)}"})
        found = body.get("Resources") if isinstance(body, Mapping) else None
        items = [r for r in found or [] if isinstance(r, Mapping) and r.get("id")]
        exact = [r for r in items if r.get(attribute) == value]
        same = exact or [r for r in items
                         if str(r.get(attribute, "")).casefold() == value.casefold()]
        if len(same) > 1:
            raise PermanentError(f"{what}: {len(same)} objects at the target have "
                                 f"{attribute} {value!r}; cannot tell which one is ours")
        return RemoteRef(str(same[0]["id"]), str(same[0].get(attribute))) if same else None

    async def _read_modify_write(self, url: str, what: str,
                                 change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """GET the object, PUT ``change(object)`` back; If-Match when ETags are supported."""
        response, current = await self._send("GET", url, what)
        if not isinstance(current, Mapping):
            raise PermanentError(f"{what}: GET {url} did not answer a SCIM object")
        body = {k: v for k, v in change(dict(current)).items() if k not in _READ_ONLY_KEYS}
        meta = current.get("meta")
        version = response.headers.get("ETag") or (
            meta.get("version") if isinstance(meta, Mapping) else None)
        headers = {"If-Match": version} if version and (await self.capabilities()).etag else {}
        await self._call("PUT", url, what, body=body, headers=headers)

    async def _call(self, method: str, url: str, what: str, *, body: Any = None,
                    params: Mapping[str, str] | None = None,
                    headers: Mapping[str, str] | None = None) -> Any:
        """Send one request; its decoded answer (None when empty)."""
        _, answer = await self._send(method, url, what, body=body, params=params,
                                     headers=headers)
        return answer

    async def _send(self, method: str, url: str, what: str, *, body: Any = None,
                    params: Mapping[str, str] | None = None,
                    headers: Mapping[str, str] | None = None) -> tuple[httpx.Response, Any]:
        """Send one request, record it (redacted) and map failures to typed errors."""
        all_headers = {"Accept": f"{SCIM_JSON}, application/json", **self._auth,
                       **(headers or {})}
        content = text = None
        if body is not None:
            all_headers["Content-Type"] = SCIM_JSON
            text = json.dumps(body)
            content = text.encode()
        try:
            # the endpoints, parsed once per target; an object's URL (its id) as it comes
            if url in (self.user_ep, self.group_ep) and params is None:
                request = request_to(self.client, self.memo, method,
                                     parsed_url(self.memo, url), all_headers, content)
            else:
                request = self.client.build_request(method, url, params=params,
                                                    headers=all_headers, content=content)
        except httpx.InvalidURL as exc:
            raise PermanentError(f"{what}: {url} is not a usable URL: {exc}") from None
        shown = f"{method} {request.url}"
        try:
            response = await self.client.send(request)
        except httpx.TimeoutException as exc:
            self._record(request, body, text, None, None, None)
            raise RetryableError(f"{what}: no answer in time to {shown} "
                                 f"({type(exc).__name__})") from None
        except httpx.UnsupportedProtocol as exc:
            self._record(request, body, text, None, None, None)
            raise PermanentError(f"{what}: cannot send {shown}: {exc}") from None
        except httpx.TransportError as exc:
            self._record(request, body, text, None, None, None)
            raise RetryableError(f"{what}: cannot reach the target for {shown}: "
                                 f"{exc or type(exc).__name__}") from None
        answer, answer_text = decoded_json(response)
        self._record(request, body, text, response.status_code, answer, answer_text)
        if response.is_success:
            return response, answer
        raise _http_error(what, shown, response.status_code, answer,
                          response.headers.get("Retry-After"))

    def _record(self, request: httpx.Request, body: Any, text: str | None,
                status: int | None, answer: Any, answer_text: str | None) -> None:
        """Log the exchange, secrets masked; ``text`` and ``answer_text`` are the bodies'
        JSON as sent and received (``wire.shown``)."""
        shown_body, body_json = shown(body, text)
        shown_answer, answer_json = shown(answer, answer_text)
        self.exchanges.append(Exchange(request.method, str(request.url), shown_body, status,
                                       shown_answer, body_json, answer_json))


# ---------------------------------------------------------------- helpers
def _auth_headers(properties: Mapping[str, Any]) -> dict[str, str]:
    mode = properties.get("scim2-authentication-mode") or "NONE"
    if mode == "BASIC":
        pair = f"{properties.get('scim2-username', '')}:{properties.get('scim2-password', '')}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    if mode == "BEARER":
        return {"Authorization": f"Bearer {properties.get('scim2-access-token', '')}"}
    header = properties.get("scim2-api-key-header")
    if mode == "API_KEY" and header:
        return {str(header): str(properties.get("scim2-api-key-value", ""))}
    return {}


def _at(endpoint: str, remote_id: str) -> str:
    """The URL of a remote object: its stored id, as one path segment."""
    return f"{endpoint}/{quote(remote_id, safe='')}"


def _quote(value: str) -> str:
    """A filter string literal (RFC 7644 §3.4.2.2: a JSON string; `"` and `\\` escaped)."""
    return json.dumps(value, ensure_ascii=False)


def _user_patch_ops(body: Mapping[str, Any], selections: Mapping[str, list[str]]
                    ) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for key, value in body.items():
        if key == "schemas":
            continue
        if key.startswith("urn:") and isinstance(value, Mapping):
            ops += [{"op": "replace", "path": f"{key}:{attr}", "value": v}
                    for attr, v in value.items()]
        elif key in selections:
            ops += [{"op": "remove", "path": f"{key}[{f}]"} for f in selections[key]]
            ops.append({"op": "add", "path": key, "value": value})
        else:
            ops.append({"op": "replace", "path": key, "value": value})
    return ops


def _differences(path: str, ours: Any, theirs: Any) -> list[str]:
    """The leaf paths under ``path`` where ``theirs`` lacks ``ours``."""
    if isinstance(ours, Mapping):
        theirs = theirs if isinstance(theirs, Mapping) else {}
        return [p for k, v in ours.items() for p in _differences(f"{path}.{k}", v, theirs.get(k))]
    if isinstance(ours, list):
        held = theirs if isinstance(theirs, list) else []
        return [] if all(any(not _differences(path, o, t) for t in held) for o in ours) \
            else [path]
    return [] if ours == theirs else [path]


def _patch(operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": operations}


def _with_members(group: dict[str, Any], add: Sequence[str], remove: Sequence[str]
                  ) -> dict[str, Any]:
    gone = set(remove)
    kept = [m for m in group.get("members") or []
            if isinstance(m, Mapping) and m.get("value") not in gone]
    present = {m.get("value") for m in kept}
    kept += [{"value": m} for m in dict.fromkeys(add) if m not in present]
    return {**group, "members": [{"value": m["value"]} for m in kept]}


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _ref(body: Any, name_attribute: str) -> RemoteRef | None:
    if isinstance(body, Mapping) and isinstance(body.get("id"), str) and body["id"]:
        return RemoteRef(body["id"], str(body.get(name_attribute) or ""))
    return None


def _http_error(what: str, shown: str, status: int, answer: Any,
                wait: str | None) -> ConnectorError:
    detail, scim_type = "", ""
    if isinstance(answer, Mapping):
        detail = str(answer.get("detail") or answer.get("message") or "")
        scim_type = str(answer.get("scimType") or "")
    elif isinstance(answer, str):
        detail = shortened(answer)
    said = f"HTTP {status}" + (f" {scim_type}" if scim_type else "") + \
        (f": {detail}" if detail else "")
    message = f"{what}: the target answered {said} ({shown})"
    if status == 404:
        return RemoteNotFound(message, status)
    if status == 409:
        return ConflictError(message, status)
    if status in (401, 403):
        return PermanentError(f"{what}: the target refused our credentials ({said}; {shown}); "
                              "check scim2-authentication-mode and its credentials", status)
    if status in _RETRYABLE_4XX or (status >= 500 and status != 501):
        return RetryableError(message, status, retry_after(wait))
    return PermanentError(message, status)
