"""A token bucket per application: ``rate`` requests a second, bursts up to ``burst``.

:class:`TokenBuckets` keeps the buckets in this process. :class:`SharedTokenBuckets`
keeps them in a small file under the home, mapped into memory by every ``serve`` process
of the deployment on this machine, so that ``serve --processes N`` enforces one bucket per
application, exactly, whichever process a connection lands on. Why not the database: a
bucket there costs a write transaction on every request (the request itself may only read),
and why not ``rate / N`` per process: a client on one keep-alive connection reaches one
process and would get a Nth of its rate.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time
from pathlib import Path


def _refill(tokens: float, at: float, now: float, rate: float, burst: int) -> float:
    return min(float(burst), tokens + max(0.0, now - at) * rate)  # a clock since reboot


class TokenBuckets:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take one token for ``key``: 0 when granted, else the seconds until one is."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = _refill(tokens, at, now, self.rate, self.burst)
            granted = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if granted else tokens, now)
        return 0.0 if granted else (1.0 - tokens) / self.rate


#: One bucket: the SHA-256 digest of its key (first 16 bytes; zeros: a free slot), its
#: tokens and when they were counted (``time.monotonic()``, one clock for every process of
#: the machine on Linux).
_SLOT = struct.Struct("=16sdd")
#: Buckets the file holds (applications of one deployment); a key beyond them hashes onto
#: an occupied slot and shares its bucket (never more requests than one bucket allows).
SLOTS = 4096
_EMPTY = bytes(16)


class SharedTokenBuckets(TokenBuckets):
    """The same buckets, shared by the processes that open the same ``path``: a mapped
    file of fixed size, changed under a POSIX record lock (released by the kernel when a
    process dies, so a killed process never leaves the others waiting)."""

    def __init__(self, rate: float, burst: int, path: Path) -> None:
        super().__init__(rate, burst)
        self.path = path
        #: Each key's digest and home slot, hashed once (keys are application names).
        self._homes: dict[str, tuple[bytes, int]] = {}
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            size = SLOTS * _SLOT.size
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)  # zeros: every slot free
            self._map = mmap.mmap(fd, size)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)

    def take(self, key: str) -> float:
        if self.rate <= 0:
            return 0.0
        home = self._homes.get(key)
        if home is None:
            if len(self._homes) >= SLOTS:
                self._homes.clear()  # bounded, whatever keys come
            digest = hashlib.sha256(key.encode()).digest()[:16]
            home = self._homes[key] = digest, int.from_bytes(digest[:4], "little") % SLOTS
        digest, start = home
        with self._lock:  # record locks exclude processes, not the threads of one
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
            try:
                now = time.monotonic()
                offset, tokens, at = self._find(digest, start, now)
                tokens = _refill(tokens, at, now, self.rate, self.burst)
                granted = tokens >= 1.0
                _SLOT.pack_into(self._map, offset, digest, tokens - 1.0 if granted else tokens, now)
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN)
        return 0.0 if granted else (1.0 - tokens) / self.rate

    def _find(self, digest: bytes, start: int, now: float) -> tuple[int, float, float]:
        """The offset of ``digest``'s slot (a free one taken: a full bucket) and its
        tokens and time; with none free, the home slot's (shared)."""
        for i in range(SLOTS):
            offset = (start + i) % SLOTS * _SLOT.size
            found, tokens, at = _SLOT.unpack_from(self._map, offset)
            if found == digest:
                return offset, tokens, at
            if found == _EMPTY:
                return offset, float(self.burst), now
        offset = start * _SLOT.size
        return offset, *_SLOT.unpack_from(self._map, offset)[1:]
