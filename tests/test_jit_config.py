"""``federation`` and ``jit`` of identity providers in the YAML: each mistake at its line,
the prompt schemes warned about, and an export that applies back unchanged."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from core.configfile.export import export_config
from core.configfile.files import apply_file, check_file, validate_file
from core.iam import Iam
from core.identity.events import Initiator
from core.idps import Federation
from core.jit.sandbox import SandboxIdp


def write(tmp_path: Path, text: str, name: str = "deployment.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def idp_yaml(federation: str, jit: str = "{enabled: true}") -> str:
    """corp-sso with ``jit`` on line 3, ``federation:`` on line 4 and its keys from 5."""
    keys = textwrap.indent(textwrap.dedent(federation).strip(), " " * 6)
    return f"identity_providers:\n  - name: corp-sso\n    jit: {jit}\n    federation:\n{keys}\n"


@pytest.mark.parametrize(("federation", "line", "words"), [
    ("""
     protocol: oidc
     issuer: sso.example.test
     audience: hr-portal
     jwks_uri: https://sso.example.test/jwks
     """, 6, "issuer: 'sso.example.test' is not valid: expected a URL"),
    ("""
     protocol: oidc
     issuer: https://sso.example.test
     audience: hr-portal
     jwks_uri: ftp://sso.example.test/jwks
     """, 8, "jwks_uri: 'ftp://sso.example.test/jwks' is not valid: expected a URL starting "
             "with https:// or http://"),
    ("""
     protocol: oidc
     issuer: https://sso.example.test
     audience: hr-portal
     jwks_uri: https://me:s3cret@sso.example.test/jwks
     """, 8, "jwks_uri: 'https://***@sso.example.test/jwks' is not valid: a URL must not "
             "carry a user name or password"),
    ("""
     protocol: oidc
     issuer: https://me:s3cret@sso.example.test
     audience: hr-portal
     jwks_uri: https://sso.example.test/jwks
     """, 6, "issuer: 'https://***@sso.example.test' is not valid: a URL must not carry"),
    ("""
     protocol: oidc
     issuer: https://sso.example.test
     audience: hr-portal
     jwks: '{"keys": [{"kty": "RSA", "n": "abc"}]}'
     """, 8, "jwks: JWKS key 0: not a valid key"),
    ("""
     protocol: oidc
     issuer: https://sso.example.test
     audience: hr-portal
     jwks: 'not json'
     """, 8, "jwks: the JWKS is not JSON"),
    ("""
     protocol: saml2
     issuer: https://sso.example.test
     audience: hr-portal
     certificate: 'not a certificate'
     """, 8, "certificate: the certificate is not a PEM X.509 certificate"),
    ("""
     protocol: oidc
     issuer: https://sso.example.test
     audience: hr-portal
     """, 5, "give exactly one of jwks and jwks_uri"),
    ("""
     protocol: ws-fed
     issuer: https://sso.example.test
     audience: hr-portal
     """, 5, "protocol: expected one of oidc, saml2"),
])
def test_federation_mistakes_at_their_line(tmp_path: Path, federation: str, line: int,
                                           words: str) -> None:
    errors = validate_file(write(tmp_path, idp_yaml(federation)))
    assert [(e.line, words in e.message) for e in errors] == [(line, True)], errors


def test_jit_mistakes_and_the_prompt_scheme_warning(tmp_path: Path) -> None:
    good = """
     protocol: oidc
     issuer: https://sso.example.test
     audience: [hr-portal, wiki]
     jwks_uri: https://sso.example.test/jwks
     """
    bad = validate_file(write(tmp_path, idp_yaml(good, "{enabled: true, attribute_sync: "
                                                       "always, scheme: magic}")))
    assert sorted(e.message.split(":")[0] for e in bad) == ["attribute_sync", "scheme"]
    report = check_file(write(tmp_path, idp_yaml(good, "{enabled: true, scheme: "
                                                       "prompt_consent}")))
    assert report.errors == []
    [warning] = report.warnings
    assert warning.line == 3 and "login page" in str(warning) and "warning:" in str(warning)


def test_federation_exports_and_applies_back(iam: Iam, tmp_path: Path) -> None:
    admin = Initiator.admin()
    sso = SandboxIdp.create()
    certificate = sso.certificate()  # once: a certificate made a second later differs
    path = write(tmp_path, textwrap.dedent(f"""
        identity_providers:
          - name: corp-sso
            jit: {{enabled: true, attribute_sync: preserve_local,
                  associate_local_user: true}}
            federation:
              protocol: oidc
              issuer: https://sso.example.test
              audience: [hr-portal, wiki]
              jwks: '{sso.jwks()}'
              username_claim: preferred_username
          - name: saml-sso
            federation:
              protocol: saml2
              issuer: urn:example:idp
              audience: hr-portal
              certificate: |
        """) + textwrap.indent(certificate, " " * 8))
    assert validate_file(path) == []
    assert apply_file(iam, path, admin)
    fed = iam.get_idp("corp-sso").federation
    assert fed == Federation("oidc", "https://sso.example.test", ("hr-portal", "wiki"),
                             jwks=json.loads(json.dumps(sso.jwks())),
                             username_claim="preferred_username")
    assert iam.get_idp("corp-sso").jit.attribute_sync == "preserve_local"
    saml = iam.get_idp("saml-sso").federation
    assert saml is not None and saml.certificate is not None
    assert saml.certificate.strip() == certificate.strip()
    exported = write(tmp_path, export_config(iam), "export.yaml")
    assert validate_file(exported, iam) == []
    assert apply_file(iam, exported, admin) == []
