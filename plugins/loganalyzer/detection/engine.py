"""The per-partition detection engine: buckets events by minute, closes minutes by watermark,
evaluates every tracked service (silent ones included), keeps episodes and baselines.

`observe()` is on the consumer's hot path: it mines the message's template (per service) and
increments a minute bucket. `advance()` closes the minutes the watermark has passed: absence of
data is seen there, not from arriving events. `snapshot()`/`restore()` make the state a
checkpoint so a restarted consumer neither alarms on an empty baseline nor goes blind.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from loganalyzer.detection.baseline import Baseline
from loganalyzer.detection.config import DetectionConfig, Thresholds
from loganalyzer.detection.detectors import (
    Finding,
    error_rate_spike,
    log_volume_drop,
    log_volume_spike,
    severity,
)
from loganalyzer.detection.episodes import Episode, EpisodeEvent, step
from loganalyzer.detection.features import Counts, window_counts, window_features
from loganalyzer.events import ERROR_LEVELS
from loganalyzer.patterns import Match, TemplateMiner

RULE_TYPES = ("error_rate_spike", "log_volume_spike", "log_volume_drop")
FAST_BUCKETS = 2
DEFAULT_FOREST = Thresholds().forest_score
#: scores window-feature rows; returns (scores, model version, calibrated threshold or None), or
#: None when no model is loaded
ForestScorer = Callable[[Sequence[tuple[float, ...]]], tuple[list[float], str, float | None] | None]


def minute_of(ts: datetime) -> int:
    return int(ts.timestamp()) // 60


def minute_start(m: int) -> datetime:
    return datetime.fromtimestamp(m * 60, tz=UTC)


@dataclass(slots=True)
class ServiceState:
    tenant: str
    service: str
    first_minute: int
    last_minute: int
    buckets: dict[int, Counts] = field(default_factory=dict)
    baseline: Baseline = field(default_factory=Baseline)
    episodes: dict[str, Episode] = field(default_factory=dict)
    miner: TemplateMiner = field(default_factory=TemplateMiner)
    messages: int = 0
    #: open new_error_pattern episode: its pattern ids -> last minute seen
    new_patterns: dict[str, int] = field(default_factory=dict)
    #: never-seen ERROR templates waiting for confirmation: id -> [first minute, occurrences]
    candidates: dict[str, list[int]] = field(default_factory=dict)
    #: occurrences since the last drain: pattern id -> [template, first, last, count, errors, sample]
    pattern_delta: dict[str, list[Any]] = field(default_factory=dict)


class DetectionEngine:
    def __init__(self, config: DetectionConfig, scorer: ForestScorer | None = None) -> None:
        self.config = config
        self.scorer = scorer
        self.services: OrderedDict[tuple[str, str], ServiceState] = OrderedDict()
        self.max_minute: int | None = None
        self.closed_upto: int | None = None  # minutes < closed_upto are closed
        self.dropped_late = 0
        self._lateness = max(0, math.ceil(config.allowed_lateness / timedelta(minutes=1)))
        self._pending: list[EpisodeEvent] = []

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
        """
        m = int(ts.timestamp()) // 60
        key = (tenant, service)
        state = self.services.get(key)
        if state is None:
            state = self._track(key, m)
        if self.closed_upto is not None and m < self.closed_upto:
            self.dropped_late += 1
            match = state.miner.add(message)  # counted in patterns, too late for its window
            if count_pattern:
                self._count(state, match, ts, level, message)
            return match
        if self.max_minute is None or m > self.max_minute:
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
        b.length_sum += len(message)
        state.messages += 1
        match = state.miner.add(message)
        if count_pattern:
            d = state.pattern_delta.get(match.pattern_id)
            if d is None:
                state.pattern_delta[match.pattern_id] = [match.template, ts, ts, 1, 0, message]
            else:
                if ts > d[2]:
                    d[2] = ts
                elif ts < d[1]:
                    d[1] = ts
                d[3] += 1
        if level in ERROR_LEVELS:
            if count_pattern:
                state.pattern_delta[match.pattern_id][4] += 1
            self._pattern(state, match, m, ts, message)
        elif state.new_patterns and match.pattern_id in state.new_patterns:
            state.new_patterns[match.pattern_id] = m
        return match

    def _count(self, state: ServiceState, match: Match, ts: datetime, level: str, message: str) -> None:
        d = state.pattern_delta.setdefault(match.pattern_id, [match.template, ts, ts, 0, 0, message])
        d[1], d[2] = min(d[1], ts), max(d[2], ts)
        d[3] += 1
        d[4] += level in ERROR_LEVELS

    def drain_patterns(self) -> list[tuple[str, str, str, str, datetime, datetime, int, int, str]]:
        """Pattern occurrences since the last drain, as (tenant, service, id, template, first,
        last, count, errors, sample); templates are the current (possibly generalised) ones."""
        out = []
        for state in self.services.values():
            if not state.pattern_delta:
                continue
            miner = state.miner
            for pid, (template, first, last, count, errors, sample) in state.pattern_delta.items():
                current = miner.resolve(pid)
                out.append(
                    (
                        state.tenant,
                        state.service,
                        current,
                        miner.template(current) or template,
                        first,
                        last,
                        count,
                        errors,
                        sample,
                    )
                )
            state.pattern_delta = {}
        return out

    def _pattern(self, state: ServiceState, match: Match, m: int, ts: datetime, message: str) -> None:
        cfg = self.config
        pid = match.pattern_id
        if state.new_patterns and pid in state.new_patterns:
            state.new_patterns[pid] = m
            return
        if match.is_new:
            if (
                state.messages >= cfg.pattern_warmup_messages
                and m - state.first_minute >= cfg.pattern_warmup_minutes
            ):
                state.candidates[pid] = [m, 1]
            return
        cand = state.candidates.get(pid)
        if cand is None:
            return
        if m - cand[0] >= cfg.pattern_confirm_minutes:
            del state.candidates[pid]
            return
        cand[1] += 1
        if cand[1] < cfg.pattern_min_occurrences:
            return
        del state.candidates[pid]
        m = cand[0]  # the episode starts where the pattern first appeared
        ep = state.episodes.get("new_error_pattern")
        if ep is None:
            start = minute_start(m)
            ep, event = step(
                None,
                tenant=state.tenant,
                service=state.service,
                kind="new_error_pattern",
                finding_ratio=1.0,
                severity="high",
                actual=1.0,
                expected=0.0,
                description=f"new ERROR pattern never seen for {state.service}: {match.template}",
                window_start=start,
                window_end=start + self.config.bucket,
                resolve_after=self.config.resolve_after,
                extra={
                    "template": match.template,
                    "sample_message": message[:1000],
                    "pattern_id": match.pattern_id,
                },
            )
            assert ep is not None and event is not None
            state.episodes["new_error_pattern"] = ep
            self._pending.append(event)
        else:
            ep.extra.setdefault("more_templates", []).append(match.template)
        state.new_patterns[pid] = m

    def _track(self, key: tuple[str, str], m: int) -> ServiceState:
        state = self.services[key] = ServiceState(key[0], key[1], first_minute=m, last_minute=m)
        while len(self.services) > self.config.max_services:
            self.services.popitem(last=False)
        return state

    # -- time -----------------------------------------------------------------------------------
    def advance(self, watermark: datetime | None = None) -> list[EpisodeEvent]:
        """Close every minute before the watermark (default: newest event time − allowed
        lateness) and evaluate all tracked services on it. Returns the episode changes."""
        events, self._pending = self._pending, []
        if watermark is not None:
            target = minute_of(watermark)
        elif self.max_minute is not None:
            target = self.max_minute - self._lateness
        else:
            return events
        if self.closed_upto is None:
            first = min((s.first_minute for s in self.services.values()), default=target)
            self.closed_upto = min(first, target)
        minutes = list(range(self.closed_upto, target))
        if not minutes:
            return events
        # Windows of every minute to close, gathered first (closing a minute only drops buckets
        # older than the next window), so the forest scores them all in ONE call: a replay
        # closes hundreds of minutes at once, and a model call costs milliseconds however small.
        readies = [self._ready(m) for m in minutes]
        scored: tuple[list[float], str, float | None] | None = None
        if self.scorer is not None and any(readies):
            scored = self.scorer([window_features(w) for ready in readies for _, w in ready])
        offset = 0
        for m, ready in zip(minutes, readies, strict=True):
            part = None
            if scored is not None:
                part = (scored[0][offset : offset + len(ready)], scored[1], scored[2])
                offset += len(ready)
            events.extend(self._close(m, ready, part))
            self.closed_upto = m + 1
        return events

    def _ready(self, m: int) -> list[tuple[ServiceState, list[Counts]]]:
        n = self.config.window_buckets
        return [
            (state, [state.buckets.get(k) or Counts() for k in range(m - n + 1, m + 1)])
            for state in self.services.values()
            if state.first_minute <= m
        ]

    def _close(
        self,
        m: int,
        ready: list[tuple[ServiceState, list[Counts]]],
        scored: tuple[list[float], str, float | None] | None,
    ) -> list[EpisodeEvent]:
        cfg = self.config
        n = cfg.window_buckets
        start, end = minute_start(m - n + 1), minute_start(m + 1)
        events: list[EpisodeEvent] = []
        scores: list[float] | None = None
        version = ""
        calibrated: float | None = None
        if scored is not None:
            scores, version, calibrated = scored
        for i, (state, window) in enumerate(ready):
            t = cfg.thresholds_for(state.tenant, state.service)
            minute = window[-1]
            warm = state.baseline.minutes >= cfg.warmup_minutes
            findings: dict[str, Finding | None] = dict.fromkeys(RULE_TYPES)
            exp = state.baseline.expected(minute_start(m))
            if warm:
                # The 5-minute window is the feature window; its last 2 minutes are evaluated
                # too, so that a sharp change is reported within ~2 minutes of event time.
                for k in (n, FAST_BUCKETS):
                    w = window_counts(window[-k:])
                    w_start = minute_start(m - k + 1)
                    expected_window = exp.volume * k
                    findings["error_rate_spike"] = findings["error_rate_spike"] or error_rate_spike(
                        w, exp, t, w_start, end
                    )
                    findings["log_volume_spike"] = findings["log_volume_spike"] or log_volume_spike(
                        w, expected_window, t, w_start, end
                    )
                    findings["log_volume_drop"] = findings["log_volume_drop"] or log_volume_drop(
                        w, expected_window, t, w_start, end
                    )
            anomalous = False
            for kind, f in findings.items():
                ep, event = step(
                    state.episodes.get(kind),
                    tenant=state.tenant,
                    service=state.service,
                    kind=kind,
                    finding_ratio=None if f is None else f.ratio,
                    severity=None if f is None else f.severity,
                    actual=0.0 if f is None else f.actual,
                    expected=0.0 if f is None else f.expected,
                    description="" if f is None else f.description,
                    window_start=start,
                    window_end=end,
                    resolve_after=cfg.resolve_after,
                )
                self._keep(state, kind, ep)
                if event is not None:
                    events.append(event)
                anomalous = anomalous or ep is not None
            if scores is not None and warm:
                score = scores[i]
                limit = (
                    calibrated
                    if calibrated is not None and t.forest_score == DEFAULT_FOREST
                    else t.forest_score
                )
                hit = score > limit
                ep, event = step(
                    state.episodes.get("isolation_forest"),
                    tenant=state.tenant,
                    service=state.service,
                    kind="isolation_forest",
                    finding_ratio=score if hit else None,
                    severity=severity(score / limit) if hit else None,
                    actual=score,
                    expected=limit,
                    description=f"IsolationForest score {score:.3f} above {limit:.3f} for the window "
                    f"{start:%H:%M}–{end:%H:%M} UTC (features: {_describe(window_features(window))})",
                    window_start=start,
                    window_end=end,
                    resolve_after=cfg.resolve_after,
                    extra={"model_version": version},
                )
                self._keep(state, "isolation_forest", ep)
                if event is not None:
                    events.append(event)
            # Never learn "normal" from an anomalous minute, nor from a minute far from the
            # baseline (the first minutes of a spike come before the window crosses the threshold).
            far = warm and exp.volume > 0 and not (exp.volume / 3 <= minute.total <= exp.volume * 3)
            if not anomalous and not far:
                state.baseline.update(minute_start(m), minute.total, minute.errors)
            events.extend(self._settle_patterns(state, m))
            for k in [k for k in state.buckets if k <= m - n + 1]:
                del state.buckets[k]
        return events

    def _settle_patterns(self, state: ServiceState, m: int) -> list[EpisodeEvent]:
        if state.candidates:
            horizon = m - self.config.pattern_confirm_minutes
            for pid in [p for p, (first, _) in state.candidates.items() if first < horizon]:
                del state.candidates[pid]
        ep = state.episodes.get("new_error_pattern")
        if ep is None or not state.new_patterns:
            return []
        last = max(state.new_patterns.values())
        ep.window_end = max(ep.window_end, minute_start(min(last, m) + 1))
        if m - last < self.config.resolve_after:
            return []
        ep.status, ep.resolved_at = "resolved", minute_start(last + 1)
        del state.episodes["new_error_pattern"]
        state.new_patterns.clear()
        return [EpisodeEvent("resolved", ep)]

    @staticmethod
    def _keep(state: ServiceState, kind: str, ep: Episode | None) -> None:
        if ep is None:
            state.episodes.pop(kind, None)
        else:
            state.episodes[kind] = ep

    # -- checkpoints ----------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        doc = {
            "max_minute": self.max_minute,
            "closed_upto": self.closed_upto,
            "dropped_late": self.dropped_late,
            "services": [
                [
                    s.tenant,
                    s.service,
                    s.first_minute,
                    s.last_minute,
                    [
                        [k, b.total, b.errors, b.warns, b.duration_sum, b.duration_n, b.length_sum]
                        for k, b in s.buckets.items()
                    ],
                    s.baseline.to_state(),
                    [e.to_state() for e in s.episodes.values()],
                    s.miner.to_state(),
                    s.messages,
                    s.new_patterns,
                    s.candidates,
                ]
                for s in self.services.values()
            ],
        }
        return orjson.dumps(doc)

    @classmethod
    def restore(
        cls, config: DetectionConfig, blob: bytes, scorer: ForestScorer | None = None
    ) -> DetectionEngine:
        doc = orjson.loads(blob)
        engine = cls(config, scorer)
        engine.max_minute = doc["max_minute"]
        engine.closed_upto = doc["closed_upto"]
        engine.dropped_late = doc["dropped_late"]
        for (
            tenant,
            service,
            first,
            last,
            buckets,
            baseline,
            episodes,
            miner,
            messages,
            new_patterns,
            candidates,
        ) in doc["services"]:
            state = ServiceState(tenant, service, first, last)
            state.buckets = {int(k): Counts(*rest) for k, *rest in buckets}
            state.baseline = Baseline.from_state(baseline)
            state.episodes = {e[3]: Episode.from_state(e) for e in episodes}
            state.miner = TemplateMiner.from_state(miner)
            state.messages = messages
            state.new_patterns = dict(new_patterns)
            state.candidates = {k: list(v) for k, v in candidates.items()}
            engine.services[(tenant, service)] = state
        return engine


def _describe(features: tuple[float, ...]) -> str:
    from loganalyzer.detection.features import FEATURE_NAMES

    return ", ".join(f"{n}={v:.3g}" for n, v in zip(FEATURE_NAMES, features, strict=True))
