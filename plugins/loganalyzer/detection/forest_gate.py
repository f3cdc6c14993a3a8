"""When the IsolationForest's score of a window opens, continues or resolves an episode.

The forest is the least precise signal, so its score alone is not enough: the window must also
be far from the service's normal on some feature (the model's own standardised input), two such
windows in a row open an episode unless one is decisively out, and no forest episode opens
beside a rule or new-pattern episode that already explains the window (one incident, one row).
Measured in bench/bench_detection.py; docs/detection.md, "The forest".
"""

from __future__ import annotations

import math
from datetime import datetime

from loganalyzer.detection.config import DetectorThresholds
from loganalyzer.detection.detectors import severity, span
from loganalyzer.detection.episodes import EpisodeEvent, step
from loganalyzer.detection.features import FEATURE_NAMES, Counts, window_features
from loganalyzer.detection.rules import RULE_TYPES, keep
from loganalyzer.detection.service_state import ServiceState
from loganalyzer.detection.windows import minute_of

KIND = "isolation_forest"
DEFAULT_FOREST = DetectorThresholds().forest_score
#: consecutive anomalous windows that open a forest episode: one odd window is the price of a
#: 0.1 % calibration, two in a row are not (measured: precision 0.67 -> 0.92 at equal recall)
PERSISTENCE = 2
#: ... unless the window is DECISIVELY out: a feature this many robust standard deviations from
#: the service's normal (the model's own standardised input). That alone opens an episode, even
#: with the score under its threshold: an isolation tree splits on a random feature, so a window
#: far out on ONE of six features is isolated only a little sooner, and the score saturates (a
#: 6x latency incident's first windows scored below the threshold at 9-25 SD out, which delayed
#: the median detection to 1.9 minutes of event time; measured in bench/bench_detection.py).
DECISIVE_Z = 6.0
#: and never on a window whose every feature is within this many deviations of normal: the
#: forest then reacts to a rare COMBINATION of ordinary values, which on measured traffic was
#: every one of its false alarms and none of its incidents
MIN_Z = 3.0
#: open episodes that already explain an anomalous window: the forest opens no episode of its own
#: beside them (one incident, one row: an error burst or an outage is also far out on the forest's
#: features; bench_detection counted 47 such second rows on 100 incidents). An open forest episode
#: still continues, and the forest still opens once they are over if the window stays out.
EXPLAINED_BY = (*RULE_TYPES, "new_error_pattern")


def step_forest(
    state: ServiceState,
    score: float,
    deviation: tuple[float, ...] | None,
    calibrated: float | None,
    version: str,
    t: DetectorThresholds,
    window: list[Counts],
    start: datetime,
    end: datetime,
    resolve_after: int,
) -> EpisodeEvent | None:
    """One scored window of a warm service: the forest episode's change, if any."""
    if math.isnan(score):  # the model does not know this service
        return None
    limit = calibrated if calibrated is not None and t.forest_score == DEFAULT_FOREST else t.forest_score
    # how far the window is from the service's normal, and on which feature
    peak, peak_i = (0.0, -1) if deviation is None else max((abs(z), i) for i, z in enumerate(deviation))
    decisive = peak >= DECISIVE_Z
    hit = decisive or (score > limit and (deviation is None or peak >= MIN_Z))
    state.forest_streak = state.forest_streak + 1 if hit else 0
    if KIND not in state.episodes and (
        (state.forest_streak < PERSISTENCE and not decisive) or explained(state, end)
    ):
        return None
    why = ""
    if deviation is not None:
        z = deviation[peak_i]
        why = f"; furthest from this service's normal: {FEATURE_NAMES[peak_i]} at {z:+.1f} robust SD"
    ep, event = step(
        state.episodes.get(KIND),
        tenant=state.tenant,
        service=state.service,
        kind=KIND,
        finding_ratio=score if hit else None,
        # how far beyond normal: the score's excess, or the furthest feature's distance in
        # units of the gate (the score alone saturates, see DECISIVE_Z)
        severity=severity(max(score / limit if limit > 0 else 1.0, peak / MIN_Z)) if hit else None,
        actual=score,
        expected=limit,
        description=(
            f"IsolationForest score {score:.3f} above {limit:.3f} for the window {span(start, end)}"
            if score > limit
            else f"window {span(start, end)} decisively outside this service's normal "
            f"(≥ {DECISIVE_Z:g} robust SD; IsolationForest score {score:.3f}, "
            f"threshold {limit:.3f})"
        )
        + f"{why} (features: {_describe(window_features(window))})",
        window_start=start,
        window_end=end,
        resolve_after=resolve_after,
        extra={"model_version": version}
        if deviation is None
        else {
            "model_version": version,
            "deviations": {n: round(z, 2) for n, z in zip(FEATURE_NAMES, deviation, strict=True)},
        },
    )
    keep(state.episodes, KIND, ep)
    return event


def explained(state: ServiceState, end: datetime) -> bool:
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
    return any((ep := episodes.get(k)) is not None and ep.window_start < end for k in EXPLAINED_BY)


def _describe(features: tuple[float, ...]) -> str:
    return ", ".join(f"{n}={v:.3g}" for n, v in zip(FEATURE_NAMES, features, strict=True))
