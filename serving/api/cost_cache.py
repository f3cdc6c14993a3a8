"""Cost answers reused for API_COST_CACHE_SECONDS, and computed once however many ask at once.

Why single flight: a forecast prices 400 simulated months (about 1.6 s of CPU on a busy
machine); without it, a dashboard refresh by ten users of one tenant would compute ten identical
forecasts in parallel before the first one lands in the cache.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable

MAX_ENTRIES = 1000


class CostCache:
    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self._entries: dict[Hashable, tuple[float, bytes]] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}
        #: answers computed since start (the cache and single flight, observable)
        self.computations = 0

    def _fresh(self, key: Hashable) -> bytes | None:
        hit = self._entries.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    async def get_or_compute(self, key: Hashable, compute: Callable[[], Awaitable[bytes]]) -> bytes:
        """The cached body of `key`, else `compute()`'s (callers of the same key wait for one)."""
        if (body := self._fresh(key)) is not None:
            return body
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if (body := self._fresh(key)) is not None:
                return body
            body = await compute()
            self.computations += 1
            if self.ttl > 0:
                if len(self._entries) >= MAX_ENTRIES:
                    now = time.monotonic()
                    self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                    if len(self._entries) >= MAX_ENTRIES:
                        self._entries.clear()
                    self._locks = {k: v for k, v in self._locks.items() if v.locked() or k in self._entries}
                self._entries[key] = (time.monotonic() + self.ttl, body)
        return body
