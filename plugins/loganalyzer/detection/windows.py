"""Event-time minute buckets per (tenant, service), the watermark that closes them, and windows.

Time is counted in whole minutes since the epoch (ints): cheaper to hash and compare than
datetimes on the hot path, and a bucket key is its minute.

Watermark: minutes < `closed_upto` are closed. The engine closes every minute that ends before
the partition's event time minus the allowed lateness, to the second, as soon as an event's time
passes that point (so the records alone decide, not the caller's batches); on an idle partition
the caller's event time runs on with the wall clock, so that silence is detected when nothing
arrives at all.
An event for a closed minute is not counted (`dropped_late`); one for a minute that is still
open is, however late it arrives.

Memory: a service keeps only its open minutes plus the `window_buckets - 1` closed minutes the
next window still needs; older buckets are pruned when a minute closes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from loganalyzer.detection.features import Counts
from loganalyzer.events import ERROR_LEVELS

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE = timedelta(minutes=1)
_EPOCH_ORDINAL_MINUTES = _EPOCH.toordinal() * 1440


def minute_of(ts: datetime) -> int:
    """The minute (since the epoch) an aware datetime falls in.

    Called once per event: for UTC (what the parser always returns) the calendar fields give it
    in a third of the time of `timestamp()`, which builds a timedelta and a float first."""
    if ts.tzinfo is UTC:
        return ts.toordinal() * 1440 + ts.hour * 60 + ts.minute - _EPOCH_ORDINAL_MINUTES
    return int(ts.timestamp()) // 60


def minute_start(m: int) -> datetime:
    return _EPOCH + m * _MINUTE


@dataclass(slots=True)
class ServiceBuckets:
    """One service's open (and still-needed closed) minute buckets."""

    tenant: str
    service: str
    #: first minute this engine saw the service: it is not evaluated before it
    first_minute: int
    #: newest minute with an event (recency for eviction)
    last_minute: int
    buckets: dict[int, Counts] = field(default_factory=dict)

    def window(self, m: int, n: int) -> list[Counts]:
        """The n buckets ending at minute m (inclusive); missing minutes are empty buckets."""
        get = self.buckets.get
        return [get(k) or Counts() for k in range(m - n + 1, m + 1)]

    def prune(self, before: int) -> None:
        """Forget buckets older than `before` (no future window needs them)."""
        buckets = self.buckets
        if len(buckets) > 1 or (buckets and next(iter(buckets)) < before):
            for k in [k for k in buckets if k < before]:
                del buckets[k]


S = TypeVar("S", bound=ServiceBuckets)


class WindowStore(Generic[S]):
    """Buckets of every tracked service, bounded to `max_services` (least recently active out).

    Generic over the per-service record so the engine can keep its baseline and episodes in the
    same object (one dict lookup per event instead of several).
    """

    __slots__ = (
        "_new",
        "closed_upto",
        "dropped_late",
        "evicted",
        "lateness",
        "max_minute",
        "max_services",
        "services",
    )

    def __init__(self, factory: Callable[[str, str, int], S], lateness: int, max_services: int) -> None:
        self._new = factory
        self.lateness = lateness
        self.max_services = max_services
        self.services: OrderedDict[tuple[str, str], S] = OrderedDict()
        self.max_minute: int | None = None
        self.closed_upto: int | None = None  # minutes < closed_upto are closed
        self.dropped_late = 0
        #: services forgotten because of max_services, for the owner to drain
        self.evicted: list[S] = []

    def count(
        self, m: int, tenant: str, service: str, level: str, length: int, duration_ms: object = None
    ) -> tuple[S, bool]:
        """Count one event of minute m. Returns the service's record and whether it was counted
        (False: its minute is already closed)."""
        key = (tenant, service)
        state = self.services.get(key)
        if state is None:
            state = self.track(key, m)
        closed = self.closed_upto
        if closed is not None and m < closed:
            self.dropped_late += 1
            return state, False
        mx = self.max_minute
        if mx is None or m > mx:
            self.max_minute = m
        if m > state.last_minute:
            state.last_minute = m
            self.services.move_to_end(key)
        b = state.buckets.get(m)
        if b is None:
            b = state.buckets[m] = Counts()
        b.total += 1
        if level in ERROR_LEVELS:
            b.errors += 1
        elif level == "WARN":
            b.warns += 1
        if type(duration_ms) is int or type(duration_ms) is float:
            b.duration_sum += duration_ms
            b.duration_n += 1
        b.length_sum += length
        return state, True

    def track(self, key: tuple[str, str], m: int) -> S:
        state = self.services[key] = self._new(key[0], key[1], m)
        while len(self.services) > self.max_services:
            self.evicted.append(self.services.popitem(last=False)[1])
        return state

    def target(self) -> int | None:
        """First minute that stays open, from the newest event's minute alone (minutes before it
        may close). None: no event yet."""
        if self.max_minute is None:
            return None
        return self.max_minute - self.lateness
