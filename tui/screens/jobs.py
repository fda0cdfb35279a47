"""Provisioning jobs: the queue filtered by state, target and name; every attempt of the
highlighted job with its (redacted) requests and responses; retry and cancel.

The list is live like the dashboard: a timer (and each attempt of the console's own
workers) asks for a read; rows are updated in place by job number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from core.iam import Iam
from core.provisioning.outbox import Job, JobState
from tui.engine_errors import OneAtATime
from tui.formatting import OPERATIONS, clock, millis, one_line, stamp
from tui.messages import JobAttempted
from tui.screens.base import CONSOLE_ADMIN, ConsoleHost, ConsoleScreen
from tui.widgets.filter_bar import FilterInput
from tui.widgets.fitted_table import FittedTable

REFRESH_SECONDS = 2.0
#: Jobs listed at most (newest first); the filters narrow the queue server-side.
LIST_LIMIT = 200
MASK = "********"
ERROR_CELL = 30


@dataclass(frozen=True)
class JobFilter:
    state: str | None = None
    target: str | None = None
    #: Text the jobs' qualified user or group name contains, in any case (``ali``).
    name: str | None = None


@dataclass
class JobsRead(Message):
    filter: JobFilter
    jobs: list[Job]
    targets: list[str]


@dataclass
class JobRead(Message):
    job: Job
    attempts: list[dict[str, Any]]


@dataclass
class JobChanged(Message):
    """Retry or cancel went through (``what`` is the notification)."""

    what: str


def job_cells(job: Job) -> tuple[str, ...]:
    return (str(job.pk), job.target, OPERATIONS[job.operation], job.name, job.state.value,
            str(job.attempts), clock(job.updated), one_line(job.last_error, ERROR_CELL))


class JobsTable(FittedTable):
    """The columns share the width, targets and names served first (``FittedTable``)."""

    COLUMNS = ("#", "Target", "Operation", "Name", "State", "Tries", "Updated", "Last error")
    FIRST = frozenset({"Target", "Name"})

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.jobs: dict[str, Job] = {}

    def on_mount(self) -> None:
        for label in self.COLUMNS:
            self.add_column(label, key=label)

    def show(self, jobs: Sequence[Job]) -> None:
        """Update rows in place: changed cells, new rows, gone rows; sort only on adds."""
        wanted = {str(j.pk): j for j in jobs}
        for key in [k for k in self.jobs if k not in wanted]:
            self.remove_row(key)
            del self.jobs[key]
        # The engine lists newest first: only jobs added above existing rows need a sort.
        had_rows, added = bool(self.jobs), False
        for key, job in wanted.items():
            old = self.jobs.get(key)
            if old is None:
                added = had_rows
                self.add_row(*job_cells(job), key=key)
            elif old != job:
                for column, (was, now) in zip(self.COLUMNS, zip(job_cells(old), job_cells(job),
                                                                 strict=True), strict=True):
                    if was != now:
                        self.update_cell(key, column, now)
            self.jobs[key] = job
        if added:
            keep = self.highlighted
            self.sort("#", key=lambda pk: -int(pk))
            if keep is not None and str(keep.pk) in self.jobs:
                self.select_job(keep.pk)  # the cursor stays on its job, not on its row

    @property
    def highlighted(self) -> Job | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self.jobs.get(key) if key is not None else None

    def select_job(self, pk: int) -> bool:
        key = str(pk)
        if key not in self.jobs:
            return False
        self.move_cursor(row=self.get_row_index(key))
        return True


class JobsScreen(ConsoleScreen):
    DEFAULT_CSS = """
    JobsScreen #jobs-filter {
        height: 1;
        padding: 0 1;
    }
    JobsScreen .filter-label {
        padding: 0 1 0 0;
        text-style: bold;
    }
    JobsScreen #jobs-filter Select {
        width: 18;
        margin-right: 1;
    }
    JobsScreen #filter-name {
        width: 1fr;
    }
    JobsScreen #jobs-pane {
        height: 1fr;
        border: round $panel-lighten-2;
    }
    JobsScreen #jobs-pane:focus-within, JobsScreen #job-detail:focus {
        border: heavy $accent;
    }
    JobsScreen #jobs {
        height: 1fr;
    }
    JobsScreen #jobs-status {
        height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    JobsScreen #job-detail {
        height: 45%;
        min-height: 6;
        padding: 0 1;
        border: round $panel-lighten-2;
    }
    """
    AUTO_FOCUS = "#jobs"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/", id="jobs.filter",
                tooltip="Filter by state, target and user or group name"),
        Binding("escape", "clear_filter", "Clear filter", id="jobs.clear_filter",
                tooltip="Show every job again"),
        Binding("r", "retry", "Retry", id="jobs.retry",
                tooltip="Run the highlighted dead, retrying or cancelled job again now"),
        Binding("c", "cancel_job", "Cancel", id="jobs.cancel",
                tooltip="Cancel the highlighted pending, retrying or dead job"),
        Binding("f5", "refresh", "Refresh", id="jobs.refresh", show=False,
                tooltip="Read the queue now"),
    ]

    @classmethod
    def for_console(cls, app: ConsoleHost) -> Self:
        return cls(app.iam, app.read_only, live=app.live)

    def __init__(self, iam: Iam, read_only: bool, *, live: bool = True) -> None:
        super().__init__(iam, read_only)
        self.live = live
        self.filter = JobFilter()
        self.targets: list[str] = []
        self.detail: JobRead | None = None
        self._timer: Timer | None = None
        self._reads = OneAtATime(lambda: self._read_jobs(self.filter))
        self._wanted_job: int | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="jobs-filter"):
            yield Label("State", classes="filter-label")
            yield Select([(s.value, s.value) for s in JobState], prompt="any",
                         compact=True, id="filter-state")
            yield Label("Target", classes="filter-label")
            yield Select([], prompt="any", compact=True, id="filter-target")
            yield Label("Name", classes="filter-label")
            yield FilterInput(placeholder="user or group", compact=True, id="filter-name")
        with Vertical(id="jobs-pane") as pane:
            pane.border_title = "Provisioning jobs"
            yield JobsTable(id="jobs")
            yield Static(id="jobs-status", markup=False)
        with VerticalScroll(id="job-detail") as detail:
            detail.border_title = "Job"
            yield Static(render_job(None), id="job-body")

    def on_mount(self) -> None:
        signal = getattr(self.app, "provisioning_signal", None)
        if signal is not None:
            signal.subscribe(self, self._attempted)
        if self.live:
            self._timer = self.set_interval(REFRESH_SECONDS, self.refresh_jobs)
        self.refresh_jobs()

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def on_screen_resume(self) -> None:
        if self._timer is not None:
            self._timer.resume()
            self.refresh_jobs()

    def _attempted(self, message: JobAttempted) -> None:
        self.refresh_jobs()
        if self.detail is not None and self.detail.job.pk == message.job.pk:
            self._read_job(message.job.pk)

    @property
    def _table(self) -> JobsTable:
        return self.query_one(JobsTable)

    # ------------------------------------------------------------------ reading
    def refresh_jobs(self) -> None:
        self._reads.request()

    @work(thread=True, exit_on_error=False, group="jobs-list",
          description="Reading the provisioning jobs")
    def _read_jobs(self, wanted: JobFilter) -> None:
        engine = self.iam.provisioning
        jobs = engine.jobs([wanted.state] if wanted.state else (), wanted.target,
                           limit=LIST_LIMIT, name_contains=wanted.name)
        self.post_message(JobsRead(wanted, jobs, [s.target for s in engine.status()]))

    @work(thread=True, exclusive=True, exit_on_error=False, group="job-detail",
          description="Reading a provisioning job")
    def _read_job(self, pk: int) -> None:
        job, attempts = self.iam.provisioning.job(pk)
        self.post_message(JobRead(job, attempts))

    @on(Worker.StateChanged)
    def _read_failed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "jobs-list" and event.state in (WorkerState.ERROR,
                                                                  WorkerState.CANCELLED):
            self._reads.done()

    @on(JobsRead)
    def _show_jobs(self, message: JobsRead) -> None:
        self._reads.done()
        if message.filter != self.filter:
            return  # the filter changed meanwhile; the read asked for since will show
        self._show_targets(message.targets)
        table = self._table
        table.show(message.jobs)
        if self._wanted_job is not None and table.select_job(self._wanted_job):
            self._wanted_job = None
        self._show_status(len(message.jobs))
        self._show_highlighted()

    def _show_targets(self, targets: list[str]) -> None:
        if targets != self.targets:
            self.targets = targets
            select: Select[str] = self.query_one("#filter-target", Select)
            with self.prevent(Select.Changed):
                select.set_options([(t, t) for t in targets])
                self._select_target(self.filter.target)

    def _show_status(self, shown: int) -> None:
        f = self.filter
        parts = [p for p in (f.state and f"state {f.state}", f.target and f"target {f.target}",
                             f.name and f"name {f.name}") if p]
        where = f" ({', '.join(parts)})" if parts else ""
        more = f", the newest {LIST_LIMIT}" if shown >= LIST_LIMIT else ""
        noun = "job" if shown == 1 else "jobs"
        self.query_one("#jobs-status", Static).update(f"{shown} {noun}{where}{more}")

    @on(DataTable.RowHighlighted, "#jobs")
    def _show_highlighted(self) -> None:
        job = self._table.highlighted
        if job is None:
            self.detail = None
            self.query_one("#job-body", Static).update(render_job(None))
        elif self.detail is None or self.detail.job != job:
            self._read_job(job.pk)

    @on(JobRead)
    def _show_job(self, message: JobRead) -> None:
        highlighted = self._table.highlighted
        if highlighted is not None and highlighted.pk != message.job.pk \
                and self._wanted_job != message.job.pk:
            return
        self.detail = message
        self.query_one("#job-body", Static).update(render_job(message.job, message.attempts))

    def show_job(self, pk: int) -> None:
        """Select job ``pk`` (from the dashboard); clears the filter when it hides the job."""
        if not self._table.select_job(pk):
            self._wanted_job = pk
            if self.filter != JobFilter():
                self.action_clear_filter()
            self._read_job(pk)

    # ------------------------------------------------------------------ filter
    def action_filter(self) -> None:
        self.query_one("#filter-name", Input).focus()

    def action_clear_filter(self) -> None:
        self.query_one("#filter-state", Select).clear()
        self.query_one("#filter-target", Select).clear()
        self.query_one("#filter-name", Input).value = ""
        self._set_filter(JobFilter())
        self._table.focus()

    def action_refresh(self) -> None:
        self.refresh_jobs()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            return self.filter != JobFilter() or self.focused is not self._table
        return True

    @on(Select.Changed, "#filter-state")
    def _state_chosen(self, event: Select.Changed) -> None:
        value = event.value if isinstance(event.value, str) else None
        self._set_filter(JobFilter(value, self.filter.target, self.filter.name))

    @on(Select.Changed, "#filter-target")
    def _target_chosen(self, event: Select.Changed) -> None:
        value = event.value if isinstance(event.value, str) else None
        self._set_filter(JobFilter(self.filter.state, value, self.filter.name))

    @on(Input.Submitted, "#filter-name")
    def _name_entered(self, event: Input.Submitted) -> None:
        self._filter_by_name(event.value)
        self._table.focus()

    @on(FilterInput.Settled, "#filter-name")
    def _name_typed(self, event: FilterInput.Settled) -> None:
        self._filter_by_name(event.value)

    def _filter_by_name(self, text: str) -> None:
        """Show the jobs whose user or group name contains what was typed so far."""
        name = text.strip() or None
        self._set_filter(JobFilter(self.filter.state, self.filter.target, name))

    def show_jobs(self, state: str | None = None, target: str | None = None) -> None:
        """Show the jobs in ``state`` at ``target`` (either may be None: any), whatever the
        filter was (the ``:jobs`` and ``:target`` jumps)."""
        self.query_one("#filter-name", Input).value = ""
        with self.prevent(Select.Changed):
            states: Select[str] = self.query_one("#filter-state", Select)
            if state is None:
                states.clear()
            else:
                states.value = state
            self._select_target(target)
        self._set_filter(JobFilter(state, target))
        self._table.focus()

    def _select_target(self, target: str | None) -> None:
        """Show ``target`` in its select when the select offers it (its options come with
        the first read; ``_show_targets`` puts the filter's target in then)."""
        select: Select[str] = self.query_one("#filter-target", Select)
        if target is not None and target in self.targets:
            select.value = target
        else:
            select.clear()

    def _set_filter(self, wanted: JobFilter) -> None:
        if wanted != self.filter:
            self.filter = wanted
            self.detail = None
            self._table.show([])
            self.query_one("#jobs-status", Static).update("Reading…")
            self.refresh_jobs()
        self.refresh_bindings()

    # ------------------------------------------------------------------ steering
    def action_retry(self) -> None:
        job = self._table.highlighted
        if job is None or self.refuse_write(f"retry job {job.pk}"):
            return
        self.confirm(f"Retry job {job.pk} now?",
                     lambda: self._retry(job.pk),
                     detail=f"{OPERATIONS[job.operation]} {job.name} at {job.target} "
                            f"(now {job.state.value}) runs again at once.",
                     action="Retry")

    def action_cancel_job(self) -> None:
        job = self._table.highlighted
        if job is None or self.refuse_write(f"cancel job {job.pk}"):
            return
        self.confirm(f"Cancel job {job.pk}?", lambda: self._cancel(job.pk),
                     detail=f"{OPERATIONS[job.operation]} {job.name} at {job.target} "
                            "will not be attempted again (retry brings it back).",
                     action="Cancel job")

    @work(thread=True, exit_on_error=False, group="jobs-steer", description="Retry")
    def _retry(self, pk: int) -> None:
        n = self.iam.provisioning.retry(CONSOLE_ADMIN, pk=pk)
        self.post_message(JobChanged(f"Job {pk} will run again now." if n else
                                     f"Job {pk} was not waiting for a retry any more."))

    @work(thread=True, exit_on_error=False, group="jobs-steer", description="Cancel")
    def _cancel(self, pk: int) -> None:
        self.iam.provisioning.cancel(CONSOLE_ADMIN, pk)
        self.post_message(JobChanged(f"Job {pk} is cancelled."))

    @on(JobChanged)
    def _changed(self, message: JobChanged) -> None:
        self.notify(message.what, title="Provisioning jobs")
        self.detail = None
        self.refresh_jobs()

    def palette_commands(self) -> Iterable[SystemCommand]:
        job = self._table.highlighted
        if job is not None:
            yield SystemCommand(f"Retry job {job.pk}", f"{job.name} at {job.target}",
                                self.action_retry)
            yield SystemCommand(f"Cancel job {job.pk}", f"{job.name} at {job.target}",
                                self.action_cancel_job)


# ---------------------------------------------------------------------- the detail pane
def render_job(job: Job | None, attempts: Sequence[Mapping[str, Any]] = ()) -> Text:
    """The job, then each attempt with its exchanges (already redacted by the connector:
    no header, every password masked); the payload's password is masked here."""
    if job is None:
        return Text("No job selected.", style="italic")
    text = Text()
    text.append(f"Job {job.pk} · {OPERATIONS[job.operation]} {job.name} → {job.target}\n",
                style="bold")
    text.append(f"state {job.state.value.upper()} · {job.attempts} attempt(s)")
    if job.state in (JobState.PENDING, JobState.RETRY):
        text.append(f" · next {clock(job.next_attempt_at)}")
    text.append(f" · application {job.application}")
    text.append(f"\ncreated {stamp(job.created)} · updated {stamp(job.updated)}")
    if job.last_error:
        text.append("\nlast error: ", style="bold")
        text.append(job.last_error)
    payload = {k: MASK if k == "password" else v for k, v in job.payload.items()}
    if payload:
        text.append("\npayload: ", style="bold")
        text.append(json.dumps(payload, sort_keys=True, default=str))
    if not attempts:
        text.append("\n\nNo attempt yet.", style="italic")
    for n, attempt in enumerate(attempts, 1):
        text.append(f"\n\nAttempt {n} · {clock(attempt['at'])} · {attempt['outcome']}",
                    style="bold")
        if attempt.get("status_code"):
            text.append(f" · HTTP {attempt['status_code']}")
        text.append(f" · {millis(attempt.get('duration_ms'))}")
        if attempt.get("error"):
            text.append(f"\n  error: {attempt['error']}")
        for exchange in attempt.get("exchanges") or ():
            text.append(f"\n  → {exchange.get('method')} {exchange.get('url')}")
            _body(text, exchange.get("request_body"))
            text.append(f"\n  ← {exchange.get('status') or 'no answer'}")
            _body(text, exchange.get("response_body"))
    return text


def _body(text: Text, body: Any) -> None:
    if body is None or body == "":
        return
    shown = body if isinstance(body, str) else json.dumps(body, indent=2, sort_keys=True,
                                                          ensure_ascii=False, default=str)
    for line in shown.splitlines():
        text.append(f"\n      {line}", style="dim")
