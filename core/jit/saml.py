"""SAML 2.0 Response verification (signxml over lxml).

The XML is parsed with no DTD, no entities and no network; a document with a DOCTYPE is
refused outright. The signature (of the Response or of its Assertion) is checked against
the identity provider's certificate, and everything after that is read from the element
the signature covers, never from the document around it: an Assertion slipped in beside a
signed one (signature wrapping) is never looked at.
"""

from __future__ import annotations

import base64
import binascii
import time
from datetime import datetime
from typing import Any

from cryptography import x509
from lxml import etree
from signxml.algorithms import SignatureMethod
from signxml.exceptions import InvalidInput as SignxmlInvalidInput
from signxml.exceptions import InvalidSignature
from signxml.verifier import SignatureConfiguration, XMLVerifier

from core.idps import Federation
from core.jit.errors import bad_token
from core.jit.keys import parse_certificate
from core.jit.login import FederatedLogin
from core.jit.oidc import LEEWAY_SECONDS
from core.jit.replay import ReplayCache

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
MAX_RESPONSE_BYTES = 256 * 1024
#: How long an assertion id is remembered when the assertion names no end of validity.
DEFAULT_REPLAY_SECONDS = 600



def _parser() -> etree.XMLParser:
    """A parser per document (lxml's parsers are not to be shared between threads)."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_comments=True)

_CONFIG = SignatureConfiguration(
    expect_references=1,
    signature_methods=frozenset({
        SignatureMethod.RSA_SHA256, SignatureMethod.RSA_SHA384, SignatureMethod.RSA_SHA512,
        SignatureMethod.ECDSA_SHA256, SignatureMethod.ECDSA_SHA384,
        SignatureMethod.ECDSA_SHA512, SignatureMethod.SHA256_RSA_MGF1}))


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _time(text: str | None, what: str) -> float | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise bad_token(f"SAML {what} is not a time: {text[:40]!r}") from None


class SamlVerifier:
    def __init__(self, fed: Federation, recipient: str | None,
                 certificate: x509.Certificate | None = None) -> None:
        """``certificate``: ``fed.certificate`` parsed (by a caller that keeps it between
        logins); None: parsed here."""
        self.fed = fed
        self.recipient = recipient
        self.certificate = certificate if certificate is not None else \
            parse_certificate(fed.certificate or "")

    def verify(self, saml_response: Any, replay: ReplayCache) -> FederatedLogin:
        root = self._parse(saml_response)
        status = root.find(f"{_q(SAMLP, 'Status')}/{_q(SAMLP, 'StatusCode')}")
        if status is None or status.get("Value") != SUCCESS:
            raise bad_token("the SAML Response does not report a successful login")
        if root.find(_q(SAML, "EncryptedAssertion")) is not None:
            raise bad_token("encrypted SAML assertions are not supported")
        try:
            result = XMLVerifier().verify(root, x509_cert=self.certificate,
                                          expect_config=_CONFIG)
            signed = result.signed_xml if not isinstance(result, list) else None
        except (InvalidSignature, SignxmlInvalidInput) as exc:
            raise bad_token(f"the SAML signature does not verify: {exc}") from None
        if signed is None:
            raise bad_token("the SAML signature covers nothing")
        if signed.tag == _q(SAMLP, "Response"):
            self._destination(signed)
            found = signed.findall(_q(SAML, "Assertion"))
            if len(found) != 1:
                raise bad_token(f"the signed SAML Response holds {len(found)} assertions "
                                "(expected one)")
            assertion = found[0]
        elif signed.tag == _q(SAML, "Assertion"):
            assertion = signed
        else:
            raise bad_token("the SAML signature covers neither the Response nor an Assertion")
        return self._login(assertion, replay)

    @staticmethod
    def _parse(saml_response: Any) -> Any:
        if not isinstance(saml_response, str) or len(saml_response) > MAX_RESPONSE_BYTES:
            raise bad_token(f"saml_response must be base64 text of at most "
                            f"{MAX_RESPONSE_BYTES} bytes")
        try:
            xml = base64.b64decode(saml_response, validate=True)
        except binascii.Error:
            raise bad_token("saml_response is not base64") from None
        if b"<!DOCTYPE" in xml.upper():
            raise bad_token("the SAML Response has a DOCTYPE (refused: entities and DTDs "
                            "are not accepted)")
        try:
            root = etree.fromstring(xml, _parser())
        except etree.XMLSyntaxError as exc:
            raise bad_token(f"the SAML Response is not XML: {exc.msg}") from None
        if root.tag != _q(SAMLP, "Response"):
            raise bad_token("expected a samlp:Response")
        return root

    def _destination(self, response: Any) -> None:
        dest = response.get("Destination")
        if self.recipient is not None and dest is not None and dest != self.recipient:
            raise bad_token("the SAML Response is addressed to another server (Destination)")

    def _login(self, assertion: Any, replay: ReplayCache) -> FederatedLogin:
        fed, now = self.fed, time.time()
        issuer = assertion.findtext(_q(SAML, "Issuer"))
        if (issuer or "").strip() != fed.issuer:
            raise bad_token("the SAML assertion has another Issuer than the identity provider")
        ends: list[float] = []
        conditions = assertion.find(_q(SAML, "Conditions"))
        if conditions is None:
            raise bad_token("the SAML assertion has no Conditions (its validity and audience)")
        not_before = _time(conditions.get("NotBefore"), "NotBefore")
        not_after = _time(conditions.get("NotOnOrAfter"), "NotOnOrAfter")
        if not_before is not None and now + LEEWAY_SECONDS < not_before:
            raise bad_token("the SAML assertion is not valid yet (NotBefore)")
        if not_after is not None:
            if now - LEEWAY_SECONDS >= not_after:
                raise bad_token("the SAML assertion has expired (NotOnOrAfter)")
            ends.append(not_after)
        audiences = {(a.text or "").strip() for a in conditions.iter(_q(SAML, "Audience"))}
        if not audiences & set(fed.audience):
            raise bad_token("the SAML assertion is not for this audience (AudienceRestriction)")
        subject = assertion.find(_q(SAML, "Subject"))
        name_id = subject.findtext(_q(SAML, "NameID")) if subject is not None else None
        if not name_id or not name_id.strip():
            raise bad_token("the SAML assertion has no Subject NameID")
        confirmations = list(subject.iter(_q(SAML, "SubjectConfirmationData")))
        if self.recipient is not None and not any(d.get("Recipient") for d in confirmations):
            raise bad_token("the SAML assertion names no Recipient (SubjectConfirmationData)")
        for data in confirmations:
            if self.recipient is not None and data.get("Recipient") != self.recipient:
                raise bad_token("the SAML assertion's Recipient is not this server's "
                                f"{self.recipient}")
            end = _time(data.get("NotOnOrAfter"), "SubjectConfirmationData NotOnOrAfter")
            if end is not None:
                if now - LEEWAY_SECONDS >= end:
                    raise bad_token("the SAML assertion has expired (SubjectConfirmation)")
                ends.append(end)
        assertion_id = assertion.get("ID")
        if not assertion_id:
            raise bad_token("the SAML assertion has no ID")
        replay.check_and_remember(fed.issuer, assertion_id,
                                  min(ends, default=now + DEFAULT_REPLAY_SECONDS)
                                  + LEEWAY_SECONDS)
        claims: dict[str, Any] = {"NameID": name_id.strip()}
        for attr in assertion.iter(_q(SAML, "Attribute")):
            values = [(v.text or "") for v in attr.findall(_q(SAML, "AttributeValue"))]
            if attr.get("Name"):
                claims[attr.get("Name")] = values[0] if len(values) == 1 else values
        username = claims.get(fed.username_key)
        if isinstance(username, list):
            username = username[0] if username else None
        if not isinstance(username, str) or not username:
            raise bad_token(f"the SAML assertion has no {fed.username_key!r} to name the user")
        return FederatedLogin(name_id.strip(), username, claims)
