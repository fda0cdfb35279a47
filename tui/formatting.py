"""How the console writes times, durations and counts (the same on every screen)."""

from __future__ import annotations

from datetime import datetime

from core.provisioning.outbox import Operation

#: Operations as an administrator reads them.
OPERATIONS: dict[Operation, str] = {
    Operation.UPSERT_USER: "upsert user",
    Operation.DEPROVISION_USER: "deprovision",
    Operation.UPSERT_GROUP: "upsert group",
    Operation.GROUP_MEMBERS: "members",
    Operation.DELETE_GROUP: "delete group",
}


def clock(moment: datetime | None) -> str:
    """``HH:MM:SS`` in the local time zone (the engine stores UTC)."""
    return "" if moment is None else moment.astimezone().strftime("%H:%M:%S")


def stamp(moment: datetime | None) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in the local time zone."""
    return "" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def millis(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def count(n: int) -> str:
    return f"{n:,}"


def one_line(text: str | None, width: int | None = None) -> str:
    """Whitespace folded to single spaces, cut to ``width`` with an ellipsis."""
    if not text:
        return ""
    flat = " ".join(text.split())
    if width is not None and len(flat) > width:
        return flat[:width - 1] + "…"
    return flat
