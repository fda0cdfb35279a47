"""The console: start to first frame, and the Users screen with 1,000,000 users.

Targets (console issue):

1. Start to first frame of ``mware-iam``'s console divided by the same for a bare Textual
   "hello" app, measured in one run: at most 1.5. Each is a fresh Python process that runs
   the app headless and prints the seconds since the parent spawned it at its first
   refresh (interpreter start, imports, first frame), then exits. The console is started as
   ``mware-iam tui`` starts it: the deployment is opened by a thread after the first frame;
   the time until the dashboard shows the deployment's status is reported too (no target).
   Both kinds alternate ``--starts`` times and the medians are compared.
2. The Users screen with 1,000,000 users in PRIMARY against 10,000: time to the first page
   and to page down (``end``: the next page) at most 1.5 times; resident memory at most 1.3
   times. Each measurement is a fresh process that drives the real console through Pilot
   (``App.run_test``) on the store and reports its times and peak RSS; the two stores
   alternate ``--repeat`` times and the medians are compared. The stores are the ones
   ``bench/list_users.py`` builds and caches in ``bench/.data/`` (bare Core inserts).

    .venv/bin/python bench/console.py                        # the issue's sizes
    .venv/bin/python bench/console.py --large 100000 --starts 5 --repeat 3   # quick run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HELLO = """
import sys, time
from textual.app import App
from textual.widgets import Static

class Hello(App[None]):
    def compose(self):
        yield Static("Hello")

    def on_mount(self) -> None:
        self.call_after_refresh(self.first_frame)

    def first_frame(self) -> None:
        print(time.time() - float(sys.argv[1]))
        self.exit()

Hello().run(headless=True)
"""

#: Seconds a child may take before the run is declared hung.
CHILD_TIMEOUT = 300


# ---------------------------------------------------------------------- children
def child_console(home: str, until_data: bool, spawned: float) -> None:
    """The console as ``mware-iam tui`` runs it (the deployment opened by a function the
    console calls after its first frame), exiting after its first frame, or with
    ``until_data`` once the dashboard shows the deployment's status."""
    from tui.app import MwareConsole

    opened: list[Any] = []

    def open_deployment() -> Any:
        from core.iam import Iam

        opened.append(Iam.open(home=home))
        return opened[0]

    class FirstFrame(MwareConsole):
        def on_mount(self) -> None:  # Textual runs MwareConsole.on_mount as well
            if not until_data:
                self.call_after_refresh(self.first_frame)

        def on_status_read(self) -> None:  # the dashboard's StatusRead bubbles up here
            if until_data:
                self.call_after_refresh(self.first_frame)

        def first_frame(self) -> None:
            print(time.time() - spawned, flush=True)
            self.exit()

    FirstFrame(open_deployment).run(headless=True)
    for iam in opened:
        iam.close()


def child_users(home: str) -> None:
    """Open the Users screen on ``home`` through Pilot; print its times and peak RSS."""
    from core.iam import Iam
    from tui.app import MwareConsole
    from tui.widgets.users_table import UsersTable

    async def drive() -> dict[str, float]:
        with Iam.open(home=home) as iam:
            app = MwareConsole(iam, workers=False, live=False, screen="users")
            started = time.perf_counter()
            async with app.run_test(size=(120, 40)) as pilot:
                table = app.screen.query_one(UsersTable)
                await until(pilot, lambda: table.row_count and not table.loading_page)
                first_page = time.perf_counter() - started
                rows = table.row_count
                table.focus()
                started = time.perf_counter()
                await pilot.press("end")
                await until(pilot, lambda: table.row_count > rows and not table.loading_page)
                page_down = time.perf_counter() - started
                await pilot.press("q")
        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"first_page": first_page, "page_down": page_down, "rss_mib": rss_kib / 1024}

    print(json.dumps(asyncio.run(drive())))


async def until(pilot: Any, condition: Any, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("the console did not get there in time")
        await pilot.pause(0.001)


# ---------------------------------------------------------------------- parent
def spawn(args: list[str]) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=CHILD_TIMEOUT,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0 or done.stderr.strip():
        raise SystemExit(f"{args[1:4]} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def to_frame(args: list[str]) -> float:
    """Seconds from spawning ``args`` to its first frame (the child prints it: the wall
    clock is shared; a console may take longer to exit, waiting for its opening thread)."""
    return float(spawn([*args, repr(time.time())]))


def first_frame(starts: int, home: Path) -> dict[str, list[float]]:
    """Seconds from spawn to exit: hello, the console's first frame, and the console once
    its dashboard shows data (informational); alternating, after one warm-up of each."""
    me = [sys.executable, __file__, "--child"]
    commands = {"hello": [sys.executable, "-c", HELLO],
                "console": [*me, "console", str(home)],
                "data": [*me, "data", str(home)]}
    for command in commands.values():
        to_frame(command)
    seconds: dict[str, list[float]] = {kind: [] for kind in commands}
    for _ in range(starts):
        for kind, command in commands.items():
            seconds[kind].append(to_frame(command))
    return seconds


def users_screen(repeat: int, small: Path, large: Path) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {"small": {}, "large": {}}
    for _ in range(repeat):
        for size, home in (("small", small), ("large", large)):
            out = spawn([sys.executable, __file__, "--child", "users", str(home), "0"])
            for key, value in json.loads(out).items():
                results[size].setdefault(key, []).append(value)
    return results


def seeded_home(work: Path) -> Path:
    """A deployment as a first ``mware-iam tui`` leaves it (seeded from sample_config/)."""
    from core.configfile import seed_sample
    from core.iam import Iam
    from core.identity.events import Face, Initiator

    home = work / "home"
    with Iam.open(home=str(home)) as iam:
        seed_sample(iam, Initiator.admin(Face.CONFIG))
    return home


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--starts", type=int, default=15, help="starts of each app, alternating")
    ap.add_argument("--small", type=int, default=10_000, help="users in the small store")
    ap.add_argument("--large", type=int, default=1_000_000, help="users in the large store")
    ap.add_argument("--repeat", type=int, default=5, help="Users-screen runs per store")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached stores")
    ap.add_argument("--child", nargs=3, metavar=("KIND", "HOME", "SPAWNED"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, home, spawned = args.child
        if kind == "users":
            child_users(home)
        else:
            child_console(home, until_data=kind == "data", spawned=float(spawned))
        return
    # Imported here, not at the top: a child process must start with nothing but what the
    # app it times imports (these two bring SQLAlchemy and the engine).
    from common import machine_facts, median, table
    from list_users import deployment


    print(machine_facts())
    with tempfile.TemporaryDirectory() as work:
        starts = first_frame(args.starts, seeded_home(Path(work)))
    hello = median(starts["hello"])
    print(f"\nStart to first frame, {args.starts} starts each (seconds from spawning the "
          "process):")
    labels = {"hello": "bare Textual hello (first frame)",
              "console": "mware-iam console (first frame)",
              "data": "mware-iam console (dashboard shows the status; no target)"}
    print(table(["app", "median s", "min s", "max s", "/ hello"], [
        [labels[kind], f"{median(v):.3f}", f"{min(v):.3f}", f"{max(v):.3f}",
         f"{median(v) / hello:.2f}"] for kind, v in starts.items()]))
    ratio = median(starts["console"]) / hello
    print(f"ratio console / hello = {ratio:.2f} (target <= 1.5): "
          f"{'PASS' if ratio <= 1.5 else 'FAIL'}")

    small = deployment(args.small, args.rebuild)
    large = deployment(args.large, args.rebuild)
    results = users_screen(args.repeat, small, large)
    print(f"\nUsers screen, {args.large:,} vs {args.small:,} users, {args.repeat} runs each "
          "(medians):")
    rows = []
    for key, label, unit, target in (("first_page", "first page", "s", 1.5),
                                     ("page_down", "page down (next page)", "s", 1.5),
                                     ("rss_mib", "peak resident memory", "MiB", 1.3)):
        s, big = median(results["small"][key]), median(results["large"][key])
        rows.append([label, f"{s:.3f} {unit}", f"{big:.3f} {unit}", f"{big / s:.2f}",
                     f"<= {target}", "PASS" if big / s <= target else "FAIL"])
    print(table(["measure", f"{args.small:,} users", f"{args.large:,} users", "ratio",
                 "target", ""], rows))


if __name__ == "__main__":
    main()
