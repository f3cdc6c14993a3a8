"""The new_error_pattern episode: a never-seen ERROR template, decided on the hot path.

An ERROR/FATAL line whose template the service's miner has never seen (after the warm-up:
`pattern_warmup_messages` and `pattern_warmup_minutes`) opens the service's episode at once, or
after `pattern_min_occurrences` within `pattern_confirm_minutes` when asked. Further new
templates join the open episode (`more_templates`). The episode resolves once none of its
patterns has occurred for `resolve_after` closed minutes (`settle`, at minute close).

One incident, one row: a new error is often an error-rate spike too, so its lines are counted
per minute (`ServiceState.pattern_errors`) and left out of the error-rate rule and the error
baseline (`without_pattern_errors`, `errors_outside`); the rate they make is told on the
pattern's own row instead (`error_rate_update`).
"""

from __future__ import annotations

from datetime import datetime

from loganalyzer.detection.baseline import Expected
from loganalyzer.detection.config import DetectionConfig, DetectorThresholds
from loganalyzer.detection.detectors import error_rate_spike
from loganalyzer.detection.episodes import SEVERITY_RANK, EpisodeEvent, step
from loganalyzer.detection.features import Counts
from loganalyzer.detection.service_state import ServiceState
from loganalyzer.detection.windows import minute_start
from loganalyzer.patterns import Match

KIND = "new_error_pattern"


def on_error_line(
    cfg: DetectionConfig, state: ServiceState, match: Match, m: int, ts: datetime, message: str
) -> EpisodeEvent | None:
    """An ERROR/FATAL occurrence of minute m: is it a never-seen template that keeps recurring?
    Returns the episode's opening, if this line opened it."""
    pid = match.pattern_id
    if state.new_patterns and pid in state.new_patterns:
        state.new_patterns[pid] = m
        state.pattern_errors[m] = state.pattern_errors.get(m, 0) + 1
        return None
    if match.is_new:
        if (
            state.messages >= cfg.pattern_warmup_messages
            and m - state.first_minute >= cfg.pattern_warmup_minutes
        ):
            if cfg.pattern_min_occurrences <= 1:
                opened = open_pattern(cfg, state, pid, match.template, message, m, m, ts)
                state.pattern_errors[m] = state.pattern_errors.get(m, 0) + 1
                return opened
            state.candidates[pid] = [m, 1]
        return None
    cand = state.candidates.get(pid)
    if cand is None:
        return None
    if m - cand[0] >= cfg.pattern_confirm_minutes:
        del state.candidates[pid]
        return None
    cand[1] += 1
    if cand[1] < cfg.pattern_min_occurrences:
        return None
    del state.candidates[pid]
    # the episode starts where the pattern first appeared
    opened = open_pattern(cfg, state, pid, match.template, message, cand[0], m, ts)
    # its lines so far, in the minute that confirmed it (their own minutes may have closed)
    state.pattern_errors[m] = state.pattern_errors.get(m, 0) + cand[1]
    return opened


def on_other_line(state: ServiceState, pattern_id: str, m: int) -> None:
    """A non-error line of one of the open episode's patterns still keeps it going."""
    if pattern_id in state.new_patterns:
        state.new_patterns[pattern_id] = m


def open_pattern(
    cfg: DetectionConfig,
    state: ServiceState,
    pid: str,
    template: str,
    message: str,
    first: int,
    last: int,
    seen_at: datetime,
) -> EpisodeEvent | None:
    """Open the service's episode with this pattern, or add the pattern to the open one."""
    opened = None
    ep = state.episodes.get(KIND)
    if ep is None:
        start = minute_start(first)
        ep, opened = step(
            None,
            tenant=state.tenant,
            service=state.service,
            kind=KIND,
            finding_ratio=1.0,
            severity="high",
            actual=1.0,
            expected=0.0,
            description=description(state.service, template),
            window_start=start,
            window_end=start + cfg.bucket,
            resolve_after=cfg.resolve_after,
            extra={
                "template": template,
                "sample_message": message[:1000],
                "pattern_id": pid,
                # decided on the hot path, by the occurrence that confirmed it
                "emitted_at": seen_at.isoformat(),
            },
        )
        assert ep is not None and opened is not None
        state.episodes[KIND] = ep
    elif pid not in state.new_patterns:
        ep.extra.setdefault("more_templates", []).append(template)
    state.new_patterns[pid] = max(last, state.new_patterns.get(pid, last))
    return opened


def settle(cfg: DetectionConfig, state: ServiceState, m: int) -> list[EpisodeEvent]:
    """Minute m closed: forget unconfirmed candidates that are too old; extend the open episode
    to its patterns' last occurrence, or resolve it after `resolve_after` minutes without one."""
    if state.candidates:
        horizon = m - cfg.pattern_confirm_minutes
        for pid in [p for p, (first, _) in state.candidates.items() if first < horizon]:
            del state.candidates[pid]
    ep = state.episodes.get(KIND)
    if ep is None or not state.new_patterns:
        return []
    last = max(state.new_patterns.values())
    ep.window_end = max(ep.window_end, minute_start(min(last, m) + 1))
    if m - last < cfg.resolve_after:
        return []
    ep.status, ep.resolved_at = "resolved", minute_start(last + 1)
    del state.episodes[KIND]
    state.new_patterns.clear()
    return [EpisodeEvent("resolved", ep)]


def error_rate_update(
    state: ServiceState,
    w: Counts,
    exp: Expected,
    t: DetectorThresholds,
    start: datetime,
    end: datetime,
) -> list[EpisodeEvent]:
    """The error rate a new pattern's lines make, told on its own episode.

    Why: a new error at 15 % of a service's lines is also an error-rate spike, and one incident
    must be one row. So the error-rate rule leaves the open pattern episode's lines out (it
    still fires for errors beyond them), and the pattern episode carries the rate they make, its
    peak, and the severity that rate would have had. A change is written when the rate first
    crosses the threshold or the severity rises; a later, higher peak rides along with the
    episode's next change."""
    ep = state.episodes.get(KIND)
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
    ep.description = f"{description(ep.service, ep.extra['template'])}; with it, {f.description}"
    return [EpisodeEvent("updated", ep)] if prior is None or raised else []


def without_pattern_errors(w: Counts, pattern_errors: dict[int, int], first: int, last: int) -> Counts:
    """The window's counts with the open new pattern's ERROR lines left out of `errors`."""
    own = sum(pattern_errors.get(k, 0) for k in range(first, last + 1))
    if not own:
        return w
    return Counts(w.total, max(0, w.errors - own), w.warns, w.duration_sum, w.duration_n, w.length_sum)


def errors_outside(state: ServiceState, m: int, errors: int) -> int:
    """Minute m's ERROR lines less those of the open new pattern (may be negative: callers floor)."""
    return errors - state.pattern_errors.get(m, 0) if state.pattern_errors else errors


def description(service: str, template: str) -> str:
    return f"new ERROR pattern never seen for {service}: {template}"
