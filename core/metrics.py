"""Prometheus instruments of a deployment's processes, and their exposition.

The counters and histograms here count what one process did (SCIM requests, provisioning
attempts, rate-limit refusals, JIT logins). With ``PROMETHEUS_MULTIPROC_DIR`` set before
this module is first imported (``serve --processes N`` sets one per deployment),
prometheus-client keeps them in memory-mapped files in that folder and a scrape adds up
every process's files; without it they live in this process alone. What is a fact of the
deployment rather than of a process (queues, breaker states, userstore health) is read
from the system database when scraped (``core/http/metrics.py``), so it is right whichever
process answers.

This module imports nothing of the engine: the layers below it may instrument themselves.
Label values are bounded: targets, applications and identity providers are configured
names, routes are templates (``PATCH /Users/{id}``), never raw paths.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.registry import Collector

#: The environment variable that turns on multiprocess mode (prometheus-client's own).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: This process's instruments (scraped through :func:`exposition`, never registered in
#: prometheus-client's global registry).
INSTRUMENTS = CollectorRegistry(auto_describe=True)

#: Request latency buckets, seconds: a SCIM request takes a few milliseconds here.
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Attempt latency buckets, seconds: a peer's round trip, up to its timeout.
_ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

SCIM_REQUESTS = Counter(
    "mware_iam_scim_requests",
    "SCIM requests answered, by route template, HTTP status and "
    "application ('' before authentication)",
    ["route", "status", "application"],
    registry=INSTRUMENTS,
)
SCIM_SECONDS = Histogram(
    "mware_iam_scim_request_seconds",
    "Time from a SCIM request read to its answer ready, by route template",
    ["route"],
    buckets=_REQUEST_BUCKETS,
    registry=INSTRUMENTS,
)
RATE_LIMITED = Counter(
    "mware_iam_rate_limited",
    "Requests refused with 429 by an application's token bucket, "
    "by application and face (scim, jit)",
    ["application", "face"],
    registry=INSTRUMENTS,
)
JIT_LOGINS = Counter(
    "mware_iam_jit_logins",
    "JIT logins at POST /jit/{idp}, by identity provider and outcome "
    "(created, updated, refused, unavailable, invalid, error; unauthenticated, rate_limited "
    "and invalid before the provider is known, with idp '')",
    ["idp", "outcome"],
    registry=INSTRUMENTS,
)
ATTEMPTS = Counter(
    "mware_iam_provisioning_attempts",
    "Provisioning attempts recorded, by target and outcome "
    "(succeeded, retry, dead, throttled, skipped, held, waiting)",
    ["target", "outcome"],
    registry=INSTRUMENTS,
)
ATTEMPT_SECONDS = Histogram(
    "mware_iam_provisioning_attempt_seconds",
    "Time of the provisioning attempts that sent something to their target, by target",
    ["target"],
    buckets=_ATTEMPT_BUCKETS,
    registry=INSTRUMENTS,
)


#: The children of the labels counted so far (bounded: the label values are).
_children: dict[tuple[object, tuple[str, ...]], Any] = {}


def child(metric: Counter | Histogram, *labels: str) -> Any:
    """``metric.labels(*labels)``, remembered in a plain dict: prometheus-client's
    ``labels()`` validates and locks (about 2 µs a call), and every SCIM request and
    provisioning attempt counts into two instruments."""
    key = (metric, labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


def scim_request(route: str, status: int, application: str, seconds: float) -> None:
    """Count one answered SCIM request."""
    child(SCIM_REQUESTS, route, str(status), application).inc()
    child(SCIM_SECONDS, route).observe(seconds)


def count_in_files(folder: Path) -> None:
    """Count into multiprocess files in ``folder`` from now on, in this process and the
    ones it forks (``serve --processes``). prometheus-client picks its kind of value when
    it is imported, which the parent of the processes has done long before: the choice is
    made again, and the children remembered so far are forgotten."""
    os.environ[MULTIPROC_ENV] = str(folder)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    _children.clear()


def multiprocess_dir() -> str | None:
    """The folder of multiprocess mode, or None for a single-process registry."""
    return os.environ.get(MULTIPROC_ENV) or None


def exposition(live: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """The Prometheus text of every process's instruments (or this process's), followed by
    ``live``'s collectors (read at this moment), and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    folder = multiprocess_dir()
    if folder is not None:
        multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    else:
        registry.register(INSTRUMENTS)
        registry.register(ProcessCollector(registry=None))
    for collector in live:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST
