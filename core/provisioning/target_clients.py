"""Connections to targets: one pooled ``httpx.AsyncClient``, one concurrency limit and one
connector memo (what the target announced, e.g. its SCIM capabilities) per target, rebuilt
when the target's configuration changes. Lives in one event loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.base import Connector
from connectors.registry import connector_class
from core.provisioning.targets import Target


@dataclass
class _Entry:
    fingerprint: str
    client: httpx.AsyncClient
    limit: asyncio.Semaphore
    #: What the target's connectors learn about it, shared (``Connector.memo``).
    memo: dict[str, Any] = field(default_factory=dict)


class TargetRuntime:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._retired: list[httpx.AsyncClient] = []

    def _entry(self, target: Target) -> _Entry:
        entry = self._entries.get(target.key)
        if entry is None or entry.fingerprint != target.fingerprint:
            if entry is not None:
                self._retired.append(entry.client)  # closed at shutdown: jobs may use it
            concurrency = max(1, int(target.prop("concurrency")))
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(float(target.prop("timeout-seconds"))),
                limits=httpx.Limits(max_connections=concurrency,
                                    max_keepalive_connections=concurrency),
            )
            entry = _Entry(target.fingerprint, client, asyncio.Semaphore(concurrency))
            self._entries[target.key] = entry
        return entry

    def connector(self, target: Target) -> Connector:
        """A fresh connector (its own exchange log) on the target's shared client and
        memo."""
        entry = self._entry(target)
        return connector_class(target.config.type)(target.properties, entry.client, entry.memo)

    def limit(self, target: Target) -> asyncio.Semaphore:
        return self._entry(target).limit

    async def aclose(self) -> None:
        for client in [*(e.client for e in self._entries.values()), *self._retired]:
            await client.aclose()
        self._entries.clear()
        self._retired.clear()
