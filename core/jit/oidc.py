"""OIDC ID token verification (PyJWT over cryptography).

Only asymmetric algorithms are accepted, each with the key type it needs, so neither
``alg: none`` nor an HMAC "signed" with a public key as its secret can pass; the algorithm
is taken from the header only after it is one of ours.
"""

from __future__ import annotations

from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from core.idps import Federation
from core.jit.errors import LoginRefused, bad_token
from core.jit.keys import KeySet
from core.jit.login import FederatedLogin
from core.jit.replay import ReplayCache

LEEWAY_SECONDS = 60
#: Algorithm -> the key type that verifies it.
ALGORITHMS: dict[str, type] = {
    "RS256": rsa.RSAPublicKey, "PS256": rsa.RSAPublicKey, "ES256": ec.EllipticCurvePublicKey,
}
MAX_TOKEN_BYTES = 16 * 1024


def verify_id_token(token: str, fed: Federation, keys: KeySet,
                    replay: ReplayCache) -> FederatedLogin:
    """The login an ID token proves, or LoginRefused(401) saying what was wrong."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_BYTES:
        raise bad_token(f"id_token must be a compact JWS of at most {MAX_TOKEN_BYTES} bytes")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError:
        raise bad_token("id_token is not a compact JWS") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise bad_token(f"id_token algorithm {alg!r} is not accepted (only "
                        f"{', '.join(ALGORITHMS)})")
    key = keys.key(str(header.get("kid", "")))
    if not isinstance(key, ALGORITHMS[alg]):
        raise bad_token(f"id_token algorithm {alg} does not match the identity provider's "
                        "key type")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[alg], audience=list(fed.audience), issuer=fed.issuer,
            leeway=LEEWAY_SECONDS, options={"require": ["iss", "aud", "exp", "iat", "sub"]})
    except jwt.InvalidSignatureError:
        raise bad_token("id_token signature does not verify") from None
    except jwt.ExpiredSignatureError:
        raise bad_token("id_token has expired") from None
    except jwt.ImmatureSignatureError:
        raise bad_token("id_token is not valid yet (nbf or iat in the future)") from None
    except jwt.InvalidAudienceError:
        raise bad_token("id_token is not for this audience (aud)") from None
    except jwt.InvalidIssuerError:
        raise bad_token("id_token has another issuer (iss) than the identity provider") \
            from None
    except jwt.MissingRequiredClaimError as exc:
        raise bad_token(f"id_token lacks the {exc.claim!r} claim") from None
    except jwt.InvalidTokenError as exc:
        raise bad_token(f"id_token is invalid: {exc}") from None
    token_id = claims.get("jti") or claims.get("nonce")
    if token_id is not None:
        replay.check_and_remember(fed.issuer, str(token_id),
                                  float(claims["exp"]) + LEEWAY_SECONDS)
    return FederatedLogin(str(claims["sub"]), _username(claims, fed), claims)


def _username(claims: dict[str, Any], fed: Federation) -> str:
    value = claims.get(fed.username_key)
    if not isinstance(value, str) or not value:
        raise LoginRefused(401, f"id_token has no {fed.username_key!r} claim to name the user")
    return value
