"""A sandbox identity provider: demo keys, and signed ID tokens and SAML responses made
with them (``mware-iam sandbox idp``, the demo's simulated logins, the tests).

Its keys are for trying JIT out only: they sit unencrypted in the sandbox's directory.
"""

from __future__ import annotations

import base64
import datetime
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.signer import XMLSigner

from core.files import write_private
from core.idps import Federation
from core.jit.saml import SAML, SAMLP, SUCCESS

KID = "sandbox-1"
#: The directory of a home that holds the sandbox IdP's key.
KEY_DIR = "sandbox-idp"
KEY_FILE = "sandbox-idp-key.pem"


def stamp(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class SandboxIdp:
    issuer: str
    key: rsa.RSAPrivateKey
    kid: str = KID

    @classmethod
    def create(cls, issuer: str = "https://sso.example.test", kid: str = KID) -> SandboxIdp:
        return cls(issuer, rsa.generate_private_key(public_exponent=65537, key_size=2048), kid)

    # ------------------------------------------------------------------ keys on disk
    @classmethod
    def load_or_create(cls, directory: Path, issuer: str) -> SandboxIdp:
        """The sandbox IdP whose key is in ``directory`` (made there on first use)."""
        path = directory / KEY_FILE
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), None)
            assert isinstance(key, rsa.RSAPrivateKey)
            return cls(issuer, key)
        idp = cls.create(issuer)
        directory.mkdir(parents=True, exist_ok=True)
        write_private(path, idp.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        return idp

    @classmethod
    def of_home(cls, home: Path, issuer: str) -> SandboxIdp:
        return cls.load_or_create(home / KEY_DIR, issuer)

    @staticmethod
    def in_home(home: Path) -> bool:
        """Whether ``home`` has sandbox keys (a demo, or ``mware-iam sandbox idp`` ran)."""
        return (home / KEY_DIR / KEY_FILE).exists()

    # ------------------------------------------------------------------ what the IdP publishes
    def jwks(self) -> str:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return json.dumps({"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]})

    def certificate(self) -> str:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mware-iam sandbox IdP")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(1)
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=3650))
                .sign(self.key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    def federation(self, protocol: str, audience: str) -> Federation:
        if protocol == "oidc":
            return Federation("oidc", self.issuer, (audience,), jwks=self.jwks(),
                              username_claim="preferred_username")
        return Federation("saml2", self.issuer, (audience,), certificate=self.certificate())

    # ------------------------------------------------------------------ signed logins
    def login_claims(self, fed: Federation, username: str, claims: Mapping[str, Any],
                     groups: Sequence[str] = ()) -> dict[str, Any]:
        """An OIDC login's claims: ``sub`` and the username claim, the others, groups."""
        return {"sub": username, fed.username_key: username, **claims,
                **({fed.groups_claim: list(groups)} if groups else {})}

    def login_body(self, fed: Federation, username: str, claims: Mapping[str, Any],
                   groups: Sequence[str] = (), recipient: str | None = None) -> dict[str, str]:
        """What a client posts to ``/jit/IDP`` for this login, signed for ``fed``."""
        audience = fed.audience[0]
        if fed.protocol == "oidc":
            return {"id_token": self.id_token(audience, self.login_claims(
                fed, username, claims, groups))}
        attributes: dict[str, str | Sequence[str]] = {k: str(v) for k, v in claims.items()}
        if groups:
            attributes[fed.groups_claim] = list(groups)
        if fed.username_key != "NameID":
            attributes[fed.username_key] = username
        return {"saml_response": self.saml_response(audience, username, attributes,
                                                    recipient)}

    def id_token(self, audience: str, claims: Mapping[str, Any], lifetime: int = 300,
                 **header: Any) -> str:
        now = int(time.time())
        body = {"iss": self.issuer, "aud": audience, "iat": now, "exp": now + lifetime,
                "jti": uuid.uuid4().hex, **claims}
        body = {k: v for k, v in body.items() if v is not None}  # None: leave the claim out
        return jwt.encode(body, self.key, algorithm=header.pop("alg", "RS256"),
                          headers={"kid": self.kid, **header})

    def saml_response(self, audience: str, name_id: str,
                      attributes: Mapping[str, str | Sequence[str]] | None = None,
                      recipient: str | None = None, lifetime: int = 300,
                      sign: str = "assertion") -> str:
        """A base64 SAML Response; ``sign``: ``assertion`` or ``response``."""
        xml = self.saml_xml(audience, name_id, attributes, recipient, lifetime)
        signed = self.sign(xml if sign == "response" else xml.find(f"{{{SAML}}}Assertion"))
        if sign != "response":
            old = xml.find(f"{{{SAML}}}Assertion")
            xml.replace(old, signed)
            signed = xml
        return base64.b64encode(etree.tostring(signed)).decode()

    def sign(self, element: Any) -> Any:
        return XMLSigner(c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#").sign(
            element, key=self.key, cert=self.certificate())

    def saml_xml(self, audience: str, name_id: str,
                 attributes: Mapping[str, str | Sequence[str]] | None = None,
                 recipient: str | None = None, lifetime: int = 300) -> Any:
        now = datetime.datetime.now(datetime.UTC)
        end = stamp(now + datetime.timedelta(seconds=lifetime))
        nsmap = {"samlp": SAMLP, "saml": SAML}
        resp = etree.Element(f"{{{SAMLP}}}Response", nsmap=nsmap, ID="_" + uuid.uuid4().hex,
                             Version="2.0", IssueInstant=stamp(now))
        if recipient:
            resp.set("Destination", recipient)
        etree.SubElement(resp, f"{{{SAML}}}Issuer").text = self.issuer
        status = etree.SubElement(resp, f"{{{SAMLP}}}Status")
        etree.SubElement(status, f"{{{SAMLP}}}StatusCode", Value=SUCCESS)
        a = etree.SubElement(resp, f"{{{SAML}}}Assertion", ID="_" + uuid.uuid4().hex,
                             Version="2.0", IssueInstant=stamp(now))
        etree.SubElement(a, f"{{{SAML}}}Issuer").text = self.issuer
        subject = etree.SubElement(a, f"{{{SAML}}}Subject")
        etree.SubElement(subject, f"{{{SAML}}}NameID").text = name_id
        conf = etree.SubElement(subject, f"{{{SAML}}}SubjectConfirmation",
                                Method="urn:oasis:names:tc:SAML:2.0:cm:bearer")
        data = etree.SubElement(conf, f"{{{SAML}}}SubjectConfirmationData", NotOnOrAfter=end)
        if recipient:
            data.set("Recipient", recipient)
        cond = etree.SubElement(a, f"{{{SAML}}}Conditions", NotBefore=stamp(now),
                                NotOnOrAfter=end)
        restriction = etree.SubElement(cond, f"{{{SAML}}}AudienceRestriction")
        etree.SubElement(restriction, f"{{{SAML}}}Audience").text = audience
        if attributes:
            statement = etree.SubElement(a, f"{{{SAML}}}AttributeStatement")
            for name, values in attributes.items():
                attr = etree.SubElement(statement, f"{{{SAML}}}Attribute", Name=name)
                for v in [values] if isinstance(values, str) else values:
                    etree.SubElement(attr, f"{{{SAML}}}AttributeValue").text = v
        return resp
