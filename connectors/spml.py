"""SPML 2.0 outbound connector: SOAP 1.1 over HTTP POST, data in the DSML profile.

Decisions worth knowing:

* A user is a PSO whose DSML data holds ``objectclass`` (``spml-oc``), ``accountId`` (the
  user's name without its domain) and one attribute per mapped claim, named by the remote
  name of the identity provider's claim mapping (which must be a DSML attribute name). The
  ``psoID`` the provider answers to ``addRequest returnData="identifier"`` is the remote id.
* Updates are one ``modifyRequest``: a DSML ``replace`` per attribute sent and a ``delete``
  per mapped attribute the user no longer has a value for.
* Active state goes by the suspend capability (``suspendRequest``/``resumeRequest``): on
  disable, on create of an inactive user, and after every update (a user back in scope
  after a disable is resumed). A provider that does not announce the capability in
  listTargets is never sent one; disabling a user there is a permanent error.
* A password is sent (DSML ``credentials``) only with ``spml-enable-pwd-provisioning`` on.
* Adoption: an ``alreadyExists`` failure is a ConflictError; ``lookup_user`` then asks
  ``lookupRequest`` for the psoID the failure reported, else for the accountId.
* Errors: SPML ``status="failure"`` maps its ``error`` code (``alreadyExists`` ->
  ConflictError, ``noSuchIdentifier`` -> RemoteNotFound, anything else permanent); a SOAP
  Fault is permanent with its faultstring; HTTP 429, 5xx without a Fault, timeouts and
  network failures are retried; an answer that is not a well-formed SPML response of the
  expected kind (a DTD, entities, another namespace, no psoID) is permanent and says why.
* Listing (reconciliation): ``searchRequest`` (``urn:oasis:names:tc:SPML:2:0:search``)
  for the persons of ``spml-oc`` when the target announces the search capability,
  ``maxSelect`` per page and ``iterateRequest`` for the rest (an iterator left open is
  closed); else a ``lookupRequest`` per psoID the engine has a mapping for, so such a
  provider shows no extra or unlinked user. With the suspend capability an
  ``activeRequest`` per PSO (``ACTIVE_AT_ONCE`` in flight) gives its state.
* ``exchanges`` hold each envelope sent (the password replaced by ``********``) and the
  answer's text; never a header, so never the Basic credentials.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.base import (
    LIST_PAGE,
    ConflictError,
    Connector,
    ConnectorError,
    ConnectorSpec,
    Exchange,
    OutboundUser,
    PermanentError,
    RemoteNotFound,
    RemoteObject,
    RemoteRef,
    RetryableError,
)
from connectors.spml_xml import (
    DSML_NS,
    SEARCH_NS,
    SOAP_CONTENT_TYPE,
    SPML_NS,
    SUSPEND_NS,
    BadXml,
    attributes_of,
    body_of,
    check_dsml_name,
    check_text,
    dsml,
    element,
    envelope,
    fault_string,
    parse,
    pso_id,
    q,
    request_id,
    shown,
)
from connectors.wire import MASK, parsed_url, retry_after, shortened, text_of
from core.properties import PropertySpec, PropertyType

_P = PropertyType

SPEC = ConnectorSpec(
    type="spml",
    label="SPML 2.0",
    properties=(
        PropertySpec("spml-ep", "SOAP endpoint", _P.URL, required=True,
                     schemes=("http", "https"),
                     help="the provider's SPML 2.0 endpoint, e.g. http://127.0.0.1:8790/spml"),
        PropertySpec("spml-oc", "Object class", required=True,
                     help="the objectclass of a person, e.g. spml2Person"),
        PropertySpec("spml-username", "Username", help="HTTP Basic, when set"),
        PropertySpec("spml-password", "Password", secret=True),
        PropertySpec("spml-target-id", "Target ID",
                     help="the provider's targetID for users; empty: its default target"),
        PropertySpec("spml-enable-pwd-provisioning", "Provision passwords", _P.BOOLEAN,
                     default=False, help="send the user's password as DSML credentials"),
    ),
    supports_groups=False,
    contract_peer="connectors.sandbox.spml:contract_peer",
    preview_peer="connectors.sandbox.spml:accommodating_answer",
)

PASSWORD_ATTRIBUTE = "credentials"
ACCOUNT_ATTRIBUTE = "accountId"
#: ``activeRequest``s in flight at once while listing.
ACTIVE_AT_ONCE = 8
#: Seconds the provider's listTargets answer is trusted before it is read again.
TARGETS_TTL = 300.0
_SHOWN_TEXT = 2000
#: A SCIM-style attribute path without filter or URN (``name.givenName``).
_DOTTED = re.compile(r"[A-Za-z][A-Za-z0-9-]*(\.[A-Za-z][A-Za-z0-9-]*)+")
#: A SCIM attribute path with a value filter (``emails[type eq "work"].value``).
_FILTERED = re.compile(r"([A-Za-z][A-Za-z0-9-]*)\[[^\]]*\](\.[A-Za-z][A-Za-z0-9-]*)?")
_PERMANENT_CODES = {
    "malformedRequest": "the provider says our request is malformed",
    "unsupportedOperation": "the provider does not support this operation",
    "insufficientPrivileges": "the provider says our account may not do this; check "
                              "spml-username and spml-password",
    "customError": "the provider refused the request",
}


@dataclass(frozen=True)
class Target:
    """One target of the provider as listTargets announces it."""

    id: str
    profile: str
    capabilities: tuple[str, ...]

    def describe(self) -> str:
        caps = ", ".join(c.rsplit(":", 1)[-1] for c in self.capabilities) or "none"
        return f"{self.id or '(no targetID)'} (profile {self.profile or 'none'}; " \
               f"capabilities: {caps})"


class SpmlConnector(Connector):
    spec = SPEC

    def __init__(self, properties: Mapping[str, Any], client: httpx.AsyncClient,
                 memo: dict[str, Any] | None = None) -> None:
        super().__init__(properties, client, memo)
        self.endpoint = str(properties["spml-ep"])
        self.object_class = check_value(str(properties["spml-oc"]), "spml-oc")
        self.target_id = str(properties.get("spml-target-id") or "") or None
        self._auth = _basic(properties)
        #: psoIDs an alreadyExists failure reported, by accountId (for lookup_user).
        self._reported: dict[str, str] = {}
        #: The psoID the last alreadyExists failure named, if any.
        self._conflict: str | None = None

    # ------------------------------------------------------------ service
    async def test_connection(self) -> str:
        targets = await self.targets(refresh=True)
        listed = "; ".join(t.describe() for t in targets) or "no targets"
        return f"SPML 2.0 provider at {self.endpoint}: {len(targets)} target(s): {listed}"

    async def targets(self, refresh: bool = False) -> list[Target]:
        """The provider's targets (listTargets), read once per ``TARGETS_TTL`` for every
        connector sharing ``memo``."""
        known = self.memo.get("targets")
        if not refresh and known is not None and known[0] > time.monotonic():
            return list(known[1])
        async with self.memo.setdefault("targets-lock", asyncio.Lock()):
            known = self.memo.get("targets")
            if refresh or known is None or known[0] <= time.monotonic():
                answer = await self._call(element(SPML_NS, "listTargetsRequest",
                                                  _request_attrs()), "list the targets")
                found = [_target(t) for t in answer.findall(q(SPML_NS, "target"))]
                known = (time.monotonic() + TARGETS_TTL, found)
                self.memo["targets"] = known
            return list(known[1])

    async def can_suspend(self) -> bool:
        """Whether our target announces the suspend capability."""
        return await self._announces(SUSPEND_NS)

    async def can_search(self) -> bool:
        """Whether our target announces the search capability."""
        return await self._announces(SEARCH_NS)

    async def _announces(self, capability: str) -> bool:
        targets = await self.targets()
        ours = [t for t in targets if self.target_id is None or t.id == self.target_id]
        return any(capability in t.capabilities for t in ours[:1])

    # ------------------------------------------------------------ users
    def account_id(self, user: OutboundUser) -> str:
        if not user.username:
            raise PermanentError("the user has no username to send as accountId")
        return check_value(user.username, "the username")

    async def create_user(self, user: OutboundUser) -> RemoteRef:
        account = self.account_id(user)
        what = f"add user {account!r}"
        attrs = [(ACCOUNT_ATTRIBUTE, account), *self._attributes(user, what)]
        password = self._password(user)
        data = [dsml("attr", "objectclass", [self.object_class]),
                *(dsml("attr", n, [v]) for n, v in attrs)]

        attributes = _request_attrs(returnData="identifier",
                                    **({"targetID": self.target_id} if self.target_id else {}))

        def request(secret: str | None) -> ET.Element:
            """The request; with the password masked, what the exchange log shows."""
            shown_data = [*data, *([dsml("attr", PASSWORD_ATTRIBUTE, [secret])]
                                   if secret is not None else [])]
            return element(SPML_NS, "addRequest", attributes,
                           [element(SPML_NS, "data", children=shown_data)])

        try:
            answer = await self._call(request(password), what,
                                      shown=request(MASK) if password else None)
        except ConflictError:
            if self._conflict:
                self._reported[account] = self._conflict
            raise
        ref = RemoteRef(_answered_id(answer, what), account)
        if not user.active and await self.can_suspend():
            await self._suspend(ref.id, False, what)
        return ref

    async def update_user(self, remote_id: str, user: OutboundUser) -> RemoteRef:
        account = self.account_id(user)
        what = f"modify user {account!r} (psoID {remote_id})"
        replaced = [(ACCOUNT_ATTRIBUTE, account), *self._attributes(user, what)]
        sent = {n for n, _ in replaced}
        changes = [dsml("modification", n, [v], operation="replace") for n, v in replaced]
        changes += [dsml("modification", check_dsml_name(dsml_attribute(n), what), [],
                         operation="delete")
                    for n in dict.fromkeys(user.unset) if dsml_attribute(n) not in sent]
        password = self._password(user)

        attributes = _request_attrs(returnData="identifier")

        def request(secret: str | None) -> ET.Element:
            mods = [*changes, *([dsml("modification", PASSWORD_ATTRIBUTE, [secret],
                                      operation="replace")] if secret is not None else [])]
            return element(SPML_NS, "modifyRequest", attributes,
                           [pso_id(remote_id, self.target_id),
                            element(SPML_NS, "modification", children=mods)])

        await self._call(request(password), what, shown=request(MASK) if password else None)
        if await self.can_suspend():
            await self._suspend(remote_id, user.active, what)
        return RemoteRef(remote_id, account)

    async def set_active(self, remote_id: str, user: OutboundUser, active: bool) -> None:
        what = f"{'resume' if active else 'suspend'} user {user.username!r} (psoID {remote_id})"
        if not await self.can_suspend():
            raise PermanentError(f"{what}: the provider does not announce the suspend "
                                 "capability for this target; set deprovision-action to "
                                 "delete or none")
        await self._suspend(remote_id, active, what)

    async def delete_user(self, remote_id: str, user: OutboundUser) -> None:
        what = f"delete user {user.username!r} (psoID {remote_id})"
        await self._call(element(SPML_NS, "deleteRequest", _request_attrs(),
                                 [pso_id(remote_id, self.target_id)]), what)

    async def lookup_user(self, user: OutboundUser) -> RemoteRef | None:
        account = self.account_id(user)
        wanted = self._reported.get(account, account)
        what = f"look up user {account!r} (psoID {wanted})"
        try:
            answer = await self._call(element(SPML_NS, "lookupRequest",
                                              _request_attrs(returnData="identifier"),
                                              [pso_id(wanted, self.target_id)]), what)
        except RemoteNotFound:
            return None
        return RemoteRef(_answered_id(answer, what), account)

    async def _suspend(self, remote_id: str, active: bool, what: str) -> None:
        kind = "resumeRequest" if active else "suspendRequest"
        await self._call(element(SUSPEND_NS, kind, _request_attrs(),
                                 [pso_id(remote_id, self.target_id, SUSPEND_NS)]), what)

    def _password(self, user: OutboundUser) -> str | None:
        if not (user.password and self.properties.get("spml-enable-pwd-provisioning")):
            return None
        return check_value(user.password, "the password")

    def _attributes(self, user: OutboundUser, what: str) -> list[tuple[str, str]]:
        """The mapped attributes, checked to be DSML names and XML text.

        A dotted remote name (a SCIM attribute path such as ``name.givenName``, as claim
        mappings shared with a SCIM target hold) is sent by its last segment; two names
        landing on one DSML attribute with different values are an error, not a guess.
        """
        out: dict[str, str] = {}
        for name, value in user.attributes.items():
            dsml_name = dsml_attribute(name)
            if dsml_name in (ACCOUNT_ATTRIBUTE, "objectclass", PASSWORD_ATTRIBUTE):
                continue  # set by the connector itself
            try:
                check_dsml_name(dsml_name, "a claim mapping's remote name")
                check_text(value, f"the value of {name}")
            except BadXml as exc:
                raise PermanentError(f"{what}: {exc}") from None
            if out.get(dsml_name, value) != value:
                raise PermanentError(f"{what}: two claim mappings give the DSML attribute "
                                     f"{dsml_name} different values")
            out[dsml_name] = value
        return list(out.items())

    # ------------------------------------------------------------ listing
    async def list_users(self, page_size: int = LIST_PAGE,
                         known: Iterable[str] = ()) -> AsyncIterator[RemoteObject]:
        """The target's persons: by ``searchRequest`` when it announces the search
        capability, else by a ``lookupRequest`` per ``known`` psoID (one gone is left out).
        With the suspend capability, an ``activeRequest`` per PSO says whether it is
        active (SPML's search answers do not)."""
        suspend = await self.can_suspend()
        pages = self._search(page_size) if await self.can_search() \
            else self._lookups(known, page_size)
        async with contextlib.aclosing(pages):  # an early stop closes the search too
            async for page in pages:
                states = await self._active_states([_pso_id(p) for p in page], suspend)
                for pso, active in zip(page, states, strict=True):
                    if active is None:
                        continue  # deleted since it was listed
                    data = {k: v[0] if len(v) == 1 else v
                            for k, v in attributes_of(pso.find(q(SPML_NS, "data"))).items()
                            if k not in ("objectclass", PASSWORD_ATTRIBUTE)}
                    yield RemoteObject(_pso_id(pso), str(data.get(ACCOUNT_ATTRIBUTE) or ""),
                                       active, data)

    def drift(self, remote: RemoteObject, user: OutboundUser) -> list[str]:
        """The DSML attributes an update would replace or delete whose value at the
        provider differs (names as sent: a SCIM path by its attribute)."""
        try:
            wanted = dict([(ACCOUNT_ATTRIBUTE, self.account_id(user)),
                           *self._attributes(user, f"compare user {user.username!r}")])
        except PermanentError:  # cannot be sent at all: every mapped attribute differs
            return sorted(user.attributes) or [ACCOUNT_ATTRIBUTE]
        differ = [n for n, v in wanted.items() if remote.attributes.get(n) != v]
        differ += [n for n in dict.fromkeys(dsml_attribute(u) for u in user.unset)
                   if n not in wanted and n in remote.attributes]
        return differ + (["active"] if remote.active != user.active else [])

    async def _search(self, page_size: int) -> AsyncGenerator[list[ET.Element], None]:
        """Pages of ``pso`` elements: a ``searchRequest`` for the persons (a DSML filter
        on ``spml-oc``) of at most ``page_size`` (``maxSelect``), then ``iterateRequest``
        while the provider answers an iterator; one left open (the caller stopped early)
        is closed."""
        what = "search the users"
        query = element(SEARCH_NS, "query", {"targetID": self.target_id}
                        if self.target_id else {}, [element(DSML_NS, "filter", children=[
                            dsml("equalityMatch", "objectclass", [self.object_class])])])
        answer = await self._call(element(SEARCH_NS, "searchRequest", _request_attrs(
            returnData="everything", maxSelect=str(max(1, page_size))), [query]), what)
        iterator = answer.find(q(SEARCH_NS, "iterator"))
        try:
            while True:
                yield answer.findall(q(SEARCH_NS, "pso"))
                if iterator is None or not iterator.get("ID"):
                    return
                self.exchanges.clear()  # kept for the last page only, as every listing
                answer = await self._call(element(SEARCH_NS, "iterateRequest",
                                                  _request_attrs(), [iterator]), what)
                iterator = answer.find(q(SEARCH_NS, "iterator"))
        finally:
            if iterator is not None and iterator.get("ID"):
                with contextlib.suppress(ConnectorError):  # the provider forgets it anyway
                    await self._call(element(SEARCH_NS, "closeIteratorRequest",
                                             _request_attrs(), [iterator]), what)

    async def _lookups(self, known: Iterable[str], page_size: int
                       ) -> AsyncGenerator[list[ET.Element], None]:
        """Pages of ``pso`` elements looked up one by one (the provider cannot search)."""
        ids = iter(known)
        while page := list(itertools.islice(ids, max(1, page_size))):
            self.exchanges.clear()  # kept for the last page only, as every listing
            found = []
            for remote_id in page:
                try:
                    answer = await self._call(element(
                        SPML_NS, "lookupRequest", _request_attrs(returnData="everything"),
                        [pso_id(remote_id, self.target_id)]), f"look up PSO {remote_id}")
                except RemoteNotFound:
                    continue  # gone: the reconciliation finds it missing
                found += answer.findall(q(SPML_NS, "pso"))
            yield found

    async def _active_states(self, ids: list[str], suspend: bool) -> list[bool | None]:
        """Whether each PSO is active (``activeRequest``, a few at a time; None: gone
        meanwhile); all are when the provider cannot suspend."""
        if not suspend:
            return [True] * len(ids)
        out: list[bool | None] = []
        for start in range(0, len(ids), ACTIVE_AT_ONCE):
            out += await asyncio.gather(*(self._is_active(i)
                                          for i in ids[start:start + ACTIVE_AT_ONCE]))
        return out

    async def _is_active(self, remote_id: str) -> bool | None:
        try:
            answer = await self._call(element(
                SUSPEND_NS, "activeRequest", _request_attrs(),
                [pso_id(remote_id, self.target_id, SUSPEND_NS)]),
                f"ask whether {remote_id} is active")
        except RemoteNotFound:
            return None
        return answer.get("active") != "false"

    # ------------------------------------------------------------ SOAP
    async def _call(self, request: ET.Element, what: str, *,
                    shown: ET.Element | None = None) -> ET.Element:
        """Post one SPML request; its (successful) SPML response element."""
        content = envelope(request)
        recorded = content if shown is None else envelope(shown)
        local = request.tag.split("}", 1)[1]
        headers = {"Content-Type": SOAP_CONTENT_TYPE, "SOAPAction": f'"{local}"',
                   "Accept": "text/xml", **self._auth}
        try:
            http_request = self.client.build_request("POST", parsed_url(self.memo,
                                                                        self.endpoint),
                                                     headers=headers,
                                                     content=content)
        except httpx.InvalidURL as exc:
            raise PermanentError(f"{what}: {self.endpoint} is not a usable URL: {exc}") \
                from None
        where = f"POST {self.endpoint} {local}"
        try:
            response = await self.client.send(http_request)
        except httpx.TimeoutException as exc:
            self._record(recorded, None, None)
            raise RetryableError(f"{what}: no answer in time to {where} "
                                 f"({type(exc).__name__})") from None
        except httpx.UnsupportedProtocol as exc:
            self._record(recorded, None, None)
            raise PermanentError(f"{what}: cannot send {where}: {exc}") from None
        except httpx.TransportError as exc:
            self._record(recorded, None, None)
            raise RetryableError(f"{what}: cannot reach the provider for {where}: "
                                 f"{exc or type(exc).__name__}") from None
        self._record(recorded, response.status_code, text_of(response)[:_SHOWN_TEXT])
        try:
            return _answer(response, request, what, where)
        except ConflictError:
            self._conflict = _reported_pso(response.content)
            raise

    def _record(self, request: bytes, status: int | None, answer: str | None) -> None:
        self.exchanges.append(Exchange("POST", self.endpoint, request.decode(), status,
                                       answer))


# ---------------------------------------------------------------- helpers
def check_value(value: str, what: str) -> str:
    try:
        return check_text(value, what)
    except BadXml as exc:
        raise PermanentError(str(exc)) from None


def dsml_attribute(remote_name: str) -> str:
    """The DSML attribute a claim mapping's remote name stands for: a SCIM attribute path
    (as mappings shared with a SCIM target hold) by its attribute, a plain dotted path
    (``name.givenName``) by its last segment, a filtered one (``emails[type eq
    "work"].value``) by the attribute before the filter; anything else as it is."""
    filtered = _FILTERED.fullmatch(remote_name)
    if filtered:
        return filtered.group(1)
    return remote_name.rsplit(".", 1)[1] if _DOTTED.fullmatch(remote_name) else remote_name


def _basic(properties: Mapping[str, Any]) -> dict[str, str]:
    username = properties.get("spml-username")
    if not username:
        return {}
    pair = f"{username}:{properties.get('spml-password') or ''}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def _request_attrs(**attrs: str) -> dict[str, str]:
    return {"requestID": request_id(), "executionMode": "synchronous", **attrs}


def _answer(response: httpx.Response, request: ET.Element, what: str,
            where: str) -> ET.Element:
    """The SPML response to ``request`` in ``response``, or the typed error it means."""
    status = response.status_code
    said = f"{what}: the provider answered HTTP {status} ({where})"
    node: ET.Element | None = None
    problem = ""
    if response.content:
        try:
            node = body_of(parse(response.content, "the answer"), "the answer")
        except BadXml as exc:
            problem = str(exc)
    fault = fault_string(node) if node is not None else None
    if fault is not None:
        raise PermanentError(f"{what}: the provider answered a SOAP Fault: {fault} ({where})",
                             status)
    if status in (401, 403):
        raise PermanentError(f"{what}: the provider refused our credentials (HTTP {status}; "
                             f"{where}); check spml-username and spml-password", status)
    if status == 429 or status >= 500:
        raise RetryableError(f"{said}{_said(response)}", status,
                             retry_after(response.headers.get("Retry-After")))
    if not response.is_success:
        raise PermanentError(f"{said}{_said(response)}", status)
    if node is None:
        raise PermanentError(f"{what}: the provider's answer is not usable: "
                             f"{problem or 'it is empty'} ({where})", status)
    expected = request.tag[:-len("Request")] + "Response"
    if node.tag != expected:
        raise PermanentError(f"{what}: the provider answered {shown(node.tag)} where "
                             f"{shown(expected)} was expected ({where})", status)
    answered_for = node.get("requestID")
    if answered_for and answered_for != request.get("requestID"):
        raise PermanentError(f"{what}: the provider answered another request "
                             f"(requestID {answered_for!r}) ({where})", status)
    outcome = node.get("status")
    if outcome == "success":
        return node
    if outcome != "failure":
        raise PermanentError(f"{what}: the provider answered status {outcome!r} to a "
                             f"synchronous request ({where})", status)
    raise _failure(node, what, where)


def _failure(node: ET.Element, what: str, where: str) -> ConnectorError:
    code = node.get("error") or ""
    messages = "; ".join(" ".join((m.text or "").split())
                         for m in node.findall(q(SPML_NS, "errorMessage")))[:300]
    message = f"{what}: the provider answered failure {code or '(no error code)'}" + \
        (f": {messages}" if messages else "") + f" ({where})"
    if code == "alreadyExists":
        return ConflictError(message)
    if code == "noSuchIdentifier":
        return RemoteNotFound(message)
    hint = _PERMANENT_CODES.get(code)
    return PermanentError(f"{message}; {hint}" if hint else message)


def _reported_pso(content: bytes) -> str | None:
    """The psoID an alreadyExists failure names (``pso/psoID/@ID``), if any."""
    try:
        found = body_of(parse(content)).find(f"{q(SPML_NS, 'pso')}/{q(SPML_NS, 'psoID')}")
    except BadXml:
        return None
    return found.get("ID") if found is not None else None


def _answered_id(answer: ET.Element, what: str) -> str:
    found = answer.find(f"{q(SPML_NS, 'pso')}/{q(SPML_NS, 'psoID')}")
    remote_id = found.get("ID") if found is not None else None
    if not remote_id:
        raise PermanentError(f"{what}: the provider answered success without "
                             "pso/psoID/@ID, so the user cannot be addressed later")
    return remote_id


def _pso_id(pso: ET.Element) -> str:
    found = pso.find(q(SPML_NS, "psoID"))
    remote_id = found.get("ID") if found is not None else None
    if not remote_id:
        raise PermanentError("the provider listed a PSO without psoID/@ID")
    return remote_id


def _target(node: ET.Element) -> Target:
    caps: Iterable[ET.Element] = node.iter(q(SPML_NS, "capability"))
    return Target(node.get("targetID") or "", node.get("profile") or "",
                  tuple(c.get("namespaceURI") or "" for c in caps))


def _said(response: httpx.Response) -> str:
    text = shortened(response.text)
    return f": {text}" if text else ""
