"""``POST /jit/{idp}`` on serve's HTTP app: users created, updated and linked by federated
logins, the answers and errors, JIT targets reached (and only those), rollback on a
blocking failure."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import httpx
import pytest

from core.apps import Application, OutboundTarget
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
