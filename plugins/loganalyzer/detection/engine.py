"""The per-partition detection engine: what the consumer calls, and in what order.

`observe()` is on the consumer's hot path: it counts the event in its service's minute bucket
(windows.py), mines its template (per service), tallies the template (pattern_counts.py) and
lets an ERROR line open a new-pattern episode (new_patterns.py); an event whose time moves the
watermark past open minutes closes them first (minute_close.py: rules, evidence, the forest's
gate, learning), every tracked service on each, silent ones included: absence of data is seen
there. `advance()` returns the episode changes and closes what an event time of the caller's
(an idle partition's, run on with the wall clock) has passed. `snapshot()`/`restore()` make the
state a versioned checkpoint (checkpoint.py), so a restarted consumer neither alarms on an empty
baseline nor goes blind; `warm_start()` (warm_start.py) rebuilds baselines from stored
per-minute counts when there is no checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from loganalyzer.detection import checkpoint, new_patterns, pattern_counts
from loganalyzer.detection.config import DetectionConfig
from loganalyzer.detection.episodes import EpisodeEvent
from loganalyzer.detection.features import window_features
from loganalyzer.detection.minute_close import Ready, close_minute
from loganalyzer.detection.service_state import ServiceState
from loganalyzer.detection.warm_start import HistoryRow, KnownPattern, warm_start
from loganalyzer.detection.windows import WindowStore, minute_of, minute_start
from loganalyzer.events import ERROR_LEVELS, service_key
from loganalyzer.patterns import Match, TemplateMiner

if TYPE_CHECKING:  # the model package needs numpy/sklearn; the engine runs without a model
    from loganalyzer.model.forest import ForestScores

__all__ = ["DetectionEngine", "ForestScorer"]

#: scores window-feature rows of the services named by the keys ("tenant/service"); returns
#: None when no model is loaded (scores are NaN for a service the model does not know)
ForestScorer = Callable[[Sequence[tuple[float, ...]], Sequence[str]], "ForestScores | None"]


class DetectionEngine:
    def __init__(self, config: DetectionConfig, scorer: ForestScorer | None = None) -> None:
        self.config = config
        self.scorer = scorer
        lateness = max(0, math.ceil(config.allowed_lateness / timedelta(minutes=1)))
        miner_config = config.miner_config()

        def new_service(tenant: str, service: str, m: int) -> ServiceState:
            return ServiceState(tenant, service, m, m, miner=TemplateMiner(miner_config))

        self._miner_config = miner_config
        self._store: WindowStore[ServiceState] = WindowStore(new_service, lateness, config.max_services)
        #: episode changes decided on the hot path (a new pattern, the minutes an event's time
        #: closed), returned by the next advance()
        self._pending: list[EpisodeEvent] = []
        #: the event time at which the oldest open minute closes (its end + the allowed
        #: lateness); None: not worked out yet (a new, restored or warmed engine)
        self._close_at: datetime | None = None

    # -- state the caller may read --------------------------------------------------------------
    @property
    def services(self) -> Mapping[tuple[str, str], ServiceState]:
        return self._store.services

    @property
    def closed_upto(self) -> int | None:
        """Minutes (since the epoch) before this one are closed."""
        return self._store.closed_upto

    @property
    def max_minute(self) -> int | None:
        return self._store.max_minute

    @property
    def dropped_late(self) -> int:
        """Events not counted because their minute had closed (they are still mined)."""
        return self._store.dropped_late

    # -- hot path -------------------------------------------------------------------------------
    def observe(
        self,
        ts: datetime,
        tenant: str,
        service: str,
        level: str,
        message: str,
        duration_ms: Any = None,
        count_pattern: bool = True,
    ) -> Match:
        """Count one event and mine its template; returns the template match.

        `count_pattern` False: the event is replayed for state only (already counted when stored).

        An event whose time carries the watermark past the end of open minutes closes them first
        (their episode changes wait for the next advance()): what the engine decides is then a
        function of the records and their order alone, never of how a caller grouped them into
        batches between advance() calls. Closing only in advance() let the batch boundaries
        decide whether a new-pattern episode had resolved before the next ERROR line arrived (a
        second episode, or one line more left out of the error rate), so a partition replayed
        after a rebalance, in other batches, could open episodes an uninterrupted run did not.
        """
        close_at = self._close_at
        if close_at is None or ts >= close_at:
            self._pass_watermark(ts)
        m = minute_of(ts)
        state, counted = self._store.count(m, tenant, service, level, len(message), duration_ms)
        match = state.miner.add(message)
        error = level in ERROR_LEVELS
        if count_pattern:
            pattern_counts.tally(state, match, ts, error, message)
        if not counted:  # too late for its window; still a pattern occurrence
            return match
        state.messages += 1
        if error:
            opened = new_patterns.on_error_line(self.config, state, match, m, ts, message)
            if opened is not None:
                self._pending.append(opened)
        elif state.new_patterns:
            new_patterns.on_other_line(state, match.pattern_id, m)
        return match

    def drain_patterns(self) -> list[pattern_counts.PatternCount]:
        """Pattern occurrences since the last drain, as (tenant, service, id, template, first,
        last, count, errors, sample); templates are the current (possibly generalised) ones."""
        return pattern_counts.drain(self._store.services.values())

    # -- time -----------------------------------------------------------------------------------
    def advance(self, now: datetime | None = None) -> list[EpisodeEvent]:
        """Close every minute the watermark has passed and evaluate all tracked services on it.

        `now` is the partition's event time: its newest event's timestamp, or on an idle
        partition that plus the time it has been quiet (so that silence is still seen). The
        watermark is `now` minus the allowed lateness, to the second: a minute closes as soon as
        it lies wholly before the watermark. The events observed have closed what their own
        times passed already (`observe`), so `now` at the newest event closes nothing more;
        without `now` the engine closes whole minutes from the newest event's minute (newest
        minute − ceil(lateness)), which is never more. Returns the episode changes since the last
        call (pattern episodes opened and minutes closed by events, then those closed here)."""
        events, self._pending = self._pending, []
        store = self._store
        if store.evicted:
            events.extend(_forget(store.evicted))
            store.evicted = []
        target = store.target()
        if now is not None:
            explicit = minute_of(now - self.config.allowed_lateness)
            target = explicit if target is None else max(target, explicit)
        if target is not None:
            events.extend(self._close_until(target))
        return events

    def _pass_watermark(self, ts: datetime) -> None:
        """An event of time `ts` moves the watermark to ts − allowed lateness: close the minutes
        wholly before it. The first event of an engine that tracks nothing yet closes the
        (empty) minutes before its own watermark, so the oldest open minute is always
        `closed_upto` and the next closing time follows from the checkpointed state alone."""
        store = self._store
        target = minute_of(ts - self.config.allowed_lateness)
        if store.closed_upto is None and not store.services:
            store.closed_upto = target
        if store.closed_upto is None or target > store.closed_upto:
            self._pending.extend(self._close_until(target))
        self._next_close()

    def _next_close(self) -> None:
        closed = self._store.closed_upto
        self._close_at = None if closed is None else minute_start(closed + 1) + self.config.allowed_lateness

    def _close_until(self, target: int) -> list[EpisodeEvent]:
        """Close the minutes before `target` that are still open."""
        store = self._store
        if store.closed_upto is None:
            first = min((s.first_minute for s in store.services.values()), default=target)
            store.closed_upto = min(first, target)
        minutes = list(range(store.closed_upto, target))
        events: list[EpisodeEvent] = []
        if not minutes:
            self._next_close()
            return events
        cfg = self.config
        if self.scorer is None:
            for m in minutes:
                events.extend(close_minute(cfg, m, self._ready(m), None))
                store.closed_upto = m + 1
            self._next_close()
            return events
        # Windows of every minute to close, gathered first (closing a minute only drops buckets
        # older than the next window), so the forest scores them all in ONE call: an event after
        # a gap, or an idle partition's advance, closes many minutes at once, and a model call
        # costs milliseconds however small. (Events of dense traffic close one minute at a time,
        # so a replay makes one call per minute of event time.)
        readies = [self._ready(m) for m in minutes]
        scored: ForestScores | None = None
        if any(readies):
            scored = self.scorer(
                [window_features(w) for ready in readies for _, w in ready],
                [service_key(s.tenant, s.service) for ready in readies for s, _ in ready],
            )
        offset = 0
        for m, ready in zip(minutes, readies, strict=True):
            part = None
            if scored is not None:
                part = scored._replace(
                    scores=scored.scores[offset : offset + len(ready)],
                    deviations=scored.deviations[offset : offset + len(ready)],
                )
                offset += len(ready)
            events.extend(close_minute(cfg, m, ready, part))
            store.closed_upto = m + 1
        self._next_close()
        return events

    def _ready(self, m: int) -> list[Ready]:
        n = self.config.window_buckets
        return [(s, s.window(m, n)) for s in self._store.services.values() if s.first_minute <= m]

    # -- cold start -----------------------------------------------------------------------------
    def warm_start(
        self,
        history: Iterable[HistoryRow],
        open_from: int | None = None,
        patterns: Iterable[KnownPattern] = (),
    ) -> int:
        """Rebuild baselines from stored per-minute counts when there is no checkpoint
        (warm_start.py). Returns the number of services warmed."""
        warmed = warm_start(self.config, self._store, history, open_from, patterns)
        self._next_close()
        return warmed

    # -- checkpoints ----------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The state as a JSON checkpoint (checkpoint.py; what the consumer stores in
        detector_checkpoints)."""
        return orjson.dumps(checkpoint.dump(self._store, self._pending))

    @classmethod
    def restore(
        cls,
        config: DetectionConfig,
        blob: bytes | str | Mapping[str, Any],
        scorer: ForestScorer | None = None,
    ) -> DetectionEngine:
        """An engine from `snapshot()` bytes or their parsed document, of this version or one
        checkpoint.py migrates. Raises checkpoint.CheckpointVersionError for another version,
        ValueError/KeyError/TypeError on a damaged one."""
        doc: Mapping[str, Any] = blob if isinstance(blob, Mapping) else orjson.loads(blob)
        engine = cls(config, scorer)
        store = engine._store
        engine._pending = checkpoint.load(doc, store, engine._miner_config)
        while len(store.services) > config.max_services:  # a smaller limit than when saved
            store.evicted.append(store.services.popitem(last=False)[1])
        return engine


def _forget(evicted: list[ServiceState]) -> list[EpisodeEvent]:
    """Services pushed out by max_services: close their open episodes rather than leave rows
    open for ever in the database (marked, so a reader knows it was not a recovery)."""
    out: list[EpisodeEvent] = []
    for state in evicted:
        for ep in state.episodes.values():
            ep.status = "resolved"
            ep.resolved_at = max(ep.window_end, minute_start(state.last_minute + 1))
            ep.extra["evicted"] = True
            ep.description += " (no longer tracked: too many services on this partition)"
            out.append(EpisodeEvent("resolved", ep))
        state.episodes.clear()
    return out
