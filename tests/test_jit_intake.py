"""``POST /jit/{idp}`` on serve's HTTP app: users created, updated and linked by federated
logins, the answers and errors, JIT targets reached (and only those), rollback on a
blocking failure."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import httpx
import pytest

from core.iam import Iam
from core.identity.events import Initiator
from core.idps import ClaimMapping, IdentityProvider, JitConfig, RoleMapping
from core.jit import associations
from core.jit.sandbox import SandboxIdp
from tests.provisioning_helpers import connect, drain, peer_users
from tests.scim_api import application, served

APP = "hr-portal"
IDP = "corp-sso"
ADMIN = Initiator.admin()


@pytest.fixture(scope="module")
def sso() -> SandboxIdp:
    return SandboxIdp.create()


def configure(iam: Iam, sso: SandboxIdp, protocol: str = "oidc", **jit: object) -> None:
    if "PRIMARY/engineering" not in [r.qualified_name for r in iam.identity.list_roles()]:
        iam.identity.add_role(ADMIN, "PRIMARY/engineering")
    email = iam.claims.resolve("emailaddress")
    iam.save_idp(ADMIN, IdentityProvider(
        name=IDP, federation=sso.federation(protocol, APP),
        jit=JitConfig(**{"enabled": True, **jit}),  # type: ignore[arg-type]
        claim_mappings=(ClaimMapping(email, "email"),),
        role_mappings=(RoleMapping("PRIMARY/engineering", "engineers"),)))


@dataclasses.dataclass
class Jit:
    iam: Iam
    sso: SandboxIdp
    http: httpx.Client

    def oidc(self, sub: str = "s-1", username: str = "alice", idp: str = IDP,
             **claims: object) -> httpx.Response:
        token = self.sso.id_token(APP, {"sub": sub, "preferred_username": username,
                                        **claims})
        return self.http.post(f"/jit/{idp}", json={"id_token": token})

    def audit_count(self) -> int:
        return len(self.iam.audit_log(limit=10_000))


@contextlib.contextmanager
def serving(iam: Iam, sso: SandboxIdp, protocol: str = "oidc", **jit: object
            ) -> Iterator[Jit]:
    """Serve ``iam`` with the identity provider configured first (the intake reads an
    identity provider's settings again after a few seconds only)."""
    token = application(iam, APP) if APP not in iam.app_names() else \
        iam.issue_token(ADMIN, APP)
    configure(iam, sso, protocol, **jit)
    with served(iam) as api:
        base = api.base.removesuffix("/scim2")
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                          timeout=10) as http:
            yield Jit(iam, sso, http)


@pytest.fixture
def jit(sqlite_iam: Iam, sso: SandboxIdp) -> Iterator[Jit]:
    with serving(sqlite_iam, sso) as j:
        yield j


def email(iam: Iam, name: str) -> str | None:
    return iam.identity.get_user(name).claims.get(iam.claims.resolve("emailaddress"))


def test_a_first_login_creates_the_user_with_its_claims_roles_and_association(
        jit: Jit) -> None:
    r = jit.oidc(email="alice@example.test", groups=["engineers", "other"])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body == {"user": "PRIMARY/alice", "id": body["id"], "created": True,
                    "associated": False}
    assert email(jit.iam, "PRIMARY/alice") == "alice@example.test"
    assert jit.iam.identity.roles_of("PRIMARY/alice") == ["PRIMARY/engineering"]
    with jit.iam.db.transaction() as conn:
        linked = associations.of_user(conn, "PRIMARY", body["id"])
    assert [(a.idp, a.subject) for a in linked] == [(IDP, "s-1")]
    entry = jit.iam.audit_log(action="jit.login")[0]
    assert entry.detail["initiator"] == \
        f"JIT login through application {APP} via identity provider {IDP}"
    assert (entry.application, entry.face, entry.target) == (APP, "jit", "PRIMARY/alice")


def test_an_unchanged_login_writes_only_the_audit_row(jit: Jit) -> None:
    assert jit.oidc(email="a@example.test", groups=["engineers"]).status_code == 201
    before = jit.iam.identity.get_user("PRIMARY/alice")
    count = jit.audit_count()
    r = jit.oidc(email="a@example.test", groups=["engineers"])
    assert r.status_code == 200 and r.json()["created"] is False
    assert jit.audit_count() == count + 1
    assert jit.iam.audit_log(limit=1)[0].action == "jit.login"
    assert jit.iam.identity.get_user("PRIMARY/alice").modified == before.modified


@pytest.mark.parametrize(("mode", "after_change", "after_fill"), [
    ("override", "new@example.test", "filled@example.test"),
    ("preserve_local", "old@example.test", "filled@example.test"),
    ("none", "old@example.test", None),
])
def test_attribute_sync(sqlite_iam: Iam, sso: SandboxIdp, mode: str, after_change: str,
                        after_fill: str | None) -> None:
    with serving(sqlite_iam, sso, attribute_sync=mode) as jit:
        _attribute_sync(jit, mode, after_change, after_fill)


def _attribute_sync(jit: Jit, mode: str, after_change: str, after_fill: str | None) -> None:
    assert jit.oidc(email="old@example.test").status_code == 201
    assert jit.oidc(email="new@example.test", groups=["engineers"]).status_code == 200
    assert email(jit.iam, "PRIMARY/alice") == after_change
    roles = jit.iam.identity.roles_of("PRIMARY/alice")
    assert roles == ([] if mode == "none" else ["PRIMARY/engineering"])
    assert jit.oidc(sub="s-2", username="bob").status_code == 201  # no email at first
    assert jit.oidc(sub="s-2", username="bob", email="filled@example.test").status_code == 200
    assert email(jit.iam, "PRIMARY/bob") == after_fill
    if mode == "override":  # a mapped role the token no longer names is taken away
        assert jit.oidc(email="new@example.test", groups=[]).status_code == 200
        assert jit.iam.identity.roles_of("PRIMARY/alice") == []


def test_associate_local_user_links_instead_of_creating(sqlite_iam: Iam, sso: SandboxIdp
                                                        ) -> None:
    local = sqlite_iam.identity.add_user(ADMIN, "PRIMARY/alice", "Passw0rd!x", {})
    with serving(sqlite_iam, sso, associate_local_user=True) as jit:
        r = jit.oidc()
        assert (r.status_code, r.json()["associated"], r.json()["id"]) == (200, True, local.id)
        again = jit.oidc()
        assert (again.status_code, again.json()["associated"]) == (200, False)
    assert sqlite_iam.identity.count_users("PRIMARY") == 1


def test_an_existing_local_user_is_not_taken_over_without_association(jit: Jit) -> None:
    jit.iam.identity.add_user(ADMIN, "PRIMARY/alice", "Passw0rd!x", {})
    count = jit.audit_count()
    r = jit.oidc(email="evil@example.test")
    assert r.status_code == 409 and "associate_local_user" in r.json()["error"]
    assert jit.audit_count() == count and email(jit.iam, "PRIMARY/alice") is None


def test_a_saml_login_creates_the_user(sqlite_iam: Iam, sso: SandboxIdp) -> None:
    with serving(sqlite_iam, sso, "saml2") as jit:
        url = str(jit.http.base_url.join(f"/jit/{IDP}"))
        elsewhere = sso.saml_response(APP, "carol", None, "https://elsewhere.test/jit/x")
        wrong = jit.http.post(f"/jit/{IDP}", json={"saml_response": elsewhere})
        assert wrong.status_code == 401 and "Recipient" in wrong.json()["error"]
        response = sso.saml_response(APP, "carol", {"email": "c@example.test",
                                                    "groups": ["engineers"]}, url)
        r = jit.http.post(f"/jit/{IDP}", json={"saml_response": response})
        assert (r.status_code, r.json()["user"]) == (201, "PRIMARY/carol"), r.text
        assert email(sqlite_iam, "PRIMARY/carol") == "c@example.test"
        replayed = jit.http.post(f"/jit/{IDP}", json={"saml_response": response})
        assert replayed.status_code == 401 and "already used" in replayed.json()["error"]


def test_refusals_say_what_was_wrong_and_write_nothing(jit: Jit) -> None:
    count = jit.audit_count()
    other = SandboxIdp.create()
    cases = [
        (jit.oidc(idp="nobody"), 404, "does not exist"),
        (jit.http.post(f"/jit/{IDP}", json={"id_token": other.id_token(
            APP, {"sub": "x", "preferred_username": "x"})}), 401, "signature"),
        (jit.http.post(f"/jit/{IDP}", json={"saml_response": "x"}), 400, "id_token"),
        (jit.http.post(f"/jit/{IDP}", content=b"{not json"), 400, "JSON"),
        (jit.http.post(f"/jit/{IDP}", json={"id_token": "x"},
                       headers={"Authorization": "Bearer wrong"}), 401, "application"),
        (httpx.post(jit.http.base_url.join(f"/jit/{IDP}"), json={"id_token": "x"}), 401,
         "application"),
        (jit.http.get(f"/jit/{IDP}"), 405, "POST"),
    ]
    for response, status, words in cases:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert words in error
        assert "BEGIN" not in error and "mwi_" not in error  # never a key or a token
    assert jit.audit_count() == count
    assert jit.iam.identity.count_users("PRIMARY") == 0


@pytest.mark.parametrize(("jit_settings", "words"), [
    ({"enabled": False}, "disabled"),
    ({"scheme": "prompt_consent"}, "login page"),
])
def test_jit_off_or_a_prompt_scheme_is_403(sqlite_iam: Iam, sso: SandboxIdp,
                                           jit_settings: dict, words: str) -> None:
    with serving(sqlite_iam, sso, **jit_settings) as jit:
        r = jit.oidc()
        assert r.status_code == 403 and words in r.json()["error"]
    assert sqlite_iam.identity.count_users("PRIMARY") == 0


def test_only_jit_targets_are_reached(sqlite_iam: Iam, sso: SandboxIdp, scim_peer: str,
                                      scim_server_process) -> None:
    other_peer = scim_server_process.tenant()
    application(sqlite_iam, APP)
    connect(sqlite_iam, other_peer, idp="plain", app=APP, jit=False)
    connect(sqlite_iam, scim_peer, idp="jit-peer", app=APP, jit=True,
            extra_targets=sqlite_iam.get_app(APP).outbound)
    with serving(sqlite_iam, sso) as jit:
        assert jit.oidc(email="alice@example.com").status_code == 201
    drain(sqlite_iam)
    assert [u["userName"] for u in peer_users(scim_peer)] == ["alice"]
    assert peer_users(other_peer) == []


def test_a_failing_blocking_jit_target_answers_502_and_rolls_back(
        sqlite_iam: Iam, sso: SandboxIdp) -> None:
    application(sqlite_iam, APP)
    connect(sqlite_iam, "http://127.0.0.1:9/scim", idp="down", app=APP, jit=True,
            blocking=True, fail_on_blocking_failure=True)
    with serving(sqlite_iam, sso) as jit:
        r = jit.oidc(email="a@example.test")
        assert r.status_code == 502 and "provisioning" in r.json()["error"]
    assert sqlite_iam.identity.count_users("PRIMARY") == 0
    with sqlite_iam.db.transaction() as conn:
        assert associations.find(conn, IDP, "s-1") is None
    assert not sqlite_iam.audit_log(action="jit.login")


def test_the_demo_logs_people_in_through_corp_sso() -> None:
    from core.demo.deployment import ACTOR_APP, ActivityGenerator, demo_deployment
    from core.demo.sso import SSO, FederatedLogins
    from tests.conftest import FAST_ARGON2

    with demo_deployment(peer_port=None, argon2=FAST_ARGON2) as env:
        assert env.sso is not None and env.iam.get_idp(SSO).jit.enabled
        logins = FederatedLogins(env.iam, env.sso, ACTOR_APP, seed=3)
        first = logins.login("ines")
        assert (first.user, first.created) == ("PRIMARY/ines", True)
        assert logins.login("ines").created is False
        generator = ActivityGenerator(env.iam, env.proxy, seed=7, logins=logins)
        for _ in range(6):
            generator.step()
        drain(env.iam)
        assert "ines" in {u["userName"] for u in peer_users(env.peer_url)}
        jit_rows = env.iam.audit_log(action="jit.login")
        assert len(jit_rows) == 2 + 6 // 3 and {r.application for r in jit_rows} == {APP}


def test_the_application_rate_limit_applies(sqlite_iam: Iam, sso: SandboxIdp) -> None:
    from core.inbound import Limits

    token = application(sqlite_iam, APP)
    configure(sqlite_iam, sso)
    with served(sqlite_iam, Limits(rate=0.01, burst=2)) as api, httpx.Client(
            base_url=api.base.removesuffix("/scim2"),
            headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
        jit = Jit(sqlite_iam, sso, http)
        assert [jit.oidc().status_code for _ in range(3)] == [201, 200, 429]
        limited = jit.oidc()
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


def test_keys_and_certificates_are_parsed_once_not_per_login(
        sqlite_iam: Iam, sso: SandboxIdp, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.jit import intake, keys
    made: list[str] = []

    def parse_certificate(pem: str) -> object:
        made.append("certificate")
        return keys.parse_certificate(pem)

    def key_set(jwks: str | None, jwks_uri: str | None) -> keys.KeySet:
        made.append("key set")
        return keys.KeySet(jwks, jwks_uri)

    monkeypatch.setattr(intake, "parse_certificate", parse_certificate)
    monkeypatch.setattr(intake, "KeySet", key_set)
    for protocol in ("saml2", "oidc"):
        configure(sqlite_iam, sso, protocol)
        fed = sqlite_iam.get_idp(IDP).federation
        assert fed is not None
        logins = intake.JitIntake(sqlite_iam)
        for name in ("carol", "dave", "erin"):
            result = logins.login(APP, IDP, sso.login_body(fed, f"{name}-{protocol}", {}))
            assert result.created
    assert made == ["certificate", "key set"]
