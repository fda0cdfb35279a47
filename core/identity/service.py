"""The identity service: the one door for every write of users and roles.

Every face (console, CLI, SCIM, JIT, config apply) calls these methods. Each write:
validates everything first (names, policies, claims, roles), then in one system-DB
transaction emits PRE, calls the store, writes the audit row, emits POST; after the commit
it emits COMMITTED. A failure anywhere rolls back the system DB (and the PRIMARY store,
which lives there), so nothing is left half-written.
"""

from core.identity.base import DEFAULT_PAGE_SIZE
from core.identity.bulk_import import (
    IMPORT_BATCH_SIZE,
    PASSWORD_BATCH,
    BulkImport,
    ImportReport,
    ImportRow,
)
from core.identity.roles import MEMBER_PAGE_MAX, RoleOperations
from core.identity.views import RoleView, UserView

__all__ = ["DEFAULT_PAGE_SIZE", "IMPORT_BATCH_SIZE", "MEMBER_PAGE_MAX", "PASSWORD_BATCH",
           "IdentityService", "ImportReport", "ImportRow", "RoleView", "UserView"]


class IdentityService(BulkImport, RoleOperations):
    """Users (``users.py``), roles (``roles.py``) and bulk import (``bulk_import.py``) behind
    one object; ``base.py`` holds what they share."""
