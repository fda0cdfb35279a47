"""Messages shared across the console (widget-owned messages are nested in their widget)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class EngineFailed(Message):
    """An engine call in a worker failed; the app's single error router reports it."""

    task: str
    error: BaseException
