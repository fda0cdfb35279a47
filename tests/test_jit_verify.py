"""OIDC ID tokens and SAML 2.0 responses: good ones pass, each kind of bad one is refused.

Every key is made here; every signature is real."""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from core.jit import keys as keys_module
from core.jit.errors import LoginRefused
from core.jit.keys import KeySet
from core.jit.oidc import verify_id_token
from core.jit.replay import ReplayCache
from core.jit.saml import SAML, SamlVerifier
from core.jit.sandbox import SandboxIdp

AUD = "hr-portal"
CLAIMS = {"sub": "s-1", "preferred_username": "alice"}


@pytest.fixture(scope="module")
def idp() -> SandboxIdp:
    return SandboxIdp.create()


def refused(fn, *args: object) -> str:
    with pytest.raises(LoginRefused) as info:
        fn(*args)
    assert info.value.status == 401
    return str(info.value)


def oidc(idp: SandboxIdp, token: str, replay: ReplayCache | None = None):
    fed = idp.federation("oidc", AUD)
    return verify_id_token(token, fed, KeySet(fed.jwks), replay or ReplayCache())


def test_a_good_id_token_names_the_user(idp: SandboxIdp) -> None:
    login = oidc(idp, idp.id_token(AUD, {**CLAIMS, "email": "a@example.test"}))
    assert (login.subject, login.username, login.claims["email"]) == \
        ("s-1", "alice", "a@example.test")


#: Times are seconds from when the test runs (not from collection: a long suite would
#: otherwise bring a "future" nbf into the leeway).
@pytest.mark.parametrize(("change", "expected"), [
    ({"iss": "https://evil.example.test"}, "issuer"),
    ({"aud": "another-app"}, "audience"),
    ({"exp": -120}, "expired"),
    ({"nbf": 600}, "not valid yet"),
    ({"iat": 600}, "not valid yet"),
])
def test_bad_claims_are_refused(idp: SandboxIdp, change: dict, expected: str) -> None:
    now = int(time.time())
    claims = {k: now + v if k in ("exp", "nbf", "iat") else v for k, v in change.items()}
    assert expected in refused(oidc, idp, idp.id_token(AUD, {**CLAIMS, **claims}))


def test_leeway_of_a_minute(idp: SandboxIdp) -> None:
    assert oidc(idp, idp.id_token(AUD, {**CLAIMS, "exp": int(time.time()) - 30}))


def test_a_signature_by_another_key_is_refused(idp: SandboxIdp) -> None:
    other = SandboxIdp.create()  # same kid, another key
    assert "signature" in refused(oidc, idp, other.id_token(AUD, CLAIMS))


def test_a_tampered_payload_is_refused(idp: SandboxIdp) -> None:
    head, _, sig = idp.id_token(AUD, CLAIMS).split(".")
    body = base64.urlsafe_b64encode(json.dumps({**CLAIMS, "iss": idp.issuer, "aud": AUD,
                                                "iat": 1, "exp": 2**33}).encode())
    assert "signature" in refused(oidc, idp, f"{head}.{body.decode().rstrip('=')}.{sig}")


def test_alg_none_is_refused(idp: SandboxIdp) -> None:
    token = jwt.encode({**CLAIMS, "iss": idp.issuer, "aud": AUD, "iat": int(time.time()),
                        "exp": int(time.time()) + 60}, None, algorithm="none",
                       headers={"kid": idp.kid})
    assert "'none' is not accepted" in refused(oidc, idp, token)


def test_hs256_with_the_public_key_as_secret_is_refused(idp: SandboxIdp) -> None:
    pem = idp.key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    header = base64.urlsafe_b64encode(json.dumps(
        {"alg": "HS256", "typ": "JWT", "kid": idp.kid}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(
        {**CLAIMS, "iss": idp.issuer, "aud": AUD, "iat": int(time.time()),
         "exp": int(time.time()) + 60}).encode()).rstrip(b"=")
    import hashlib
    import hmac
    sig = base64.urlsafe_b64encode(hmac.new(pem, header + b"." + body, hashlib.sha256)
                                   .digest()).rstrip(b"=")
    token = (header + b"." + body + b"." + sig).decode()
    assert "'HS256' is not accepted" in refused(oidc, idp, token)


def test_an_algorithm_that_does_not_fit_the_key_is_refused(idp: SandboxIdp) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode({**CLAIMS, "iss": idp.issuer, "aud": AUD, "iat": int(time.time()),
                        "exp": int(time.time()) + 60}, ec_key, algorithm="ES256",
                       headers={"kid": idp.kid})
    assert "key type" in refused(oidc, idp, token)


def test_es256_and_ps256_verify() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    rsa_idp = SandboxIdp.create()
    jwks = json.dumps({"keys": [{**jwk, "kid": "e"}, *json.loads(rsa_idp.jwks())["keys"]]})
    fed = rsa_idp.federation("oidc", AUD)
    keyset = KeySet(jwks)
    now = int(time.time())
    body = {**CLAIMS, "iss": rsa_idp.issuer, "aud": AUD, "iat": now, "exp": now + 60}
    es = jwt.encode(body, ec_key, algorithm="ES256", headers={"kid": "e"})
    ps = jwt.encode(body, rsa_idp.key, algorithm="PS256", headers={"kid": rsa_idp.kid})
    assert verify_id_token(es, fed, keyset, ReplayCache()).username == "alice"
    assert verify_id_token(ps, fed, keyset, ReplayCache()).username == "alice"


def test_an_unknown_kid_is_refused(idp: SandboxIdp) -> None:
    assert "unknown kid" in refused(oidc, idp, idp.id_token(AUD, CLAIMS, kid="other"))


def test_a_replayed_jti_is_refused(idp: SandboxIdp) -> None:
    replay = ReplayCache()
    token = idp.id_token(AUD, CLAIMS)
    oidc(idp, token, replay)
    assert "already used" in refused(oidc, idp, token, replay)


def test_a_nonce_counts_as_the_token_id(idp: SandboxIdp) -> None:
    replay = ReplayCache()
    oidc(idp, idp.id_token(AUD, {**CLAIMS, "jti": None, "nonce": "n-1"}), replay)
    assert "already used" in refused(
        oidc, idp, idp.id_token(AUD, {**CLAIMS, "jti": None, "nonce": "n-1"}), replay)


# ---------------------------------------------------------------- jwks_uri and rotation
@pytest.fixture
def jwks_server() -> Iterator[tuple[str, dict]]:
    state: dict = {"jwks": "", "hits": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["hits"] += 1
            body = state["jwks"].encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/jwks", state
    finally:
        server.shutdown()
        server.server_close()


def test_key_rotation_through_jwks_uri(jwks_server, monkeypatch) -> None:
    url, state = jwks_server
    old, new = SandboxIdp.create(kid="k1"), SandboxIdp.create(kid="k2")
    state["jwks"] = old.jwks()
    keyset = KeySet(jwks_uri=url)
    fed = old.federation("oidc", AUD)
    assert verify_id_token(old.id_token(AUD, CLAIMS), fed, keyset, ReplayCache())
    assert state["hits"] == 1
    assert verify_id_token(old.id_token(AUD, CLAIMS), fed, keyset, ReplayCache())
    assert state["hits"] == 1  # cached
    state["jwks"] = new.jwks()
    # within a minute of the last fetch an unknown kid fetches nothing
    with pytest.raises(LoginRefused, match="unknown kid"):
        verify_id_token(new.id_token(AUD, CLAIMS), fed, keyset, ReplayCache())
    assert state["hits"] == 1
    monkeypatch.setattr(keys_module, "REFETCH_SECONDS", 0.0)
    assert verify_id_token(new.id_token(AUD, CLAIMS), fed, keyset, ReplayCache())
    assert state["hits"] == 2


def test_an_oversized_jwks_is_refused(jwks_server) -> None:
    url, state = jwks_server
    state["jwks"] = " " * (keys_module.MAX_JWKS_BYTES + 10)
    with pytest.raises(LoginRefused, match="more than") as info:
        KeySet(jwks_uri=url).key("x")
    assert info.value.status == 502


# ---------------------------------------------------------------- SAML 2.0
RECIPIENT = "https://iam.example.test/jit/corp-sso"


def saml(idp: SandboxIdp, response: str, replay: ReplayCache | None = None):
    return SamlVerifier(idp.federation("saml2", AUD), RECIPIENT).verify(
        response, replay or ReplayCache())


@pytest.mark.parametrize("sign", ["assertion", "response"])
def test_a_signed_saml_response_names_the_user(idp: SandboxIdp, sign: str) -> None:
    login = saml(idp, idp.saml_response(AUD, "alice", {"email": "a@example.test",
                                                       "groups": ["eng", "ops"]},
                                        RECIPIENT, sign=sign))
    assert (login.subject, login.username, login.claims["email"], login.claims["groups"]) \
        == ("alice", "alice", "a@example.test", ["eng", "ops"])


def test_a_wrapped_saml_response_uses_only_the_signed_assertion(idp: SandboxIdp) -> None:
    """XSW: an unsigned evil assertion in front; the signed one moved after it."""
    xml = etree.fromstring(base64.b64decode(idp.saml_response(AUD, "alice", None, RECIPIENT)))
    signed = xml.find(f"{{{SAML}}}Assertion")
    evil = copy.deepcopy(signed)
    evil.remove(evil.find("{http://www.w3.org/2000/09/xmldsig#}Signature"))
    evil.set("ID", "_evil")
    evil.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID").text = "admin"
    signed.addprevious(evil)
    login = saml(idp, base64.b64encode(etree.tostring(xml)).decode())
    assert login.username == "alice"
    # the evil one with the signed one's ID (the signature would then point at it)
    evil.set("ID", signed.get("ID"))
    with pytest.raises(LoginRefused):
        saml(idp, base64.b64encode(etree.tostring(xml)).decode())


def test_a_tampered_signed_assertion_is_refused(idp: SandboxIdp) -> None:
    xml = etree.fromstring(base64.b64decode(idp.saml_response(AUD, "alice", None, RECIPIENT)))
    xml.find(f"{{{SAML}}}Assertion/{{{SAML}}}Subject/{{{SAML}}}NameID").text = "admin"
    assert "signature" in refused(saml, idp, base64.b64encode(etree.tostring(xml)).decode())


def test_an_expired_saml_response_is_refused(idp: SandboxIdp) -> None:
    assert "expired" in refused(saml, idp, idp.saml_response(AUD, "alice", None, RECIPIENT,
                                                             lifetime=-120))


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"audience": "other"}, "audience"),
    ({"recipient": "https://elsewhere.test/acs"}, "Recipient is not this server's"),
    ({"recipient": None}, "names no Recipient"),
])
def test_saml_audience_and_recipient(idp: SandboxIdp, kwargs: dict, expected: str) -> None:
    args = {"audience": AUD, "recipient": RECIPIENT, **kwargs}
    response = idp.saml_response(args["audience"], "alice", None, args["recipient"])
    assert expected in refused(saml, idp, response)


def test_a_saml_response_of_another_idp_is_refused(idp: SandboxIdp) -> None:
    other = SandboxIdp.create()
    assert "signature" in refused(saml, idp, other.saml_response(AUD, "alice", None,
                                                                 RECIPIENT))


def test_a_replayed_assertion_is_refused(idp: SandboxIdp) -> None:
    replay = ReplayCache()
    response = idp.saml_response(AUD, "alice", None, RECIPIENT)
    saml(idp, response, replay)
    assert "already used" in refused(saml, idp, response, replay)


def test_entities_are_refused(idp: SandboxIdp) -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaa">]>'
            b'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&a;'
            b"</samlp:Response>")
    assert "DOCTYPE" in refused(saml, idp, base64.b64encode(bomb).decode())
    assert "base64" in refused(saml, idp, "not base64!")
