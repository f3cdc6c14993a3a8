"""The rule episodes of a closed minute: findings of its windows, evidence over minutes, steps.

A closed minute is judged on the 5-minute window that ends with it and on its newest minute(s)
alone (`fast_window_buckets`), so a sharp change is reported within about a minute; the first
window that fires a type keeps it. Evidence that adds up over minutes (evidence.py) can fire the
same types when no window does: a run of improbably low minutes (a quiet service's silence) and
an error CUSUM (a sustained moderate rise). Each type's finding, or its absence, then steps the
service's episode of that type (episodes.py).
"""

from __future__ import annotations

from datetime import datetime

from loganalyzer.detection.baseline import Expected
from loganalyzer.detection.config import DetectorThresholds
from loganalyzer.detection.detectors import (
    Finding,
    error_rate_spike,
    log_volume_drop,
    log_volume_spike,
    spike_run,
    sustained_drop,
    sustained_errors,
)
from loganalyzer.detection.episodes import Episode, EpisodeEvent, step
from loganalyzer.detection.evidence import RECENT_MINUTES
from loganalyzer.detection.features import Counts
from loganalyzer.detection.new_patterns import errors_outside
from loganalyzer.detection.service_state import ServiceState
from loganalyzer.detection.windows import minute_start

RULE_TYPES = ("error_rate_spike", "log_volume_spike", "log_volume_drop")


def window_findings(
    found: dict[str, Finding],
    w: Counts,
    exp: Expected,
    expected_window: float,
    t: DetectorThresholds,
    start: datetime,
    end: datetime,
    dispersion: float = 1.0,
    tail_cv2: float | None = None,
) -> None:
    """Evaluate the three rules on one window; the first window that fires a type keeps it.
    `dispersion`: a minute's variance over mean; `tail_cv2`: the window total's cv2 (a spike or a
    drop must be improbable under it too, detectors.log_volume_spike / log_volume_drop)."""
    if "error_rate_spike" not in found and (f := error_rate_spike(w, exp, t, start, end)) is not None:
        found["error_rate_spike"] = f
    if (
        "log_volume_spike" not in found
        and (f := log_volume_spike(w, expected_window, t, start, end, tail_cv2)) is not None
    ):
        found["log_volume_spike"] = f
    if (
        "log_volume_drop" not in found
        and (f := log_volume_drop(w, expected_window, t, start, end, dispersion, tail_cv2)) is not None
    ):
        found["log_volume_drop"] = f


def spike_run_finding(
    found: dict[str, Finding],
    window: list[Counts],
    mu: float,
    cv2: float,
    t: DetectorThresholds,
    end: datetime,
) -> None:
    """The window's newest minutes that are each a spike's (detectors.spike_run): two minutes
    at 8x of a bursty service are a spike where neither is alone."""
    if (f := spike_run([c.total for c in window], mu, cv2, t, end)) is not None:
        found["log_volume_spike"] = f


def evidence_findings(
    state: ServiceState,
    found: dict[str, Finding],
    m: int,
    minute: Counts,
    exp: Expected,
    t: DetectorThresholds,
    end: datetime,
) -> None:
    """Evidence accumulated over minutes (evidence.py): the improbability of a run of low
    minutes (silence of a quiet service, an outage of a bursty one), and the error CUSUM. Updated
    with every closed minute of a warm service; fires a type no window has fired."""
    drop = state.drop
    score = drop.update(
        minute.total, exp.volume, state.dispersion.cv2, t.volume_drop_factor, t.drop_minute_cap
    )
    if "log_volume_drop" not in found and drop.minutes:
        f = sustained_drop(
            drop.actual, drop.expected, score, t, minute_start(m - drop.minutes + 1), end, drop.capped
        )
        if f is not None:
            found["log_volume_drop"] = f
    errors = errors_outside(state, m, minute.errors)
    base = max(exp.error_rate, t.error_rate_floor)
    cusum = state.cusum
    uncapped = None
    if exp.uncapped_error_rate is not None:
        uncapped = max(exp.uncapped_error_rate, t.error_rate_floor) * minute.total
    cusum.update(max(0, errors), base * minute.total, t.error_rate_factor, base * exp.volume, uncapped)
    if cusum.alarming(t.error_cusum) and "error_rate_spike" not in found:
        # the finding spans the last five minutes, as before the memory could be longer
        recent = min(len(cusum.recent), RECENT_MINUTES)
        found["error_rate_spike"] = sustained_errors(
            cusum.errors, cusum.expected, base, t, minute_start(m - recent + 1), end
        )


def step_rule_episodes(
    state: ServiceState,
    found: dict[str, Finding],
    start: datetime,
    end: datetime,
    resolve_after: int,
) -> list[EpisodeEvent]:
    """Open, continue or resolve the service's rule episodes with this window's findings."""
    episodes = state.episodes
    events: list[EpisodeEvent] = []
    if not (found or episodes):
        return events
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
            resolve_after=resolve_after,
        )
        keep(episodes, kind, ep)
        if event is not None:
            events.append(event)
    return events


def keep(episodes: dict[str, Episode], kind: str, ep: Episode | None) -> None:
    """Store the open episode of a type, or forget it once resolved."""
    if ep is None:
        episodes.pop(kind, None)
    else:
        episodes[kind] = ep
