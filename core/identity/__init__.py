"""The identity service and its events: the one door for writes of users and roles."""

from core.identity.events import EventBus, EventType, Face, IdentityEvent, Initiator, Phase
from core.identity.service import IdentityService, ImportReport, ImportRow, RoleView, UserView

__all__ = [
    "EventBus", "EventType", "Face", "IdentityEvent", "IdentityService", "ImportReport",
    "ImportRow", "Initiator", "Phase", "RoleView", "UserView",
]
