"""SOAP 1.1 and SPML 2.0 XML shared by the SPML connector and its sandbox peer.

Messages are built as ElementTree elements (values escaped when serialized) and read
with a document type declaration refused outright (SOAP 1.1 forbids one), and with it
entity definitions (no XML bomb) and external entities or DTDs (no network, no local file
read): see :func:`parse`. Documents larger than :data:`MAX_BYTES` are refused before
parsing.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SPML_NS = "urn:oasis:names:tc:SPML:2:0"
SUSPEND_NS = "urn:oasis:names:tc:SPML:2:0:suspend"
SEARCH_NS = "urn:oasis:names:tc:SPML:2:0:search"
DSML_NS = "urn:oasis:names:tc:DSML:2:0:core"
#: The profile URI a DSML-profile target announces in listTargets.
DSML_PROFILE = "urn:oasis:names:tc:SPML:2:0:DSML"
SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"
MAX_BYTES = 1 << 20

#: The prefix each namespace is written with.
PREFIXES = {SOAP_NS: "soap", SPML_NS: "spml", SUSPEND_NS: "spmlsuspend",
            SEARCH_NS: "spmlsearch", DSML_NS: "dsml", DSML_PROFILE: "spmldsml"}
for _ns, _prefix in PREFIXES.items():
    ET.register_namespace(_prefix, _ns)
#: What an attribute value escapes besides ``&``, ``<`` and ``>``.
_ATTRIB_ENTITIES = {'"': "&quot;", "\r": "&#13;", "\n": "&#10;", "\t": "&#09;"}
_DECLARATION = "<?xml version='1.0' encoding='utf-8'?>\n"

#: Characters XML 1.0 can carry (a value with any other cannot be sent).
_XML_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: A DSML attribute name (``AttributeDescriptionValue`` of DSMLv2.xsd).
_DSML_NAME = re.compile(r"(([0-2](\.[0-9]+)+)|([a-zA-Z][a-zA-Z0-9-]*))(;[a-zA-Z0-9-]+)*")


class BadXml(ValueError):
    """A document that is not one we accept: the message says what was wrong."""


def q(ns: str, local: str) -> str:
    """An ElementTree qualified name."""
    return f"{{{ns}}}{local}"


def shown(tag: str) -> str:
    """A qualified name as people write it: ``{ns}local`` -> ``local (ns)``."""
    if tag.startswith("{"):
        ns, local = tag[1:].split("}", 1)
        return f"{local} (namespace {ns})"
    return f"{tag} (no namespace)"


def request_id() -> str:
    """A fresh requestID; an ``xsd:ID`` (an NCName), so it starts with a letter."""
    return f"mw-{uuid.uuid4().hex}"


def element(ns: str, local: str, attrs: Mapping[str, str] | None = None,
            children: Iterable[ET.Element] = ()) -> ET.Element:
    node = ET.Element(q(ns, local), dict(attrs or {}))
    node.extend(children)
    return node


def pso_id(remote_id: str, target_id: str | None = None, ns: str = SPML_NS) -> ET.Element:
    """A ``psoID``; in a capability's request it is in the capability's namespace."""
    attrs = {"ID": remote_id, **({"targetID": target_id} if target_id else {})}
    return element(ns, "psoID", attrs)


def namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def dsml(local: str, name: str, values: Sequence[str], **attrs: str) -> ET.Element:
    """A DSML ``attr`` or ``modification`` with its values."""
    node = element(DSML_NS, local, {"name": name, **attrs})
    for value in values:
        element_value = ET.SubElement(node, q(DSML_NS, "value"))
        element_value.text = value
    return node


def check_text(value: str, what: str) -> str:
    """``value`` when XML can carry it; BadXml naming ``what`` otherwise."""
    bad = _XML_CHARS.search(value)
    if bad:
        raise BadXml(f"{what} holds the character U+{ord(bad.group()):04X}, which XML "
                     "cannot carry")
    return value


def check_dsml_name(name: str, what: str) -> str:
    if not _DSML_NAME.fullmatch(name):
        raise BadXml(f"{what}: {name!r} is not a DSML attribute name (letters, digits and "
                     "hyphens, starting with a letter, or a numeric OID)")
    return name


def envelope(body: ET.Element) -> bytes:
    """``body`` in a SOAP 1.1 envelope, serialized as UTF-8 with an XML declaration.

    The bytes are ``ET.tostring``'s (namespaces declared on the envelope, sorted by
    prefix; values escaped as it escapes them), written by :func:`_serialized`, which
    does in a tenth of the time what ``tostring`` does for the elements SPML messages are
    made of; anything else (an element of a namespace without a prefix in
    :data:`PREFIXES`, a qualified attribute name, a comment) is left to ``tostring``.
    """
    used = {SOAP_NS}
    out = ["<soap:Body>"]
    try:
        _serialized(body, out, used)
    except _Unusual:
        env = element(SOAP_NS, "Envelope", children=[element(SOAP_NS, "Body",
                                                             children=[body])])
        raw: bytes = ET.tostring(env, encoding="utf-8", xml_declaration=True)
        return raw
    out.append("</soap:Body></soap:Envelope>")
    declared = "".join(f' xmlns:{prefix}="{_escape_attrib(ns)}"' for prefix, ns
                       in sorted((PREFIXES[ns], ns) for ns in used))
    return (f"{_DECLARATION}<soap:Envelope{declared}>{''.join(out)}"
            .encode("utf-8", "xmlcharrefreplace"))


class _Unusual(Exception):
    """An element :func:`_serialized` does not write."""


def _serialized(node: ET.Element, out: list[str], used: set[str]) -> None:
    """``node`` as ``ET.tostring`` writes it (short empty elements), into ``out``; the
    namespaces of its tags into ``used``."""
    tag = node.tag
    if not isinstance(tag, str) or not tag.startswith("{"):
        raise _Unusual
    ns, local = tag[1:].split("}", 1)
    prefix = PREFIXES.get(ns)
    if prefix is None:
        raise _Unusual
    used.add(ns)
    name = f"{prefix}:{local}"
    out.append("<" + name)
    for key, value in node.attrib.items():
        if not isinstance(key, str) or key.startswith("{") or not isinstance(value, str):
            raise _Unusual
        out.append(f' {key}="{_escape_attrib(value)}"')
    text = node.text
    if text or len(node):
        out.append(">")
        if text:
            out.append(_escape_text(text))
        for child in node:
            _serialized(child, out, used)
        out.append(f"</{name}>")
    else:
        out.append(" />")
    if node.tail:
        out.append(_escape_text(node.tail))


def _escape_text(text: str) -> str:
    """Character data escaped as ElementTree escapes it."""
    return escape(text)


def _escape_attrib(text: str) -> str:
    """An attribute value escaped as ElementTree escapes it (line ends and tabs as
    character references, so that they survive attribute value normalization)."""
    return escape(text, _ATTRIB_ENTITIES)


def parse(content: bytes, what: str = "the document") -> ET.Element:
    """The root of ``content``, parsed safely; BadXml saying why otherwise.

    A document that cannot hold a document type declaration is parsed by ElementTree's
    C parser; any other by defusedxml's (pure Python, several times slower), which
    refuses the declaration. Without a declaration a document can define no entity, so
    it can hold no XML bomb and no external entity; and a declaration is the bytes
    ``<!DOCTYPE`` in every encoding expat reads but UTF-16: UTF-8, and single-byte
    encodings, which expat takes only when they map the ASCII characters to themselves.
    UTF-16 has a NUL byte in every ASCII character.
    """
    if len(content) > MAX_BYTES:
        raise BadXml(f"{what} is larger than {MAX_BYTES} bytes")
    try:
        if b"<!DOCTYPE" not in content and b"\x00" not in content:
            return ET.fromstring(content)
        root: ET.Element = SafeET.fromstring(content, forbid_dtd=True)
        return root
    except DefusedXmlException as exc:
        raise BadXml(f"{what} was refused: it declares a DTD or entities "
                     f"({type(exc).__name__}), which SOAP forbids") from None
    except ET.ParseError as exc:
        raise BadXml(f"{what} is not well-formed XML ({exc})") from None
    except ValueError as exc:  # e.g. UTF-16 declared without a byte order mark
        raise BadXml(f"{what} cannot be read ({exc})") from None


def body_of(root: ET.Element, what: str = "the document") -> ET.Element:
    """The one element in the Body of a SOAP 1.1 envelope."""
    if root.tag != q(SOAP_NS, "Envelope"):
        raise BadXml(f"{what} is not a SOAP 1.1 envelope: its root element is "
                     f"{shown(root.tag)}")
    bodies = root.findall(q(SOAP_NS, "Body"))
    if len(bodies) != 1:
        raise BadXml(f"{what} has {len(bodies)} SOAP Body elements, not one")
    children = list(bodies[0])
    if len(children) != 1:
        raise BadXml(f"{what} holds {len(children)} elements in its SOAP Body, not one")
    return children[0]


def fault_string(node: ET.Element) -> str | None:
    """The faultstring of a SOAP 1.1 Fault (``node`` being the Body's element), else None."""
    if node.tag != q(SOAP_NS, "Fault"):
        return None
    code = (node.findtext("faultcode") or "").strip()
    text = " ".join((node.findtext("faultstring") or "").split())[:300]
    return f"{text or 'no faultstring'}" + (f" (faultcode {code})" if code else "")


def attributes_of(data: ET.Element | None) -> dict[str, list[str]]:
    """DSML attributes in ``<spml:data>``: name -> values."""
    out: dict[str, list[str]] = {}
    for attr in [] if data is None else data.iter(q(DSML_NS, "attr")):
        name = attr.get("name")
        if name:
            out.setdefault(name, []).extend(v.text or "" for v in attr.iter(q(DSML_NS, "value")))
    return out
