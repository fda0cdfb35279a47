"""The JIT login: verify a federated login, then create, update or link the local user.

Everything the login writes (the user, its claims and roles, the association, the audit
row, the provisioning jobs of the application's JIT targets) happens in one system-DB
transaction through the identity service, with the initiator "JIT login through
application X via identity provider Y". A blocking JIT target that fails, with the
application's ``fail_on_blocking_failure``, refuses the login (502) and rolls it all back.
A login of an existing user whose claims and roles already match writes only its audit
row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from core import audit
from core.errors import InvalidInput, NotFound, OperationRefused
from core.identity.events import JIT_LOGIN_ACTION, Initiator, describe_actor
from core.identity.service import UserView
from core.idps import Federation, IdentityProvider
from core.jit import associations
from core.jit.errors import LoginRefused
from core.jit.federation import PROMPT_SCHEMES
from core.jit.keys import KeySet, parse_certificate
from core.jit.login import FederatedLogin
from core.jit.oidc import verify_id_token
from core.jit.replay import ReplayCache
from core.names import parse_name
from core.provisioning.planner import CONFIG_TTL

if TYPE_CHECKING:
    from core.iam import Iam

_K = TypeVar("_K")


@dataclass(frozen=True)
class JitResult:
    user: str
    id: str
    created: bool
    #: This login linked the subject to a local user that existed before it.
    associated: bool
    #: The claim URIs and roles the login changed (empty: nothing but the audit row).
    changed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user, "id": self.id, "created": self.created,
                "associated": self.associated}


class JitIntake:
    """Federated logins into one deployment (one per serve process: it holds the replay
    cache and the identity providers' key sets)."""

    def __init__(self, iam: Iam) -> None:
        self.iam = iam
        self.replay = ReplayCache()
        self._idps: dict[str, tuple[float, IdentityProvider]] = {}
        self._keys: dict[str, tuple[Federation, object]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ configuration
    def _idp(self, name: str) -> IdentityProvider:
        """The identity provider, read again after ``CONFIG_TTL`` seconds."""
        hit = self._idps.get(name)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        try:
            idp = self.iam.get_idp(name)
        except NotFound:
            raise LoginRefused(404, f"identity provider {name!r} does not exist") from None
        self._idps[name] = (time.monotonic() + CONFIG_TTL, idp)
        return idp

    def _keys_of(self, name: str, fed: Federation, make: Callable[[Federation], _K]) -> _K:
        """What verifies ``name``'s logins (its key set, its certificate), made once per
        federation settings: a JWKS or a certificate is parsed once, not at every login."""
        with self._lock:
            hit = self._keys.get(name)
            if hit is None or hit[0] != fed:
                hit = self._keys[name] = (fed, make(fed))
            return cast(_K, hit[1])

    # ------------------------------------------------------------------ the login
    def verify(self, idp_name: str, body: Mapping[str, Any], recipient: str | None = None
               ) -> tuple[IdentityProvider, FederatedLogin]:
        """The identity provider and the login ``body`` proves, or LoginRefused.

        ``recipient``: the URL the login was posted to, which a SAML assertion must name as
        its Recipient (None, from the CLI: not checked)."""
        idp = self._idp(idp_name)
        if not idp.enabled or not idp.jit.enabled:
            raise LoginRefused(403, f"JIT provisioning is disabled for identity provider "
                                    f"{idp_name!r}")
        if idp.jit.scheme in PROMPT_SCHEMES:
            raise LoginRefused(403, f"identity provider {idp_name!r} uses the JIT scheme "
                                    f"{idp.jit.scheme}, which needs a login page this "
                                    "server does not have (use provision_silently)")
        fed = idp.federation
        if fed is None:
            raise LoginRefused(403, f"identity provider {idp_name!r} has no federation "
                                    "settings: its logins cannot be verified")
        if fed.protocol == "oidc":
            if "id_token" not in body:
                raise LoginRefused(400, 'send {"id_token": "<JWS>"} (identity provider '
                                        f"{idp_name!r} speaks OIDC)")
            keys = self._keys_of(idp_name, fed, lambda f: KeySet(f.jwks, f.jwks_uri))
            return idp, verify_id_token(body["id_token"], fed, keys, self.replay)
        if "saml_response" not in body:
            raise LoginRefused(400, 'send {"saml_response": "<base64 SAML Response>"} '
                                    f"(identity provider {idp_name!r} speaks SAML 2.0)")
        from core.jit.saml import SamlVerifier  # here: OIDC logins need no XML signatures

        certificate = self._keys_of(idp_name, fed,
                                    lambda f: parse_certificate(f.certificate or ""))
        verifier = SamlVerifier(fed, recipient, certificate)
        return idp, verifier.verify(body["saml_response"], self.replay)

    def login(self, application: str, idp_name: str, body: Mapping[str, Any],
              recipient: str | None = None) -> JitResult:
        """Verify the login and apply it to the local user (see the module's doc)."""
        idp, login = self.verify(idp_name, body, recipient)
        initiator = Initiator.jit_login(application, idp.name)
        try:
            with self.iam.db.transaction() as conn:
                result = self._apply(conn, initiator, idp, login)
                audit.record(conn, initiator, JIT_LOGIN_ACTION, result.user, {
                    "initiator": describe_actor(initiator.actor, initiator.face,
                                                initiator.application), "subject": login.subject,
                    "created": result.created, "associated": result.associated,
                    "changed": list(result.changed)})
                return result
        except OperationRefused as exc:
            raise LoginRefused(502, f"provisioning refused the login: {exc}") from None
        except InvalidInput as exc:
            raise LoginRefused(400, f"the login cannot be applied: {exc}") from None

    def _apply(self, conn: Any, initiator: Initiator, idp: IdentityProvider,
               login: FederatedLogin) -> JitResult:
        jit = idp.jit
        name = str(parse_name(f"{jit.userstore}/{login.username}"))
        claims = self._mapped_claims(idp, login)
        roles = self._mapped_roles(idp, login)
        identity = self.iam.identity
        user: UserView | None = None
        linked = associations.find(conn, idp.name, login.subject)
        if linked is not None:
            try:
                user = identity.get_user_by_id(linked.domain, linked.user_id)
            except NotFound:  # the user was deleted since: the next login starts afresh
                associations.unlink(conn, idp.name, login.subject)
                linked = None
        associated = False
        if user is None:
            try:
                user = identity.get_user(name)
            except NotFound:
                user = None
            if user is not None and not jit.associate_local_user:
                raise LoginRefused(409, f"a local user {name} exists and identity provider "
                                        f"{idp.name!r} does not associate local users "
                                        "(associate_local_user)")
            associated = user is not None
        if user is None:
            user = identity.add_user(initiator, name, None, claims, sorted(roles))
            associations.link(conn, idp.name, login.subject, user.domain, user.id)
            return JitResult(user.qualified_name, user.id, True, False,
                             tuple(sorted(claims)) + tuple(sorted(roles)))
        if linked is None:
            associations.link(conn, idp.name, login.subject, user.domain, user.id)
        changed = self._sync(initiator, idp, user, claims, roles)
        return JitResult(user.qualified_name, user.id, False, associated, changed)

    def _sync(self, initiator: Initiator, idp: IdentityProvider, user: UserView,
              claims: dict[str, str], roles: set[str]) -> tuple[str, ...]:
        """Apply the login's claims and roles to an existing user per ``attribute_sync``;
        what changed."""
        mode = idp.jit.attribute_sync
        if mode == "none":
            return ()
        identity = self.iam.identity
        if mode == "override":
            to_set = {k: v for k, v in claims.items() if user.claims.get(k) != v}
        else:  # preserve_local: fill only what is empty
            to_set = {k: v for k, v in claims.items() if not user.claims.get(k)}
        if to_set:
            identity.update_user(initiator, user, set_claims=to_set)
        mapped = {str(parse_name(m.local)) for m in idp.role_mappings}
        current = set(identity.roles_of_id(user.domain, user.id)) if mapped else set()
        added = sorted(roles - current)
        removed = sorted((mapped & current) - roles) if mode == "override" else []
        for role in added:
            identity.assign(initiator, role, [user.qualified_name])
        for role in removed:
            identity.unassign(initiator, role, [user.qualified_name])
        return (*sorted(to_set), *(f"+{r}" for r in added), *(f"-{r}" for r in removed))

    @staticmethod
    def _mapped_claims(idp: IdentityProvider, login: FederatedLogin) -> dict[str, str]:
        out: dict[str, str] = {}
        for m in idp.claim_mappings:
            value = login.claims.get(m.remote)
            if isinstance(value, list):
                value = next((v for v in value if isinstance(v, str)), None)
            if isinstance(value, bool | int | float):
                value = str(value).lower() if isinstance(value, bool) else str(value)
            if isinstance(value, str) and value:
                out[m.local] = value
            elif m.default is not None:
                out[m.local] = m.default
        return out

    @staticmethod
    def _mapped_roles(idp: IdentityProvider, login: FederatedLogin) -> set[str]:
        fed = idp.federation
        groups = login.claims.get(fed.groups_claim if fed else "groups", [])
        names = {groups} if isinstance(groups, str) else \
            {g for g in groups if isinstance(g, str)} if isinstance(groups, list) else set()
        return {str(parse_name(m.local)) for m in idp.role_mappings if m.remote in names}
