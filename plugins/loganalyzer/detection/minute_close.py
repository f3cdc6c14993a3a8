"""Closing one minute of event time: every tracked service is judged on it, silent ones too.

For each service, in order: the new pattern's error rate (its own row), the rules on the window
and on the newest minute(s), the evidence over minutes, the rule episodes' steps, the forest's
gate, learning the minute, settling the pattern episode, and forgetting buckets no later window
needs. Absence of data is seen here, when the watermark passes a minute, not from arriving events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loganalyzer.detection import new_patterns
from loganalyzer.detection.config import DetectionConfig
from loganalyzer.detection.detectors import Finding
from loganalyzer.detection.episodes import EpisodeEvent
from loganalyzer.detection.features import Counts, window_counts
from loganalyzer.detection.forest_gate import step_forest
from loganalyzer.detection.learning import is_warm, learn
from loganalyzer.detection.rules import (
    evidence_findings,
    spike_run_finding,
    step_rule_episodes,
    window_findings,
)
from loganalyzer.detection.service_state import ServiceState
from loganalyzer.detection.windows import minute_start

if TYPE_CHECKING:  # the model package needs numpy/sklearn; the engine runs without a model
    from loganalyzer.model.forest import ForestScores

#: a service and the window of `window_buckets` minutes that ends with the closing minute
Ready = tuple[ServiceState, list[Counts]]


def close_minute(
    cfg: DetectionConfig, m: int, ready: list[Ready], scored: ForestScores | None
) -> list[EpisodeEvent]:
    """Judge minute m for every service in `ready` (`scored`: the forest's scores of their windows,
    in the same order, or None without a model). Returns the episode changes."""
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
        warm = is_warm(cfg, state)
        exp = state.baseline.expected(m, bs)
        found: dict[str, Finding] = {}
        if warm:
            # The 5-minute window is the feature window; its newest minute(s) are evaluated
            # too, so that a sharp change is reported within ~1 minute of event time (the
            # rules' volume and sigma guards keep one minute from alarming on noise).
            w_full = window_counts(window)
            w_fast = window_counts(window[-fast:]) if fast < n else None
            if state.pattern_errors:
                events.extend(new_patterns.error_rate_update(state, w_full, exp, t, start, end))
                w_full = new_patterns.without_pattern_errors(w_full, state.pattern_errors, m - n + 1, m)
                if w_fast is not None:
                    w_fast = new_patterns.without_pattern_errors(
                        w_fast, state.pattern_errors, m - fast + 1, m
                    )
            cv2 = state.dispersion.cv2
            disp = state.dispersion.index(exp.volume)
            window_findings(found, w_full, exp, exp.volume * n, t, start, end, disp, cv2 / n)
            if w_fast is not None:
                window_findings(found, w_fast, exp, exp.volume * fast, t, fast_start, end, disp, cv2 / fast)
            if "log_volume_spike" not in found:
                spike_run_finding(found, window, exp.volume, cv2, t, end)
            evidence_findings(state, found, m, minute, exp, t, end)
        events.extend(step_rule_episodes(state, found, start, end, cfg.rule_resolve_after))
        if scores is not None and warm:
            event = step_forest(
                state, scores[i], deviations[i], calibrated, version, t, window, start, end, cfg.resolve_after
            )
            if event is not None:
                events.append(event)
        learn(cfg, state, m, minute, exp, warm)
        if state.new_patterns or state.candidates:
            events.extend(new_patterns.settle(cfg, state, m))
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
