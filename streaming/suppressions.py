"""Operator pattern suppressions as the consumer honours them: which anomaly rows are muted.

Why the consumer keeps a cache instead of joining the `suppressions` view on every write: the
view is read at most every `refresh_seconds`, and only when detection has anomaly rows to write,
so a batch without anomalies (nearly all of them) costs nothing. A suppression's end is checked
against the clock at each match, so one that ends between two reads stops applying on time;
a new one applies from the next read (at most `refresh_seconds` later).

Matching is exact on (tenant, service, pattern template): a suppression of tenant A never
mutes tenant B's service of the same name, nor another template of the same service.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Suppression:
    """One active pattern suppression (a row of the `suppressions` view)."""

    tenant: str
    service: str
    pattern_template: str
    #: end of the suppression; None: for good
    until: datetime | None
    feedback_id: int

    def active_at(self, now: datetime) -> bool:
        return self.until is None or self.until > now


def _longer(a: Suppression, b: Suppression) -> Suppression:
    """Of two suppressions of the same pattern, the one that lasts longer (for good wins)."""
    if a.until is None:
        return a
    if b.until is None:
        return b
    return a if a.until >= b.until else b


class SuppressionSet:
    """Active pattern suppressions, looked up by (tenant, service, template)."""

    def __init__(self, suppressions: Iterable[Suppression] = ()) -> None:
        self._by_key: dict[tuple[str, str, str], Suppression] = {}
        for s in suppressions:
            key = (s.tenant, s.service, s.pattern_template)
            old = self._by_key.get(key)
            self._by_key[key] = s if old is None else _longer(old, s)

    def __len__(self) -> int:
        return len(self._by_key)

    def match(
        self, tenant: str, service: str, pattern_template: str | None, now: datetime
    ) -> Suppression | None:
        """The suppression that mutes an anomaly of this tenant, service and template at `now`."""
        if pattern_template is None or not self._by_key:
            return None
        s = self._by_key.get((tenant, service, pattern_template))
        return s if s is not None and s.active_at(now) else None


class SuppressionCache:
    """The consumer's copy of the active suppressions, re-read when older than `refresh_seconds`.

    `load` reads the `suppressions` view (streaming.sink.suppressions); the cache lives in the
    consumer and outlives reconnections of the sink."""

    def __init__(self, refresh_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._set = SuppressionSet()
        self._loaded_at: float | None = None
        #: how many times the view was read (the metrics and tests look at it)
        self.loads = 0

    def current(self, load: Callable[[], Iterable[Suppression]]) -> SuppressionSet:
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at >= self.refresh_seconds:
            self._set = SuppressionSet(load())
            self._loaded_at = now
            self.loads += 1
        return self._set
