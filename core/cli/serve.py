"""``mware-iam serve`` and ``mware-iam worker``: the long-running processes.

Both run a provisioning worker pool until SIGINT or SIGTERM, then let the jobs in flight
finish and exit 0 (``core/http/server.py``). ``serve`` also answers HTTP on host:port: the
SCIM API, ``GET /health``, ``GET /ready`` and ``GET /status`` (``core/http/app.py``), in
one process or, with ``--processes N``, in N forked ones under a supervising parent
(``core/http/supervisor.py``). These commands only turn their options into those calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from core.cli.context import close_iam, current_iam
from core.event_loops import run_on_uvloop
from core.http.server import run_until_signalled
from core.http.supervisor import Serving
from core.http.supervisor import serve as run_serving
from core.identity.events import Face, Initiator
from core.inbound import Limits

if TYPE_CHECKING:
    from core.iam import Iam

log = logging.getLogger("mware_iam.serve")


def _configure_logging() -> None:
    from core.http.hardening import EscapingFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(EscapingFormatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # a line per request (the job lines say enough), or per migration check at each start
    for noisy in ("httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _pool_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--poll", type=click.FloatRange(0.05, 60), default=0.5,
                     show_default=True, metavar="SECONDS",
                     help="How often to look for jobs written by other processes.")(f)
    return click.option("--capacity", type=click.IntRange(1, 10_000), default=128,
                        show_default=True,
                        help="Jobs run at once by this process (each target also has its "
                             "own concurrency limit).")(f)


@click.command("worker")
@_pool_options
def worker(capacity: int, poll: float) -> None:
    """Run provisioning jobs until SIGINT/SIGTERM (jobs in flight finish first).

    Any number of worker processes may share one system database; on PostgreSQL and
    MariaDB they share the queue safely (a job is leased by one worker at a time).
    """
    iam = current_iam()
    _configure_logging()
    run_on_uvloop(run_until_signalled(iam, capacity, poll))


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on (0: any free port, logged at start).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Serve HTTPS with this PEM certificate (with --tls-key).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The PEM private key of --tls-cert.")
@click.option("--scim-rate", type=click.FloatRange(0), default=Limits.rate,
              show_default=True, metavar="PER_SECOND",
              help="SCIM requests a second per application, 100 by default (0: unlimited); "
                   "more get 429 with Retry-After. Raise it (or 0) for a conformance "
                   "suite or one busy client such as an initial Entra/Okta load.")
@click.option("--scim-burst", type=click.IntRange(1), default=Limits.burst, show_default=True,
              help="SCIM requests an application may send at once above the rate.")
@click.option("--scim-max-results", type=click.IntRange(1, 1000), default=Limits.max_results,
              show_default=True, help="Most resources one SCIM list or search returns.")
@click.option("--scim-max-bytes", type=click.IntRange(1024), default=Limits.max_payload_bytes,
              show_default=True, help="Largest SCIM request body (Bulk included); more: 413.")
@click.option("--processes", type=click.IntRange(1, 256), default=None,
              help="Serving processes on the one port, each with its own provisioning "
                   "workers; a crashed one is restarted. Default: the number of cores on "
                   "PostgreSQL or MariaDB, 1 on SQLite (one writer at a time).")
@click.option("--pin/--no-pin", default=True, show_default=True,
              help="Run each serving process on a core of its own (the first on the first "
                   "core, ...): its threads then switch on one core, 15 to 30 % less CPU "
                   "per request. --no-pin leaves the placement to the kernel (a machine "
                   "whose cores other busy services share).")
@_pool_options
def serve(host: str, port: int, tls_cert: str | None, tls_key: str | None, scim_rate: float,
          scim_burst: int, scim_max_results: int, scim_max_bytes: int,
          processes: int | None, pin: bool, capacity: int, poll: float) -> None:
    """Serve the inbound SCIM 2.0 API (/scim2), GET /health, GET /ready and GET /status,
    and run provisioning workers, in one process or --processes N on the one port.

    SCIM clients authenticate as an application (`mware-iam app token APP`): with
    'Authorization: Bearer TOKEN', or HTTP Basic with the application's name and a token.
    Stops on SIGINT/SIGTERM after the jobs in flight finish. Like the console, the first
    start of a deployment seeds sample_config/.
    """
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    limits = Limits(rate=scim_rate, burst=scim_burst, max_results=scim_max_results,
                    max_payload_bytes=scim_max_bytes,
                    default_count=min(Limits.default_count, scim_max_results))
    _configure_logging()
    run_serving(current_iam, close_iam, Serving(
        host, port, processes, capacity, poll,
        (tls_cert, tls_key) if tls_cert and tls_key else None, limits, pin), _prepare)


def _prepare(iam: Iam) -> None:
    """Like the console, the first start of a deployment applies sample_config/; and what
    the system database's server is set to that degrades the deployment is logged."""
    from core.configfile.files import seed_sample

    changes = seed_sample(iam, Initiator.admin(Face.CONFIG))
    if changes:
        log.info("new deployment: applied the sample configuration (%d changes)", len(changes))
    for warning in iam.db.setting_warnings():
        log.warning("%s", warning)
