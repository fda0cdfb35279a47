"""The keys an identity provider signs with: a JWKS (inline or from ``jwks_uri``) for OIDC,
a PEM certificate for SAML 2.0.

A ``jwks_uri`` is fetched with a timeout and a size limit and cached; an unknown ``kid``
fetches it again, at most once per ``REFETCH_SECONDS``, so a key rotation at the identity
provider works without letting a stream of made-up ``kid`` values hammer it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from core.errors import InvalidInput
from core.jit.errors import LoginRefused

FETCH_TIMEOUT = 5.0
MAX_JWKS_BYTES = 256 * 1024
REFETCH_SECONDS = 60.0
#: A fetched key set is used this long before it is fetched again.
CACHE_SECONDS = 3600.0

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def parse_jwks(text: str | bytes) -> dict[str, PublicKey]:
    """The signing keys of a JWKS document by ``kid`` (RSA and EC P-256 only; keys with
    another use than ``sig`` are left out). Raises InvalidInput saying what is wrong."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the JWKS is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise InvalidInput('the JWKS must be an object with a "keys" list')
    keys: dict[str, PublicKey] = {}
    for i, jwk in enumerate(data["keys"]):
        if not isinstance(jwk, dict):
            raise InvalidInput(f"JWKS key {i}: expected an object")
        if jwk.get("use", "sig") != "sig":
            continue
        if jwk.get("kty") not in ("RSA", "EC"):
            raise InvalidInput(f"JWKS key {i}: key type {jwk.get('kty')!r} is not supported "
                               "(RSA or EC)")
        if "d" in jwk:
            raise InvalidInput(f"JWKS key {i}: holds a private key; give the public key only")
        try:
            key = jwt.PyJWK(jwk).key
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"JWKS key {i}: not a valid key ({exc})") from None
        if not isinstance(key, PublicKey):
            raise InvalidInput(f"JWKS key {i}: not a public signing key")
        keys[str(jwk.get("kid", ""))] = key
    if not keys:
        raise InvalidInput("the JWKS holds no signing key")
    return keys


def normalize_pem(text: str) -> str:
    """A PEM certificate pasted on one line (a form field keeps no line breaks) with its
    lines back; other text is returned as it is."""
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    if begin not in text or end not in text:
        return text
    body = "".join(text.split(begin, 1)[1].split(end, 1)[0].split())
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "\n".join([begin, *lines, end]) + "\n"


def parse_certificate(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise InvalidInput("the certificate is not a PEM X.509 certificate") from None


class KeySet:
    """The current keys of one identity provider's ``jwks`` or ``jwks_uri``."""

    def __init__(self, jwks: str | None = None, jwks_uri: str | None = None) -> None:
        if (jwks is None) == (jwks_uri is None):
            raise InvalidInput("give exactly one of jwks and jwks_uri")
        self.uri = jwks_uri
        self._keys: Mapping[str, PublicKey] = parse_jwks(jwks) if jwks is not None else {}
        self._fetched_at = -float("inf")
        self._lock = threading.Lock()

    def key(self, kid: str) -> PublicKey:
        """The key named ``kid`` (a JWKS of one key without ``kid`` answers any), fetching
        ``jwks_uri`` when its cache is old or the ``kid`` is new (at most once a minute)."""
        if self.uri is not None:
            with self._lock:
                age = time.monotonic() - self._fetched_at
                if age > CACHE_SECONDS or (kid not in self._keys and age > REFETCH_SECONDS):
                    self._fetched_at = time.monotonic()
                    self._keys = self._fetch(self.uri)
        keys = self._keys
        if kid in keys:
            return keys[kid]
        if len(keys) == 1 and "" in keys:
            return keys[""]
        raise LoginRefused(401, "the token is signed with a key the identity provider does "
                                "not publish (unknown kid)")

    @staticmethod
    def _fetch(uri: str) -> dict[str, PublicKey]:
        try:
            with httpx.stream("GET", uri, timeout=FETCH_TIMEOUT,
                              headers={"accept": "application/json"}) as reply:
                if reply.status_code != 200:
                    raise LoginRefused(502, f"jwks_uri answered HTTP {reply.status_code}")
                body = bytearray()
                for chunk in reply.iter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise LoginRefused(502, f"jwks_uri sent more than {MAX_JWKS_BYTES} "
                                                "bytes")
        except httpx.HTTPError as exc:
            raise LoginRefused(502, f"jwks_uri cannot be fetched: {type(exc).__name__}"
                               ) from None
        try:
            return parse_jwks(bytes(body))
        except InvalidInput as exc:
            raise LoginRefused(502, f"jwks_uri: {exc}") from None
