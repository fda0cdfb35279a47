"""The console: start to first frame, and the Users screen with 1,000,000 users.

Targets (console issue):

1. Start to first frame of ``mware-iam``'s console divided by the same for a bare Textual
   "hello" app, measured in one run: at most 1.5. Both are started the way an administrator
   starts them, each as a fresh process on a pseudo-terminal (80x24, ``TERM=xterm-256color``)
   that this script reads: the console as ``mware-iam --home HOME tui`` through the
   installed console script (the real CLI, workers on as by default, on a SQLite home seeded
   from ``sample_config/`` as a first start leaves it), the hello app as ``python hello.py``.
   A start's time runs from spawning the process to the moment the terminal receives the
   first frame's text ("Opening the deployment", "Hello"); then the app is told to quit with
   its key and waited for. The time until the console's dashboard shows the deployment's
   provisioning status ("Queue depth") is reported too (no target). The two alternate
   ``--starts`` times after one warm-up each, and the medians are compared.
2. The Users screen with 1,000,000 users in PRIMARY against 10,000: time to the first page
   and to page down (``end``: the next page) at most 1.5 times; resident memory at most 1.3
   times. Each measurement is a fresh process that drives the real console through Pilot
   (``App.run_test``) on the store and reports its times and peak RSS; the two stores
   alternate ``--repeat`` times and the medians are compared. The stores are the ones
   ``bench/list_users.py`` builds and caches in ``bench/.data/`` (bare Core inserts).

    .venv/bin/python bench/console.py                        # the issue's sizes
    .venv/bin/python bench/console.py --large 100000 --starts 5 --repeat 3   # quick run
    .venv/bin/python bench/console.py --starts 15 --skip-users   # start time only
    .venv/bin/python bench/console.py --starts 7 --ssh-only      # SSH vs local first frame

3. (issue 18) An SSH session's first frame at most 2 times the local console's start: a
   ``mware-iam ssh-serve`` process on the same seeded home, one operator; a session's time
   runs from opening the TCP connection (handshake, public-key login, PTY, the session's
   own console process) to its first frame's text arriving at asyncssh's client; the local
   console is ``mware-iam tui`` as in 1. The two alternate after one warm-up each.
4. (issue 18) 8 concurrent SSH sessions on the Users screen of 1,000,000 users keep a
   keypress-to-frame time at most 2 times one session's (``--ssh-sessions 1000000``).
   Each session (its own console process under one ``ssh-serve``) opens the Users screen,
   then presses the down arrow ``--presses`` times, one press every ``--interval``
   seconds (0.2: five keys a second, a brisk human pace), in step or ``--stagger``-ed; a
   press is timed to the first bytes of the next frame at asyncssh's client, and the rest
   of that press's drawing is read before the next press. ``--rounds`` rounds of one
   session then eight, medians compared per round. CPU per press: the CPU seconds of the
   sessions' console processes (and of ``ssh-serve``) while pressing, less what they use
   idle over as long (measured just before), divided by the presses.

    .venv/bin/python bench/console.py --ssh-sessions 1000000 --rounds 3

5. (issue 18, no target) A held down arrow on the Users screen of USERS users, the way an
   operator scrolls a long list (``--held-key USERS``): the CPU the console spends per
   press, and how often its detail pane reads a user's roles while the key is held. Each
   run is a fresh process that drives the real console through Pilot (120x40, no workers,
   no timers), waits for the first page and for the detail pane to show the first user,
   then presses ``down`` ``--held-presses`` times (60) at ``--rate`` presses a second (30,
   a terminal's key repeat), paced against the first press's time, and waits until the
   pane shows the user the cursor rests on. A key is posted to the app as the terminal
   driver posts it, without ``Pilot.press``'s wait for the app to go idle after each (it
   allows some 11 presses a second): keys the console has not handled yet queue, as they
   do behind a terminal. CPU is the process's own (every thread: the roles are read in a
   worker thread) from the first press to that moment, divided by the presses; the roles
   reads are the calls of ``iam.identity.roles_of``, which the pane's ``_fetch_roles``
   makes, counted in that process. Frames (``App._display`` with something to show) and
   layouts of the screen are counted too. Headless: the frames are composed but not
   encoded for a terminal, so a real terminal's console spends somewhat more per press.
   ``--repeat`` runs; medians. ``--held-screen roles`` or ``audit`` holds the key on that
   screen of the sample deployment instead (its short list scrolled down, then back up):
   the members reads there are the calls of ``iam.identity.member_page``, and the screen
   is at rest when no worker of the console is left to run.

    .venv/bin/python bench/console.py --held-key 1000000 --repeat 5
    .venv/bin/python bench/console.py --held-screen roles --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import pty
import random
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HELLO = """\
from textual.app import App
from textual.widgets import Static


class Hello(App[None]):
    def compose(self):
        yield Static("Hello")


Hello().run()
"""

#: Seconds a child may take before the run is declared hung.
CHILD_TIMEOUT = 300
#: The terminal the apps start on.
ROWS, COLUMNS = 24, 80


@dataclass(frozen=True)
class Start:
    """How to start one app on a terminal, what on screen means it has drawn, how to quit."""

    argv: list[str]
    marks: dict[str, bytes]  # measure -> text whose arrival on the terminal ends it
    quit_key: bytes


def on_terminal(start: Start) -> dict[str, float]:
    """Spawn ``start.argv`` on a new pseudo-terminal; seconds from spawning to each mark's
    arrival in what the app writes to the terminal. Quits the app once every mark has come
    and waits for it to exit."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTUAL")}
    env.update(TERM="xterm-256color", COLORTERM="truecolor")
    spawned = time.perf_counter()
    child = subprocess.Popen(start.argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                             start_new_session=True, close_fds=True)
    os.close(slave)
    seen, arrived, quitting = b"", {}, False
    deadline = time.monotonic() + CHILD_TIMEOUT
    try:
        while True:
            if time.monotonic() > deadline:
                raise SystemExit(f"{start.argv} hung; it wrote: {seen[-2000:]!r}")
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if child.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # EIO: the child closed the terminal (it exited)
                break
            now = time.perf_counter()
            # keep what a mark split across two reads needs; the rest is done with
            seen = seen[-256:] + chunk
            for measure, mark in start.marks.items():
                if measure not in arrived and mark in seen:
                    arrived[measure] = now - spawned
            if not quitting and len(arrived) == len(start.marks):
                os.write(master, start.quit_key)
                quitting = True
    finally:
        os.close(master)
        try:
            code = child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            code = child.wait()
    missing = set(start.marks) - set(arrived)
    if missing or code != 0:
        raise SystemExit(f"{start.argv} exited {code} without {sorted(missing)}; "
                         f"it wrote: {seen[-2000:]!r}")
    return arrived


def first_frames(starts: int, home: Path, work: Path) -> dict[str, list[float]]:
    """Seconds from spawn: hello's first frame, the console's first frame, and the console
    once its dashboard shows data (informational); alternating, after one warm-up each."""
    hello = work / "hello.py"
    hello.write_text(HELLO)
    mware_iam = Path(sys.executable).with_name("mware-iam")  # the installed console script
    if not mware_iam.exists():
        raise SystemExit(f"{mware_iam} is missing: pip install -e . in this venv")
    apps = [Start([sys.executable, str(hello)], {"hello": b"Hello"}, b"\x11"),  # ctrl+q
            Start([str(mware_iam), "--home", str(home), "tui"],
                  {"console": b"Opening the deployment", "data": b"Queue depth"}, b"q")]
    for app in apps:
        on_terminal(app)
    seconds: dict[str, list[float]] = {"hello": [], "console": [], "data": []}
    for _ in range(starts):
        for app in apps:
            for measure, value in on_terminal(app).items():
                seconds[measure].append(value)
    return seconds


@contextlib.contextmanager
def ssh_server(home: Path, work: Path) -> Iterator[tuple[int, Any, int]]:
    """A ``mware-iam ssh-serve`` on ``home`` with one operator; its port, the key and the
    server's pid."""
    import asyncssh

    mware_iam = Path(sys.executable).with_name("mware-iam")
    key = asyncssh.generate_private_key("ssh-ed25519")
    public = key.export_public_key().decode().strip()
    subprocess.run([str(mware_iam), "--home", str(home), "operator", "remove", "bench"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run([str(mware_iam), "--home", str(home), "operator", "add", "bench",
                    "--key", public], check=True, stdout=subprocess.DEVNULL)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (work / "ssh-serve.log").open("wb")
    server = subprocess.Popen([str(mware_iam), "--home", str(home), "ssh-serve", "--port",
                               str(port), "--max-sessions", "32"], stdout=log, stderr=log,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:  # until the server listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit((work / "ssh-serve.log").read_text()) from None
                time.sleep(0.1)
        yield port, key, server.pid
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


async def _read_until(process: Any, marks: tuple[bytes, ...], seen: bytes = b"") -> bytes:
    while not any(m in seen for m in marks):
        chunk = await asyncio.wait_for(process.stdout.read(1 << 16), CHILD_TIMEOUT)
        if not chunk:
            raise SystemExit(f"the SSH session ended: {seen[-2000:]!r}")
        seen = seen[-256:] + chunk
    return seen


def ssh_first_frames(starts: int, home: Path, work: Path) -> dict[str, list[float]]:
    """Seconds to the first frame: the local console and an SSH session, alternating."""
    import asyncssh

    mware_iam = Path(sys.executable).with_name("mware-iam")
    local = Start([str(mware_iam), "--home", str(home), "tui"],
                  {"local": b"Opening the deployment"}, b"q")
    with ssh_server(home, work) as (port, key, _server):

        async def session() -> float:
            started = time.perf_counter()
            async with asyncssh.connect("127.0.0.1", port, username="bench",
                                        client_keys=[key], known_hosts=None,
                                        agent_path=None) as conn:
                process = await conn.create_process(term_type="xterm-256color",
                                                    term_size=(COLUMNS, ROWS), encoding=None)
                await _read_until(process, (b"Opening the deployment", b"MWARE IAM"))
                took = time.perf_counter() - started
                process.stdin.write(b"q")
                await asyncio.wait_for(process.wait_closed(), CHILD_TIMEOUT)
            return took

        on_terminal(local)
        asyncio.run(session())
        seconds: dict[str, list[float]] = {"local": [], "ssh": []}
        for _ in range(starts):
            seconds["local"].append(on_terminal(local)["local"])
            seconds["ssh"].append(asyncio.run(session()))
        return seconds


@dataclass
class Presses:
    """One run of ``n`` sessions: each press's time to the next frame, and CPU seconds of
    the sessions' consoles and of the server while pressing and while idle as long."""

    seconds: list[float]
    presses: int
    window: float
    consoles_cpu: float
    server_cpu: float
    idle_consoles_cpu: float
    idle_server_cpu: float


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a session's console is ssh-serve's child)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _cpu(server: int, consoles: list[int]) -> tuple[float, float]:
    from common import process_cpu

    return sum(process_cpu(p) for p in consoles), process_cpu(server)


def ssh_keypresses(home: Path, work: Path, counts: tuple[int, ...], rounds: int,
                   presses: int, interval: float, stagger: bool) -> dict[int, list[Presses]]:
    """Keypress (down arrow) to the first bytes of the next frame on the Users screen, for
    ``n`` concurrent SSH sessions each pressing every ``interval`` seconds; every session's
    times pooled per ``n``, with the CPU the consoles and the server used per press (less
    what they use idle over as long). Without ``stagger`` the sessions press in step (the
    worst case: n frames at once on the machine's cores); with it each starts at a random
    moment of the first interval."""
    import asyncssh

    async def one(port: int, key: Any, start: asyncio.Event, ready: list[int],
                  finished: list[int], leave: asyncio.Event, out: list[float]) -> None:
        async with asyncssh.connect("127.0.0.1", port, username="bench", client_keys=[key],
                                    known_hosts=None, agent_path=None) as conn:
            process = await conn.create_process(term_type="xterm-256color",
                                                term_size=(COLUMNS, ROWS), encoding=None)
            await _read_until(process, (b"Queue depth",))
            process.stdin.write(b"3")
            await _read_until(process, (b"Username",))
            await asyncio.sleep(2)
            await _drain(process, 0.5)  # what is left of the screen's drawing
            ready.append(1)
            await start.wait()
            if stagger:  # operators do not press in step: each starts at its own moment
                await asyncio.sleep(random.uniform(0, interval))
            for _ in range(presses):
                pressed = time.perf_counter()
                process.stdin.write(b"\x1b[B")
                await asyncio.wait_for(process.stdout.read(1 << 16), CHILD_TIMEOUT)
                out.append(time.perf_counter() - pressed)
                # the rest of this press's drawing, up to the next press
                await _drain(process, pressed + interval - time.perf_counter(), until=True)
            finished.append(1)
            await leave.wait()
            process.stdin.write(b"q")

    async def run(port: int, key: Any, server: int, n: int) -> Presses:
        out: list[float] = []
        ready: list[int] = []
        finished: list[int] = []
        start, leave = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(one(port, key, start, ready, finished, leave, out))
                 for _ in range(n)]
        while len(ready) < n:  # every session on the Users screen, then all press at once
            await asyncio.sleep(0.2)
        consoles = _children(server)
        window = presses * interval
        idle0 = _cpu(server, consoles)
        await asyncio.sleep(window)  # idle as long as the presses take: the baseline
        idle1 = _cpu(server, consoles)
        began = time.perf_counter()
        start.set()
        while len(finished) < n:
            await asyncio.sleep(0.05)
        took = time.perf_counter() - began
        busy1 = _cpu(server, consoles)
        leave.set()
        await asyncio.gather(*tasks)
        scale = window / took  # the idle baseline over the pressing window's length
        return Presses(out, n * presses, took, busy1[0] - idle1[0], busy1[1] - idle1[1],
                       (idle1[0] - idle0[0]) / scale, (idle1[1] - idle0[1]) / scale)

    runs: dict[int, list[Presses]] = {n: [] for n in counts}
    with ssh_server(home, work) as (port, key, server):
        for _ in range(rounds):  # the counts alternate, so load drifts touch them alike
            for n in counts:
                runs[n].append(asyncio.run(run(port, key, server, n)))
    return runs


async def _drain(process: Any, seconds: float, until: bool = False) -> None:
    """Read what the session sends: until ``seconds`` pass with nothing (or, ``until``,
    until ``seconds`` have passed)."""
    deadline = time.perf_counter() + seconds
    while (left := deadline - time.perf_counter()) > 0:
        try:
            await asyncio.wait_for(process.stdout.read(1 << 16), left if until else seconds)
        except TimeoutError:
            if not until:
                return


# ---------------------------------------------------------------------- children
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


def child_held(home: str, presses: int, rate: float, screen: str) -> None:
    """Hold the down arrow on a list screen of ``home`` through Pilot: ``presses`` presses
    at ``rate`` a second (back up once the list's end is reached); print the CPU and wall
    seconds from the first press until the screen shows what the cursor rests on, and what
    was read and drawn meanwhile."""
    from core.iam import Iam
    from tui.app import MwareConsole

    async def drive() -> dict[str, float]:
        with Iam.open(home=home) as iam:
            reads = counted(iam.identity, "roles_of")  # what UserDetail._fetch_roles calls
            reads_members = counted(iam.identity, "member_page")  # the Roles screen's
            app = MwareConsole(iam, workers=False, live=False, screen=screen)
            async with app.run_test(size=(120, 40)) as pilot:
                table, at_rest = await opened_list(pilot, app, screen)
                frames = counted(app, "_display", lambda _screen, update: update is not None)
                layouts = counted(app.screen, "_refresh_layout")
                reads.clear()
                reads_members.clear()
                # a short list is scrolled down, then back up; Users loads a page more at its end
                turn = presses if screen == "users" else table.row_count - 1
                wall, cpu = time.perf_counter(), time.process_time()
                for i in range(presses):
                    # against the first press's time, so a slow press does not slow the rate
                    await asyncio.sleep(max(0.0, wall + i / rate - time.perf_counter()))
                    press(app, "down" if (i // turn) % 2 == 0 else "up")
                await pilot.pause()  # every key posted is handled
                await until(pilot, at_rest)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                row = table.cursor_row
                await pilot.press("q")
        return {"presses": presses, "cpu_ms_per_press": cpu / presses * 1e3,
                "reads": len(reads) + len(reads_members), "frames": len(frames),
                "layouts": len(layouts), "wall_s": wall, "row": row}

    print(json.dumps(asyncio.run(drive())))


async def opened_list(pilot: Any, app: Any, screen: str) -> tuple[Any, Any]:
    """The screen's list once it shows what its cursor rests on, focused, and the test of
    that: on Users, the detail pane showing the highlighted user with its roles; elsewhere,
    no worker of the console left to run (the Roles screen reads members in one)."""
    from textual.widgets import DataTable
    from textual.worker import WorkerState

    from tui.widgets.user_detail import UserDetail
    from tui.widgets.users_table import UsersTable

    if screen == "users":
        table = app.screen.query_one(UsersTable)
        detail = app.screen.query_one(UserDetail)
        await until(pilot, lambda: table.row_count and not table.loading_page)
        table.focus()

        def at_rest() -> bool:
            return shows_highlighted(table, detail)
    else:
        await until(pilot, lambda: isinstance(app.screen.focused, DataTable)
                    and app.screen.focused.row_count >= 2)
        table = app.screen.focused

        def at_rest() -> bool:
            return not any(w.state in (WorkerState.PENDING, WorkerState.RUNNING)
                           for w in app.workers)
    await until(pilot, at_rest)
    await pilot.pause()
    return table, at_rest


def press(app: Any, key: str) -> None:
    """Post ``key`` to ``app`` as its terminal driver does, and return: ``Pilot.press``
    waits for the app to go idle after each key (at least two 20 ms samples of its CPU),
    which holds a key to some 11 presses a second here, and a terminal repeating a held
    key does not wait."""
    from textual import events

    event = events.Key(key, None)
    event.set_sender(app)
    app.post_message(event)


def counted(owner: Any, name: str, counts: Any = None) -> list[int]:
    """Wrap ``owner.name`` (on this instance only) to note each call, or each call for
    which ``counts(*args)`` is true, in the list returned (appends are atomic: the roles
    are read in a worker thread)."""
    calls: list[int] = []
    method = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if counts is None or counts(*args, **kwargs):
            calls.append(1)
        return method(*args, **kwargs)

    setattr(owner, name, wrapper)
    return calls


def shows_highlighted(table: Any, detail: Any) -> bool:
    """Whether the detail pane shows the highlighted user with its roles, and no page is
    loading (the pane's own ``user`` changes before its roles are read and drawn)."""
    from textual.widgets import Static

    user = table.highlighted_user
    if user is None or table.loading_page or detail.user != user:
        return False
    shown = detail.query_one("#detail-body", Static).content
    text = getattr(shown, "plain", str(shown))
    return text.startswith(f"{user.qualified_name}\n") and "\nRoles (" in text


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


def users_screen(repeat: int, small: Path, large: Path) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {"small": {}, "large": {}}
    for _ in range(repeat):
        for size, home in (("small", small), ("large", large)):
            out = spawn([sys.executable, __file__, "--child", str(home)])
            for key, value in json.loads(out).items():
                results[size].setdefault(key, []).append(value)
    return results


def held_key(repeat: int, home: Path, presses: int, rate: float,
             screen: str) -> list[dict[str, float]]:
    """``repeat`` runs of a held down arrow on a list screen, each a fresh process."""
    return [json.loads(spawn([sys.executable, __file__, "--child-held", str(home),
                              "--held-presses", str(presses), "--rate", str(rate),
                              "--held-screen", screen]))
            for _ in range(repeat)]


def report_held_key(runs: list[dict[str, float]], args: argparse.Namespace,
                    what: str) -> None:
    """``what``: the screen and its deployment, as the table's title says them."""
    from common import REPORT_ONLY, median, record, table

    print(f"\n{what}, the down arrow held: {args.held_presses} presses at {args.rate:g} a "
          f"second (Pilot, 120x40, headless); {len(runs)} runs, each a fresh process. CPU: "
          "the console process's, from the first press until the screen shows what the "
          "cursor rests on. Reads: of a user's roles (Users) or a role's members (Roles).")
    columns = ("presses", "cpu_ms_per_press", "reads", "frames", "layouts", "wall_s")
    rows = [[str(i), str(r["presses"]), f"{r['cpu_ms_per_press']:.1f}", str(r["reads"]),
             str(r["frames"]), str(r["layouts"]), f"{r['wall_s']:.2f}", str(r["row"])]
            for i, r in enumerate(runs, 1)]
    medians = {c: median([r[c] for r in runs]) for c in columns}
    rows.append(["median", f"{medians['presses']:g}", f"{medians['cpu_ms_per_press']:.1f}",
                 f"{medians['reads']:g}", f"{medians['frames']:g}",
                 f"{medians['layouts']:g}", f"{medians['wall_s']:.2f}", ""])
    print(table(["run", "presses", "CPU ms/press", "reads", "frames", "layouts",
                 "wall s", "cursor row"], rows))
    part = "held-key" if args.held_screen == "users" else f"held-key-{args.held_screen}"
    record(__file__, "18", f"held down arrow on the {what}: console CPU ms per press",
           [r["cpu_ms_per_press"] for r in runs], REPORT_ONLY,
           f"{args.held_presses} presses at {args.rate:g}/s; read {medians['reads']:g} "
           "times (median)", part=part)


def report_keypresses(runs: dict[int, list[Presses]], args: argparse.Namespace) -> None:
    from common import median, record, table

    print(f"\nUsers screen of {args.ssh_sessions:,} users, down arrow to the next frame's "
          f"first bytes; each session presses {args.presses} times, one press every "
          f"{args.interval * 1e3:.0f} ms, {'staggered' if args.stagger else 'in step'}; "
          f"{args.rounds} rounds. CPU per press: the consoles' (and the server's) CPU while "
          "pressing, less what they use idle over as long, per press.")
    rows = []
    for n, rounds in runs.items():
        for i, r in enumerate(rounds, 1):
            v = sorted(r.seconds)
            rows.append([str(n), str(i), str(len(v)), f"{median(v) * 1e3:.1f}",
                         f"{v[int(len(v) * 0.9)] * 1e3:.1f}", f"{v[-1] * 1e3:.1f}",
                         f"{r.consoles_cpu / r.presses * 1e3:.1f}",
                         f"{r.server_cpu / r.presses * 1e3:.2f}",
                         f"{r.idle_consoles_cpu / n / r.window * 1e3:.1f}",
                         f"{r.presses / r.window:.1f}"])
    print(table(["sessions", "round", "presses", "median ms", "p90 ms", "max ms",
                 "console CPU ms/press", "server CPU ms/press",
                 "idle console CPU ms/s each", "presses/s"], rows))
    ratios = [median(eight.seconds) / median(one.seconds)
              for one, eight in zip(runs[1], runs[8], strict=True)]
    ratio = median(ratios)
    print(f"ratio 8 sessions / 1 per round: {', '.join(f'{x:.2f}' for x in ratios)}; "
          f"median {ratio:.2f} (target <= 2): {'PASS' if ratio <= 2 else 'FAIL'}")
    record(__file__, "18", f"8 SSH sessions on the Users screen ({args.ssh_sessions:,} "
           "users): keypress to frame / one session", ratios, "<= 2",
           "staggered" if args.stagger else "in step", part="ssh-sessions")


def seeded_home(work: Path) -> Path:
    """A deployment as a first ``mware-iam tui`` leaves it (seeded from sample_config/)."""
    from core.configfile.files import seed_sample
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
    ap.add_argument("--repeat", type=int, default=5,
                    help="Users-screen runs per store (with --held-key: runs)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached stores")
    ap.add_argument("--skip-users", action="store_true", help="measure the start only")
    ap.add_argument("--ssh-only", action="store_true",
                    help="measure an SSH session's first frame against the local console only")
    ap.add_argument("--ssh-sessions", type=int, metavar="USERS",
                    help="measure keypress to frame on the Users screen of USERS users: one "
                         "SSH session, then 8 at once")
    ap.add_argument("--stagger", action="store_true",
                    help="with --ssh-sessions: the sessions press at their own moments")
    ap.add_argument("--rounds", type=int, default=3,
                    help="with --ssh-sessions: rounds of one session then eight")
    ap.add_argument("--presses", type=int, default=20,
                    help="with --ssh-sessions: presses per session per round")
    ap.add_argument("--interval", type=float, default=0.2,
                    help="with --ssh-sessions: seconds between a session's presses (0.2: "
                         "five keys a second, a brisk human pace)")
    ap.add_argument("--held-key", type=int, metavar="USERS",
                    help="measure a held down arrow on the Users screen of USERS users: CPU "
                         "per press and the detail pane's roles reads, --repeat runs")
    ap.add_argument("--held-presses", type=int, default=60,
                    help="with --held-key: presses per run")
    ap.add_argument("--rate", type=float, default=30.0,
                    help="with --held-key: presses a second (30: a terminal's key repeat)")
    ap.add_argument("--child", metavar="HOME", help=argparse.SUPPRESS)
    ap.add_argument("--held-screen", choices=("users", "roles", "audit"), default="users",
                    help="the screen whose list the held key scrolls: users (of --held-key "
                         "USERS users), or roles or audit of the sample deployment")
    ap.add_argument("--child-held", metavar="HOME", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_users(args.child)
        return
    if args.child_held:
        child_held(args.child_held, args.held_presses, args.rate, args.held_screen)
        return
    # Imported here, not at the top: a Users-screen child starts with nothing but what the
    # console it drives imports (these two bring SQLAlchemy and the engine).
    from common import machine_facts, median, record, table
    from list_users import deployment

    print(machine_facts())
    if args.held_key or args.held_screen != "users":
        with tempfile.TemporaryDirectory() as work:
            if args.held_screen == "users":
                home, what = (deployment(args.held_key or args.large, args.rebuild),
                              f"Users screen of {args.held_key or args.large:,} users")
            else:
                home = seeded_home(Path(work))
                what = f"{args.held_screen.capitalize()} screen of the sample deployment"
            held = held_key(args.repeat, home, args.held_presses, args.rate,
                            args.held_screen)
        report_held_key(held, args, what)
        return
    if args.ssh_sessions:
        with tempfile.TemporaryDirectory() as work:
            runs = ssh_keypresses(deployment(args.ssh_sessions, args.rebuild), Path(work),
                                  (1, 8), args.rounds, args.presses, args.interval,
                                  args.stagger)
        report_keypresses(runs, args)
        return
    if args.ssh_only:
        with tempfile.TemporaryDirectory() as work:
            ssh = ssh_first_frames(args.starts, seeded_home(Path(work)), Path(work))
        local = median(ssh["local"])
        print(f"\nFirst frame on a {COLUMNS}x{ROWS} terminal, {args.starts} starts each:")
        print(table(["console", "median s", "min s", "max s", "/ local"], [
            [kind, f"{median(v):.3f}", f"{min(v):.3f}", f"{max(v):.3f}",
             f"{median(v) / local:.2f}"] for kind, v in ssh.items()]))
        ratio = median(ssh["ssh"]) / local
        record(__file__, "18", "SSH session first frame / local mware-iam tui first frame",
               [ratio], "<= 2", part="ssh")
        print(f"ratio ssh / local = {ratio:.2f} (target <= 2): "
              f"{'PASS' if ratio <= 2 else 'FAIL'}")
        return
    with tempfile.TemporaryDirectory() as work:
        starts = first_frames(args.starts, seeded_home(Path(work)), Path(work))
    hello = median(starts["hello"])
    print(f"\nStart to first frame on a {COLUMNS}x{ROWS} terminal, {args.starts} starts each "
          "(seconds from spawning the process):")
    labels = {"hello": "python hello.py: bare Textual hello (first frame)",
              "console": "mware-iam tui (first frame)",
              "data": "mware-iam tui (dashboard shows the status; no target)"}
    print(table(["app", "median s", "min s", "max s", "/ hello"], [
        [labels[kind], f"{median(v):.3f}", f"{min(v):.3f}", f"{max(v):.3f}",
         f"{median(v) / hello:.2f}"] for kind, v in starts.items()]))
    ratio = median(starts["console"]) / hello
    record(__file__, "4", "mware-iam tui start to first frame / bare Textual hello",
           [ratio], "<= 1.5")
    print(f"ratio console / hello = {ratio:.2f} (target <= 1.5): "
          f"{'PASS' if ratio <= 1.5 else 'FAIL'}")
    if args.skip_users:
        return

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
        record(__file__, "4", f"Users screen {label}: {args.large:,} / {args.small:,} users",
               [big / s], f"<= {target}")
        rows.append([label, f"{s:.3f} {unit}", f"{big:.3f} {unit}", f"{big / s:.2f}",
                     f"<= {target}", "PASS" if big / s <= target else "FAIL"])
    print(table(["measure", f"{args.small:,} users", f"{args.large:,} users", "ratio",
                 "target", ""], rows))


if __name__ == "__main__":
    main()
