"""Engine calls from a screen: run in a thread worker, answered by a message.

``call_engine(task, call, then)`` runs ``call`` in a ``thread=True, exclusive=True,
exit_on_error=False`` worker of the node; the worker only posts :class:`EngineReplied`
back (unless a newer call of its group superseded it), and ``then(result)`` runs on the
event loop when that message arrives. A failure becomes an ``EngineFailed`` message
through :class:`tui.engine_errors.ReportsEngineErrors` (titled with ``task``), so the app
reports it in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from textual.message import Message
from textual.widget import Widget
from textual.worker import Worker, get_current_worker

T = TypeVar("T")


@dataclass
class EngineReplied(Message):
    """What an engine call returned, and who wants it."""

    then: Callable[[Any], None]
    result: Any


class CallsEngine:
    """Mixin for screens and widgets (put it after ``ReportsEngineErrors`` in the bases)."""

    def call_engine(self, task: str, call: Callable[[], T], then: Callable[[T], None],
                    group: str | None = None) -> Worker[None]:
        """Run ``call`` off the event loop; ``group`` (default: ``task``) is exclusive, so a
        newer call of the same group supersedes an older one: the older one's answer is
        dropped (a thread cannot be stopped, but a cancelled worker posts nothing)."""
        node = cast(Widget, self)

        def work() -> None:
            result = call()
            if not get_current_worker().is_cancelled:
                node.post_message(EngineReplied(cast(Callable[[Any], None], then), result))

        return node.run_worker(work, name=task, group=group or task, description=task,
                               exit_on_error=False, exclusive=True, thread=True)

    def on_engine_replied(self, message: EngineReplied) -> None:
        message.stop()
        message.then(message.result)
