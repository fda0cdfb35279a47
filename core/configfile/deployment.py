"""What a configuration file may refer to outside itself: the deployment it is applied to.

Validating a file needs no database: offline, only the built-ins are known (PRIMARY, the
default claims, the resident application) and every other name is assumed to exist, so
only what is wrong *in the file* is reported. Given a deployment, unknown domains, roles,
users, identity providers and claims are reported too.
"""

from __future__ import annotations

from sqlalchemy import select

from core.claims import DEFAULT_LOCAL_CLAIMS, ClaimCatalog, LocalClaim
from core.configfile.operators import load as load_operators
from core.errors import IamError, NotFound
from core.iam import Iam
from core.identity import internal_roles
from core.identity.events import RESIDENT_APPLICATION
from core.idps import IdentityProvider
from core.names import PRIMARY, QualifiedName
from core.operators import Operator, path_in
from core.schema import claim_attribute_mappings


class Deployment:
    def __init__(self, iam: Iam | None) -> None:
        self.iam = iam
        self._claims = iam.claims if iam else ClaimCatalog(DEFAULT_LOCAL_CLAIMS, {}, {})
        self._idps: dict[str, IdentityProvider | None] = {}

    @property
    def live(self) -> bool:
        return self.iam is not None

    @property
    def resident_app(self) -> str:
        return self.iam.resident_app().name if self.iam else RESIDENT_APPLICATION

    def domains(self) -> list[str]:
        return list(self.iam.stores.definitions) if self.iam else [PRIMARY]

    def has_domain(self, domain: str) -> bool:
        return domain in self.iam.stores.definitions if self.iam else True

    def has_role(self, role: QualifiedName) -> bool:
        if self.iam is None:
            return True
        if role.is_internal:
            with self.iam.db.transaction() as conn:
                return internal_roles.find(conn, role.name) is not None
        try:
            return self.iam.stores.store(role.domain).get_group_by_name(role.name) is not None
        except IamError:
            return False

    def has_user(self, user: QualifiedName) -> bool:
        if self.iam is None:
            return True
        try:
            return self.iam.stores.store(user.domain).get_user_by_name(user.name) is not None
        except IamError:
            return False

    def idp(self, name: str) -> IdentityProvider | None:
        """The stored identity provider (None offline or when there is none)."""
        if self.iam is None:
            return None
        if name not in self._idps:
            try:
                self._idps[name] = self.iam.get_idp(name)
            except NotFound:
                self._idps[name] = None
        return self._idps[name]

    def has_idp(self, name: str) -> bool:
        return self.iam is None or self.idp(name) is not None

    def operators(self) -> list[Operator]:
        """The console's operators (none offline: the file is checked on its own)."""
        return load_operators(path_in(self.iam.home)) if self.iam else []

    def claim(self, name: str) -> LocalClaim | None:
        """A local claim by URI or short name; None when unknown (offline: not built in)."""
        try:
            return self._claims.claims[self._claims.resolve(name)]
        except IamError:
            return None


def claim_mappings(iam: Iam) -> dict[str, dict[str, str]]:
    """claim URI -> {domain: attribute}, as stored (no fallback to PRIMARY's mapping)."""
    out: dict[str, dict[str, str]] = {}
    with iam.db.transaction() as conn:
        for uri, domain, attribute in conn.execute(select(
                claim_attribute_mappings.c.claim_uri, claim_attribute_mappings.c.domain,
                claim_attribute_mappings.c.attribute)):
            out.setdefault(uri, {})[domain] = attribute
    return out
