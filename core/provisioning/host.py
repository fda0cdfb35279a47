"""What provisioning uses of the deployment it runs in: a narrow protocol instead of the
whole :class:`core.iam.Iam` (which satisfies it), so the provisioning modules never import
the module that creates them."""

from __future__ import annotations

from typing import Protocol

from core.apps import Application
from core.claims import ClaimCatalog
from core.db import SystemDB
from core.identity.events import EventBus
from core.identity.service import IdentityService
from core.idps import IdentityProvider
from core.secrets import SecretBox
from core.userstores.router import UserstoreRouter


class Host(Protocol):
    @property
    def db(self) -> SystemDB: ...

    @property
    def secrets(self) -> SecretBox: ...

    @property
    def stores(self) -> UserstoreRouter: ...

    @property
    def identity(self) -> IdentityService: ...

    @property
    def claims(self) -> ClaimCatalog: ...

    @property
    def bus(self) -> EventBus: ...

    def resident_app(self) -> Application: ...

    def get_idp(self, name: str) -> IdentityProvider: ...
