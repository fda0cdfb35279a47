"""Two builds of the inbound SCIM server side by side: this tree's ``mware-iam serve`` and
another checkout's (``--against PATH/.venv/bin/mware-iam``, e.g. main before a change).

The load of ``scim_inbound.py``'s throughput part (POST /Users, GET by userName filter,
PATCH, ``--concurrency`` clients, each operation against both servers in turn, AB then
BA), each server on its own fresh SQLite home, or with ``--backend postgresql`` its own
fresh PostgreSQL schema (its backends' CPU added to the server's). Per round and
operation: new / old requests/s and server CPU per request; the report gives the median
over the rounds and their spread (min to max).

    .venv/bin/python bench/scim_inbound_ab.py --against /work/main/.venv/bin/mware-iam \
        --rounds 5 --requests 200
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import machine_facts, record, table
from scim_inbound import (
    APPLICATION_NAME,
    MWARE_IAM,
    NOTES,
    OPERATIONS,
    Phase,
    add_clients,
    our_server,
    system_database,
    throughput,
)

RESULTS = Path(__file__).with_name("scim_inbound_ab_RESULTS.md")
NEW, OLD = "new", "old"


def report(phases: list[tuple[int, Phase]]) -> tuple[str, dict[str, float]]:
    by = {(n, p.operation, p.server): p for n, p in phases}
    rounds = sorted({n for n, _ in phases})
    rows, medians = [], {}
    for operation in OPERATIONS:
        rate = [by[(n, operation, NEW)].rate / by[(n, operation, OLD)].rate for n in rounds]
        cpu = [(by[(n, operation, NEW)].server_cpu / by[(n, operation, NEW)].requests)
               / (by[(n, operation, OLD)].server_cpu / by[(n, operation, OLD)].requests)
               for n in rounds]
        medians[operation] = statistics.median(rate)
        record(__file__, "11", f"SCIM {operation}, requests/s this tree / the other build",
               rate, ">= 0.95")
        record(__file__, "11", f"SCIM {operation}, server CPU per request this tree / the "
               "other build", cpu, "<= 1.05")
        new_rate = statistics.median(by[(n, operation, NEW)].rate for n in rounds)
        old_rate = statistics.median(by[(n, operation, OLD)].rate for n in rounds)
        new_cpu = statistics.median(by[(n, operation, NEW)].server_cpu * 1000
                                    / by[(n, operation, NEW)].requests for n in rounds)
        old_cpu = statistics.median(by[(n, operation, OLD)].server_cpu * 1000
                                    / by[(n, operation, OLD)].requests for n in rounds)
        rows.append([operation, f"{new_rate:.1f}", f"{old_rate:.1f}",
                     f"**{medians[operation]:.2f}** ({min(rate):.2f} to {max(rate):.2f})",
                     f"{new_cpu:.2f} / {old_cpu:.2f}",
                     f"{statistics.median(cpu):.2f} ({min(cpu):.2f} to {max(cpu):.2f})",
                     "pass" if medians[operation] >= 0.95 else "**worse by more than 5 %**"])
    return table(["operation", "new req/s (median)", "old req/s (median)",
                  "new / old req/s: median (spread)", "server CPU ms/req new / old",
                  "CPU/req new / old: median (spread)", "target >= 0.95"], rows), medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", type=Path, required=True,
                        help="the other build's mware-iam executable")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200,
                        help="requests per operation, per server, per round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the system database of both servers")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.against.exists():
        raise SystemExit(f"--against {args.against}: no such file")
    facts = machine_facts()
    print(facts, flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, \
            system_database(args.backend, Path(tmp), f"{APPLICATION_NAME}-{NEW}") as new_db, \
            system_database(args.backend, Path(tmp), f"{APPLICATION_NAME}-{OLD}") as old_db:
        homes = Path(tmp) / "new", Path(tmp) / "old"
        for home, build, db in zip(homes, (MWARE_IAM, args.against), (new_db, old_db),
                                   strict=True):
            add_clients(home, 0, build, db)  # a deployment now, so serve seeds no sample
        with our_server(homes[0], args.concurrency, name=NEW, db=new_db) as new, \
                our_server(homes[1], args.concurrency, executable=args.against,
                           name=OLD, db=old_db) as old:
            phases = asyncio.run(throughput([new, old], args.rounds, args.requests,
                                            args.concurrency))
    text, medians = report(phases)
    command = " ".join([".venv/bin/python bench/scim_inbound_ab.py", *sys.argv[1:]])
    text_out = "\n".join([
        "# Inbound SCIM server: this tree (new) against another build (old)", "",
        f"Command: `{command}`", "",
        f"Machine: {facts}; run took {time.perf_counter() - started:.0f} s. The machine "
        "is shared with other sessions' test runs: only the side-by-side ratios mean "
        "something.", "",
        f"{args.rounds} rounds of {args.requests} requests per operation and server, "
        f"concurrency {args.concurrency}, system database {args.backend}; each round "
        "alternates which server goes first.",
        "", text, ""])
    notes = args.out.read_text().partition(NOTES)[2] if args.out.exists() else ""
    args.out.write_text(text_out + "\n" + NOTES + notes if notes else text_out)
    print(text)
    print("\nnew / old: " + ", ".join(f"{op} {r:.2f}" for op, r in medians.items()))


if __name__ == "__main__":
    main()
