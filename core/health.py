"""The deployment's health: the system database and every enabled userstore, checked at
once within one bound and remembered for a moment.

``GET /ready`` and ``GET /metrics`` both ask :meth:`HealthCheck.check`
(``core/http/app.py``, ``core/http/metrics.py``), so what they say agrees and a scrape
storm or a prober hammering a hung store costs no more than one check a second:

- *Bounded*: the system database is asked first (its answer names the enabled stores),
  then every store's ``health()`` runs on its own thread, all at once; whatever has not
  answered by ``seconds`` after the start is reported as not answering. A store's
  ``health()`` never raises, but may block up to its own timeout (an LDAP server that
  accepts and never answers): its thread is left to end by itself and, while it runs, no
  second one is started for that store (a hung store holds one thread, not one per check).
- *Shared*: callers that arrive while a check runs wait for its answer; an answer is
  reused for ``cache_seconds`` after it was made.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from core.db import SystemDB
from core.errors import IamError
from core.userstores.base import Health
from core.userstores.router import UserstoreRouter

#: The longest one check takes: a store that has not answered by then fails.
HEALTH_SECONDS = 5.0
#: How long an answer is reused.
CACHE_SECONDS = 1.0
#: The system database's name among the checks.
SYSTEM_DB = "system-db"


@dataclass(frozen=True)
class DeploymentHealth:
    """One check's answer: why the system database failed (None: it answered), and each
    enabled store's health (none when the system database failed: the list comes from it)."""

    system_db: str | None
    stores: dict[str, Health] = field(default_factory=dict)

    def failed(self) -> dict[str, str]:
        """The checks that failed, and why."""
        if self.system_db is not None:
            return {SYSTEM_DB: self.system_db}
        return {domain: health.detail or "does not answer"
                for domain, health in self.stores.items() if not health.reachable}


class _Probe:
    """``call()`` on a daemon thread (one that hangs never holds up the process's exit)."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True,
                                        name="mware-iam health")
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self.value = call()
        except Exception as exc:  # reported by the check, never lost in a thread
            self.error = exc

    def wait(self, deadline: float) -> bool:
        """Whether it ended by ``deadline`` (a ``time.monotonic()``)."""
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return not self._thread.is_alive()


class HealthCheck:
    """The bounded, shared, briefly cached check of a deployment (see the module's doc)."""

    def __init__(self, db: SystemDB, stores: UserstoreRouter,
                 seconds: float = HEALTH_SECONDS, cache_seconds: float = CACHE_SECONDS) -> None:
        self.db = db
        self.stores = stores
        self.seconds = seconds
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._last: tuple[float, DeploymentHealth] | None = None
        self._running: threading.Event | None = None
        #: The probes of earlier checks, by what they ask (a running one is not started again).
        self._probes: dict[str, _Probe] = {}

    def check(self) -> DeploymentHealth:
        """The deployment's health, made within ``seconds`` or remembered (blocking: run it
        off an event loop)."""
        with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < self.cache_seconds:
                return self._last[1]
            running, mine = self._running, self._running is None
            if running is None:
                running = self._running = threading.Event()
        if not mine:
            running.wait(self.seconds + 1.0)
            with self._lock:
                if self._last is not None:
                    return self._last[1]
            return DeploymentHealth(self._late)  # not reached while checks keep their bound
        result = DeploymentHealth(self._late)
        try:
            result = self._run()
        finally:
            with self._lock:
                self._last, self._running = (time.monotonic(), result), None
            running.set()
        return result

    @property
    def _late(self) -> str:
        return f"did not answer within {self.seconds:g} s"

    def _probe(self, key: str, call: Callable[[], Any]) -> _Probe:
        """A probe of ``key``: the one still running from an earlier check, or a new one."""
        with self._lock:
            probe = self._probes.get(key)
            if probe is None or probe.wait(0.0):
                probe = self._probes[key] = _Probe(call)
        return probe

    def _run(self) -> DeploymentHealth:
        deadline = time.monotonic() + self.seconds
        listing = self._probe(SYSTEM_DB, self._enabled_domains)
        if not listing.wait(deadline):
            return DeploymentHealth(self._late)
        if listing.error is not None or listing.value is None:
            return DeploymentHealth(_reason(listing.error))
        probes = {domain: self._probe(f"store:{domain}", self._store_health(domain))
                  for domain in listing.value}
        stores: dict[str, Health] = {}
        for domain, probe in probes.items():
            if not probe.wait(deadline):
                stores[domain] = Health(False, self._late)
            elif probe.error is not None:
                stores[domain] = Health(False, _reason(probe.error))
            elif probe.value is not None:  # None: removed or disabled meanwhile
                stores[domain] = probe.value
        return DeploymentHealth(None, stores)

    def _enabled_domains(self) -> list[str]:
        """The enabled userstores, after a query proves the system database answers."""
        with self.db.transaction() as conn:
            conn.execute(text("SELECT 1"))
        return self.stores.domains

    def _store_health(self, domain: str) -> Callable[[], Health | None]:
        def health() -> Health | None:
            try:
                store = self.stores.store(domain)
            except IamError:  # removed or disabled since the list was read: not a failure
                return None
            return store.health()
        return health


def _reason(error: Exception | None) -> str:
    """Why a check failed, naming no secret: the engine's own message, else only the kind."""
    if isinstance(error, IamError):
        return str(error)
    return f"the check failed ({type(error).__name__})"
