"""The audit log: who changed what, newest first.

``/`` filters: ``action=user.add`` and ``target=PRIMARY/bob`` are asked of the engine
(exact match); other words must appear in the actor, action, target or detail.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from core.audit import AuditEntry
from core.iam import Iam
from core.identity.events import describe_actor
from tui.screens.base import ListDetailScreen, list_bindings
from tui.widgets.filter_bar import FilterBar
from tui.widgets.tables import ListTable, matches, plain

#: Entries read at once (the newest).
LIMIT = 500


@dataclass(frozen=True)
class AuditFilter:
    action: str | None = None
    target: str | None = None
    words: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> AuditFilter:
        action = target = None
        words = []
        for token in text.split():
            key, sep, value = token.partition("=")
            if sep and key == "action" and value:
                action = value
            elif sep and key == "target" and value:
                target = value
            else:
                words.append(token)
        return cls(action, target, tuple(words))

    def keeps(self, entry: AuditEntry) -> bool:
        detail = detail_text(entry.detail)
        return all(matches(w, entry.actor, entry.action, entry.target, detail)
                   for w in self.words)


def detail_text(detail: Any) -> str:
    return json.dumps(detail, sort_keys=True, default=str) if detail else ""


class AuditScreen(ListDetailScreen):
    DEFAULT_CSS = """
    AuditScreen #audit-status {
        height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    AuditScreen #audit-detail {
        height: 7;
    }
    """
    AUTO_FOCUS = "#audit"
    LIST_ID = "audit"
    BINDINGS: ClassVar[list[BindingType]] = [
        *list_bindings("audit", "action=X target=Y exactly, or words anywhere",
                       "Show every entry again"),
        Binding("r", "refresh", "Refresh", id="audit.refresh",
                tooltip="Read the newest entries again"),
    ]

    def __init__(self, iam: Iam, read_only: bool) -> None:
        super().__init__(iam, read_only)
        self.entries: list[AuditEntry] = []

    def compose_body(self) -> ComposeResult:
        with Vertical(id="audit-pane", classes="list-pane") as pane:
            pane.border_title = "Audit log"
            yield FilterBar("Filter", placeholder="action=user.add target=PRIMARY/bob words")
            yield ListTable("When (UTC)", "Action", "Target", "Actor", "Face", id="audit")
            yield Static("Loading…", id="audit-status", markup=False)
        with VerticalScroll(id="audit-detail", classes="detail-pane") as detail:
            detail.border_title = "Entry"
            yield Static("", id="audit-detail-body", markup=False)

    @property
    def filter(self) -> AuditFilter:
        return AuditFilter.parse(self.filter_bar.value)

    def action_refresh(self) -> None:
        wanted = self.filter
        self.call_engine("Reading the audit log",
                         lambda: (wanted, self.iam.audit_log(LIMIT, wanted.action,
                                                             wanted.target)),
                         self._show)

    def _show(self, read: tuple[AuditFilter, list[AuditEntry]]) -> None:
        wanted, entries = read
        self.entries = [e for e in entries if wanted.keeps(e)]
        self.table.refill([(str(i), [plain(f"{e.at:%Y-%m-%d %H:%M:%S}"), plain(e.action),
                                      plain(e.target),
                                      plain(describe_actor(e.actor, e.face, e.application)),
                                      plain(e.face)])
                            for i, e in enumerate(self.entries)])
        self.table.move_cursor(row=0, animate=False)
        count = len(self.entries)
        newest = f" (the newest {LIMIT} read)" if len(entries) >= LIMIT else ""
        self.query_one("#audit-status", Static).update(
            f"{count} entr{'y' if count == 1 else 'ies'}{newest}")
        self.show_detail()

    def show_detail(self) -> None:
        row = self.table.cursor_row
        entry = self.entries[row] if 0 <= row < len(self.entries) else None
        self.query_one("#audit-detail-body", Static).update(render_entry(entry))


def render_entry(entry: AuditEntry | None) -> Text:
    if entry is None:
        return Text("No entry.", style="italic")
    text = Text()
    text.append(f"{entry.action} {entry.target}", style="bold")
    by = describe_actor(entry.actor, entry.face, entry.application)
    through = "" if by != entry.actor else f" through {entry.face}"
    text.append(f"\nby {by}{through} ({entry.application})")
    for key, value in sorted(dict(entry.detail).items()):
        text.append(f"\n{key}: ", style="bold")
        text.append(_value(value))
    return text


def _value(value: Any) -> str:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ", ".join(map(str, value)) or "none"
    return str(value)
