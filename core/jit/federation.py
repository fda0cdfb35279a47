"""The checks of an identity provider's ``federation`` and ``jit`` settings, by field, for
``config validate`` and the console's form alike."""

from __future__ import annotations

import dataclasses

from core.errors import InvalidInput
from core.idps import ATTRIBUTE_SYNC, FEDERATION_PROTOCOLS, Federation
from core.properties import PropertySpec, PropertyType, check

#: The reference's schemes that need a login page (consent, password) we do not have.
PROMPT_SCHEMES = ("prompt_consent", "prompt_password_consent",
                  "prompt_username_password_consent")


#: The URLs of the settings, checked as a connector's URL properties are: http(s) only,
#: no user name or password in them (they would be stored and shown in clear).
_ISSUER = PropertySpec("issuer", "a URL (https://...)", PropertyType.URL, required=True,
                       schemes=("https", "http"))
_JWKS_URI = dataclasses.replace(_ISSUER, name="jwks_uri")


def _url_problems(spec: PropertySpec, text: str) -> list[tuple[str, str]]:
    _, errors = check((spec,), {spec.name: text})
    return [(e.field, str(e)) for e in errors]


def federation_problems(fed: Federation) -> list[tuple[str, str]]:
    """Every problem of ``fed``, as (field, message)."""
    # The key parsers (PyJWT, X.509) load here, not with the module: ``config validate``
    # and ``apply`` of a deployment without federation settings never need them.
    from core.jit.keys import parse_certificate, parse_jwks

    out: list[tuple[str, str]] = []
    if fed.protocol not in FEDERATION_PROTOCOLS:
        return [("protocol", f"protocol: expected one of {', '.join(FEDERATION_PROTOCOLS)}, "
                             f"got {fed.protocol!r}")]
    if not (fed.protocol == "saml2" and fed.issuer.startswith("urn:")):
        out += _url_problems(_ISSUER, fed.issuer)
    if not fed.audience:
        out.append(("audience", "audience: give at least one"))
    if fed.protocol == "oidc":
        if fed.certificate is not None:
            out.append(("certificate", "certificate: OIDC keys are given as jwks or jwks_uri"))
        if (fed.jwks is None) == (fed.jwks_uri is None):
            out.append(("jwks", "give exactly one of jwks and jwks_uri"))
        if fed.jwks is not None:
            try:
                parse_jwks(fed.jwks)
            except InvalidInput as exc:
                out.append(("jwks", f"jwks: {exc}"))
        if fed.jwks_uri is not None:
            out += _url_problems(_JWKS_URI, fed.jwks_uri)
    else:
        for key in ("jwks", "jwks_uri"):
            if getattr(fed, key) is not None:
                out.append((key, f"{key}: a SAML 2.0 identity provider's key is its "
                                 "certificate"))
        if fed.certificate is None:
            out.append(("certificate", "certificate: required for SAML 2.0 (the IdP's PEM "
                                       "signing certificate)"))
        else:
            try:
                parse_certificate(fed.certificate)
            except InvalidInput as exc:
                out.append(("certificate", f"certificate: {exc}"))
    return out


def attribute_sync_problem(mode: str) -> str | None:
    if mode in ATTRIBUTE_SYNC:
        return None
    return f"attribute_sync: expected one of {', '.join(ATTRIBUTE_SYNC)}, got {mode!r}"


def scheme_warning(scheme: str) -> str | None:
    if scheme not in PROMPT_SCHEMES:
        return None
    return (f"scheme {scheme} needs a login page this server does not have: JIT logins "
            "through this identity provider will be refused (use provision_silently)")


def federation_of_fields(protocol: str, issuer: str, audience: str, keys: str,
                         username_claim: str) -> Federation | None:
    """Federation settings from a form's text fields (None: no protocol, no federation).

    ``audience``: names separated by commas; ``keys``: a JWKS (JSON), a ``jwks_uri`` or a
    PEM certificate. Raises InvalidInput with every problem."""
    if not protocol:
        return None
    from core.jit.keys import normalize_pem  # see federation_problems

    text = keys.strip()
    given: dict[str, str] = {}
    if text.startswith("{"):
        given["jwks"] = text
    elif text.startswith(("https://", "http://")):
        given["jwks_uri"] = text
    elif text:
        given["certificate"] = normalize_pem(text)
    fed = Federation(protocol, issuer.strip(),
                     tuple(a.strip() for a in audience.split(",") if a.strip()),
                     username_claim=username_claim.strip() or None, **given)
    problems = federation_problems(fed)
    if problems:
        raise InvalidInput("; ".join(message for _, message in problems))
    return fed


def keys_text(fed: Federation) -> str:
    """What :func:`federation_of_fields` reads back as ``keys``."""
    return fed.jwks or fed.jwks_uri or fed.certificate or ""
