"""How the console runs engine calls, and what happens when one fails.

Engine calls run in ``@work(thread=True, exclusive=True, exit_on_error=False)`` workers of
the widget that needs the data; the worker only posts a message back. A failed worker does
not end the console: :class:`ReportsEngineErrors` turns it into an :class:`EngineFailed`
message that bubbles up to the app, which reports it in one place (``describe_error``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

from textual.message_pump import MessagePump
from textual.worker import Worker, WorkerState

from core.errors import IamError
from tui.messages import EngineFailed

log = logging.getLogger(__name__)


class ReportsEngineErrors:
    """Mixin for widgets that run engine workers (``Worker.StateChanged`` does not bubble)."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state is WorkerState.ERROR and worker.error is not None:
            node = cast(MessagePump, self)
            node.post_message(EngineFailed(worker.description or worker.name, worker.error))


def describe_error(error: BaseException) -> str:
    """What the administrator reads: the engine's own message, never a stack trace."""
    if isinstance(error, IamError):
        return error.message
    log.error("unexpected error in a console worker", exc_info=error)
    return f"unexpected {type(error).__name__} (a bug: please report it)"


class OneAtATime:
    """A live view's reads: at most one in flight; asking meanwhile runs one more after it.

    A timer and a stream of ``JobAttempted`` messages may both ask for a read; this keeps
    the engine to one query at a time per view, and the view never shows stale data for
    longer than one read.
    """

    def __init__(self, start: Callable[[], object]) -> None:
        self._start = start
        self.busy = False
        self._again = False

    def request(self) -> None:
        if self.busy:
            self._again = True
            return
        self.busy = True
        self._start()

    def done(self) -> None:
        """The read replied (or failed): run the one asked for meanwhile, if any."""
        self.busy = False
        if self._again:
            self._again = False
            self.request()
