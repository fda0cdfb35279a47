"""The dashboard: a card per provisioning target, the queue depth, and recent activity
(attempts and JIT logins).

Live: once a second a thread worker reads ``iam.provisioning.status()`` and the latest
attempts with the latest ``jit.login`` audit rows; the reply updates the cards and the
feed in place, by target and by attempt or login.
When the console runs its own workers, every finished attempt (``JobAttempted``) asks for
a read at once. One read runs at a time; a request meanwhile is folded into the next.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Sparkline, Static
from textual.worker import Worker, WorkerState

from core.audit import AuditEntry
from core.iam import Iam
from core.identity.events import JIT_ACTOR_PREFIX, JIT_LOGIN_ACTION
from core.operators import Operator, connected, path_in
from core.provisioning.outbox import AttemptSummary
from core.provisioning.status import TargetStatus
from tui.engine_errors import OneAtATime
from tui.formatting import OPERATIONS, clock, count, millis, one_line
from tui.messages import JobAttempted
from tui.screens.base import CONSOLE_ADMIN, ConsoleHost, ConsoleScreen, StatusSource
from tui.widgets.engine_calls import CallsEngine
from tui.widgets.fitted_table import FittedTable

REFRESH_SECONDS = 1.0
#: The throughput sparkline takes the per-minute figure every SAMPLE_SECONDS and keeps
#: SAMPLES of them (so it spans the last three minutes).
SAMPLE_SECONDS = 5.0
SAMPLES = 36
FEED_ROWS = 50

#: How each state reads without colour: a glyph and the word.
STATE_MARKS = {"healthy": "●", "retrying": "◐", "quarantined": "✖", "throttled": "◑",
               "disabled": "○"}


@dataclass
class StatusRead(Message):
    statuses: list[TargetStatus]
    activity: list[AttemptSummary]
    logins: list[AuditEntry]


class ThroughputHistory:
    """Per-minute successes per target, sampled at most every ``every`` seconds."""

    def __init__(self, every: float, keep: int = SAMPLES) -> None:
        self.every = every
        self._keep = keep
        self._series: dict[str, deque[float]] = {}
        self._last: float | None = None

    def offer(self, statuses: Sequence[TargetStatus], now: float) -> None:
        if self._last is not None and now - self._last < self.every:
            return
        self._last = now
        for s in statuses:
            self._series.setdefault(s.target, deque(maxlen=self._keep)).append(s.per_minute)

    def series(self, target: str) -> list[float]:
        """The window, oldest first, zero-padded on the left and led by a zero: the
        sparkline scales from its data's minimum, and throughput is drawn from zero."""
        samples = list(self._series.get(target, ()))
        return [0.0] * (self._keep + 1 - len(samples)) + samples


class TargetCard(Vertical):
    """One target: state, counts, throughput, latency and last error."""

    def __init__(self, target: str) -> None:
        super().__init__(classes="target-card")
        self.target = target
        self.border_title = target
        self.status: TargetStatus | None = None
        # Held, not queried: a card is shown before its nested widgets are mounted.
        self._state = Static(classes="card-state")
        self._counts = Static(classes="card-counts", markup=False)
        self._spark = Sparkline([], classes="card-spark")
        self._rate = Static(classes="card-rate", markup=False)
        self._latency = Static(classes="card-latency", markup=False)
        self._error = Static(classes="card-error", markup=False)

    def compose(self) -> ComposeResult:
        yield self._state
        yield self._counts
        with Horizontal(classes="card-throughput"):
            yield self._spark
            yield self._rate
        yield self._latency
        yield self._error

    def show(self, status: TargetStatus, throughput: list[float]) -> None:
        if status != self.status:
            self.status = status
            for state in STATE_MARKS:
                self.set_class(status.state == state, f"-{state}")
            self._state.update(state_line(status))
            self._counts.update(counts_line(status))
            self._rate.update(f"{count(status.per_minute)}/min")
            self._latency.update(" · ".join([
                f"p50 {millis(status.latency_p50_ms)}", f"p95 {millis(status.latency_p95_ms)}",
                *(f"{k} {v}" for k, v in status.facts.items()),
                *([f"reconciled {status.last_reconcile}"] if status.last_reconcile else [])]))
            self._error.update(f"last error: {one_line(status.last_error) or 'none'}")
        if list(self._spark.data or ()) != throughput:
            self._spark.data = throughput


def state_line(status: TargetStatus) -> Text:
    mark = STATE_MARKS.get(status.state, "?")
    text = Text.assemble((f"{mark} {status.state.upper()}", "bold"))
    if status.state in ("quarantined", "throttled") and status.quarantined_until is not None:
        text.append(f"  next probe {clock(status.quarantined_until)}")
    if status.held:
        text.append(f"  {held_line(status.held)}", "bold reverse")
    return text


def held_line(n: int) -> str:
    return f"{count(n)} deletion{'s' if n != 1 else ''} held"


def counts_line(status: TargetStatus) -> str:
    return (f"queued {count(status.queued)} · in flight {count(status.in_flight)} · "
            f"retry {count(status.retrying)}\n"
            f"ok {count(status.succeeded)} · failed {count(status.failed)} · "
            f"dead {count(status.dead)}")


def operators_text(operators: Sequence[Operator], connected_now: set[str]) -> str:
    """One line per operator: name, read-only, connected, and their keys' comments."""
    if not operators:
        return ("No operators: nobody can open the console over SSH. Add one with "
                "`mware-iam operator add NAME --key-file KEY.pub` or an operators: section "
                "in the configuration file.")
    lines = []
    for o in operators:
        marks = [*(["read-only"] if o.read_only else []),
                 *(["connected"] if o.name in connected_now else [])]
        keys = ", ".join(k.split(maxsplit=2)[2] if len(k.split()) > 2 else k.split()[0]
                         for k in o.keys)
        lines.append(f"{o.name}{' (' + ', '.join(marks) + ')' if marks else ''}: {keys}")
    return "\n".join(lines) + "\n\nChanged with `mware-iam operator add|remove` or " \
        "`config apply`."


def summary_line(statuses: Sequence[TargetStatus]) -> str:
    depth = sum(s.queued + s.in_flight + s.retrying for s in statuses)
    dead = sum(s.dead for s in statuses)
    by_state = {state: sum(1 for s in statuses if s.state == state) for state in STATE_MARKS}
    states = ", ".join(f"{n} {state}" for state, n in by_state.items() if n) or "none"
    held = sum(s.held for s in statuses)
    return (f"Queue depth {count(depth)} · dead {count(dead)} · "
            + (f"{held_line(held)} (a: approve, x: cancel) · " if held else "")
            + f"targets: {states}")


class _Order(Text):
    """A feed cell that sorts by time, then by attempt or audit row number (cut with an
    ellipsis, as ``FittedTable`` cuts plain text)."""

    def __init__(self, text: str, order: tuple[float, int, int]) -> None:
        super().__init__(text, no_wrap=True, overflow="ellipsis", end="")
        self.order = order


class ActivityFeed(FittedTable):
    """The latest attempts and JIT logins, newest on top; rows keyed by attempt number
    (``login:<audit row>`` for a login, which has no job). The columns share the width,
    targets and names served first (``FittedTable``)."""

    COLUMNS = ("Time", "Target", "Operation", "Name", "Outcome", "HTTP", "Took")
    FIRST = frozenset({"Target", "Name"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open job", id="dashboard.open_job",
                tooltip="Show the job of the highlighted attempt on the jobs screen"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        #: Attempt (row key) -> its job.
        self.job_of: dict[str, int] = {}

    def on_mount(self) -> None:
        for label in self.COLUMNS:
            self.add_column(label, key=label)

    def show(self, attempts: Sequence[AttemptSummary],
             logins: Sequence[AuditEntry] = ()) -> None:
        wanted: dict[str, AttemptSummary | AuditEntry] = {
            **{str(a.pk): a for a in attempts}, **{f"login:{e.pk}": e for e in logins}}
        stale = [key for key in self.rows if key.value not in wanted]
        new = {key: row for key, row in wanted.items() if key not in self.rows}
        if not stale and not new:
            return
        keep = self._highlighted_key() if self.cursor_row > 0 else None
        for key in stale:
            self.remove_row(key)
        for name, row in new.items():
            self.add_row(*(_attempt_cells(row) if isinstance(row, AttemptSummary)
                           else _login_cells(row)), key=name)
        self.sort("Time", key=lambda cell: cell.order, reverse=True)
        self.job_of = {str(a.pk): a.job_pk for a in attempts}
        if keep in self.job_of:  # reading down the feed: stay on the same attempt
            self.move_cursor(row=self.get_row_index(keep))

    def _highlighted_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    @property
    def highlighted_job(self) -> int | None:
        key = self._highlighted_key()
        return self.job_of.get(key) if key is not None else None


def _attempt_cells(a: AttemptSummary) -> tuple[str | Text, ...]:
    operation = ("JIT " if a.jit else "") + OPERATIONS[a.operation]
    return (_Order(clock(a.at), (a.at.timestamp(), 1, a.pk)), a.target, operation,
            a.entity_name, a.outcome, str(a.status_code or ""), millis(a.duration_ms))


def _login_cells(e: AuditEntry) -> tuple[str | Text, ...]:
    """A JIT login (its ``jit.login`` audit row): the identity provider, the user, and
    whether the login created, linked or updated it."""
    detail = e.detail
    outcome = ("created" if detail.get("created") else "linked" if detail.get("associated")
               else "updated" if detail.get("changed") else "signed in")
    return (_Order(clock(e.at), (e.at.timestamp(), 0, e.pk)),
            e.actor.removeprefix(JIT_ACTOR_PREFIX), "JIT login", e.target, outcome, "", "")


class DashboardScreen(CallsEngine, ConsoleScreen):
    DEFAULT_CSS = """
    DashboardScreen #dash-summary {
        height: 1;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    DashboardScreen #cards {
        grid-size: 2;
        grid-gutter: 0 1;
        grid-rows: 8;
        height: auto;
        max-height: 60%;
        overflow-y: auto;
        padding: 0 1;
    }
    DashboardScreen.-wide #cards {
        grid-size: 3;
    }
    DashboardScreen #no-targets {
        column-span: 3;
        color: $text-muted;
        padding: 1;
    }
    DashboardScreen .target-card {
        height: 8;
        padding: 0 1;
        border: round $success;
    }
    DashboardScreen .target-card.-retrying {
        border: round $warning;
    }
    DashboardScreen .target-card.-quarantined {
        border: heavy $error;
    }
    DashboardScreen .target-card.-throttled {
        border: round $warning;
    }
    DashboardScreen .target-card.-quarantined .card-state {
        text-style: reverse bold;
    }
    DashboardScreen .target-card.-disabled {
        border: dashed $panel-lighten-2;
        color: $text-muted;
    }
    DashboardScreen .target-card Static {
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    DashboardScreen .card-counts {
        height: 2;
    }
    DashboardScreen .card-throughput {
        layout: horizontal;
        height: 1;
    }
    DashboardScreen .card-spark {
        width: 1fr;
        margin-right: 1;
    }
    DashboardScreen .card-rate {
        width: auto;
    }
    DashboardScreen #activity-pane {
        height: 1fr;
        border: round $panel-lighten-2;
    }
    DashboardScreen #activity-pane:focus-within {
        border: heavy $accent;
    }
    DashboardScreen #activity {
        height: 1fr;
    }
    """
    AUTO_FOCUS = "#activity"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh", id="dashboard.refresh",
                tooltip="Read the provisioning status now"),
        Binding("p", "pause", "Pause", id="dashboard.pause",
                tooltip="Stop or resume the live refresh"),
        Binding("a", "approve_held", "Approve deletions", id="dashboard.approve_held",
                tooltip="Release the deletions the deletion guard holds at a target"),
        Binding("x", "cancel_held", "Cancel deletions", id="dashboard.cancel_held",
                tooltip="Drop the deletions the deletion guard holds at a target"),
    ]

    @classmethod
    def for_console(cls, app: ConsoleHost) -> Self:
        return cls(app.iam, app.read_only, source=app.status_source, live=app.live)

    def __init__(self, iam: Iam, read_only: bool, *, source: StatusSource | None = None,
                 live: bool = True, sample_seconds: float | None = None) -> None:
        """``live=False``: no timer (each ``refresh_status`` is one read and one sample)."""
        super().__init__(iam, read_only)
        self.source: StatusSource = source if source is not None else iam.provisioning
        self.live = live
        every = sample_seconds if sample_seconds is not None else \
            (SAMPLE_SECONDS if live else 0.0)
        self.history = ThroughputHistory(every)
        self.paused = False
        self.statuses: list[TargetStatus] = []
        self.cards: dict[str, TargetCard] = {}
        self._timer: Timer | None = None
        self._reads = OneAtATime(self._read)

    def compose_body(self) -> ComposeResult:
        yield Static("Reading the provisioning status…", id="dash-summary", markup=False)
        with Grid(id="cards"):
            yield Static("No provisioning targets yet: the outbound targets of the "
                         "applications appear here.", id="no-targets", markup=False)
        with Vertical(id="activity-pane") as pane:
            pane.border_title = "Recent activity"
            pane.border_subtitle = "workers: this console" if \
                getattr(self.app, "workers_pool", None) else "workers: elsewhere"
            yield ActivityFeed(id="activity")

    def on_mount(self) -> None:
        self._subscribe()
        if self.live:
            self._timer = self.set_interval(REFRESH_SECONDS, self.refresh_status)
        self.refresh_status()

    def _subscribe(self) -> None:
        signal = getattr(self.app, "provisioning_signal", None)
        if signal is not None:
            signal.subscribe(self, self._attempted)

    def _attempted(self, _message: JobAttempted) -> None:
        if not self.paused:
            self.refresh_status()

    # ------------------------------------------------------------ held deletions
    def _holding(self, what: str) -> TargetStatus | None:
        """The first target with held deletions; None (and a note) when there is none or
        the session is read-only."""
        held = next((s for s in self.statuses if s.held), None)
        if held is None:
            self.notify("No deletions are held.", title="Deletion guard")
            return None
        return None if self.refuse_write(f"{what} held deletions") else held

    def action_approve_held(self) -> None:
        status = self._holding("approve")
        if status is not None:
            self.confirm(f"Approve {held_line(status.held)} at {status.target}?",
                         lambda: self._steer_held(status.target, approve=True),
                         detail=f"{count(status.held)} deletions or disables are sent to "
                                f"{status.target} now.", action="Approve")

    def action_cancel_held(self) -> None:
        status = self._holding("cancel")
        if status is not None:
            self.confirm(f"Cancel {held_line(status.held)} at {status.target}?",
                         lambda: self._steer_held(status.target, approve=False),
                         detail=f"{count(status.held)} deletions or disables are never sent "
                                f"to {status.target}.", action="Cancel deletions")

    @work(thread=True, exit_on_error=False, group="dashboard-held", description="Held")
    def _steer_held(self, target: str, approve: bool) -> None:
        engine = self.iam.provisioning
        n = engine.approve(CONSOLE_ADMIN, target) if approve else \
            engine.cancel_held(CONSOLE_ADMIN, target)
        done = "approved" if approve else "cancelled"
        self.app.call_from_thread(self.notify, f"{count(n)} held deletions {done} at {target}.",
                                  title="Deletion guard")
        self.app.call_from_thread(self.refresh_status)

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def on_screen_resume(self) -> None:
        if self._timer is not None and not self.paused:
            self._timer.resume()
            self.refresh_status()

    # ------------------------------------------------------------------ reading
    def refresh_status(self) -> None:
        self._reads.request()

    @work(thread=True, exit_on_error=False, group="dashboard-status",
          description="Reading the provisioning status")
    def _read(self) -> None:
        self.post_message(StatusRead(self.source.status(), self.source.activity(FEED_ROWS),
                                     self.iam.audit_log(FEED_ROWS, JIT_LOGIN_ACTION)))

    @on(Worker.StateChanged)
    def _read_ended(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "dashboard-status" and event.state in (
                WorkerState.ERROR, WorkerState.CANCELLED):
            self._reads.done()

    @on(StatusRead)
    def _show(self, message: StatusRead) -> None:
        self.statuses = message.statuses
        self.history.offer(message.statuses, time.monotonic())
        self._show_cards(message.statuses)
        paused = " · PAUSED (p resumes)" if self.paused else ""
        self.query_one("#dash-summary", Static).update(
            summary_line(message.statuses) + paused + self._connected())
        self.query_one(ActivityFeed).show(message.activity, message.logins)
        self._reads.done()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Show the operators",
                            "Who may open the console over SSH, and who is connected now",
                            self._show_operators)

    def _show_operators(self) -> None:
        def read() -> list[Operator]:
            from core.configfile.operators import load

            return load(path_in(self.iam.home))

        self.call_engine("Reading the operators", read, self._operators_read)

    def _operators_read(self, operators: list[Operator]) -> None:
        now = set(connected(self.iam.home))
        self.notify(operators_text(operators, now), title="Operators (mware-iam ssh-serve)",
                    timeout=20)

    def _connected(self) -> str:
        """Who has the console open over SSH (``mware-iam ssh-serve``'s sessions)."""
        names = connected(self.iam.home) if self.source is self.iam.provisioning else []
        return f" · connected over SSH: {', '.join(names)}" if names else ""

    def _show_cards(self, statuses: Sequence[TargetStatus]) -> None:
        grid = self.query_one("#cards", Grid)
        wanted = {s.target for s in statuses}
        for target in [t for t in self.cards if t not in wanted]:
            self.cards.pop(target).remove()
        for s in statuses:
            card = self.cards.get(s.target)
            if card is None:
                card = self.cards[s.target] = TargetCard(s.target)
                grid.mount(card)
            card.show(s, self.history.series(s.target))
        self.query_one("#no-targets").display = not statuses

    # ------------------------------------------------------------------ actions
    def action_refresh(self) -> None:
        self.refresh_status()

    def action_pause(self) -> None:
        self.paused = not self.paused
        if self._timer is not None:
            if self.paused:
                self._timer.pause()
            else:
                self._timer.resume()
        self.refresh_status()

    @on(DataTable.RowSelected, "#activity")
    async def _open_job(self) -> None:
        job = self.query_one(ActivityFeed).highlighted_job
        if job is None:
            return
        await self.app.switch_mode("jobs")
        show_job = getattr(self.app.screen, "show_job", None)
        if show_job is not None:
            show_job(job)
