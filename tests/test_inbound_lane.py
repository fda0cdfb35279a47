"""The SCIM server's SQLite lane: calls run one after another in one thread, their results
and exceptions come back to the loop that asked, and closing finishes what was asked."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from core.inbound.lane import Lane


async def test_calls_run_in_order_in_one_thread_and_answer_their_caller() -> None:
    lane = Lane("test-lane")
    ran: list[tuple[int, str]] = []

    def work(i: int) -> int:
        time.sleep(0.01 if i == 0 else 0)  # the first is slowest: order is still kept
        ran.append((i, threading.current_thread().name))
        return i * i

    try:
        results = await asyncio.gather(*(lane.call(work, i) for i in range(5)))
    finally:
        lane.close()
    assert results == [0, 1, 4, 9, 16]
    assert ran == [(i, "test-lane") for i in range(5)]


async def test_an_exception_reaches_the_caller_and_the_lane_goes_on() -> None:
    lane = Lane("test-lane")

    def fail() -> None:
        raise ValueError("bad input at row 3")

    try:
        with pytest.raises(ValueError, match="bad input at row 3"):
            await lane.call(fail)
        assert await lane.call(len, "abc") == 3
    finally:
        lane.close()


async def test_close_finishes_the_calls_already_made() -> None:
    lane = Lane("test-lane")
    started = threading.Event()
    done: list[int] = []

    def slow(i: int) -> None:
        started.set()
        time.sleep(0.05)
        done.append(i)

    futures = [lane.call(slow, i) for i in range(3)]
    await asyncio.to_thread(started.wait, 5)
    await asyncio.to_thread(lane.close)
    assert done == [0, 1, 2]
    assert await asyncio.wait_for(asyncio.gather(*futures), 5) == [None, None, None]


async def test_threads_of_one_lane_go_on_beside_a_slow_call() -> None:
    """The server lane's threads share one queue: a call that waits holds its own thread,
    and the calls made after it are served meanwhile by the others."""
    lane = Lane("test-lane", threads=3)
    release = threading.Event()
    names: set[str] = set()

    def slow() -> str:
        release.wait(10)
        return "slow"

    def quick(i: int) -> int:
        names.add(threading.current_thread().name)
        return i

    try:
        held = lane.call(slow)
        assert await asyncio.wait_for(asyncio.gather(*(lane.call(quick, i)
                                                       for i in range(6))), 5) == list(range(6))
        assert not held.done()  # the quick ones did not wait for it
        assert names <= {"test-lane-1", "test-lane-2", "test-lane-3"}
        release.set()
        assert await asyncio.wait_for(held, 5) == "slow"
    finally:
        release.set()
        await asyncio.to_thread(lane.close)
    assert not [t for t in threading.enumerate() if t.name.startswith("test-lane")]


def test_a_lane_without_threads_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one thread, not 0"):
        Lane("test-lane", threads=0)
