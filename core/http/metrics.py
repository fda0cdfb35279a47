"""``GET /metrics``: the deployment's facts read from the system database when scraped.

Queue depth, the oldest waiting job's age, jobs by state, each target's breaker state and
delivery totals, and each enabled userstore's health are facts of the deployment, not of
the process that answers the scrape: they are read here, at scrape time, with a few
indexed queries (bounded by the backlog and the number of targets, never the history), so
every process of a deployment answers the same. The userstores' health is the one check
``/ready`` also uses (``core/health.py``: bounded in time, shared, cached for a second).
The counters of what processes did come from ``core/metrics.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from core import metrics
from core.health import DeploymentHealth
from core.iam import Iam
from core.provisioning import breaker, outbox

#: Every job state reported per target (0 where a target has none in that state).
REPORTED_STATES = [*[s.value for s in outbox.OPEN_STATES], outbox.JobState.DEAD.value]


class DeploymentCollector:
    """A prometheus-client collector of the deployment's state (see the module's doc)."""

    def __init__(self, iam: Iam, health: DeploymentHealth) -> None:
        self.iam = iam
        self.health = health

    def collect(self) -> Iterator[Metric]:
        with self.iam.db.transaction() as conn:
            counts = outbox.counts(conn)
            waiting = outbox.waiting(conn)
            health = breaker.all_health(conn)
        yield from _jobs(counts, waiting, health)
        yield from self._userstores()

    def _userstores(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "mware_iam_userstore_up",
            "Whether an enabled userstore answers its health check (1) or not (0)",
            labels=["domain"],
        )
        latency = GaugeMetricFamily(
            "mware_iam_userstore_health_seconds",
            "How long the userstore's health check took",
            labels=["domain"],
        )
        for domain, result in self.health.stores.items():
            up.add_metric([domain], 1.0 if result.reachable else 0.0)
            if result.latency_ms is not None:
                latency.add_metric([domain], result.latency_ms / 1000)
        yield up
        yield latency


def _jobs(
    counts: dict[str, dict[str, int]],
    waiting: dict[str, tuple[int, datetime]],
    health: dict[str, breaker.TargetHealth],
) -> Iterator[Metric]:
    jobs = GaugeMetricFamily(
        "mware_iam_provisioning_jobs",
        "Open and dead provisioning jobs, by target and state",
        labels=["target", "state"],
    )
    depth = GaugeMetricFamily(
        "mware_iam_provisioning_queue_depth",
        "Jobs waiting to run (pending or scheduled for a retry), by target",
        labels=["target"],
    )
    age = GaugeMetricFamily(
        "mware_iam_provisioning_oldest_job_age_seconds",
        "Age of the oldest job waiting to run, by target (0: none waits)",
        labels=["target"],
    )
    state = GaugeMetricFamily(
        "mware_iam_provisioning_breaker_state",
        "Each target's circuit breaker: 1 for its current state, 0 for the others",
        labels=["target", "state"],
    )
    delivered = CounterMetricFamily(
        "mware_iam_provisioning_jobs_ended",
        "Jobs ended per "
        "target since it was first used, by outcome "
        "(succeeded, failed), as the breaker counts them",
        labels=["target", "outcome"],
    )
    now = datetime.now(UTC)
    for target in sorted(set(counts) | set(waiting) | set(health)):
        of_target = counts.get(target, {})
        for s in REPORTED_STATES:
            jobs.add_metric([target, s], of_target.get(s, 0))
        n, oldest = waiting.get(target, (0, now))
        depth.add_metric([target], n)
        age.add_metric([target], max(0.0, (now - oldest).total_seconds()))
        h = health.get(target)
        current = h.state if h is not None else breaker.BreakerState.HEALTHY
        for s in breaker.BreakerState:
            state.add_metric([target, s.value], 1.0 if s is current else 0.0)
        delivered.add_metric([target, "succeeded"], h.succeeded_total if h else 0)
        delivered.add_metric([target, "failed"], h.failed_total if h else 0)
    yield from (jobs, depth, age, state, delivered)


def scrape(iam: Iam, health: DeploymentHealth) -> tuple[bytes, str]:
    """The body and content type of ``GET /metrics`` with ``health``, the deployment's
    health check (``core/health.py``: bounded, shared with ``/ready``) (blocking: run it
    off the loop)."""
    return metrics.exposition([DeploymentCollector(iam, health)])
