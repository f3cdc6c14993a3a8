"""The per-partition detection engine: buckets events by minute, closes minutes by watermark,
evaluates every tracked service (silent ones included), keeps episodes and baselines.

`observe()` is on the consumer's hot path: it increments a minute bucket and mines the
message's template (per service). `count()` is the same without mining, for callers that mine
elsewhere. `advance()` closes the minutes the watermark has passed: absence of data is seen
there, not from arriving events. `snapshot()`/`restore()` make the state a checkpoint so a
restarted consumer neither alarms on an empty baseline nor goes blind; `warm_start()` rebuilds
baselines from stored per-minute counts when there is no checkpoint.

Learning: a closed minute updates the baseline only when it looks normal: no volume/error/forest
episode open for the service and the volume within `max_deviation` of the expectation. After
`relearn_after_minutes` consecutive skipped minutes, non-silent minutes are learned again: a
lasting level shift becomes the new normal (and its episode resolves) instead of alarming for
ever. Silence is never learned: a dead service stays an open drop until it logs again.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from loganalyzer.detection.baseline import Baseline, Expected
from loganalyzer.detection.config import DetectionConfig, DetectorThresholds
from loganalyzer.detection.detectors import (
    Finding,
    error_rate_spike,
    log_volume_drop,
    log_volume_spike,
    severity,
    span,
    sustained_drop,
    sustained_errors,
)
from loganalyzer.detection.episodes import SEVERITY_RANK, Episode, EpisodeEvent, step
from loganalyzer.detection.evidence import Dispersion, DropEvidence, ErrorCusum
from loganalyzer.detection.features import FEATURE_NAMES, Counts, window_counts, window_features
from loganalyzer.detection.windows import ServiceBuckets, WindowStore, minute_of, minute_start
from loganalyzer.events import ERROR_LEVELS, LogEvent, service_key
from loganalyzer.patterns import Match, TemplateMiner

if TYPE_CHECKING:  # the model package needs numpy/sklearn; the engine runs without a model
    from loganalyzer.model.forest import ForestScores

__all__ = ["RULE_TYPES", "DetectionEngine", "ForestScorer", "ServiceState", "minute_of", "minute_start"]

RULE_TYPES = ("error_rate_spike", "log_volume_spike", "log_volume_drop")
#: episode types whose open episode means the service's minutes are not normal (not the forest:
#: it is the least precise signal, and a false positive would freeze the baseline)
_LEARNING_BLOCKERS = RULE_TYPES
#: open episodes that already explain an anomalous window: the forest opens no episode of its own
#: beside them (one incident, one row: an error burst or an outage is also far out on the forest's
#: features; bench_detection counted 47 such second rows on 100 incidents). An open forest episode
#: still continues, and the forest still opens once they are over if the window stays out.
_EXPLAINED_BY = (*RULE_TYPES, "new_error_pattern")
DEFAULT_FOREST = DetectorThresholds().forest_score
#: consecutive anomalous windows that open a forest episode: one odd window is the price of a
#: 0.1 % calibration, two in a row are not (measured: precision 0.67 -> 0.92 at equal recall)
FOREST_PERSISTENCE = 2
#: ... unless the window is DECISIVELY out: a feature this many robust standard deviations from
#: the service's normal (the model's own standardised input). That alone opens an episode, even
#: with the score under its threshold: an isolation tree splits on a random feature, so a window
#: far out on ONE of six features is isolated only a little sooner, and the score saturates (a
#: 6x latency incident's first windows scored below the threshold at 9-25 SD out, which delayed
#: the median detection to 1.9 minutes of event time; measured in bench/bench_detection.py).
FOREST_DECISIVE_Z = 6.0
#: and never on a window whose every feature is within this many deviations of normal: the
#: forest then reacts to a rare COMBINATION of ordinary values, which on measured traffic was
#: every one of its false alarms and none of its incidents
FOREST_MIN_Z = 3.0
STATE_VERSION = 2
#: error CUSUM at which a minute is no longer learned: about two minutes at twice the expected
#: errors. Under normal traffic: ~5 % of minutes at one expected error a minute, under 2 % from
#: five on, up to ~9 % where errors are rarer and the error-rate floor is the expectation anyway
#: (tests/unit/test_evidence.py)
LEARN_BLOCK_CUSUM = 2.0
#: scores window-feature rows of the services named by the keys ("tenant/service"); returns
#: None when no model is loaded (scores are NaN for a service the model does not know)
ForestScorer = Callable[[Sequence[tuple[float, ...]], Sequence[str]], "ForestScores | None"]
#: (tenant, service, minute since the epoch, what it logged then): what warm_start reads
#: (loganalyzer.db.minute_counts.minute_rows gives them from `logs`)
HistoryRow = tuple[str, str, int, Counts]


@dataclass(slots=True)
class ServiceState(ServiceBuckets):
    baseline: Baseline = field(default_factory=Baseline)
    episodes: dict[str, Episode] = field(default_factory=dict)
    miner: TemplateMiner = field(default_factory=TemplateMiner)
    messages: int = 0
    #: open new_error_pattern episode: its pattern ids -> last minute seen
    new_patterns: dict[str, int] = field(default_factory=dict)
    #: never-seen ERROR templates waiting for confirmation: id -> [first minute, occurrences]
    candidates: dict[str, list[int]] = field(default_factory=dict)
    #: ERROR lines of the open new_error_pattern episode's patterns, per minute (kept as long as
    #: the minute's bucket): the error-rate rule and the error baseline leave them out
    pattern_errors: dict[int, int] = field(default_factory=dict)
    #: occurrences since the last drain: pattern id -> [template, first, last, count, errors, sample]
    pattern_delta: dict[str, list[Any]] = field(default_factory=dict)
    #: consecutive closed minutes not learned from (see relearn_after_minutes)
    skipped: int = 0
    #: consecutive windows the forest scored above its threshold (FOREST_PERSISTENCE opens)
    forest_streak: int = 0
    #: thresholds_for(tenant, service), resolved once (the config is immutable)
    thresholds: DetectorThresholds | None = None
    #: extra-Poisson variance of the per-minute volume (learned from normal minutes)
    dispersion: Dispersion = field(default_factory=Dispersion)
    #: the current run of low minutes and how improbable it is
    drop: DropEvidence = field(default_factory=DropEvidence)
    #: accumulated evidence of a sustained error rise
    cusum: ErrorCusum = field(default_factory=ErrorCusum)


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
        self._pending: list[EpisodeEvent] = []

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
        """
        m = minute_of(ts)
        state, counted = self._store.count(m, tenant, service, level, len(message), duration_ms)
        match = state.miner.add(message)
        if not counted:  # too late for its window; still a pattern occurrence
            if count_pattern:
                self._count_pattern(state, match, ts, level, message)
            return match
        state.messages += 1
        error = level in ERROR_LEVELS
        if count_pattern:
            d = state.pattern_delta.get(match.pattern_id)
            if d is None:
                state.pattern_delta[match.pattern_id] = [match.template, ts, ts, 1, int(error), message]
            else:
                if ts > d[2]:
                    d[2] = ts
                elif ts < d[1]:
                    d[1] = ts
                d[3] += 1
                d[4] += error
        if error:
            self._pattern(state, match, m, ts, message)
        elif state.new_patterns and match.pattern_id in state.new_patterns:
            state.new_patterns[match.pattern_id] = m
        return match

    def observe_event(self, event: LogEvent, count_pattern: bool = True) -> Match:
        """`observe` for a parsed LogEvent (duration from metadata.duration_ms when a number)."""
        return self.observe(
            event.timestamp,
            event.tenant,
            event.service,
            event.level,
            event.message,
            event.metadata.get("duration_ms"),
            count_pattern,
        )

    def count(
        self,
        ts: datetime,
        tenant: str,
        service: str,
        level: str,
        message_length: int,
        duration_ms: Any = None,
    ) -> bool:
        """Bucket counts only, no template mining (patterns are then the caller's business, see
        `report_new_pattern`). False when the event's minute is already closed."""
        m = minute_of(ts)
        return self._store.count(m, tenant, service, level, message_length, duration_ms)[1]

    # -- patterns -------------------------------------------------------------------------------
    def _count_pattern(
        self, state: ServiceState, match: Match, ts: datetime, level: str, message: str
    ) -> None:
        d = state.pattern_delta.setdefault(match.pattern_id, [match.template, ts, ts, 0, 0, message])
        d[1], d[2] = min(d[1], ts), max(d[2], ts)
        d[3] += 1
        d[4] += level in ERROR_LEVELS

    def drain_patterns(self) -> list[tuple[str, str, str, str, datetime, datetime, int, int, str]]:
        """Pattern occurrences since the last drain, as (tenant, service, id, template, first,
        last, count, errors, sample); templates are the current (possibly generalised) ones."""
        out = []
        for state in self._store.services.values():
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
        """An ERROR/FATAL occurrence: is it a never-seen template that keeps recurring?"""
        cfg = self.config
        pid = match.pattern_id
        if state.new_patterns and pid in state.new_patterns:
            state.new_patterns[pid] = m
            state.pattern_errors[m] = state.pattern_errors.get(m, 0) + 1
            return
        if match.is_new:
            if (
                state.messages >= cfg.pattern_warmup_messages
                and m - state.first_minute >= cfg.pattern_warmup_minutes
            ):
                if cfg.pattern_min_occurrences <= 1:
                    self._open_pattern(state, pid, match.template, message, m, m, ts)
                    state.pattern_errors[m] = state.pattern_errors.get(m, 0) + 1
                else:
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
        # the episode starts where the pattern first appeared
        self._open_pattern(state, pid, match.template, message, cand[0], m, ts)
        # its lines so far, in the minute that confirmed it (their own minutes may have closed)
        state.pattern_errors[m] = state.pattern_errors.get(m, 0) + cand[1]

    def report_new_pattern(
        self,
        tenant: str,
        service: str,
        template: str,
        sample_message: str,
        at: datetime,
        pattern_id: str | None = None,
    ) -> bool:
        """Hook for a caller that mines templates itself: a new ERROR pattern was seen at `at`.

        Opens the service's new_error_pattern episode (or adds the template to the open one);
        the change is returned by the next `advance()`. The episode resolves once none of its
        patterns has occurred for `resolve_after` closed minutes; a caller-reported pattern
        counts as occurring only when reported again (same `pattern_id`, default the template).
        Returns True when a new episode was opened.
        """
        m = minute_of(at)
        state = self._store.services.get((tenant, service))
        if state is None:
            state = self._store.track((tenant, service), m)
        had = "new_error_pattern" in state.episodes
        self._open_pattern(state, pattern_id or template, template, sample_message, m, m, at)
        return not had

    def _open_pattern(
        self,
        state: ServiceState,
        pid: str,
        template: str,
        message: str,
        first: int,
        last: int,
        seen_at: datetime,
    ) -> None:
        ep = state.episodes.get("new_error_pattern")
        if ep is None:
            start = minute_start(first)
            ep, event = step(
                None,
                tenant=state.tenant,
                service=state.service,
                kind="new_error_pattern",
                finding_ratio=1.0,
                severity="high",
                actual=1.0,
                expected=0.0,
                description=_pattern_description(state.service, template),
                window_start=start,
                window_end=start + self.config.bucket,
                resolve_after=self.config.resolve_after,
                extra={
                    "template": template,
                    "sample_message": message[:1000],
                    "pattern_id": pid,
                    # decided on the hot path, by the occurrence that confirmed it
                    "emitted_at": seen_at.isoformat(),
                },
            )
            assert ep is not None and event is not None
            state.episodes["new_error_pattern"] = ep
            self._pending.append(event)
        elif pid not in state.new_patterns:
            ep.extra.setdefault("more_templates", []).append(template)
        state.new_patterns[pid] = max(last, state.new_patterns.get(pid, last))

    # -- time -----------------------------------------------------------------------------------
    def advance(self, now: datetime | None = None) -> list[EpisodeEvent]:
        """Close every minute the watermark has passed and evaluate all tracked services on it.

        `now` is the partition's event time: its newest event's timestamp, or on an idle
        partition that plus the time it has been quiet (so that silence is still seen). The
        watermark is `now` minus the allowed lateness, to the second: a minute closes as soon as
        it lies wholly before the watermark. Without `now` the engine only knows the newest
        event's minute and closes whole minutes (newest minute − ceil(lateness)), which is never
        earlier. Returns the episode changes (including pattern episodes opened since the last
        call)."""
        events, self._pending = self._pending, []
        store = self._store
        if store.evicted:
            events.extend(self._forget(store.evicted))
            store.evicted = []
        target = store.target()
        if now is not None:
            explicit = minute_of(now - self.config.allowed_lateness)
            target = explicit if target is None else max(target, explicit)
        if target is not None:
            events.extend(self._close_until(target))
        return events

    def _close_until(self, target: int) -> list[EpisodeEvent]:
        """Close the minutes before `target` that are still open."""
        store = self._store
        if store.closed_upto is None:
            first = min((s.first_minute for s in store.services.values()), default=target)
            store.closed_upto = min(first, target)
        minutes = list(range(store.closed_upto, target))
        events: list[EpisodeEvent] = []
        if not minutes:
            return events
        if self.scorer is None:
            for m in minutes:
                events.extend(self._close(m, self._ready(m), None))
                store.closed_upto = m + 1
            return events
        # Windows of every minute to close, gathered first (closing a minute only drops buckets
        # older than the next window), so the forest scores them all in ONE call: a replay
        # closes hundreds of minutes at once, and a model call costs milliseconds however small.
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
            events.extend(self._close(m, ready, part))
            store.closed_upto = m + 1
        return events

    def _ready(self, m: int) -> list[tuple[ServiceState, list[Counts]]]:
        n = self.config.window_buckets
        return [(s, s.window(m, n)) for s in self._store.services.values() if s.first_minute <= m]

    def _close(
        self,
        m: int,
        ready: list[tuple[ServiceState, list[Counts]]],
        scored: ForestScores | None,
    ) -> list[EpisodeEvent]:
        cfg = self.config
        n = cfg.window_buckets
        fast = cfg.fast_window_buckets
        bs = cfg.baseline
        start, end = minute_start(m - n + 1), minute_start(m + 1)
        fast_start = minute_start(m - fast + 1)
        keep_from = m - n + 2
        events: list[EpisodeEvent] = []
        scores: list[float] | None = None
        deviations: list[tuple[float, ...] | None] = []
        version = ""
        calibrated: float | None = None
        if scored is not None:
            scores, version, calibrated, deviations = scored
        for i, (state, window) in enumerate(ready):
            t = state.thresholds
            if t is None:
                t = state.thresholds = cfg.thresholds_for(state.tenant, state.service)
            minute = window[-1]
            warm = state.baseline.minutes >= cfg.warmup_minutes
            exp = state.baseline.expected(m, bs)
            found: dict[str, Finding] = {}
            if warm:
                # The 5-minute window is the feature window; its newest minute(s) are evaluated
                # too, so that a sharp change is reported within ~1 minute of event time (the
                # rules' volume and sigma guards keep one minute from alarming on noise).
                w_full = window_counts(window)
                w_fast = window_counts(window[-fast:]) if fast < n else None
                if state.pattern_errors:
                    events.extend(self._pattern_error_rate(state, w_full, exp, t, start, end))
                    w_full = _without_pattern_errors(w_full, state.pattern_errors, m - n + 1, m)
                    if w_fast is not None:
                        w_fast = _without_pattern_errors(w_fast, state.pattern_errors, m - fast + 1, m)
                disp = state.dispersion.index(exp.volume)
                _rules(found, w_full, exp, exp.volume * n, t, start, end, disp)
                if w_fast is not None:
                    _rules(found, w_fast, exp, exp.volume * fast, t, fast_start, end, disp)
                self._evidence(state, found, m, minute, exp, t, end)
            episodes = state.episodes
            if found or episodes:
                for kind in RULE_TYPES:
                    f = found.get(kind)
                    if f is None and kind not in episodes:
                        continue
                    ep, event = step(
                        episodes.get(kind),
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
                    _keep(episodes, kind, ep)
                    if event is not None:
                        events.append(event)
            if scores is not None and warm:
                event = self._forest(
                    state, scores[i], deviations[i], calibrated, version, t, window, start, end
                )
                if event is not None:
                    events.append(event)
            self._learn(state, m, minute, exp, warm)
            if state.new_patterns or state.candidates:
                events.extend(self._settle_patterns(state, m))
            state.prune(keep_from)
            if state.pattern_errors and min(state.pattern_errors) < keep_from:
                state.pattern_errors = {k: v for k, v in state.pattern_errors.items() if k >= keep_from}
        if events:
            # the event time the row is released at: the watermark that closed this minute (in
            # live traffic the event that moves it past arrives right then; a replay's batches
            # span minutes, so the batch's newest event time would overstate the delay)
            emitted = (end + cfg.allowed_lateness).isoformat()
            for e in events:
                if e.kind == "opened":
                    e.episode.extra.setdefault("emitted_at", emitted)
        return events

    def _forest(
        self,
        state: ServiceState,
        score: float,
        deviation: tuple[float, ...] | None,
        calibrated: float | None,
        version: str,
        t: DetectorThresholds,
        window: list[Counts],
        start: datetime,
        end: datetime,
    ) -> EpisodeEvent | None:
        if math.isnan(score):  # the model does not know this service
            return None
        limit = calibrated if calibrated is not None and t.forest_score == DEFAULT_FOREST else t.forest_score
        # how far the window is from the service's normal, and on which feature
        peak, peak_i = (0.0, -1) if deviation is None else max((abs(z), i) for i, z in enumerate(deviation))
        decisive = peak >= FOREST_DECISIVE_Z
        hit = decisive or (score > limit and (deviation is None or peak >= FOREST_MIN_Z))
        state.forest_streak = state.forest_streak + 1 if hit else 0
        if "isolation_forest" not in state.episodes and (
            (state.forest_streak < FOREST_PERSISTENCE and not decisive) or _explained(state, end)
        ):
            return None
        why = ""
        if deviation is not None:
            z = deviation[peak_i]
            why = f"; furthest from this service's normal: {FEATURE_NAMES[peak_i]} at {z:+.1f} robust SD"
        ep, event = step(
            state.episodes.get("isolation_forest"),
            tenant=state.tenant,
            service=state.service,
            kind="isolation_forest",
            finding_ratio=score if hit else None,
            # how far beyond normal: the score's excess, or the furthest feature's distance in
            # units of the gate (the score alone saturates, see FOREST_DECISIVE_Z)
            severity=severity(max(score / limit if limit > 0 else 1.0, peak / FOREST_MIN_Z)) if hit else None,
            actual=score,
            expected=limit,
            description=(
                f"IsolationForest score {score:.3f} above {limit:.3f} for the window {span(start, end)}"
                if score > limit
                else f"window {span(start, end)} decisively outside this service's normal "
                f"(≥ {FOREST_DECISIVE_Z:g} robust SD; IsolationForest score {score:.3f}, "
                f"threshold {limit:.3f})"
            )
            + f"{why} (features: {_describe(window_features(window))})",
            window_start=start,
            window_end=end,
            resolve_after=self.config.resolve_after,
            extra={"model_version": version}
            if deviation is None
            else {
                "model_version": version,
                "deviations": {n: round(z, 2) for n, z in zip(FEATURE_NAMES, deviation, strict=True)},
            },
        )
        _keep(state.episodes, "isolation_forest", ep)
        return event

    def _pattern_error_rate(
        self,
        state: ServiceState,
        w: Counts,
        exp: Expected,
        t: DetectorThresholds,
        start: datetime,
        end: datetime,
    ) -> list[EpisodeEvent]:
        """The error rate a new pattern's lines make, told on its own episode.

        Why: a new error at 15 % of a service's lines is also an error-rate spike, and one
        incident must be one row. So the error-rate rule leaves the open pattern episode's lines
        out (it still fires for errors beyond them), and the pattern episode carries the rate
        they make, its peak, and the severity that rate would have had. A change is written when
        the rate first crosses the threshold or the severity rises; a later, higher peak rides
        along with the episode's next change."""
        ep = state.episodes.get("new_error_pattern")
        f = error_rate_spike(w, exp, t, start, end) if ep is not None else None
        if ep is None or f is None:
            return []
        prior = ep.extra.get("error_rate")
        if prior is not None and f.ratio <= prior["ratio"]:
            return []
        ep.extra["error_rate"] = {
            "actual": f.actual,
            "expected": f.expected,
            "ratio": f.ratio,
            "description": f.description,
        }
        raised = SEVERITY_RANK[f.severity] > SEVERITY_RANK[ep.severity]
        if raised:
            ep.severity = f.severity
        ep.description = f"{_pattern_description(ep.service, ep.extra['template'])}; with it, {f.description}"
        return [EpisodeEvent("updated", ep)] if prior is None or raised else []

    def _evidence(
        self,
        state: ServiceState,
        found: dict[str, Finding],
        m: int,
        minute: Counts,
        exp: Expected,
        t: DetectorThresholds,
        end: datetime,
    ) -> None:
        """Evidence accumulated over minutes (evidence.py): the improbability of a run of low
        minutes (silence of a quiet service, an outage of a bursty one), and the error CUSUM."""
        drop = state.drop
        score = drop.update(minute.total, exp.volume, state.dispersion.cv2, t.volume_drop_factor)
        if "log_volume_drop" not in found and drop.minutes:
            f = sustained_drop(drop.actual, drop.expected, score, t, minute_start(m - drop.minutes + 1), end)
            if f is not None:
                found["log_volume_drop"] = f
        errors = minute.errors - state.pattern_errors.get(m, 0) if state.pattern_errors else minute.errors
        base = max(exp.error_rate, t.error_rate_floor)
        cusum = state.cusum
        cusum.update(max(0, errors), base * minute.total, t.error_rate_factor)
        if cusum.alarming(t.error_cusum) and "error_rate_spike" not in found:
            found["error_rate_spike"] = sustained_errors(
                cusum.errors, cusum.expected, base, t, minute_start(m - len(cusum.recent) + 1), end
            )

    def _learn(self, state: ServiceState, m: int, minute: Counts, exp: Expected, warm: bool) -> None:
        """Learn minute m unless it is anomalous (see the module docstring)."""
        bs = self.config.baseline
        episodes = state.episodes
        t = state.thresholds or self.config.thresholds
        blocked = (bool(episodes) and any(k in episodes for k in _LEARNING_BLOCKERS)) or (
            # evidence building up: a ramp or a silence is not learned before it alarms (else
            # the expectation follows the rise and the evidence never reaches the threshold)
            state.drop.score >= t.drop_evidence / 4 or state.cusum.statistic >= LEARN_BLOCK_CUSUM
        )
        total = minute.total
        vol = exp.volume
        # far: outside the factor band AND beyond Poisson noise (an empty minute of a service
        # that logs once every few minutes is normal)
        far = (
            warm
            and vol > 0
            and not (vol / bs.max_deviation <= total <= vol * bs.max_deviation)
            and abs(total - vol) > 3.0 * math.sqrt(max(vol, 1.0))
        )
        if blocked or far:
            state.skipped += 1
            if not (bs.relearn_after_minutes and state.skipped > bs.relearn_after_minutes and total > 0):
                return
        else:
            state.skipped = 0
        errors = minute.errors - state.pattern_errors.get(m, 0) if state.pattern_errors else minute.errors
        if warm and not blocked and not far:
            state.dispersion.update(total, vol)
        state.baseline.update(m, total, max(0, errors), bs)

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

    def _forget(self, evicted: list[ServiceState]) -> list[EpisodeEvent]:
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

    # -- cold start -----------------------------------------------------------------------------
    def warm_start(
        self,
        history: Iterable[HistoryRow],
        open_from: int | None = None,
        patterns: Iterable[tuple[str, str, str, str, int]] = (),
    ) -> int:
        """Rebuild baselines from stored per-minute counts when there is no checkpoint.

        `history` rows are (tenant, service, minute, Counts), ordered by tenant, service, minute
        (`minute_rows`). Minutes before `open_from` are learned: minutes missing between a
        service's first and last row are empty minutes, the same learning rule as live applies
        (outliers and silence are not learned), no episode is raised, and they count as closed
        afterwards. Minutes from `open_from` on (the newest, whose events may still be coming)
        become open buckets, which the events read after the stored ones complete. Each
        service's last window is kept so the first live windows are complete (durations and
        message lengths included: the forest's features of those windows must not look like an
        anomaly).

        `patterns` are the warmed services' known templates, (tenant, service, pattern id,
        template, count), least recently seen first (log_patterns): the miner relearns each
        (`TemplateMiner.learn`), and their counts count as messages seen. Without them a warmed
        service would start the new-pattern warm-up over (500 messages blind to new errors)
        and then call every known-but-rare template "new". Returns the number of services
        warmed."""
        cfg = self.config
        n = cfg.window_buckets
        store = self._store
        current: ServiceState | None = None
        last = -1
        newest: int | None = None
        seen: set[tuple[str, str]] = set()
        tail: deque[tuple[int, Counts]] = deque(maxlen=n - 1)

        def finish(state: ServiceState) -> None:
            for k, c in tail:
                if k not in state.buckets:
                    state.buckets[k] = c
            tail.clear()

        for tenant, service, m, minute in history:
            key = (tenant, service)
            if current is None or key != (current.tenant, current.service):
                if current is not None:
                    finish(current)
                if key in seen:
                    raise ValueError(
                        f"warm_start: history is not ordered by service ({tenant}/{service} again)"
                    )
                seen.add(key)
                current = store.services.get(key) or store.track(key, m)
                current.first_minute = min(current.first_minute, m)
                last = m - 1
            elif m <= last:
                raise ValueError(f"warm_start: minutes of {tenant}/{service} are not increasing at {m}")
            state = current
            if open_from is not None and m >= open_from:  # still open: counted, not learned
                state.buckets[m] = minute
                state.last_minute = max(state.last_minute, m)
                store.max_minute = m if store.max_minute is None else max(store.max_minute, m)
                last = m
                continue
            for gap in range(last + 1, m):  # empty minutes (as the live engine would see them)
                self._learn(
                    state, gap, Counts(), state.baseline.expected(gap, cfg.baseline), self._warm(state)
                )
                tail.append((gap, Counts()))
            self._learn(state, m, minute, state.baseline.expected(m, cfg.baseline), self._warm(state))
            tail.append((m, minute))
            state.last_minute = max(state.last_minute, m)
            last = m
            newest = m if newest is None else max(newest, m)
        if current is not None:
            finish(current)
        if newest is not None:
            store.closed_upto = max(store.closed_upto or newest + 1, newest + 1)
            store.max_minute = max(store.max_minute or newest, newest)
            # recency order for eviction: least recently active first
            for key, _ in sorted(store.services.items(), key=lambda kv: kv[1].last_minute):
                store.services.move_to_end(key)
            for state in store.services.values():
                state.prune(store.closed_upto - n + 1)
        for tenant, service, pattern_id, template, count in patterns:
            known = store.services.get((tenant, service))
            if known is not None and (tenant, service) in seen:
                known.miner.learn(pattern_id, template, count)
                known.messages += count
        return len(seen)

    def _warm(self, state: ServiceState) -> bool:
        return state.baseline.minutes >= self.config.warmup_minutes

    # -- checkpoints ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The whole engine as JSON-compatible data (ints, floats, strings, lists, dicts)."""
        store = self._store
        return {
            "version": STATE_VERSION,
            "max_minute": store.max_minute,
            "closed_upto": store.closed_upto,
            "dropped_late": store.dropped_late,
            "pending": [[e.kind, e.episode.to_state()] for e in self._pending],
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
                    s.skipped,
                    s.forest_streak,
                    [[k, v] for k, v in s.pattern_errors.items()],
                    {
                        "cv2": s.dispersion.cv2,
                        "cv2_n": s.dispersion.n,
                        "drop": [s.drop.score, s.drop.minutes, s.drop.expected, s.drop.actual],
                        "cusum": [s.cusum.statistic, s.cusum.errors, s.cusum.expected, s.cusum.recent],
                    },
                ]
                for s in store.services.values()
            ],
        }

    def snapshot(self) -> bytes:
        """`state()` as JSON bytes (what the consumer stores in detector_checkpoints)."""
        return orjson.dumps(self.state())

    @classmethod
    def restore(
        cls,
        config: DetectionConfig,
        blob: bytes | str | Mapping[str, Any],
        scorer: ForestScorer | None = None,
    ) -> DetectionEngine:
        """An engine from `snapshot()` bytes or a `state()` dict (checkpoints written before the
        `version` key are read too). Raises ValueError/KeyError/TypeError on a damaged one."""
        doc: Mapping[str, Any] = blob if isinstance(blob, Mapping) else orjson.loads(blob)
        version = doc.get("version", 1)
        if not isinstance(version, int) or version > STATE_VERSION:
            raise ValueError(
                f"detector checkpoint version {version!r} is newer than this code ({STATE_VERSION})"
            )
        engine = cls(config, scorer)
        store = engine._store
        store.max_minute = doc["max_minute"]
        store.closed_upto = doc["closed_upto"]
        store.dropped_late = doc["dropped_late"]
        engine._pending = [EpisodeEvent(kind, Episode.from_state(s)) for kind, s in doc.get("pending", [])]
        for row in doc["services"]:
            (tenant, service, first, last, buckets, baseline, episodes, miner) = row[:8]
            messages, new_patterns, candidates = row[8:11]
            state = ServiceState(
                tenant,
                service,
                int(first),
                int(last),
                {int(k): Counts(*rest) for k, *rest in buckets},
                Baseline.from_state(baseline),
                {e[3]: Episode.from_state(e) for e in episodes},
                TemplateMiner.from_state(miner, engine._miner_config),
                int(messages),
                {str(k): int(v) for k, v in new_patterns.items()},
                {str(k): list(v) for k, v in candidates.items()},
                skipped=int(row[11]) if len(row) > 11 else 0,
                forest_streak=int(row[12]) if len(row) > 12 else 0,
                pattern_errors={int(k): int(v) for k, v in row[13]} if len(row) > 13 else {},
            )
            if len(row) > 14:
                ev = row[14]
                state.dispersion = Dispersion(float(ev["cv2"]), int(ev["cv2_n"]))
                score, minutes, expected, actual = ev["drop"]
                state.drop = DropEvidence(float(score), int(minutes), float(expected), int(actual))
                stat, errs, exp_errs, recent = ev["cusum"]
                state.cusum = ErrorCusum(
                    float(stat), [float(x) for x in recent], float(errs), float(exp_errs)
                )
            store.services[(tenant, service)] = state
        while len(store.services) > config.max_services:  # a smaller limit than when saved
            store.evicted.append(store.services.popitem(last=False)[1])
        return engine


def _rules(
    found: dict[str, Finding],
    w: Counts,
    exp: Expected,
    expected_window: float,
    t: DetectorThresholds,
    start: datetime,
    end: datetime,
    dispersion: float = 1.0,
) -> None:
    """Evaluate the three rules on one window; the first window that fires a type keeps it."""
    if "error_rate_spike" not in found and (f := error_rate_spike(w, exp, t, start, end)) is not None:
        found["error_rate_spike"] = f
    if (
        "log_volume_spike" not in found
        # not scaled by the dispersion: a 5x minute is beyond any burst the estimate allows, and
        # on Poisson traffic the estimate (inflated by the baseline's own error) slowed spikes
        and (f := log_volume_spike(w, expected_window, t, start, end)) is not None
    ):
        found["log_volume_spike"] = f
    if (
        "log_volume_drop" not in found
        and (f := log_volume_drop(w, expected_window, t, start, end, dispersion)) is not None
    ):
        found["log_volume_drop"] = f


def _pattern_description(service: str, template: str) -> str:
    return f"new ERROR pattern never seen for {service}: {template}"


def _without_pattern_errors(w: Counts, pattern_errors: dict[int, int], first: int, last: int) -> Counts:
    """The window's counts with the open new pattern's ERROR lines left out of `errors`."""
    own = sum(pattern_errors.get(k, 0) for k in range(first, last + 1))
    if not own:
        return w
    return Counts(w.total, max(0, w.errors - own), w.warns, w.duration_sum, w.duration_n, w.length_sum)


def _explained(state: ServiceState, end: datetime) -> bool:
    """Is a rule or pattern episode open that had started before the window ending at `end`, or
    does the window hold lines of a new pattern (its episode may have just resolved: the lines
    stay in the 5-minute window, and far out on its error features, for minutes after)?

    "Before": a pattern episode opens on the hot path, as its line is read, and a replayed batch
    spans many minutes of event time, so minutes before it may still be closing."""
    if state.pattern_errors:
        last = minute_of(end) - 1
        if any(k <= last for k in state.pattern_errors):  # none is older than the window
            return True
    episodes = state.episodes
    return any((ep := episodes.get(k)) is not None and ep.window_start < end for k in _EXPLAINED_BY)


def _keep(episodes: dict[str, Episode], kind: str, ep: Episode | None) -> None:
    if ep is None:
        episodes.pop(kind, None)
    else:
        episodes[kind] = ep


def _describe(features: tuple[float, ...]) -> str:
    return ", ".join(f"{n}={v:.3g}" for n, v in zip(FEATURE_NAMES, features, strict=True))
