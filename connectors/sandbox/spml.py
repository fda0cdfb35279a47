"""A sandbox SPML 2.0 provider (SOAP 1.1, DSML profile, suspend capability) on loopback.

``mware-iam sandbox spml --port P`` runs it; ``mware-iam demo`` runs one as a target; the
tests and the contract suite drive it through :func:`spml_sandbox` / :func:`contract_peer`.

Every request is parsed safely (``connectors.spml_xml``) and validated against the OASIS
schemas shipped in ``spml_schemas/`` (XML Schema 1.1, DSML content included). An invalid
request is answered ``status="failure" error="malformedRequest"`` with the validator's
reason; a document that is not a SOAP envelope holding one element gets a SOAP Fault. PSOs
live in memory, one target (``users``), ids ``pso-<hex>``.

The search capability (``urn:oasis:names:tc:SPML:2:0:search``, announced unless
``search=False`` / ``--no-search``): ``searchRequest`` with a query of DSML filters
(equalityMatch, present, and, or, not) answers at most ``maxSelect`` PSOs (``MAX_SELECT``
at most) and an ``iterator`` over the rest, read by ``iterateRequest`` (a finished,
closed or forgotten iterator is ``invalidIdentifier``) and dropped by
``closeIteratorRequest``.

Faults for the contract suite (:meth:`SpmlSandbox.fail_next`) are what an SPML provider
says for each: ``400``, ``404`` and ``409`` are SPML failures (``malformedRequest``,
``noSuchIdentifier``, ``alreadyExists``) in an HTTP 200; ``401``/``403`` come from the HTTP
layer, as do ``429`` (``Retry-After: 1``) and ``500``/``503`` (a text body, as an
application server in front of the provider gives); ``timeout`` answers after
``TIMEOUT_SLEEP`` seconds, past the connector's ``timeout-seconds`` of the contract
properties; ``drop`` closes the connection without an answer.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hmac
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click
import httpx
import xmlschema

from connectors.sandbox.contract import Fault, RemoteUser
from connectors.sandbox.peers import (
    LOOPBACK,
    MAX_FAULTS,
    PeerUnavailable,
    free_port,
    port_is_free,
)
from connectors.spml_xml import (
    DSML_NS,
    DSML_PROFILE,
    SEARCH_NS,
    SOAP_CONTENT_TYPE,
    SOAP_NS,
    SPML_NS,
    SUSPEND_NS,
    BadXml,
    attributes_of,
    body_of,
    dsml,
    element,
    envelope,
    namespace,
    parse,
    q,
    shown,
)

SCHEMAS = Path(__file__).with_name("spml_schemas")
TARGET_ID = "users"
OBJECT_CLASS = "spml2Person"
TIMEOUT_SLEEP = 2.5
#: PSOs a search or iterate answer holds at most (``maxSelect`` asks for fewer).
MAX_SELECT = 500
#: Open result iterators kept; the oldest is forgotten past this.
MAX_ITERATORS = 64
_NCNAME = re.compile(r"[^\W\d][\w.-]*")
#: Contract-suite faults a provider answers as SPML failures: fault -> SPML error code.
_SPML_FAULTS = {"400": "malformedRequest", "404": "noSuchIdentifier", "409": "alreadyExists"}


@functools.cache
def schema() -> xmlschema.XMLSchema11:
    """The SPML 2.0 schemas (core, suspend, DSML profile, DSML data), loaded once."""
    return xmlschema.XMLSchema11(str((SCHEMAS / "spml_all.xsd").resolve()))


def schema_errors(node: ET.Element) -> list[str]:
    """Why ``node`` (an SPML request or response element) is not schema-valid."""
    return [f"{e.reason} (at {e.path})" for e in schema().iter_errors(node)]


@dataclass
class Pso:
    id: str
    attributes: dict[str, list[str]]
    active: bool = True

    @property
    def account(self) -> str:
        return (self.attributes.get("accountId") or [""])[0]


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    #: "drop": close without an answer; "sleep": answer after TIMEOUT_SLEEP seconds;
    #: "spml:CODE": an SPML failure CODE in the response to whatever was asked.
    kind: str = "answer"


@dataclass
class SpmlProvider:
    """The provider's state and protocol, without HTTP (the server calls :meth:`handle`)."""

    username: str | None = None
    password: str | None = None
    #: Announce the suspend capability in listTargets.
    suspend: bool = True
    #: Announce (and answer) the search capability.
    search: bool = True
    #: Name the existing PSO in an alreadyExists failure.
    report_existing: bool = True
    psos: dict[str, Pso] = field(default_factory=dict)
    #: Every request element received, for tests (bounded).
    received: deque[ET.Element] = field(default_factory=lambda: deque(maxlen=1000))
    #: psoID by accountId.
    _accounts: dict[str, str] = field(default_factory=dict)
    #: Open search results: iterator ID -> (psoIDs not yet answered, maxSelect).
    _iterators: dict[str, tuple[list[str], int]] = field(default_factory=dict)
    _faults: deque[Reply] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------ faults and seeding
    def script(self, *replies: Reply) -> None:
        """The next requests get these replies instead of being handled."""
        with self._lock:
            if len(self._faults) + len(replies) > MAX_FAULTS:
                raise ValueError(f"at most {MAX_FAULTS} scripted faults")
            self._faults.extend(replies)

    def fail_next(self, fault: Fault, count: int = 1) -> None:
        self.script(*[fault_reply(fault)] * count)

    def seed(self, account: str, **attributes: str) -> str:
        with self._lock:
            pso = Pso(f"pso-{uuid.uuid4().hex[:16]}",
                      {"objectclass": [OBJECT_CLASS], "accountId": [account],
                       **{k: [v] for k, v in attributes.items()}})
            self._store(pso)
            return pso.id

    def drop(self, pso_id: str) -> None:
        """Remove a PSO behind the connector's back (as an administrator of the provider
        would)."""
        with self._lock:
            pso = self.psos.pop(pso_id)
            self._accounts.pop(pso.account, None)

    # ------------------------------------------------------------ HTTP
    def handle(self, content: bytes, authorization: str | None) -> Reply:
        if self.username is not None and not self._authorized(authorization):
            return Reply(401, b"Unauthorized", (("WWW-Authenticate", 'Basic realm="spml"'),
                                                ("Content-Type", "text/plain")))
        with self._lock:
            scripted = self._faults.popleft() if self._faults else None
        return scripted if scripted is not None else self.answer(content)

    def answer(self, content: bytes) -> Reply:
        """The answer to one SOAP request (no fault, no authentication)."""
        try:
            node = body_of(parse(content, "the request"), "the request")
        except BadXml as exc:
            return soap_fault("Client", str(exc))
        self.received.append(node)
        handler = _HANDLERS.get(node.tag)
        if handler is None:
            return soap_fault("Client", f"{shown(node.tag)} is not a request this provider "
                                        "supports")
        errors = schema_errors(node)
        if errors:
            return _reply(respond(node, "failure", "malformedRequest",
                                  "the request is not valid against the SPML 2.0 schemas: "
                                  + "; ".join(errors[:3])))
        with self._lock:
            return _reply(handler(self, node))

    def _authorized(self, header: str | None) -> bool:
        pair = f"{self.username}:{self.password or ''}".encode()
        expected = "Basic " + base64.b64encode(pair).decode()
        return header is not None and hmac.compare_digest(header.encode(), expected.encode())

    # ------------------------------------------------------------ operations
    def _find(self, node: ET.Element) -> Pso | None:
        found = node.find(q(namespace(node.tag), "psoID"))
        return self.psos.get(found.get("ID") or "") if found is not None else None

    def _by_account(self, account: str) -> Pso | None:
        return self.psos.get(self._accounts.get(account, ""))

    def _store(self, pso: Pso) -> None:
        self.psos[pso.id] = pso
        self._accounts[pso.account] = pso.id

    def add(self, node: ET.Element) -> ET.Element:
        attributes = attributes_of(node.find(q(SPML_NS, "data")))
        account = (attributes.get("accountId") or [""])[0]
        if not account or not attributes.get("objectclass"):
            return respond(node, "failure", "malformedRequest",
                           "the data needs an objectclass and an accountId")
        existing = self._by_account(account)
        if existing is not None:
            answer = respond(node, "failure", "alreadyExists",
                             f"accountId {account!r} already exists")
            if self.report_existing:
                answer.append(_pso(existing, "identifier"))
            return answer
        pso = Pso(f"pso-{uuid.uuid4().hex[:16]}", attributes)
        self._store(pso)
        answer = respond(node, "success")
        answer.append(_pso(pso, node.get("returnData") or "everything"))
        return answer

    def modify(self, node: ET.Element) -> ET.Element:
        pso = self._find(node)
        if pso is None:
            return _no_such(node)
        changed = {k: list(v) for k, v in pso.attributes.items()}
        for modification in node.findall(q(SPML_NS, "modification")):
            for change in modification.iter(q(DSML_NS, "modification")):
                _apply(changed, change.get("operation") or "", change.get("name") or "",
                       [v.text or "" for v in change.findall(q(DSML_NS, "value"))])
            mode = modification.get("modificationMode")
            for name, values in attributes_of(modification.find(q(SPML_NS, "data"))).items():
                _apply(changed, mode or "replace", name, values)
        account = (changed.get("accountId") or [""])[0]
        other = self._by_account(account)
        if not account:
            return respond(node, "failure", "malformedRequest", "accountId cannot be removed")
        if other is not None and other is not pso:
            return respond(node, "failure", "alreadyExists",
                           f"accountId {account!r} already exists")
        del self._accounts[pso.account]
        pso.attributes = changed
        self._store(pso)
        answer = respond(node, "success")
        answer.append(_pso(pso, node.get("returnData") or "everything"))
        return answer

    def delete(self, node: ET.Element) -> ET.Element:
        pso = self._find(node)
        if pso is None:
            return _no_such(node)
        del self.psos[pso.id], self._accounts[pso.account]
        return respond(node, "success")

    def lookup(self, node: ET.Element) -> ET.Element:
        pso = self._find(node)
        if pso is None:
            return _no_such(node)
        answer = respond(node, "success")
        answer.append(_pso(pso, node.get("returnData") or "everything"))
        return answer

    def set_active(self, node: ET.Element) -> ET.Element:
        if not self.suspend:
            return respond(node, "failure", "unsupportedOperation",
                           "this provider does not support the suspend capability")
        pso = self._find(node)
        if pso is None:
            return _no_such(node)
        pso.active = node.tag == q(SUSPEND_NS, "resumeRequest")
        return respond(node, "success")

    def active(self, node: ET.Element) -> ET.Element:
        pso = self._find(node)
        if pso is None:
            return _no_such(node)
        answer = respond(node, "success")
        answer.set("active", "true" if pso.active else "false")
        return answer

    def list_targets(self, node: ET.Element) -> ET.Element:
        answer = respond(node, "success")
        answer.append(target_element(self.suspend, self.search))
        return answer

    # ------------------------------------------------------------ the search capability
    def search_psos(self, node: ET.Element) -> ET.Element:
        """``searchRequest``: the PSOs its query selects (a DSML filter of equalityMatch,
        present, and, or, not; no query: all), ``maxSelect`` at a time; the rest through
        an iterator."""
        if not self.search:
            return respond(node, "failure", "unsupportedOperation",
                           "this provider does not support the search capability")
        query = node.find(q(SEARCH_NS, "query"))
        selected = list(self.psos.values())
        if query is not None:
            if query.get("targetID") not in (None, TARGET_ID):
                return respond(node, "failure", "noSuchIdentifier",
                               f"no target {query.get('targetID')!r}")
            if query.find(q(SEARCH_NS, "basePsoID")) is not None:
                return respond(node, "failure", "unsupportedOperation",
                               "this provider's target is flat: no basePsoID")
            filters = [c for c in query if c.tag != q(SEARCH_NS, "basePsoID")]
            for clause in filters:
                if clause.tag != q(DSML_NS, "filter") or len(clause) != 1:
                    return respond(node, "failure", "unsupportedSelectionType",
                                   f"{shown(clause.tag)} is not a DSML filter this "
                                   "provider supports")
                try:
                    _matches(clause[0], Pso("", {}))  # walks every clause: unsupported ones raise
                    selected = [p for p in selected if _matches(clause[0], p)]
                except ValueError as exc:
                    return respond(node, "failure", "unsupportedSelectionType", str(exc))
        wanted = int(node.get("maxSelect") or MAX_SELECT)
        return self._results(node, [p.id for p in selected],
                             max(1, min(wanted, MAX_SELECT)), node.get("returnData"))

    def iterate(self, node: ET.Element) -> ET.Element:
        key = _iterator_id(node)
        if key not in self._iterators:
            return respond(node, "failure", "invalidIdentifier",
                           f"no open iterator {key!r} (closed, finished or expired)")
        left, size = self._iterators.pop(key)
        return self._results(node, left, size, "everything")

    def close_iterator(self, node: ET.Element) -> ET.Element:
        self._iterators.pop(_iterator_id(node), None)
        return respond(node, "success")

    def _results(self, node: ET.Element, ids: list[str], size: int,
                 return_data: str | None) -> ET.Element:
        """A search or iterate response: the first ``size`` PSOs still there, and an
        iterator over the rest when any is left."""
        answer = respond(node, "success")
        for pso_id in ids[:size]:
            if pso_id in self.psos:
                answer.append(_pso(self.psos[pso_id], return_data or "everything",
                                   SEARCH_NS))
        if len(ids) > size:
            key = f"it-{uuid.uuid4().hex}"
            self._iterators[key] = (ids[size:], size)
            while len(self._iterators) > MAX_ITERATORS:
                self._iterators.pop(next(iter(self._iterators)))
            answer.append(element(SEARCH_NS, "iterator", {"ID": key}))
        return answer


_HANDLERS: dict[str, Callable[[SpmlProvider, ET.Element], ET.Element]] = {
    q(SPML_NS, "addRequest"): SpmlProvider.add,
    q(SPML_NS, "modifyRequest"): SpmlProvider.modify,
    q(SPML_NS, "deleteRequest"): SpmlProvider.delete,
    q(SPML_NS, "lookupRequest"): SpmlProvider.lookup,
    q(SPML_NS, "listTargetsRequest"): SpmlProvider.list_targets,
    q(SUSPEND_NS, "suspendRequest"): SpmlProvider.set_active,
    q(SUSPEND_NS, "resumeRequest"): SpmlProvider.set_active,
    q(SUSPEND_NS, "activeRequest"): SpmlProvider.active,
    q(SEARCH_NS, "searchRequest"): SpmlProvider.search_psos,
    q(SEARCH_NS, "iterateRequest"): SpmlProvider.iterate,
    q(SEARCH_NS, "closeIteratorRequest"): SpmlProvider.close_iterator,
}


def _iterator_id(request: ET.Element) -> str:
    found = request.find(q(SEARCH_NS, "iterator"))
    return (found.get("ID") if found is not None else None) or ""


def _matches(clause: ET.Element, pso: Pso) -> bool:
    """Whether ``pso`` matches a DSML filter clause (attribute names and values compared
    without regard to case, as LDAP's caseIgnoreMatch does)."""
    kind = clause.tag
    if kind in (q(DSML_NS, "and"), q(DSML_NS, "or")):
        results = [_matches(c, pso) for c in clause]
        return all(results) if kind == q(DSML_NS, "and") else any(results)
    if kind == q(DSML_NS, "not") and len(clause) == 1:
        return not _matches(clause[0], pso)
    values = {k.casefold(): [v.casefold() for v in vs] for k, vs in pso.attributes.items()}
    name = (clause.get("name") or "").casefold()
    if kind == q(DSML_NS, "present"):
        return name in values
    if kind == q(DSML_NS, "equalityMatch"):
        return (clause.findtext(q(DSML_NS, "value")) or "").casefold() in values.get(name, [])
    raise ValueError(f"{shown(kind)} is not a filter this provider supports (equalityMatch, "
                     "present, and, or, not)")


def _apply(attributes: dict[str, list[str]], operation: str, name: str,
           values: list[str]) -> None:
    """One DSML modification (LDAP semantics; deleting what is absent is no error)."""
    if operation == "replace":
        if values:
            attributes[name] = values
        else:
            attributes.pop(name, None)
    elif operation == "add":
        attributes.setdefault(name, []).extend(v for v in values
                                               if v not in attributes.get(name, []))
    elif operation == "delete":
        kept = [v for v in attributes.get(name, []) if v not in values] if values else []
        if kept:
            attributes[name] = kept
        else:
            attributes.pop(name, None)


# ---------------------------------------------------------------- responses
def respond(request: ET.Element, status: str, error: str | None = None,
            message: str | None = None) -> ET.Element:
    """The response element to ``request`` (``xRequest`` -> ``xResponse``)."""
    attrs = {"status": status}
    asked = request.get("requestID") or ""
    if _NCNAME.fullmatch(asked):  # an invalid one is not echoed (the answer stays valid)
        attrs["requestID"] = asked
    if error:
        attrs["error"] = error
    answer = element(*_split(request.tag[:-len("Request")] + "Response"), attrs)
    if message:
        ET.SubElement(answer, q(SPML_NS, "errorMessage")).text = message
    return answer


def _split(tag: str) -> tuple[str, str]:
    ns, local = tag[1:].split("}", 1)
    return ns, local


def _no_such(request: ET.Element) -> ET.Element:
    found = request.find(q(namespace(request.tag), "psoID"))
    return respond(request, "failure", "noSuchIdentifier",
                   f"no PSO with ID {found.get('ID') if found is not None else None!r}")


def _pso(pso: Pso, return_data: str, ns: str = SPML_NS) -> ET.Element:
    """``pso`` as an answer holds it (in ``ns``: a search response's ``pso`` is in the
    search namespace, its content in the core one)."""
    node = element(ns, "pso", children=[
        element(SPML_NS, "psoID", {"ID": pso.id, "targetID": TARGET_ID})])
    if return_data != "identifier":
        node.append(element(SPML_NS, "data", children=[
            dsml("attr", n, v) for n, v in pso.attributes.items() if n != "credentials"]))
    return node


def target_element(suspend: bool, search: bool = True) -> ET.Element:
    """Our one target: the DSML profile, its person class, and its capabilities."""
    definition = element(DSML_PROFILE, "schema", children=[
        element(DSML_PROFILE, "objectClassDefinition", {"name": OBJECT_CLASS})])
    capabilities = [element(SPML_NS, "capability", {"namespaceURI": ns})
                    for ns, on in ((SUSPEND_NS, suspend), (SEARCH_NS, search)) if on]
    return element(SPML_NS, "target", {"targetID": TARGET_ID, "profile": DSML_PROFILE}, [
        element(SPML_NS, "schema", children=[definition]),
        element(SPML_NS, "capabilities", children=capabilities)])


def _reply(answer: ET.Element) -> Reply:
    return Reply(200, envelope(answer), (("Content-Type", SOAP_CONTENT_TYPE),))


def soap_fault(code: str, text: str) -> Reply:
    fault = element(SOAP_NS, "Fault")
    ET.SubElement(fault, "faultcode").text = f"soap:{code}"
    ET.SubElement(fault, "faultstring").text = text
    return Reply(500, envelope(fault), (("Content-Type", SOAP_CONTENT_TYPE),))


def fault_reply(fault: Fault) -> Reply:
    """What the provider answers for a contract-suite fault."""
    if fault in _SPML_FAULTS:
        return Reply(200, kind=f"spml:{_SPML_FAULTS[fault]}")
    if fault == "timeout":
        return Reply(200, kind="sleep")
    if fault == "drop":
        return Reply(0, kind="drop")
    headers = (("Retry-After", "1"),) if fault == "429" else ()
    return Reply(int(fault), f"HTTP {fault} from the sandbox".encode(),
                 (*headers, ("Content-Type", "text/plain")))


# ---------------------------------------------------------------- preview
def accommodating_answer(request: httpx.Request) -> httpx.Response:
    """What ``provisioning preview`` shows the connector talking to: success to every
    request (a new PSO is ``(new)``; a looked-up one is the ID asked for)."""
    try:
        node = body_of(parse(request.content, "the request"), "the request")
    except BadXml as exc:
        reply = soap_fault("Client", str(exc))
        return httpx.Response(reply.status, content=reply.body, headers=dict(reply.headers))
    answer = respond(node, "success")
    asked = node.find(q(namespace(node.tag), "psoID"))
    if node.tag in (q(SPML_NS, "addRequest"), q(SPML_NS, "lookupRequest"),
                    q(SPML_NS, "modifyRequest")):
        ID = asked.get("ID") if asked is not None else None
        answer.append(_pso(Pso(ID or "(new)", {}), "identifier"))
    elif node.tag == q(SPML_NS, "listTargetsRequest"):
        answer.append(target_element(True))
    elif node.tag == q(SUSPEND_NS, "activeRequest"):
        answer.set("active", "true")
    return httpx.Response(200, content=envelope(answer),
                          headers={"Content-Type": SOAP_CONTENT_TYPE})


# ---------------------------------------------------------------- the HTTP server
class SpmlSandbox:
    """A running sandbox provider: its URL, its state, its faults."""

    def __init__(self, provider: SpmlProvider, port: int = 0) -> None:
        self.provider = provider
        self._stopping = threading.Event()
        try:
            self._server = _Server((LOOPBACK, port), _Handler, self)
        except OSError as exc:
            raise PeerUnavailable(f"the SPML sandbox cannot listen on {LOOPBACK}:{port}: "
                                  f"{exc.strerror or exc}") from None
        self.port = int(self._server.server_address[1])
        self.url = f"http://{LOOPBACK}:{self.port}/spml"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="spml-sandbox", daemon=True)

    def start(self) -> SpmlSandbox:
        schema()  # loaded before the first request, which must not wait for it
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (the CLI)."""
        try:
            self._server.serve_forever(0.2)
        finally:
            self._server.server_close()

    # ContractPeer
    def properties(self) -> dict[str, Any]:
        p = self.provider
        return {"spml-ep": self.url, "spml-oc": OBJECT_CLASS,
                **({"spml-username": p.username, "spml-password": p.password}
                   if p.username else {}),
                "spml-enable-pwd-provisioning": True, "timeout-seconds": 1}

    def attribute_names(self) -> dict[str, str]:
        return {"givenname": "givenName", "lastname": "sn", "emailaddress": "mail"}

    def refusing_properties(self) -> dict[str, Any]:
        return {**self.properties(), "spml-ep": f"http://{LOOPBACK}:{free_port()}/spml"}

    def secrets(self) -> list[str]:
        return [s for s in (self.provider.password,) if s]

    def fail_next(self, fault: Fault, count: int = 1) -> None:
        self.provider.fail_next(fault, count)

    def seed_user(self, username: str) -> str:
        return self.provider.seed(username)

    def remote_user(self, remote_id: str) -> RemoteUser | None:
        pso = self.provider.psos.get(remote_id)
        if pso is None:
            return None
        return RemoteUser(pso.id, pso.account, pso.active,
                          {k: v[0] if len(v) == 1 else list(v)
                           for k, v in pso.attributes.items()})

    def group_members(self, remote_id: str) -> set[str] | None:
        return None


@contextlib.contextmanager
def spml_sandbox(port: int = 0, **options: Any) -> Iterator[SpmlSandbox]:
    """A sandbox provider on a loopback port (a free one unless given)."""
    sandbox = SpmlSandbox(SpmlProvider(**options), port).start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def contract_peer() -> contextlib.AbstractContextManager[SpmlSandbox]:
    """The peer of the connector contract suite: Basic auth on, a secret to look for."""
    return spml_sandbox(username="mware", password=f"sandbox-{uuid.uuid4().hex}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 sandbox: SpmlSandbox) -> None:
        super().__init__(address, handler)
        self.sandbox = sandbox


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    #: Headers and body go out in two writes: without this, Nagle's algorithm and the
    #: client's delayed ACK add some 40 ms to every keep-alive answer.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > (1 << 20):
            self._send(soap_fault("Client", "the request is larger than 1 MiB"))
            self.close_connection = True
            return
        content = self.rfile.read(length)
        sandbox = self.server.sandbox
        reply = sandbox.provider.handle(content, self.headers.get("Authorization"))
        if reply.kind == "drop":
            self.close_connection = True
            return
        if reply.kind == "sleep":
            if sandbox._stopping.wait(TIMEOUT_SLEEP):
                self.close_connection = True
                return
            reply = sandbox.provider.answer(content)
        if reply.kind.startswith("spml:"):
            reply = _spml_failure(content, reply.kind.removeprefix("spml:"))
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            for key, value in reply.headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            self.close_connection = True

    def do_GET(self) -> None:
        self._send(Reply(405, b"POST SOAP 1.1 envelopes here", (("Allow", "POST"),)))

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def _spml_failure(content: bytes, code: str) -> Reply:
    """An SPML failure ``code`` answered to whatever request ``content`` holds."""
    try:
        node = body_of(parse(content, "the request"), "the request")
    except BadXml as exc:
        return soap_fault("Client", str(exc))
    return _reply(respond(node, "failure", code, f"injected {code} (sandbox fault)"))


# ---------------------------------------------------------------- the CLI
@click.command("spml")
@click.option("--port", type=int, default=8790, show_default=True,
              help="loopback port to listen on")
@click.option("--username", help="require HTTP Basic with this username; the password is "
                                 "read from MWARE_IAM_SANDBOX_PASSWORD")
@click.option("--no-suspend", is_flag=True, help="do not announce the suspend capability")
@click.option("--no-search", is_flag=True, help="do not announce the search capability")
def sandbox_command(port: int, username: str | None, no_suspend: bool, no_search: bool) -> None:
    """An SPML 2.0 provider (SOAP 1.1, DSML profile) on 127.0.0.1, PSOs in memory."""
    import os

    if not port_is_free(port):
        raise click.UsageError(f"port {port} on {LOOPBACK} is in use")
    password = os.environ.get("MWARE_IAM_SANDBOX_PASSWORD") if username else None
    schema()  # loaded before the first request, and errors shown now
    sandbox = SpmlSandbox(SpmlProvider(username=username, password=password,
                                       suspend=not no_suspend, search=not no_search), port)
    click.echo(f"SPML 2.0 sandbox provider at {sandbox.url} (target {TARGET_ID!r}, "
               f"objectclass {OBJECT_CLASS}); Ctrl-C stops it", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        sandbox.serve_forever()
