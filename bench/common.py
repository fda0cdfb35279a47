"""Shared helpers of the benchmarks: machine facts, a work directory, timing, a table."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy

#: Cached fixture data (git-ignored).
DATA_DIR = Path(__file__).parent / ".data"


def machine_facts() -> str:
    """One line describing where and when the numbers were taken."""
    return (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, nproc={os.cpu_count()}, "
            f"Python {sys.version.split()[0]}, SQLAlchemy {sqlalchemy.__version__}, "
            f"SQLite {_sqlite_version()}")


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


@dataclass(frozen=True)
class Timing:
    """Wall-clock and CPU seconds of one call (SQLite runs in-process, so CPU time is
    the steadier measure on a shared machine)."""

    wall: float
    cpu: float


def timed(fn: Callable[[], object]) -> Timing:
    """How long one call of ``fn`` takes."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: int) -> float:
    """The q-th percentile (1..99) of ``values``."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux; none once it has exited)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cpu(pid: int, reaped: bool) -> float:
    """A process's user and system CPU seconds, with its reaped children's if asked.

    ``/proc/PID/stat`` counts in clock ticks (10 ms), cut down to whole ones: over a
    phase of 300 SCIM requests (some 0.3 s of a server's CPU, 5 to 20 ms of each of a
    dozen PostgreSQL backends) each process's difference errs by up to a tick, several
    per cent of the sum. The scheduler's run time of each live thread
    (``/proc/PID/task/*/schedstat``, nanoseconds) is exact; it misses the threads that
    have ended, which the ticks hold: the larger of the two counts a process whose threads
    all live to the nanosecond and one that lost some no worse than the ticks alone."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    own = max(sum(int(f) for f in fields[11:13]) / tick, _threads_cpu(pid))
    return own + (sum(int(f) for f in fields[13:15]) / tick if reaped else 0.0)


def _threads_cpu(pid: int) -> float:
    """The run time of a process's live threads, in seconds (0 where not available)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):  # ended meanwhile
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def process_cpu(pid: int) -> float:
    """CPU seconds a process has used so far, with its children's: those it reaped and
    those it still runs (``serve --processes N``, whose parent serves nothing) (Linux)."""
    total = _cpu(pid, reaped=True)
    for child in children(pid):
        with contextlib.suppress(OSError):  # ended meanwhile: the parent's once reaped
            total += _cpu(child, reaped=False)
    return total


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain, aligned text table (also valid Markdown)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


# ---------------------------------------------------------------- machine-readable results
#: Where each benchmark leaves its latest measures as NAME.json (read by ``run_all``).
RESULTS_DIR = Path(__file__).parent / "results"
_recorded: set[str] = set()


#: The target of a measure that is reported with no numeric target (RESULTS.md's word).
REPORT_ONLY = "recorded"


def target_met(value: float, target: str) -> bool | None:
    """Whether ``value`` meets a target written ``<= 2`` or ``>= 0.8`` (None: the measure
    is ``REPORT_ONLY``)."""
    if target == REPORT_ONLY:
        return None
    op, number = target.split()
    return value <= float(number) if op == "<=" else value >= float(number)


def record(script: str, issue: str, measure: str, ratios: Sequence[float], target: str,
           note: str = "", part: str = "") -> None:
    """Add one measure to ``bench/results/NAME.json`` (NAME: the script's, with ``-part``
    for a script whose modes run separately): the median of ``ratios`` (one per round)
    and their spread, the target (``<= 2``, ``>= 0.8``, or ``REPORT_ONLY``) and whether
    the median meets it (null when reported only),
    with the date and the command that ran. The first call of a run replaces the file;
    later calls of the same run add to it."""
    import json

    name = Path(script).stem + (f"-{part}" if part else "")
    path = RESULTS_DIR / f"{name}.json"
    RESULTS_DIR.mkdir(exist_ok=True)
    if name in _recorded and path.exists():
        data = json.loads(path.read_text())
    else:
        data = {"script": name, "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
                "command": " ".join([".venv/bin/python", f"bench/{Path(script).name}",
                                     *sys.argv[1:]]),
                "measures": []}
    _recorded.add(name)
    value = median(ratios)
    data["measures"].append({
        "issue": issue, "measure": measure, "ratio": round(value, 3),
        "spread": [round(min(ratios), 3), round(max(ratios), 3)], "rounds": len(ratios),
        "target": target, "met": target_met(value, target), "note": note})
    path.write_text(json.dumps(data, indent=1) + "\n")
