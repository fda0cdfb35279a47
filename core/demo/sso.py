"""The demo's federated logins: ``corp-sso``, an OIDC identity provider whose keys the
sandbox IdP makes, with JIT on for the HR portal; and the logins the activity generator
sends through the JIT intake (the same code path as ``POST /jit/corp-sso``).

Its people are a fixed set: the first login of each creates the user, later ones update
a department (the token wins: ``attribute_sync: override``) or change nothing.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from core.apps import OutboundTarget
from core.iam import Iam
from core.identity.events import Face, Initiator
from core.idps import ClaimMapping, IdentityProvider, JitConfig, RoleMapping
from core.jit.intake import JitIntake, JitResult
from core.jit.sandbox import SandboxIdp

SSO = "corp-sso"
ISSUER = "https://corp-sso.demo.test"
PEOPLE = ("ines", "omar", "yuki", "lena", "ravi", "zoe")
DEPARTMENTS = ("Engineering", "Sales", "Support")


def configure_corp_sso(iam: Iam, home: Path, app: str, jit_target: str) -> SandboxIdp:
    """Add ``corp-sso`` (JIT on, into PRIMARY) and let ``app``'s ``jit_target`` take JIT
    users; returns the sandbox IdP that signs its logins."""
    sso = SandboxIdp.of_home(home, ISSUER)
    admin = Initiator.admin(Face.CONFIG)
    claims = iam.claims
    iam.save_idp(admin, IdentityProvider(
        name=SSO, description="Corporate single sign-on (the demo's sandbox OIDC IdP)",
        federation=sso.federation("oidc", app),
        jit=JitConfig(enabled=True, attribute_sync="override"),
        claim_mappings=tuple(ClaimMapping(claims.resolve(local), remote) for local, remote in (
            ("emailaddress", "email"), ("givenname", "given_name"),
            ("department", "department"))),
        role_mappings=(RoleMapping("Internal/provisioned", "staff"),
                       RoleMapping("PRIMARY/engineering", "engineers"))))
    current = iam.get_app(app)
    outbound = tuple(dataclasses.replace(t, jit=True) if t.idp == jit_target else t
                     for t in current.outbound)
    if not any(t.idp == jit_target for t in outbound):
        outbound += (OutboundTarget(jit_target, "scim2", jit=True),)
    iam.save_app(admin, dataclasses.replace(current, outbound=outbound))
    return sso


class FederatedLogins:
    """One demo login per call, as the HR portal's users signing in through corp-sso."""

    def __init__(self, iam: Iam, sso: SandboxIdp, app: str, seed: int = 1865) -> None:
        self.intake = JitIntake(iam)
        self.sso = sso
        self.app = app
        self._random = random.Random(seed)

    def login(self, name: str | None = None) -> JitResult:
        name = name or self._random.choice(PEOPLE)
        department = self._random.choice(DEPARTMENTS)
        token = self.sso.id_token(self.app, {
            "sub": f"corp-{name}", "preferred_username": name,
            "email": f"{name}@example.com", "given_name": name.capitalize(),
            "department": department,
            "groups": ["staff", *(["engineers"] if department == "Engineering" else [])]})
        return self.intake.login(self.app, SSO, {"id_token": token})
