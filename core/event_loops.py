"""The event loop ``serve``, ``worker`` and the worker pool's own thread run on: uvloop's,
asyncio's own where uvloop is not installed (it is not on Windows)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_on_uvloop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` to its end on a new loop of :func:`new_event_loop`."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main)
