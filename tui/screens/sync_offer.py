"""The offer a new provisioning target gets: "sync everyone in scope now" (issue 16).

A target added after its users were (an identity provider gaining a connector, an
application gaining a target) gets none of them until each changes. The screens that add
one count the users in its scope and ask, saying how many go where; yes queues them as
``mware-iam provisioning sync --all TARGET`` does.
"""

from __future__ import annotations

from core.provisioning.bulk import SyncCounts
from tui.formatting import count
from tui.screens.base import CONSOLE_ADMIN, ListDetailScreen

TITLE = "Sync everyone"


def offer_sync_all(screen: ListDetailScreen, target: str) -> None:
    """Count the users in ``target``'s scope off the event loop, then offer to sync them."""
    engine = screen.iam.provisioning

    def ask(users: int) -> None:
        if not users:
            screen.notify(f"No user is in the scope of {target} yet: nothing to sync.", title=TITLE)
            return
        screen.confirm(
            f"Sync {count(users)} {_users(users)} in scope to {target} now?",
            lambda: screen.call_engine(
                f"Queueing the sync of {target}",
                lambda: engine.sync_all(CONSOLE_ADMIN, target),
                done,
            ),
            detail="Users who were in scope before the target was added reach it now, "
            "not at their next change: this queues them (and the groups sent "
            f"there), as 'mware-iam provisioning sync --all {target}' does.",
            action="Sync now",
        )

    def done(counts: SyncCounts) -> None:
        screen.notify(
            f"Queued {count(counts.users)} {_users(counts.users)} and "
            f"{count(counts.groups)} group(s) for {target}.",
            title=TITLE,
        )

    screen.call_engine(
        f"Counting the users in scope of {target}", lambda: engine.users_in_scope(target), ask
    )


def _users(n: int) -> str:
    return "user" if n == 1 else "users"
