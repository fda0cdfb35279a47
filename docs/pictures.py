"""Make the README's pictures from the demo with activity: provisioning flowing to every
target, and the partner's directory quarantined by its outage.

    .venv/bin/python docs/pictures.py            # writes docs/console-dashboard.svg and
                                                 # docs/console-jobs.svg
    .venv/bin/python docs/pictures.py --size 100x32 --out /tmp

It runs ``mware-iam demo``'s deployment (``core.demo.deployment``, on free ports) and the
console with its own provisioning workers, through Pilot (``App.run_test``), at a terminal
size whose SVG reads on GitHub at the page's width. The activity generator is stepped by
this script on a clock of its own, so the pictures need no two-minute outage cycle: first
a few quiet ticks (users created, changed and deleted, provisioned everywhere), then the
partner's outage until its card shows quarantined (bounded by ``--seconds``). Times and
names come from the run (the generator's seed is fixed, the clock is not): the pictures
are documentation, not snapshot baselines.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from core.demo import deployment as demo
from tui.app import MwareConsole
from tui.screens.dashboard import DashboardScreen
from tui.screens.jobs import JobsScreen

DOCS = Path(__file__).resolve().parent
QUIET_TICKS = 12
#: Real seconds between two of the generator's ticks (the workers catch up in between).
PAUSE = 0.4


class StepClock:
    """The generator's clock: moved by this script, one tick at a time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def tick(pilot: Pilot[Any], generator: demo.ActivityGenerator, clock: StepClock,
               advance: bool = True) -> None:
    if advance:
        clock.now += demo.TICK_SECONDS
    await asyncio.to_thread(generator.step)
    await pilot.pause(PAUSE)


def quarantined(app: MwareConsole) -> bool:
    screen = app.screen
    if not isinstance(screen, DashboardScreen):
        return False
    card = screen.cards.get(f"{demo.FLAKY_TARGET}:scim2")
    return card is not None and card.has_class("-quarantined")


async def take(out: Path, size: tuple[int, int], seconds: float) -> list[Path]:
    with demo.demo_deployment(peer_port=None) as env:
        clock = StepClock()
        generator = demo.ActivityGenerator(env.iam, env.proxy, clock=clock, seed=1865)
        app = MwareConsole(env.iam, deployment=f"demo · peer {env.peer_url}",
                           theme="textual-dark")
        async with app.run_test(size=size) as pilot:
            await pilot.pause(1.0)
            for _ in range(QUIET_TICKS):
                await tick(pilot, generator, clock)
            clock.now = demo.OUTAGE_START  # the partner goes down, until quarantined
            loop = asyncio.get_running_loop()
            deadline = loop.time() + seconds
            while not quarantined(app):
                if loop.time() > deadline:
                    raise SystemExit(f"{demo.FLAKY_TARGET} was not quarantined within "
                                     f"{seconds:g} s")
                await tick(pilot, generator, clock, advance=False)
            await pilot.pause(1.0)
            pictures = [out / "console-dashboard.svg", out / "console-jobs.svg"]
            pictures[0].write_text(app.export_screenshot(title="MWARE IAM"))
            await pilot.press("2")
            await pilot.pause(1.0)
            assert isinstance(app.screen, JobsScreen)
            pictures[1].write_text(app.export_screenshot(title="MWARE IAM"))
            await pilot.press("q")
        generator.stop()
    return pictures


def terminal_size(text: str) -> tuple[int, int]:
    """``110x34`` -> (110, 34)."""
    columns, _, rows = text.partition("x")
    if not (columns.isdigit() and rows.isdigit() and int(columns) >= 80 and int(rows) >= 24):
        raise argparse.ArgumentTypeError(f"{text!r}: give COLUMNSxROWS, at least 80x24")
    return int(columns), int(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DOCS, help="where to write the SVGs")
    parser.add_argument("--size", type=terminal_size, default="110x34",
                        help="terminal COLUMNSxROWS (default 110x34)")
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="give up when the partner is not quarantined by then")
    args = parser.parse_args()
    if not args.out.is_dir():
        parser.error(f"--out: {args.out} is not a directory")
    for picture in asyncio.run(take(args.out, args.size, args.seconds)):
        print(picture)


if __name__ == "__main__":
    main()
