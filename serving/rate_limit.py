"""Per-key rate limiting of `/api/` requests: a token bucket per API key, in the process.

Why in the process and not shared through PostgreSQL: a shared counter costs a database round
trip (and a row lock under contention) on every request, the very thing the API's latency work
removes, and a database that is slow or down would then slow or stop every request, even cached
ones. The price: with N server processes a key gets up to N times the configured rate. The
shipped server runs one worker (`loganalyzer serve`); behind several workers or hosts, divide
the rate by their number, or enforce a global limit at the load balancer.

Which bucket: the key's id (the middle of la_<id>_<secret>) for a well-formed key, so a client
cannot dodge its limit by varying anything but the key; the client's address for a missing or
malformed key, so garbage keys cannot be used to flood the key lookup either.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from serving.keys import key_id_of
from serving.limits import ASGIApp, Receive, Scope, Send, send_json


@dataclass
class TokenBucket:
    """`rate` tokens per second, at most `burst` stored; one request takes one token."""

    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """0.0 when a token was taken, else the seconds until one is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """Buckets by caller; idle full buckets are forgotten so memory stays bounded."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def wait(self, caller: str) -> float:
        now = self.clock()
        bucket = self._buckets.get(caller)
        if bucket is None:
            if len(self._buckets) >= 100_000:
                self._forget_idle(now)
            bucket = self._buckets[caller] = TokenBucket(self.rate, self.burst, self.burst, now)
        return bucket.take(now)

    def _forget_idle(self, now: float) -> None:
        refill = self.burst / self.rate
        for k in [k for k, b in self._buckets.items() if now - b.updated >= refill]:
            del self._buckets[k]
        if len(self._buckets) >= 100_000:  # all active: a flood of distinct callers
            self._buckets.clear()


def caller_of(scope: Scope) -> str:
    for name, raw in scope.get("headers", ()):
        if name == b"x-api-key":
            key_id = key_id_of(raw.decode("latin-1"))
            if key_id is not None:
                return f"key:{key_id}"
            break
    client = scope.get("client")
    return f"addr:{client[0] if client else 'unknown'}"


class RateLimit:
    """ASGI middleware: 429 with Retry-After (whole seconds, at least 1) past a caller's rate."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter, prefix: str = "/api/") -> None:
        self.app = app
        self.limiter = limiter
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(self.prefix):
            wait = self.limiter.wait(caller_of(scope))
            if wait > 0:
                retry = max(1, math.ceil(wait))
                await send_json(
                    send,
                    429,
                    f"rate limit of {self.limiter.rate:g} requests/s (burst {self.limiter.burst:g}) "
                    f"per API key exceeded: retry in {retry} s",
                    [(b"retry-after", str(retry).encode())],
                )
                return
        await self.app(scope, receive, send)
