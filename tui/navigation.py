"""The console's sections: one screen each, reached by a number key shown in the footer.

This is data (Harlequin's actions registry): the app binds the keys, the footer's
navigation line and ``?`` read their labels, and the palette offers "Go to ..." from it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    key: str
    #: The Textual mode that holds the section's screen (its stack survives switching).
    mode: str
    title: str
    #: The label in the footer's navigation line (short: eight of them fit in 80 columns).
    short: str
    tooltip: str
    #: Name of the screen class (the navigation line finds the current section by it).
    screen: str


SECTIONS: tuple[Section, ...] = (
    Section("1", "dashboard", "Dashboard", "Dash",
            "Provisioning status per target and recent activity", "DashboardScreen"),
    Section("2", "jobs", "Provisioning jobs", "Jobs",
            "The provisioning queue: attempts, retry and cancel", "JobsScreen"),
    Section("3", "users", "Users", "Users", "Users of each userstore", "UsersScreen"),
    Section("4", "roles", "Roles", "Roles", "Roles and their members", "RolesScreen"),
    Section("5", "userstores", "Userstores", "Stores", "Userstores and their state",
            "UserstoresScreen"),
    Section("6", "idps", "Identity providers", "IdPs",
            "Identity providers, their connectors and mappings", "IdentityProvidersScreen"),
    Section("7", "apps", "Applications", "Apps", "Applications, tokens and outbound targets",
            "ApplicationsScreen"),
    Section("8", "audit", "Audit log", "Audit", "Who changed what, and when", "AuditScreen"),
)

BY_MODE: dict[str, Section] = {s.mode: s for s in SECTIONS}
FIRST = SECTIONS[0].mode
