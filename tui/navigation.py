"""The console's sections: one screen each, reached by a number key shown in the footer.

This is data (Harlequin's actions registry): the app binds the keys, the footer's
navigation line and ``?`` read their labels, the palette offers "Go to ..." from it, and
the app builds each section's screen from its ``module`` and ``screen`` on first visit
(``ConsoleScreen.for_console``). A new section is one entry here.
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
    #: The module that holds it, imported on the section's first visit (not at start).
    module: str


SECTIONS: tuple[Section, ...] = (
    Section("1", "dashboard", "Dashboard", "Dash",
            "Provisioning status per target and recent activity", "DashboardScreen",
            "tui.screens.dashboard"),
    Section("2", "jobs", "Provisioning jobs", "Jobs",
            "The provisioning queue: attempts, retry and cancel", "JobsScreen",
            "tui.screens.jobs"),
    Section("3", "users", "Users", "Users", "Users of each userstore", "UsersScreen",
            "tui.screens.users"),
    Section("4", "roles", "Roles", "Roles", "Roles and their members", "RolesScreen",
            "tui.screens.roles"),
    Section("5", "userstores", "Userstores", "Stores", "Userstores and their state",
            "UserstoresScreen",
            "tui.screens.userstores"),
    Section("6", "idps", "Identity providers", "IdPs",
            "Identity providers, their connectors and mappings", "IdentityProvidersScreen",
            "tui.screens.idps"),
    Section("7", "apps", "Applications", "Apps", "Applications, tokens and outbound targets",
            "ApplicationsScreen",
            "tui.screens.apps"),
    Section("8", "audit", "Audit log", "Audit", "Who changed what, and when", "AuditScreen",
            "tui.screens.audit"),
)

BY_MODE: dict[str, Section] = {s.mode: s for s in SECTIONS}
FIRST = SECTIONS[0].mode
