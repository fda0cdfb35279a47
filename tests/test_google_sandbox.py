"""The Google sandbox enforces the contract the connector is held to: every JWT claim at the
token endpoint, and bodies checked against Google's discovery document."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from click.testing import CliRunner

from connectors.google import GROUP_SCOPE, JWT_BEARER, USER_SCOPE
from connectors.sandbox.google import GoogleSandbox, google_sandbox
from core.cli.main import cli
from tests.peers import PeerUnavailable
from tests.servers import unavailable

USERS = "/admin/directory/v1/users"


@pytest.fixture(scope="module")
def peer() -> Iterator[GoogleSandbox]:
    try:
        with google_sandbox() as sandbox:
            yield sandbox
    except PeerUnavailable as exc:
        unavailable(str(exc))


def assertion(peer: GoogleSandbox, key: Any = None, **changes: Any) -> str:
    now = int(time.time())
    claims = {"iss": peer.account, "sub": peer.admin, "scope": USER_SCOPE,
              "aud": peer.token_url, "iat": now, "exp": now + 3600, **changes}
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key or peer._key, algorithm="RS256")


def grant(peer: GoogleSandbox, token: str) -> httpx.Response:
    return httpx.post(peer.token_url, data={"grant_type": JWT_BEARER, "assertion": token},
                      timeout=5)


def bearer(peer: GoogleSandbox, scope: str = USER_SCOPE) -> dict[str, str]:
    token = grant(peer, assertion(peer, scope=scope)).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(("changes", "status", "error"), [
    ({}, 200, None),
    ({"aud": "https://oauth2.googleapis.com/token"}, 400, "invalid_grant"),
    ({"iss": "someone@else.iam.gserviceaccount.com"}, 400, "invalid_grant"),
    ({"sub": None}, 400, "invalid_grant"),
    ({"scope": None}, 400, "invalid_grant"),
    ({"exp": int(time.time()) + 7200}, 400, "invalid_grant"),
    ({"exp": int(time.time()) - 600}, 400, "invalid_grant"),
    ({"sub": "intern@example.org"}, 401, "unauthorized_client"),
    ({"scope": f"{USER_SCOPE} https://www.googleapis.com/auth/gmail"}, 401,
     "unauthorized_client"),
])
def test_token_endpoint_checks_every_claim(peer, changes, status, error):
    answer = grant(peer, assertion(peer, **changes))
    assert answer.status_code == status, answer.text
    assert answer.json().get("error") == error


def test_token_endpoint_checks_the_signature_and_grant_type(peer):
    with google_sandbox() as other:
        answer = grant(peer, assertion(peer, key=other._key))
    assert answer.json() == {"error": "invalid_grant",
                             "error_description": "Invalid JWT Signature."}
    answer = httpx.post(peer.token_url, data={"grant_type": "client_credentials"}, timeout=5)
    assert answer.status_code == 400 and answer.json()["error"] == "unsupported_grant_type"


def test_api_needs_a_token_with_the_methods_scope(peer):
    answer = httpx.get(f"{peer.origin}{USERS}/{peer.admin}", timeout=5)
    assert answer.status_code == 401 and answer.json()["error"]["errors"][0]["reason"] == \
        "authError"
    answer = httpx.get(f"{peer.origin}/admin/directory/v1/groups/x@example.org",
                       headers=bearer(peer), timeout=5)
    assert answer.status_code == 403
    answer = httpx.get(f"{peer.origin}/admin/directory/v1/groups/x@example.org",
                       headers=bearer(peer, f"{USER_SCOPE} {GROUP_SCOPE}"), timeout=5)
    assert answer.status_code == 404
    assert answer.json() == {"error": {"code": 404, "message": "Resource Not Found: groupKey",
                                       "errors": [{"message": "Resource Not Found: groupKey",
                                                   "domain": "global", "reason": "notFound"}]}}


NAME = {"givenName": "Pia", "familyName": "Quinn"}


@pytest.mark.parametrize(("body", "reason", "said"), [
    ({"name": NAME, "password": "long-enough"}, "required", "user.primaryEmail"),
    ({"primaryEmail": "pia@example.org", "name": {"givenName": "Pia"},
      "password": "long-enough"}, "required", "user.name.familyName"),
    ({"primaryEmail": "pia@example.org", "name": NAME}, "required", "user.password"),
    ({"primaryEmail": "pia@example.org", "name": NAME, "password": "long-enough",
      "nickname": "p"}, "invalid", 'Unknown name "nickname"'),
    ({"primaryEmail": "pia@example.org", "name": NAME, "password": "long-enough",
      "isAdmin": True}, "invalid", "user.isAdmin': the field is output only"),
    ({"primaryEmail": "pia@example.org", "name": NAME, "password": "long-enough",
      "suspended": "yes"}, "invalid", "user.suspended' (boolean)"),
    ({"primaryEmail": "pia@other.org", "name": NAME, "password": "long-enough"}, "invalid",
     "Domain not found."),
    ({"primaryEmail": "pia@example.org", "name": NAME, "password": "short"}, "invalid",
     "Invalid Password"),
    ({"primaryEmail": "pia@example.org", "name": {**NAME, "familyName": "x" * 61},
      "password": "long-enough"}, "invalid", "familyName"),
])
def test_user_insert_bodies_are_checked_against_the_discovery_document(peer, body, reason,
                                                                       said):
    answer = httpx.post(f"{peer.origin}{USERS}", json=body, headers=bearer(peer), timeout=5)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["errors"][0]["reason"] == reason and said in error["message"]
    assert peer.user_by_email("pia@example.org") is None


def test_update_has_patch_semantics_and_no_required_fields(peer):
    uid = peer.seed_user("rex")
    answer = httpx.put(f"{peer.origin}{USERS}/{uid}", json={"name": {"familyName": "Ray"}},
                       headers=bearer(peer), timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == {"givenName": "Rex", "familyName": "Ray",
                                     "fullName": "Rex Ray"}
    assert "password" not in answer.json()


def test_cli_sandbox_google_is_listed():
    result = CliRunner().invoke(cli, ["sandbox", "--help"])
    assert result.exit_code == 0 and "google" in result.output
    result = CliRunner().invoke(cli, ["sandbox", "google", "--help"])
    assert result.exit_code == 0 and "--port" in result.output
