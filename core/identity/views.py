"""Users and roles as the faces see them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from core.names import INTERNAL
from core.userstores.base import StoredGroup


@dataclass(frozen=True)
class UserView:
    """A user as the faces see it: claims by local claim URI."""

    id: str
    domain: str
    username: str
    claims: Mapping[str, str]
    created: datetime | None = None
    modified: datetime | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.domain}/{self.username}"


@dataclass(frozen=True)
class RoleView:
    id: str
    domain: str
    name: str
    created: datetime | None = None
    modified: datetime | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.domain}/{self.name}"

    @property
    def internal(self) -> bool:
        return self.domain == INTERNAL


def role_view(group: StoredGroup) -> RoleView:
    return RoleView(group.id, group.domain, group.name, group.created, group.modified)
