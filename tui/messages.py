"""Messages shared across the console (widget-owned messages are nested in their widget)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from core.provisioning.outbox import Job, JobState


@dataclass
class EngineFailed(Message):
    """An engine call in a worker failed; the app's single error router reports it."""

    task: str
    error: BaseException


@dataclass
class JobAttempted(Message):
    """The console's own provisioning workers finished an attempt of ``job``.

    Posted from the pool's listener (``post_message`` is safe from any thread); the app
    publishes it on ``app.provisioning_signal`` to the live screens.
    """

    job: Job
    state: JobState
